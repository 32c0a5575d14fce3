#!/usr/bin/env bash
# Installs what building and testing framed needs, from Debian 12's own
# packages. Does nothing (and needs no network) when all is already there.
#   scripts/install-deps.sh               # building and every test
#   scripts/install-deps.sh --build-only  # building the daemon (run.sh, install.sh)
#   scripts/install-deps.sh --bench       # the same (kept for bench/run.sh and bench/fanout.sh; Redis is a test package now)
set -euo pipefail

packages=(
  g++ meson ninja-build pkg-config
  liburing-dev libspdlog-dev libtomlplusplus-dev libsimdjson-dev libssl-dev libhttp-parser-dev
  libcli11-dev   # framectl's command line
  libhiredis-dev # the pub/sub bridge's Redis client
)
[ "${1:-}" = --build-only ] || packages+=(
  catch2 python3 python3-pytest socat procps
  # the pub/sub bridge's integration test starts its own Redis, and the
  # benchmarks compare with it (on a systemd machine the package also starts
  # a Redis on 6379; the benchmarks use 16379, the bridge's test a free port)
  redis-server
  # the units' tests: systemd-analyze verify and security
  systemd
  # the Python client's packaging test: pip install ./clients/python, offline
  python3-pip python3-setuptools python3-wheel
  # the HTTP listener's tests: a strict /metrics parser, a browser for the status page
  python3-prometheus-client chromium
  # the fuzz targets: libFuzzer is clang's (its runtime is only recommended by clang)
  clang libclang-rt-14-dev
  # the TLS tests: certificates made at test time, and s_client as a client
  openssl
  # the fleet test and bench/fleet.sh: framed daemons behind a real load balancer
  # (on a systemd machine the package also starts its own, idle, service;
  # they run HAProxy processes of their own)
  haproxy
  # bench/compare: instruction counts per request (callgrind) and its SVG chart
  valgrind gnuplot-nox
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "installing: ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

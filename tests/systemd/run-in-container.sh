#!/usr/bin/env bash
# Runs tests/systemd/scenario.sh under a real systemd: boots a throw-away
# Debian 12 container (systemd-nspawn, systemd as its PID 1) holding a clone
# of this repository's committed HEAD, and runs the scenario inside as root.
# Exits with the scenario's status.
#
#   sudo tests/systemd/run-in-container.sh
#
# Needs root, debootstrap and systemd-container (installed when missing) and
# the Debian mirror (the container's packages, and apt-get inside it). The
# Debian root is made once and cached in $FRAMED_SYSTEMD_ROOT (default
# /var/tmp/framed-systemd-root); each run boots a copy of it. Not part of
# scripts/test.sh: a run takes minutes (the daemon is built inside).
#
# It works on a host whose PID 1 is not systemd (a CI container): the
# machine is not registered (--register=no --keep-unit), it gets a cgroup
# of its own, and it sees a pure cgroup2 hierarchy.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${FRAMED_SYSTEMD_ROOT:-/var/tmp/framed-systemd-root}
boot_timeout=90
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x "$cache/lib/systemd/systemd" ]; then
  echo "== making a Debian 12 root with systemd in $cache (once)"
  rm -rf "$cache.tmp"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates,git bookworm "$cache.tmp" >/dev/null
  mv "$cache.tmp" "$cache"
fi

box=$(mktemp -d /var/tmp/framed-systemd-run.XXXXXX)
group=framed-systemd-$$
leader=
cleanup() {
  if [ -n "${nspawn:-}" ] && kill -0 "$nspawn" 2>/dev/null; then
    kill -TERM "$nspawn" 2>/dev/null || true   # nspawn asks the container's systemd to power off
    for _ in $(seq 300); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nspawn" 2>/dev/null || true
  fi
  for hierarchy in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
    [ -d "$hierarchy/$group" ] && find "$hierarchy/$group" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  rm -rf "$box"
}
trap cleanup EXIT

cp -a "$cache/." "$box/"
git clone -q "$repo" "$box/src"
cp /etc/resolv.conf "$box/etc/resolv.conf" 2>/dev/null || true

# A cgroup of its own on every hierarchy there is, so that the container's
# systemd finds one it may manage.
hierarchies=()
for hierarchy in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
  [ -d "$hierarchy" ] && hierarchies+=("$hierarchy")
done
[ ${#hierarchies[@]} -gt 0 ] || hierarchies=(/sys/fs/cgroup)
for hierarchy in "${hierarchies[@]}"; do mkdir -p "$hierarchy/$group"; done

console=$box.console
(
  for hierarchy in "${hierarchies[@]}"; do echo "$BASHPID" > "$hierarchy/$group/cgroup.procs"; done
  export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
  exec systemd-nspawn -q -D "$box" --register=no --keep-unit --boot --console=pipe \
       -M "framed-test-$$" --system-call-filter=bpf </dev/null >"$console" 2>&1
) &
nspawn=$!

# The container's PID 1: the child of nspawn that is PID 1 of its own pid namespace.
deadline=$((SECONDS + boot_timeout))
while [ -z "$leader" ] && [ $SECONDS -lt $deadline ] && kill -0 "$nspawn" 2>/dev/null; do
  for child in $(ps -o pid= --ppid "$nspawn"); do
    grep -qE '^NSpid:.*[[:space:]]1$' "/proc/$child/status" 2>/dev/null && leader=$child
  done
  [ -n "$leader" ] || sleep 0.1
done
[ -n "$leader" ] || { echo "the container did not start" >&2; cat "$console" >&2; exit 125; }
inside() { nsenter -t "$leader" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
             HOME=/root LANG=C.UTF-8 "$@"; }
state=
while [ $SECONDS -lt $deadline ]; do
  state=$(inside systemctl is-system-running 2>/dev/null || true)
  case $state in running|degraded) break ;; esac
  sleep 0.2
done
case $state in
  running|degraded) echo "== systemd is up in the container ($state)" ;;
  *) echo "systemd did not come up (state '$state')" >&2; cat "$console" >&2; exit 125 ;;
esac
status=0
inside /bin/sh -c 'cd /src && bash tests/systemd/scenario.sh' || status=$?
echo "== scenario exit status $status"
exit $status

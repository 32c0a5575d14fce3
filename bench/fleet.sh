#!/usr/bin/env bash
# shellcheck disable=SC2317  # print_measured, print_table and finish run from the EXIT trap
# What HAProxy in front of framed costs: json ping at 50 connections x 16
# pipelined and 50 x 1, straight to one framed, through HAProxy to that one
# framed, and through HAProxy to three, on each backend. HAProxy runs the
# frontend, backend and health checks of config/examples/haproxy.cfg (only
# the ports moved, and a global section of its own), the members
# config/examples/fleet-member.toml on 127.0.0.2, 127.0.0.3 and 127.0.0.4.
# Prints one markdown table; everything it starts is stopped on exit.
#
#   bench/fleet.sh                    # from the top of the checkout, after `ninja -C build`
#   DURATION=5 bench/fleet.sh         # longer points
#
# HAProxy, the daemons and the client share the machine's cores: on a small
# machine the three-member row measures the proxy's cost, not scale-out.
#
# Environment (all optional):
#   FRAMED_BIN       daemon binary                      (build/daemon/framed)
#   BENCH_BIN        client binary                      (build/bench/framed-bench)
#   HAPROXY          haproxy binary                     (haproxy, from PATH or /usr/sbin)
#   BACKENDS         daemon backends to measure         ("epoll io_uring")
#   DURATION, WARMUP seconds per run                    (3, 1)
#   ROUNDS           runs per point; the median is shown (3)
#   THREADS          client threads                     (1)
set -euo pipefail
# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FRAMED_BIN=${FRAMED_BIN:-build/daemon/framed}
BENCH_BIN=${BENCH_BIN:-build/bench/framed-bench}
HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
BACKENDS=${BACKENDS:-epoll io_uring}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-1}
CONNECTIONS=50
PIPELINES="16 1"
HOSTS=(127.0.0.2 127.0.0.3 127.0.0.4)
EXAMPLES="$(dirname "${BASH_SOURCE[0]}")/../config/examples"

die() { printf 'fleet.sh: %s\n' "$*" >&2; exit 2; }

[ -x "$BENCH_BIN" ] || die "$BENCH_BIN not found: build it with 'ninja -C build bench/framed-bench'"
[ -x "$FRAMED_BIN" ] || die "$FRAMED_BIN not found: build it with 'ninja -C build daemon/framed'"
[ -x "$HAPROXY" ] || die "haproxy not found: apt install haproxy (scripts/install-deps.sh), or set HAPROXY"
command -v python3 >/dev/null || die "python3 is needed to pick free ports and read HAProxy's stats socket"

# Other work on the machine moves every figure: the table says how busy it was.
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d "${TMPDIR:-/tmp}/framed-fleet-bench.XXXXXX")
server_pid=""
members=()  # pids of the running framed members
rows=()
failed=0
declare -A direct_rate=()  # "backend|pipeline" -> req/s straight to one framed

# A port free on every member address at once (the members share it, as in
# the example), and not $1: the kernel's pick, bound a moment later.
fleet_port() {
  python3 - "${1:-0}" "${HOSTS[@]}" <<'EOF'
import socket, sys
exclude, hosts = int(sys.argv[1]), sys.argv[2:]
for _ in range(100):
    with socket.socket() as first:
        first.bind((hosts[0], 0))
        port = first.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as probe:
                    probe.bind((host, port))
        except OSError:
            continue
    if port != exclude:
        print(port)
        sys.exit(0)
sys.exit("no port free on all of %s" % hosts)
EOF
}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# haproxy_config MEMBERS: the example from its defaults section on, ports
# moved, the servers past the first MEMBERS removed, behind a global section
# with a stats socket in $work (no chroot, user or syslog: not root's paths).
haproxy_config() {
  local count=$1 index edits
  edits=(-e "s/bind 127\.0\.0\.1:9000/bind 127.0.0.1:$frontend_port/"
         -e "s/\(127\.0\.0\.[234]\):9000 /\1:$port /"
         -e "s/check port 9100/check port $http_port/")
  for index in 1 2 3; do
    [ "$index" -le "$count" ] || edits+=(-e "/^ *server framed$index /d")
  done
  printf 'global\n    stats socket %s/haproxy.sock mode 600 level admin\n\n' "$work"
  sed -n '/^defaults/,$p' "$EXAMPLES/haproxy.cfg" | sed "${edits[@]}"
}

# Waits (10 s at most) until HAProxy's stats show MEMBERS servers up after a
# passed check: before its first check a server counts as up, untested.
wait_healthy() {
  python3 - "$work/haproxy.sock" "$1" <<'EOF'
import csv, io, socket, sys, time
path, want = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(path)
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        up = [r for r in rows if r["pxname"] == "framed_fleet" and r["svname"].startswith("framed")
              and (r["status"], r["check_status"]) == ("UP", "L7OK")]
        if len(up) == want:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
EOF
}

stop_members() {
  local pid
  for pid in "${members[@]}"; do
    server_pid=$pid
    stop_server
  done
  members=()
}

print_table() {
  printf '\nnproc: %s (%s); kernel %s; %s\n' "$(nproc)" \
    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" "$(uname -r)" \
    "$("$HAPROXY" -v | head -n 1 | cut -d' ' -f1-3)"
  printf 'load average at the start: %s\n' "$load_at_start"
  printf 'client: framed-bench, json ping, %s thread(s), %ss measured after %ss warmup, median of %s runs per point; HAProxy in TCP mode, leastconn, its default threads\n\n' \
    "$THREADS" "$DURATION" "$WARMUP" "$ROUNDS"
  printf '| backend | path | conns x pipeline | req/s | vs direct | p50 µs | p99 µs |\n'
  printf '|---|---|---|---:|---:|---:|---:|\n'
  [ ${#rows[@]} -eq 0 ] || printf '%s\n' "${rows[@]}"
}
print_measured() { [ ${#rows[@]} -eq 0 ] || print_table; }
finish() {
  stop_server
  stop_members
  rm -rf "$work"
  print_measured
}
trap finish EXIT
trap 'exit 130' INT TERM  # runs the EXIT trap too

# point BACKEND PATH HOST PORT PIPELINE: ROUNDS framed-bench runs, one row:
# the median round (by req/s) with its latencies.
point() {
  local backend=$1 path=$2 host=$3 target_port=$4 pipeline=$5 out rate p50 p99 ratio="" round results=() median
  for round in $(seq "$ROUNDS"); do
    if ! out=$("$BENCH_BIN" --host "$host" --port "$target_port" --command ping --connections "$CONNECTIONS" \
        --pipeline "$pipeline" --duration "$DURATION" --warmup "$WARMUP" --threads "$THREADS" --json \
        2>"$work/bench.err"); then
      failed=1
      rows+=("| $backend | $path | $CONNECTIONS x $pipeline | failed (round $round): $(head -n 1 "$work/bench.err") | | | |")
      return
    fi
    results+=("$(json_field requests_per_s "$out") $(json_field p50 "$out") $(json_field p99 "$out")")
  done
  median=$(printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p")
  read -r rate p50 p99 <<<"$median"
  if [ "$path" = direct ]; then
    direct_rate["$backend|$pipeline"]=$rate
  elif [ -n "${direct_rate["$backend|$pipeline"]:-}" ]; then
    ratio=$(awk -v a="$rate" -v b="${direct_rate["$backend|$pipeline"]}" 'BEGIN { if (b > 0) printf "%.2f", a / b }')
  fi
  rows+=("| $backend | $path | $CONNECTIONS x $pipeline | $(printf '%.0f' "$rate") | $ratio | $p50 | $p99 |")
}

# through_haproxy BACKEND MEMBERS: HAProxy in front of the first MEMBERS members.
through_haproxy() {
  local backend=$1 count=$2 path pipeline
  path="HAProxy → $count framed"
  haproxy_config "$count" >"$work/haproxy.cfg"
  "$HAPROXY" -f "$work/haproxy.cfg" -db >"$work/haproxy-$count.log" 2>&1 &
  server_pid=$!
  if wait_for_port "$frontend_port" && wait_healthy "$count"; then
    for pipeline in $PIPELINES; do point "$backend" "$path" 127.0.0.1 "$frontend_port" "$pipeline"; done
  else
    failed=1
    rows+=("| $backend | $path | - | not healthy: $(tail -n 1 "$work/haproxy-$count.log") | | | |")
  fi
  stop_server
}

for backend in $BACKENDS; do
  port=$(fleet_port)
  http_port=$(fleet_port "$port")
  frontend_port=$(free_port)
  started=1
  for host in "${HOSTS[@]}"; do
    sed -e "s/127\.0\.0\.2:9000/$host:$port/" -e "s/127\.0\.0\.2:9100/$host:$http_port/" \
      "$EXAMPLES/fleet-member.toml" >"$work/member-$host.toml"
    FRAMED_BACKEND=$backend "$FRAMED_BIN" --config "$work/member-$host.toml" >"$work/framed-$backend-$host.log" 2>&1 &
    server_pid=$!
    members+=("$server_pid")
    wait_for_port "$port" "$host" || { started=0; break; }
  done
  server_pid=""
  if [ "$started" = 1 ]; then
    for pipeline in $PIPELINES; do point "framed $backend" direct "${HOSTS[0]}" "$port" "$pipeline"; done
    through_haproxy "framed $backend" 1
    through_haproxy "framed $backend" 3
  else
    # io_uring may be unavailable (kernel built without it, seccomp): that
    # is the machine, not a failure; any other backend must start.
    [ "$backend" = io_uring ] || failed=1
    rows+=("| framed $backend | - | - | did not start: $(tail -n 1 "$work/framed-$backend-$host.log") | | | |")
  fi
  stop_members
done

exit "$failed"  # the EXIT trap prints the table

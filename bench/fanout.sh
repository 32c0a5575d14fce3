#!/usr/bin/env bash
# shellcheck disable=SC2317  # print_measured and print_tables run from the EXIT trap
# Runs fanout-bench against framed (each backend) and, when installed, Redis
# at 1, 100 and 10,000 subscribers, and prints one markdown table of the
# messages delivered per second (the median of ROUNDS rounds; each round
# starts every server afresh, so slow drift of a shared machine hits all
# alike), with framed/Redis ratios, plus the load. Everything it starts is
# stopped on exit.
#
#   bench/fanout.sh            # from the top of the checkout, after `ninja -C build`
#   bench/fanout.sh --short    # a quick check: 1, 100, 1,000 subscribers, 1 s each, one round
#
# Environment (all optional):
#   FRAMED_BIN       daemon binary                      (build/daemon/framed)
#   FANOUT_BIN       client binary                      (build/bench/fanout-bench)
#   FRAMED_PORT      daemon TCP port on 127.0.0.1       (19000)
#   REDIS_PORT       redis-server port on 127.0.0.1     (16379: clear of a system Redis on 6379)
#   BACKENDS         daemon backends to measure         ("epoll io_uring")
#   POINTS           subscriber counts                  ("1 100 10000")
#   ROUNDS           rounds, the median is shown        (3)
#   DURATION, WARMUP seconds per point                  (5, 1)
#   THREADS          client subscriber threads          (1)
#   PIPELINE         publishes in flight                (16)
#   SIZE             message payload bytes              (64)
#   SKIP_REDIS=1     do not measure Redis
set -euo pipefail
# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FRAMED_BIN=${FRAMED_BIN:-build/daemon/framed}
FANOUT_BIN=${FANOUT_BIN:-build/bench/fanout-bench}
FRAMED_PORT=${FRAMED_PORT:-19000}
REDIS_PORT=${REDIS_PORT:-16379}
BACKENDS=${BACKENDS:-epoll io_uring}
POINTS=${POINTS:-1 100 10000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-1}
PIPELINE=${PIPELINE:-16}
SIZE=${SIZE:-64}
# Both servers get the same generous per-subscriber output limit, so that a
# client briefly behind is measured, not dropped (framed's default is 8 MiB,
# Redis's pubsub class 32 MiB hard / 8 MiB for 60 s).
EVENT_BACKLOG_MIB=64

die() { printf 'fanout.sh: %s\n' "$*" >&2; exit 2; }

if [ "${1:-}" = --short ]; then
  POINTS="1 100 1000"
  DURATION=1
  WARMUP=0.5
  ROUNDS=1
elif [ $# -gt 0 ]; then
  die "usage: bench/fanout.sh [--short]"
fi

[ -x "$FANOUT_BIN" ] || die "$FANOUT_BIN not found: build it with 'ninja -C build bench/fanout-bench'"

max_points=0
for point in $POINTS; do [ "$point" -gt "$max_points" ] && max_points=$point; done
# The servers need a descriptor per subscriber: raise the soft limit (the
# children inherit it) as far as the hard limit allows.
wanted_fds=$((max_points + 1024))
hard_fds=$(ulimit -Hn)
if [ "$hard_fds" != unlimited ] && [ "$hard_fds" -lt "$wanted_fds" ]; then
  die "$max_points subscribers need $wanted_fds file descriptors; the hard limit is $hard_fds"
fi
ulimit -n "$wanted_fds"

work=$(mktemp -d "${TMPDIR:-/tmp}/fanout-bench.XXXXXX")
server_pid=""
declare -A runs=()     # "system point" -> "delivered publishes server_cpu client_cpu setup" lines, one per round
declare -A failures=() # "system point" -> the first failure
systems=()
failed=0

# ratio A B: A/B with two decimals, or empty when either is not a number.
ratio() {
  [[ "$1" =~ ^[0-9.]+$ && "$2" =~ ^[0-9.]+$ ]] || return 0
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'
}
# Thousands separated by a space, as docs/benchmarks.md writes them.
pretty() {
  [[ "$1" =~ ^[0-9.]+$ ]] || { printf '%s' "$1"; return; }
  printf '%.0f' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\| \)/\1 \2\3/;ta'
}
percent() { awk -v v="$1" 'BEGIN { if (v >= 0) printf "%.0f %%", v * 100; else printf "-" }'; }

# round_lines SYSTEM POINT: the rounds measured, slowest first.
round_lines() { printf '%s' "${runs["$1 $2"]:-}" | sed '/^$/d' | sort -n -k1,1; }
# median_run SYSTEM POINT: the round with the median delivered rate.
median_run() {
  local count
  count=$(round_lines "$1" "$2" | wc -l)
  [ "$count" -gt 0 ] || return 0
  round_lines "$1" "$2" | sed -n "$(((count + 1) / 2))p"
}
# cell SYSTEM POINT: the median rate, or why there is none.
cell() {
  local run
  run=$(median_run "$1" "$2")
  if [ -n "$run" ]; then printf '%s' "${run%% *}"; else printf '%s' "${failures["$1 $2"]:-}"; fi
}

print_tables() {
  local redis="" system point row run lines
  for system in "${systems[@]}"; do [[ $system == redis* ]] && redis=$system; done
  printf '\n%s; nproc %s; load average before: %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" "$load_before"
  printf 'client: 1 publisher (pipeline %s, %s B payload) + %s subscriber thread(s); %ss measured after %ss warmup; median of %s round(s)\n\n' \
    "$PIPELINE" "$SIZE" "$THREADS" "$DURATION" "$WARMUP" "$ROUNDS"
  row='| subscribers |'
  for system in "${systems[@]}"; do row+=" $system msg/s |"; done
  if [ -n "$redis" ]; then
    for system in "${systems[@]}"; do [[ $system == framed* ]] && row+=" ${system#framed } / redis |"; done
  fi
  printf '%s\n' "$row"
  row='|---:|'
  for system in "${systems[@]}"; do row+='---:|'; done
  if [ -n "$redis" ]; then for system in "${systems[@]}"; do [[ $system == framed* ]] && row+='---:|'; done; fi
  printf '%s\n' "$row"
  for point in $POINTS; do
    row="| $(pretty "$point") |"
    for system in "${systems[@]}"; do row+=" $(pretty "$(cell "$system" "$point")") |"; done
    if [ -n "$redis" ]; then
      for system in "${systems[@]}"; do
        [[ $system == framed* ]] && row+=" $(ratio "$(cell "$system" "$point")" "$(cell "$redis" "$point")") |"
      done
    fi
    printf '%s\n' "$row"
  done
  printf '\nload of the median round (CPU as a share of one core over the window; the client shares the machine),\n'
  printf 'and the lowest and highest delivered rate of all rounds:\n\n'
  printf '| system | subscribers | publishes/s | delivered msg/s | server CPU | client CPU | setup s | rounds: min | max |\n'
  printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
  for system in "${systems[@]}"; do
    for point in $POINTS; do
      run=$(median_run "$system" "$point")
      [ -n "$run" ] || continue
      lines=$(round_lines "$system" "$point")
      read -r delivered publishes server_cpu client_cpu setup <<<"$run"
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$system" "$(pretty "$point")" "$(pretty "$publishes")" \
        "$(pretty "$delivered")" "$(percent "$server_cpu")" "$(percent "$client_cpu")" "$setup" \
        "$(pretty "$(head -n 1 <<<"$lines" | cut -d' ' -f1)")" "$(pretty "$(tail -n 1 <<<"$lines" | cut -d' ' -f1)")"
    done
  done
}
print_measured() { [ ${#systems[@]} -eq 0 ] || print_tables; }
stop_and_print_on_exit

# measure SYSTEM PORT PROTOCOL: one round of every point.
measure() {
  local system=$1 port=$2 protocol=$3 point out key
  [[ " ${systems[*]} " == *" $system "* ]] || systems+=("$system")
  for point in $POINTS; do
    key="$system $point"
    # Setup of 10k connections takes seconds; the client bounds it (60 s).
    if out=$(timeout $((60 + ${DURATION%.*} + ${WARMUP%.*} + 30)) "$FANOUT_BIN" --port "$port" \
               --protocol "$protocol" --subscribers "$point" --threads "$THREADS" --pipeline "$PIPELINE" \
               --size "$SIZE" --duration "$DURATION" --warmup "$WARMUP" --server-pid "$server_pid" \
               --json 2>"$work/bench.err"); then
      runs["$key"]+="$(json_field delivered_per_s "$out") $(json_field publishes_per_s "$out") $(json_field server_cpu "$out") $(json_field client_cpu "$out") $(json_field setup_s "$out")"$'\n'
    else
      failed=1
      [ -n "${failures["$key"]:-}" ] || failures["$key"]="failed: $(head -n 1 "$work/bench.err")"
      printf 'fanout.sh: %s at %s subscribers:\n' "$system" "$point" >&2
      cat "$work/bench.err" >&2
    fi
  done
  return 0
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

port_in_use "$FRAMED_PORT" && die "something already listens on 127.0.0.1:$FRAMED_PORT; set FRAMED_PORT"
[ -x "$FRAMED_BIN" ] || printf 'fanout.sh: %s not found, framed not measured\n' "$FRAMED_BIN" >&2
measure_redis=0
if [ "${SKIP_REDIS:-0}" != 1 ] && command -v redis-server >/dev/null; then
  measure_redis=1
  port_in_use "$REDIS_PORT" && die "127.0.0.1:$REDIS_PORT is taken (set REDIS_PORT, or SKIP_REDIS=1)"
fi

for round in $(seq "$ROUNDS"); do
[ "$ROUNDS" = 1 ] || printf 'fanout.sh: round %s of %s\n' "$round" "$ROUNDS" >&2
if [ -x "$FRAMED_BIN" ]; then
  cat >"$work/framed.toml" <<EOF
[daemon]
max_connections = $((max_points + 100))

[limits]
max_event_backlog = "${EVENT_BACKLOG_MIB}MiB"

[[listener]]
kind = "tcp"
address = "127.0.0.1:$FRAMED_PORT"
EOF
  for backend in $BACKENDS; do
    FRAMED_BACKEND=$backend "$FRAMED_BIN" --config "$work/framed.toml" >"$work/framed-$backend.log" 2>&1 &
    server_pid=$!
    if wait_for_port "$FRAMED_PORT"; then
      measure "framed $backend" "$FRAMED_PORT" json
      if grep -q slow_subscriber "$work/framed-$backend.log"; then
        failed=1
        printf 'fanout.sh: framed %s dropped slow subscribers:\n' "$backend" >&2
        grep slow_subscriber "$work/framed-$backend.log" | head -n 3 >&2
      fi
    else
      [ "$backend" = io_uring ] || failed=1
      printf 'fanout.sh: framed %s did not start: %s\n' "$backend" "$(tail -n 1 "$work/framed-$backend.log")" >&2
    fi
    stop_server
  done
fi

if [ "$measure_redis" = 1 ]; then
  if port_in_use "$REDIS_PORT"; then
    failed=1
    printf 'fanout.sh: 127.0.0.1:%s is taken (set REDIS_PORT); Redis not measured\n' "$REDIS_PORT" >&2
  else
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --maxclients $((max_points + 100)) \
      --client-output-buffer-limit "pubsub ${EVENT_BACKLOG_MIB}mb 0 0" >"$work/redis.log" 2>&1 &
    server_pid=$!
    if wait_for_port "$REDIS_PORT"; then
      measure "redis $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')" "$REDIS_PORT" resp
    else
      failed=1
      printf 'fanout.sh: redis-server did not start: %s\n' "$(tail -n 1 "$work/redis.log")" >&2
    fi
    stop_server
  fi
fi
done

exit "$failed"  # the EXIT trap prints the tables

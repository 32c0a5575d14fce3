#!/usr/bin/env bash
# shellcheck disable=SC2317  # print_measured and print_table run from the EXIT trap
# Runs framed-bench against framed (each backend) and, when installed, Redis,
# and prints one markdown table. Everything it starts is stopped on exit.
#
#   bench/run.sh                      # from the top of the checkout, after `ninja -C build`
#
# Environment (all optional):
#   FRAMED_BIN       daemon binary                      (build/daemon/framed)
#   BENCH_BIN        client binary                      (build/bench/framed-bench)
#   FRAMED_PORT      daemon TCP port on 127.0.0.1       (9000; another port gets a temporary config)
#   REDIS_PORT       redis-server port on 127.0.0.1     (16379: clear of a system Redis on 6379)
#   BACKENDS         daemon backends to measure         ("epoll io_uring")
#   REACTORS         daemon.reactors values to measure  ("1"; e.g. "1 2")
#   DURATION, WARMUP seconds per point                  (5, 1)
#   THREADS          client threads                     (1)
#   SKIP_REDIS=1     do not measure Redis
set -euo pipefail
# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FRAMED_BIN=${FRAMED_BIN:-build/daemon/framed}
BENCH_BIN=${BENCH_BIN:-build/bench/framed-bench}
FRAMED_PORT=${FRAMED_PORT:-9000}
REDIS_PORT=${REDIS_PORT:-16379}
BACKENDS=${BACKENDS:-epoll io_uring}
REACTORS=${REACTORS:-1}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-1}
ECHO_SIZE=1024
POINTS="1x1 50x1 50x16"  # connections x pipeline

die() { printf 'run.sh: %s\n' "$*" >&2; exit 2; }

[ -x "$BENCH_BIN" ] || die "$BENCH_BIN not found: build it with 'ninja -C build'"

work=$(mktemp -d "${TMPDIR:-/tmp}/framed-bench.XXXXXX")
server_pid=""

rows=()
failed=0

print_table() {
  printf '\nnproc: %s; client: %s thread(s), %ss measured after %ss warmup per point\n\n' \
    "$(nproc)" "$THREADS" "$DURATION" "$WARMUP"
  printf '| backend | command | conns x pipeline | req/s | p50 µs | p99 µs |\n'
  printf '|---|---|---|---:|---:|---:|\n'
  [ ${#rows[@]} -eq 0 ] || printf '%s\n' "${rows[@]}"
}
print_measured() { [ ${#rows[@]} -eq 0 ] || print_table; }
stop_and_print_on_exit

# measure SERVER_LABEL PORT PROTOCOL
measure() {
  local label=$1 port=$2 protocol=$3 command point conns pipeline args out
  for command in ping echo; do
    for point in $POINTS; do
      conns=${point%x*}
      pipeline=${point#*x}
      args=(--port "$port" --protocol "$protocol" --command "$command" --connections "$conns"
            --pipeline "$pipeline" --duration "$DURATION" --warmup "$WARMUP" --threads "$THREADS" --json)
      [ "$command" = echo ] && args+=(--size "$ECHO_SIZE")
      local what=$command
      [ "$command" = echo ] && what="echo 1 KiB"
      if out=$("$BENCH_BIN" "${args[@]}" 2>"$work/bench.err"); then
        rows+=("| $label | $what | $conns x $pipeline | $(json_field requests_per_s "$out") | $(json_field p50 "$out") | $(json_field p99 "$out") |")
      else
        failed=1
        rows+=("| $label | $what | $conns x $pipeline | failed: $(head -n 1 "$work/bench.err") | | |")
      fi
    done
  done
}

port_in_use "$FRAMED_PORT" && die "something already listens on 127.0.0.1:$FRAMED_PORT; set FRAMED_PORT"
if [ -x "$FRAMED_BIN" ]; then
  for reactors in $REACTORS; do
    config_args=()
    label_suffix=""
    if [ "$FRAMED_PORT" != 9000 ] || [ "$reactors" != 1 ]; then
      printf '[daemon]\nreactors = %s\n\n[[listener]]\nkind = "tcp"\naddress = "127.0.0.1:%s"\n' \
        "$reactors" "$FRAMED_PORT" >"$work/framed.toml"
      config_args=(--config "$work/framed.toml")
    fi
    [ "$reactors" = 1 ] || label_suffix=", $reactors reactors"
    for backend in $BACKENDS; do
      FRAMED_BACKEND=$backend "$FRAMED_BIN" "${config_args[@]}" >"$work/framed-$backend.log" 2>&1 &
      server_pid=$!
      if wait_for_port "$FRAMED_PORT"; then
        measure "framed $backend$label_suffix" "$FRAMED_PORT" json
      else
        # io_uring may be unavailable (kernel built without it, seccomp): that
        # is the machine, not a failure; any other backend must start.
        [ "$backend" = io_uring ] || failed=1
        rows+=("| framed $backend$label_suffix | - | - | did not start: $(tail -n 1 "$work/framed-$backend.log") | | |")
      fi
      stop_server
    done
  done
else
  printf 'run.sh: %s not found, framed not measured\n' "$FRAMED_BIN" >&2
fi

# Redis, for comparison: the same client speaking RESP.
measure_redis() {
  if port_in_use "$REDIS_PORT"; then
    failed=1
    rows+=("| redis | - | - | not measured: 127.0.0.1:$REDIS_PORT is taken (set REDIS_PORT) | | |")
    return
  fi
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
  server_pid=$!
  if wait_for_port "$REDIS_PORT"; then
    measure "redis $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')" "$REDIS_PORT" resp
  else
    failed=1
    rows+=("| redis | - | - | did not start: $(tail -n 1 "$work/redis.log") | | |")
  fi
  stop_server
}
if [ "${SKIP_REDIS:-0}" != 1 ] && command -v redis-server >/dev/null; then
  measure_redis
fi

exit "$failed"  # the EXIT trap prints the table

#!/usr/bin/env bash
# shellcheck disable=SC2317  # print_measured and print_table run from the EXIT trap
# TLS against plaintext, framed against Redis, in one run: ping and 1 KiB
# echo at 50 connections x 16 pipelined, and handshakes per second (each
# connection connects, completes the handshake, sends one ping, reads the
# reply, closes, again), on each framed backend and on redis-server with
# --tls-port. Prints one markdown table; everything it starts is stopped on
# exit.
#
#   bench/tls.sh                      # from the top of the checkout, after `ninja -C build`
#   DURATION=5 bench/tls.sh           # longer points
#
# A throwaway CA and a server certificate (ECDSA P-256, for 127.0.0.1) are
# made with the openssl command in a temporary directory; framed-bench
# verifies the servers against that CA. Every server listens on 127.0.0.1
# only, on free ports. kTLS is probed (TCP_ULP "tls" on a loopback socket)
# and reported, not used: neither framed nor this client has a kTLS path.
#
# Environment (all optional):
#   FRAMED_BIN       daemon binary                      (build/daemon/framed)
#   BENCH_BIN        client binary                      (build/bench/framed-bench)
#   BACKENDS         daemon backends to measure         ("epoll io_uring")
#   DURATION, WARMUP seconds per point                  (3, 1)
#   THREADS          client threads                     (1)
#   SKIP_REDIS=1     do not measure Redis (also skipped when redis-server is not installed:
#                    `scripts/install-deps.sh --bench` installs Debian's, built with TLS)
set -euo pipefail
# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FRAMED_BIN=${FRAMED_BIN:-build/daemon/framed}
BENCH_BIN=${BENCH_BIN:-build/bench/framed-bench}
BACKENDS=${BACKENDS:-epoll io_uring}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-1}
ECHO_SIZE=1024
CONNECTIONS=50
PIPELINE=16

die() { printf 'tls.sh: %s\n' "$*" >&2; exit 2; }

[ -x "$BENCH_BIN" ] || die "$BENCH_BIN not found: build it with 'ninja -C build bench/framed-bench'"
[ -x "$FRAMED_BIN" ] || die "$FRAMED_BIN not found: build it with 'ninja -C build daemon/framed'"
command -v openssl >/dev/null || die "the openssl command is needed for the throwaway certificates"
command -v python3 >/dev/null || die "python3 is needed to pick free ports and probe kTLS"

work=$(mktemp -d "${TMPDIR:-/tmp}/framed-tls-bench.XXXXXX")
server_pid=""
rows=()
failed=0
declare -A plaintext_rate=()  # "server|what" -> rate, for the TLS rows' ratio

# A port nothing listens on now (the kernel's pick); the server binds it a
# moment later, and wait_for_port fails the point if someone else did.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# "absent (...)" or "available": can a loopback TCP socket take the tls ULP?
probe_ktls() {
  python3 - <<'EOF'
import errno, socket
TCP_ULP = 31  # linux/tcp.h
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
client = socket.create_connection(listener.getsockname())
try:
    client.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
    print("available in this kernel (not used: framed's TLS is userspace OpenSSL)")
except OSError as e:
    print("absent (setsockopt TCP_ULP \"tls\": %s)" % errno.errorcode.get(e.errno, e.errno))
EOF
}

make_certificates() {
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  (
    cd "$work"
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj /CN=framed-bench-ca \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
    openssl req "${ec[@]}" -keyout server.key -out server.csr -subj /CN=framed-bench-server
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
      -extfile server.ext
  ) >"$work/openssl.log" 2>&1 || die "openssl could not make the certificates: $(tail -n 1 "$work/openssl.log")"
}

print_table() {
  printf '\nnproc: %s (%s); kernel %s; %s; kTLS: %s\n' "$(nproc)" \
    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" "$(uname -r)" \
    "$(openssl version | cut -d' ' -f1-2)" "$ktls"
  printf 'client: framed-bench, %s thread(s), %ss measured after %ss warmup per point; TLS 1.3, ECDSA P-256 certificate, full handshakes (no resumption)\n\n' \
    "$THREADS" "$DURATION" "$WARMUP"
  printf '| server | transport | what | conns x pipeline | per second | vs plaintext | p50 µs | p99 µs |\n'
  printf '|---|---|---|---|---:|---:|---:|---:|\n'
  [ ${#rows[@]} -eq 0 ] || printf '%s\n' "${rows[@]}"
  printf '\nper second: requests, or for "handshake" whole cycles (connect, TLS handshake, one ping, close);\n'
  printf 'the plaintext "handshake" row is the same cycle with only the TCP connect. Latency of a cycle: socket() to the reply.\n'
}
print_measured() { [ ${#rows[@]} -eq 0 ] || print_table; }
stop_and_print_on_exit

# point SERVER TRANSPORT PROTOCOL PORT WHAT: one framed-bench run, one row.
# WHAT: ping | echo | handshake. TRANSPORT: plaintext | TLS.
point() {
  local server=$1 transport=$2 protocol=$3 port=$4 what=$5 label out rate ratio="" shape
  local args=(--port "$port" --protocol "$protocol" --duration "$DURATION" --warmup "$WARMUP"
              --threads "$THREADS" --connections "$CONNECTIONS" --json)
  [ "$transport" = TLS ] && args+=(--tls --tls-ca "$work/ca.pem")
  case $what in
    ping) args+=(--command ping --pipeline "$PIPELINE"); label=ping; shape="$CONNECTIONS x $PIPELINE" ;;
    echo) args+=(--command echo --size "$ECHO_SIZE" --pipeline "$PIPELINE"); label="echo 1 KiB"; shape="$CONNECTIONS x $PIPELINE" ;;
    handshake) args+=(--mode handshake --command ping); label="handshake + ping"; shape="$CONNECTIONS x 1" ;;
  esac
  if ! out=$("$BENCH_BIN" "${args[@]}" 2>"$work/bench.err"); then
    failed=1
    rows+=("| $server | $transport | $label | $shape | failed: $(head -n 1 "$work/bench.err") | | | |")
    return
  fi
  rate=$(json_field requests_per_s "$out")
  if [ "$transport" = plaintext ]; then
    plaintext_rate["$server|$what"]=$rate
  elif [ -n "${plaintext_rate["$server|$what"]:-}" ]; then
    ratio=$(awk -v a="$rate" -v b="${plaintext_rate["$server|$what"]}" 'BEGIN { if (b > 0) printf "%.2f", a / b }')
  fi
  rows+=("| $server | $transport | $label | $shape | $(printf '%.0f' "$rate") | $ratio | $(json_field p50 "$out") | $(json_field p99 "$out") |")
}

# measure SERVER PROTOCOL PLAIN_PORT TLS_PORT: every point against one server.
measure() {
  local server=$1 protocol=$2 plain_port=$3 tls_port=$4 what
  for what in ping echo handshake; do
    point "$server" plaintext "$protocol" "$plain_port" "$what"
    point "$server" TLS "$protocol" "$tls_port" "$what"
  done
}

ktls=$(probe_ktls)
printf 'tls.sh: kTLS %s\n' "$ktls" >&2
make_certificates

for backend in $BACKENDS; do
  plain_port=$(free_port)
  tls_port=$(free_port)
  cat >"$work/framed.toml" <<EOF
[[listener]]
kind = "tcp"
name = "plain"
address = "127.0.0.1:$plain_port"

[[listener]]
kind = "tcp"
name = "tls"
address = "127.0.0.1:$tls_port"
tls_cert = "$work/server.pem"
tls_key = "$work/server.key"
EOF
  FRAMED_BACKEND=$backend "$FRAMED_BIN" --config "$work/framed.toml" >"$work/framed-$backend.log" 2>&1 &
  server_pid=$!
  if wait_for_port "$plain_port" && wait_for_port "$tls_port"; then
    measure "framed $backend" json "$plain_port" "$tls_port"
  else
    # io_uring may be unavailable (kernel built without it, seccomp): that
    # is the machine, not a failure; any other backend must start.
    [ "$backend" = io_uring ] || failed=1
    rows+=("| framed $backend | - | - | - | did not start: $(tail -n 1 "$work/framed-$backend.log") | | | |")
  fi
  stop_server
done

# Redis, for comparison: the same client speaking RESP, the same certificate.
# One instance in the clear, then one with TLS only (--port 0), each of our
# own on a free port with persistence off; a system Redis is left alone.
start_redis() {  # LOG, redis-server arguments...
  local log=$1
  shift
  redis-server --bind 127.0.0.1 --save '' --appendonly no "$@" >"$log" 2>&1 &
  server_pid=$!
}
# redis_points VERSION TRANSPORT PORT LOG [REDIS ARGS...]: one Redis, its three rows.
redis_points() {
  local version=$1 transport=$2 port=$3 log=$4 what
  shift 4
  start_redis "$log" "$@"
  if wait_for_port "$port"; then
    for what in ping echo handshake; do point "$version" "$transport" resp "$port" "$what"; done
  else
    failed=1
    rows+=("| $version | $transport | - | - | did not start: $(tail -n 1 "$log") | | | |")
  fi
  stop_server
}
measure_redis() {
  local version plain_port tls_port
  version="redis $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')"
  plain_port=$(free_port)
  redis_points "$version" plaintext "$plain_port" "$work/redis-plain.log" --port "$plain_port"
  tls_port=$(free_port)
  redis_points "$version" TLS "$tls_port" "$work/redis-tls.log" --port 0 --tls-port "$tls_port" \
    --tls-cert-file "$work/server.pem" --tls-key-file "$work/server.key" --tls-ca-cert-file "$work/ca.pem" \
    --tls-auth-clients no
}
if [ "${SKIP_REDIS:-0}" != 1 ]; then
  if command -v redis-server >/dev/null; then
    measure_redis
  else
    printf 'tls.sh: redis-server not installed (scripts/install-deps.sh --bench), Redis not measured\n' >&2
  fi
fi

exit "$failed"  # the EXIT trap prints the table

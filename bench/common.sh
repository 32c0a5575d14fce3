# shellcheck shell=bash
# Helpers that bench/run.sh, bench/fanout.sh, bench/tls.sh and bench/fleet.sh share,
# sourced by each. The sourcing script sets server_pid when it starts a
# server, and work to its temporary directory.

# Stops the server started as $server_pid, if any: SIGTERM (framed finishes
# in-flight requests on it), up to 5 s, then SIGKILL.
stop_server() {
  [ -n "$server_pid" ] || return 0
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# port_in_use PORT [HOST]: something accepts on HOST (127.0.0.1) port PORT.
port_in_use() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# wait_for_port PORT [HOST]: waits until the server started as $server_pid
# accepts on HOST (127.0.0.1) port PORT.
wait_for_port() {
  for _ in $(seq 100); do  # 10 s: start-up is milliseconds; this is for slow CI boxes
    port_in_use "$1" "${2:-127.0.0.1}" && return 0
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# json_field NAME JSON: the number after "NAME": in a client's --json line.
json_field() { sed -n "s/.*\"$1\":\([-0-9.]*\).*/\1/p" <<<"$2"; }

# On exit, Ctrl-C included: the server is stopped, $work removed, and what
# was measured so far printed (print_measured, the sourcing script's).
# shellcheck disable=SC2154  # work: the sourcing script's
finish() {
  stop_server
  rm -rf "$work"
  print_measured
}
stop_and_print_on_exit() {
  trap finish EXIT
  trap 'exit 130' INT TERM  # runs the EXIT trap too
}

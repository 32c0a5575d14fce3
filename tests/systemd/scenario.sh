#!/usr/bin/env bash
# The README's "Run it under systemd" section, step by step, on a machine
# whose PID 1 is systemd, as root, from a clone of this repository: install,
# start, talk, reload (a new listener, a new command, a broken file), read
# the journal by priority, stop (exit status and drain), socket activation.
# Each step says what it checks; the first that fails stops the run with
# its output. Run by tests/systemd/run-in-container.sh inside a throw-away
# container, or by hand on a test machine (it installs under /usr/local and
# enables units: not for a machine you care about).
set -euo pipefail
cd "$(dirname "$0")/../.."
step() { echo; echo "=== $*"; }
udp() { printf '%s' "$1" | socat -t 3 - UDP:127.0.0.1:9000; }
fail() { echo "FAILED: $*" >&2; journalctl -u framed --no-pager -n 50 >&2 || true; exit 1; }

step "install (scripts/install.sh)"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends socat procps >/dev/null
time ./scripts/install.sh
test -x /usr/local/sbin/framed || fail "no /usr/local/sbin/framed"
test -f /etc/framed/framed.toml || fail "no /etc/framed/framed.toml"

step "systemctl enable --now framed"
systemctl enable --now framed
systemctl is-active framed
[ "$(udp ping)" = pong ] || fail "no pong over UDP"
status=$(systemctl status framed --no-pager || true)
echo "$status"
grep -q 'Status: "0 connection(s) open on 2 listener(s)' <<<"$status" || fail "no STATUS= line in systemctl status"
journalctl -u framed --no-pager -o cat | grep "starting: backend"

step "edit the config, systemctl reload framed: a new listener"
cp /etc/framed/framed.toml /tmp/framed.toml.orig
cat >> /etc/framed/framed.toml <<'TOML'

[[listener]]
name = "line"
kind = "tcp"
address = "127.0.0.1:9001"
framing = "line"

[commands.uptime]
argv = ["/usr/bin/uptime"]

# Escapes into a session of its own, as daemonizing programs do; prints its
# pid, its session id and the shell's pid.
[commands.escape]
argv = ["/bin/sh", "-c", "setsid /bin/sleep 300 </dev/null >/dev/null 2>&1 & sleep 0.5; echo $! $(cut -d' ' -f6 /proc/$!/stat) $$"]
TOML
systemctl reload framed
[ "$(printf 'ping\n' | socat -t 3 - TCP:127.0.0.1:9001)" = pong ] || fail "the new listener does not answer"
output=$(udp 'exec uptime')
echo "$output"
grep -q "load average" <<<"$output" || fail "exec under the sandbox"
journalctl -u framed --no-pager -o cat | grep "config generation 2 applied" || fail "no reload line"

step "exec containment: Delegate=yes gives each run a cgroup, and the escape dies with its run"
journalctl -u framed --no-pager -o cat | grep "exec containment: cgroup" || fail "not contained by cgroups under systemd"
read -r escaped session shell <<<"$(udp 'exec escape')"
echo "escaped pid $escaped, session $session, shell $shell"
[ "$escaped" = "$session" ] || fail "the escape did not get a session of its own"
sleep 0.5
if [ -e "/proc/$escaped" ]; then fail "the escaped process outlived its run"; fi
cgroup=/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$(systemctl show -p MainPID --value framed)/cgroup")
ls "$cgroup"
if ls -d "$cgroup"/run-* 2>/dev/null; then fail "a run cgroup was left behind"; fi
[ "$(udp stats | grep -o '"exec_containment":"[a-z_]*"')" = '"exec_containment":"cgroup"' ] || fail "stats"

step "a broken edit: systemctl reload fails, the daemon keeps its config"
echo 'this is = not toml' >> /etc/framed/framed.toml
if systemctl reload framed; then fail "reload of a broken file succeeded"; fi
systemctl is-active framed
[ "$(udp ping)" = pong ] || fail "not serving after a rejected reload"
# The same file by SIGHUP alone (no check first): rejected by the daemon.
systemctl kill -s HUP framed
sleep 1
errors=$(journalctl -u framed --no-pager -p err -o cat)
echo "$errors"
grep -q "reload rejected" <<<"$errors" || fail "journalctl -p err does not show the rejected reload"
if journalctl -u framed --no-pager -p warning -o cat | grep "listening on"; then
  fail "info lines pass a -p warning filter"
fi
cp /tmp/framed.toml.orig /etc/framed/framed.toml

step "systemctl stop framed: drained, exit 0"
systemctl stop framed
[ "$(systemctl show -p ExecMainStatus --value framed)" = 0 ] || fail "exit status not 0"
journalctl -u framed --no-pager -o cat | tail -3 | grep "stopped" || fail "no 'stopped' line"

step "socket activation: framed.socket starts framed on the first datagram"
systemctl start framed.socket
systemctl is-active framed && fail "framed runs before any client"
[ "$(udp ping)" = pong ] || fail "no pong through socket activation"
systemctl is-active framed
journalctl -u framed --no-pager -o cat | grep "from systemd" | tail -2
systemctl stop framed framed.socket

step "the units as systemd scores them"
systemd-analyze security --no-pager framed.service | tail -1
systemd-analyze verify --man=no /usr/local/lib/systemd/system/framed.service

echo; echo "scenario: all steps passed"

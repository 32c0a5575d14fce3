"""exec: configured commands only, no shell, bounded in time and output
(PROTOCOL.md section 4, CONFIG.md [commands.NAME], issue 4).

The daemons here are conftest's Daemon with [commands.NAME] tables appended
to the config it renders (ExecDaemon), so they run under whichever backend
FRAMED_BACKEND names, like every other integration test.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import Daemon, proc_status_kib, started_daemons, toml_value
from framed_client import assert_error, assert_ok, frame, parse_reply_stream

UID = os.getuid()
GID = os.getgid()


# --- daemons with commands ---------------------------------------------------

def render_commands(commands):
    lines = []
    for name, values in commands.items():
        lines.append("[commands.%s]" % name)
        for key, value in values.items():
            if isinstance(value, dict):
                inline = ", ".join("%s = %s" % (json.dumps(k), toml_value(v)) for k, v in value.items())
                lines.append("%s = { %s }" % (key, inline))
            else:
                lines.append("%s = %s" % (key, toml_value(value)))
        lines.append("")
    return "\n".join(lines)


class ExecDaemon(Daemon):
    """conftest's Daemon, with [commands.NAME] tables after its listeners."""

    def __init__(self, listeners, commands, **kwargs):
        super().__init__(listeners, **kwargs)
        with open(self.config_path, "a") as config:
            config.write("\n" + render_commands(commands))


@pytest.fixture
def exec_factory(request):
    """start(listeners, commands, ...) -> a started ExecDaemon."""
    yield from started_daemons(request, ExecDaemon)


# A command's cwd that exists when the config is checked and is removed
# afterwards: its runs fail in the child (chdir), which is `internal`.
VANISHING_DIR = tempfile.mkdtemp(prefix="framed-exec-cwd-")

# escape.sh FILE: a new session (setsid), its pid in FILE, then a sleep.
# The commands wait for that file before they go on: a command exiting
# before its escape has left the group would have it killed with the group.
# The file is named after the command's own shell ($$), so a run killed
# before it removed its file (a timeout, a killed daemon) cannot hand a
# later run a stale pid.
def make_escape_dir():
    directory = tempfile.mkdtemp(prefix="framed-exec-escape-")
    with open(os.path.join(directory, "escape.sh"), "w") as script:
        script.write('echo $$ > "$1.new"\nmv "$1.new" "$1"\nexec /bin/sleep 60\n')
    return directory


ESCAPE_DIR = make_escape_dir()
ESCAPE = 'setsid /bin/sh "$0/escape.sh" "$0/pid.$$"'  # $0: ESCAPE_DIR, the argv item after the script
AWAIT_ESCAPE = 'until [ -s "$0/pid.$$" ]; do sleep 0.01; done; cat "$0/pid.$$"; rm "$0/pid.$$"'

ARGS_SCRIPT = 'for a in "$@"; do printf "[%s]" "$a"; done'

COMMANDS = {
    "argv": {"argv": ["/usr/bin/printf", "%s\n"], "allow_args": True},
    "shargs": {"argv": ["/bin/sh", "-c", ARGS_SCRIPT, "sh"], "allow_args": True},
    "true": {"argv": ["/bin/true"]},
    "cat": {"argv": ["/bin/cat"], "max_output": "4MiB"},
    "mixed": {"argv": ["/bin/sh", "-c", "echo out; echo err >&2; exit 7"]},
    "killself": {"argv": ["/bin/sh", "-c", "kill -KILL $$"]},
    "sleep": {"argv": ["/bin/sleep", "30"], "timeout": "1s"},
    "sleeparg": {"argv": ["/bin/sleep"], "allow_args": True, "timeout": "20s"},
    "group": {"argv": ["/bin/sh", "-c", "sleep 30 & echo $$ $!; sleep 30"], "timeout": "1s"},
    # Escapes from the process group into a new session: plain, by a double
    # fork keeping the output pipe open, and with the command timing out.
    "escape": {"argv": ["/bin/sh", "-c", ESCAPE + " </dev/null >/dev/null 2>&1 & " + AWAIT_ESCAPE, ESCAPE_DIR]},
    "escapeheld": {"argv": ["/bin/sh", "-c", "(" + ESCAPE + " &); " + AWAIT_ESCAPE + "; exit 0", ESCAPE_DIR],
                   "timeout": "20s"},
    "escapetimeout": {"argv": ["/bin/sh", "-c", ESCAPE + " </dev/null >/dev/null 2>&1 & " + AWAIT_ESCAPE + "; sleep 30",
                               ESCAPE_DIR], "timeout": "1s"},
    "yes": {"argv": ["/usr/bin/yes"], "max_output": "1MiB", "timeout": "20s"},
    "yeserr": {"argv": ["/bin/sh", "-c", "echo fine; yes err >&2"], "max_output": "256KiB"},
    "pipe": {"argv": ["/bin/sh", "-c", "yes | head -n 1", "sh"], "timeout": "5s"},
    "fds": {"argv": ["/bin/ls", "-l", "/proc/self/fd"]},
    "shfds": {"argv": ["/bin/sh", "-c", "ls /proc/$$/fd"]},
    "env": {"argv": ["/usr/bin/env"]},
    "envset": {"argv": ["/usr/bin/env"], "env": {"LANG": "C.UTF-8", "GREETING": "hi there"}},
    "pwd": {"argv": ["/bin/pwd"], "cwd": "/tmp"},
    "limits": {"argv": ["/bin/sh", "-c", "ulimit -n; ulimit -t"], "rlimit_nofile": 32, "rlimit_cpu": "3s"},
    "vanished": {"argv": ["/bin/true"], "cwd": VANISHING_DIR},
    "solo": {"argv": ["/bin/sleep", "2"], "max_concurrent": 1},
    "mine": {"argv": ["/bin/echo", "mine"], "allow_uids": [UID]},
    "mygroup": {"argv": ["/bin/echo", "group"], "allow_gids": [GID]},
    "theirs": {"argv": ["/bin/echo", "theirs"], "allow_uids": [UID + 4242]},
}

LISTENERS = [
    {"kind": "tcp", "name": "tcp"},
    {"kind": "unix", "name": "unix", "mode": "0600"},
    {"kind": "tcp", "name": "line", "framing": "line"},
    {"kind": "udp", "name": "udp", "framing": "datagram", "payload": "text"},
    {"kind": "tcp", "name": "restricted", "allow_commands": ["true", "argv"]},
    {"kind": "tcp", "name": "noexec", "allow_commands": []},
]


# Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
# default), which would hide what the memory bound test measures; the
# option means nothing to a build without it.
SMALL_ASAN_QUARANTINE = {"ASAN_OPTIONS": ":".join(
    part for part in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=8") if part)}


@pytest.fixture(scope="module")
def exec_daemon():
    daemon = ExecDaemon(LISTENERS, COMMANDS, daemon={"workers": 4}, env=SMALL_ASAN_QUARANTINE)
    try:
        daemon.start()
        shutil.rmtree(VANISHING_DIR, ignore_errors=True)
        yield daemon
        # After all that, a clean exit: no sanitizer report, no leak.
        status = daemon.stop()
        stderr = daemon.stderr_text()
        assert status == 0, stderr
        assert "Sanitizer" not in stderr and "runtime error" not in stderr, stderr
    finally:
        daemon.cleanup()
        shutil.rmtree(ESCAPE_DIR, ignore_errors=True)


@pytest.fixture
def fx(exec_daemon):
    """The shared exec daemon; after each test it must still answer ping."""
    yield exec_daemon
    exec_daemon.ping("tcp")


def run(daemon, name, args=None, body=b"", listener="tcp", timeout=10, **extra):
    header = {"cmd": "exec", "id": "x", "name": name}
    if args is not None:
        header["args"] = args
    header.update(extra)
    with daemon.connect(listener, timeout=timeout) as client:
        return client.request(header, body)


def split_output(header, body):
    stdout_size = header["stdout_size"]
    assert stdout_size + header["stderr_size"] == len(body), header
    return body[:stdout_size], body[stdout_size:]


def group_members(pgid):
    """Processes (not zombies) whose process group is pgid, after giving the
    ones SIGKILL has been sent to a moment to die (dying is asynchronous)."""
    deadline = time.monotonic() + 1.0
    while True:
        members = group_members_now(pgid)
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.01)


def group_members_now(pgid):
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def running(pid):
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


# --- what the reply says -------------------------------------------------------

def test_reply_fields_and_body(fx):
    header, body = run(fx, "mixed")
    assert_ok(header)
    assert header["exit_code"] == 7 and header["signal"] == 0
    assert header["stdout_size"] == 4 and header["stderr_size"] == 4
    assert header["truncated"] is False
    assert header.get("id") == "x"
    assert body == b"out\nerr\n"  # stdout, then stderr


def test_signal_death_is_128_plus_n(fx):
    header, _ = run(fx, "killself")
    assert_ok(header)  # it ran: ok whatever its exit status
    assert header["signal"] == signal.SIGKILL
    assert header["exit_code"] == 128 + signal.SIGKILL


def test_body_is_stdin(fx):
    data = os.urandom(300 * 1024)
    header, body = run(fx, "cat", body=data)
    assert_ok(header)
    assert header["exit_code"] == 0
    assert body == data


# --- injection never reaches a shell -------------------------------------------

def test_injection_attempts_arrive_literally(fx, tmp_path):
    marker = str(tmp_path / "pwned")
    payloads = [
        ";", "; touch %s" % marker, "&&", "&& touch %s" % marker, "|| touch %s" % marker,
        "$(touch %s)" % marker, "`touch %s`" % marker, "| touch %s" % marker, "> %s" % marker,
        "line1\nline2", "\ntouch %s\n" % marker, "*", "/*", "-n", "--help", "-rf", "$HOME", "${PATH}",
        "'", '"', "\\", "a b", "", "\t", "%s%s%n", "ünïcødé",
    ]
    header, body = run(fx, "argv", payloads)
    assert_ok(header)
    assert body == "".join(p + "\n" for p in payloads).encode()

    # Even a configured shell gets them as "$@", never as script text.
    header, body = run(fx, "shargs", payloads)
    assert_ok(header)
    assert body == "".join("[%s]" % p for p in payloads).encode()
    assert not os.path.exists(marker), "an injection payload created a file"


def test_injection_in_simple_mode(fx, tmp_path):
    marker = str(tmp_path / "pwned")
    with socket.create_connection(fx.address("line")[1], timeout=5) as sock:
        line = "exec argv ;touch${IFS}%s $(touch${IFS}%s) `id` * -n &&" % (marker, marker)
        sock.sendall(line.encode() + b"\n")
        reply = sock.makefile("rb").readline()
    # Line framing escapes the newlines of the output.
    words = line.split(" ")[2:]
    assert reply == ("\\n".join(words) + "\\n\n").encode()
    assert not os.path.exists(marker)


# --- who may run what ----------------------------------------------------------

def test_unconfigured_name_is_forbidden(fx):
    for name in ("nope", "../../bin/sh", "/bin/sh", "argv ; id", ""):
        header, body = run(fx, name)
        assert_error(header, "forbidden")
        assert body == b""


def test_args_without_allow_args_are_forbidden(fx):
    header, _ = run(fx, "true", ["--version"])
    assert_error(header, "forbidden")
    # An empty args array is no args at all.
    header, _ = run(fx, "true", [])
    assert_ok(header)


def test_bad_requests(fx):
    with fx.connect("tcp") as client:
        header, _ = client.request({"cmd": "exec", "id": 1})
        assert_error(header, "bad_request")
        header, _ = client.request({"cmd": "exec", "id": 2, "name": 5})
        assert_error(header, "bad_request")
        header, _ = client.request({"cmd": "exec", "id": 3, "name": "argv", "args": ["a\u0000b"]})
        assert_error(header, "bad_request")
        assert header.get("id") == 3


def test_listener_allow_commands(fx):
    header, _ = run(fx, "true", listener="restricted")
    assert_ok(header)
    header, _ = run(fx, "mixed", listener="restricted")
    assert_error(header, "forbidden")
    header, _ = run(fx, "true", listener="noexec")
    assert_error(header, "forbidden")


def test_peer_uid_and_gid(fx):
    header, body = run(fx, "mine", listener="unix")
    assert_ok(header)
    assert body == b"mine\n"
    header, body = run(fx, "mygroup", listener="unix")
    assert_ok(header)
    # Not this uid: refused.
    header, _ = run(fx, "theirs", listener="unix")
    assert_error(header, "forbidden")
    # A TCP peer has no uid to check: refused.
    header, _ = run(fx, "mine", listener="tcp")
    assert_error(header, "forbidden")


# --- the child's world ---------------------------------------------------------

def test_child_has_only_its_three_fds(fx):
    header, body = run(fx, "fds")
    assert_ok(header)
    lines = [l for l in body.decode().splitlines() if "->" in l]
    fds = {l.split("->")[0].split()[-1]: l.split("->")[1].strip() for l in lines}
    # ls itself holds fd 3: the directory it is listing.
    assert set(fds) == {"0", "1", "2", "3"}, body.decode()
    assert all(fds[fd].startswith("pipe:") for fd in ("0", "1", "2")), fds

    header, body = run(fx, "shfds")
    assert_ok(header)
    assert set(body.decode().split()) <= {"0", "1", "2", "3"}, body.decode()


def test_yes_pipe_head_finishes(fx):
    started = time.monotonic()
    header, body = run(fx, "pipe")
    assert_ok(header)
    assert header["exit_code"] == 0
    assert body == b"y\n"
    assert time.monotonic() - started < 3


def test_environment_is_only_the_configured_one(fx):
    header, body = run(fx, "env")
    assert body == b"PATH=/usr/bin:/bin\n"
    header, body = run(fx, "envset")
    assert sorted(body.decode().splitlines()) == ["GREETING=hi there", "LANG=C.UTF-8"]


def test_cwd_and_rlimits(fx):
    _, body = run(fx, "pwd")
    assert body == b"/tmp\n"
    _, body = run(fx, "limits")
    assert body == b"32\n3\n"


def test_spawn_failure_is_internal(fx):
    header, _ = run(fx, "vanished")
    assert_error(header, "internal")
    # The reason, with the server's paths, goes to the log, not to the client.
    assert VANISHING_DIR not in header["error"]["message"]
    assert "chdir %s: No such file or directory" % VANISHING_DIR in fx.stderr_text()


# --- time and output bounds ----------------------------------------------------

def test_timeout_kills_the_whole_group(fx):
    started = time.monotonic()
    header, body = run(fx, "group")
    took = time.monotonic() - started
    assert_error(header, "timeout")
    assert 1.0 <= took < 2.0, "timeout answered after %.2f s (timeout 1 s)" % took
    # The output captured so far comes with it.
    assert header["stdout_size"] == len(body) and body
    leader, background = (int(w) for w in body.split())
    assert group_members(leader) == []
    assert not running(background)
    # pgrep agrees, where procps is installed (a zombie waiting for init to
    # reap it runs nothing, and pgrep lists it too).
    if shutil.which("pgrep"):
        listed = subprocess.run(["pgrep", "-g", str(leader)], stdout=subprocess.PIPE).stdout.split()
        assert not [pid for pid in listed if running(int(pid))]


def gone(pid):
    """Not running, after giving a process SIGKILL has been sent to a moment
    to die."""
    deadline = time.monotonic() + 1.0
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not running(pid)


def test_what_escapes_the_group_ends_with_the_run(fx):
    stats = fx.stats("tcp")
    # "auto": a cgroup where this daemon has one to divide, else the subreaper.
    mode = stats["exec_containment"]
    assert mode in ("cgroup", "subreaper")
    killed_before = stats["exec_orphans_killed"]

    header, body = run(fx, "escape")
    assert_ok(header)
    assert header["exit_code"] == 0
    assert gone(int(body))

    # The escaped sleep holds the output pipe: without containment the run
    # would last until its 20 s timeout, waiting for that pipe's end.
    started = time.monotonic()
    header, body = run(fx, "escapeheld", timeout=30)
    took = time.monotonic() - started
    assert_ok(header)
    assert header["exit_code"] == 0 and took < 10, "answered after %.2f s" % took
    assert gone(int(body))

    header, body = run(fx, "escapetimeout")
    assert_error(header, "timeout")
    assert gone(int(body))

    if mode == "subreaper":  # a cgroup kills them whole, with nothing to count
        assert fx.stats("tcp")["exec_orphans_killed"] >= killed_before + 3


def test_plain_timeout(fx):
    started = time.monotonic()
    header, body = run(fx, "sleep")
    assert_error(header, "timeout")
    assert time.monotonic() - started < 2.0
    assert header["signal"] == signal.SIGTERM and body == b""


def test_output_is_capped_and_memory_bounded(fx):
    rss_before = proc_status_kib(fx.pid, "VmRSS")
    header, body = run(fx, "yes", timeout=20)
    assert_ok(header)
    assert header["truncated"] is True and header["stdout_truncated"] is True
    assert header["stdout_size"] == 1 << 20 and len(body) == 1 << 20
    assert body[:4] == b"y\ny\n"

    # stdout and stderr are capped apart.
    header, body = run(fx, "yeserr")
    assert_ok(header)
    assert header["truncated"] and header["stderr_truncated"] and not header["stdout_truncated"]
    out, err = split_output(header, body)
    assert out == b"fine\n"
    assert len(err) == 256 * 1024 and set(err.split()) == {b"err"}

    # Sixteen at once through four workers: what the daemon holds is bounded
    # by workers x 2 x max_output, not by what `yes` can write.
    results = []

    def one():
        results.append(run(fx, "yes", timeout=30)[0])

    threads = [threading.Thread(target=one) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 16 and all(r["truncated"] for r in results)
    grown_mib = (proc_status_kib(fx.pid, "VmRSS") - rss_before) / 1024
    assert grown_mib < 64, "daemon RSS grew by %.0f MiB" % grown_mib


# --- concurrency and order -----------------------------------------------------

def test_hundred_execs_across_ten_connections_in_order(fx):
    errors = []

    def connection(number):
        try:
            with fx.connect("tcp", timeout=30) as client:
                requests = b"".join(
                    frame({"cmd": "exec", "id": i, "name": "argv", "args": ["c%d-r%d" % (number, i)]})
                    for i in range(10))
                client.send(requests)
                for i in range(10):
                    header, body = client.read_reply()
                    assert_ok(header)
                    assert header["id"] == i, "reply %d came as %r" % (i, header.get("id"))
                    assert body == b"c%d-r%d\n" % (number, i)
        except BaseException as error:  # reported from the main thread
            errors.append(error)

    threads = [threading.Thread(target=connection, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_pipelined_slow_exec_and_fast_ping_keep_order(fx):
    with fx.connect("tcp", timeout=10) as client:
        started = time.monotonic()
        client.send(frame({"cmd": "exec", "id": 1, "name": "sleeparg", "args": ["0.5"]})
                    + frame({"cmd": "ping", "id": 2})
                    + frame({"cmd": "exec", "id": 3, "name": "argv", "args": ["fast"]})
                    + frame({"cmd": "ping", "id": 4})
                    + frame({"cmd": "exec", "id": 5, "name": "nope"}))
        replies = [client.read_reply() for _ in range(5)]
        assert time.monotonic() - started >= 0.5
    assert [h["id"] for h, _ in replies] == [1, 2, 3, 4, 5]
    assert replies[0][0]["exit_code"] == 0
    assert replies[1][0]["pong"] is True
    assert replies[2][1] == b"fast\n"
    assert_error(replies[4][0], "forbidden")


def test_max_concurrent(fx):
    with fx.connect("tcp", timeout=10) as first:
        first.send_request({"cmd": "exec", "id": 1, "name": "solo"})
        time.sleep(0.3)
        started = time.monotonic()
        header, _ = run(fx, "solo")
        assert_error(header, "too_busy")
        assert time.monotonic() - started < 0.5
        header, _ = first.read_reply()
        assert_ok(header)
    header, _ = run(fx, "solo", timeout=10)  # free again
    assert_ok(header)


def test_simple_mode_and_datagrams(fx):
    with socket.create_connection(fx.address("line")[1], timeout=5) as sock:
        sock.sendall(b"exec argv hello world\nexec nope\nexec\n")
        reader = sock.makefile("rb")
        assert reader.readline() == b"hello\\nworld\\n\n"
        assert reader.readline().startswith(b"ERR forbidden ")
        assert reader.readline().startswith(b"ERR bad_request ")
    with fx.datagram("udp") as client:
        assert client.request(b"exec argv over udp") == b"over\nudp\n"


def test_stats_per_command(fx):
    for _ in range(3):
        assert_ok(run(fx, "true")[0])
    run(fx, "true", ["refused"])
    stats = fx.stats("tcp")
    assert stats["workers"] == 4
    true = stats["exec"]["true"]
    assert true["runs"] >= 3 and true["refused"] >= 1 and true["active"] == 0
    assert 0 < true["latency_p50_us"] <= true["latency_p90_us"] <= true["latency_p99_us"] <= true["latency_max_us"]
    assert stats["exec"]["sleep"]["timeouts"] >= 0
    assert set(stats["exec"]) == set(COMMANDS)


# --- a small pool: the queue bound ----------------------------------------------

def test_full_queue_answers_too_busy_at_once(exec_factory):
    daemon = exec_factory([{"kind": "tcp", "name": "tcp"}],
                          {"nap": {"argv": ["/bin/sleep", "1"]}, "true": {"argv": ["/bin/true"]}},
                          daemon={"workers": 1, "max_queued_jobs": 2})
    clients = [daemon.connect("tcp", timeout=10) for _ in range(3)]
    try:
        for i, client in enumerate(clients):
            client.send_request({"cmd": "exec", "id": i, "name": "nap"})
        time.sleep(0.3)  # one running, two waiting
        started = time.monotonic()
        header, _ = run(daemon, "true")
        assert_error(header, "too_busy")
        assert time.monotonic() - started < 0.5
        daemon.ping("tcp")  # the reactor never waited
        for client in clients:
            assert_ok(client.read_reply()[0])
    finally:
        for client in clients:
            client.close()
    assert_ok(run(daemon, "true")[0])
    assert daemon.stats("tcp")["exec"]["true"]["too_busy"] == 1


# --- shutdown -------------------------------------------------------------------

def test_shutdown_waits_for_a_running_exec(exec_factory):
    daemon = exec_factory([{"kind": "tcp", "name": "tcp"}],
                          {"nap": {"argv": ["/bin/sleep", "0.5"]}},
                          daemon={"shutdown_timeout": "10s"})
    with daemon.connect("tcp", timeout=10) as client:
        client.send_request({"cmd": "exec", "id": 1, "name": "nap"})
        time.sleep(0.1)
        daemon.send_signal(signal.SIGTERM)
        header, _ = client.read_reply()
        assert_ok(header)
    assert daemon.wait(5) == 0


def test_shutdown_timeout_kills_what_is_left(exec_factory):
    daemon = exec_factory([{"kind": "tcp", "name": "tcp"}],
                          {"long": {"argv": ["/bin/sleep", "60"], "timeout": "120s"}},
                          daemon={"shutdown_timeout": "500ms"})
    with daemon.connect("tcp", timeout=10) as client:
        client.send_request({"cmd": "exec", "id": 1, "name": "long"})
        deadline = time.monotonic() + 5
        while not children_of(daemon.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        children = children_of(daemon.pid)
        assert children, "the command never started"
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(5) == 0
        assert time.monotonic() - started < 3
    deadline = time.monotonic() + 2
    while any(running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(running(pid) for pid in children), "a command outlived the daemon"
    assert re.search(r"killing 1 command", daemon.stderr_text()), daemon.stderr_text()


# --- who a command runs as ------------------------------------------------------

IDENTITY_COMMANDS = {
    "status": {"argv": ["/bin/grep", "-E", "^(NoNewPrivs|CapEff|CapPrm|Uid|Gid|Groups):", "/proc/self/status"]},
    "nobody": {"argv": ["/bin/grep", "-E", "^(NoNewPrivs|CapEff|CapPrm|Uid|Gid|Groups):", "/proc/self/status"],
               "user": "nobody"},
    "nobodyroot": {"argv": ["/bin/sh", "-c", "id -u; id -g; id -G"], "user": "nobody", "group": "root"},
    "nproc": {"argv": ["/bin/grep", "Max processes", "/proc/self/limits"], "rlimit_nproc": 7},
}


def status_fields(text):
    return {line.split(":", 1)[0]: line.split(":", 1)[1].split() for line in text.strip().splitlines()}


def test_every_command_runs_with_no_new_privs_and_its_process_limit(exec_factory):
    daemon = exec_factory([{"name": "tcp", "kind": "tcp"}], IDENTITY_COMMANDS)
    with daemon.connect("tcp") as client:
        header, body = client.request({"cmd": "exec", "name": "status"})
        assert_ok(header)
        assert status_fields(body.decode())["NoNewPrivs"] == ["1"]
        header, body = client.request({"cmd": "exec", "name": "nproc"})
        assert_ok(header)
        assert body.split()[2:4] == [b"7", b"7"], body  # soft and hard


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a command's user needs the daemon to run as root")
def test_a_command_runs_as_its_user_without_capabilities(exec_factory):
    import pwd
    nobody = pwd.getpwnam("nobody")
    daemon = exec_factory([{"name": "tcp", "kind": "tcp"}], IDENTITY_COMMANDS)
    with daemon.connect("tcp") as client:
        header, body = client.request({"cmd": "exec", "name": "nobody"})
        assert_ok(header)
        fields = status_fields(body.decode())
        # Real, effective, saved and filesystem ids all changed; the user's
        # primary group is the only group; not a capability left.
        assert fields["Uid"] == [str(nobody.pw_uid)] * 4, fields
        assert fields["Gid"] == [str(nobody.pw_gid)] * 4, fields
        assert fields["Groups"] == [str(nobody.pw_gid)], fields
        assert int(fields["CapEff"][0], 16) == 0 and int(fields["CapPrm"][0], 16) == 0, fields
        header, body = client.request({"cmd": "exec", "name": "nobodyroot"})
        assert_ok(header)
        assert body.decode().split() == [str(nobody.pw_uid), "0", "0"]
        # The daemon itself is still root: the next command without a user runs as it.
        header, body = client.request({"cmd": "exec", "name": "status"})
        assert status_fields(body.decode())["Uid"] == ["0"] * 4


def test_an_unknown_user_or_group_is_a_config_error(tmp_path):
    path = tmp_path / "framed.toml"
    path.write_text('[commands.x]\nargv = ["/bin/true"]\nuser = "no-such-user-here"\ngroup = "no-such-group-here"\n')
    run = subprocess.run([os.environ.get("FRAMED_BIN", "build/daemon/framed"), "--config", str(path), "--check-config"],
                         capture_output=True, text=True, timeout=10)
    assert run.returncode == 1, run
    assert 'commands.x.user: no user "no-such-user-here" on this system' in run.stderr, run
    assert 'commands.x.group: no group "no-such-group-here" on this system' in run.stderr, run

"""framectl, the command-line client: the real binary against the real daemon.

FRAMECTL_BIN   the client to test (default: build/framectl/framectl of this tree)

One daemon (module scope) serves json over TCP and Unix, simple mode over
line and length framing and UDP, a file root and a few exec commands; every
subcommand runs over both json transports. Exit statuses are framectl.1's:
0 ok, 1 error reply, 2 usage, 3 connection, N = the exec'd command's code.
"""

import hashlib
import json
import os
import pty
import select
import signal
import socket
import subprocess
import time

import pytest

from conftest import REPO, Daemon, free_port, toml_value

FRAMECTL_BIN = os.path.abspath(os.environ.get("FRAMECTL_BIN") or os.path.join(REPO, "build", "framectl", "framectl"))
MiB = 1 << 20
RUN_TIMEOUT = 20

LISTENERS = [
    {"name": "tcp", "kind": "tcp"},
    {"name": "unix", "kind": "unix", "mode": "0600"},
    {"name": "line", "kind": "tcp", "framing": "line"},
    {"name": "length", "kind": "tcp", "framing": "length"},
    {"name": "udp", "kind": "udp", "framing": "datagram", "payload": "text"},
]

COMMANDS = {
    "cat": {"argv": ["/bin/cat"]},
    "status": {"argv": ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]},
    "killed": {"argv": ["/bin/sh", "-c", "kill -TERM $$"]},
    "say": {"argv": ["/bin/echo"], "allow_args": True},
    "slow": {"argv": ["/bin/sh", "-c", "echo one; sleep 0.3; echo two"]},
}


class FramectlDaemon(Daemon):
    """conftest's Daemon with a file root and [commands.NAME] tables."""

    def __init__(self):
        super().__init__(LISTENERS, daemon={"workers": 2})
        self.root = os.path.join(self.dir, "root")
        os.mkdir(self.root)
        lines = ["", "[files]", "root = %s" % toml_value(self.root), "fsync = false", ""]
        for name, values in COMMANDS.items():
            lines.append("[commands.%s]" % name)
            lines.extend("%s = %s" % (k, toml_value(v)) for k, v in values.items())
            lines.append("")
        with open(self.config_path, "a") as config:
            config.write("\n".join(lines))

    def target(self, name):
        spec = self.listeners[name]
        if spec["kind"] == "unix":
            return ["--unix", spec["path"]]
        if spec["kind"] == "udp":
            return ["--udp", spec["address"]]
        framing = spec.get("framing", "json")
        return ["--tcp", spec["address"]] + ([] if framing == "json" else ["--framing", framing])


@pytest.fixture(scope="module")
def daemon():
    started = FramectlDaemon()
    try:
        started.start()
        yield started
    finally:
        started.cleanup()


@pytest.fixture(params=["tcp", "unix"])
def transport(request):
    return request.param


def framectl(*args, input=b"", env=None, timeout=RUN_TIMEOUT):
    full_env = dict(os.environ)
    full_env.pop("FRAMED_ADDRESS", None)
    full_env.update(env or {})
    return subprocess.run([FRAMECTL_BIN] + list(args), input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=full_env, timeout=timeout)


def ok(result):
    assert result.returncode == 0, (result.returncode, result.stderr.decode(errors="replace"))
    assert result.stderr == b"", result.stderr
    return result.stdout


def failed(result, status, code):
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    text = result.stderr.decode()
    assert text.startswith("framectl: %s: " % code), text
    assert text.endswith("\n") and text.count("\n") == 1, text
    return text


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_random(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            piece = os.urandom(min(left, 4 * MiB))
            f.write(piece)
            left -= len(piece)


# --- json framing, every subcommand -----------------------------------------

def test_ping_echo_upper(daemon, transport):
    t = daemon.target(transport)
    assert ok(framectl(*t, "ping")) == b"pong\n"
    assert ok(framectl(*t, "echo", "hello", "-n", "world")) == b"hello -n world\n"
    assert ok(framectl(*t, "upper", "hello,", "framed")) == b"HELLO, FRAMED\n"
    data = bytes(range(256)) * 4
    assert ok(framectl(*t, "echo", "-", input=data)) == data
    assert ok(framectl(*t, "upper", "-", input=b"abc\nxyz")) == b"ABC\nXYZ"


def test_exec_output_status_and_stdin(daemon, transport):
    t = daemon.target(transport)
    result = framectl(*t, "exec", "status")
    assert result.returncode == 3, result
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    assert framectl(*t, "exec", "killed").returncode == 128 + signal.SIGTERM
    data = os.urandom(100000)
    assert ok(framectl(*t, "exec", "cat", "-", input=data)) == data
    assert ok(framectl(*t, "exec", "say", "-n", "a", "b")) == b"a b"
    # Without "-" framectl's stdin is not sent: cat reads an empty stdin.
    assert ok(framectl(*t, "exec", "cat", input=b"ignored")) == b""


def test_exec_follow_prints_events(daemon, transport):
    t = daemon.target(transport)
    assert ok(framectl(*t, "exec", "--follow", "slow")) == b"one\ntwo\n"
    lines = [json.loads(line) for line in ok(framectl(*t, "--json", "exec", "-f", "slow")).splitlines()]
    events = [line for line in lines if line.get("event") == "output"]
    assert [e["body"] for e in events] == ["one\n", "two\n"], lines
    assert lines[-1]["ok"] is True and lines[-1]["exit_code"] == 0, lines


def test_files_put_list_get_delete(daemon, transport, tmp_path):
    t = daemon.target(transport)
    source = tmp_path / "source.bin"
    write_random(source, 3 * MiB + 17)
    name = "small-%s.bin" % transport
    assert ok(framectl(*t, "put", str(source), name)) == b""
    assert sha256_file(os.path.join(daemon.root, name)) == sha256_file(source)

    listing = ok(framectl(*t, "list", "small-%s" % transport)).decode().splitlines()
    assert len(listing) == 1 and listing[0].split()[0] == str(3 * MiB + 17) and listing[0].endswith(name), listing

    copy = tmp_path / "copy.bin"
    assert ok(framectl(*t, "get", name, str(copy))) == b""
    assert sha256_file(copy) == sha256_file(source)
    # To stdout, when no FILE is given.
    assert hashlib.sha256(ok(framectl(*t, "get", name))).hexdigest() == sha256_file(source)

    # put's default name is the file's base name.
    assert ok(framectl(*t, "put", str(source))) == b""
    assert os.path.exists(os.path.join(daemon.root, "source.bin"))

    assert ok(framectl(*t, "delete", name)) == b""
    assert ok(framectl(*t, "list", "small-%s" % transport)) == b""
    failed(framectl(*t, "get", name, str(copy)), 1, "not_found")
    # A refused get leaves the local file as it was.
    assert sha256_file(copy) == sha256_file(source)
    failed(framectl(*t, "delete", name), 1, "not_found")


def test_publish_subscribe_and_sigint(daemon, transport):
    t = daemon.target(transport)
    channel = "news-" + transport
    subscriber = subprocess.Popen([FRAMECTL_BIN] + t + ["subscribe", channel], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
    try:
        # Published until the subscription has taken effect (receivers: 1).
        deadline = time.monotonic() + 5
        while True:
            receivers = int(ok(framectl(*t, "publish", channel, "hello subscriber")))
            if receivers == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert receivers == 1
        ready, _, _ = select.select([subscriber.stdout], [], [], 5)
        assert ready, "the subscriber printed nothing"
        assert subscriber.stdout.readline() == b"hello subscriber\n"
        subscriber.send_signal(signal.SIGINT)
        assert subscriber.wait(5) == 0
        assert subscriber.stderr.read() == b""
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.wait(5)
        subscriber.stdout.close()
        subscriber.stderr.close()


def test_stats_and_help(daemon, transport):
    t = daemon.target(transport)
    text = ok(framectl(*t, "stats")).decode()
    stats = json.loads(text)
    assert "reload_failures" in stats and "\n  " in text  # indented for people
    commands = ok(framectl(*t, "help")).decode().splitlines()
    names = {line.split()[0] for line in commands}
    assert {"ping", "exec", "put", "get", "subscribe", "stats"} <= names, commands


def test_stats_reset(daemon, transport):
    t = daemon.target(transport)
    ok(framectl(*t, "ping"))
    before = json.loads(ok(framectl(*t, "stats", "--reset")))
    assert before["commands"]["ping"]["calls"] >= 1
    after = json.loads(ok(framectl(*t, "stats")))
    # Only this stats request came after the reset.
    assert after["frames_in"] == 1 and after["commands"]["ping"]["calls"] == 0, after
    assert after["counters_since_unix"] >= before["counters_since_unix"]


# --- --json --------------------------------------------------------------------

def test_json_output(daemon, transport, tmp_path):
    t = daemon.target(transport)
    ping = json.loads(ok(framectl(*t, "--json", "ping")))
    assert ping["ok"] is True and ping["pong"] is True
    echo = json.loads(ok(framectl(*t, "--json", "echo", "x", "y")))
    assert echo["body"] == "x y" and echo["total_size"] == 3
    binary = json.loads(ok(framectl(*t, "--json", "echo", "-", input=b"\xff\x00")))
    assert binary["body_base64"] == "/wA="
    result = framectl(*t, "--json", "exec", "status")
    assert result.returncode == 3 and result.stderr == b""
    reply = json.loads(result.stdout)
    assert (reply["exit_code"], reply["stdout"], reply["stderr"]) == (3, "out\n", "err\n")
    stats = json.loads(ok(framectl(*t, "stats", "--json")))  # options may follow the command
    assert isinstance(stats["body"], dict) and "reload_failures" in stats["body"]
    source = tmp_path / "j.txt"
    source.write_bytes(b"json listing\n")
    put = json.loads(ok(framectl(*t, "--json", "put", str(source), "j-%s.txt" % transport)))
    assert put["sha256"] == hashlib.sha256(b"json listing\n").hexdigest() and put["size"] == 13
    listing = json.loads(ok(framectl(*t, "--json", "list", "j-%s" % transport)))
    assert [entry["name"] for entry in listing["body"]] == ["j-%s.txt" % transport]
    # An error reply: the header on stdout, the message on stderr, status 1.
    result = framectl(*t, "--json", "exec", "nope")
    assert result.returncode == 1 and result.stderr.startswith(b"framectl: forbidden: ")
    assert json.loads(result.stdout)["error"]["code"] == "forbidden"


# --- errors and exit statuses ---------------------------------------------------

def test_error_statuses(daemon, transport):
    t = daemon.target(transport)
    failed(framectl(*t, "exec", "nope"), 1, "forbidden")
    failed(framectl(*t, "get", "no-such-file"), 1, "not_found")
    failed(framectl(*t, "put", "/nonexistent/file"), 4, "io")
    failed(framectl(*t, "frobnicate"), 2, "usage")
    failed(framectl(*t, "get"), 2, "usage")
    failed(framectl(*t, "get", "--continue", "x"), 2, "usage")


def test_connection_refused_and_timeout(tmp_path):
    port = free_port()
    failed(framectl("--tcp", "127.0.0.1:%d" % port, "ping"), 3, "connection")
    failed(framectl("--unix", str(tmp_path / "absent.sock"), "ping"), 3, "connection")
    failed(framectl("--tcp", "127.0.0.1:%d" % port, "--timeout", "0", "ping"), 2, "usage")
    failed(framectl("--tcp", "no-colon", "ping"), 2, "usage")
    # A listener that never answers: the timeout bounds the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        started = time.monotonic()
        failed(framectl("--tcp", "127.0.0.1:%d" % silent.getsockname()[1], "--timeout", "0.3", "ping"), 3, "timeout")
        assert time.monotonic() - started < 5


def test_framed_address_environment(daemon):
    tcp = daemon.listeners["tcp"]["address"]
    assert ok(framectl("ping", env={"FRAMED_ADDRESS": "tcp:" + tcp})) == b"pong\n"
    path = daemon.listeners["unix"]["path"]
    assert ok(framectl("ping", env={"FRAMED_ADDRESS": "unix:" + path})) == b"pong\n"
    failed(framectl("ping", env={"FRAMED_ADDRESS": "carrier-pigeon:1"}), 2, "usage")
    # An explicit option wins over the environment.
    assert ok(framectl("--tcp", tcp, "ping", env={"FRAMED_ADDRESS": "unix:/nonexistent"})) == b"pong\n"


# --- simple mode ------------------------------------------------------------------

@pytest.mark.parametrize("listener", ["line", "length", "udp"])
def test_simple_mode(daemon, listener):
    t = daemon.target(listener)
    assert ok(framectl(*t, "ping")) == b"pong\n"
    assert ok(framectl(*t, "upper", "hello", "world")) == b"HELLO WORLD\n"
    assert ok(framectl(*t, "echo", "a\\b")) == b"a\\b\n"
    assert ok(framectl(*t, "exec", "say", "x", "y")) == b"x y\n"
    stats = json.loads(ok(framectl(*t, "stats")))
    assert "reload_failures" in stats
    assert "ping" in ok(framectl(*t, "help")).decode()
    failed(framectl(*t, "exec", "nope"), 1, "forbidden")
    reply = framectl(*t, "--json", "exec", "nope")
    assert json.loads(reply.stdout)["error"]["code"] == "forbidden"
    assert json.loads(ok(framectl(*t, "--json", "upper", "q")))["body"] == "Q"
    for command in (["put", "/etc/hostname"], ["get", "x"], ["list"], ["delete", "x"], ["subscribe", "c"],
                    ["exec", "cat", "-"]):
        failed(framectl(*t, *command), 2, "usage")


def test_line_framing_multiline_reply(daemon):
    # exec output holds newlines; the line framing escapes them and framectl undoes it.
    result = framectl(*daemon.target("line"), "exec", "status")
    assert result.returncode == 0 and result.stdout.startswith(b"out\n"), result


# --- large transfers, resume, progress ---------------------------------------------

def test_put_get_100_mib(daemon, tmp_path):
    t = daemon.target("tcp")
    source = tmp_path / "big.bin"
    write_random(source, 100 * MiB)
    expected = sha256_file(source)
    put = json.loads(ok(framectl(*t, "--json", "put", str(source), "big.bin", timeout=60)))
    assert put["sha256"] == expected and put["size"] == 100 * MiB
    assert sha256_file(os.path.join(daemon.root, "big.bin")) == expected
    copy = tmp_path / "copy.bin"
    get = json.loads(ok(framectl(*t, "--json", "get", "big.bin", str(copy), timeout=60)))
    assert get["sha256"] == expected and sha256_file(copy) == expected


def test_get_continue(daemon, tmp_path, transport):
    t = daemon.target(transport)
    data = os.urandom(2 * MiB + 123)
    source = tmp_path / "whole.bin"
    source.write_bytes(data)
    ok(framectl(*t, "put", str(source), "resume.bin"))
    partial = tmp_path / "partial.bin"
    partial.write_bytes(data[:len(data) // 2])
    reply = json.loads(ok(framectl(*t, "--json", "get", "--continue", "resume.bin", str(partial))))
    # Only the missing half travelled; the whole file checks out.
    assert reply["total_size"] == len(data) - len(data) // 2, reply
    assert partial.read_bytes() == data
    # A local prefix that is not the file's: the whole-file checksum catches it.
    partial.write_bytes(b"X" * 10)
    failed(framectl(*t, "get", "--continue", "resume.bin", str(partial)), 1, "checksum")
    # Nothing local yet: --continue starts from 0.
    fresh = tmp_path / "fresh.bin"
    ok(framectl(*t, "get", "-c", "resume.bin", str(fresh)))
    assert fresh.read_bytes() == data


def run_on_pty(args):
    """framectl with stderr on a pseudo-terminal; returns (status, what the terminal showed)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([FRAMECTL_BIN] + args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=slave)
        os.close(slave)
        slave = None
        shown = b""
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the last writer closed the terminal
                    chunk = b""
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(5), shown.decode(errors="replace")
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)


def test_progress_only_on_a_terminal(daemon, tmp_path):
    t = daemon.target("tcp")
    source = tmp_path / "progress.bin"
    write_random(source, 8 * MiB)
    status, shown = run_on_pty(t + ["put", str(source), "progress.bin"])
    assert status == 0, shown
    assert "100%" in shown and "/s" in shown and "8.0 MiB" in shown, shown
    status, shown = run_on_pty(t + ["get", "progress.bin", str(tmp_path / "back.bin")])
    assert status == 0 and "100%" in shown and "/s" in shown, shown
    # Piped: no progress at all.
    assert framectl(*t, "put", str(source), "progress.bin").stderr == b""
    assert framectl(*t, "get", "progress.bin", str(tmp_path / "again.bin")).stderr == b""

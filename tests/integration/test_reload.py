"""Live reload (SIGHUP) and what the daemon tells systemd around it.

Each reload test keeps connections open across the reload and checks that
none is dropped and no request is lost; a rejected reload leaves everything
as it was. The daemon's $NOTIFY_SOCKET is a datagram socket of the test, read
throughout, so READY / RELOADING / STOPPING / WATCHDOG are seen as sent.
"""

import json
import os
import signal
import socket
import threading
import time

import pytest

from conftest import Daemon, free_port, render_config, toml_value
from framed_client import ConnectionClosed, assert_error, assert_ok, frame

WAIT = 10.0


class Notifications:
    """The test's end of $NOTIFY_SOCKET: every message the daemon sends."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.messages = []

    def drain(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (socket.timeout, BlockingIOError):
                return

    def wait_for(self, line, count=1, timeout=WAIT):
        """Waits until `count` messages carry `line`; returns the messages so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            if sum(line in m.split("\n") for m in self.messages) >= count:
                return self.messages
        raise AssertionError("no %r (x%d) among %r" % (line, count, self.messages))

    def close(self):
        self.sock.close()


class ReloadDaemon(Daemon):
    """A daemon whose config the test rewrites, with its notifications kept."""

    def __init__(self, listeners, daemon=None, extra="", env=None, **kwargs):
        super().__init__(listeners, daemon=daemon, env=env, **kwargs)
        self.notify_own = os.path.join(self.dir, "notify-test.sock")
        self.env["NOTIFY_SOCKET"] = self.notify_own
        self.notifications = Notifications(self.notify_own)
        self.specs = list(self.listeners.values())
        self.reloads = 0
        self.write(self.specs, daemon, extra)

    def write(self, listeners, daemon=None, extra="", text=None):
        with open(self.config_path + ".new", "w") as config:
            config.write(text if text is not None else render_config(listeners, daemon) + "\n" + extra)
        os.replace(self.config_path + ".new", self.config_path)
        if text is None:
            self.listeners = {spec["name"]: spec for spec in listeners}

    def start(self):
        super().start(wait_ready=False)
        self.notifications.wait_for("READY=1")
        return self

    def reload(self):
        """SIGHUP, then waits for the READY=1 that ends the reload."""
        ready_before = sum("READY=1" in m.split("\n") for m in self.notifications.messages)
        self.send_signal(signal.SIGHUP)
        self.notifications.wait_for("RELOADING=1", count=self.reloads + 1)
        self.notifications.wait_for("READY=1", count=ready_before + 1)
        self.reloads += 1

    def cleanup(self):
        super().cleanup()
        self.notifications.close()


@pytest.fixture
def reloadable(request):
    started = []

    def start(listeners, **kwargs):
        daemon = ReloadDaemon(listeners, **kwargs)
        started.append(daemon)
        return daemon.start()

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for daemon in started:
        text = daemon.stderr_text()
        status = daemon.stop()
        if failed:
            print(daemon.stderr_text())
        daemon.cleanup()
        assert status == 0, "exit status %r\n%s" % (status, text)
        assert "Sanitizer" not in text and "runtime error" not in text, text


def refused(daemon, name):
    family, address = daemon.address(name)
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(address)
    except (ConnectionRefusedError, FileNotFoundError):
        return True
    finally:
        probe.close()
    return False


class PingPump:
    """Pipelines pings on one connection from a thread until stopped: every
    ping sent must be answered, in order, across any reload."""

    def __init__(self, daemon, name):
        self.client = daemon.connect(name, timeout=WAIT)
        self.sent = self.received = 0
        self.error = None
        self.stopping = False
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        try:
            while not self.stopping:
                batch = b"".join(frame({"cmd": "ping", "id": self.sent + i}) for i in range(50))
                self.client.send(batch)
                for i in range(50):
                    header, _ = self.client.read_reply()
                    assert header["id"] == self.sent + i and header["pong"] is True, header
                self.sent += 50
                self.received += 50
        except BaseException as error:  # reported by stop()
            self.error = error

    def stop(self):
        self.stopping = True
        self.thread.join(WAIT)
        self.client.close()
        assert self.error is None, self.error
        assert not self.thread.is_alive()
        assert self.received == self.sent and self.sent > 0
        return self.sent


def test_reload_adds_removes_and_changes_listeners_without_dropping_anyone(reloadable):
    daemon = reloadable([{"kind": "tcp", "name": "a"}, {"kind": "tcp", "name": "b"},
                         {"kind": "unix", "name": "u"}])
    pump = PingPump(daemon, "a")
    kept_b = daemon.connect("b", timeout=WAIT)
    big = b"x" * 10000
    assert kept_b.request({"cmd": "echo"}, big)[1] == big
    kept_a = daemon.connect("a", timeout=WAIT)
    a, b, u = daemon.specs

    # a: a smaller max_body; b: removed; c: new; u: the same.
    changed_a = dict(a, max_body=1000)
    added_c = {"kind": "tcp", "name": "c", "address": "127.0.0.1:%d" % free_port()}
    daemon.write([changed_a, u, added_c])
    daemon.reload()

    daemon.ping("c")
    daemon.ping("u")
    daemon.listeners["b"] = b  # still known to the test, to try it
    assert refused(daemon, "b")
    # Connections accepted before keep what they were accepted under...
    assert kept_b.request({"cmd": "echo"}, big)[1] == big
    assert kept_a.request({"cmd": "echo"}, big)[1] == big
    # ...new ones get the new limits.
    with daemon.connect("a") as fresh:
        fresh.send(frame({"cmd": "echo"}, big))
        header, _ = fresh.read_reply()
        assert_error(header, "frame_too_large")
    kept_a.close()
    kept_b.close()
    pump.stop()

    stats = daemon.stats("a")
    assert stats["config_generation"] == 2 and stats["reload_failures"] == 0
    assert set(stats["listeners"]) >= {"a", "u", "c"}


def test_a_renamed_listener_keeps_its_socket_and_its_counters(reloadable):
    daemon = reloadable([{"kind": "tcp", "name": "old"}])
    kept = daemon.connect("old", timeout=WAIT)
    assert_ok(kept.request({"cmd": "ping"})[0])
    spec = dict(daemon.specs[0], name="new")
    daemon.write([spec])
    daemon.reload()
    assert_ok(kept.request({"cmd": "ping"})[0])  # the very same socket accepted it
    stats = daemon.stats("new")
    assert "old" not in stats["listeners"]
    assert stats["listeners"]["new"]["connections_accepted"] == 2
    kept.close()


def test_a_datagram_listener_changes_settings_on_the_same_socket(reloadable):
    daemon = reloadable([{"kind": "udp", "name": "u", "framing": "datagram", "payload": "text"},
                         {"kind": "tcp", "name": "t"}])
    with daemon.datagram("u") as client:
        assert client.request(b"echo hello") == b"hello"
        spec = dict(daemon.specs[0], command="upper")
        daemon.write([spec, daemon.specs[1]])
        daemon.reload()
        # The same client socket, the same server port: now every payload is upper's.
        assert client.request(b"hello") == b"HELLO"


def test_an_invalid_file_is_rejected_whole_and_the_old_config_stays(reloadable):
    daemon = reloadable([{"kind": "tcp", "name": "t"}])
    pump = PingPump(daemon, "t")
    daemon.write([], text="[[listener]]\nkind = \"tcp\"\nname = \"t\"\naddress = \"nonsense\"\n[limits]\nmax_body = -1\n")
    daemon.reload()
    daemon.ping("t")
    pump.stop()
    stats = daemon.stats("t")
    assert stats["reload_failures"] == 1 and stats["config_generation"] == 1
    text = daemon.stderr_text()
    assert "reload rejected" in text and "nonsense" in text


def test_a_listener_that_cannot_bind_rejects_the_reload_whole(reloadable):
    daemon = reloadable([{"kind": "tcp", "name": "t"}])
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    free = {"kind": "tcp", "name": "free", "address": "127.0.0.1:%d" % free_port()}
    busy = {"kind": "tcp", "name": "busy", "address": "127.0.0.1:%d" % taken.getsockname()[1]}
    try:
        daemon.write([daemon.specs[0], free, busy])
        daemon.reload()
    finally:
        taken.close()
    daemon.ping("t")
    assert refused(daemon, "free"), "a rejected reload left a new listener bound"
    stats = daemon.stats("t")
    assert stats["reload_failures"] == 1 and stats["config_generation"] == 1
    assert set(stats["listeners"]) == {"t"}


def test_reload_adds_a_command_and_resizes_the_worker_pool(reloadable):
    daemon = reloadable([{"kind": "tcp", "name": "t"}], daemon={"workers": 1})
    with daemon.connect("t") as client:
        assert_error(client.request({"cmd": "exec", "name": "hello"})[0], "forbidden")
        daemon.write(daemon.specs, {"workers": 3},
                     '[commands.hello]\nargv = ["/bin/echo", "hello"]\n')
        daemon.reload()
        # A connection that was open before the reload runs the new command:
        # commands apply to requests received after it.
        header, body = client.request({"cmd": "exec", "name": "hello"})
        assert_ok(header)
        assert body == b"hello\n"
    stats = daemon.stats("t")
    assert stats["workers"] == 3


def test_reload_of_an_unchanged_file_changes_nothing_but_the_generation(reloadable):
    daemon = reloadable([{"kind": "tcp", "name": "t"}, {"kind": "udp", "name": "u", "framing": "datagram"}])
    with daemon.connect("t", timeout=WAIT) as kept:
        for _ in range(3):
            daemon.reload()
            assert_ok(kept.request({"cmd": "ping"})[0])
    stats = daemon.stats("t")
    assert stats["config_generation"] == 4
    assert stats["listeners"]["t"]["connections_accepted"] == 2


def test_notifications_around_reload_and_stop(reloadable):
    daemon = reloadable([{"kind": "tcp", "name": "t"}])
    daemon.reload()
    messages = daemon.notifications.messages
    reloading = next(m for m in messages if "RELOADING=1" in m.split("\n"))
    usec = [line for line in reloading.split("\n") if line.startswith("MONOTONIC_USEC=")]
    assert usec, reloading
    now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert 0 < now_usec - int(usec[0].split("=", 1)[1]) < 60_000_000
    ready = [m for m in messages if "READY=1" in m.split("\n")]
    assert len(ready) == 2 and all("STATUS=" in m for m in ready), messages
    daemon.send_signal(signal.SIGTERM)
    daemon.notifications.wait_for("STOPPING=1")
    assert daemon.wait(WAIT) == 0


def test_watchdog_pings_at_half_the_interval(reloadable):
    # WATCHDOG_USEC of 400 ms: a ping every 200 ms.
    daemon = reloadable([{"kind": "tcp", "name": "t"}], env={"WATCHDOG_USEC": "400000"})
    daemon.notifications.messages.clear()
    time.sleep(2.0)
    daemon.notifications.drain()
    pings = sum("WATCHDOG=1" in m.split("\n") for m in daemon.notifications.messages)
    assert 5 <= pings <= 14, daemon.notifications.messages


def test_watchdog_is_silent_when_meant_for_another_process(reloadable):
    daemon = reloadable([{"kind": "tcp", "name": "t"}], env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    time.sleep(0.6)
    daemon.notifications.drain()
    assert not any("WATCHDOG=1" in m.split("\n") for m in daemon.notifications.messages)


def test_log_lines_carry_journald_priorities_when_stderr_is_the_journal(tmp_path):
    # Run by hand with stderr on a file whose device:inode is $JOURNAL_STREAM,
    # as systemd does with its journal socket.
    daemon = ReloadDaemon([{"kind": "tcp", "name": "t"}])
    try:
        open(daemon.stderr_path, "wb").close()
        st = os.stat(daemon.stderr_path)
        daemon.env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        # Opened in append mode by the fixture, so the inode stays the one named.
        daemon.start()
        daemon.write([], text="not toml at all = = =\n")
        daemon.reload()
        daemon.stop()
        lines = [l for l in open(daemon.stderr_path, encoding="utf-8", errors="replace").read().splitlines() if l]
        assert lines and all(l[:3] in ("<3>", "<4>", "<6>", "<7>") for l in lines), lines
        assert any(l.startswith("<6>") and "ready" in l for l in lines)
        assert any(l.startswith("<3>") and "reload rejected" in l for l in lines)
    finally:
        daemon.cleanup()

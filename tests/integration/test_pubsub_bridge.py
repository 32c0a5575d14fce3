"""The pub/sub bridge ([pubsub] bridge, docs/pubsub.md "Across hosts"):
daemons bridged through a real redis-server, started here on a free
loopback port, deliver each other's publishes, each message once; with
Redis gone, local delivery goes on; with Redis back on the same port, the
bridge reconnects and bridged delivery resumes.

Every daemon runs under whichever backend FRAMED_BACKEND names. Skipped
only when redis-server is not installed (scripts/install-deps.sh installs it).
"""

import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import free_port, render_config
from framed_client import assert_ok
from test_pubsub import expect_message as pubsub_expect_message, expect_nothing as pubsub_expect_nothing

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")

# Generous bounds for a loaded 2-core machine; a working bridge needs milliseconds.
WAIT = 10
PREFIX = "it:"


class RedisServer:
    """A throwaway redis-server on 127.0.0.1:port, no persistence."""

    def __init__(self, port):
        self.port = port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "redis-server exited at start"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer PING on port %d" % self.port)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        self.proc = None


@pytest.fixture
def redis():
    server = RedisServer(free_port()).start()
    yield server
    server.stop()


def start_bridged(daemon_factory, redis_port, name):
    listeners = [{"kind": "tcp", "name": "tcp", "address": "127.0.0.1:%d" % free_port()}]
    text = render_config(listeners)
    text += '\n[pubsub]\nbridge = "redis://127.0.0.1:%d"\nbridge_prefix = "%s"\n' % (redis_port, PREFIX)
    daemon = daemon_factory(listeners, config_text=text)
    daemon.name = name
    return daemon


def bridge_stats(daemon):
    stats = daemon.stats("tcp")
    assert "bridge" in stats, stats
    return stats["bridge"]


def wait_for(predicate, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def wait_connected(daemons, connected=True):
    for daemon in daemons:
        wait_for(lambda: bridge_stats(daemon)["connected"] == connected,
                 "%s's bridge connected == %s" % (daemon.name, connected))


def subscribe(daemon, channel):
    client = daemon.connect("tcp")
    header, _ = client.request({"cmd": "subscribe", "channel": channel})
    assert_ok(header)
    return client


def publish(daemon, channel, body):
    with daemon.connect("tcp") as client:
        header, _ = client.request({"cmd": "publish", "channel": channel}, body)
    assert_ok(header)
    return header["receivers"]


def expect_message(client, channel, body, timeout=WAIT):
    pubsub_expect_message(client, channel, body, timeout)


def expect_nothing(client, wait=0.5):
    pubsub_expect_nothing(client, wait)


@pytest.fixture
def fleet(daemon_factory, redis):
    daemons = [start_bridged(daemon_factory, redis.port, name) for name in ("A", "B", "C")]
    wait_connected(daemons)
    return daemons


def test_each_host_receives_every_publish_once_in_order(fleet):
    a, b, c = fleet
    on_a, on_c = subscribe(a, "room"), subscribe(c, "room")
    try:
        # The local count only: A's subscriber, not C's.
        assert publish(a, "room", b"hello") == 1
        expect_message(on_a, "room", b"hello")
        expect_message(on_c, "room", b"hello")
        # From a host with no subscriber of its own.
        assert publish(b, "room", b"from b") == 0
        expect_message(on_a, "room", b"from b")
        expect_message(on_c, "room", b"from b")

        # Binary bodies, every byte value, and one publisher's order.
        bodies = [bytes([i]) * (i % 7) + bytes(range(256)) + b"\r\n\x00" + str(i).encode() for i in range(200)]
        with a.connect("tcp") as publisher:
            for body in bodies:
                header, _ = publisher.request({"cmd": "publish", "channel": "room"}, body)
                assert_ok(header)
        for body in bodies:
            expect_message(on_a, "room", body)
            expect_message(on_c, "room", body)
        # Nothing twice: A's own messages came back from Redis and were dropped.
        expect_nothing(on_a)
        expect_nothing(on_c)
    finally:
        on_a.close()
        on_c.close()

    stats_a = bridge_stats(a)
    assert stats_a["published"] == 201 and stats_a["dropped"] == 0, stats_a
    assert stats_a["received"] == 1, stats_a  # B's; never its own
    stats_c = wait_for(lambda: (lambda s: s if s["received"] == 202 else None)(bridge_stats(c)), "C received 202")
    assert stats_c["published"] == 0, stats_c


def test_metrics_name_the_bridge(daemon_factory, redis):
    listeners = [{"kind": "tcp", "name": "tcp", "address": "127.0.0.1:%d" % free_port()},
                 {"kind": "http", "name": "http", "address": "127.0.0.1:%d" % free_port()}]
    text = render_config(listeners) + '\n[pubsub]\nbridge = "redis://localhost:%d"\n' % redis.port
    daemon = daemon_factory(listeners, config_text=text)
    daemon.name = "M"
    wait_connected([daemon])
    host, port = daemon.listeners["http"]["address"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=WAIT) as http:
        http.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := http.recv(65536):
            response += chunk
    text = response.decode()
    for line in ("framed_bridge_connected 1", "framed_bridge_messages_published_total 0",
                 "framed_bridge_messages_received_total 0", "framed_bridge_messages_dropped_total 0",
                 "framed_bridge_reconnects_total 0"):
        assert "\n" + line + "\n" in text, text


def test_redis_away_and_back(fleet, redis):
    a, _, c = fleet
    on_a, on_c = subscribe(a, "news"), subscribe(c, "news")
    try:
        redis.stop()
        wait_connected([a, c], connected=False)
        # Local delivery goes on without Redis.
        assert publish(a, "news", b"local only") == 1
        expect_message(on_a, "news", b"local only")
        stats = bridge_stats(a)
        assert stats["connected"] is False, stats

        redis.start()  # the same port
        wait_connected(fleet)
        for daemon in fleet:
            assert bridge_stats(daemon)["reconnects"] >= 1
        # What waited while Redis was away goes out on reconnect (C was not
        # subscribed then, so only what is published from here on is sure
        # to reach it); fresh publishes cross again, once each.
        on_a_seen = []
        assert publish(a, "news", b"after") == 1
        deadline = time.monotonic() + WAIT
        while True:
            header, body = on_c.read_reply(max(0.1, deadline - time.monotonic()))
            assert header["event"] == "message", header
            if body == b"after":
                break
            assert body == b"local only", body
        header, body = on_a.read_reply(WAIT)
        on_a_seen.append(body)
        assert on_a_seen == [b"after"]
        assert publish(c, "news", b"from c") == 1
        expect_message(on_a, "news", b"from c")
        expect_message(on_c, "news", b"from c")
        expect_nothing(on_a)
        expect_nothing(on_c)
    finally:
        on_a.close()
        on_c.close()


def test_a_stalled_redis_costs_a_bounded_queue_then_drops(daemon_factory, redis):
    a = start_bridged(daemon_factory, redis.port, "A")
    wait_connected([a])
    on_a = subscribe(a, "bulk")
    body = b"x" * 65536
    count = 300  # 19 MiB: past the bridge's 8 MiB of messages waiting for Redis
    try:
        redis.proc.send_signal(signal.SIGSTOP)
        with a.connect("tcp") as publisher:
            for _ in range(count):
                header, _ = publisher.request({"cmd": "publish", "channel": "bulk"}, body)
                assert_ok(header)
                assert header["receivers"] == 1
                # Local delivery never waits for Redis.
                expect_message(on_a, "bulk", body)
        stats = bridge_stats(a)
        assert stats["dropped"] >= count - (8 << 20) // len(body), stats
    finally:
        redis.proc.send_signal(signal.SIGCONT)
        on_a.close()
    # Once Redis goes on, every message is accounted for: taken or dropped.
    final = wait_for(lambda: (lambda s: s if s["published"] + s["dropped"] == count else None)(bridge_stats(a)),
                     "every bridged message published or dropped")
    assert final["published"] > 0 and final["connected"] is True, final


def test_a_reload_keeps_the_running_bridge_and_says_so(daemon_factory, redis):
    a = start_bridged(daemon_factory, redis.port, "A")
    wait_connected([a])
    with open(a.config_path) as config:
        text = config.read()
    with open(a.config_path, "w") as config:
        config.write(text.replace('bridge_prefix = "%s"' % PREFIX, 'bridge_prefix = "other:"'))
    a.send_signal(signal.SIGHUP)
    wait_for(lambda: a.stats("tcp")["config_generation"] == 2, "the reload applied")
    wait_for(lambda: "reload: [pubsub] changed: it takes effect at the next start" in a.stderr_text(),
             "the reload's warning")
    stats = bridge_stats(a)
    assert stats["connected"] is True and stats["reconnects"] == 0, stats


def test_bad_bridge_url_is_refused_with_its_position(daemon_factory, tmp_path):
    from conftest import FRAMED_BIN
    config = tmp_path / "framed.toml"
    config.write_text('[pubsub]\nbridge = "redis://redis-host:6379"\n')
    result = subprocess.run([FRAMED_BIN, "--check-config", "--config", str(config)],
                            capture_output=True, text=True, timeout=WAIT)
    assert result.returncode != 0
    assert ":2:10: pubsub.bridge: invalid Redis URL" in result.stderr + result.stdout, result

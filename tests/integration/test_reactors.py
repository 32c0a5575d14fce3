"""daemon.reactors: several reactor threads serving one daemon.

The kernel spreads TCP connections over the reactors' SO_REUSEPORT sockets
by a hash of each connection's addresses, so a test cannot send one to a
given reactor; it opens enough of them (from distinct source ports) that
every reactor gets some, checks that from `stats` (its "reactors" array),
and then asks what crosses reactors: pub/sub between connections on
different ones, `stats` and `/metrics` added up, limits that are the whole
daemon's, reload and drain acting on every reactor.

The whole integration suite also runs once with FRAMED_REACTORS=2 (meson:
integration-reactors), where every other test's daemon has two reactors.
"""

import json
import os
import re
import signal
import threading
import time

import pytest

from conftest import free_port
from framed_client import assert_error, assert_ok, frame
from test_http import raw_exchange
from test_reload import refused
from test_reload import reloadable  # noqa: F401 (a fixture)

LISTENERS = [
    {"kind": "tcp", "name": "tcp"},
    {"kind": "unix", "name": "unix", "mode": "0600"},
    {"kind": "udp", "name": "udp", "framing": "datagram", "payload": "json"},
    {"kind": "http", "name": "http", "address": "127.0.0.1:%d" % free_port()},
]


def start(daemon_factory, reactors, **daemon):
    return daemon_factory(LISTENERS, daemon=dict(daemon, reactors=reactors, workers=2))


def open_spread(daemon, count, listener="tcp"):
    """`count` connections, each answered once (so each is accepted and
    counted by its reactor before this returns)."""
    clients = []
    for number in range(count):
        client = daemon.connect(listener)
        clients.append(client)
        header, _ = client.request({"cmd": "ping", "id": number})
        assert_ok(header)
    return clients


def per_reactor(stats, field):
    return [reactor[field] for reactor in stats["reactors"]]


def http_get(daemon, path):
    data = raw_exchange(daemon, ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode(),
                        name="http", timeout=10)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body.decode()


@pytest.mark.parametrize("reactors", [2, 4])
def test_connections_spread_over_every_reactor_and_stats_add_them_up(daemon_factory, reactors):
    daemon = start(daemon_factory, reactors)
    assert "%d reactor(s)" % reactors in daemon.stderr_text()
    clients = open_spread(daemon, 200)
    try:
        stats = daemon.stats("tcp")
        assert [reactor["reactor"] for reactor in stats["reactors"]] == list(range(reactors))
        active = per_reactor(stats, "connections_active")
        # The 200, and the connection asking for stats.
        assert sum(active) == 201 == stats["connections_active"], active
        assert all(count > 0 for count in active), "a reactor took no connection: %r" % active
        assert sum(per_reactor(stats, "frames_in")) == stats["frames_in"]
        assert sum(per_reactor(stats, "connections_accepted")) == stats["connections_accepted"]
        assert stats["listeners"]["tcp"]["frames_in"] >= 200
        assert stats["commands"]["ping"]["calls"] >= 200

        # /metrics: the same sums, and one sample per reactor.
        metrics = http_get(daemon, "/metrics")
        samples = {}
        for line in metrics.splitlines():
            if line.startswith("framed_reactor_connections_active{"):
                samples[line.split('"')[1]] = int(line.rsplit(" ", 1)[1])
        assert sorted(samples) == [str(index) for index in range(reactors)]
        # The scrape's own http connection counts too.
        assert sum(samples.values()) >= 201
        # 200, and the stats connection above if its close is not seen yet.
        assert re.search(r'framed_connections_active\{listener="tcp",kind="tcp"\} 20[01]\n', metrics), metrics
    finally:
        for client in clients:
            client.close()

    # Unix stream connections: one socket, which every reactor accepts from.
    clients = open_spread(daemon, 50, "unix")
    for client in clients:
        client.close()
    # UDP: each reactor has its socket on the port; every datagram is answered.
    with daemon.datagram("udp") as udp:
        for number in range(20):
            header, _ = udp.request_json({"cmd": "ping", "id": number})
            assert_ok(header)
    daemon.stop_cleanly()


def test_stats_reset_zeroes_every_reactor(daemon_factory):
    daemon = start(daemon_factory, 2)
    clients = open_spread(daemon, 60)
    with daemon.connect("tcp") as client:
        header, body = client.request({"cmd": "stats", "reset": True})
        assert_ok(header)
        assert json.loads(body)["frames_in"] >= 61
        header, body = client.request({"cmd": "stats"})
        after = json.loads(body)
    # Only the second stats request was counted since: on this connection's reactor.
    assert after["frames_in"] == 1 and sorted(per_reactor(after, "frames_in")) == [0, 1], after["reactors"]
    assert after["connections_active"] == 61  # gauges keep their value
    for client in clients:
        client.close()


def subscribers_on_every_reactor(daemon, channel, count=24):
    """`count` subscribed connections; asserts they are on more than one reactor."""
    clients = []
    for number in range(count):
        client = daemon.connect("tcp")
        header, _ = client.request({"cmd": "subscribe", "id": number, "channel": channel})
        assert_ok(header)
        clients.append(client)
    stats = daemon.stats("tcp")
    assert sum(1 for active in per_reactor(stats, "connections_active") if active > 0) > 1, stats["reactors"]
    return clients


def test_a_publish_reaches_subscribers_on_every_reactor_in_one_order(daemon_factory):
    daemon = start(daemon_factory, 2)
    subscribers = subscribers_on_every_reactor(daemon, "news")
    publishers = [daemon.connect("tcp") for _ in range(8)]
    try:
        # Publishers on several connections (so on both reactors) at once:
        # whatever order their messages take, every subscriber sees the same.
        def publish(index, client):
            for number in range(25):
                body = b"%d:%d" % (index, number)
                client.send(frame({"cmd": "publish", "id": number, "channel": "news"}, body))
            for number in range(25):
                header, _ = client.read_reply(10)
                assert_ok(header)
                assert header["id"] == number and header["receivers"] == len(subscribers), header

        threads = [threading.Thread(target=publish, args=(index, client)) for index, client in enumerate(publishers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        orders = []
        for subscriber in subscribers:
            got = []
            for _ in range(8 * 25):
                header, body = subscriber.read_reply(10)
                assert header["event"] == "message" and header["channel"] == "news", header
                got.append(body)
            orders.append(got)
        assert all(order == orders[0] for order in orders), "subscribers saw different orders"
        # Each publisher's own messages in the order it sent them.
        for index in range(8):
            mine = [body for body in orders[0] if body.startswith(b"%d:" % index)]
            assert mine == [b"%d:%d" % (index, number) for number in range(25)]
    finally:
        for client in subscribers + publishers:
            client.close()

    # A datagram publisher reaches them too (its reply waits for every reactor).
    subscribers = subscribers_on_every_reactor(daemon, "dgram", count=12)
    with daemon.datagram("udp") as udp:
        header, _ = udp.request_json({"cmd": "publish", "id": 1, "channel": "dgram"}, b"from udp")
        assert_ok(header)
        assert header["receivers"] == 12
    for subscriber in subscribers:
        header, body = subscriber.read_reply(10)
        assert body == b"from udp"
        subscriber.close()
    daemon.stop_cleanly()


def test_limits_are_the_daemons_not_each_reactors(daemon_factory):
    daemon = daemon_factory([{"kind": "tcp", "name": "tcp"}, {"kind": "tcp", "name": "per_ip",
                                                               "max_connections_per_ip": 10}],
                            daemon={"reactors": 2, "max_connections": 40})
    per_ip = open_spread(daemon, 10, "per_ip")
    clients = open_spread(daemon, 20)
    try:
        # Whichever reactor the next connections land on, they are refused:
        # the counts are the daemon's, not a reactor's share of them.
        for _ in range(5):
            with daemon.connect("per_ip") as extra:
                header, _ = extra.read_reply(10)
                assert_error(header, "too_busy")
                assert "max_connections_per_ip (10)" in header["error"]["message"]
        clients += open_spread(daemon, 10)
        for _ in range(5):
            with daemon.connect("tcp") as extra:
                header, _ = extra.read_reply(10)
                assert_error(header, "too_busy")
                assert "max_connections reached" in header["error"]["message"]
    finally:
        for client in clients + per_ip:
            client.close()


def test_drain_answers_what_every_reactor_received(daemon_factory):
    daemon = start(daemon_factory, 2, shutdown_timeout="10s")
    clients = open_spread(daemon, 40)
    # A batch of pipelined requests on every connection, then SIGTERM: every
    # one is answered, on every reactor, before the daemon exits 0.
    for client in clients:
        client.send(b"".join(frame({"cmd": "echo", "id": number}, b"x" * 100) for number in range(20)))
    time.sleep(0.3)  # the bytes reach the daemon's sockets
    daemon.send_signal(signal.SIGTERM)
    for client in clients:
        for number in range(20):
            header, body = client.read_reply(10)
            assert_ok(header)
            assert header["id"] == number and body == b"x" * 100
        client.expect_eof(10)
        client.close()
    assert daemon.wait(10) == 0
    text = daemon.stderr_text()
    assert "[reactor 0]" in text and "[reactor 1]" in text
    assert "Sanitizer" not in text and "runtime error" not in text


def test_reload_adds_and_removes_listeners_on_every_reactor(reloadable):
    first = [{"kind": "tcp", "name": "one"}, {"kind": "http", "name": "http", "address": "127.0.0.1:%d" % free_port()}]
    daemon = reloadable(first, daemon={"reactors": 2})
    kept = open_spread(daemon, 30, "one")

    second = [{"kind": "tcp", "name": "one", "address": daemon.listeners["one"]["address"]},
              {"kind": "http", "name": "http", "address": daemon.listeners["http"]["address"]},
              {"kind": "tcp", "name": "two", "address": "127.0.0.1:%d" % free_port()}]
    daemon.write(second, daemon={"reactors": 2})
    daemon.reload()
    before = per_reactor(daemon.stats("one"), "connections_accepted")
    fresh = open_spread(daemon, 60, "two")
    after = per_reactor(daemon.stats("one"), "connections_accepted")
    # The new listener is served by every reactor.
    assert all(now > then for now, then in zip(after, before)), (before, after)
    for client in fresh:
        client.close()

    # Removed: refused from then on, while its open connections (on both
    # reactors) live on and are answered.
    one = daemon.listeners["one"]
    daemon.write(second[1:], daemon={"reactors": 2})
    daemon.reload()
    daemon.listeners["one"] = one  # to dial it
    assert refused(daemon, "one")
    for number, client in enumerate(kept):
        header, _ = client.request({"cmd": "ping", "id": number})
        assert_ok(header)
        client.close()
    daemon.ping("two")


def test_pin_reactors_puts_each_reactor_on_a_cpu_of_its_own_and_leaves_workers_free(daemon_factory):
    allowed = sorted(os.sched_getaffinity(0))
    daemon = daemon_factory([{"kind": "tcp", "name": "tcp"}],
                            daemon={"reactors": 2, "pin_reactors": True, "workers": 2})
    daemon.ping("tcp")
    affinities = {}
    for task in os.listdir("/proc/%d/task" % daemon.pid):
        affinities[int(task)] = sorted(os.sched_getaffinity(int(task)))
    # The main thread runs reactor 0: the first allowed CPU.
    assert affinities[daemon.pid] == [allowed[0]]
    pinned = sorted(cpus[0] for cpus in affinities.values() if len(cpus) == 1)
    if len(allowed) > 1:
        # Reactor 1 on the second; the worker threads keep every CPU.
        assert allowed[1] in pinned
        assert sum(1 for cpus in affinities.values() if cpus == allowed) >= 2, affinities
    daemon.stop_cleanly()

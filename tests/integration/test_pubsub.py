"""pub/sub: publish, subscribe, unsubscribe across transports, fan-out order,
slow subscribers (PROTOCOL.md section 4, CONFIG.md limits.max_event_backlog).

Every daemon here is started by the test (conftest's daemon_factory), so each
runs under whichever backend FRAMED_BACKEND names.
"""

import json
import os
import resource
import selectors
import socket
import struct
import threading
import time

import pytest

from conftest import proc_status_kib
from framed_client import assert_error, assert_ok, frame

LISTENERS = [
    {"kind": "tcp", "name": "tcp"},
    {"kind": "unix", "name": "unix", "mode": "0600"},
    {"kind": "tcp", "name": "line", "framing": "line"},
    {"kind": "udp", "name": "udp", "framing": "datagram", "payload": "text"},
    {"kind": "udp", "name": "udp_json", "framing": "datagram", "payload": "json"},
    {"kind": "unix_dgram", "name": "udgram", "mode": "0600"},
]


@pytest.fixture
def pubsub(daemon_factory):
    return daemon_factory(LISTENERS)


def subscribe(daemon, listener, channel, rid="sub"):
    client = daemon.connect(listener)
    header, _ = client.request({"cmd": "subscribe", "id": rid, "channel": channel})
    assert_ok(header)
    assert header["id"] == rid and header["channel"] == channel and header["subscriptions"] >= 1, header
    return client


def expect_message(client, channel, body, timeout=5):
    header, got = client.read_reply(timeout)
    assert header == {"event": "message", "channel": channel, "total_size": len(body)}, header
    assert got == body
    return header


def expect_nothing(client, wait=0.2):
    client.sock.settimeout(wait)
    try:
        data = client.sock.recv(1)
    except socket.timeout:
        return
    finally:
        client.sock.settimeout(client.timeout)
    raise AssertionError("expected nothing, got %r" % data)


def test_publish_reaches_subscribers_from_every_transport(pubsub):
    with subscribe(pubsub, "tcp", "room") as tcp_sub, subscribe(pubsub, "unix", "room") as unix_sub:
        # json over TCP and over Unix
        for listener in ("tcp", "unix"):
            with pubsub.connect(listener) as publisher:
                header, _ = publisher.request({"cmd": "publish", "id": 7, "channel": "room"}, b"from " + listener.encode())
            assert_ok(header)
            assert header["receivers"] == 2 and header["id"] == 7, header
            for sub in (tcp_sub, unix_sub):
                expect_message(sub, "room", b"from " + listener.encode())
        # simple mode on a line listener: publish CHANNEL MESSAGE, the count as text
        with pubsub.connect("line") as line:
            line.send(b"publish room hello from a line, with spaces\n")
            assert line.sock.recv(100) == b"2\n"
        for sub in (tcp_sub, unix_sub):
            expect_message(sub, "room", b"hello from a line, with spaces")
        # UDP chat: one sendto publishes
        with pubsub.datagram("udp") as udp:
            assert udp.request(b"publish room hi from udp") == b"2"
        with pubsub.datagram("udgram") as udgram:
            assert udgram.request(b"publish room hi from a unix datagram") == b"2"
        with pubsub.datagram("udp_json") as udp_json:
            header, _ = udp_json.request_json({"cmd": "publish", "channel": "room"}, b"\x00binary\xff")
            assert_ok(header)
            assert header["receivers"] == 2
        for sub in (tcp_sub, unix_sub):
            expect_message(sub, "room", b"hi from udp")
            expect_message(sub, "room", b"hi from a unix datagram")
            expect_message(sub, "room", b"\x00binary\xff")
        # another channel reaches nobody here
        with pubsub.datagram("udp") as udp:
            assert udp.request(b"publish elsewhere nobody listens") == b"0"
        expect_nothing(tcp_sub)
        expect_nothing(unix_sub)


def test_receivers_unsubscribe_and_close(pubsub):
    subs = [subscribe(pubsub, "tcp", "news", rid=i) for i in range(3)]
    try:
        with pubsub.connect("tcp") as publisher:
            header, _ = publisher.request({"cmd": "publish", "channel": "news"}, b"one")
            assert header["receivers"] == 3
            for sub in subs:
                expect_message(sub, "news", b"one")

            header, _ = subs[0].request({"cmd": "unsubscribe", "id": "u", "channel": "news"})
            assert_ok(header)
            assert header["subscriptions"] == 0 and header["channel"] == "news", header
            # unsubscribing again changes nothing and is ok
            header, _ = subs[0].request({"cmd": "unsubscribe", "channel": "news"})
            assert_ok(header)
            header, _ = publisher.request({"cmd": "publish", "channel": "news"}, b"two")
            assert header["receivers"] == 2
            for sub in subs[1:]:
                expect_message(sub, "news", b"two")
            expect_nothing(subs[0])

            # a closed connection's subscriptions go with it
            subs[1].close()
            deadline = time.monotonic() + 5
            while True:
                header, _ = publisher.request({"cmd": "publish", "channel": "news"}, b"three")
                if header["receivers"] == 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            assert header["receivers"] == 1
    finally:
        for sub in subs:
            sub.close()


def test_subscribed_twice_and_to_several_channels(pubsub):
    with subscribe(pubsub, "tcp", "a") as sub:
        header, _ = sub.request({"cmd": "subscribe", "channel": "a"})
        assert_ok(header)
        assert header["subscriptions"] == 1
        header, _ = sub.request({"cmd": "subscribe", "channel": "b"})
        assert header["subscriptions"] == 2
        with pubsub.connect("tcp") as publisher:
            assert publisher.request({"cmd": "publish", "channel": "a"}, b"to a")[0]["receivers"] == 1
            assert publisher.request({"cmd": "publish", "channel": "b"}, b"to b")[0]["receivers"] == 1
        expect_message(sub, "a", b"to a")
        expect_message(sub, "b", b"to b")


def test_publisher_on_its_own_channel_gets_its_message(pubsub):
    with subscribe(pubsub, "tcp", "self") as client:
        client.send_request({"cmd": "publish", "id": "p", "channel": "self"}, b"echo of me")
        frames = [client.read_reply(), client.read_reply()]
        events = [h for h, _ in frames if "event" in h]
        replies = [h for h, _ in frames if "event" not in h]
        assert events == [{"event": "message", "channel": "self", "total_size": 10}]
        assert replies[0]["id"] == "p" and replies[0]["receivers"] == 1
        assert [b for h, b in frames if "event" in h] == [b"echo of me"]
        # a subscribed connection still answers requests
        header, _ = client.request({"cmd": "ping"})
        assert header["pong"] is True


def test_bad_requests(pubsub):
    with pubsub.connect("tcp") as client:
        assert_error(client.request({"cmd": "publish"}, b"x")[0], "bad_request")
        assert_error(client.request({"cmd": "publish", "channel": 5}, b"x")[0], "bad_request")
        assert_error(client.request({"cmd": "subscribe", "channel": ""})[0], "bad_request")
        assert_error(client.request({"cmd": "subscribe", "channel": "x" * 257})[0], "bad_request")
    with pubsub.datagram("udp_json") as udp_json:
        # a datagram cannot carry events
        assert_error(udp_json.request_json({"cmd": "subscribe", "channel": "room"})[0], "bad_request")
    with pubsub.datagram("udp") as udp:
        assert udp.request(b"subscribe room").startswith(b"ERR bad_request ")
        assert udp.request(b"publish").startswith(b"ERR bad_request ")


class FrameReader:
    """Incremental json-frame parser for one non-blocking subscriber socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray()
        self.frames = []
        self.eof = False

    def feed(self):
        try:
            data = self.sock.recv(1 << 18)
        except BlockingIOError:
            return
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return
        self.buffer += data
        while len(self.buffer) >= 4:
            (length,) = struct.unpack_from(">I", self.buffer, 0)
            if len(self.buffer) < 4 + length:
                break
            header = json.loads(bytes(self.buffer[4:4 + length]))
            size = header.get("total_size", 0)
            if len(self.buffer) < 4 + length + size:
                break
            self.frames.append((header, bytes(self.buffer[4 + length:4 + length + size])))
            del self.buffer[:4 + length + size]


def read_all(readers, want, timeout):
    """Reads until every reader holds `want` frames (or EOF); returns when done."""
    selector = selectors.DefaultSelector()
    for reader in readers:
        reader.sock.setblocking(False)
        selector.register(reader.sock, selectors.EVENT_READ, reader)
    deadline = time.monotonic() + timeout
    pending = {id(r) for r in readers}
    while pending and time.monotonic() < deadline:
        for key, _ in selector.select(0.5):
            reader = key.data
            reader.feed()
            if reader.eof or len(reader.frames) >= want:
                selector.unregister(reader.sock)
                pending.discard(id(reader))
    selector.close()
    return not pending


def fan_out_in_order(daemon, subscribers, messages, timeout):
    subs = [subscribe(daemon, "tcp" if i % 2 == 0 else "unix", "fan", rid=i) for i in range(subscribers)]
    try:
        publisher = daemon.connect("tcp")
        replies = []

        def publish_all():
            # pipelined in batches: the replies are read by this same thread
            for start in range(0, messages, 100):
                batch = b"".join(frame({"cmd": "publish", "channel": "fan"}, b"m%d" % n)
                                 for n in range(start, min(start + 100, messages)))
                publisher.send(batch)
                for _ in range(min(100, messages - start)):
                    replies.append(publisher.read_reply(timeout)[0])

        thread = threading.Thread(target=publish_all)
        thread.start()
        readers = [FrameReader(sub.sock) for sub in subs]
        finished = read_all(readers, messages, timeout)
        thread.join(timeout)
        publisher.close()
        assert finished, "not every subscriber got %d messages within %d s" % (messages, timeout)
        assert len(replies) == messages and all(r["receivers"] == subscribers for r in replies)
        expected = [b"m%d" % n for n in range(messages)]
        for reader in readers:
            assert [h["channel"] for h, _ in reader.frames] == ["fan"] * messages
            assert [b for _, b in reader.frames] == expected
    finally:
        for sub in subs:
            sub.close()


def test_200_subscribers_each_get_1000_messages_in_order(pubsub):
    fan_out_in_order(pubsub, 200, 1000, timeout=60)


def test_a_fan_out_larger_than_one_batch_keeps_order(daemon_factory):
    # More subscribers than the daemon delivers in one loop iteration (1024):
    # the fan-out is spread over iterations and must keep every order.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * 1100 + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    try:
        daemon = daemon_factory(LISTENERS, daemon={"max_connections": 2000})
        fan_out_in_order(daemon, 1100, 50, timeout=60)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_queued_publishes_keep_every_order(daemon_factory):
    # Behind a fan-out larger than one batch, publishes queue; those to the
    # same channel and the same subscribers go out together, and the
    # publisher's connection goes on with its next requests meanwhile. None
    # of that may show: replies in request order, a subscription starting
    # between two publishes, and a subscriber of two channels getting the
    # messages in publish order across both.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * 1100 + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    subs = []
    try:
        daemon = daemon_factory([{"kind": "tcp", "name": "tcp"}], daemon={"max_connections": 2000})
        subs = [subscribe(daemon, "tcp", "fan", rid=i) for i in range(1100)]
        both = subscribe(daemon, "tcp", "fan", rid="both")
        subs.append(both)
        assert_ok(both.request({"cmd": "subscribe", "id": "other", "channel": "other"})[0])
        publisher = daemon.connect("tcp")
        subs.append(publisher)
        publisher.send(b"".join([
            frame({"cmd": "publish", "id": 0, "channel": "fan"}, b"m0"),
            frame({"cmd": "subscribe", "id": 1, "channel": "fan"}),
            frame({"cmd": "publish", "id": 2, "channel": "fan"}, b"m1"),
            frame({"cmd": "publish", "id": 3, "channel": "other"}, b"x"),
            frame({"cmd": "publish", "id": 4, "channel": "fan"}, b"m2"),
            frame({"cmd": "ping", "id": 5}),
        ]))
        replies, events = [], []
        while len(replies) < 6 or len(events) < 2:
            header, body = publisher.read_reply(30)
            (events if "event" in header else replies).append((header, body))
        assert [h["id"] for h, _ in replies] == [0, 1, 2, 3, 4, 5]
        assert [h.get("receivers") for h, _ in replies] == [1101, None, 1102, 1, 1102, None]
        # the publisher subscribed after m0
        assert [b for _, b in events] == [b"m1", b"m2"]
        everyone = FrameReader(both.sock)
        readers = [FrameReader(sub.sock) for sub in subs[:1100]]
        assert read_all([everyone] + readers, 3, 30)
        if len(everyone.frames) < 4:
            assert read_all([everyone], 4, 10)
        assert [(h["channel"], b) for h, b in everyone.frames] == [
            ("fan", b"m0"), ("fan", b"m1"), ("other", b"x"), ("fan", b"m2")]
        for reader in readers:
            assert [b for _, b in reader.frames] == [b"m0", b"m1", b"m2"]
        expect_nothing(publisher)
    finally:
        for sub in subs:
            sub.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
# default) and would count as RSS: keep it small for the RSS bound.
SMALL_ASAN_QUARANTINE = {"ASAN_OPTIONS": ":".join(
    part for part in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=8") if part)}


def test_a_never_reading_subscriber_is_dropped_and_bounded(daemon_factory):
    backlog = 256 * 1024
    # The reading subscriber has the default backlog: it is a Python loop
    # racing a publisher that needs no more than the daemon's reply, and a
    # moment behind is not what this test is about.
    daemon = daemon_factory([{"kind": "tcp", "name": "tcp", "max_event_backlog": backlog},
                             {"kind": "tcp", "name": "reader"},
                             {"kind": "tcp", "name": "publisher"}], env=SMALL_ASAN_QUARANTINE)
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(daemon.address("tcp")[1])
    slow.sendall(frame({"cmd": "subscribe", "channel": "flood"}))
    good = subscribe(daemon, "reader", "flood")
    time.sleep(0.1)
    rss_before = proc_status_kib(daemon.pid, "VmRSS")

    message = bytes(range(256)) * 256  # 64 KiB
    count = 1000                       # ~62 MiB through the daemon
    publisher = daemon.connect("publisher")
    receivers = []

    def publish_all():
        for n in range(count):
            publisher.send(frame({"cmd": "publish", "channel": "flood"}, message[:-8] + b"%08d" % n))
            receivers.append(publisher.read_reply(30)[0]["receivers"])

    thread = threading.Thread(target=publish_all)
    thread.start()
    reader = FrameReader(good.sock)
    peak = [rss_before]
    done = threading.Event()

    def watch_rss():
        while not done.is_set():
            peak[0] = max(peak[0], proc_status_kib(daemon.pid, "VmRSS"))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch_rss)
    watcher.start()
    try:
        assert read_all([reader], count, 60)
    finally:
        done.set()
        watcher.join()
        thread.join(30)
    # the reading subscriber got every message, in order
    assert [b[-8:] for _, b in reader.frames] == [b"%08d" % n for n in range(count)]
    # the slow one was counted until it was dropped, then never again
    assert receivers[0] == 2 and receivers[-1] == 1
    assert receivers == sorted(receivers, reverse=True)
    # memory: nowhere near the 62 MiB published
    assert peak[0] - rss_before < 24 * 1024, "RSS grew by %d KiB" % (peak[0] - rss_before)
    stats = daemon.stats("publisher")
    assert stats["slow_subscribers"] == 1

    # when it finally reads: its subscribe reply, a prefix of the messages in
    # order, the dropped event, then EOF
    slow.settimeout(10)
    data = bytearray()
    while True:
        chunk = slow.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    slow.close()
    from framed_client import parse_reply_stream
    frames = parse_reply_stream(bytes(data))
    assert frames[0][0]["ok"] is True
    assert frames[-1] == ({"event": "dropped", "reason": "slow_subscriber"}, b"")
    got = [b[-8:] for h, b in frames[1:-1]]
    assert all(h["event"] == "message" for h, _ in frames[1:-1])
    assert got == [b"%08d" % n for n in range(len(got))]
    assert len(got) < count
    good.close()
    publisher.close()


def test_a_subscriber_receiving_events_is_not_idle(daemon_factory):
    daemon = daemon_factory([{"kind": "tcp", "name": "tcp", "idle_timeout": "600ms"}])
    with subscribe(daemon, "tcp", "tick") as sub, daemon.connect("tcp") as publisher:
        for n in range(8):
            time.sleep(0.2)
            publisher.send(frame({"cmd": "publish", "channel": "tick"}, b"%d" % n))
            expect_message(sub, "tick", b"%d" % n)
            publisher.read_reply()

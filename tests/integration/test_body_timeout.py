"""Slow bodies: limits.body_timeout and limits.min_body_rate (CONFIG.md).

A body that has begun (a json body, a length payload, a streamed put) must
be complete by body_timeout, and every min_body_rate bytes received move the
deadline one second later. Here body_timeout is 1 s and min_body_rate 1 KiB:
a body trickled at 500 B/s is answered `timeout` and closed at about 1 s; one
trickled at 5 KiB/s for over 2 s is answered normally. The deadline is the
client's: time the daemon itself holds the body back (its workers busy, so
a put's buffers stay full and the socket is not read) does not count.
"""

import hashlib
import select
import struct
import threading
import time

import pytest

from framed_client import assert_error, assert_ok, frame
from test_files import FilesDaemon, tree

LIMITS = {"body_timeout": "1s", "min_body_rate": "1KiB"}
LISTENERS = [
    {"name": "tcp", "kind": "tcp"},
    {"name": "length", "kind": "tcp", "framing": "length"},
    # Its own override: the deadline never moves, 2 s for any body.
    {"name": "fixed", "kind": "unix", "body_timeout": "2s", "min_body_rate": 0},
]


@pytest.fixture
def daemon(daemon_factory):
    return daemon_factory(LISTENERS, limits=LIMITS)


def trickle(client, data, piece, interval, limit):
    """Sends `data` `piece` bytes at a time every `interval` seconds until it
    is all sent, the daemon answers, or `limit` seconds pass. Returns the
    seconds it took and whether the daemon answered (or closed) first."""
    start = time.monotonic()
    sent = 0
    while sent < len(data) and time.monotonic() - start < limit:
        if select.select([client.sock], [], [], 0)[0]:
            return time.monotonic() - start, True
        try:
            client.send(data[sent:sent + piece])
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start, True
        sent += piece
        time.sleep(interval)
    readable = select.select([client.sock], [], [], limit)[0]
    return time.monotonic() - start, bool(readable) and sent < len(data)


def expect_timeout_then_close(client, started):
    header, _ = client.read_reply(timeout=5)
    assert_error(header, "timeout")
    assert "body_timeout" in header["error"]["message"]
    client.expect_eof(timeout=5)
    return time.monotonic() - started


def test_json_body_below_min_body_rate_is_closed_at_its_deadline(daemon):
    with daemon.connect("tcp") as client:
        client.send(frame({"cmd": "echo", "total_size": 20000}))
        started = time.monotonic()
        elapsed, answered = trickle(client, b"x" * 20000, 100, 0.2, limit=6)
        assert answered, "the daemon waited %.1fs for a body at 500 B/s" % elapsed
        took = expect_timeout_then_close(client, started)
        assert 0.8 < took < 3.5, took
    assert daemon.stats("tcp")["body_timeouts"] == 1


def test_json_body_above_min_body_rate_is_not_closed(daemon):
    body = b"y" * (12 * 1024)
    with daemon.connect("tcp") as client:
        client.send(frame({"cmd": "echo", "id": 7, "total_size": len(body)}))
        elapsed, answered = trickle(client, body, 512, 0.1, limit=10)
        assert not answered and elapsed > 1.8, elapsed  # well past body_timeout alone
        header, echoed = client.read_reply()
        assert_ok(header)
        assert echoed == body and header["id"] == 7
        assert_ok(client.request({"cmd": "ping"})[0])
    assert daemon.stats("tcp")["body_timeouts"] == 0


def test_length_payload_below_min_body_rate_is_closed(daemon):
    with daemon.connect("length") as client:
        client.send(struct.pack(">I", 10000) + b"echo ")
        started = time.monotonic()
        elapsed, answered = trickle(client, b"z" * 10000, 100, 0.2, limit=6)
        assert answered, elapsed
        (length,) = struct.unpack(">I", client.read_exact(4, deadline=time.monotonic() + 5))
        reply = client.read_exact(length, deadline=time.monotonic() + 5)
        assert reply.startswith(b"ERR timeout "), reply
        client.expect_eof(timeout=5)
        assert 0.8 < time.monotonic() - started < 3.5


def test_listener_override_without_rate_is_a_fixed_deadline(daemon):
    # 5 KiB/s would move a rated deadline on and on; min_body_rate = 0 does not.
    with daemon.connect("fixed") as client:
        client.send(frame({"cmd": "echo", "total_size": 64 * 1024}))
        started = time.monotonic()
        elapsed, answered = trickle(client, b"w" * (64 * 1024), 512, 0.1, limit=8)
        assert answered, elapsed
        took = expect_timeout_then_close(client, started)
        assert 1.8 < took < 4, took


def test_a_header_alone_is_not_a_body(daemon):
    # A connection that sends a whole frame and then nothing is idle, not slow.
    with daemon.connect("tcp") as client:
        assert_ok(client.request({"cmd": "ping"})[0])
        time.sleep(1.3)
        assert_ok(client.request({"cmd": "echo", "total_size": 3}, b"abc")[0])


def test_put_trickled_slowly_leaves_no_file():
    files = FilesDaemon({"fsync": False}, listeners=[{"name": "tcp", "kind": "tcp"}], limits=LIMITS)
    try:
        files.start()
        with files.connect("tcp") as client:
            client.send(frame({"cmd": "put", "name": "slow.bin", "total_size": 100000}))
            started = time.monotonic()
            elapsed, answered = trickle(client, b"s" * 100000, 100, 0.2, limit=6)
            assert answered, elapsed
            took = expect_timeout_then_close(client, started)
            assert 0.8 < took < 3.5, took
        assert tree(files.root) == {}
        stats = files.stats("tcp")
        assert stats["body_timeouts"] == 1 and stats["files"]["files_committed"] == 0
    finally:
        status = files.stop()
        text = files.stderr_text()
        files.cleanup()
        assert status == 0 and "Sanitizer" not in text, text


def test_time_the_daemon_holds_a_put_back_is_not_the_clients():
    # One worker, kept busy for 2 s by an exec: the put's first buffer waits
    # for it, its buffers fill up, and the daemon stops reading the body for
    # about 2 s while the client has sent it at full speed. body_timeout is
    # 1 s and fixed (min_body_rate 0): were the held time counted, the put
    # would be answered `timeout` at 1 s.
    files = FilesDaemon({"fsync": False}, listeners=[{"name": "tcp", "kind": "tcp"}],
                        daemon={"workers": 1}, limits={"body_timeout": "1s", "min_body_rate": 0})
    with open(files.config_path, "a") as config:
        config.write('\n[commands.nap]\nargv = ["/bin/sleep", "2"]\n')
    body = bytes(range(256)) * (32 * 1024)  # 8 MiB: more than an upload's buffers
    try:
        files.start()
        with files.connect("tcp", timeout=10) as napper, files.connect("tcp", timeout=10) as client:
            napper.send_request({"cmd": "exec", "id": 1, "name": "nap"})
            time.sleep(0.2)  # the worker is taken
            started = time.monotonic()
            sender = threading.Thread(target=client.send, args=(frame({"cmd": "put", "name": "held.bin",
                                                                         "total_size": len(body)}, body),))
            sender.start()
            header, _ = client.read_reply(timeout=10)
            took = time.monotonic() - started
            sender.join()
            assert_ok(header)
            assert header["size"] == len(body) and header["sha256"] == hashlib.sha256(body).hexdigest()
            assert took > 1.5, "the daemon held the body back only %.2fs: the test proves nothing" % took
            assert_ok(napper.read_reply()[0])
        assert tree(files.root) == {"held.bin": len(body)}
        assert files.stats("tcp")["body_timeouts"] == 0
    finally:
        status = files.stop()
        text = files.stderr_text()
        files.cleanup()
        assert status == 0 and "Sanitizer" not in text, text

"""PROTOCOL.md section 1 (json framing limits, splitting) and section 3
(order and errors), on raw bytes against the running daemon."""

import random
import socket
import struct
import time

import pytest

from framed_client import (ConnectionClosed, NoEof, assert_error, assert_ok, encode_header, frame, parse_reply_stream,
                           raw_frame)

SMALL_MAX_HEADER = 128
SMALL_MAX_BODY = 4096


def expect_error_then_close(client, code):
    header, body = client.read_reply()
    assert_error(header, code)
    assert body == b"", "an error reply carries no body: %r" % body[:100]
    client.expect_eof()
    return header


def padded_header(fields, size):
    """A JSON header of exactly `size` bytes (a "pad" string makes up the rest)."""
    base = dict(fields, pad="")
    missing = size - len(encode_header(base))
    assert missing >= 0, "fields do not fit in %d bytes" % size
    header = encode_header(dict(fields, pad="x" * missing))
    assert len(header) == size
    return header


# --- order ---------------------------------------------------------------

def test_pipelined_requests_are_answered_in_order(std):
    requests = []
    for i in range(200):
        kind = i % 5
        if kind == 0:
            requests.append(({"cmd": "ping", "id": i}, b""))
        elif kind == 1:
            requests.append(({"cmd": "echo", "id": i}, ("body %d " % i).encode() * (i % 7 + 1)))
        elif kind == 2:
            requests.append(({"cmd": "upper", "id": "s%d" % i}, b"abc%d" % i))
        elif kind == 3:
            requests.append(({"cmd": "no_such_command", "id": i}, b"x" * i))
        else:
            requests.append(({"id": i, "total_size": 3}, b"zzz"))  # no cmd: bad_request
    with std.connect("tcp4") as client:
        client.send(b"".join(frame(h, b) for h, b in requests))
        for header, body in requests:
            reply, reply_body = client.read_reply()
            assert reply.get("id") == header["id"], "reply out of order: expected id %r, got %r" % (header["id"], reply)
            if header.get("cmd") == "ping":
                assert_ok(reply)
                assert reply.get("pong") is True
            elif header.get("cmd") == "echo":
                assert_ok(reply)
                assert reply_body == body
            elif header.get("cmd") == "upper":
                assert_ok(reply)
                assert reply_body == body.upper()
            elif "cmd" in header:
                assert_error(reply, "unknown_command")
            else:
                assert_error(reply, "bad_request")


@pytest.mark.parametrize("request_id", [0, 1, -7, 2 ** 53 + 1, 2 ** 63 - 1, "", "abc", "naïve \"quoted\" \\ id",
                                        "x" * 300])
def test_reply_carries_the_request_id(std, request_id):
    with std.connect("tcp4") as client:
        for header in ({"cmd": "ping", "id": request_id}, {"cmd": "nope", "id": request_id}):
            reply, _ = client.request(header)
            assert "id" in reply and reply["id"] == request_id and type(reply["id"]) is type(request_id), \
                "sent id %r, reply %r" % (request_id, reply)


def test_reply_without_request_id_has_none(std):
    with std.connect("tcp4") as client:
        reply, _ = client.request({"cmd": "ping"})
        assert_ok(reply)
        assert "id" not in reply, reply


# --- errors that keep the connection open --------------------------------

# The body of each refused request is itself a complete ping frame: if the
# daemon did not skip it, an extra reply with id "inner" would come back.
INNER = frame({"cmd": "ping", "id": "inner"})

BAD_REQUESTS = {
    "no_cmd": {"id": 1},
    "cmd_number": {"cmd": 5, "id": 1},
    "cmd_null": {"cmd": None, "id": 1},
    "cmd_array": {"cmd": ["ping"], "id": 1},
    "id_float": {"cmd": "ping", "id": 1.5},
    "id_bool": {"cmd": "ping", "id": True},
    "id_array": {"cmd": "ping", "id": [1]},
    "id_object": {"cmd": "ping", "id": {"a": 1}},
    "args_numbers": {"cmd": "echo", "id": 1, "args": [1, 2]},
    "args_mixed": {"cmd": "echo", "id": 1, "args": ["a", None]},
    "args_string": {"cmd": "echo", "id": 1, "args": "a b"},
    "args_object": {"cmd": "echo", "id": 1, "args": {"a": "b"}},
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_skips_body_and_stays_open(std, case):
    header = dict(BAD_REQUESTS[case], total_size=len(INNER))
    with std.connect("tcp4") as client:
        client.send(frame(header, INNER) + frame({"cmd": "ping", "id": "after"}))
        reply, body = client.read_reply()
        assert_error(reply, "bad_request")
        if isinstance(header.get("id"), int) and not isinstance(header.get("id"), bool):
            assert reply.get("id") == 1, "bad_request with a valid id must carry it: %r" % reply
        reply, _ = client.read_reply()
        assert reply.get("id") == "after", \
            "the %d-byte body of a bad_request was not skipped (got %r instead of the reply to the next ping)" % (
                len(INNER), reply)
        assert_ok(reply)
        assert reply.get("pong") is True


def test_unknown_command_skips_body_and_stays_open(std):
    with std.connect("tcp4") as client:
        client.send(frame({"cmd": "frobnicate", "id": 7}, INNER) + frame({"cmd": "ping", "id": "after"}))
        reply, _ = client.read_reply()
        assert_error(reply, "unknown_command")
        assert reply.get("id") == 7
        reply, _ = client.read_reply()
        assert reply.get("id") == "after", "body of an unknown command was not skipped: %r" % reply
        assert_ok(reply)


# --- errors that close the connection ------------------------------------

TRAILING_PING = frame({"cmd": "ping", "id": "must not be answered"})

BAD_FRAMES = {
    "header_length_0": struct.pack(">I", 0),
    "not_json": raw_frame(b'{"cmd":'),
    "not_json_garbage": raw_frame(b"hello world"),
    "trailing_garbage": raw_frame(b'{"cmd":"ping"} x'),
    "invalid_utf8": raw_frame(b'{"cmd":"p\xffng"}'),
    "invalid_utf8_overlong": raw_frame(b'{"cmd":"ping","x":"\xc0\xaf"}'),
    "invalid_utf8_surrogate": raw_frame(b'{"cmd":"ping","x":"\xed\xa0\x80"}'),
    "array": raw_frame(b'["ping"]'),
    "number": raw_frame(b"42"),
    "string": raw_frame(b'"ping"'),
    "null": raw_frame(b"null"),
    "total_size_negative": raw_frame(b'{"cmd":"echo","total_size":-1}'),
    "total_size_float": raw_frame(b'{"cmd":"echo","total_size":1.5}'),
    "total_size_string": raw_frame(b'{"cmd":"echo","total_size":"3"}'),
    "total_size_bool": raw_frame(b'{"cmd":"echo","total_size":true}'),
    "total_size_array": raw_frame(b'{"cmd":"echo","total_size":[3]}'),
    # Two readers could disagree on which total_size counts (PROTOCOL.md 3).
    "total_size_twice": raw_frame(b'{"cmd":"echo","total_size":0,"total_size":5}hello'),
    "cmd_twice": raw_frame(b'{"cmd":"ping","cmd":"echo"}'),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_frame_replies_then_closes(std, case):
    with std.connect("tcp4") as client:
        client.send(BAD_FRAMES[case] + TRAILING_PING)
        expect_error_then_close(client, "bad_frame")


@pytest.mark.parametrize("case", ["header_length_0", "not_json", "invalid_utf8", "array", "total_size_negative",
                                  "total_size_twice"])
def test_bad_frame_after_good_requests(std, case):
    """Replies to the requests before the bad frame still arrive, in order."""
    with std.connect("tcp4") as client:
        client.send(frame({"cmd": "ping", "id": 1}) + frame({"cmd": "echo", "id": 2}, b"data") + BAD_FRAMES[case] +
                    TRAILING_PING)
        assert client.read_reply()[0].get("id") == 1
        reply, body = client.read_reply()
        assert reply.get("id") == 2 and body == b"data"
        expect_error_then_close(client, "bad_frame")


def test_header_over_max_header_refused_from_prefix_alone(std):
    """Only the 4-byte prefix is sent: the daemon must answer without waiting for the header."""
    with std.connect("small") as client:
        client.send(struct.pack(">I", SMALL_MAX_HEADER + 1))
        expect_error_then_close(client, "frame_too_large")


@pytest.mark.parametrize("length", [65537, 0x7FFFFFFF, 0xFFFFFFFF])
def test_huge_header_prefix_refused_on_default_limits(std, length):
    with std.connect("tcp4") as client:
        client.send(struct.pack(">I", length))
        expect_error_then_close(client, "frame_too_large")


def test_whole_header_over_max_header_refused(std):
    with std.connect("small") as client:
        client.send(raw_frame(padded_header({"cmd": "ping", "id": 1}, SMALL_MAX_HEADER + 1)))
        expect_error_then_close(client, "frame_too_large")


def test_body_over_max_body_refused_before_body_is_sent(std):
    with std.connect("small") as client:
        client.send(raw_frame(encode_header({"cmd": "echo", "id": 1, "total_size": SMALL_MAX_BODY + 1})))
        expect_error_then_close(client, "frame_too_large")


@pytest.mark.parametrize("total_size", [64 * 1024 * 1024 + 1, 2 ** 40, 2 ** 63])
def test_huge_total_size_refused_on_default_limits(std, total_size):
    with std.connect("tcp4") as client:
        client.send(raw_frame(encode_header({"cmd": "echo", "total_size": total_size})))
        expect_error_then_close(client, "frame_too_large")


def test_frame_exactly_at_the_limits_is_accepted(std):
    body = bytes(random.Random(1).getrandbits(8) for _ in range(SMALL_MAX_BODY))
    with std.connect("small") as client:
        # Header exactly max_header, no body.
        client.send(raw_frame(padded_header({"cmd": "ping", "id": 1}, SMALL_MAX_HEADER)))
        reply, _ = client.read_reply()
        assert_ok(reply)
        assert reply.get("id") == 1 and reply.get("pong") is True
        # Body exactly max_body.
        reply, echoed = client.request({"cmd": "echo", "id": 2}, body)
        assert_ok(reply)
        assert echoed == body
        # Both at once.
        header = padded_header({"cmd": "echo", "id": 3, "total_size": SMALL_MAX_BODY}, SMALL_MAX_HEADER)
        client.send(raw_frame(header, body))
        reply, echoed = client.read_reply()
        assert_ok(reply)
        assert reply.get("id") == 3 and echoed == body


# --- splitting and gluing -------------------------------------------------

def split_sequence():
    """A few frames of every outcome, ending with a frame that closes the connection."""
    return b"".join([
        frame({"cmd": "ping", "id": 1}),
        frame({"cmd": "echo", "id": "two"}, b"\x00\x01\xff hello \r\n"),
        frame({"cmd": "upper", "id": 3}, b"mixed Case"),
        frame({"cmd": "nosuch", "id": 4}, b"ab"),
        frame({"id": 5, "total_size": 2}, b"cd"),
        frame({"cmd": "echo", "id": 6}),
        struct.pack(">I", 0),  # bad_frame, then close
    ])


def collect(client, chunks, delay=0.0):
    for chunk in chunks:
        client.send(chunk)
        if delay:
            time.sleep(delay)
    return client.read_until_eof(timeout=10)


def test_split_and_glued_bytes_give_identical_replies(std):
    data = split_sequence()
    with std.connect("tcp4") as client:
        whole = collect(client, [data])
    replies = parse_reply_stream(whole)
    assert [r[0].get("id") for r in replies] == [1, "two", 3, 4, 5, 6, None], replies
    assert replies[1][1] == b"\x00\x01\xff hello \r\n" and replies[2][1] == b"MIXED CASE"
    assert_error(replies[3][0], "unknown_command")
    assert_error(replies[4][0], "bad_request")
    assert_error(replies[6][0], "bad_frame")

    # One byte per send, TCP_NODELAY on (set by Client), a short pause each.
    with std.connect("tcp4") as client:
        byte_by_byte = collect(client, [data[i:i + 1] for i in range(len(data))], delay=0.002)
    assert byte_by_byte == whole, "one byte per send gave different replies:\n%r\nvs glued:\n%r" % (
        parse_reply_stream(byte_by_byte), replies)

    for seed in range(5):
        rng = random.Random(seed)
        chunks, pos = [], 0
        while pos < len(data):
            size = rng.choice([1, 2, 3, 5, 8, 13, 40, 100])
            chunks.append(data[pos:pos + size])
            pos += size
        with std.connect("tcp4") as client:
            chunked = collect(client, chunks, delay=0.001)
        assert chunked == whole, "random chunking (seed %d) gave different replies" % seed


def test_many_frames_glued_with_a_split_large_body(std):
    body = bytes(range(256)) * 1024  # 256 KiB
    frames = [frame({"cmd": "echo", "id": i}, body if i == 50 else b"%d" % i) for i in range(100)]
    data = b"".join(frames)
    with std.connect("tcp4") as client:
        for pos in range(0, len(data), 65521):  # a prime: frames straddle every send
            client.send(data[pos:pos + 65521])
        for i in range(100):
            reply, echoed = client.read_reply()
            assert reply.get("id") == i
            assert echoed == (body if i == 50 else b"%d" % i)


# --- garbage never crashes -------------------------------------------------

def garbage_cases():
    rng = random.Random(42)
    deep = b'{"cmd":"ping","x":' + b"[" * 20000 + b"]" * 20000 + b"}"
    many_keys = encode_header(dict({"k%d" % i: i for i in range(3000)}, cmd="ping"))
    return {
        "random_64k": bytes(rng.getrandbits(8) for _ in range(65536)),
        "all_ff": b"\xff" * 1000,
        "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "tls_hello": bytes.fromhex("160301002e010000") + bytes(46),
        "deep_nesting": raw_frame(deep),
        "many_keys": raw_frame(many_keys),
        "nul_in_strings": raw_frame(b'{"cmd":"ping\\u0000x","id":"a\\u0000b"}'),
        "duplicate_keys": raw_frame(b'{"cmd":"ping","cmd":"echo","id":1,"id":2}'),
        "long_cmd": frame({"cmd": "x" * 60000}),
        "huge_number": raw_frame(b'{"cmd":"ping","id":1' + b"0" * 400 + b"}"),
        "half_frame_then_close": raw_frame(encode_header({"cmd": "echo", "total_size": 100000}), b"x" * 1000),
    }


@pytest.mark.parametrize("case", sorted(garbage_cases()))
def test_garbage_never_crashes(std, case):
    data = garbage_cases()[case]
    with std.connect("tcp4") as client:
        try:
            client.send(data)
            client.sock.shutdown(socket.SHUT_WR)
            rest = client.read_until_eof(timeout=4)
        except (ConnectionClosed, BrokenPipeError, ConnectionResetError):
            rest = b""
        except NoEof as error:
            rest = error.data  # a missing EOF after SHUT_WR is test_robustness's half-close business
    # Whatever came back must be well-formed reply frames.
    for header, _ in parse_reply_stream(rest):
        if header.get("ok") is False:
            assert header["error"]["message"], header
    if case == "long_cmd":
        (header, _), = parse_reply_stream(rest)
        assert_error(header, "unknown_command")
        assert len(header["error"]["message"]) < 1000, "the error message echoes the whole 60 kB name back"
    std.ping("tcp4")


def test_reset_with_a_large_reply_pending_does_not_crash(std):
    body = b"r" * (8 << 20)
    with std.connect("tcp4", timeout=10) as client:
        client.send(frame({"cmd": "echo", "id": 1}, body) + frame({"cmd": "ping"}))
        time.sleep(0.2)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    time.sleep(0.2)
    std.ping("tcp4")

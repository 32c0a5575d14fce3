"""The four transports: TCP (IPv4, IPv6), Unix stream, UDP, Unix datagram."""

import os
import socket
import stat

import pytest

from conftest import IPV6, Daemon
from framed_client import assert_error, assert_ok, parse_reply_stream, raw_frame


def roundtrip(client):
    reply, _ = client.request({"cmd": "ping", "id": 1})
    assert_ok(reply)
    assert reply.get("pong") is True and reply.get("id") == 1
    reply, body = client.request({"cmd": "echo", "id": 2}, b"\x00binary\xff" * 1000)
    assert_ok(reply)
    assert body == b"\x00binary\xff" * 1000


def test_tcp_ipv4(std):
    with std.connect("tcp4") as client:
        roundtrip(client)


@pytest.mark.skipif(not IPV6, reason="no IPv6 loopback (::1) on this machine")
def test_tcp_ipv6(std):
    family, address = std.address("tcp6")
    assert family == socket.AF_INET6 and address[0] == "::1"
    with std.connect("tcp6") as client:
        roundtrip(client)


def test_unix_stream(std):
    with std.connect("unix") as client:
        roundtrip(client)


def test_unix_socket_file_mode(std):
    for name in ("unix", "udgram"):
        path = std.listeners[name]["path"]
        info = os.lstat(path)
        assert stat.S_ISSOCK(info.st_mode), "%s is not a socket" % path
        assert stat.S_IMODE(info.st_mode) == 0o600, "%s has mode %o, configured 0600" % (path, stat.S_IMODE(info.st_mode))


def test_unix_socket_default_mode_and_removed_at_exit(daemon_factory):
    daemon = daemon_factory([{"kind": "unix", "name": "u"}, {"kind": "unix_dgram", "name": "d"}])
    paths = [daemon.listeners[n]["path"] for n in ("u", "d")]
    for path in paths:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        assert mode == 0o660, "%s has mode %o; the default is 0660" % (path, mode)
    daemon.ping("u")
    assert daemon.stop() == 0, daemon.stderr_text()
    for path in paths:
        assert not os.path.exists(path), "socket file %s left behind after exit" % path


def test_stale_unix_socket_file_is_replaced():
    daemon = Daemon([{"kind": "unix", "name": "u"}, {"kind": "unix_dgram", "name": "d"}])
    try:
        for name, kind in (("u", socket.SOCK_STREAM), ("d", socket.SOCK_DGRAM)):
            stale = socket.socket(socket.AF_UNIX, kind)
            stale.bind(daemon.listeners[name]["path"])
            stale.close()  # the file stays; nothing answers at it
            assert os.path.exists(daemon.listeners[name]["path"])
        daemon.start()
        daemon.ping("u")
        with daemon.datagram("d") as client:
            assert client.request(b"ping") == b"pong"
    finally:
        daemon.cleanup()


def test_live_unix_socket_makes_start_up_fail():
    daemon = Daemon([{"kind": "unix", "name": "u"}])
    path = daemon.listeners["u"]["path"]
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        live.bind(path)
        live.listen(8)
        daemon.start(wait_ready=False)
        status = daemon.wait(10)
        daemon.skip_if_io_uring_unavailable()
        assert status == 1, "start-up over a live socket at %s: expected exit 1, got %r\n%s" % (
            path, status, daemon.stderr_text())
        assert path in daemon.stderr_text(), "stderr does not name the path\n" + daemon.stderr_text()
        assert os.path.exists(path), "the failed daemon removed another process's live socket file"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            probe.connect(path)  # still ours
    finally:
        live.close()
        daemon.cleanup()


# --- UDP ---------------------------------------------------------------------

def test_udp_text(std):
    with std.datagram("udp") as client:
        assert client.request(b"upper hello") == b"HELLO"
        assert client.request(b"ping") == b"pong"
        assert client.request(b"echo a b  c ") == b"a b  c "


def test_udp_text_errors(std):
    with std.datagram("udp") as client:
        for payload in (b"nosuch thing", b"", b"\xff\xfe"):
            reply = client.request(payload)
            assert reply.startswith(b"ERR "), "payload %r: expected ERR <code> <message>, got %r" % (payload, reply)
            parts = reply.split(b" ", 2)
            assert len(parts) == 3 and parts[1] and parts[2].strip(), "error without code or message: %r" % reply
        assert client.request(b"nosuch thing").split(b" ")[1] == b"unknown_command"
        assert client.request(b"upper still works") == b"STILL WORKS"


def test_udp_forced_command(std):
    with std.datagram("udp_upper") as client:
        assert client.request(b"hello world") == b"HELLO WORLD"
        assert client.request(b"ping") == b"PING", "command = \"upper\": the payload is the body, not a command"


def test_udp_json_payload(std):
    with std.datagram("udp_json") as client:
        reply, _ = client.request_json({"cmd": "ping", "id": 9})
        assert_ok(reply)
        assert reply.get("pong") is True and reply.get("id") == 9
        reply, body = client.request_json({"cmd": "upper", "id": "u"}, b"json datagram")
        assert_ok(reply)
        assert body == b"JSON DATAGRAM" and reply.get("id") == "u"


@pytest.mark.parametrize("garbage", [
    b"\x00\x00\x00\x00",
    b"\x00\x00\x00\x05{bad}",
    b"not a frame at all",
    b"\x00\x00",
    raw_frame(b'{"cmd":"ping"}') + b"extra",
    raw_frame(b'{"cmd":"echo","total_size":10}', b"short"),
    raw_frame(b"[1]"),
    b"\xff\xff\xff\xff",
])
def test_udp_json_garbage_gets_error_and_endpoint_keeps_working(std, garbage):
    with std.datagram("udp_json") as client:
        data = client.request(garbage)
        replies = parse_reply_stream(data)
        assert len(replies) == 1, "one error datagram expected, got %r" % data
        header = replies[0][0]
        assert header.get("ok") is False and header["error"]["code"] in ("bad_frame", "frame_too_large"), header
        assert header["error"]["message"].strip(), header
        reply, _ = client.request_json({"cmd": "ping", "id": "next"})
        assert reply.get("id") == "next" and reply.get("pong") is True


def test_udp_json_bad_request_and_unknown_command(std):
    with std.datagram("udp_json") as client:
        reply, _ = client.request_json({"id": 1})
        assert_error(reply, "bad_request")
        reply, _ = client.request_json({"cmd": "nosuch", "id": 2})
        assert_error(reply, "unknown_command")
        assert reply.get("id") == 2


def test_udp_random_garbage_never_crashes(std):
    import random
    rng = random.Random(7)
    for name in ("udp", "udp_json", "udp_upper"):
        with std.datagram(name) as client:
            for _ in range(30):
                client.request(bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 2000))))
            client.request(b"\x00" * 65507)
    with std.datagram("udp") as client:
        assert client.request(b"ping") == b"pong"


# --- Unix datagram -----------------------------------------------------------

def test_unix_datagram_text(std):
    with std.datagram("udgram") as client:
        assert client.request(b"upper unix datagram") == b"UNIX DATAGRAM"
        assert client.request(b"ping") == b"pong"


def test_unix_datagram_json(std):
    with std.datagram("udgram_json") as client:
        reply, body = client.request_json({"cmd": "echo", "id": 3}, b"x" * 10000)
        assert_ok(reply)
        assert body == b"x" * 10000 and reply.get("id") == 3


def test_datagram_clients_do_not_mix_replies(std):
    with std.datagram("udp") as a, std.datagram("udp") as b:
        for i in range(20):
            a.send(b"upper a%d" % i)
            b.send(b"upper b%d" % i)
        for i in range(20):
            assert a.receive() == b"A%d" % i
            assert b.receive() == b"B%d" % i


# --- length and line framings (lightly: another issue covers them) ------------

def test_line_and_length_framing_smoke(daemon_factory):
    daemon = daemon_factory([{"kind": "tcp", "name": "line", "framing": "line"},
                             {"kind": "tcp", "name": "length", "framing": "length"}])
    import struct
    with daemon.connect("line") as client:
        client.send(b"upper hello\r\nping\n")
        assert client.read_exact(len(b"HELLO\npong\n")) == b"HELLO\npong\n"
    with daemon.connect("length") as client:
        client.send(struct.pack(">I", 11) + b"upper hello")
        (size,) = struct.unpack(">I", client.read_exact(4))
        assert client.read_exact(size) == b"HELLO"

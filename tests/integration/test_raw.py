"""The `raw` framing: unframed requests (what one read returns is one
message) for the tutorials' interactive TCP clients, with replies framed by
`reply_framing` (raw bytes, a u32 length, or a json frame)."""
import json
import socket
import struct

import pytest

from conftest import Daemon

SMALL_BODY = 8

LISTENERS = [
    {"kind": "tcp", "name": "raw_upper", "framing": "raw", "command": "upper"},
    {"kind": "tcp", "name": "raw_commands", "framing": "raw"},
    # The tutorials' client reads struct.unpack('i', recv(4)): a native
    # little-endian length before the reply.
    {"kind": "tcp", "name": "raw_length_le", "framing": "raw", "reply_framing": "length", "byte_order": "little"},
    {"kind": "tcp", "name": "raw_json", "framing": "raw", "reply_framing": "json"},
    {"kind": "tcp", "name": "raw_small", "framing": "raw", "command": "echo", "max_body": SMALL_BODY},
    {"kind": "unix", "name": "raw_unix", "framing": "raw", "command": "upper", "mode": "0600"},
    {"kind": "tcp", "name": "json"},
]


@pytest.fixture(scope="module")
def raw():
    daemon = Daemon([dict(spec) for spec in LISTENERS])
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


def open_socket(daemon, name):
    family, address = daemon.address(name)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(address)
    return sock


def recv_exact(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the daemon closed the connection"
        data += chunk
    return data


def read_json_reply(sock):
    (header_size,) = struct.unpack(">I", recv_exact(sock, 4))
    header = json.loads(recv_exact(sock, header_size))
    return header, recv_exact(sock, header.get("total_size", 0))


def test_interactive_upper_client(raw):
    """The tutorial's "send text, get it back upper-cased" client, unchanged."""
    with open_socket(raw, "raw_upper") as sock:
        for text in (b"hello", b"Mixed Case 123", b"x" * 1000):
            sock.sendall(text)
            assert recv_exact(sock, len(text)) == text.upper()


def test_tutorial_client_with_struct_pack_i_length(raw):
    """The tutorial's command client: send a command, read struct.pack('i', size), then the output."""
    with open_socket(raw, "raw_length_le") as sock:
        for command, expected in ((b"upper hello", b"HELLO"), (b"ping", b"pong"), (b"echo a b", b"a b")):
            sock.sendall(command)
            (size,) = struct.unpack("i", recv_exact(sock, 4))
            assert recv_exact(sock, size) == expected


def test_raw_replies_simple_mode_errors(raw):
    with open_socket(raw, "raw_commands") as sock:
        sock.sendall(b"nosuch thing")
        reply = sock.recv(4096)
        assert reply.startswith(b"ERR unknown_command "), reply
        sock.sendall(b"ping")
        assert recv_exact(sock, 4) == b"pong"  # the connection stays open


def test_json_replies_to_unframed_requests(raw):
    with open_socket(raw, "raw_json") as sock:
        sock.sendall(b"upper framed")
        header, body = read_json_reply(sock)
        assert header.get("ok") is True and body == b"FRAMED"
        sock.sendall(b"nosuch")
        header, _ = read_json_reply(sock)
        assert header["ok"] is False and header["error"]["code"] == "unknown_command"


def test_a_read_over_max_body_is_cut_into_messages(raw):
    with open_socket(raw, "raw_small") as sock:
        sock.sendall(b"0123456789abcdef01")
        # However the reads fall, echo is byte-wise: every byte comes back, in order.
        assert recv_exact(sock, 18) == b"0123456789abcdef01"


def test_raw_over_a_unix_socket(raw):
    with open_socket(raw, "raw_unix") as sock:
        sock.sendall(b"over unix")
        assert recv_exact(sock, 9) == b"OVER UNIX"


def test_raw_counts_in_stats(raw):
    with open_socket(raw, "raw_upper") as sock:
        sock.sendall(b"count me")
        recv_exact(sock, 8)
    stats = raw.stats("json")
    assert stats["listeners"]["raw_upper"]["frames_in"] >= 1

"""Every framing on every transport, proven against clients that are not ours
(issue 3; PROTOCOL.md sections 1-2, CONFIG.md listener keys, docs/framings.md).

Which client proves which framing:

- Python's own `multiprocessing.connection.Client` (send_bytes/recv_bytes, no
  authkey): `length`, over TCP and a Unix stream socket, payloads over 64 KiB.
- socat (Debian package): `line` over TCP IPv4/IPv6 and Unix stream; text
  `datagram` over UDP IPv4/IPv6 and Unix datagram.
- The socketserver tutorial clients from the Python docs, unchanged: UDP
  `socket.sendto` (and a Unix datagram twin of it) against `command = "upper"`
  datagram listeners, the TCP one against a `line` listener.
- The example clients in clients/python/examples/, run as they are documented.

One daemon holds every listener these tests use (the 3 x 3 stream matrix, the
byte-order, limit and datagram listeners); only the log rate-limit test starts
a second one, so at most two run at once. Every wait is bounded: socket
timeouts, subprocess timeouts, and a SIGALRM deadline around the
multiprocessing client, whose reads have no timeout of their own.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from multiprocessing.connection import Client as MpClient

import pytest

from conftest import FRAMED_BIN, IPV6, REPO, Daemon, toml_value
from framed_client import Client, assert_error, assert_ok, frame, parse_reply_stream

CLIENTS = os.path.join(REPO, "clients", "python", "examples")
SOCAT = shutil.which("socat") or ("/usr/bin/socat" if os.access("/usr/bin/socat", os.X_OK) else None)
needs_socat = pytest.mark.skipif(
    SOCAT is None, reason="socat is not installed (Debian package socat; scripts/install-deps.sh installs it)")
needs_ipv6 = pytest.mark.skipif(not IPV6, reason="no IPv6 loopback (::1) on this machine")

SUBPROCESS_TIMEOUT = 20
MP_DEADLINE = 20.0
MAX_UDP_PAYLOAD = 65507      # IPv4: 65535 - 8 (UDP) - 20 (IP)
MAX_UDP6_PAYLOAD = 65527     # IPv6: 65535 - 8 (UDP); the daemon's limit stays 65507
SMALL_HEADER = 64            # max_header of line_small
SMALL_BODY = 1024            # max_body of length_small, udp_small, udgram_small, udp_json_small

ERR_LINE = re.compile(rb"^ERR ([a-z_]+) (\S.*)$", re.DOTALL)


# --- the daemon ----------------------------------------------------------------

FRAMINGS = ("json", "length", "line")
STREAM_TRANSPORTS = ("tcp4", "tcp6", "unix")


def stream_listener(framing, transport, **extra):
    spec = {"name": "%s_%s" % (framing, transport), "framing": framing}
    if transport == "unix":
        spec.update(kind="unix", mode="0600")
    else:
        spec.update(kind="tcp")
        if transport == "tcp6":
            spec["host"] = "::1"
    spec.update(extra)
    return spec


LISTENERS = (
    [stream_listener(f, t) for f in FRAMINGS for t in STREAM_TRANSPORTS if t != "tcp6" or IPV6]
    + [
        {"kind": "tcp", "name": "json_le", "byte_order": "little"},
        {"kind": "tcp", "name": "length_le", "framing": "length", "byte_order": "little"},
        {"kind": "tcp", "name": "length_small", "framing": "length", "max_body": SMALL_BODY},
        {"kind": "tcp", "name": "length_upper", "framing": "length", "command": "upper"},
        {"kind": "tcp", "name": "line_small", "framing": "line", "max_header": SMALL_HEADER},
        {"kind": "tcp", "name": "line_upper", "framing": "line", "command": "upper"},
        {"kind": "udp", "name": "udp_text", "framing": "datagram", "payload": "text"},
        {"kind": "udp", "name": "udp_upper", "framing": "datagram", "payload": "text", "command": "upper"},
        {"kind": "udp", "name": "udp_json", "framing": "datagram", "payload": "json"},
        {"kind": "udp", "name": "udp_small", "framing": "datagram", "payload": "text", "max_body": SMALL_BODY},
        {"kind": "udp", "name": "udp_json_small", "framing": "datagram", "payload": "json", "max_body": SMALL_BODY},
        {"kind": "unix_dgram", "name": "udgram_text", "mode": "0600"},
        {"kind": "unix_dgram", "name": "udgram_upper", "mode": "0600", "command": "upper"},
        {"kind": "unix_dgram", "name": "udgram_json", "mode": "0600", "payload": "json"},
        {"kind": "unix_dgram", "name": "udgram_small", "mode": "0600", "max_body": SMALL_BODY},
    ]
    + ([{"kind": "udp", "name": "udp6_text", "host": "::1", "framing": "datagram", "payload": "text"}]
       if IPV6 else [])
)

# exec commands whose output is what a test needs: bigger than one UDP datagram,
# bigger than framed's Unix datagram limit (1 MiB), or full of \n, \r and \.
COMMANDS = {
    "big": {"argv": ["/usr/bin/head", "-c", "70000", "/dev/zero"]},
    "mid": {"argv": ["/usr/bin/head", "-c", "300000", "/dev/zero"]},
    "huge": {"argv": ["/usr/bin/head", "-c", "1200000", "/dev/zero"], "max_output": "2MiB"},
    # printf turns these escapes into LF, CR LF and one backslash.
    "lines": {"argv": ["/usr/bin/printf", "one\\ntwo\\r\\nthree\\\\"]},
}


def render_commands(commands):
    lines = []
    for name, values in commands.items():
        lines.append("[commands.%s]" % name)
        lines.extend("%s = %s" % (key, toml_value(value)) for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


class FramingsDaemon(Daemon):
    """conftest's Daemon with [commands.NAME] tables after its listeners."""

    def __init__(self, listeners, commands, **kwargs):
        super().__init__(listeners, **kwargs)
        with open(self.config_path, "a") as config:
            config.write("\n" + render_commands(commands))


@pytest.fixture(scope="module")
def framings_daemon():
    daemon = FramingsDaemon(LISTENERS, COMMANDS, daemon={"workers": 2})
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture
def fr(framings_daemon, request):
    """The shared daemon; after each test it must still be alive and answer ping."""
    yield framings_daemon
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        sys.stderr.write(framings_daemon.stderr_text() + "\n")
    framings_daemon.ping("json_tcp4")


# --- clients of our own, for the byte-level checks ---------------------------

class Conn(Client):
    """framed_client.Client plus simple-mode (length, line) and little-endian json."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pending = bytearray()

    def read_exact(self, size, deadline=None):
        if len(self.pending) >= size:
            data = bytes(self.pending[:size])
            del self.pending[:size]
            return data
        head = bytes(self.pending)
        self.pending.clear()
        return head + super().read_exact(size - len(head), deadline)

    # length framing
    def length_send(self, payload, order=">"):
        self.send(struct.pack(order + "I", len(payload)) + payload)

    def length_read(self, order=">"):
        (size,) = struct.unpack(order + "I", self.read_exact(4))
        if size == 0xFFFFFFFF:
            (size,) = struct.unpack(order + "Q", self.read_exact(8))
        return self.read_exact(size)

    def length_request(self, payload, order=">"):
        self.length_send(payload, order)
        return self.length_read(order)

    # line framing
    def read_line(self, timeout=None):
        """One reply line, without its \\n."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\n" not in self.pending:
            if time.monotonic() > deadline:
                raise socket.timeout("no whole line by the deadline: %r" % bytes(self.pending[:200]))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("EOF before a whole line: %r" % bytes(self.pending[:200]))
            self.pending += chunk
        end = self.pending.index(b"\n")
        line = bytes(self.pending[:end])
        del self.pending[:end + 1]
        return line

    def line_request(self, line):
        self.send(line + b"\n")
        return self.read_line()

    # json framing in either byte order
    def json_request(self, header, body=b"", order=">"):
        encoded = json.dumps(dict(header, total_size=len(body)) if body else header).encode()
        self.send(struct.pack(order + "I", len(encoded)) + encoded + body)
        (size,) = struct.unpack(order + "I", self.read_exact(4))
        reply = json.loads(self.read_exact(size))
        return reply, self.read_exact(reply.get("total_size", 0))

    def expect_eof_after(self, expected):
        """Reads to EOF; the bytes before it must be `expected` (then nothing more)."""
        rest = bytes(self.pending) + self.read_until_eof(timeout=5)
        self.pending.clear()
        assert rest == expected, "expected %r then EOF, got %r" % (expected[:200], rest[:200])


def connect(daemon, name, timeout=5.0):
    family, address = daemon.address(name)
    return Conn(address, family, timeout=timeout)


def assert_err(payload, code):
    """A simple-mode error: `ERR <code> <non-empty message>`."""
    match = ERR_LINE.match(payload)
    assert match, "expected ERR %s ..., got %r" % (code, payload[:300])
    assert match.group(1).decode() == code, "expected ERR %s ..., got %r" % (code, payload[:300])


def port_of(daemon, name):
    return daemon.address(name)[1][1]


def run_client(argv, input=None, timeout=SUBPROCESS_TIMEOUT):
    """Runs a client to completion (bounded by `timeout`); it must exit 0. Returns its stdout."""
    result = subprocess.run(argv, input=input, stdin=subprocess.DEVNULL if input is None else None,
                            capture_output=True, timeout=timeout)
    assert result.returncode == 0, "%s exited %d\nstdout: %r\nstderr: %s" % (
        argv, result.returncode, result.stdout[:500], result.stderr.decode(errors="replace")[-2000:])
    return result.stdout


@contextlib.contextmanager
def deadline(seconds, what):
    """Raises TimeoutError in this (the main) thread if the block takes longer."""

    def expired(signum, frame_):
        raise TimeoutError("%s: not done within %.0f s" % (what, seconds))

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def mp_request(connection, payload):
    connection.send_bytes(payload)
    assert connection.poll(10), "no reply to %r within 10 s" % payload[:40]
    return connection.recv_bytes()


def upper_input(size):
    """size bytes of mixed text for `upper`: lower case, digits, punctuation, UTF-8, \\n, a NUL."""
    unit = "hello, framed! 0123 ünïcødé\n\x00".encode()
    return (unit * (size // len(unit) + 1))[:size]


# --- every framing on every stream transport ---------------------------------

@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
@pytest.mark.parametrize("framing", FRAMINGS)
def test_every_framing_on_every_stream_transport(fr, framing, transport):
    if transport == "tcp6" and not IPV6:
        pytest.skip("no IPv6 loopback (::1) on this machine")
    name = "%s_%s" % (framing, transport)
    family = {"tcp4": socket.AF_INET, "tcp6": socket.AF_INET6, "unix": socket.AF_UNIX}[transport]
    assert fr.address(name)[0] == family
    binary = bytes(range(256)).replace(b"\n", b"").replace(b"\r", b"").replace(b"\\", b"") * 40
    with connect(fr, name) as conn:
        if framing == "json":
            reply, _ = conn.request({"cmd": "ping", "id": 1})
            assert_ok(reply)
            assert reply.get("pong") is True and reply.get("id") == 1
            reply, body = conn.request({"cmd": "upper", "id": "u"}, b"hello, " + name.encode())
            assert_ok(reply)
            assert body == b"HELLO, " + name.upper().encode()
            reply, body = conn.request({"cmd": "echo", "id": 3}, binary)
            assert_ok(reply)
            assert body == binary
            reply, _ = conn.request({"cmd": "nosuch", "id": 4})
            assert_error(reply, "unknown_command")
            assert reply.get("id") == 4
            reply, _ = conn.request({"id": 5})
            assert_error(reply, "bad_request")
            reply, _ = conn.request({"cmd": "ping", "id": 6})
            assert reply.get("pong") is True and reply.get("id") == 6, "connection unusable after errors"
        else:
            request = conn.length_request if framing == "length" else conn.line_request
            assert request(b"ping") == b"pong"
            assert request(b"upper hello, " + name.encode()) == b"HELLO, " + name.upper().encode()
            assert request(b"echo " + binary) == binary
            assert_err(request(b"nosuch with args"), "unknown_command")
            assert_err(request(b""), "bad_request")
            assert request(b"ping") == b"pong", "connection unusable after errors"


# --- third-party: multiprocessing.connection against `length` ----------------

def mp_session(address, family=None):
    big = os.urandom(200 * 1024)
    text = upper_input(100 * 1024)
    with deadline(MP_DEADLINE, "multiprocessing.connection.Client at %r" % (address,)):
        with MpClient(address, family=family) as connection:  # no authkey: no handshake
            assert mp_request(connection, b"ping") == b"pong"
            assert mp_request(connection, b"echo " + big) == big
            assert mp_request(connection, b"upper " + text) == text.upper()
            reply = mp_request(connection, b"nosuch 1 2 3")
            assert_err(reply, "unknown_command")
            assert b"nosuch" in reply
            # Pipelined: several send_bytes, then the replies in order.
            for i in range(20):
                connection.send_bytes(b"upper item %d" % i)
            for i in range(20):
                assert connection.poll(10)
                assert connection.recv_bytes() == b"ITEM %d" % i
            assert mp_request(connection, b"").startswith(b"ERR bad_request ")


def test_multiprocessing_connection_over_tcp(fr):
    mp_session(fr.address("length_tcp4")[1])


def test_multiprocessing_connection_over_unix(fr):
    mp_session(fr.address("length_unix")[1], family="AF_UNIX")


def test_multiprocessing_connection_with_a_command_listener(fr):
    """command = "upper" on `length`: send_bytes(text) gets the text upper-cased."""
    text = upper_input(100 * 1024)
    with deadline(MP_DEADLINE, "multiprocessing.connection.Client"):
        with MpClient(fr.address("length_upper")[1]) as connection:
            assert mp_request(connection, b"hello") == b"HELLO"
            assert mp_request(connection, b"ping") == b"PING", "the payload is the body, not a command"
            assert mp_request(connection, text) == text.upper()


# --- third-party: socat against `line` and UDP / Unix datagram ----------------

@needs_socat
def test_socat_line_over_tcp4(fr):
    # The pipeline from issue 3, as a person would type it.
    out = run_client(["/bin/sh", "-c", "printf 'upper hello\\r\\nping\\n' | %s -t 2 - TCP:127.0.0.1:%d"
                      % (SOCAT, port_of(fr, "line_tcp4"))])
    assert out == b"HELLO\npong\n"


@needs_socat
@needs_ipv6
def test_socat_line_over_tcp6(fr):
    out = run_client([SOCAT, "-t", "2", "-", "TCP6:[::1]:%d" % port_of(fr, "line_tcp6")],
                     input=b"upper hello\r\nping\nnosuch\n")
    lines = out.split(b"\n")
    assert lines[:2] == [b"HELLO", b"pong"] and lines[3:] == [b""], out
    assert_err(lines[2], "unknown_command")


@needs_socat
def test_socat_line_over_unix(fr):
    out = run_client([SOCAT, "-t", "2", "-", "UNIX-CONNECT:" + fr.listeners["line_unix"]["path"]],
                     input=b"upper hello\nping\r\necho a\\b\n")
    assert out == b"HELLO\npong\na\\\\b\n"


@needs_socat
def test_socat_line_reply_with_newlines_is_one_line(fr):
    out = run_client([SOCAT, "-t", "2", "-", "TCP:127.0.0.1:%d" % port_of(fr, "line_tcp4")],
                     input=b"exec lines\nping\n")
    assert out == b"one\\ntwo\\r\\nthree\\\\\npong\n"


@needs_socat
def test_socat_udp_text(fr):
    port = port_of(fr, "udp_text")
    out = run_client(["/bin/sh", "-c", "printf 'upper hello' | %s -t 1 - UDP:127.0.0.1:%d" % (SOCAT, port)])
    assert out == b"HELLO"
    # echo adds a newline: one trailing line ending is not part of a text datagram.
    out = run_client(["/bin/sh", "-c", "echo 'upper hello' | %s -t 1 - UDP:127.0.0.1:%d" % (SOCAT, port)])
    assert out == b"HELLO"
    out = run_client(["/bin/sh", "-c", "echo ping | %s -t 1 - UDP:127.0.0.1:%d" % (SOCAT, port)])
    assert out == b"pong"
    # Only one: a second newline is the payload's own.
    out = run_client(["/bin/sh", "-c", "printf 'upper a\\n\\n' | %s -t 1 - UDP:127.0.0.1:%d" % (SOCAT, port)])
    assert out == b"A\n"
    out = run_client(["/bin/sh", "-c", "printf 'ping' | %s -t 1 - UDP:127.0.0.1:%d" % (SOCAT, port)])
    assert out == b"pong"


@needs_socat
def test_socat_udp_command_upper(fr):
    out = run_client([SOCAT, "-t", "1", "-", "UDP:127.0.0.1:%d" % port_of(fr, "udp_upper")],
                     input=b"hello, socat\n")
    assert out == b"HELLO, SOCAT"  # the line ending socat sent is not the payload's


@needs_socat
@needs_ipv6
def test_socat_udp6_text(fr):
    out = run_client([SOCAT, "-t", "1", "-", "UDP6:[::1]:%d" % port_of(fr, "udp6_text")],
                     input=b"upper over ipv6")
    assert out == b"OVER IPV6"


@needs_socat
def test_socat_unix_datagram(fr, tmp_path):
    client_path = str(tmp_path / "socat-client.sock")
    out = run_client([SOCAT, "-t", "1", "-", "UNIX-SENDTO:%s,bind=%s" % (fr.listeners["udgram_text"]["path"],
                                                                         client_path)],
                     input=b"upper unix datagram")
    assert out == b"UNIX DATAGRAM"


# --- third-party: the Python docs' socketserver tutorial clients, unchanged ---

# The client side of "socketserver.UDPServer Example" in the Python docs
# (https://docs.python.org/3/library/socketserver.html), as it stands there;
# the test only substitutes PORT.
TUTORIAL_UDP_CLIENT = '''\
import socket
import sys

HOST, PORT = "localhost", 9999
data = " ".join(sys.argv[1:])

# SOCK_DGRAM is the socket type to use for UDP sockets
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

# As you can see, there is no connect() call; UDP has no connections.
# Instead, data is directly sent to the recipient via sendto().
sock.sendto(bytes(data + "\\n", "utf-8"), (HOST, PORT))
received = str(sock.recv(1024), "utf-8")

print("Sent:     {}".format(data))
print("Received: {}".format(received))
'''

# The same page, "socketserver.TCPServer Example", client side.
TUTORIAL_TCP_CLIENT = '''\
import socket
import sys

HOST, PORT = "localhost", 9999
data = " ".join(sys.argv[1:])

# Create a socket (SOCK_STREAM means a TCP socket)
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    # Connect to server and send data
    sock.connect((HOST, PORT))
    sock.sendall(bytes(data + "\\n", "utf-8"))

    # Receive data from the server and shut down
    received = str(sock.recv(1024), "utf-8")

print("Sent:     {}".format(data))
print("Received: {}".format(received))
'''

# The UDP tutorial client on a Unix datagram socket: the only change is the
# address family, and the bind a Unix datagram sender needs to be answered.
TUTORIAL_UNIX_DGRAM_CLIENT = '''\
import socket
import sys

SERVER, CLIENT = "/run/upper.sock", "/tmp/upper-client.sock"
data = " ".join(sys.argv[1:])

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(CLIENT)
sock.sendto(bytes(data + "\\n", "utf-8"), SERVER)
received = str(sock.recv(1024), "utf-8")

print("Sent:     {}".format(data))
print("Received: {}".format(received))
'''


def at_loopback(source, port):
    # The tutorial's only edits: our port, and 127.0.0.1 for "localhost",
    # which a bare machine (a debootstrapped root has no /etc/hosts) may not
    # resolve.
    return source.replace('"localhost", 9999', '"127.0.0.1", %d' % port)


def run_tutorial(source, *args):
    return run_client([sys.executable, "-c", source] + list(args)).decode()


def test_tutorial_udp_client_against_command_upper(fr):
    source = at_loopback(TUTORIAL_UDP_CLIENT, port_of(fr, "udp_upper"))
    out = run_tutorial(source, "hello", "world")
    # The client sends "hello world\n": that one line ending is not part of
    # the datagram's text, so the reply has none.
    assert out == "Sent:     hello world\nReceived: HELLO WORLD\n"


def test_tutorial_tcp_client_against_line_command_upper(fr):
    source = at_loopback(TUTORIAL_TCP_CLIENT, port_of(fr, "line_upper"))
    out = run_tutorial(source, "hello", "world")
    assert out == "Sent:     hello world\nReceived: HELLO WORLD\n\n"


def test_tutorial_unix_datagram_client_against_command_upper(fr, tmp_path):
    source = TUTORIAL_UNIX_DGRAM_CLIENT.replace("/run/upper.sock", fr.listeners["udgram_upper"]["path"]) \
        .replace("/tmp/upper-client.sock", str(tmp_path / "client.sock"))
    out = run_tutorial(source, "hello", "unix")
    assert out == "Sent:     hello unix\nReceived: HELLO UNIX\n"


def test_sendto_in_process_against_udp_command_upper(fr):
    """The classic client inline, with a timeout so a lost reply fails instead of hanging."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for text in (b"hello", b"ping", b"", b"\x00\xffmixed Case 123"):
            sock.sendto(text, fr.address("udp_upper")[1])
            assert sock.recv(65535) == text.upper()


# --- byte_order = "little" ----------------------------------------------------

def test_json_little_endian(fr):
    with connect(fr, "json_le") as conn:
        reply, _ = conn.json_request({"cmd": "ping", "id": 1}, order="<")
        assert reply.get("pong") is True and reply.get("id") == 1
        reply, body = conn.json_request({"cmd": "upper", "id": 2}, b"little endian", order="<")
        assert_ok(reply)
        assert body == b"LITTLE ENDIAN" and reply.get("total_size") == 13
        payload = os.urandom(100_000)
        reply, body = conn.json_request({"cmd": "echo", "id": 3}, payload, order="<")
        assert body == payload
        reply, _ = conn.json_request({"cmd": "nosuch", "id": 4}, order="<")
        assert_error(reply, "unknown_command")


def test_json_little_endian_as_native_struct_pack_i(fr):
    """The client the issue names: a native struct.pack("i", n) on a little-endian machine."""
    if sys.byteorder != "little":
        pytest.skip("native byte order here is big-endian")
    header = b'{"cmd":"upper","total_size":5}'
    with connect(fr, "json_le") as conn:
        conn.send(struct.pack("i", len(header)) + header + b"hello")
        (size,) = struct.unpack("i", conn.read_exact(4))
        reply = json.loads(conn.read_exact(size))
        assert reply.get("ok") is True and conn.read_exact(reply["total_size"]) == b"HELLO"


def test_json_big_endian_prefix_on_little_listener_is_refused(fr):
    header = b'{"cmd":"ping"}'
    with connect(fr, "json_le") as conn:
        conn.send(struct.pack(">I", len(header)) + header)  # read as 0x0e000000: far over max_header
        (size,) = struct.unpack("<I", conn.read_exact(4))
        reply = json.loads(conn.read_exact(size))
        assert_error(reply, "frame_too_large")
        conn.expect_eof()


def test_length_little_endian(fr):
    with connect(fr, "length_le") as conn:
        assert conn.length_request(b"ping", order="<") == b"pong"
        assert conn.length_request(b"upper little", order="<") == b"LITTLE"
        payload = os.urandom(150_000)
        assert conn.length_request(b"echo " + payload, order="<") == payload
        assert_err(conn.length_request(b"nosuch", order="<"), "unknown_command")
        # The large form in little-endian too.
        conn.send(struct.pack("<I", 0xFFFFFFFF) + struct.pack("<Q", 10) + b"upper tiny")
        assert conn.length_read(order="<") == b"TINY"


def test_length_big_endian_prefix_on_little_listener_is_refused(fr):
    with connect(fr, "length_le") as conn:
        conn.length_send(b"upper hello")  # big-endian 11 read as 0x0b000000, over max_body
        assert_err(conn.length_read(order="<"), "frame_too_large")
        conn.expect_eof()


# --- line framing -------------------------------------------------------------

def test_line_replies_are_escaped(fr):
    with connect(fr, "line_tcp4") as conn:
        assert conn.line_request(b"echo a\\b") == b"a\\\\b"
        assert conn.line_request(b"echo a\rb") == b"a\\rb", "a raw \\r inside the line stays, escaped"
        assert conn.line_request(b"echo cr\r\r") == b"cr\\r", "only one trailing \\r is stripped"
        assert conn.line_request(b"echo \\n is two characters") == b"\\\\n is two characters"
        assert conn.line_request(b"exec lines") == b"one\\ntwo\\r\\nthree\\\\"
        # Each escape decodes back to exactly the command's output.
        raw = conn.line_request(b"exec lines")
        assert re.sub(rb"\\(.)", lambda m: {b"n": b"\n", b"r": b"\r", b"\\": b"\\"}[m.group(1)], raw) \
            == b"one\ntwo\r\nthree\\"


def test_line_error_messages_are_escaped_too(fr):
    with connect(fr, "line_tcp4") as conn:
        reply = conn.line_request(b"no\rsuch\\cmd")
        assert_err(reply, "unknown_command")
        assert b"\r" not in reply and b"\\r" in reply and b"\\\\" in reply
        assert conn.line_request(b"ping") == b"pong"


def test_line_exactly_max_header_is_accepted(fr):
    line = b"echo " + b"x" * (SMALL_HEADER - 5)
    assert len(line) == SMALL_HEADER
    with connect(fr, "line_small") as conn:
        assert conn.line_request(line) == b"x" * (SMALL_HEADER - 5)
        assert conn.line_request(line + b"\r") == b"x" * (SMALL_HEADER - 5), "the \\r of \\r\\n is not counted"
        # Split at every byte, the same.
        for byte in line + b"\n":
            conn.send(bytes([byte]))
        assert conn.read_line() == b"x" * (SMALL_HEADER - 5)
        assert conn.line_request(b"ping") == b"pong"


def test_line_over_max_header_is_refused_and_closes(fr):
    line = b"echo " + b"x" * (SMALL_HEADER - 4)
    assert len(line) == SMALL_HEADER + 1
    with connect(fr, "line_small") as conn:
        assert conn.line_request(b"ping") == b"pong"
        conn.send(line + b"\nping\n")
        reply = conn.read_line()
        assert_err(reply, "frame_too_large")
        conn.expect_eof_after(b"")


def test_line_without_newline_is_refused_before_it_ends(fr):
    """A client that streams bytes with no newline is cut off at max_header, not buffered forever."""
    with connect(fr, "line_small") as conn:
        conn.send(b"y" * (SMALL_HEADER * 4))
        assert_err(conn.read_line(), "frame_too_large")
        conn.expect_eof_after(b"")


def test_line_empty_line_is_bad_request_and_stays_open(fr):
    with connect(fr, "line_tcp4") as conn:
        assert_err(conn.line_request(b""), "bad_request")
        assert_err(conn.line_request(b"\r"), "bad_request")
        assert conn.line_request(b"ping") == b"pong"
        # Glued: three requests in one write, three replies in order.
        conn.send(b"\nupper a\r\nping\n")
        assert_err(conn.read_line(), "bad_request")
        assert conn.read_line() == b"A"
        assert conn.read_line() == b"pong"


# --- length framing -----------------------------------------------------------

def test_length_large_form_prefix_for_a_small_payload(fr):
    with connect(fr, "length_tcp4") as conn:
        conn.send(struct.pack(">I", 0xFFFFFFFF) + struct.pack(">Q", 11) + b"upper hello")
        assert conn.length_read() == b"HELLO"
        # Split inside the u64, then glued with a plain frame.
        prefix = struct.pack(">I", 0xFFFFFFFF) + struct.pack(">Q", 4) + b"ping"
        conn.send(prefix[:6])
        time.sleep(0.05)
        conn.send(prefix[6:] + struct.pack(">I", 8) + b"upper ok")
        assert conn.length_read() == b"pong"
        assert conn.length_read() == b"OK"


def test_length_exactly_max_body_is_accepted(fr):
    payload = b"echo " + b"z" * (SMALL_BODY - 5)
    with connect(fr, "length_small") as conn:
        assert conn.length_request(payload) == b"z" * (SMALL_BODY - 5)
        assert conn.length_request(b"ping") == b"pong"


def test_length_over_max_body_is_refused_before_its_body_and_closes(fr):
    with connect(fr, "length_small") as conn:
        conn.send(struct.pack(">I", SMALL_BODY + 1))  # the prefix alone: no body is needed to refuse it
        assert_err(conn.length_read(), "frame_too_large")
        conn.expect_eof()


def test_length_large_form_over_max_body_is_refused(fr):
    with connect(fr, "length_tcp4") as conn:
        conn.send(struct.pack(">I", 0xFFFFFFFF) + struct.pack(">Q", 1 << 40))
        reply = conn.length_read()
        assert_err(reply, "frame_too_large")
        conn.expect_eof()


# --- datagram -----------------------------------------------------------------

def test_udp_largest_datagram_is_answered(fr):
    body = b"q" * (MAX_UDP_PAYLOAD - len(b"echo "))
    with fr.datagram("udp_text") as client:
        assert client.request(b"echo " + body) == body


def test_datagram_over_max_body_is_an_error_datagram(fr):
    for name in ("udp_small", "udgram_small"):
        with fr.datagram(name) as client:
            exact = b"echo " + b"d" * (SMALL_BODY - 5)
            assert client.request(exact) == b"d" * (SMALL_BODY - 5), name
            assert_err(client.request(exact + b"d"), "frame_too_large")
            assert client.request(b"ping") == b"pong", name


def test_json_datagram_over_max_body_is_an_error_datagram(fr):
    with fr.datagram("udp_json_small") as client:
        reply, body = client.request_json({"cmd": "echo", "id": 1}, b"j" * SMALL_BODY)
        assert_ok(reply)
        assert body == b"j" * SMALL_BODY
        data = client.request(frame({"cmd": "echo", "id": 2}, b"j" * (SMALL_BODY + 1)))
        (reply, _), = parse_reply_stream(data)
        assert_error(reply, "frame_too_large")
        reply, _ = client.request_json({"cmd": "ping", "id": 3})
        assert reply.get("pong") is True and reply.get("id") == 3


@needs_ipv6
def test_udp6_datagram_over_65507_is_an_error_datagram(fr):
    """IPv6 carries up to 65527 payload bytes; framed's UDP limit is 65507 on both."""
    with fr.datagram("udp6_text") as client:
        body = b"6" * (MAX_UDP_PAYLOAD - 5)
        assert client.request(b"echo " + body) == body
        assert_err(client.request(b"echo " + body + b"66"), "frame_too_large")
        assert_err(client.request(b"e" * MAX_UDP6_PAYLOAD), "frame_too_large")
        assert client.request(b"ping") == b"pong"


def test_udp_reply_over_the_datagram_limit_is_an_error_datagram(fr):
    """`exec big` writes 70000 bytes: more than one UDP datagram holds."""
    with fr.datagram("udp_text") as client:
        reply = client.request(b"exec big")
        assert_err(reply, "frame_too_large")
        assert client.request(b"ping") == b"pong"
    with fr.datagram("udp_json") as client:
        reply, body = client.request_json({"cmd": "exec", "name": "big", "id": "too-big"})
        assert_error(reply, "frame_too_large")
        assert reply.get("id") == "too-big" and body == b""


def test_unix_datagram_replies_may_exceed_the_udp_limit(fr):
    with fr.datagram("udgram_text") as client:
        assert client.request(b"exec big") == b"\0" * 70000
    with fr.datagram("udgram_json") as client:
        reply, body = client.request_json({"cmd": "exec", "name": "big", "id": 1})
        assert_ok(reply)
        assert body == b"\0" * 70000 and reply.get("exit_code") == 0


def test_unix_datagram_reply_over_1_mib_is_an_error_datagram(fr):
    with fr.datagram("udgram_text") as client:
        assert_err(client.request(b"exec huge"), "frame_too_large")
        assert client.request(b"ping") == b"pong"


# Over the socket's send buffer (net.core.wmem_default) but under framed's
# 1 MiB Unix datagram limit: sendmsg fails with EMSGSIZE, and the sender
# must get an error datagram rather than nothing.
def test_unix_datagram_reply_between_sndbuf_and_1_mib_is_answered(fr):
    with fr.datagram("udgram_text", timeout=3) as client:
        try:
            reply = client.request(b"exec mid")  # 300000 bytes of output
        except socket.timeout:
            pytest.fail("no reply datagram at all to `exec mid` (300000 bytes)")
        assert reply == b"\0" * 300000 or ERR_LINE.match(reply), reply[:100]


GARBAGE = [
    b"",
    b"\x00\x00\x00\x00",
    b"\x00\x00\x00\x05{bad}",
    b"\xff\xff\xff\xff",
    b"plain text on a json listener",
    struct.pack(">I", 14) + b'{"cmd":"ping"}' + b"trailing",
    struct.pack(">I", 29) + b'{"cmd":"echo","total_size":9}' + b"short",
    struct.pack(">I", 3) + b"[1]",
]


@pytest.mark.parametrize("name", ["udp_json", "udgram_json"])
def test_garbage_json_datagrams_get_errors_and_disturb_no_one(fr, name):
    with fr.datagram(name) as bad, fr.datagram(name) as good:
        for garbage in GARBAGE:
            data = bad.request(garbage)
            replies = parse_reply_stream(data)
            assert len(replies) == 1, "one error datagram for %r, got %r" % (garbage, data)
            header = replies[0][0]
            assert header.get("ok") is False, (garbage, header)
            assert header["error"]["code"] in ("bad_frame", "frame_too_large", "bad_request"), (garbage, header)
            assert header["error"]["message"].strip(), header
            reply, body = good.request_json({"cmd": "upper", "id": "good"}, b"still fine")
            assert reply.get("id") == "good" and body == b"STILL FINE"
        # Interleaved without waiting: each sender gets its own answer.
        bad.send(b"\x00garbage")
        good.send(frame({"cmd": "ping", "id": "after"}))
        (reply, _), = parse_reply_stream(good.receive())
        assert reply.get("id") == "after" and reply.get("pong") is True
        (reply, _), = parse_reply_stream(bad.receive())
        assert reply.get("ok") is False


def test_garbage_datagram_log_lines_are_rate_limited(daemon_factory):
    daemon = daemon_factory([{"kind": "udp", "name": "j", "framing": "datagram", "payload": "json"}],
                            daemon={"workers": 1, "log_level": "debug"})
    with daemon.datagram("j") as client:
        for i in range(300):
            (reply, _), = parse_reply_stream(client.request(b"garbage %d" % i))
            assert reply.get("ok") is False
        reply, _ = client.request_json({"cmd": "ping", "id": 1})
        assert reply.get("pong") is True
    noted = [line for line in daemon.stderr_text().splitlines() if "datagram from" in line]
    assert 1 <= len(noted) <= 10, "300 garbage datagrams logged %d lines:\n%s" % (len(noted), "\n".join(noted[:20]))


# --- command = NAME -----------------------------------------------------------

@pytest.mark.parametrize("listener", [
    {"kind": "tcp", "address": "127.0.0.1:9", "command": "upper"},
    {"kind": "unix", "path": "/tmp/never.sock", "framing": "json", "command": "upper"},
    {"kind": "udp", "address": "127.0.0.1:9", "framing": "datagram", "payload": "json", "command": "upper"},
])
def test_command_is_refused_on_json_framing(tmp_path, listener):
    path = tmp_path / "framed.toml"
    path.write_text("[[listener]]\n" + "".join("%s = %s\n" % (k, toml_value(v)) for k, v in listener.items()))
    result = subprocess.run([FRAMED_BIN, "--check-config", "--config", str(path)], capture_output=True,
                            timeout=SUBPROCESS_TIMEOUT)
    assert result.returncode == 1, result
    assert b"command" in result.stderr, result.stderr


def test_command_listeners_ignore_command_words(fr):
    with connect(fr, "line_upper") as conn:
        assert conn.line_request(b"ping") == b"PING"
        assert conn.line_request(b"echo a\\b") == b"ECHO A\\\\B"
        assert conn.line_request(b"") == b"", "an empty line is an empty body for a command listener"
    with connect(fr, "length_upper") as conn:
        assert conn.length_request(b"exec big") == b"EXEC BIG"
    with fr.datagram("udgram_upper") as client:
        assert client.request(b"nosuch thing") == b"NOSUCH THING"


# --- the example clients of clients/python/examples/ --------------------------

def run_script(script, *args):
    return run_client([sys.executable, os.path.join(CLIENTS, script)] + [str(a) for a in args]).decode()


def parse_json_client_output(out):
    replies = []
    for line in out.splitlines():
        header, end = json.JSONDecoder().raw_decode(line)
        replies.append((header, line[end + 1:]))
    return replies


@pytest.mark.parametrize("listener,extra", [("json_tcp4", []), ("json_le", ["--little"]),
                                            ("json_tcp6", [])])
def test_json_client_py(fr, listener, extra):
    if listener == "json_tcp6" and not IPV6:
        pytest.skip("no IPv6 loopback (::1) on this machine")
    host, port = fr.address(listener)[1][:2]
    replies = parse_json_client_output(run_script("json_client.py", host, port, *extra))
    assert len(replies) == 2, replies
    (ping, ping_body), (upper, upper_body) = replies
    assert ping.get("id") == 1 and ping.get("ok") is True and ping.get("pong") is True and ping_body == ""
    assert upper.get("id") == 2 and upper.get("ok") is True and upper_body == "HELLO, FRAMED"


def test_json_client_py_big_endian_against_little_listener_fails(fr):
    """Without --little the prefix is read in the wrong order: framed refuses and closes."""
    result = subprocess.run([sys.executable, os.path.join(CLIENTS, "json_client.py"), "127.0.0.1",
                             str(port_of(fr, "json_le"))], capture_output=True, timeout=SUBPROCESS_TIMEOUT)
    assert result.returncode != 0, result


def test_length_client_py(fr):
    out = run_script("length_client.py", "127.0.0.1", port_of(fr, "length_tcp4")).splitlines()
    assert out[:2] == ["pong", "HELLO, FRAMED"] and len(out) == 3, out
    assert_err(out[2].encode(), "unknown_command")


def test_line_client_py(fr):
    out = run_script("line_client.py", "127.0.0.1", port_of(fr, "line_tcp4")).splitlines()
    # The client sends the four characters two\nlines: the backslash comes back escaped.
    assert out == ["pong", "HELLO, FRAMED", "two\\\\nlines"], out


@pytest.mark.parametrize("listener", ["udp_text", "udp6_text"])
def test_udp_client_py(fr, listener):
    if listener == "udp6_text" and not IPV6:
        pytest.skip("no IPv6 loopback (::1) on this machine")
    host, port = fr.address(listener)[1][:2]
    assert run_script("udp_client.py", host, port) == "HELLO, FRAMED\n"
    assert run_script("udp_client.py", host, port, "ping") == "pong\n"


def test_udp_client_py_against_command_upper(fr):
    assert run_script("udp_client.py", "127.0.0.1", port_of(fr, "udp_upper"), "hello") == "HELLO\n"


def test_unix_dgram_client_py(fr):
    path = fr.listeners["udgram_text"]["path"]
    assert run_script("unix_dgram_client.py", path) == "HELLO, FRAMED\n"
    assert run_script("unix_dgram_client.py", path, "ping") == "pong\n"
    assert run_script("unix_dgram_client.py", fr.listeners["udgram_upper"]["path"], "hi") == "HI\n"

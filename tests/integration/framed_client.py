"""A small client for the framed wire protocol (PROTOCOL.md), for tests.

json framing: u32 big-endian header length, the JSON header, then
`total_size` bytes of body. Every read is bounded by the socket timeout and
by an overall deadline, so a daemon that stops answering fails a test
instead of hanging it.
"""

import json
import socket
import struct
import time

DEFAULT_TIMEOUT = 5.0


class ProtocolError(AssertionError):
    """The daemon sent something that is not a valid reply frame."""


class ConnectionClosed(AssertionError):
    """EOF (or a reset) where a reply was expected."""


class NoEof(socket.timeout):
    """The daemon did not close the connection in time; `data` is what came before."""

    def __init__(self, message, data):
        super().__init__(message)
        self.data = data


def raw_frame(header_bytes, body=b""):
    """A json frame from raw header bytes: no JSON encoding, no checks."""
    return struct.pack(">I", len(header_bytes)) + header_bytes + body


def encode_header(header):
    return json.dumps(header, separators=(",", ":")).encode("utf-8")


def frame(header, body=b""):
    """A json frame. total_size is set from the body unless the header has it."""
    header = dict(header)
    if body and "total_size" not in header:
        header["total_size"] = len(body)
    return raw_frame(encode_header(header), body)


def parse_reply_stream(data):
    """Splits a byte string into (header dict, body) replies; the tail must be empty."""
    replies = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise ProtocolError("trailing %d bytes are not a whole length prefix" % (len(data) - pos))
        (length,) = struct.unpack_from(">I", data, pos)
        pos += 4
        header = _decode_header(data[pos:pos + length])
        pos += length
        size = _body_size(header)
        if len(data) - pos < size:
            raise ProtocolError("reply body cut short: %d of %d bytes" % (len(data) - pos, size))
        replies.append((header, data[pos:pos + size]))
        pos += size
    return replies


def _decode_header(raw):
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError("reply header is not UTF-8 JSON (%s): %r" % (error, raw[:200]))
    if not isinstance(header, dict):
        raise ProtocolError("reply header is not a JSON object: %r" % raw[:200])
    return header


def _body_size(header):
    size = header.get("total_size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ProtocolError("reply total_size is not a non-negative integer: %r" % (header,))
    return size


class Client:
    """One stream connection (TCP or Unix) speaking json framing."""

    def __init__(self, address, family=socket.AF_INET, timeout=DEFAULT_TIMEOUT, nodelay=True, source=None):
        """`source`: the local (host, port) to connect from, e.g. ("127.0.0.2", 0)."""
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        if family in (socket.AF_INET, socket.AF_INET6) and nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if source is not None:
                self.sock.bind(source)
            self.sock.connect(address)
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_request(self, header, body=b""):
        self.send(frame(header, body))

    def read_exact(self, size, deadline=None):
        """Exactly `size` bytes, or ConnectionClosed / socket.timeout."""
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        chunks = bytearray()
        while len(chunks) < size:
            if time.monotonic() > deadline:
                raise socket.timeout("read of %d bytes not done by the deadline (%d read)" % (size, len(chunks)))
            try:
                chunk = self.sock.recv(min(size - len(chunks), 1 << 20))
            except ConnectionResetError:
                raise ConnectionClosed("connection reset after %d of %d bytes" % (len(chunks), size))
            if not chunk:
                raise ConnectionClosed("EOF after %d of %d bytes" % (len(chunks), size))
            chunks += chunk
        return bytes(chunks)

    def read_reply(self, timeout=None):
        """The next reply as (header dict, body bytes)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        (length,) = struct.unpack(">I", self.read_exact(4, deadline))
        if length == 0:
            raise ProtocolError("reply header length 0")
        header = _decode_header(self.read_exact(length, deadline))
        size = _body_size(header)
        body = self.read_exact(size, deadline) if size else b""
        return header, body

    def request(self, header, body=b"", timeout=None):
        self.send_request(header, body)
        return self.read_reply(timeout)

    def read_until_eof(self, timeout=None, limit=256 << 20):
        """Every byte up to EOF. Raises socket.timeout if EOF does not come in time."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        data = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoEof("no EOF within the deadline (%d bytes read)" % len(data), bytes(data))
            self.sock.settimeout(min(remaining, self.timeout))
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                raise NoEof("no EOF within the deadline (%d bytes read)" % len(data), bytes(data))
            except ConnectionResetError:
                raise ConnectionClosed("connection reset instead of an orderly close (%d bytes read)" % len(data))
            finally:
                self.sock.settimeout(self.timeout)
            if not chunk:
                return bytes(data)
            data += chunk
            if len(data) > limit:
                raise ProtocolError("more than %d bytes before EOF" % limit)

    def expect_eof(self, timeout=None):
        """Asserts the daemon closes the connection with nothing more to say."""
        rest = self.read_until_eof(timeout)
        if rest:
            raise ProtocolError("expected EOF, got %d more bytes: %r" % (len(rest), rest[:200]))


class DatagramClient:
    """UDP or Unix datagram: one datagram out, one back."""

    def __init__(self, address, family=socket.AF_INET, bind_path=None, timeout=DEFAULT_TIMEOUT):
        self.address = address
        self.bind_path = bind_path
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        if bind_path is not None:
            self.sock.bind(bind_path)  # a Unix datagram sender needs a name to be answered at

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()
        if self.bind_path is not None:
            try:
                import os
                os.unlink(self.bind_path)
            except FileNotFoundError:
                pass

    def send(self, payload):
        self.sock.sendto(payload, self.address)

    def receive(self, size=1 << 20):
        data, _ = self.sock.recvfrom(size)
        return data

    def request(self, payload):
        self.send(payload)
        return self.receive()

    def request_json(self, header, body=b""):
        """A json-payload datagram: one json frame each way."""
        data = self.request(frame(header, body))
        replies = parse_reply_stream(data)
        if len(replies) != 1:
            raise ProtocolError("a reply datagram must hold exactly one frame, got %d: %r" % (len(replies), data[:200]))
        return replies[0]


def assert_ok(header, body=None):
    assert header.get("ok") is True, "expected ok:true, got %r" % (header,)


def assert_error(header, code):
    """An error reply with `code` and a non-empty message (PROTOCOL.md section 3)."""
    assert header.get("ok") is False, "expected an error %s, got %r" % (code, header)
    error = header.get("error")
    assert isinstance(error, dict), "error reply without an error object: %r" % (header,)
    assert error.get("code") == code, "expected error code %s, got %r" % (code, header)
    message = error.get("message")
    assert isinstance(message, str) and message.strip(), "error message is empty: %r" % (header,)

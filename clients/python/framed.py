"""A client for the framed daemon, standard library only.

`Client`: a stream connection (TCP, Unix) in the ``json`` framing, a ``u32``
header length, a JSON header, then ``total_size`` bytes of body, each way;
every command, streamed files, pub/sub, streamed exec output. `SimpleClient`:
a stream connection in the ``length`` or ``line`` framing, simple-mode text
commands. `DatagramClient`: UDP or Unix datagram sockets, text or json
payloads, one datagram each way. The wire format is docs/protocol.md in the
framed repository.

    import framed

    with framed.connect("tcp://127.0.0.1:9000") as client:
        client.ping()
        print(client.upper(b"hello"))           # b'HELLO'

Every failure the daemon reports is raised as a subclass of `Error` carrying
the daemon's ``code`` and ``message``; replies come back in request order, so
`Client.pipeline` and `Client.send`/`Client.receive` let many requests be in
flight on one connection.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import selectors
import shutil
import socket
import ssl
import stat
import struct
import tempfile
from collections import deque
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Deque, Dict, Iterator, List, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

__all__ = [
    "connect", "Client", "SimpleClient", "DatagramClient", "Pipeline", "Reply", "Message", "Dropped", "Output",
    "ExecResult", "FileInfo", "Error", "BadFrameError", "FrameTooLargeError", "BadRequestError",
    "UnknownCommandError", "ForbiddenError", "NotFoundError", "CommandTimeoutError", "TooBusyError",
    "NoSpaceError", "InternalError", "ProtocolError", "ConnectionClosedError", "ClientTimeoutError",
    "ChecksumMismatchError", "SlowSubscriberError",
]

DEFAULT_TIMEOUT = 10.0
CHUNK_SIZE = 256 * 1024        # what one send or recv of a streamed body moves
_LARGE_LENGTH = 0xFFFFFFFF     # length framing's escape: a u64 length follows
Bytes = Union[bytes, bytearray, memoryview]


# --- errors --------------------------------------------------------------------

class Error(Exception):
    """A failed request: ``code`` is the daemon's error code (or one of this
    module's own for failures on the client side), ``message`` says why.
    ``reply`` is the error reply when there was one (an exec ``timeout``
    carries the output captured so far)."""

    code = "error"

    def __init__(self, message: str, code: Optional[str] = None, reply: Optional["Reply"] = None) -> None:
        super().__init__("%s: %s" % (code or self.code, message))
        if code is not None:
            self.code = code
        self.message = message
        self.reply = reply


class BadFrameError(Error):
    """The daemon could not read a frame (it closes the connection)."""
    code = "bad_frame"


class FrameTooLargeError(Error):
    """A length passed one of the listener's limits."""
    code = "frame_too_large"


class BadRequestError(Error):
    """A field is missing or wrong."""
    code = "bad_request"


class UnknownCommandError(Error):
    code = "unknown_command"


class ForbiddenError(Error):
    """Not allowed: an unconfigured exec name, files disabled, a name outside the root."""
    code = "forbidden"


class NotFoundError(Error):
    code = "not_found"


class CommandTimeoutError(Error):
    """The daemon's own timeout (an exec that ran too long), not the client's."""
    code = "timeout"


class TooBusyError(Error):
    code = "too_busy"


class NoSpaceError(Error):
    code = "no_space"


class InternalError(Error):
    code = "internal"


class ProtocolError(Error):
    """The daemon sent bytes that are not a valid frame."""
    code = "protocol_error"


class ConnectionClosedError(Error, ConnectionError):
    """The connection ended where a reply was expected."""
    code = "connection_closed"


class ClientTimeoutError(Error, TimeoutError):
    """No answer within the client's timeout."""
    code = "client_timeout"


class ChecksumMismatchError(Error):
    """The bytes received do not hash to the sha256 the daemon announced."""
    code = "checksum_mismatch"


class SlowSubscriberError(Error):
    """The daemon dropped this connection for not reading its events fast enough."""
    code = "slow_subscriber"


_ERRORS_BY_CODE: Dict[str, type] = {
    cls.code: cls for cls in (BadFrameError, FrameTooLargeError, BadRequestError, UnknownCommandError,
                              ForbiddenError, NotFoundError, CommandTimeoutError, TooBusyError,
                              NoSpaceError, InternalError)
}


def _error_from(code: str, message: str, reply: Optional["Reply"] = None) -> Error:
    cls = _ERRORS_BY_CODE.get(code, Error)
    return cls(message or "(no message)", code=code, reply=reply)


def _raise_simple_error(reply: bytes) -> bytes:
    """A simple-mode reply, or its `Error` raised when it is ``ERR <code> <message>``."""
    if reply.startswith(b"ERR "):
        code, _, message = reply[4:].partition(b" ")
        if code and code.replace(b"_", b"").isalpha() and code.islower():
            raise _error_from(code.decode(), message.decode("utf-8", "replace"))
    return reply


# --- values --------------------------------------------------------------------

@dataclass
class Reply:
    """One reply: its JSON header and its body."""

    header: Dict[str, Any]
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.header.get("ok") is True

    @property
    def id(self) -> Any:
        return self.header.get("id")

    def error(self) -> Optional[Error]:
        """The `Error` this reply reports, or None when it is ok."""
        if self.ok:
            return None
        detail = self.header.get("error") or {}
        return _error_from(str(detail.get("code", "error")), str(detail.get("message", "")), self)

    def raise_for_error(self) -> "Reply":
        """Returns the reply itself when ok, else raises its `Error`."""
        error = self.error()
        if error is not None:
            raise error
        return self


@dataclass
class Message:
    """A pub/sub message event."""

    channel: str
    data: bytes


@dataclass
class Dropped:
    """The daemon's last event before it closes a slow subscriber."""

    reason: str


@dataclass
class Output:
    """One chunk of a streamed exec's output; ``stream`` is "stdout" or "stderr"."""

    stream: str
    data: bytes


@dataclass
class ExecResult:
    """A command that ran (whatever its exit status)."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    signal: int = 0
    truncated: bool = False
    header: Dict[str, Any] = field(default_factory=dict)


@dataclass
class FileInfo:
    """What put and get answer: the whole file's sha256 and size."""

    name: str
    sha256: str
    size: int
    offset: int = 0
    length: int = 0
    data: Optional[bytes] = None   # get without a destination only


Event = Union[Message, Dropped, Output]


# --- addresses -------------------------------------------------------------------

def _parse_host_port(netloc: str, url: str) -> Tuple[str, int]:
    host, _, port = netloc.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("%s: expected HOST:PORT" % url)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def connect(url: str, *, timeout: Optional[float] = DEFAULT_TIMEOUT, byte_order: str = "big",
            payload: str = "text", framing: str = "json",
            ssl_context: Optional[ssl.SSLContext] = None,
            token: Optional[str] = None) -> Union["Client", "SimpleClient", "DatagramClient"]:
    """A client for an address written as a URL.

    ``tcp://HOST:PORT`` (``tcp://[::1]:9000`` for IPv6) and ``unix:///PATH``
    give a `Client` (json framing); ``udp://HOST:PORT`` and
    ``unix-dgram:///PATH`` give a `DatagramClient` with ``payload`` "text" or
    "json". A stream listener in the ``length`` or ``line`` framing takes
    ``framing="length"`` or ``"line"``: a `SimpleClient`. ``byte_order``
    ("big" or "little") must match the listener's. ``ssl_context`` (tcp
    only) speaks TLS to a listener with ``tls_cert``, e.g.
    ``ssl.create_default_context(cafile="ca.pem")``. ``token``: a stream
    connection authenticates with it first (listeners with ``auth =
    "token"``), raising `ForbiddenError` for a wrong one.
    """
    parts = urlsplit(url)
    if token is not None and parts.scheme not in ("tcp", "unix"):
        raise ValueError("a token is for stream connections (tcp://, unix://): a datagram has none to authenticate")
    stream: Any = None
    if framing not in ("json", "length", "line"):
        raise ValueError('framing must be "json", "length" or "line"')
    stream_options: Dict[str, Any] = {"timeout": timeout, "byte_order": byte_order}
    stream_class: Any = Client
    if framing != "json":
        stream_class = SimpleClient
        stream_options["framing"] = framing
    if ssl_context is not None and parts.scheme != "tcp":
        raise ValueError("ssl_context is for tcp:// addresses")
    if parts.scheme == "tcp":
        host, port = _parse_host_port(parts.netloc, url)
        stream = stream_class.tcp(host, port, ssl_context=ssl_context, **stream_options)
    elif parts.scheme == "unix":
        stream = stream_class.unix(unquote(parts.netloc + parts.path), **stream_options)
    if stream is not None:
        if token is not None:
            try:
                stream.auth(token)
            except BaseException:
                stream.close()
                raise
        return stream
    if parts.scheme == "udp":
        host, port = _parse_host_port(parts.netloc, url)
        return DatagramClient.udp(host, port, timeout=timeout, payload=payload, byte_order=byte_order)
    if parts.scheme in ("unix-dgram", "unixgram"):
        return DatagramClient.unix(unquote(parts.netloc + parts.path), timeout=timeout, payload=payload,
                                   byte_order=byte_order)
    raise ValueError("%s: the scheme must be tcp, unix, udp or unix-dgram" % url)


def _prefix_format(byte_order: str) -> str:
    if byte_order == "big":
        return ">I"
    if byte_order == "little":
        return "<I"
    raise ValueError('byte_order must be "big" or "little", not %r' % (byte_order,))


def _encode_header(header: Dict[str, Any]) -> bytes:
    return json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _decode_header(raw: bytes) -> Dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError("reply header is not UTF-8 JSON (%s)" % error) from None
    if not isinstance(header, dict):
        raise ProtocolError("reply header is not a JSON object")
    size = header.get("total_size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ProtocolError("reply total_size is not a non-negative integer: %r" % (size,))
    return header


def _is_event(header: Dict[str, Any]) -> bool:
    return "event" in header and "ok" not in header


def _source_size(source: BinaryIO) -> int:
    """The bytes left in a file object, or ValueError when it cannot say."""
    try:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError
        return info.st_size - source.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    try:
        here = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(here)
        return end - here
    except (AttributeError, OSError, io.UnsupportedOperation):
        raise ValueError("put: give size= for a source that cannot seek") from None


# --- stream client -------------------------------------------------------------------

class _StreamConnection:
    """A connected stream socket with a receive buffer: what `Client` and
    `SimpleClient` share. A timeout or a failure in the middle of a frame
    leaves the connection unusable (the next frame's start is unknown):
    every later call raises the same error."""

    def __init__(self, sock: socket.socket, timeout: Optional[float], byte_order: str) -> None:
        self._sock = sock
        self._prefix = _prefix_format(byte_order)
        self.timeout = timeout
        sock.settimeout(timeout)
        self._buffer = bytearray()         # bytes received, not yet parsed
        self._broken: Optional[Error] = None

    @classmethod
    def tcp(cls, host: str = "127.0.0.1", port: int = 9000, *, timeout: Optional[float] = DEFAULT_TIMEOUT,
            ssl_context: Optional[ssl.SSLContext] = None, **options: Any) -> Any:
        """Connects to a TCP listener (IPv4, IPv6 or a host name); with
        ``ssl_context``, over TLS, the server's certificate checked for
        ``host``."""
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            try:
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
        return cls(sock, timeout=timeout, **options)

    @classmethod
    def unix(cls, path: str, *, timeout: Optional[float] = DEFAULT_TIMEOUT, **options: Any) -> Any:
        """Connects to a Unix stream listener (``@name`` for an abstract socket)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect("\0" + path[1:] if path.startswith("@") else path)
        except BaseException:
            sock.close()
            raise
        return cls(sock, timeout=timeout, **options)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise self._broken

    def _break(self, error: Error) -> None:
        """Marks the connection unusable (the frame boundary is lost) and raises."""
        self._broken = error
        raise error

    def _recv_some(self, timeout_breaks: bool = True) -> bytes:
        try:
            data = self._sock.recv(CHUNK_SIZE)
        except socket.timeout:
            error = ClientTimeoutError("no answer from the daemon within %s s" % self._sock.gettimeout())
            if not timeout_breaks:
                raise error from None
            self._break(error)
        except OSError as error:
            self._break(ConnectionClosedError("receive failed: %s" % error))
        if not data:
            self._break(ConnectionClosedError("the daemon closed the connection"))
        return data

    def _read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._buffer += self._recv_some()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _read_pieces(self, size: int) -> Iterator[bytes]:
        """``size`` body bytes in pieces of at most CHUNK_SIZE, never all at once."""
        left = size
        while left:
            if not self._buffer:
                self._buffer += self._recv_some()
            piece = bytes(self._buffer[:min(left, CHUNK_SIZE)])
            del self._buffer[:len(piece)]
            left -= len(piece)
            yield piece


class Client(_StreamConnection):
    """One stream connection (TCP or Unix) speaking the json framing.

    ``Client.tcp(host, port)`` or ``Client.unix(path)``, with ``timeout``
    (seconds for every wait for the daemon, None waits for ever; past it
    `ClientTimeoutError`) and ``byte_order`` ("big", or "little" for a
    listener that says so). Not thread-safe: use one client per thread.
    Events (pub/sub messages, exec output) that arrive while a reply is
    awaited are kept, in order, for `next_event`.
    """

    def __init__(self, sock: socket.socket, *, timeout: Optional[float] = DEFAULT_TIMEOUT,
                 byte_order: str = "big") -> None:
        super().__init__(sock, timeout, byte_order)
        self._next_id = 1
        self._in_flight: Deque[Any] = deque()   # ids sent, replies not yet read
        self._early: Deque[Reply] = deque()     # replies read ahead of a receive()
        self._events: Deque[Event] = deque()

    # --- the primitives: frames out, frames in ---------------------------------

    def send(self, cmd: str, body: Bytes = b"", **fields: Any) -> Any:
        """Sends one request without waiting; returns its id. Read its reply
        with `receive` (replies come in the order the requests were sent)."""
        request_id, frame = self._frame(cmd, body, fields)
        self._send_all(frame)
        self._in_flight.append(request_id)
        return request_id

    def receive(self) -> Reply:
        """The reply to the oldest request sent and not yet received. Error
        replies are returned, not raised (see `Reply.raise_for_error`)."""
        if self._early:
            return self._early.popleft()
        if not self._in_flight:
            raise RuntimeError("receive() with no request in flight")
        header = self._read_reply_header()
        reply = Reply(header, self._read_exact(header.get("total_size", 0)))
        self._in_flight.popleft()
        return reply

    def request(self, cmd: str, body: Bytes = b"", **fields: Any) -> Reply:
        """Sends one request and returns its reply, raising its `Error`."""
        request_id = self.send(cmd, body, **fields)
        return self._reply_to(request_id).raise_for_error()

    def pipeline(self) -> "Pipeline":
        """A batch of requests sent together, replies read as they come:

            with client.pipeline() as batch:
                for _ in range(10000):
                    batch.request("ping")
            replies = batch.replies          # in request order

        Sending and reading overlap, so a batch of any size never deadlocks
        on full socket buffers. Error replies are returned, not raised.
        """
        return Pipeline(self)

    def next_event(self, timeout: Optional[float] = None) -> Event:
        """The next event (pub/sub `Message`, exec `Output`, `Dropped`);
        waits up to ``timeout`` (default: the client's) and raises
        `ClientTimeoutError` when none comes. After `Dropped` the daemon
        closes the connection."""
        return self._next_event(self.timeout if timeout is None else timeout)

    def _next_event(self, wait: Optional[float]) -> Event:
        """next_event() with ``wait`` None meaning: for ever."""
        if self._events:
            return self._events.popleft()
        if self._in_flight:
            raise RuntimeError("next_event() while replies are outstanding: receive() them first")
        self._check_usable()
        old = self._sock.gettimeout()
        self._sock.settimeout(wait)
        try:
            # Wait until a whole frame is buffered before taking any of it, so
            # that a timeout here leaves the connection usable: poll again later.
            while self._buffered_frame_size() is None:
                self._buffer += self._recv_some(timeout_breaks=False)
        finally:
            self._sock.settimeout(old)
        header, body = self._read_frame()
        if not _is_event(header):
            raise ProtocolError("a reply with no request outstanding: %r" % (header,))
        return self._event_from(header, body)

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Every event, as it arrives. A quiet channel is no error: with
        ``timeout`` None it waits for ever, else each wait is bounded by it
        (`ClientTimeoutError`, the connection stays usable). Ends after a
        `Dropped` event."""
        while True:
            event = self._next_event(timeout)
            yield event
            if isinstance(event, Dropped):
                return

    # --- commands -------------------------------------------------------------------

    def ping(self) -> bool:
        """True when the daemon answers pong."""
        return self.request("ping").header.get("pong") is True

    def auth(self, token: str) -> str:
        """Authenticates this connection (a listener with ``auth = "token"``);
        returns the principal's name. A wrong token raises `ForbiddenError`,
        answered late by design."""
        return str(self.request("auth", token=token).header.get("principal", ""))

    def echo(self, data: Bytes) -> bytes:
        return self.request("echo", data).body

    def upper(self, data: Union[Bytes, str]) -> bytes:
        """The bytes with ASCII letters upper-cased."""
        return self.request("upper", data.encode() if isinstance(data, str) else data).body

    def help(self) -> List[Dict[str, Any]]:
        """Every command: name, summary, enabled (on this listener)."""
        return json.loads(self.request("help").body)

    def stats(self) -> Dict[str, Any]:
        return json.loads(self.request("stats").body)

    def exec(self, name: str, args: Optional[List[str]] = None, stdin: Bytes = b"",
             stream: bool = False) -> Any:
        """Runs the configured command ``name`` (never a shell).

        Without ``stream``: an `ExecResult` (a non-zero exit is a result, not
        an error). With ``stream=True``: an iterator of `Output` chunks as
        the command produces them, then the `ExecResult` as its last item
        (its stdout and stderr empty: the output came as chunks).
        """
        fields: Dict[str, Any] = {"name": name}
        if args:
            fields["args"] = [str(a) for a in args]
        if not stream:
            return self._exec_result(self.request("exec", stdin, **fields))
        fields["stream"] = True
        request_id = self.send("exec", stdin, **fields)
        return self._exec_stream(request_id)

    def _exec_stream(self, request_id: Any) -> Iterator[Union[Output, ExecResult]]:
        self._drain_before(request_id)
        while True:
            header, body = self._read_frame()
            if _is_event(header):
                if header.get("event") == "output" and header.get("id") == request_id:
                    yield Output(str(header.get("stream")), body)
                else:
                    self._events.append(self._event_from(header, body))
                continue
            self._in_flight.popleft()
            yield self._exec_result(Reply(header, body).raise_for_error())
            return

    @staticmethod
    def _exec_result(reply: Reply) -> ExecResult:
        header = reply.header
        stdout_size = int(header.get("stdout_size", 0))
        return ExecResult(
            exit_code=int(header.get("exit_code", 0)),
            stdout=reply.body[:stdout_size],
            stderr=reply.body[stdout_size:],
            signal=int(header.get("signal", 0)),
            truncated=bool(header.get("truncated", False)),
            header=header,
        )

    def put(self, name: str, source: Union[Bytes, BinaryIO], *, size: Optional[int] = None,
            sha256: Optional[str] = None, offset: Optional[int] = None) -> FileInfo:
        """Stores ``source`` (bytes, or a binary file object read from its
        current position) as file ``name`` beneath the daemon's files root.

        The body is streamed in pieces and hashed on the way; the daemon's
        sha256 must match it (else `ChecksumMismatchError`). For bytes the
        sha256 is also sent ahead, so the daemon refuses to commit a file
        that arrived damaged; pass ``sha256`` to do that for a file object.
        ``offset`` asks the daemon to continue a failed upload of that name
        (``source`` is then the rest of the file); a daemon that keeps no
        partial uploads answers `BadRequestError`.
        """
        fields: Dict[str, Any] = {"name": name}
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = memoryview(source).cast("B")
            size = len(data)
            if sha256 is None and offset is None:
                sha256 = hashlib.sha256(data).hexdigest()
            stream: Optional[BinaryIO] = None
        else:
            data = None
            stream = source
            if size is None:
                size = _source_size(source)
        if sha256 is not None:
            fields["sha256"] = sha256
        if offset is not None:
            fields["offset"] = offset
        request_id, head = self._frame("put", b"", dict(fields, total_size=size))
        self._drain_before(request_id)
        digest = hashlib.sha256()
        self._in_flight.append(request_id)
        try:
            self._send_all(head)
            sent = 0
            while sent < size:
                if data is not None:
                    piece = data[sent:sent + CHUNK_SIZE]
                else:
                    piece = stream.read(min(CHUNK_SIZE, size - sent))  # type: ignore[union-attr]
                    if not piece:
                        self._break(Error("put: the source ended after %d of %d bytes" % (sent, size),
                                          code="short_source"))
                digest.update(piece)
                self._sock.sendall(piece)
                sent += len(piece)
        except OSError:
            # The daemon may have refused and closed: its error reply says why.
            reply = self._try_reply_after_send_failure()
            if reply is not None:
                reply.raise_for_error()
            raise
        reply = self._reply_to(request_id).raise_for_error()
        info = FileInfo(name, str(reply.header.get("sha256", "")), int(reply.header.get("size", size)))
        if offset is None and info.sha256 != digest.hexdigest():
            raise ChecksumMismatchError("put %s: the daemon stored sha256 %s, the client sent %s"
                                        % (name, info.sha256, digest.hexdigest()), reply=reply)
        return info

    def get(self, name: str, dest: Optional[BinaryIO] = None, *, offset: int = 0,
            length: Optional[int] = None) -> FileInfo:
        """Fetches file ``name`` (or ``length`` bytes from ``offset``).

        With ``dest`` (a writable binary file object) the body is written to
        it in pieces as it arrives and never held whole; without, it is
        returned in `FileInfo.data`. A whole-file get is checked against the
        daemon's sha256 (`ChecksumMismatchError`, after the bytes are written).
        """
        fields: Dict[str, Any] = {"name": name}
        if offset:
            fields["offset"] = offset
        if length is not None:
            fields["length"] = length
        request_id = self.send("get", b"", **fields)
        self._drain_before(request_id)
        header = self._read_reply_header()
        total = header.get("total_size", 0)
        if header.get("ok") is not True:
            body = self._read_exact(total)
            self._in_flight.popleft()
            Reply(header, body).raise_for_error()
        sink: BinaryIO = dest if dest is not None else io.BytesIO()
        digest = hashlib.sha256()
        for piece in self._read_pieces(total):
            digest.update(piece)
            sink.write(piece)
        self._in_flight.popleft()
        info = FileInfo(name, str(header.get("sha256", "")), int(header.get("size", total)),
                        offset=offset, length=total)
        if dest is None:
            info.data = sink.getvalue()  # type: ignore[attr-defined]
        if offset == 0 and total == info.size and digest.hexdigest() != info.sha256:
            raise ChecksumMismatchError("get %s: received bytes hash to %s, the daemon announced %s"
                                        % (name, digest.hexdigest(), info.sha256))
        return info

    def list(self, prefix: Optional[str] = None) -> List[Dict[str, Any]]:
        """The files beneath the root: [{"name", "size", "mtime"}], by name."""
        fields = {"prefix": prefix} if prefix is not None else {}
        return json.loads(self.request("list", **fields).body)

    def delete(self, name: str) -> None:
        self.request("delete", name=name)

    def publish(self, channel: str, message: Union[Bytes, str]) -> int:
        """Sends ``message`` to every subscriber of ``channel``; returns how many got it."""
        data = message.encode() if isinstance(message, str) else message
        return int(self.request("publish", data, channel=channel).header.get("receivers", 0))

    def subscribe(self, *channels: str, timeout: Optional[float] = None) -> Iterator[Event]:
        """Subscribes to each channel (all confirmed before it returns) and
        returns `events(timeout)`: iterate it for the messages (it waits
        for ever between them unless ``timeout`` is given)."""
        if not channels:
            raise ValueError("subscribe: name at least one channel")
        ids = [self.send("subscribe", channel=channel) for channel in channels]
        for request_id in ids:
            self._reply_to(request_id).raise_for_error()
        return self.events(timeout)

    def unsubscribe(self, *channels: str) -> None:
        ids = [self.send("unsubscribe", channel=channel) for channel in channels]
        for request_id in ids:
            self._reply_to(request_id).raise_for_error()

    # --- internals -------------------------------------------------------------------

    def _frame(self, cmd: str, body: Bytes, fields: Dict[str, Any]) -> Tuple[Any, bytes]:
        request_id = fields.pop("id", None)
        if request_id is None:
            request_id = self._next_id
            self._next_id += 1
        header = {"cmd": cmd, "id": request_id}
        header.update(fields)
        if "total_size" not in header:
            header["total_size"] = len(body)
        encoded = _encode_header(header)
        return request_id, struct.pack(self._prefix, len(encoded)) + encoded + bytes(body)

    def _send_all(self, data: bytes) -> None:
        self._check_usable()
        try:
            self._sock.sendall(data)
        except socket.timeout:
            self._break(ClientTimeoutError("send not done within %s s" % self.timeout))
        except OSError as error:
            reply = self._try_reply_after_send_failure()
            if reply is not None:
                reply.raise_for_error()
            self._break(ConnectionClosedError("send failed: %s" % error))

    def _try_reply_after_send_failure(self) -> Optional[Reply]:
        """After a failed send, the error reply the daemon sent before closing, if any."""
        try:
            self._sock.settimeout(min(self.timeout or 1.0, 1.0))
            header = self._read_reply_header()
            return Reply(header, self._read_exact(header.get("total_size", 0)))
        except (Error, OSError):
            return None

    def _buffered_frame_size(self) -> Optional[int]:
        """The size of the whole frame at the start of the buffer, or None
        while part of it has still to arrive."""
        if len(self._buffer) < 4:
            return None
        (length,) = struct.unpack_from(self._prefix, self._buffer, 0)
        if length == 0 or length > 64 << 20:
            self._break(ProtocolError("reply header length %d: is byte_order right?" % length))
        if len(self._buffer) < 4 + length:
            return None
        size = 4 + length + self._decode_or_break(bytes(self._buffer[4:4 + length])).get("total_size", 0)
        return size if len(self._buffer) >= size else None

    def _read_header(self) -> Dict[str, Any]:
        self._check_usable()
        (length,) = struct.unpack(self._prefix, self._read_exact(4))
        if length == 0 or length == _LARGE_LENGTH:
            self._break(ProtocolError("reply header length %d" % length))
        if length > 64 << 20:
            self._break(ProtocolError("reply header length %d: is byte_order right?" % length))
        return self._decode_or_break(self._read_exact(length))

    def _decode_or_break(self, raw: bytes) -> Dict[str, Any]:
        try:
            return _decode_header(raw)
        except ProtocolError as error:
            self._break(error)
            raise  # not reached: _break raises

    def _read_frame(self) -> Tuple[Dict[str, Any], bytes]:
        header = self._read_header()
        return header, self._read_exact(header.get("total_size", 0))

    def _read_reply_header(self) -> Dict[str, Any]:
        """The next reply's header; events before it are kept for next_event()."""
        while True:
            header = self._read_header()
            if not _is_event(header):
                return header
            body = self._read_exact(header.get("total_size", 0))
            event = self._event_from(header, body)
            self._events.append(event)
            if isinstance(event, Dropped):
                self._break(SlowSubscriberError("dropped by the daemon: %s" % event.reason))

    @staticmethod
    def _event_from(header: Dict[str, Any], body: bytes) -> Event:
        kind = header.get("event")
        if kind == "message":
            return Message(str(header.get("channel", "")), body)
        if kind == "output":
            return Output(str(header.get("stream", "")), body)
        if kind == "dropped":
            return Dropped(str(header.get("reason", "")))
        raise ProtocolError("unknown event %r" % (kind,))

    def _drain_before(self, request_id: Any) -> None:
        """Reads (and keeps, for receive()) the replies to requests sent before ``request_id``."""
        while self._in_flight and self._in_flight[0] != request_id:
            header = self._read_reply_header()
            self._early.append(Reply(header, self._read_exact(header.get("total_size", 0))))
            self._in_flight.popleft()

    def _reply_to(self, request_id: Any) -> Reply:
        self._drain_before(request_id)
        header = self._read_reply_header()
        reply = Reply(header, self._read_exact(header.get("total_size", 0)))
        self._in_flight.popleft()
        return reply


class Pipeline:
    """Requests collected in a ``with`` block, sent on exit while their
    replies are read; see `Client.pipeline`."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._frames: List[bytes] = []
        self.replies: List[Reply] = []

    def request(self, cmd: str, body: Bytes = b"", **fields: Any) -> "Pipeline":
        """Adds one request (any command and fields, as `Client.send` takes)."""
        _, frame = self._client._frame(cmd, body, fields)
        self._frames.append(frame)
        return self

    def __enter__(self) -> "Pipeline":
        if self._client._in_flight:
            raise RuntimeError("pipeline() while replies are outstanding: receive() them first")
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.execute()

    def execute(self) -> List[Reply]:
        """Sends every request and reads every reply, overlapping the two."""
        client = self._client
        client._check_usable()
        out = memoryview(b"".join(self._frames))
        expected = len(self._frames)
        self._frames = []
        sock = client._sock
        selector = selectors.DefaultSelector()
        sock.setblocking(False)
        try:
            selector.register(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0))
            while len(self.replies) < expected:
                ready = selector.select(client.timeout)
                if not ready:
                    client._break(ClientTimeoutError("pipeline: no progress within %s s" % client.timeout))
                _, mask = ready[0]
                if mask & selectors.EVENT_WRITE:
                    try:
                        sent = sock.send(out[:CHUNK_SIZE])
                    except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        sent = 0
                    except OSError as error:
                        client._break(ConnectionClosedError("pipeline: send failed: %s" % error))
                    out = out[sent:]
                    if not out:
                        selector.modify(sock, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    try:
                        data = sock.recv(CHUNK_SIZE)
                    except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        continue
                    except OSError as error:
                        client._break(ConnectionClosedError("pipeline: receive failed: %s" % error))
                    if not data:
                        client._break(ConnectionClosedError(
                            "pipeline: the daemon closed the connection after %d of %d replies"
                            % (len(self.replies), expected)))
                    client._buffer += data
                    self._parse_buffered()
        finally:
            selector.close()
            sock.setblocking(True)
            sock.settimeout(client.timeout)
        return self.replies

    def _parse_buffered(self) -> None:
        client = self._client
        buffer = client._buffer
        while len(buffer) >= 4:
            (length,) = struct.unpack_from(client._prefix, buffer, 0)
            if length == 0 or length > 64 << 20:
                client._break(ProtocolError("reply header length %d" % length))
            if len(buffer) < 4 + length:
                return
            header = client._decode_or_break(bytes(buffer[4:4 + length]))
            end = 4 + length + header.get("total_size", 0)
            if len(buffer) < end:
                return
            body = bytes(buffer[4 + length:end])
            del buffer[:end]
            if _is_event(header):
                client._events.append(client._event_from(header, body))
            else:
                self.replies.append(Reply(header, body))


# --- simple-mode stream client -----------------------------------------------------

_LINE_UNESCAPES = {ord("\\"): b"\\", ord("n"): b"\n", ord("r"): b"\r"}


def _unescape_line(line: bytes) -> bytes:
    """A line reply's bytes: backslash-backslash, -n and -r back to the bytes they stand for."""
    if b"\\" not in line:
        return line
    out = bytearray()
    i = 0
    while i < len(line):
        byte = line[i]
        if byte == 0x5C and i + 1 < len(line) and line[i + 1] in _LINE_UNESCAPES:
            out += _LINE_UNESCAPES[line[i + 1]]
            i += 2
        else:
            out.append(byte)
            i += 1
    return bytes(out)


class SimpleClient(_StreamConnection):
    """A stream connection (TCP or Unix) in the ``length`` or ``line`` framing.

    Requests are simple mode, ``COMMAND ARGUMENTS``; each reply is the
    output, and ``ERR <code> <message>`` is raised as its `Error`.
    ``SimpleClient.tcp(host, port, framing="line")``; ``byte_order`` is for
    the length framing's ``u32``. Replies come in request order, so `send`
    and `receive` pipeline. There is no stdin, exit code or file upload in
    simple mode: use `Client` for those.
    """

    def __init__(self, sock: socket.socket, *, timeout: Optional[float] = DEFAULT_TIMEOUT,
                 framing: str = "length", byte_order: str = "big") -> None:
        if framing not in ("length", "line"):
            raise ValueError('framing must be "length" or "line"')
        super().__init__(sock, timeout, byte_order)
        self.framing = framing

    def send(self, payload: Union[str, Bytes]) -> None:
        """Sends one request without waiting for its reply."""
        self._check_usable()
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        if self.framing == "line":
            if b"\n" in data:
                raise ValueError("a line request cannot hold a newline: use the json framing")
            frame = data + b"\n"
        elif len(data) >= _LARGE_LENGTH:
            big = "<Q" if self._prefix == "<I" else ">Q"
            frame = struct.pack(self._prefix, _LARGE_LENGTH) + struct.pack(big, len(data)) + data
        else:
            frame = struct.pack(self._prefix, len(data)) + data
        try:
            self._sock.sendall(frame)
        except socket.timeout:
            self._break(ClientTimeoutError("send not done within %s s" % self.timeout))
        except OSError as error:
            self._break(ConnectionClosedError("send failed: %s" % error))

    def receive(self) -> bytes:
        """The next reply as it is (``ERR ...`` included, not raised)."""
        self._check_usable()
        if self.framing == "line":
            while True:
                end = self._buffer.find(b"\n")
                if end >= 0:
                    return _unescape_line(self._read_exact(end + 1)[:-1])
                self._buffer += self._recv_some()
        (length,) = struct.unpack(self._prefix, self._read_exact(4))
        if length == _LARGE_LENGTH:
            (length,) = struct.unpack("<Q" if self._prefix == "<I" else ">Q", self._read_exact(8))
        return self._read_exact(length)

    def command(self, payload: Union[str, Bytes]) -> bytes:
        """Sends one request and returns its output, raising ``ERR`` as its `Error`."""
        self.send(payload)
        return _raise_simple_error(self.receive())

    def ping(self) -> bool:
        return self.command("ping") == b"pong"

    def auth(self, token: str) -> str:
        """Authenticates this connection; returns the principal's name."""
        if any(c in token for c in " \n\r"):
            raise ValueError("a simple-mode token cannot hold spaces or line breaks: use the json framing")
        answer = self.command("auth " + token).decode("utf-8", "replace")
        return answer[3:] if answer.startswith("ok ") else answer

    def echo(self, data: Bytes) -> bytes:
        return self.command(b"echo " + bytes(data))

    def upper(self, data: Union[str, Bytes]) -> bytes:
        return self.command(b"upper " + (data.encode() if isinstance(data, str) else bytes(data)))

    def exec(self, name: str, args: Optional[List[str]] = None) -> bytes:
        """stdout then stderr; arguments are split on spaces by the daemon."""
        return self.command(" ".join(["exec", name] + [str(a) for a in args or []]))

    def get(self, name: str) -> bytes:
        return self.command("get " + name)

    def list(self, prefix: Optional[str] = None) -> List[Dict[str, Any]]:
        return json.loads(self.command("list" if prefix is None else "list " + prefix))

    def delete(self, name: str) -> None:
        self.command("delete " + name)

    def publish(self, channel: str, message: Union[str, Bytes]) -> int:
        data = message.encode() if isinstance(message, str) else bytes(message)
        return int(self.command(b"publish " + channel.encode() + b" " + data))

    def stats(self) -> Dict[str, Any]:
        return json.loads(self.command("stats"))

    def help(self) -> List[Dict[str, Any]]:
        return json.loads(self.command("help"))


# --- datagram client ---------------------------------------------------------------

class DatagramClient:
    """A UDP or Unix datagram socket: one request datagram, one reply datagram.

    ``payload`` is the listener's: "text" (``COMMAND ARGUMENTS``, replies are
    the output or ``ERR code message``) or "json" (one json frame each way).
    Datagrams are independent: each reply is matched to its request by
    waiting for it, one request at a time. A Unix datagram client binds a
    path of its own (in a private temporary directory, removed at close), or
    the daemon has nowhere to answer.
    """

    def __init__(self, sock: socket.socket, address: Any, *, timeout: Optional[float] = DEFAULT_TIMEOUT,
                 payload: str = "text", byte_order: str = "big", cleanup_dir: Optional[str] = None) -> None:
        if payload not in ("text", "json"):
            raise ValueError('payload must be "text" or "json"')
        self._sock = sock
        self._address = address
        self._payload = payload
        self._prefix = _prefix_format(byte_order)
        self._cleanup_dir = cleanup_dir
        self._next_id = 1
        try:
            sock.settimeout(timeout)
            # Connected: the kernel passes only the daemon's datagrams to recv().
            sock.connect(address)
        except BaseException:
            self.close()
            raise

    @classmethod
    def udp(cls, host: str = "127.0.0.1", port: int = 9000, **options: Any) -> "DatagramClient":
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        return cls(sock, (host, port), **options)

    @classmethod
    def unix(cls, path: str, *, bind_path: Optional[str] = None, **options: Any) -> "DatagramClient":
        directory = None
        if bind_path is None:
            directory = tempfile.mkdtemp(prefix="framed-client-")
            bind_path = os.path.join(directory, "client.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(bind_path)
        except BaseException:
            sock.close()
            if directory:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        server = "\0" + path[1:] if path.startswith("@") else path
        return cls(sock, server, cleanup_dir=directory, **options)

    def __enter__(self) -> "DatagramClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()
        if self._cleanup_dir:
            shutil.rmtree(self._cleanup_dir, ignore_errors=True)
            self._cleanup_dir = None

    def send_raw(self, datagram: Bytes) -> bytes:
        """Sends one datagram as it is and returns the next datagram received
        as it is. (A reply that came too late for an earlier request would be
        taken for this one's: text replies carry nothing to match them by.)"""
        self._send(datagram)
        return self._receive()

    def _send(self, datagram: Bytes) -> None:
        try:
            self._sock.send(datagram)
        except ConnectionRefusedError:
            raise ConnectionClosedError("nothing listens at %r" % (self._address,)) from None

    def _receive(self) -> bytes:
        try:
            return self._sock.recv(1 << 21)
        except socket.timeout:
            raise ClientTimeoutError("no reply datagram within %s s" % self._sock.gettimeout()) from None
        except ConnectionRefusedError:
            raise ConnectionClosedError("nothing listens at %r" % (self._address,)) from None

    def command(self, text: Union[str, Bytes]) -> bytes:
        """Text payload: sends ``COMMAND ARGUMENTS`` and returns the output.

        A reply of the form ``ERR <code> <message>`` is raised as its
        `Error`. (Output that merely looks like that, e.g. ``echo ERR x y``,
        is read as an error too; use `send_raw` to see the bytes.)"""
        if self._payload != "text":
            raise RuntimeError("command() is for payload = \"text\" listeners; use request()")
        return _raise_simple_error(self.send_raw(text.encode() if isinstance(text, str) else bytes(text)))

    def request(self, cmd: str, body: Bytes = b"", **fields: Any) -> Reply:
        """Json payload: one json frame each way; raises the reply's `Error`."""
        if self._payload != "json":
            raise RuntimeError("request() is for payload = \"json\" listeners; use command()")
        if "id" not in fields:
            fields["id"] = self._next_id
            self._next_id += 1
        header = dict({"cmd": cmd}, **fields)
        header.setdefault("total_size", len(body))
        encoded = _encode_header(header)
        self._send(struct.pack(self._prefix, len(encoded)) + encoded + bytes(body))
        while True:
            data = self._receive()
            if len(data) < 4:
                raise ProtocolError("reply datagram of %d bytes" % len(data))
            (length,) = struct.unpack_from(self._prefix, data, 0)
            reply_header = _decode_header(data[4:4 + length])
            body_bytes = data[4 + length:]
            if len(body_bytes) != reply_header.get("total_size", 0):
                raise ProtocolError("reply datagram is not exactly one frame")
            # A reply to an earlier request that timed out is not this one's;
            # a reply without id is the daemon's answer to a frame it could not read.
            if reply_header.get("id", header["id"]) == header["id"]:
                return Reply(reply_header, body_bytes).raise_for_error()

    def _call(self, cmd: str, words: Tuple[str, ...], body: Bytes = b"", **fields: Any) -> Tuple[Dict[str, Any], bytes]:
        if self._payload == "json":
            reply = self.request(cmd, body, **fields)
            return reply.header, reply.body
        text = " ".join((cmd,) + words).encode()
        if body:
            text += b" " + bytes(body)
        return {}, self.command(text)

    def ping(self) -> bool:
        header, body = self._call("ping", ())
        return header.get("pong") is True or body == b"pong"

    def echo(self, data: Bytes) -> bytes:
        return self._call("echo", (), data)[1]

    def upper(self, data: Union[Bytes, str]) -> bytes:
        return self._call("upper", (), data.encode() if isinstance(data, str) else data)[1]

    def publish(self, channel: str, message: Union[Bytes, str]) -> int:
        """Publishes to ``channel``; returns how many subscribers got it."""
        data = message.encode() if isinstance(message, str) else message
        if self._payload == "json":
            return int(self.request("publish", data, channel=channel).header.get("receivers", 0))
        return int(self.command(b"publish " + channel.encode() + b" " + bytes(data)))

    def exec(self, name: str, args: Optional[List[str]] = None) -> Union[ExecResult, bytes]:
        """json payload: an `ExecResult`; text payload: stdout then stderr as bytes
        (simple mode splits arguments on spaces and carries no exit code)."""
        if self._payload == "json":
            fields: Dict[str, Any] = {"name": name}
            if args:
                fields["args"] = list(args)
            return Client._exec_result(self.request("exec", **fields))
        return self.command(" ".join(["exec", name] + list(args or [])))

    def stats(self) -> Dict[str, Any]:
        return json.loads(self._call("stats", ())[1])

    def help(self) -> List[Dict[str, Any]]:
        return json.loads(self._call("help", ())[1])

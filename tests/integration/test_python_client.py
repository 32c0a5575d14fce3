"""The Python client library, clients/python/framed.py, against the real daemon:
every command, errors raised with the daemon's code, pipelining, streamed
files, pub/sub, streamed exec, datagram clients, and that it installs with pip."""

import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import tracemalloc

import pytest

from conftest import REPO, Daemon, toml_value

sys.path.insert(0, os.path.join(REPO, "clients", "python"))
import framed  # noqa: E402

SMALL_BODY = 4096
BIG_FILE = 100 << 20

LISTENERS = [
    {"kind": "tcp", "name": "tcp"},
    {"kind": "unix", "name": "unix", "mode": "0600"},
    {"kind": "tcp", "name": "tcp_le", "byte_order": "little"},
    {"kind": "tcp", "name": "small", "max_body": SMALL_BODY},
    {"kind": "tcp", "name": "small_backlog", "max_event_backlog": "64KiB"},
    {"kind": "tcp", "name": "length", "framing": "length"},
    {"kind": "tcp", "name": "length_le", "framing": "length", "byte_order": "little"},
    {"kind": "unix", "name": "line", "framing": "line", "mode": "0600"},
    {"kind": "udp", "name": "udp", "framing": "datagram", "payload": "text"},
    {"kind": "udp", "name": "udp_json", "framing": "datagram", "payload": "json"},
    {"kind": "unix_dgram", "name": "udgram", "mode": "0600"},
    {"kind": "unix_dgram", "name": "udgram_json", "mode": "0600", "payload": "json"},
]

COMMANDS = {
    "cat": {"argv": ["/bin/cat"]},
    "words": {"argv": ["/usr/bin/printf", "%s\\n"], "allow_args": True},
    "fail": {"argv": ["/bin/sh", "-c", "echo oops >&2; exit 3"]},
    "slow": {"argv": ["/bin/sh", "-c", "echo started; sleep 5"], "timeout": "300ms"},
    # Output in three steps, with pauses, so the chunks arrive apart.
    "steps": {"argv": ["/bin/sh", "-c", "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three"]},
}


class ClientDaemon(Daemon):
    """conftest's Daemon with a [files] root and [commands.NAME] tables."""

    def __init__(self):
        super().__init__([dict(spec) for spec in LISTENERS], daemon={"workers": 2})
        self.files_root = os.path.join(self.dir, "files")
        os.mkdir(self.files_root)
        lines = ["", "[files]", "root = %s" % toml_value(self.files_root), "fsync = false",
                 'max_file_size = "200MiB"', ""]
        for name, values in COMMANDS.items():
            lines.append("[commands.%s]" % name)
            lines.extend("%s = %s" % (key, toml_value(value)) for key, value in values.items())
            lines.append("")
        with open(self.config_path, "a") as config:
            config.write("\n".join(lines))

    def url(self, name):
        spec = self.listeners[name]
        scheme = {"tcp": "tcp", "unix": "unix", "udp": "udp", "unix_dgram": "unix-dgram"}[spec["kind"]]
        return "%s://%s" % (scheme, spec.get("address") or spec["path"])

    def client(self, name="tcp", **options):
        return framed.connect(self.url(name), **options)


@pytest.fixture(scope="module")
def lib_daemon():
    daemon = ClientDaemon()
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture
def fd(lib_daemon):
    yield lib_daemon
    lib_daemon.ping("tcp")


# --- commands --------------------------------------------------------------------

@pytest.mark.parametrize("listener", ["tcp", "unix"])
def test_basic_commands(fd, listener):
    with fd.client(listener) as client:
        assert isinstance(client, framed.Client)
        assert client.ping() is True
        assert client.echo(b"\x00bytes\xff") == b"\x00bytes\xff"
        assert client.upper("hello, framed") == b"HELLO, FRAMED"
        names = {entry["name"]: entry for entry in client.help()}
        assert {"ping", "exec", "put", "subscribe"} <= set(names) and names["ping"]["enabled"] is True
        stats = client.stats()
        assert isinstance(stats, dict) and stats["commands"]["ping"]["calls"] >= 1


def test_little_endian_listener(fd):
    with fd.client("tcp_le", byte_order="little") as client:
        assert client.upper(b"le") == b"LE"


def test_exec(fd):
    with fd.client() as client:
        result = client.exec("cat", stdin=b"from stdin")
        assert (result.exit_code, result.stdout, result.stderr) == (0, b"from stdin", b"")
        result = client.exec("words", ["a b", "; rm -rf /"])
        assert result.stdout == b"a b\n; rm -rf /\n"
        result = client.exec("fail")
        assert (result.exit_code, result.stdout, result.stderr) == (3, b"", b"oops\n")


def test_exec_streamed(fd):
    with fd.client() as client:
        items = list(client.exec("steps", stream=True))
    *chunks, result = items
    assert isinstance(result, framed.ExecResult) and result.exit_code == 0
    assert all(isinstance(chunk, framed.Output) for chunk in chunks)
    stdout = b"".join(c.data for c in chunks if c.stream == "stdout")
    stderr = b"".join(c.data for c in chunks if c.stream == "stderr")
    assert (stdout, stderr) == (b"one\nthree\n", b"two\n")
    assert len(chunks) >= 3, "the pauses between the steps give one chunk each: %r" % chunks
    assert result.header["stdout_size"] == len(stdout) and result.header["stderr_size"] == len(stderr)


def test_files(fd):
    with fd.client("unix") as client:
        info = client.put("notes.txt", b"hello, files")
        assert info.size == 12 and info.sha256 == hashlib.sha256(b"hello, files").hexdigest()
        assert client.get("notes.txt").data == b"hello, files"
        part = client.get("notes.txt", offset=7, length=3)
        assert part.data == b"fil" and part.size == 12 and part.offset == 7
        listing = client.list("notes")
        assert [(e["name"], e["size"]) for e in listing] == [("notes.txt", 12)]
        client.delete("notes.txt")
        assert client.list("notes") == []


def test_errors_raise_with_the_daemons_code(fd):
    with fd.client() as client:
        cases = [
            (lambda: client.request("nosuch"), framed.UnknownCommandError, "unknown_command"),
            (lambda: client.exec("not-configured"), framed.ForbiddenError, "forbidden"),
            (lambda: client.exec("cat", ["arg"]), framed.ForbiddenError, "forbidden"),
            (lambda: client.get("missing"), framed.NotFoundError, "not_found"),
            (lambda: client.delete("missing"), framed.NotFoundError, "not_found"),
            (lambda: client.get("../etc/passwd"), framed.ForbiddenError, "forbidden"),
            (lambda: client.put("x", b"data", sha256="0" * 64), framed.BadRequestError, "bad_request"),
            (lambda: client.request("publish", b"m"), framed.BadRequestError, "bad_request"),
        ]
        for call, cls, code in cases:
            with pytest.raises(cls) as caught:
                call()
            assert caught.value.code == code and caught.value.message.strip(), caught.value
            assert isinstance(caught.value, framed.Error)
        with pytest.raises(framed.CommandTimeoutError) as caught:
            client.exec("slow")
        assert caught.value.reply.body.startswith(b"started"), "a timeout carries the output so far"
        assert client.ping(), "errors that keep the frame boundary keep the connection"
        assert "x" not in [e["name"] for e in client.list()], "a put refused for its sha256 stores nothing"


def test_frame_too_large_then_closed(fd):
    with fd.client("small") as client:
        assert client.echo(b"x" * SMALL_BODY) == b"x" * SMALL_BODY
        with pytest.raises(framed.FrameTooLargeError):
            client.echo(b"x" * (SMALL_BODY + 1))
        with pytest.raises(framed.ConnectionClosedError):
            client.ping()


# --- pipelining ----------------------------------------------------------------------

def test_pipeline_of_10000_pings(fd):
    with fd.client() as client:
        with client.pipeline() as batch:
            for _ in range(10000):
                batch.request("ping")
        assert len(batch.replies) == 10000
        ids = [reply.id for reply in batch.replies]
        assert ids == sorted(ids) and len(set(ids)) == 10000, "replies in request order"
        assert all(reply.ok and reply.header.get("pong") is True for reply in batch.replies)
        assert client.upper(b"after") == b"AFTER"


def test_pipeline_keeps_order_across_worker_commands_and_errors(fd):
    with fd.client() as client:
        with client.pipeline() as batch:
            for i in range(50):
                batch.request("exec", b"%d" % i, name="cat")
                batch.request("nosuch")
                batch.request("echo", b"e%d" % i)
        replies = batch.replies
        for i in range(50):
            run, unknown, echo = replies[3 * i:3 * i + 3]
            assert run.ok and run.body == b"%d" % i
            assert isinstance(unknown.error(), framed.UnknownCommandError)
            assert echo.body == b"e%d" % i


def test_send_and_receive_primitives(fd):
    with fd.client() as client:
        first = client.send("echo", b"one")
        second = client.send("upper", b"two")
        assert client.ping() is True, "a call after pipelined sends reads their replies aside"
        one, two = client.receive(), client.receive()
        assert (one.id, one.body) == (first, b"one") and (two.id, two.body) == (second, b"TWO")
        with pytest.raises(RuntimeError):
            client.receive()


# --- big files, streamed -----------------------------------------------------------

class PseudoRandomFile:
    """`size` deterministic bytes, produced as they are read."""

    def __init__(self, size, seed):
        self.left = size
        self.random = random.Random(seed)
        self.sha256 = hashlib.sha256()

    def read(self, n):
        piece = self.random.randbytes(min(n, self.left))
        self.left -= len(piece)
        self.sha256.update(piece)
        return piece


class HashingSink:
    def __init__(self):
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, piece):
        self.sha256.update(piece)
        self.size += len(piece)
        return len(piece)


def test_100_mib_put_then_get_streamed(fd):
    source = PseudoRandomFile(BIG_FILE, seed=7)
    sink = HashingSink()
    tracemalloc.start()
    try:
        with fd.client(timeout=30) as client:
            put = client.put("big.bin", source, size=BIG_FILE)
            got = client.get("big.bin", sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = source.sha256.hexdigest()
    assert put.size == BIG_FILE and put.sha256 == expected
    assert got.size == BIG_FILE and got.sha256 == expected
    assert sink.size == BIG_FILE and sink.sha256.hexdigest() == expected
    assert peak < 8 << 20, "the client held %d bytes at once: the file must stream" % peak
    assert os.path.getsize(os.path.join(fd.files_root, "big.bin")) == BIG_FILE
    with fd.client() as client:
        client.delete("big.bin")


def test_put_from_a_real_file_and_get_into_one(fd, tmp_path):
    data = os.urandom(300_000)
    (tmp_path / "in.bin").write_bytes(data)
    with fd.client() as client, open(tmp_path / "in.bin", "rb") as source, \
            open(tmp_path / "out.bin", "wb") as dest:
        assert client.put("copy.bin", source).size == len(data)
        assert client.get("copy.bin", dest).sha256 == hashlib.sha256(data).hexdigest()
        client.delete("copy.bin")
    assert (tmp_path / "out.bin").read_bytes() == data


def test_put_with_offset_is_passed_to_the_daemon(fd):
    with fd.client() as client:
        with pytest.raises(framed.BadRequestError):
            client.put("resume.bin", b"rest", offset=10)
        assert client.ping()


# --- pub/sub -----------------------------------------------------------------------------

def test_pubsub_across_two_clients(fd):
    with fd.client("unix") as subscriber, fd.client("tcp") as publisher:
        events = subscriber.subscribe("room", "other", timeout=10)
        assert publisher.publish("room", "hello") == 1
        assert publisher.publish("other", b"\x00binary") == 1
        assert publisher.publish("nobody-here", "x") == 0
        received = [next(events), next(events)]
        assert received == [framed.Message("room", b"hello"), framed.Message("other", b"\x00binary")]
        subscriber.unsubscribe("other")
        assert publisher.publish("other", "gone") == 0
        # A subscriber may go on sending requests: events that arrive meanwhile wait their turn.
        assert publisher.publish("room", "while busy") == 1
        assert subscriber.upper(b"request") == b"REQUEST"
        assert subscriber.next_event(timeout=5) == framed.Message("room", b"while busy")
        with pytest.raises(framed.ClientTimeoutError):
            subscriber.next_event(timeout=0.2)
        # Waiting for an event that did not come leaves the connection usable.
        assert publisher.publish("room", "later") == 1
        assert subscriber.next_event(timeout=5) == framed.Message("room", b"later")
        assert subscriber.ping()


def test_pubsub_from_datagrams_to_a_stream_subscriber(fd):
    with fd.client() as subscriber, fd.client("udp") as udp, fd.client("udgram_json", payload="json") as udgram:
        events = subscriber.subscribe("news", timeout=10)
        assert udp.publish("news", "from udp") == 1
        assert udgram.publish("news", b"from unix json") == 1
        assert [next(events), next(events)] == [framed.Message("news", b"from udp"),
                                                framed.Message("news", b"from unix json")]


def test_subscribe_in_another_thread(fd):
    """The iterator blocks in one thread while another client publishes."""
    got = []
    with fd.client() as subscriber:
        events = subscriber.subscribe("thread", timeout=10)
        reader = threading.Thread(target=lambda: got.extend(next(events) for _ in range(3)))
        reader.start()
        with fd.client() as publisher:
            for i in range(3):
                publisher.publish("thread", "m%d" % i)
        reader.join(10)
    assert [m.data for m in got] == [b"m0", b"m1", b"m2"]


# --- simple mode: length and line framings ----------------------------------------

@pytest.mark.parametrize("listener,options", [("length", {"framing": "length"}),
                                              ("length_le", {"framing": "length", "byte_order": "little"}),
                                              ("line", {"framing": "line"})])
def test_simple_client(fd, listener, options):
    with fd.client(listener, **options) as client:
        assert isinstance(client, framed.SimpleClient)
        assert client.ping() is True
        assert client.upper("hello") == b"HELLO"
        # Bytes the line framing escapes come back as they were sent.
        assert client.echo(b"back\\slash and \r return") == b"back\\slash and \r return"
        assert client.exec("words", ["x", "y"]) == b"x\ny\n"
        assert client.exec("fail") == b"oops\n"
        assert client.publish("simple-nobody", "hi") == 0
        assert client.stats()["commands"]["ping"]["calls"] >= 1
        assert {e["name"] for e in client.help()} >= {"ping", "get"}
        with pytest.raises(framed.UnknownCommandError):
            client.command("nosuch")
        with pytest.raises(framed.ForbiddenError):
            client.exec("not-configured")
        with pytest.raises(framed.NotFoundError):
            client.get("missing-simple")
        for i in range(1000):
            client.send("echo %d" % i)
        assert [client.receive() for _ in range(1000)] == [b"%d" % i for i in range(1000)]


def test_simple_client_files(fd):
    with fd.client() as json_client:
        json_client.put("simple.txt", b"two\nlines")
    with fd.client("line", framing="line") as client:
        assert client.get("simple.txt") == b"two\nlines"
        assert [e["name"] for e in client.list("simple")] == ["simple.txt"]
        client.delete("simple.txt")
        assert client.list("simple") == []
    with framed.SimpleClient.unix(fd.listeners["line"]["path"], framing="line") as client:
        with pytest.raises(ValueError):
            client.send("a\nb")
        assert client.ping(), "a refused request sends nothing"


def test_a_quiet_channel_is_no_timeout(fd):
    """subscribe() iterates for as long as it takes, whatever the client's timeout."""
    with fd.client(timeout=0.2) as subscriber, fd.client() as publisher:
        events = subscriber.subscribe("quiet")
        later = threading.Timer(0.6, lambda: publisher.publish("quiet", "at last"))
        later.start()
        try:
            assert next(events) == framed.Message("quiet", b"at last")
        finally:
            later.join(5)


def test_slow_subscriber_sees_dropped_then_the_end(fd):
    """A subscriber that does not read is dropped; its iterator yields what
    came before, then `Dropped`, and ends; the connection is then closed."""
    message = b"m" * 4096
    limit = 8000   # 32 MiB: past the kernel's socket buffers and the 64 KiB backlog, by far
    with fd.client("small_backlog") as subscriber, fd.client() as publisher:
        events = subscriber.subscribe("flood", timeout=10)
        sent = 0
        while sent < limit and publisher.publish("flood", message) == 1:
            sent += 1
        assert sent < limit, "the subscriber was never dropped"
        received = list(events)
        assert isinstance(received[-1], framed.Dropped) and received[-1].reason == "slow_subscriber"
        assert all(event == framed.Message("flood", message) for event in received[:-1])
        assert 0 < len(received) - 1 <= sent, "what the socket held before the drop comes first"
        with pytest.raises(framed.ConnectionClosedError):
            subscriber.ping()


# --- datagrams ------------------------------------------------------------------------

@pytest.mark.parametrize("listener", ["udp", "udgram"])
def test_datagram_text_client(fd, listener):
    with fd.client(listener) as client:
        assert isinstance(client, framed.DatagramClient)
        assert client.ping() is True
        assert client.upper("hello") == b"HELLO"
        assert client.echo(b"two  spaces ") == b"two  spaces "
        assert client.exec("words", ["a", "b"]) == b"a\nb\n"
        assert {e["name"] for e in client.help()} >= {"ping", "upper"}
        assert client.stats()["commands"]["ping"]["calls"] >= 1
        with pytest.raises(framed.UnknownCommandError):
            client.command("nosuch thing")
        with pytest.raises(framed.ForbiddenError):
            client.command("exec not-configured")


@pytest.mark.parametrize("listener", ["udp_json", "udgram_json"])
def test_datagram_json_client(fd, listener):
    with fd.client(listener, payload="json") as client:
        assert client.ping() is True
        assert client.upper(b"json") == b"JSON"
        result = client.exec("fail")
        assert (result.exit_code, result.stderr) == (3, b"oops\n")
        reply = client.request("echo", b"body", id="mine")
        assert (reply.id, reply.body) == ("mine", b"body")
        with pytest.raises(framed.UnknownCommandError):
            client.request("nosuch")


def test_unix_datagram_client_cleans_up_its_path(fd):
    with fd.client("udgram") as client:
        directory = client._cleanup_dir
        assert os.path.isdir(directory)
        assert client.ping()
    assert not os.path.exists(directory)


def test_connect_rejects_an_unknown_scheme():
    with pytest.raises(ValueError):
        framed.connect("http://127.0.0.1:9000")


# --- packaging -----------------------------------------------------------------------

def test_pip_install_target(tmp_path):
    """`pip install ./clients/python` works offline (setuptools from the system)."""
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        pytest.skip("python3 -m pip is not available (Debian package python3-pip; scripts/install-deps.sh)")
    # Build from a copy, so that pip's build files never land in the source tree.
    source = tmp_path / "src"
    shutil.copytree(os.path.join(REPO, "clients", "python"), source,
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    target = tmp_path / "target"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-build-isolation", "--no-deps",
         "--no-compile", "--disable-pip-version-check", "--no-cache-dir", "--target", str(target), str(source)],
        capture_output=True, timeout=120, cwd=tempfile.gettempdir())
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert (target / "framed.py").is_file()
    check = subprocess.run([sys.executable, "-c", "import framed; print(framed.__file__)"],
                           capture_output=True, timeout=30, env=dict(os.environ, PYTHONPATH=str(target)),
                           cwd=str(tmp_path))
    assert check.returncode == 0 and str(target) in check.stdout.decode(), check

"""put, get, list and delete: files streamed to and from a root, atomic and
confined (PROTOCOL.md section 4, CONFIG.md [files], issue 8).

Each daemon here is conftest's Daemon with a [files] table appended, so it
runs under whichever backend FRAMED_BACKEND names. Every transfer is checked
with SHA-256 on both ends.
"""

import hashlib
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import FRAMED_BIN, Daemon, proc_status_kib, toml_value
from framed_client import ConnectionClosed, assert_error, assert_ok, encode_header, frame

LISTENERS = [
    {"name": "tcp", "kind": "tcp"},
    {"name": "unix", "kind": "unix"},
    {"name": "line", "kind": "tcp", "framing": "line"},
]
MiB = 1 << 20


class FilesDaemon(Daemon):
    """conftest's Daemon with a [files] table whose root is in its temp dir."""

    def __init__(self, files=None, listeners=LISTENERS, **kwargs):
        super().__init__(listeners, **kwargs)
        self.root = os.path.join(self.dir, "root")
        os.mkdir(self.root)
        values = {"root": self.root}
        values.update(files or {})
        with open(self.config_path, "a") as config:
            config.write("\n[files]\n")
            config.writelines("%s = %s\n" % (k, toml_value(v)) for k, v in values.items())


# Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
# default) and counts as RSS: the memory-bound tests keep it small, so that
# they measure what the daemon holds, not what it freed.
SMALL_ASAN_QUARANTINE = {"ASAN_OPTIONS": ":".join(
    part for part in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=4") if part)}


@pytest.fixture
def files_factory(request):
    started = []

    def start(files=None, **kwargs):
        daemon = FilesDaemon(files, **kwargs)
        started.append(daemon)
        return daemon.start()

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    reports = []
    for daemon in started:
        status = daemon.stop()
        text = daemon.stderr_text()
        if failed:
            print(text)
        # A clean exit: no sanitizer report (leaks included), status 0.
        if "Sanitizer" in text or "runtime error" in text or status != 0:
            reports.append("exit status %r\n%s" % (status, text))
        daemon.cleanup()
    assert not reports, reports[0]


@pytest.fixture
def files_daemon(files_factory):
    return files_factory()


def tree(root):
    """Every entry beneath root, hidden ones too, with sizes."""
    found = {}
    for directory, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = os.lstat(path).st_size if name in names else "dir"
    return found


def put_stream(client, name, size, seed=b"framed", chunk=MiB, extra=None):
    """Sends a put of `size` pseudo-random bytes; returns their sha256."""
    header = {"cmd": "put", "id": 1, "name": name, "total_size": size}
    header.update(extra or {})
    client.send(frame(header))
    digest = hashlib.sha256()
    block = (hashlib.sha256(seed).digest() * (chunk // 32 + 1))[:chunk]
    sent = 0
    while sent < size:
        piece = block[: min(chunk, size - sent)]
        client.send(piece)
        digest.update(piece)
        sent += len(piece)
    return digest.hexdigest()


def get_stream(client, name, extra=None):
    """(reply header, sha256 of the body, body length), reading in pieces."""
    header = {"cmd": "get", "id": 2, "name": name}
    header.update(extra or {})
    client.send(frame(header))
    (length,) = struct.unpack(">I", client.read_exact(4))
    reply = json.loads(client.read_exact(length))
    remaining = reply.get("total_size", 0)
    digest = hashlib.sha256()
    received = 0
    while remaining:
        piece = client.read_exact(min(remaining, MiB), deadline=time.monotonic() + 60)
        digest.update(piece)
        received += len(piece)
        remaining -= len(piece)
    return reply, digest.hexdigest(), received


def put_bytes(client, name, data, **extra):
    header = {"cmd": "put", "name": name, "total_size": len(data)}
    header.update(extra)
    return client.request(header, data)


# --- round trips -------------------------------------------------------------

@pytest.mark.parametrize("listener", ["tcp", "unix"])
@pytest.mark.parametrize("size", [0, 1, MiB])
def test_round_trip(files_daemon, listener, size):
    with files_daemon.connect(listener) as client:
        sent = put_stream(client, "file.bin", size)
        header, _ = client.read_reply()
        assert_ok(header)
        assert header["sha256"] == sent and header["size"] == size
        assert header.get("total_size", 0) == 0
        reply, received, length = get_stream(client, "file.bin")
        assert_ok(reply)
        assert reply["sha256"] == sent and reply["size"] == size
        assert received == sent and length == size
    with open(os.path.join(files_daemon.root, "file.bin"), "rb") as stored:
        assert hashlib.sha256(stored.read()).hexdigest() == sent


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, proc_status_kib(self.pid, "VmRSS"))
            time.sleep(0.02)


# The large round trip: 1 GiB in the plain build. Under AddressSanitizer
# (the test run sets ASAN_OPTIONS) every byte the daemon copies is checked
# and runs several times slower, so it is 64 MiB there: still 32 times what
# an upload buffers, in seconds.
UNDER_ASAN = "ASAN_OPTIONS" in os.environ
LARGE = 64 * MiB if UNDER_ASAN else 1024 * MiB


def put_generated(client, name, size):
    """A put of `size` bytes generated on the fly (one reused 1 MiB block,
    each MiB made distinct by its first 8 bytes), hashed while sent; its
    sha256."""
    client.send(frame({"cmd": "put", "name": name, "total_size": size}))
    block = bytearray(hashlib.sha256(b"large").digest() * (MiB // 32))
    view = memoryview(block)
    digest = hashlib.sha256()
    sent = 0
    while sent < size:
        block[:8] = struct.pack(">Q", sent)
        piece = view[: min(MiB, size - sent)]
        client.sock.sendall(piece)
        digest.update(piece)
        sent += len(piece)
    return digest.hexdigest()


def get_hashed(client, name):
    """(reply header, sha256 of the body, its length), received into one
    reused buffer and hashed as it comes."""
    client.send(frame({"cmd": "get", "name": name}))
    (length,) = struct.unpack(">I", client.read_exact(4))
    reply = json.loads(client.read_exact(length))
    remaining = reply.get("total_size", 0)
    buffer = memoryview(bytearray(MiB))
    digest = hashlib.sha256()
    received = 0
    while remaining:
        n = client.sock.recv_into(buffer[: min(remaining, MiB)], 0, socket.MSG_WAITALL)
        if n == 0:
            raise ConnectionClosed("EOF with %d bytes of the body to come" % remaining)
        digest.update(buffer[:n])
        received += n
        remaining -= n
    return reply, digest.hexdigest(), received


@pytest.mark.parametrize("listener", ["tcp", "unix"])
def test_large_round_trip_in_bounded_memory(files_factory, listener):
    # max_body is far below the file: a put is bounded by max_file_size only.
    daemon = files_factory({"fsync": False, "max_file_size": "2GiB"}, limits={"max_body": MiB},
                           env=SMALL_ASAN_QUARANTINE)
    baseline = proc_status_kib(daemon.pid, "VmRSS")
    sampler = RssSampler(daemon.pid)
    sampler.start()
    with daemon.connect(listener, timeout=120) as client:
        sent = put_generated(client, "large.bin", LARGE)
        header, _ = client.read_reply(timeout=120)
        assert_ok(header)
        assert header["sha256"] == sent and header["size"] == LARGE
        reply, received, length = get_hashed(client, "large.bin")
        assert_ok(reply)
        assert reply["sha256"] == sent and received == sent and length == LARGE
    sampler.done.set()
    sampler.join()
    assert os.path.getsize(os.path.join(daemon.root, "large.bin")) == LARGE
    grown_mib = (sampler.peak - baseline) / 1024
    assert grown_mib < 32, "RSS grew by %.1f MiB during a %d MiB transfer" % (grown_mib, LARGE // MiB)
    if not UNDER_ASAN:  # ASan's shadow memory and quarantine are no part of the daemon's own
        assert sampler.peak < 64 * 1024, "peak RSS %.1f MiB during a %d MiB transfer" % (sampler.peak / 1024,
                                                                                      LARGE // MiB)


def test_slow_reader_is_not_buffered(files_factory):
    daemon = files_factory(env=SMALL_ASAN_QUARANTINE)
    with open(os.path.join(daemon.root, "big.bin"), "wb") as big:
        big.write(os.urandom(MiB) * 48)
    baseline = proc_status_kib(daemon.pid, "VmRSS")
    with daemon.connect("tcp") as client:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        client.send_request({"cmd": "get", "name": "big.bin"})
        time.sleep(1.0)  # read nothing: the daemon must not read the file ahead
        assert (proc_status_kib(daemon.pid, "VmRSS") - baseline) / 1024 < 16
        daemon.ping("tcp")  # and other connections are served meanwhile


def test_ranges(files_daemon):
    data = bytes(range(256)) * 1024  # 256 KiB: larger than an inline body
    with files_daemon.connect("tcp") as client:
        assert_ok(put_bytes(client, "r.bin", data)[0])
        whole = hashlib.sha256(data).hexdigest()
        for offset, length, expected in [(10, 20, data[10:30]), (1000, None, data[1000:]),
                                         (len(data) - 5, 100, data[-5:]), (len(data), None, b""),
                                         (0, 200000, data[:200000])]:
            header = {"cmd": "get", "name": "r.bin", "offset": offset}
            if length is not None:
                header["length"] = length
            reply, body = client.request(header)
            assert_ok(reply)
            assert body == expected and reply["sha256"] == whole and reply["size"] == len(data)
        assert_error(client.request({"cmd": "get", "name": "r.bin", "offset": len(data) + 1})[0], "bad_request")
        assert_error(client.request({"cmd": "get", "name": "r.bin", "offset": -1})[0], "bad_request")


def test_simple_mode_get_list_delete(files_daemon):
    with open(os.path.join(files_daemon.root, "hello.txt"), "wb") as f:
        f.write(b"hello")
    with files_daemon.connect("line") as client:
        client.send(b"get hello.txt\nget nope\nput x\ndelete hello.txt\nget hello.txt\n")
        lines = b""
        while lines.count(b"\n") < 5:
            chunk = client.sock.recv(4096)
            assert chunk
            lines += chunk
    got = lines.split(b"\n")
    assert got[0] == b"hello"
    assert got[1].startswith(b"ERR not_found ")
    assert got[2].startswith(b"ERR bad_request ")
    assert got[3] == b""
    assert got[4].startswith(b"ERR not_found ")


def test_pipelined_requests_take_effect_in_order(files_daemon):
    # Each round is sent in one write; a worker pool of several threads must
    # still run them one after another, as sent.
    with files_daemon.connect("tcp") as client:
        for round_number in range(20):
            data = b"round %d" % round_number
            client.send(frame({"cmd": "put", "id": 1, "name": "o.txt"}, data)
                        + frame({"cmd": "get", "id": 2, "name": "o.txt"})
                        + frame({"cmd": "delete", "id": 3, "name": "o.txt"})
                        + frame({"cmd": "get", "id": 4, "name": "o.txt"})
                        + frame({"cmd": "list", "id": 5}))
            replies = [client.read_reply() for _ in range(5)]
            assert [header["id"] for header, _ in replies] == [1, 2, 3, 4, 5]
            assert_ok(replies[0][0])
            assert replies[1][1] == data
            assert_ok(replies[2][0])
            assert_error(replies[3][0], "not_found")
            assert json.loads(replies[4][1]) == []


# --- atomic, all or nothing --------------------------------------------------

def test_sha256_mismatch_commits_nothing(files_daemon):
    with files_daemon.connect("tcp") as client:
        assert_ok(put_bytes(client, "keep.txt", b"old")[0])
        header, _ = put_bytes(client, "keep.txt", b"new", sha256=hashlib.sha256(b"other").hexdigest())
        assert_error(header, "bad_request")
        header, _ = put_bytes(client, "fresh.txt", b"new", sha256="0" * 64)
        assert_error(header, "bad_request")
        assert_error(put_bytes(client, "x", b"", sha256="abc")[0], "bad_request")
        header, _ = put_bytes(client, "good.txt", b"new", sha256=hashlib.sha256(b"new").hexdigest())
        assert_ok(header)
        assert client.request({"cmd": "get", "name": "keep.txt"})[1] == b"old"
    assert sorted(os.listdir(files_daemon.root)) == ["good.txt", "keep.txt"]


def test_max_file_size(files_factory):
    daemon = files_factory({"max_file_size": 1000})
    with daemon.connect("tcp") as client:
        assert_ok(put_bytes(client, "at.bin", b"a" * 1000)[0])
        header, _ = put_bytes(client, "over.bin", b"a" * 1001)
        assert_error(header, "frame_too_large")
        assert "max_file_size" in header["error"]["message"]
        daemon.ping("tcp")
        assert_ok(client.request({"cmd": "ping"})[0])  # the body was skipped, the connection goes on
    assert os.listdir(daemon.root) == ["at.bin"]


@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_cut_off_mid_upload_leaves_nothing(files_factory, how):
    daemon = files_factory()
    with open(os.path.join(daemon.root, "existing.bin"), "wb") as f:
        f.write(b"before")
    before = tree(daemon.root)
    client = daemon.connect("tcp")
    client.send(frame({"cmd": "put", "name": "existing.bin", "total_size": 16 * MiB}))
    client.send(b"x" * (8 * MiB))
    if how == "reset":
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert tree(daemon.root) == before
        time.sleep(0.05)
    with open(os.path.join(daemon.root, "existing.bin"), "rb") as f:
        assert f.read() == b"before"
    daemon.ping("tcp")


def test_concurrent_uploads_to_one_name(files_daemon):
    size = 4 * MiB
    first = files_daemon.connect("tcp", timeout=30)
    second = files_daemon.connect("tcp", timeout=30)
    first.send(frame({"cmd": "put", "name": "race.bin", "total_size": size}))
    second.send(frame({"cmd": "put", "name": "race.bin", "total_size": size}))
    for _ in range(3):  # interleaved, a MiB each
        first.send(b"a" * MiB)
        second.send(b"b" * MiB)
    # The second completes first; the first, completed after it, wins.
    second.send(b"b" * MiB)
    assert_ok(second.read_reply()[0])
    with files_daemon.connect("tcp") as client:
        assert client.request({"cmd": "get", "name": "race.bin"})[1] == b"b" * size
    first.send(b"a" * MiB)
    assert_ok(first.read_reply()[0])
    with files_daemon.connect("tcp") as client:
        reply, body = client.request({"cmd": "get", "name": "race.bin"})
    assert body == b"a" * size and reply["sha256"] == hashlib.sha256(body).hexdigest()
    assert os.listdir(files_daemon.root) == ["race.bin"]
    first.close()
    second.close()


def test_get_racing_put_sees_one_whole_file(files_daemon):
    versions = {hashlib.sha256(bytes([c]) * MiB).hexdigest() for c in b"abcdefgh"}
    with files_daemon.connect("tcp") as writer:
        assert_ok(put_bytes(writer, "v.bin", b"a" * MiB)[0])
        stop = threading.Event()
        seen = []

        def read_loop():
            with files_daemon.connect("tcp") as reader:
                while not stop.is_set():
                    reply, body = reader.request({"cmd": "get", "name": "v.bin"})
                    seen.append((reply["sha256"], hashlib.sha256(body).hexdigest()))

        thread = threading.Thread(target=read_loop)
        thread.start()
        for c in b"bcdefgh":
            assert_ok(put_bytes(writer, "v.bin", bytes([c]) * MiB)[0])
        stop.set()
        thread.join()
    assert seen
    for announced, actual in seen:
        assert announced == actual and actual in versions


def limit_file_size():
    # Ignored signals stay ignored across exec: the daemon's writes past the
    # limit fail with EFBIG instead of killing it with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 * MiB, 2 * MiB))


def test_full_disk_is_no_space_and_leaves_nothing(tmp_path):
    daemon = FilesDaemon(preexec_fn=limit_file_size)
    try:
        daemon.start()
        with daemon.connect("tcp", timeout=30) as client:
            sent = put_stream(client, "big.bin", 4 * MiB)
            header, _ = client.read_reply()
            assert_error(header, "no_space")
            assert sent not in json.dumps(header)
            assert_ok(put_bytes(client, "small.bin", b"fits")[0])
        assert os.listdir(daemon.root) == ["small.bin"]
        daemon.ping("tcp")
    finally:
        daemon.cleanup()


# --- confinement -------------------------------------------------------------

@pytest.mark.parametrize("name,code", [
    ("../escape", "forbidden"),
    ("a/../../escape", "forbidden"),
    ("/etc/passwd", "forbidden"),
    ("sub/file", "forbidden"),  # allow_subdirs is off
    ("", "bad_request"),
    ("nul\u0000byte", "bad_request"),
    (".", "bad_request"),
    ("x" * 256, "bad_request"),
    (".framed-0123.tmp", "bad_request"),
])
def test_bad_names(files_daemon, name, code):
    with files_daemon.connect("tcp") as client:
        for header in ({"cmd": "get", "name": name}, {"cmd": "delete", "name": name},
                       {"cmd": "put", "name": name, "total_size": 3}):
            reply, _ = client.request(header, b"abc" if header["cmd"] == "put" else b"")
            assert_error(reply, code)
    assert os.listdir(files_daemon.root) == []


def test_symlinks_are_not_followed(files_factory, tmp_path):
    daemon = files_factory({"allow_subdirs": True})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    os.symlink(str(outside / "secret"), os.path.join(daemon.root, "link"))
    os.symlink(str(outside), os.path.join(daemon.root, "linkdir"))
    os.mkdir(os.path.join(daemon.root, "realdir"))
    with daemon.connect("tcp") as client:
        for name in ("link", "linkdir/secret"):
            assert_error(client.request({"cmd": "get", "name": name})[0], "forbidden")
            assert_error(client.request({"cmd": "delete", "name": name})[0], "forbidden")
        assert_error(put_bytes(client, "linkdir/new", b"x")[0], "forbidden")
        assert_error(client.request({"cmd": "get", "name": "realdir"})[0], "bad_request")
        assert_error(client.request({"cmd": "delete", "name": "realdir"})[0], "bad_request")
        assert_error(put_bytes(client, "realdir", b"x")[0], "bad_request")
        reply, body = client.request({"cmd": "list"})
        assert_ok(reply)
        assert json.loads(body) == []
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"secret"
    assert os.path.islink(os.path.join(daemon.root, "link"))


def test_subdirectories(files_factory):
    daemon = files_factory({"allow_subdirs": True})
    with daemon.connect("tcp") as client:
        assert_ok(put_bytes(client, "a/b/c.txt", b"deep")[0])
        assert client.request({"cmd": "get", "name": "a/b/c.txt"})[1] == b"deep"
        assert_error(client.request({"cmd": "get", "name": "a//c.txt"})[0], "bad_request")
        assert_error(client.request({"cmd": "get", "name": "a/b/"})[0], "bad_request")
        assert_error(client.request({"cmd": "get", "name": "a/b/nope"})[0], "not_found")
        names = [f["name"] for f in json.loads(client.request({"cmd": "list", "prefix": "a/"})[1])]
        assert names == ["a/b/c.txt"]
    assert os.path.isfile(os.path.join(daemon.root, "a", "b", "c.txt"))


# --- list, delete, not_found, disabled ---------------------------------------

def test_list_and_delete(files_daemon):
    with files_daemon.connect("tcp") as client:
        for name, data in (("b.txt", b"bb"), ("a.txt", b"a"), ("c.log", b"ccc")):
            assert_ok(put_bytes(client, name, data)[0])
        reply, body = client.request({"cmd": "list"})
        assert_ok(reply)
        listed = json.loads(body)
        assert [(f["name"], f["size"]) for f in listed] == [("a.txt", 1), ("b.txt", 2), ("c.log", 3)]
        assert all(isinstance(f["mtime"], int) and abs(f["mtime"] - time.time()) < 60 for f in listed)
        names = [f["name"] for f in json.loads(client.request({"cmd": "list", "prefix": "b"})[1])]
        assert names == ["b.txt"]
        assert_ok(client.request({"cmd": "delete", "name": "b.txt"})[0])
        assert_error(client.request({"cmd": "delete", "name": "b.txt"})[0], "not_found")
        assert_error(client.request({"cmd": "get", "name": "b.txt"})[0], "not_found")
        names = [f["name"] for f in json.loads(client.request({"cmd": "list"})[1])]
        assert names == ["a.txt", "c.log"]
        assert_error(client.request({"cmd": "list", "partial": "yes"})[0], "bad_request")
        # offset 0 with nothing kept is a fresh upload.
        assert_ok(put_bytes(client, "a.txt", b"x", offset=0)[0])


def test_files_disabled(daemon_factory):
    daemon = daemon_factory([{"name": "tcp", "kind": "tcp"}])
    with daemon.connect("tcp") as client:
        for header, body in (({"cmd": "put", "name": "x", "total_size": 2}, b"ab"),
                             ({"cmd": "get", "name": "x"}, b""), ({"cmd": "list"}, b""),
                             ({"cmd": "delete", "name": "x"}, b"")):
            reply, _ = client.request(header, body)
            assert_error(reply, "forbidden")
            assert "no [files]" in reply["error"]["message"]


@pytest.mark.parametrize("root", ["missing", "file"])
def test_bad_root_is_a_config_error(tmp_path, root):
    path = tmp_path / root
    if root == "file":
        path.write_text("")
    config = tmp_path / "framed.toml"
    config.write_text('[[listener]]\nkind = "tcp"\naddress = "127.0.0.1:0"\n[files]\nroot = %s\n'
                      % json.dumps(str(path)))
    for args in (["--check-config"], []):
        result = subprocess.run([FRAMED_BIN, "--config", str(config)] + args, capture_output=True, timeout=10)
        assert result.returncode == 1
        assert b"files.root" in result.stderr

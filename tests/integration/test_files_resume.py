"""Resumable uploads: a put cut off half way leaves nothing under its name,
is kept aside for files.resume_window (at most files.max_partials), listed by
`list` with "partial": true, and continued by a put with "offset"
(PROTOCOL.md section 4, CONFIG.md files.resume_window, files.max_partials).

The daemons come from test_files' FilesDaemon (so they run under the backend
FRAMED_BACKEND names), with fsync off: what is tested is the keeping, not
the disk.
"""

import hashlib
import http.client
import json
import os
import socket
import struct
import time

from conftest import free_port
from framed_client import assert_error, assert_ok, frame
from test_files import FilesDaemon, files_factory, get_stream, put_bytes, tree  # noqa: F401 (fixture)

MiB = 1 << 20
FAST = {"fsync": False}


def payload(size):
    return os.urandom(size)


def cut_upload(daemon, name, data, sent, how="close", listener="tcp"):
    """Starts a put of `data`, sends its first `sent` bytes and goes away:
    an orderly close, or a reset (SO_LINGER 0: what is unread is dropped)."""
    client = daemon.connect(listener, timeout=30)
    client.send(frame({"cmd": "put", "name": name, "total_size": len(data)}))
    client.send(data[:sent])
    if how == "reset":
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def partials(client, prefix=None):
    header = {"cmd": "list", "partial": True}
    if prefix is not None:
        header["prefix"] = prefix
    reply, body = client.request(header)
    assert_ok(reply)
    return {entry["name"]: entry["size"] for entry in json.loads(body)}


def wait_for_partial(daemon, name, timeout=5):
    """The kept size of `name`, once the daemon has noticed the cut."""
    deadline = time.monotonic() + timeout
    with daemon.connect("tcp") as client:
        while time.monotonic() < deadline:
            kept = partials(client)
            if name in kept:
                return kept[name]
            time.sleep(0.02)
    raise AssertionError("no partial upload of %r within %ss" % (name, timeout))


def wait_for_aborted(daemon, count, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.stats("tcp")["files"]["uploads_aborted"] >= count:
            return
        time.sleep(0.02)
    raise AssertionError("uploads_aborted did not reach %d" % count)


def resume(client, name, data, offset, **extra):
    header = {"cmd": "put", "name": name, "offset": offset, "total_size": len(data) - offset}
    header.update(extra)
    return client.request(header, data[offset:], timeout=60)


def test_cut_at_half_of_100_mib_is_kept_and_resumed(files_factory):
    # Two uploads of the same 100 MiB cut at half way at once: one by an
    # orderly close, one by a reset (SO_LINGER 0).
    daemon = files_factory(FAST)
    block = os.urandom(MiB)
    data = b"".join(block[i:] + block[:i] for i in range(100))  # no two MiB alike
    whole = hashlib.sha256(data).hexdigest()
    before = tree(daemon.root)
    cut_upload(daemon, "closed.bin", data, len(data) // 2, "close")
    cut_upload(daemon, "reset.bin", data, len(data) // 2, "reset")
    # Nothing appears under the root, hidden files included, while the
    # daemon notices the cuts and keeps what it received.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert tree(daemon.root) == before
        time.sleep(0.05)
    kept = {name: wait_for_partial(daemon, name) for name in ("closed.bin", "reset.bin")}
    assert kept["closed.bin"] == len(data) // 2  # an orderly close delivers every byte sent
    assert 0 < kept["reset.bin"] <= len(data) // 2  # a reset drops what the daemon had not read
    assert tree(daemon.root) == before
    with daemon.connect("tcp", timeout=60) as client:
        assert_error(client.request({"cmd": "get", "name": "closed.bin"})[0], "not_found")
        assert json.loads(client.request({"cmd": "list"})[1]) == []
        for name, offset in kept.items():
            reply, _ = resume(client, name, data, offset, sha256=whole)
            assert_ok(reply)
            assert reply["size"] == len(data) and reply["sha256"] == whole
            header, digest, received = get_stream(client, name)
            assert_ok(header)
            assert received == len(data) and digest == whole
        assert partials(client) == {}
    stats = daemon.stats("tcp")["files"]
    assert stats["partials_kept"] == 2 and stats["partials_resumed"] == 2 and stats["partials_held"] == 0
    assert stats["files_committed"] == 2 and stats["uploads_aborted"] == 2
    assert stats["bytes_out"] == 2 * len(data)
    assert stats["bytes_in"] >= len(data)


def test_wrong_offset_is_bad_request_with_partial_size(files_factory):
    daemon = files_factory(FAST)
    data = payload(2 * MiB)
    cut_upload(daemon, "w.bin", data, MiB)
    kept = wait_for_partial(daemon, "w.bin")
    assert kept == MiB
    with daemon.connect("tcp") as client:
        for offset in (kept - 1, kept + 1, 1, 0):
            reply, _ = resume(client, "w.bin", data, offset)
            assert_error(reply, "bad_request")
            assert reply["partial_size"] == kept
        # The connection goes on (the body was skipped) and the partial stays.
        assert partials(client) == {"w.bin": kept}
        # An offset for a name with nothing kept: partial_size 0.
        reply, _ = resume(client, "other.bin", data, 5)
        assert_error(reply, "bad_request")
        assert reply["partial_size"] == 0
        reply, _ = resume(client, "w.bin", data, kept)
        assert_ok(reply)
        assert reply["sha256"] == hashlib.sha256(data).hexdigest() and reply["size"] == len(data)


def test_put_without_offset_starts_over(files_factory):
    daemon = files_factory(FAST)
    cut_upload(daemon, "s.bin", payload(2 * MiB), MiB)
    wait_for_partial(daemon, "s.bin")
    fresh = payload(1000)
    with daemon.connect("tcp") as client:
        reply, _ = put_bytes(client, "s.bin", fresh)
        assert_ok(reply)
        assert reply["size"] == len(fresh) and reply["sha256"] == hashlib.sha256(fresh).hexdigest()
        assert partials(client) == {}
        assert client.request({"cmd": "get", "name": "s.bin"})[1] == fresh
    assert daemon.stats("tcp")["files"]["partials_discarded"] == 1


def test_sha256_mismatch_keeps_nothing(files_factory):
    daemon = files_factory(FAST)
    with daemon.connect("tcp") as client:
        assert_error(put_bytes(client, "m.bin", b"abc", sha256="0" * 64)[0], "bad_request")
        assert partials(client) == {}
    assert tree(daemon.root) == {}


def test_resume_window_zero_keeps_none(files_factory):
    daemon = files_factory(dict(FAST, resume_window="0s"))
    cut_upload(daemon, "z.bin", payload(2 * MiB), MiB)
    wait_for_aborted(daemon, 1)
    with daemon.connect("tcp") as client:
        assert partials(client) == {}
        reply, _ = resume(client, "z.bin", payload(2 * MiB), MiB)
        assert_error(reply, "bad_request")
        assert reply["partial_size"] == 0
    assert daemon.stats("tcp")["files"]["partials_kept"] == 0
    assert tree(daemon.root) == {}


def test_max_partials_evicts_the_oldest(files_factory):
    daemon = files_factory(dict(FAST, max_partials=2))
    for name in ("a.bin", "b.bin", "c.bin"):
        cut_upload(daemon, name, payload(64 * 1024), 1000)
        wait_for_partial(daemon, name)
    with daemon.connect("tcp") as client:
        assert partials(client) == {"b.bin": 1000, "c.bin": 1000}
        assert partials(client, prefix="c") == {"c.bin": 1000}
    stats = daemon.stats("tcp")["files"]
    assert stats["partials_evicted"] == 1 and stats["partials_held"] == 2


def test_partial_expires_after_resume_window(files_factory):
    daemon = files_factory(dict(FAST, resume_window="1s"))
    cut_upload(daemon, "e.bin", payload(64 * 1024), 5000)
    assert wait_for_partial(daemon, "e.bin") == 5000
    time.sleep(1.2)
    with daemon.connect("tcp") as client:
        assert partials(client) == {}
        reply, _ = resume(client, "e.bin", payload(64 * 1024), 5000)
        assert_error(reply, "bad_request")
    assert daemon.stats("tcp")["files"]["partials_expired"] == 1


def kept_descriptors(daemon):
    """The daemon's descriptors of files without a name beneath its root
    (O_TMPFILE: a kept upload, or one being written)."""
    found = []
    fd_dir = "/proc/%d/fd" % daemon.pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except FileNotFoundError:
            continue
        if target.startswith(daemon.root + "/") and target.endswith(" (deleted)"):
            found.append(target)
    return found


def test_a_kept_upload_is_released_at_resume_window_untouched(files_factory):
    # After the cut nothing touches the table (no put, no list; stats only
    # reads counters): the kept file's descriptor, and so its blocks, are
    # released at resume_window all the same.
    daemon = files_factory(dict(FAST, resume_window="1s"))
    cut_upload(daemon, "idle.bin", payload(2 * MiB), MiB)
    deadline = time.monotonic() + 5
    while daemon.stats("tcp")["files"]["partials_held"] != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(kept_descriptors(daemon)) == 1
    deadline = time.monotonic() + 5
    while kept_descriptors(daemon) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kept_descriptors(daemon) == []
    stats = daemon.stats("tcp")["files"]
    assert stats["partials_expired"] == 1 and stats["partials_held"] == 0 and stats["partials_kept"] == 1


def test_resume_across_listeners_and_metrics(files_factory):
    web = {"kind": "http", "name": "web", "address": "127.0.0.1:%d" % free_port()}
    daemon = files_factory(FAST, listeners=[{"name": "tcp", "kind": "tcp"}, {"name": "unix", "kind": "unix"}, web])
    data = payload(3 * MiB)
    cut_upload(daemon, "x.bin", data, 2 * MiB, listener="unix")
    kept = wait_for_partial(daemon, "x.bin")
    with daemon.connect("tcp") as client:
        assert_ok(resume(client, "x.bin", data, kept)[0])
    host, port = web["address"].rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    assert 'framed_partial_uploads_total{event="kept"} 1\n' in text
    assert 'framed_partial_uploads_total{event="resumed"} 1\n' in text
    assert "framed_files_committed_total 1\n" in text
    assert "framed_uploads_aborted_total 1\n" in text
    assert "framed_partial_uploads 0\n" in text


def test_a_resumed_upload_cut_again_is_kept_again(files_factory):
    daemon = files_factory(FAST)
    data = payload(3 * MiB)
    cut_upload(daemon, "twice.bin", data, MiB)
    assert wait_for_partial(daemon, "twice.bin") == MiB
    # The resume is cut too: what it added is kept with what was kept.
    client = daemon.connect("tcp")
    client.send(frame({"cmd": "put", "name": "twice.bin", "offset": MiB, "total_size": len(data) - MiB}))
    client.send(data[MiB:2 * MiB])
    client.close()
    deadline = time.monotonic() + 5
    while wait_for_partial(daemon, "twice.bin") != 2 * MiB:
        assert time.monotonic() < deadline, "the second cut was not kept"
        time.sleep(0.02)
    with daemon.connect("tcp") as client:
        reply, _ = resume(client, "twice.bin", data, 2 * MiB)
        assert_ok(reply)
        assert reply["sha256"] == hashlib.sha256(data).hexdigest() and reply["size"] == len(data)
        assert client.request({"cmd": "get", "name": "twice.bin"}, timeout=30)[1] == data

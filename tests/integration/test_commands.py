"""The commands the daemon implements: ping, echo, upper, help, stats."""

import json
import os
import subprocess

import pytest

from conftest import BACKEND, FRAMED_BIN
from framed_client import assert_ok

EXPECTED_COMMANDS = {"ping", "echo", "upper", "help", "stats"}


def test_ping(std):
    with std.connect("tcp4") as client:
        reply, body = client.request({"cmd": "ping", "id": 1})
    assert reply.get("ok") is True and reply.get("pong") is True and reply.get("id") == 1, reply
    assert body == b"" and reply.get("total_size", 0) == 0


def test_ping_ignores_body(std):
    with std.connect("tcp4") as client:
        reply, _ = client.request({"cmd": "ping", "id": 1}, b"ignored body")
        assert_ok(reply)
        reply, _ = client.request({"cmd": "ping", "id": 2})
        assert reply.get("id") == 2


@pytest.mark.parametrize("body", [b"", b"a", bytes(range(256)) * 4, b"\x00" * 100, b"\r\n\\\"{}"])
def test_echo_binary(std, body):
    with std.connect("tcp4") as client:
        reply, echoed = client.request({"cmd": "echo", "id": "e"}, body)
    assert_ok(reply)
    assert echoed == body
    assert reply.get("total_size", 0) == len(body)


def test_echo_one_mebibyte(std):
    body = os.urandom(1 << 20)
    with std.connect("tcp4", timeout=10) as client:
        reply, echoed = client.request({"cmd": "echo", "id": 1}, body)
        assert_ok(reply)
        assert reply.get("total_size") == len(body)
        assert echoed == body, "1 MiB echo differs"
    with std.connect("unix", timeout=10) as client:
        reply, echoed = client.request({"cmd": "echo", "id": 2}, body)
        assert echoed == body, "1 MiB echo over Unix stream differs"


def test_upper(std):
    with std.connect("tcp4") as client:
        reply, body = client.request({"cmd": "upper", "id": 1}, "Hello, wörld! abc-xyz_019".encode())
        assert_ok(reply)
        assert body == "HELLO, WöRLD! ABC-XYZ_019".encode(), "upper must change ASCII letters only: %r" % body
        reply, body = client.request({"cmd": "upper", "id": 2}, bytes(range(256)))
        expected = bytes(c - 32 if 97 <= c <= 122 else c for c in range(256))
        assert body == expected


def test_help(std):
    with std.connect("tcp4") as client:
        reply, body = client.request({"cmd": "help", "id": 1})
    assert_ok(reply)
    entries = json.loads(body)
    assert isinstance(entries, list), body
    names = set()
    for entry in entries:
        assert isinstance(entry, dict), entry
        assert isinstance(entry.get("name"), str) and entry["name"], entry
        assert isinstance(entry.get("summary"), str) and entry["summary"].strip(), entry
        assert isinstance(entry.get("enabled"), bool), "help entry without a boolean enabled: %r" % entry
        assert entry["enabled"] is True, "every command is enabled on a plain json listener: %r" % entry
        names.add(entry["name"])
    assert len(names) == len(entries), "duplicate names in help: %r" % entries
    missing = EXPECTED_COMMANDS - names
    assert not missing, "help does not list %s" % sorted(missing)


def test_help_in_simple_mode(std):
    # With command = "upper", "help" is only a body to upper-case; on the plain
    # text listener it is the command, and every command is enabled there.
    with std.datagram("udp_upper") as client:
        assert client.request(b"help") == b"HELP"
    with std.datagram("udp") as client:
        entries = json.loads(client.request(b"help"))
    assert EXPECTED_COMMANDS <= {e["name"] for e in entries}
    assert all(e["enabled"] is True for e in entries), entries


def read_stats(client):
    reply, body = client.request({"cmd": "stats", "id": "s"})
    assert_ok(reply)
    assert reply.get("id") == "s"
    stats = json.loads(body)
    assert isinstance(stats, dict), body
    return stats


def test_stats_counters_increase(std):
    with std.connect("tcp4") as client:
        before = read_stats(client)
        client.request({"cmd": "ping"})
        client.request({"cmd": "echo"}, b"12345")
        client.request({"cmd": "nosuch"})
        after = read_stats(client)
    for key in ("frames_in", "replies_out", "bytes_in", "bytes_out", "connections_accepted", "errors",
                "idle_timeouts", "header_timeouts", "accept_fd_exhausted", "reload_failures"):
        assert isinstance(before.get(key), int), "stats has no integer %r: %r" % (key, before)
    assert after["frames_in"] - before["frames_in"] >= 4, (before, after)
    assert after["replies_out"] - before["replies_out"] >= 4, (before, after)
    assert after["bytes_in"] - before["bytes_in"] >= 5, (before, after)
    assert after["bytes_out"] > before["bytes_out"]
    assert after["errors"] - before["errors"] >= 1
    assert after["commands"]["ping"]["calls"] == before["commands"]["ping"]["calls"] + 1
    assert after["commands"]["echo"]["calls"] == before["commands"]["echo"]["calls"] + 1
    assert after["connections_active"] >= 1


def test_stats_backend_and_version(std):
    with std.connect("tcp4") as client:
        stats = read_stats(client)
    if BACKEND in ("epoll", "io_uring"):
        assert stats.get("backend") == BACKEND, "FRAMED_BACKEND=%s but stats says backend %r" % (
            BACKEND, stats.get("backend"))
    else:
        assert stats.get("backend") in ("epoll", "io_uring"), stats.get("backend")
    version = subprocess.run([FRAMED_BIN, "--version"], capture_output=True, text=True, timeout=10).stdout.split()[-1]
    assert stats.get("version") == version


def test_stats_per_listener(std):
    with std.datagram("udp") as client:
        assert client.request(b"ping") == b"pong"
    with std.connect("tcp4") as client:
        stats = read_stats(client)
    listeners = stats.get("listeners")
    assert isinstance(listeners, dict) and len(listeners) == len(std.listeners), listeners
    udp = [v for v in listeners.values() if v.get("kind") == "udp"]
    assert sum(v.get("datagrams_in", 0) for v in udp) >= 1

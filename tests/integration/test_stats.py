"""`stats` as operators use it: per-command latency (the reactor's commands
and the deferred ones), the bytes the daemon holds for its clients, and a
counter reset that loses nothing."""

import json
import socket
import struct
import time

import pytest

from conftest import Daemon
from framed_client import assert_ok, encode_header

SLEEP_SECONDS = 0.4


@pytest.fixture
def daemon():
    started = Daemon([{"kind": "tcp", "name": "tcp"}, {"kind": "tcp", "name": "line", "framing": "line"}])
    with open(started.config_path, "a") as config:
        config.write('\n[commands.nap]\nargv = ["/bin/sleep", "%s"]\ntimeout = "10s"\n' % SLEEP_SECONDS)
    started.start()
    yield started
    started.cleanup()


def stats_of(client, **fields):
    header, body = client.request(dict({"cmd": "stats", "id": "s"}, **fields))
    assert_ok(header)
    return json.loads(body)


def test_every_command_has_latency_percentiles(daemon):
    with daemon.connect("tcp") as client:
        for i in range(50):
            assert_ok(client.request({"cmd": "ping", "id": i})[0])
        stats = stats_of(client)
    ping = stats["commands"]["ping"]
    assert ping["calls"] == 50
    for key in ("latency_p50_us", "latency_p90_us", "latency_p99_us", "latency_max_us"):
        assert isinstance(ping[key], int), ping
    # A reactor command answers within its batch: well under a second.
    assert ping["latency_p50_us"] <= ping["latency_p99_us"] <= ping["latency_max_us"] < 1_000_000
    # Commands never run have empty percentiles.
    assert stats["commands"]["upper"]["latency_max_us"] == 0


def test_a_deferred_command_is_timed_until_its_reply(daemon):
    with daemon.connect("tcp") as client:
        header, _ = client.request({"cmd": "exec", "id": 1, "name": "nap"}, timeout=10)
        assert_ok(header)
        stats = stats_of(client)
    exec_latency = stats["commands"]["exec"]
    assert exec_latency["calls"] == 1
    # Timed from the request to the worker's answer, not to the defer.
    assert exec_latency["latency_max_us"] >= SLEEP_SECONDS * 1e6, exec_latency
    assert exec_latency["latency_max_us"] < 10 * 1e6


def test_bytes_buffered_counts_a_body_in_progress(daemon):
    with daemon.connect("tcp") as idle:
        # Sampled every 100 ms: at most the few bytes of a stats request.
        baseline = stats_of(idle)["bytes_buffered"]
        assert baseline < 100
        family, address = daemon.address("tcp")
        with socket.create_connection(address, timeout=5) as sender:
            header = encode_header({"cmd": "echo", "id": 1, "total_size": 1 << 20})
            sent = 300_000
            sender.sendall(struct.pack(">I", len(header)) + header + b"x" * sent)
            # The daemon holds what has arrived of the body until the rest does.
            deadline = time.monotonic() + 5
            while True:
                buffered = stats_of(idle)["bytes_buffered"]
                if buffered >= sent or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            assert buffered >= sent
        # The sender has gone: nothing is held for it any more.
        deadline = time.monotonic() + 5
        while stats_of(idle)["bytes_buffered"] != baseline and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stats_of(idle)["bytes_buffered"] == baseline


def test_reset_answers_the_counters_then_zeroes_them(daemon):
    with daemon.connect("tcp") as client:
        for i in range(5):
            assert_ok(client.request({"cmd": "ping", "id": i})[0])
        client.request({"cmd": "nosuch"})
        before = stats_of(client)
        time.sleep(1.1)  # counters_since_unix is in seconds
        at_reset = stats_of(client, reset=True)
        after = stats_of(client)
    # The reset reply carries the counters as they were (the first stats
    # request and this one's own frame included).
    assert at_reset["commands"]["ping"]["calls"] == 5
    assert at_reset["frames_in"] == before["frames_in"] + 1
    assert at_reset["errors_unknown_command"] == 1
    assert at_reset["counters_since_unix"] == before["counters_since_unix"]
    # Afterwards only what came after the reset counts: the one stats request.
    assert after["frames_in"] == 1
    assert after["listeners"]["tcp"]["frames_in"] == 1
    assert after["commands"]["ping"]["calls"] == 0
    assert after["commands"]["ping"]["latency_max_us"] == 0
    assert after["commands"]["stats"]["calls"] == 1
    assert after["errors"] == 0
    assert after["connections_accepted"] == 0
    assert after["counters_since_unix"] > before["counters_since_unix"]
    # Gauges are not counters: they keep their value.
    assert after["connections_active"] == before["connections_active"] >= 1
    assert after["listeners"]["tcp"]["connections_active"] >= 1
    assert after["config_generation"] == before["config_generation"]


def test_reset_in_simple_mode_and_bad_values(daemon):
    with daemon.connect("tcp") as client:
        header, _ = client.request({"cmd": "stats", "id": 1, "reset": "yes"})
        assert header.get("ok") is False and header["error"]["code"] == "bad_request", header
    family, address = daemon.address("line")
    with socket.create_connection(address, timeout=5) as line:
        reader = line.makefile("rb")
        line.sendall(b"ping\nstats reset\nstats\nstats now\n")
        assert reader.readline() == b"pong\n"
        at_reset = json.loads(reader.readline())
        after = json.loads(reader.readline())
        refused = reader.readline()
    assert at_reset["listeners"]["line"]["frames_in"] >= 2
    assert after["listeners"]["line"]["frames_in"] == 1
    assert refused.startswith(b"ERR bad_request"), refused

"""exec with "stream": true: output events while the command runs, then the
ordinary reply (PROTOCOL.md section 4); max_output and timeout mid-stream.
"""

import time

import pytest

from framed_client import assert_error, assert_ok
from test_exec import exec_factory  # noqa: F401  (the fixture)

# Three lines with pauses between them, on both streams, so that each line
# is a chunk of its own and the first arrives long before the exit.
TICKS = 'for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; sleep 0.3; done; exit 3'

COMMANDS = {
    "ticks": {"argv": ["/bin/sh", "-c", TICKS]},
    "cat": {"argv": ["/bin/cat"], "max_output": "4MiB"},
    "flood": {"argv": ["/usr/bin/yes", "a fairly long line of output, over and over"],
              "max_output": "3MiB", "timeout": "20s"},
    "hang": {"argv": ["/bin/sh", "-c", "echo started; sleep 30"], "timeout": "1s"},
}

LISTENERS = [
    {"kind": "tcp", "name": "tcp"},
    {"kind": "unix", "name": "unix", "mode": "0600"},
    {"kind": "udp", "name": "udp_json", "framing": "datagram", "payload": "json"},
]


@pytest.fixture
def daemon(exec_factory):  # noqa: F811
    return exec_factory(LISTENERS, COMMANDS)


def run_streamed(client, header, body=b"", timeout=30):
    """(events as (header, body), the reply header, seconds to the first event)."""
    started = time.monotonic()
    client.send_request(dict(header, cmd="exec", stream=True), body)
    events = []
    first = None
    while True:
        head, chunk = client.read_reply(timeout)
        if "event" not in head:
            return events, head, first
        if first is None:
            first = time.monotonic() - started
        events.append((head, chunk))


def joined(events, stream):
    return b"".join(body for head, body in events if head["stream"] == stream)


@pytest.mark.parametrize("listener", ["tcp", "unix"])
def test_events_arrive_before_the_reply_in_order(daemon, listener):
    with daemon.connect(listener) as client:
        events, reply, first = run_streamed(client, {"id": "run-1", "name": "ticks"})
    assert_ok(reply)
    assert reply["id"] == "run-1" and reply["exit_code"] == 3 and reply.get("total_size", 0) == 0
    # the first line came while the command still had 0.6 s to run
    assert first is not None and first < 0.5, first
    for head, body in events:
        assert head == {"event": "output", "id": "run-1", "stream": head["stream"], "total_size": len(body)}
        assert head["stream"] in ("stdout", "stderr")
    assert joined(events, "stdout") == b"out 1\nout 2\nout 3\n"
    assert joined(events, "stderr") == b"err 1\nerr 2\nerr 3\n"
    assert reply["stdout_size"] == 18 and reply["stderr_size"] == 18
    assert len(events) >= 6


def test_streamed_stdin_comes_back_whole(daemon):
    data = bytes(range(256)) * 4096  # 1 MiB: many chunks
    with daemon.connect("tcp") as client:
        events, reply, _ = run_streamed(client, {"id": 9, "name": "cat"}, data)
        assert_ok(reply)
        assert joined(events, "stdout") == data
        assert reply["stdout_size"] == len(data) and reply["truncated"] is False
        # the connection goes on with ordinary requests
        header, _ = client.request({"cmd": "ping"})
        assert header["pong"] is True


def test_a_flood_is_capped_at_max_output(daemon):
    with daemon.connect("tcp") as client:
        events, reply, _ = run_streamed(client, {"name": "flood"})
    assert_ok(reply)
    out = joined(events, "stdout")
    assert len(out) == 3 * 1024 * 1024 == reply["stdout_size"]
    assert reply["truncated"] is True and reply["stdout_truncated"] is True
    assert out.startswith(b"a fairly long line of output, over and over\n")


def test_a_slowly_read_flood_stays_ordered(daemon):
    # The client reads slowly: the worker must wait for the reactor rather
    # than queue the flood, and nothing is lost or reordered.
    with daemon.connect("tcp") as client:
        client.send_request({"cmd": "exec", "name": "flood", "stream": True})
        time.sleep(1.0)
        events = []
        while True:
            head, chunk = client.read_reply(30)
            if "event" not in head:
                break
            events.append(chunk)
        assert head["stdout_size"] == 3 * 1024 * 1024
        out = b"".join(events)
        assert len(out) == 3 * 1024 * 1024
        line = b"a fairly long line of output, over and over\n"
        whole = len(out) // len(line)
        assert out[:whole * len(line)] == line * whole


def test_timeout_mid_stream(daemon):
    with daemon.connect("tcp") as client:
        started = time.monotonic()
        events, reply, first = run_streamed(client, {"id": "t", "name": "hang"})
        elapsed = time.monotonic() - started
    assert_error(reply, "timeout")
    assert reply["id"] == "t"
    assert joined(events, "stdout") == b"started\n" and reply["stdout_size"] == 8
    assert first < 0.9 and elapsed < 5


def test_stream_needs_a_stream_connection_and_a_boolean(daemon):
    with daemon.datagram("udp_json") as udp:
        header, _ = udp.request_json({"cmd": "exec", "name": "ticks", "stream": True})
        assert_error(header, "bad_request")
    with daemon.connect("tcp") as client:
        header, _ = client.request({"cmd": "exec", "name": "ticks", "stream": "yes"})
        assert_error(header, "bad_request")
        # stream false: the ordinary reply with the output as body
        header, body = client.request({"cmd": "exec", "name": "ticks", "stream": False})
        assert_ok(header)
        assert body == b"out 1\nout 2\nout 3\nerr 1\nerr 2\nerr 3\n"

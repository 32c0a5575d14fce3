"""Datagram listeners answer without head-of-line blocking: a command that
takes a while holds up only its own sender's reply, while the listener goes
on reading and answering everyone else, up to max_pending_replies datagrams
at once.

max_pending_replies bounds each datagram socket; with several reactors each
has a UDP socket of its own on the port (and its own slots), so these
daemons run one reactor whatever FRAMED_REACTORS says.
"""

import socket
import time

import pytest

from conftest import Daemon

NAP_SECONDS = 1.0


@pytest.fixture
def daemon(request):
    started = Daemon([
        {"kind": "udp", "name": "udp", "framing": "datagram", "payload": "text"},
        {"kind": "unix_dgram", "name": "unix", "framing": "datagram", "payload": "text"},
        {"kind": "udp", "name": "narrow", "framing": "datagram", "payload": "text", "max_pending_replies": 2},
    ], daemon={"workers": 4, "reactors": 1})
    with open(started.config_path, "a") as config:
        config.write('\n[commands.nap]\nargv = ["/bin/sleep", "%s"]\ntimeout = "10s"\n' % NAP_SECONDS)
    started.start()
    yield started
    started.cleanup()


@pytest.mark.parametrize("listener", ["udp", "unix"])
def test_a_slow_command_does_not_hold_up_other_senders(daemon, listener):
    with daemon.datagram(listener, timeout=10) as slow, daemon.datagram(listener, timeout=10) as quick:
        started = time.monotonic()
        slow.send(b"exec nap")
        time.sleep(0.05)  # the exec has been read and handed to a worker
        for i in range(20):
            assert quick.request(b"upper ping %d" % i) == b"PING %d" % i
        quick_done = time.monotonic() - started
        assert slow.receive() == b""  # sleep prints nothing
        slow_done = time.monotonic() - started
    # The 20 round trips finished while the exec was still sleeping.
    assert quick_done < NAP_SECONDS * 0.8, "pings waited %.2f s behind a %.1f s exec" % (quick_done, NAP_SECONDS)
    assert slow_done >= NAP_SECONDS


def test_one_sender_may_have_several_requests_in_flight(daemon):
    with daemon.datagram("udp", timeout=10) as client:
        client.send(b"exec nap")
        client.send(b"ping")
        # The ping is answered first: replies leave as they become ready.
        assert client.receive() == b"pong"
        assert client.receive() == b""


def test_max_pending_replies_bounds_the_datagrams_answered_at_once(daemon):
    _, address = daemon.address("narrow")
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for sock in senders:
            sock.settimeout(10)
        started = time.monotonic()
        for sock in senders[:2]:
            sock.sendto(b"exec nap", address)
        time.sleep(0.1)
        # Both slots are busy: the ping waits in the socket's queue until a
        # slot frees, and is answered then, not lost.
        senders[2].sendto(b"ping", address)
        assert senders[2].recvfrom(100)[0] == b"pong"
        waited = time.monotonic() - started
        assert waited >= NAP_SECONDS * 0.9, "a third datagram was answered after %.2f s, with 2 slots busy" % waited
        for sock in senders[:2]:
            assert sock.recvfrom(100)[0] == b""
    finally:
        for sock in senders:
            sock.close()

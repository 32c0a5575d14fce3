"""systemd socket activation (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), as
systemd does it: the sockets are fds 3, 4, ... of the exec'd daemon."""

import fcntl
import os
import socket

from conftest import Daemon
from framed_client import Client, DatagramClient, assert_ok

LAUNCH = 'LISTEN_PID=$$ LISTEN_FDS={count} LISTEN_FDNAMES={names} exec "$FRAMED_BIN" --config "$CFG"'


def high_dup(sock):
    """A CLOEXEC duplicate at fd >= 100, so that dup2 onto 3 and 4 never overwrites a source."""
    return fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 100)


def activated_daemon(listeners, sockets, names):
    sources = [high_dup(s) for s in sockets]

    def put_at_3():
        # dup2 clears CLOEXEC on the target: fds 3.. survive the exec, the sources do not.
        for target, source in enumerate(sources, start=3):
            os.dup2(source, target)

    daemon = Daemon(listeners, preexec_fn=put_at_3,
                    # The passed fds are created in preexec_fn, after subprocess would have made its
                    # pass_fds list; close_fds=False keeps them (Python's own fds are all CLOEXEC).
                    close_fds=False)
    daemon.args = ["/bin/sh", "-c", LAUNCH.format(count=len(sockets), names=":".join(names))]
    daemon.env["CFG"] = daemon.config_path
    return daemon, sources


def test_activated_socket_matched_by_name():
    web = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    web.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    web.bind(("127.0.0.1", 0))
    web.listen(16)
    port = web.getsockname()[1]
    # The [[listener]] "web" names another address: the fd must win, by name.
    daemon, sources = activated_daemon([{"kind": "tcp", "name": "web", "max_body": 16}], [web], ["web"])
    try:
        daemon.start()
        web.close()  # only the daemon holds the socket now
        for fd in sources:
            os.close(fd)
        sources = []
        with Client(("127.0.0.1", port)) as client:
            reply, _ = client.request({"cmd": "ping", "id": "activated"})
            assert_ok(reply)
            assert reply.get("id") == "activated"
            # The listener's own settings apply to the adopted socket.
            reply, _ = client.request({"cmd": "echo"}, b"x" * 17)
            assert reply.get("ok") is False and reply["error"]["code"] == "frame_too_large", \
                "the fd named 'web' is not served with [[listener]] web's max_body = 16: %r" % reply
        # The fd replaced binding: the address written for "web" was not bound as well.
        _, configured = daemon.address("web")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(configured)
            except OSError as error:
                raise AssertionError("the daemon bound %s:%d for 'web' although systemd passed its socket (%s)"
                                     % (configured[0], configured[1], error))
        assert daemon.stop() == 0, daemon.stderr_text()
    finally:
        web.close()
        for fd in sources:
            os.close(fd)
        daemon.cleanup()


def test_unmatched_activated_sockets_get_kind_defaults():
    stray_tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stray_tcp.bind(("127.0.0.1", 0))
    stray_tcp.listen(16)
    stray_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stray_udp.bind(("127.0.0.1", 0))
    tcp_port, udp_port = stray_tcp.getsockname()[1], stray_udp.getsockname()[1]
    daemon, sources = activated_daemon([{"kind": "tcp", "name": "configured"}], [stray_tcp, stray_udp],
                                       ["stray", "stray-udp"])
    try:
        daemon.start()
        stray_tcp.close()
        stray_udp.close()
        for fd in sources:
            os.close(fd)
        sources = []
        # A TCP fd matching no listener: json framing (the tcp default).
        with Client(("127.0.0.1", tcp_port)) as client:
            reply, _ = client.request({"cmd": "ping", "id": 1})
            assert_ok(reply)
        # A UDP fd matching no listener: text datagrams (the udp default).
        with DatagramClient(("127.0.0.1", udp_port)) as client:
            assert client.request(b"upper stray") == b"STRAY"
        # The configured listener, which got no fd, is bound as usual.
        daemon.ping("configured")
        text = daemon.stderr_text()
        assert "stray" in text, "no log line about the fd that matches no [[listener]]\n" + text
        assert daemon.stop() == 0, daemon.stderr_text()
    finally:
        stray_tcp.close()
        stray_udp.close()
        for fd in sources:
            os.close(fd)
        daemon.cleanup()


def test_listen_pid_of_another_process_is_ignored():
    """LISTEN_PID names someone else: the fds are not ours, the config's listeners are bound."""
    daemon = Daemon([{"kind": "tcp", "name": "t"}],
                    env={"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "t"})
    try:
        daemon.start()
        daemon.ping("t")
    finally:
        daemon.cleanup()

"""Principals: tokens, Unix uids, what a principal may do, its request rate,
and connections per source address.

Every daemon here is conftest's Daemon with [principals.NAME] (and
[commands.NAME], [files]) tables appended, so each test runs under whichever
backend FRAMED_BACKEND names.
"""

import hashlib
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import Daemon, FRAMED_BIN, REPO, render_config, started_daemons, toml_value
from framed_client import Client, ConnectionClosed, assert_error, assert_ok, frame

DEPLOY_TOKEN = "s3cret-deploy-token"
READER_TOKEN = "reader-token-42"
FRAMECTL_BIN = os.path.abspath(os.environ.get("FRAMECTL_BIN") or os.path.join(REPO, "build", "framectl", "framectl"))


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


def render_tables(prefix, tables):
    lines = []
    for name, values in tables.items():
        lines.append("[%s.%s]" % (prefix, name) if prefix else "[%s]" % name)
        lines.extend("%s = %s" % (key, toml_value(value)) for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


class AuthDaemon(Daemon):
    """A daemon with principals, and optionally commands and files, appended."""

    def __init__(self, listeners, principals, commands=None, files_root=None, **kwargs):
        super().__init__(listeners, **kwargs)
        self.principals = principals
        self.commands = commands or {}
        self.files_root = files_root
        self.rewrite(principals)

    def rewrite(self, principals):
        text = render_config(list(self.listeners.values()))
        text += "\n" + render_tables("principals", principals)
        text += "\n" + render_tables("commands", self.commands)
        if self.files_root:
            text += "\n" + render_tables("", {"files": {"root": self.files_root}})
        with open(self.config_path + ".new", "w") as config:
            config.write(text)
        os.replace(self.config_path + ".new", self.config_path)


@pytest.fixture
def auth_factory(request):
    """start(listeners, principals, commands=..., files_root=...) -> a started AuthDaemon."""
    yield from started_daemons(request, AuthDaemon)


def token_listener(**extra):
    listener = {"name": "tcp", "kind": "tcp", "auth": "token"}
    listener.update(extra)
    return listener


DEPLOY = {"token_sha256": sha256_hex(DEPLOY_TOKEN)}


def test_nothing_but_auth_before_a_right_token(auth_factory):
    daemon = auth_factory([token_listener()], {"deploy": DEPLOY})
    with daemon.connect("tcp") as client:
        for request in ({"cmd": "ping"}, {"cmd": "stats"}, {"cmd": "no-such-command"}):
            header, _ = client.request(request)
            assert_error(header, "forbidden")
            assert "authenticate first" in header["error"]["message"]
        header, _ = client.request({"cmd": "auth", "token": DEPLOY_TOKEN, "id": 7})
        assert_ok(header)
        assert header["principal"] == "deploy" and header["id"] == 7
        header, _ = client.request({"cmd": "ping"})
        assert_ok(header)
    # Authentication belongs to the connection: a new one starts over.
    with daemon.connect("tcp") as client:
        header, _ = client.request({"cmd": "ping"})
        assert_error(header, "forbidden")


def test_a_wrong_token_is_forbidden_later_each_time(auth_factory):
    daemon = auth_factory([token_listener()], {"deploy": DEPLOY})
    with daemon.connect("tcp") as client:
        waits = []
        for _ in range(3):
            started = time.monotonic()
            header, _ = client.request({"cmd": "auth", "token": "guess"})
            waits.append(time.monotonic() - started)
            assert_error(header, "forbidden")
        # 100 ms, 200 ms, 400 ms: each answer comes no sooner than its delay.
        assert waits[0] >= 0.09 and waits[1] >= 0.19 and waits[2] >= 0.39, waits
        # A request pipelined behind a wrong token waits for it: answers stay in order.
        client.send(frame({"cmd": "auth", "token": "guess", "id": 1}) + frame({"cmd": "auth", "token": DEPLOY_TOKEN, "id": 2}))
        first, _ = client.read_reply()
        second, _ = client.read_reply()
        assert first["id"] == 1 and first["ok"] is False and second["id"] == 2 and second["ok"] is True
        header, _ = client.request({"cmd": "auth", "token": ""})
        assert_error(header, "bad_request")
        header, _ = client.request({"cmd": "auth"})
        assert_error(header, "bad_request")
    stats = daemon_stats(daemon)
    assert stats["auth_failures"] == 4 and stats["auth_successes"] == 2, stats  # the second: this stats connection


def daemon_stats(daemon, listener="tcp", token=DEPLOY_TOKEN):
    with daemon.connect(listener) as client:
        if token:
            assert_ok(client.request({"cmd": "auth", "token": token})[0])
        header, body = client.request({"cmd": "stats"})
    assert_ok(header)
    return json.loads(body)["listeners"][listener]


def test_simple_mode_auth(auth_factory):
    daemon = auth_factory([token_listener(name="line", framing="line")], {"deploy": DEPLOY})
    with daemon.connect("line") as client:
        client.send(b"ping\nauth wrong\nauth " + DEPLOY_TOKEN.encode() + b"\nping\n")
        data = client.read_exact(len(b"ERR forbidden "))
        deadline = time.monotonic() + 5
        while data.count(b"\n") < 4 and time.monotonic() < deadline:
            data += client.sock.recv(4096)
    lines = data.split(b"\n")
    assert lines[0].startswith(b"ERR forbidden authenticate first"), lines
    assert lines[1] == b"ERR forbidden auth: wrong token", lines
    assert lines[2] == b"ok deploy" and lines[3] == b"pong", lines


def test_a_principal_may_do_only_what_it_is_granted(auth_factory, tmp_path):
    root = tmp_path / "files"
    root.mkdir()
    (root / "report.txt").write_bytes(b"numbers\n")
    principals = {
        "deploy": DEPLOY,
        "reader": {"token_sha256": sha256_hex(READER_TOKEN), "allow_commands": ["hello"], "files": "read",
                   "channels": ["builds.*"]},
    }
    commands = {"hello": {"argv": ["/bin/echo", "hello"]}, "date": {"argv": ["/bin/date"]}}
    daemon = auth_factory([token_listener()], principals, commands=commands, files_root=str(root))
    with daemon.connect("tcp") as client:
        assert_ok(client.request({"cmd": "auth", "token": READER_TOKEN})[0])
        header, body = client.request({"cmd": "exec", "name": "hello"})
        assert_ok(header)
        assert body == b"hello\n"
        header, _ = client.request({"cmd": "exec", "name": "date"})
        assert_error(header, "forbidden")
        assert "principal 'reader'" in header["error"]["message"]
        header, body = client.request({"cmd": "get", "name": "report.txt"})
        assert_ok(header)
        assert body == b"numbers\n"
        assert_ok(client.request({"cmd": "list"})[0])
        header, _ = client.request({"cmd": "put", "name": "new.txt"}, b"x")
        assert_error(header, "forbidden")
        assert "may not write files" in header["error"]["message"]
        assert_error(client.request({"cmd": "delete", "name": "report.txt"})[0], "forbidden")
        assert_ok(client.request({"cmd": "subscribe", "channel": "builds.arm64"})[0])
        assert_error(client.request({"cmd": "subscribe", "channel": "deploys"})[0], "forbidden")
        assert_error(client.request({"cmd": "publish", "channel": "deploys"}, b"m")[0], "forbidden")
        header, _ = client.request({"cmd": "publish", "channel": "builds.x86"}, b"m")
        assert_ok(header)
    assert sorted(os.listdir(root)) == ["report.txt"]
    # A principal without allow_commands has the listener's: every command,
    # but no files and no channels unless granted.
    with daemon.connect("tcp") as client:
        assert_ok(client.request({"cmd": "auth", "token": DEPLOY_TOKEN})[0])
        assert_ok(client.request({"cmd": "exec", "name": "date"})[0])
        assert_error(client.request({"cmd": "list"})[0], "forbidden")
        assert_error(client.request({"cmd": "subscribe", "channel": "builds.arm64"})[0], "forbidden")


def test_a_unix_peer_is_the_principal_its_uid_names(auth_factory):
    principals = {
        "deploy": DEPLOY,
        "local": {"unix_uids": [os.getuid()], "files": "none", "rate": 1000},
    }
    daemon = auth_factory([{"name": "unix", "kind": "unix", "auth": "token"}, token_listener()], principals)
    with daemon.connect("unix") as client:
        assert_ok(client.request({"cmd": "ping"})[0])  # no token needed: the uid says who it is
        assert_error(client.request({"cmd": "list"})[0], "forbidden")
    # Over TCP the same client has no uid to show.
    with daemon.connect("tcp") as client:
        assert_error(client.request({"cmd": "ping"})[0], "forbidden")


def test_a_principal_past_its_rate_is_too_busy(auth_factory):
    daemon = auth_factory([token_listener()], {"deploy": DEPLOY, "slow": {"token_sha256": sha256_hex("slow"), "rate": 5}})
    with daemon.connect("tcp") as client:
        assert_ok(client.request({"cmd": "auth", "token": "slow"})[0])
        # The bucket holds one second's worth (5, one spent on auth): a burst
        # of 40 gets at most 4 through and the rest too_busy, in order.
        client.send(b"".join(frame({"cmd": "ping", "id": i}) for i in range(40)))
        replies = [client.read_reply() for _ in range(40)]
    assert [header["id"] for header, _ in replies] == list(range(40))
    ok = sum(1 for header, _ in replies if header["ok"])
    busy = [header for header, _ in replies if not header["ok"]]
    assert 1 <= ok <= 5, ok
    assert all(header["error"]["code"] == "too_busy" for header in busy)
    assert daemon_stats(daemon)["rate_limited"] == len(busy)


def test_connections_per_address_are_bounded(auth_factory):
    daemon = auth_factory([{"name": "tcp", "kind": "tcp", "max_connections_per_ip": 50}], {"deploy": DEPLOY})
    clients = []
    try:
        refused = 0
        for _ in range(200):
            client = daemon.connect("tcp")
            clients.append(client)
        for client in clients:
            try:
                header, _ = client.request({"cmd": "ping"}, timeout=5)
            except ConnectionClosed:
                refused += 1
                continue
            if header["ok"]:
                continue
            assert_error(header, "too_busy")
            assert "max_connections_per_ip (50)" in header["error"]["message"]
            refused += 1
        assert refused == 150
        # Another address of the loopback is another source.
        family, address = daemon.address("tcp")
        with Client(address, family, source=("127.0.0.2", 0)) as other:
            assert_ok(other.request({"cmd": "ping"})[0])
            # A closed connection gives its place back, once the daemon has
            # seen it go: 49 from 127.0.0.1 and this one open.
            clients[0].close()
            deadline = time.monotonic() + 10
            while True:
                header, body = other.request({"cmd": "stats"})
                if json.loads(body)["listeners"]["tcp"]["connections_active"] == 50:
                    break
                assert time.monotonic() < deadline, "the closed connection is still counted"
                time.sleep(0.02)
        with daemon.connect("tcp") as client:
            assert_ok(client.request({"cmd": "ping"})[0])
    finally:
        for client in clients:
            client.close()
    assert daemon_stats(daemon, token=None)["connections_rejected_per_ip"] == 150


def test_a_reload_revokes_a_token_for_open_connections(auth_factory):
    daemon = auth_factory([token_listener()], {"deploy": DEPLOY})
    with daemon.connect("tcp") as client:
        assert_ok(client.request({"cmd": "auth", "token": DEPLOY_TOKEN})[0])
        assert_ok(client.request({"cmd": "ping"})[0])
        daemon.rewrite({"deploy": {"token_sha256": sha256_hex("rotated")}})
        daemon.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            header, _ = client.request({"cmd": "ping"})
            if not header["ok"]:
                break
            time.sleep(0.05)
        assert_error(header, "forbidden")
        assert_error(client.request({"cmd": "auth", "token": DEPLOY_TOKEN})[0], "forbidden")
        assert_ok(client.request({"cmd": "auth", "token": "rotated"})[0])
        assert_ok(client.request({"cmd": "ping"})[0])


def test_framectl_authenticates_with_a_token_file(auth_factory, tmp_path):
    daemon = auth_factory([token_listener(), token_listener(name="line", framing="line")], {"deploy": DEPLOY})
    token_file = tmp_path / "token"
    token_file.write_text(DEPLOY_TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if k != "FRAMED_TOKEN"}
    for name, framing in (("tcp", []), ("line", ["--framing", "line"])):
        address = daemon.listeners[name]["address"]
        run = subprocess.run([FRAMECTL_BIN, "--tcp", address, *framing, "ping"], capture_output=True, text=True,
                             timeout=10, env=env)
        assert run.returncode == 1 and "forbidden" in run.stderr, run
        run = subprocess.run([FRAMECTL_BIN, "--tcp", address, *framing, "--token-file", str(token_file), "ping"],
                             capture_output=True, text=True, timeout=10, env=env)
        assert run.returncode == 0, run
        run = subprocess.run([FRAMECTL_BIN, "--tcp", address, *framing, "ping"], capture_output=True, text=True,
                             timeout=10, env=dict(env, FRAMED_TOKEN="wrong"))
        assert run.returncode == 1 and "wrong token" in run.stderr, run


def check_config(tmp_path, text):
    path = tmp_path / "framed.toml"
    path.write_text(text)
    return subprocess.run([FRAMED_BIN, "--config", str(path), "--check-config"], capture_output=True, text=True,
                          timeout=10)


def test_check_config_warns_of_exec_open_to_the_network(tmp_path):
    exposed = ('[[listener]]\nkind = "tcp"\naddress = "0.0.0.0:9100"\n\n'
               '[commands.date]\nargv = ["/bin/date"]\n')
    run = check_config(tmp_path, exposed)
    assert run.returncode == 0 and run.stdout == "ok\n", run
    assert "warning: listener tcp:0.0.0.0:9100" in run.stderr and "auth" in run.stderr, run
    # Loopback, or auth, or no exec through it: nothing to warn about.
    for text in (exposed.replace("0.0.0.0", "127.0.0.5"),
                 exposed.replace('"0.0.0.0:9100"\n', '"0.0.0.0:9100"\nallow_commands = []\n')):
        run = check_config(tmp_path, text)
        assert run.returncode == 0 and run.stderr == "", (text, run)
    # Tokens without TLS travel in clear.
    run = check_config(tmp_path, exposed.replace('"0.0.0.0:9100"\n', '"0.0.0.0:9100"\nauth = "token"\n') +
                       '[principals.a]\ntoken_sha256 = "%s"\n' % sha256_hex("a"))
    assert run.returncode == 0 and "takes tokens without TLS" in run.stderr, run


def test_check_config_refuses_principals_nobody_could_be(tmp_path):
    run = check_config(tmp_path, '[[listener]]\nkind = "tcp"\naddress = "127.0.0.1:9100"\nauth = "token"\n')
    assert run.returncode == 1 and "needs a [principals.NAME] with token_sha256" in run.stderr, run
    run = check_config(tmp_path, '[principals.a]\ntoken_sha256 = "abc"\n')
    assert run.returncode == 1 and "64 hex digits" in run.stderr, run


def test_the_python_library_authenticates(auth_factory):
    import sys
    sys.path.insert(0, os.path.join(REPO, "clients", "python"))
    import framed

    daemon = auth_factory([token_listener(), token_listener(name="line", framing="line")], {"deploy": DEPLOY})
    url = "tcp://" + daemon.listeners["tcp"]["address"]
    with framed.connect(url, token=DEPLOY_TOKEN) as client:
        assert client.ping()
    with framed.connect("tcp://" + daemon.listeners["line"]["address"], framing="line", token=DEPLOY_TOKEN) as client:
        assert client.ping()
    with pytest.raises(framed.ForbiddenError):
        framed.connect(url, token="wrong")
    with framed.connect(url) as client:
        with pytest.raises(framed.ForbiddenError):
            client.ping()
        assert client.auth(DEPLOY_TOKEN) == "deploy"
        assert client.ping()

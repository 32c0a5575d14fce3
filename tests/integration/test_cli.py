"""The command line (CONFIG.md, "Command line")."""

import os
import re
import shutil
import socket
import subprocess
import tempfile

import pytest

from conftest import FRAMED_BIN, Daemon, render_config
from framed_client import Client, DatagramClient, assert_ok

ERROR_LINE = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<column>\d+): (?P<message>\S.*)$")


def run(*args, timeout=10, env=None):
    full_env = dict(os.environ)
    full_env.pop("NOTIFY_SOCKET", None)
    if env:
        full_env.update(env)
    return subprocess.run([FRAMED_BIN, *args], capture_output=True, text=True, timeout=timeout, env=full_env,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="framed-cli-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as file:
        file.write(text)
    return path


def test_version():
    result = run("--version")
    assert result.returncode == 0, result
    assert re.fullmatch(r"framed \d+\.\d+\.\d+\S*\n", result.stdout), "--version printed %r" % result.stdout
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "meson.build")) as meson:
        project_version = re.search(r"version\s*:\s*'([^']+)'", meson.read()).group(1)
    assert result.stdout.strip() == "framed " + project_version


def test_help():
    result = run("--help")
    assert result.returncode == 0, result
    for option in ("--config", "--check-config", "--version", "--help"):
        assert option in result.stdout, "--help does not mention %s:\n%s" % (option, result.stdout)


def test_unknown_option_fails():
    result = run("--no-such-option")
    assert result.returncode != 0
    assert "--no-such-option" in result.stderr


def test_check_config_ok_binds_nothing(workdir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        path = write(workdir, "good.toml", render_config(
            [{"kind": "tcp", "address": "127.0.0.1:%d" % port},
             {"kind": "unix", "path": os.path.join(workdir, "s.sock"), "mode": "0600"},
             {"kind": "udp", "address": "127.0.0.1:%d" % port, "command": "upper"}],
            daemon={"workers": 2, "shutdown_timeout": "1.5s", "max_connections": 10},
            limits={"max_header": 1024, "max_body": "1MiB", "idle_timeout": "30s", "header_timeout": "500ms",
                    "max_pending_replies": 4}))
        result = run("--config", path, "--check-config")
    assert result.returncode == 0, "--check-config on a good file: %r\n%s" % (result.returncode, result.stderr)
    assert result.stdout == "ok\n", "expected 'ok', got %r" % result.stdout
    assert not os.path.exists(os.path.join(workdir, "s.sock")), "--check-config created the Unix socket"


def test_shipped_config_passes_check(workdir):
    shipped = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "config", "framed.toml")
    if not os.path.exists(shipped):
        pytest.skip("no config/framed.toml in this tree")
    result = run("--config", shipped, "--check-config")
    assert result.returncode == 0 and result.stdout == "ok\n", result


BAD_CONFIG = """\
[daemon]
workers = 2
backend = "turbo"
max_conections = 10

[limits]
idle_timeout = "10 parsecs"
max_body = "1MB"

[[listener]]
kind = "tcp"
address = "localhost:9000"
"""
# (line, what the message must mention) of every error in BAD_CONFIG.
BAD_CONFIG_ERRORS = [(3, "turbo"), (4, "max_conections"), (7, "idle_timeout"), (8, "max_body"), (12, "address")]


def test_check_config_reports_every_error(workdir):
    path = write(workdir, "bad.toml", BAD_CONFIG)
    result = run("--config", path, "--check-config")
    assert result.returncode == 1, "bad config: exit %r, stdout %r" % (result.returncode, result.stdout)
    assert "ok" not in result.stdout.split()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "no error printed"
    parsed = []
    for line in lines:
        match = ERROR_LINE.match(line)
        assert match, "error line not in FILE:LINE:COLUMN: message form: %r" % line
        assert match["file"] == path, line
        assert int(match["column"]) >= 1
        parsed.append((int(match["line"]), line))
    for line_no, word in BAD_CONFIG_ERRORS:
        assert any(n == line_no and word in text for n, text in parsed), \
            "no error naming %r reported at line %d; got:\n%s" % (word, line_no, result.stderr)


def test_syntax_error_has_position(workdir):
    path = write(workdir, "syntax.toml", "[daemon]\nworkers = 2\nlog_level = \"info\n")
    result = run("--config", path, "--check-config")
    assert result.returncode == 1
    match = ERROR_LINE.match(result.stderr.splitlines()[0])
    assert match and match["file"] == path and match["line"] == "3", result.stderr


def test_check_config_missing_file(workdir):
    path = os.path.join(workdir, "absent.toml")
    result = run("--config", path, "--check-config")
    assert result.returncode == 1, result
    assert result.stderr.startswith(path + ": "), "expected 'FILE: message', got %r" % result.stderr
    assert result.stdout == ""


def test_start_with_missing_config_fails(workdir):
    result = run("--config", os.path.join(workdir, "absent.toml"))
    assert result.returncode == 1, result


def test_start_with_invalid_config_fails(workdir):
    path = write(workdir, "bad.toml", BAD_CONFIG)
    result = run("--config", path)
    assert result.returncode == 1, result
    assert ERROR_LINE.match(result.stderr.splitlines()[0]), result.stderr


def test_unbindable_listener_stops_start_up():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        daemon = Daemon([{"kind": "tcp", "name": "free"},
                         {"kind": "tcp", "name": "taken", "address": "127.0.0.1:%d" % port}])
        try:
            daemon.start(wait_ready=False)
            status = daemon.wait(10)
            daemon.skip_if_io_uring_unavailable()
            assert status == 1, "a listener on a taken port: exit %r\n%s" % (status, daemon.stderr_text())
            assert "127.0.0.1:%d" % port in daemon.stderr_text(), \
                "stderr does not name the address\n" + daemon.stderr_text()
            assert not daemon.ready, "READY=1 was sent although a listener failed"
        finally:
            daemon.cleanup()


def port_is_free(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def test_builtin_defaults_listen_on_9000():
    if not port_is_free(9000):
        pytest.skip("127.0.0.1:9000 is in use here")
    daemon = Daemon(use_config=False)
    try:
        daemon.start()
        with Client(("127.0.0.1", 9000)) as client:
            reply, _ = client.request({"cmd": "ping", "id": 1})
            assert_ok(reply)
        with DatagramClient(("127.0.0.1", 9000)) as client:
            assert client.request(b"upper defaults") == b"DEFAULTS"
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()

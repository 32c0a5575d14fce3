"""Fixtures that run the real framed binary.

FRAMED_BIN     the daemon to test (default: build/daemon/framed of this tree)
FRAMED_BACKEND passed through to the daemon (epoll | io_uring | auto)
FRAMED_REACTORS daemon.reactors in every config the tests render (default:
               the daemon's own, 1): the whole suite on several reactors

Every daemon gets its own temp directory (config, Unix socket paths, the
NOTIFY_SOCKET it reports READY=1 to) and free loopback ports; it is stopped at
teardown (SIGTERM, then SIGKILL), and its stderr is attached to failures.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import framed_client  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FRAMED_BIN = os.path.abspath(os.environ.get("FRAMED_BIN") or os.path.join(REPO, "build", "daemon", "framed"))
BACKEND = os.environ.get("FRAMED_BACKEND", "")
REACTORS = int(os.environ.get("FRAMED_REACTORS") or 0)
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

# What the daemon says when it cannot have io_uring (lib/reactor/backend_select.cpp):
# "io_uring setup failed: ... (kernel built without io_uring)", "... refused by
# a seccomp filter ...", "this build has no io_uring support", or a plain
# "io_uring is unavailable/not available".
IO_URING_UNAVAILABLE = re.compile(
    r"io_uring[^\n]*(unavailable|not available|refused|setup failed|disabled|not supported|not implemented)"
    r"|no io_uring support",
    re.IGNORECASE,
)


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(kind="tcp", host="127.0.0.1"):
    """A port that was free a moment ago (bound to 0 and closed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, sock_type) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string of printable text is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError("no TOML for %r" % (value,))


def render_config(listeners, daemon=None, limits=None):
    if REACTORS and "reactors" not in (daemon or {}):
        daemon = dict(daemon or {}, reactors=REACTORS)
    lines = []
    for table, values in (("daemon", daemon), ("limits", limits)):
        if values:
            lines.append("[%s]" % table)
            lines.extend("%s = %s" % (k, toml_value(v)) for k, v in values.items())
            lines.append("")
    for listener in listeners:
        lines.append("[[listener]]")
        lines.extend("%s = %s" % (k, toml_value(v)) for k, v in listener.items())
        lines.append("")
    return "\n".join(lines)


def proc_status_kib(pid, field):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("%s not in /proc/%d/status" % (field, pid))


def proc_cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Daemon:
    """One framed process with its config, temp directory and listeners.

    `listeners` are dicts as in the TOML, each with a `name`; `address` (tcp,
    udp) and `path` (unix, unix_dgram) are filled in when absent. An entry
    may carry `host` ("::1") to pick the loopback of another family.
    """

    def __init__(self, listeners=(), daemon=None, limits=None, config_text=None, env=None, args=None,
                 preexec_fn=None, use_config=True, close_fds=True):
        self.dir = tempfile.mkdtemp(prefix="framed-it-")
        self.listeners = {}
        prepared = []
        for spec in listeners:
            spec = dict(spec)
            host = spec.pop("host", "127.0.0.1")
            if spec["kind"] in ("tcp", "udp") and "address" not in spec:
                port = free_port(spec["kind"], host)
                spec["address"] = ("[%s]:%d" % (host, port)) if ":" in host else ("%s:%d" % (host, port))
            if spec["kind"] in ("unix", "unix_dgram") and "path" not in spec:
                spec["path"] = os.path.join(self.dir, spec["name"] + ".sock")
            prepared.append(spec)
            self.listeners[spec["name"]] = spec
        self.config_path = os.path.join(self.dir, "framed.toml")
        with open(self.config_path, "w") as config:
            config.write(config_text if config_text is not None else render_config(prepared, daemon, limits))
        self.env = dict(env or {})
        self.args = list(args) if args is not None else None
        self.preexec_fn = preexec_fn
        self.use_config = use_config
        self.close_fds = close_fds
        self.proc = None
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.notify_path = os.path.join(self.dir, "notify.sock")
        self.ready = False

    # --- life -----------------------------------------------------------

    def command(self):
        if self.args is not None:
            return self.args
        return [FRAMED_BIN, "--config", self.config_path] if self.use_config else [FRAMED_BIN]

    def start(self, wait_ready=True):
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(self.notify_path)
        env = dict(os.environ)
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET"):
            env.pop(key, None)
        if BACKEND:
            env["FRAMED_BACKEND"] = BACKEND
        env["NOTIFY_SOCKET"] = self.notify_path
        env["FRAMED_BIN"] = FRAMED_BIN
        env.update(self.env)
        self.stderr_file = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self.stderr_file,
                                         stderr=self.stderr_file, env=env, preexec_fn=self.preexec_fn,
                                         close_fds=self.close_fds)
            if wait_ready:
                self._wait_ready(notify)
        finally:
            notify.close()
        return self

    def _wait_ready(self, notify):
        deadline = time.monotonic() + READY_TIMEOUT
        notify.settimeout(0.05)
        while time.monotonic() < deadline:
            try:
                message = notify.recv(4096).decode("utf-8", "replace")
            except socket.timeout:
                message = ""
            if "READY=1" in message.split("\n"):
                self.ready = True
                return
            status = self.proc.poll()
            if status is not None:
                # A last look: READY=1 may have come just before the exit.
                self.skip_if_io_uring_unavailable()
                pytest.fail("framed exited with status %d before READY=1\n%s" % (status, self.stderr_text()))
        pytest.fail("framed sent no READY=1 within %.0f s\n%s" % (READY_TIMEOUT, self.stderr_text()))

    def skip_if_io_uring_unavailable(self):
        text = self.stderr_text()
        if BACKEND == "io_uring" and IO_URING_UNAVAILABLE.search(text):
            line = next((l for l in text.splitlines() if IO_URING_UNAVAILABLE.search(l)), text.strip())
            pytest.skip("io_uring unavailable here: " + line.strip())

    def wait(self, timeout):
        """The exit status, or AssertionError if it is still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("framed still running %.1f s later\n%s" % (timeout, self.stderr_text()))

    def send_signal(self, signum):
        self.proc.send_signal(signum)

    def stop(self, signum=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """SIGTERM, wait, then SIGKILL. Returns the exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signum)
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return None
        return self.proc.returncode

    def stop_cleanly(self):
        """For a fixture's teardown: stops it, removes its files, and asserts
        it exited 0 with no sanitizer report."""
        status = self.stop()
        text = self.stderr_text()  # after the exit: a leak report comes at exit
        self.cleanup()
        assert status == 0, "exit status %r\n%s" % (status, text)
        assert "Sanitizer" not in text and "runtime error" not in text, text

    def cleanup(self):
        try:
            self.stop()
        finally:
            if getattr(self, "stderr_file", None):
                self.stderr_file.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as stderr:
                text = stderr.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return "(no stderr)"
        if len(text) > 20000:
            text = "...\n" + text[-20000:]
        return "--- framed stderr ---\n" + text

    # --- clients --------------------------------------------------------

    def address(self, name):
        """(family, sockaddr) of a listener."""
        spec = self.listeners[name]
        if spec["kind"] in ("unix", "unix_dgram"):
            return socket.AF_UNIX, spec["path"]
        host, port = spec["address"].rsplit(":", 1)
        if host.startswith("["):
            return socket.AF_INET6, (host[1:-1], int(port))
        return socket.AF_INET, (host, int(port))

    def connect(self, name, timeout=framed_client.DEFAULT_TIMEOUT):
        family, address = self.address(name)
        return framed_client.Client(address, family, timeout=timeout)

    def datagram(self, name, timeout=framed_client.DEFAULT_TIMEOUT):
        family, address = self.address(name)
        bind_path = None
        if family == socket.AF_UNIX:
            bind_path = os.path.join(self.dir, "client-%d-%d.sock" % (os.getpid(), time.monotonic_ns()))
        return framed_client.DatagramClient(address, family, bind_path=bind_path, timeout=timeout)

    def ping(self, name):
        """Asserts that the daemon is alive and answers ping on a new connection."""
        assert self.alive(), "framed is not running (status %r)\n%s" % (self.proc.poll(), self.stderr_text())
        with self.connect(name) as client:
            header, _ = client.request({"cmd": "ping", "id": "alive?"})
        assert header.get("ok") is True and header.get("pong") is True and header.get("id") == "alive?", header

    def stats(self, name):
        with self.connect(name) as client:
            header, body = client.request({"cmd": "stats"})
        framed_client.assert_ok(header)
        return json.loads(body)


def started_daemons(request, make):
    """For a fixture: yields start(*args, **kwargs), which makes a daemon with
    make(*args, **kwargs) and starts it; at teardown every one is stopped and
    removed, its stderr shown when the test failed."""
    started = []

    def start(*args, wait_ready=True, **kwargs):
        daemon = make(*args, **kwargs)
        started.append(daemon)
        return daemon.start(wait_ready=wait_ready)

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for daemon in started:
        if failed:
            sys.stderr.write(daemon.stderr_text() + "\n")
        daemon.cleanup()


@pytest.fixture
def daemon_factory(request):
    """start(listeners=[...], daemon={...}, limits={...}, ...) -> a started Daemon."""
    yield from started_daemons(request, Daemon)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)
    # Show the daemon's stderr with any failure of a test that used a shared daemon.
    if report.failed and report.when == "call":
        for name in item.fixturenames:
            if name.startswith("std_daemon"):
                daemon = item.funcargs.get(name)
                if isinstance(daemon, Daemon):
                    report.sections.append(("framed stderr", daemon.stderr_text()))


IPV6 = have_ipv6_loopback()

# The listeners of the shared daemon most tests talk to.
STANDARD_LISTENERS = [
    {"kind": "tcp", "name": "tcp4"},
    {"kind": "unix", "name": "unix", "mode": "0600"},
    {"kind": "udp", "name": "udp", "framing": "datagram", "payload": "text"},
    {"kind": "udp", "name": "udp_upper", "framing": "datagram", "payload": "text", "command": "upper"},
    {"kind": "udp", "name": "udp_json", "framing": "datagram", "payload": "json"},
    {"kind": "unix_dgram", "name": "udgram", "mode": "0600"},
    {"kind": "unix_dgram", "name": "udgram_json", "payload": "json"},
    # Small limits, so that frames exactly at and just past them are cheap.
    {"kind": "tcp", "name": "small", "max_header": 128, "max_body": 4096},
] + ([{"kind": "tcp", "name": "tcp6", "host": "::1"}] if IPV6 else [])


@pytest.fixture(scope="module")
def std_daemon():
    daemon = Daemon(STANDARD_LISTENERS, daemon={"workers": 1})
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture
def std(std_daemon):
    """The shared daemon; after the test it must still be alive and answer ping."""
    yield std_daemon
    std_daemon.ping("tcp4")

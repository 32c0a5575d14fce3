"""The socket tutorials' clients, written the way they write them (blocking
socket, send/recv(1024), struct.unpack('i', ...), input() from stdin,
sendto/recvfrom), run as subprocesses against daemons started from the very
example configs in config/examples/, with only their addresses moved to free
test ports. Plus: every example config passes --check-config, and the
examples of clients/python/examples/ run against config/examples/framings.toml."""

import getpass
import os
import re
import subprocess
import sys
import tomllib

import pytest

from conftest import FRAMED_BIN, REPO, Daemon, free_port

EXAMPLES = os.path.join(REPO, "config", "examples")
CLIENTS = os.path.join(REPO, "clients", "python", "examples")
TUTORIAL = os.path.join(CLIENTS, "tutorial")
TIMEOUT = 20


def example_config(name, daemon_dir):
    """The example's text with each address on a free port and each path in daemon_dir."""
    path = os.path.join(EXAMPLES, name)
    with open(path) as config:
        text = config.read()
    ports = {}
    for listener in tomllib.loads(text)["listener"]:
        if "address" in listener and listener["address"] not in ports:
            ports[listener["address"]] = free_port("tcp")
        if "path" in listener:
            moved = os.path.join(daemon_dir, os.path.basename(listener["path"]))
            text = text.replace('path = "%s"' % listener["path"], 'path = "%s"' % moved)
    for address, port in ports.items():
        text = text.replace('address = "%s"' % address, 'address = "127.0.0.1:%d"' % port)
    moved = tomllib.loads(text)
    test_addresses = {"127.0.0.1:%d" % port for port in ports.values()}
    for listener in moved["listener"]:
        assert "address" not in listener or listener["address"] in test_addresses, listener
        assert "path" not in listener or listener["path"].startswith(daemon_dir), listener
    return text, ports, moved


class ExampleDaemon(Daemon):
    def __init__(self, name):
        super().__init__([])
        self.text, self.ports, self.config = example_config(name, self.dir)
        with open(self.config_path, "w") as config:
            config.write(self.text)

    def port(self, listener_name):
        for listener in self.config["listener"]:
            if listener["name"] == listener_name:
                return int(listener["address"].rsplit(":", 1)[1])
        raise KeyError(listener_name)

    def path(self, listener_name):
        return next(l["path"] for l in self.config["listener"] if l["name"] == listener_name)


@pytest.fixture
def example_daemon(request):
    started = []

    def start(name):
        daemon = ExampleDaemon(name)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            sys.stderr.write(daemon.stderr_text() + "\n")
        daemon.cleanup()


def run_client(script, args, stdin=""):
    result = subprocess.run([sys.executable, script] + [str(a) for a in args], input=stdin.encode(),
                            capture_output=True, timeout=TIMEOUT)
    return result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")


def tutorial(script, port, stdin):
    status, out, err = run_client(os.path.join(TUTORIAL, script), [port], stdin)
    assert status == 0, "%s failed (%d)\n%s\n%s" % (script, status, out, err)
    return out


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(EXAMPLES) if n.endswith(".toml")))
def test_example_config_is_valid(name):
    result = subprocess.run([FRAMED_BIN, "--config", os.path.join(EXAMPLES, name), "--check-config"],
                            capture_output=True, timeout=TIMEOUT)
    assert (result.returncode, result.stdout) == (0, b"ok\n"), result.stderr.decode(errors="replace")


def test_tutorial_upper_tcp_and_udp(example_daemon):
    daemon = example_daemon("tutorial-upper.toml")
    out = tutorial("upper_client.py", daemon.port("tutorial-upper-tcp"), "hello\nMixed Case 123\nquit\n")
    assert out.count("Received: ") == 2, out
    assert "Received: HELLO\n" in out and "Received: MIXED CASE 123\n" in out, out
    out = tutorial("upper_udp_client.py", daemon.port("tutorial-upper-udp"), "hello udp\nquit\n")
    assert "Received: HELLO UDP\n" in out, out


def test_tutorial_remote_command(example_daemon):
    daemon = example_daemon("tutorial-remote-command.toml")
    port = daemon.port("tutorial-remote-command")
    out = tutorial("remote_command_client.py", port,
                   "whoami\ndate\nid\nls\nuptime\nrm -rf /\nls /etc\nnosuch\nquit\n")
    outputs = out.split("command: ")[1:]
    assert len(outputs) == 9, out          # eight answers, then the prompt "quit" was typed at
    whoami, date, ids, listing, uptime, rm, ls_etc, nosuch = (o.strip() for o in outputs[:8])
    assert whoami == getpass.getuser()
    assert re.search(r"\b20\d\d\b", date) and "UTC" in date, date
    assert ids.startswith("uid=%d(" % os.getuid()), ids
    assert "GPL" in listing, listing
    assert "load average" in uptime, uptime
    # Nothing reaches a shell: an unconfigured name, and arguments to a command that takes none.
    assert rm.startswith("ERR forbidden "), rm
    assert ls_etc.startswith("ERR forbidden "), ls_etc
    assert nosuch.startswith("ERR forbidden "), nosuch


def test_tutorial_udp_chat(example_daemon):
    daemon = example_daemon("tutorial-udp-chat.toml")
    reader = subprocess.Popen([sys.executable, os.path.join(CLIENTS, "chat_reader.py"), "127.0.0.1",
                               str(daemon.port("chat-readers")), "lobby", "--count", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert reader.stdout.readline() == b"subscribed to lobby\n"
        out = tutorial("udp_chat_client.py", daemon.port("chat-udp"), "alice\nhello\nhow are you?\nquit\n")
        assert out.count("delivered to 1 reader(s)") == 2, out
        messages, errors = reader.communicate(timeout=TIMEOUT)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert reader.returncode == 0, errors
    assert messages.decode().splitlines() == ["[lobby] alice: hello", "[lobby] alice: how are you?"]
    # With no reader left, a chat line reaches nobody, and the sender is told so.
    out = tutorial("udp_chat_client.py", daemon.port("chat-udp"), "bob\nanyone?\nquit\n")
    assert "delivered to 0 reader(s)" in out, out


# --- the examples of clients/python/examples/ against framings.toml ----------------

def test_examples_against_framings_config(example_daemon):
    daemon = example_daemon("framings.toml")

    def example(script, *args):
        status, out, err = run_client(os.path.join(CLIENTS, script), args)
        assert status == 0, "%s failed (%d)\n%s\n%s" % (script, status, out, err)
        return out.splitlines()

    json_out = example("json_client.py", "127.0.0.1", daemon.port("json"))
    assert len(json_out) == 2 and json_out[1].endswith(" HELLO, FRAMED"), json_out
    assert example("length_client.py", "127.0.0.1", daemon.port("length"))[:2] == ["pong", "HELLO, FRAMED"]
    assert example("line_client.py", "127.0.0.1", daemon.port("line")) == ["pong", "HELLO, FRAMED",
                                                                          "two\\\\nlines"]
    assert example("udp_client.py", "127.0.0.1", daemon.port("udp")) == ["HELLO, FRAMED"]
    assert example("unix_dgram_client.py", daemon.path("unix-dgram"), "ping") == ["pong"]


@pytest.mark.parametrize("script", ["length_client.py", "line_client.py"])
def test_simple_mode_examples_explain_a_json_listener(example_daemon, script):
    """Run against the default json port, they say what they need instead of a traceback."""
    daemon = example_daemon("framings.toml")
    status, out, err = run_client(os.path.join(CLIENTS, script), ["127.0.0.1", daemon.port("json")])
    assert status == 1, (status, out, err)
    assert "does not speak the" in err and "config/examples/framings.toml" in err, err
    assert "Traceback" not in err, err


@pytest.mark.parametrize("script,args", [("length_client.py", ["127.0.0.1"]), ("line_client.py", ["127.0.0.1"]),
                                         ("json_client.py", ["127.0.0.1"]),
                                         ("unix_dgram_client.py", [])])
def test_examples_explain_nothing_listening(tmp_path, script, args):
    port = free_port("tcp")
    args = args + [port] if args else [str(tmp_path / "absent.sock")]
    status, out, err = run_client(os.path.join(CLIENTS, script), args)
    assert status == 1 and "Traceback" not in err and ("nothing listens" in err), (status, out, err)

"""A fleet of framed daemons behind a real HAProxy in TCP mode: the recipe of
config/examples/haproxy.cfg and config/examples/fleet-member.toml, run.

Three daemons on 127.0.0.2, 127.0.0.3 and 127.0.0.4 (all of 127.0.0.0/8 is
loopback on Linux) share one free port, as the members of the example do;
HAProxy listens on 127.0.0.1 and checks each member's /healthz. The test
runs the example files themselves, with only the ports moved (and HAProxy's
global section, which needs root and system paths, replaced by one with a
stats socket in the test's directory), so the documented recipe is what is
tested. Skipped when the haproxy binary is not installed."""

import collections
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import framed_client
from conftest import REPO, STOP_TIMEOUT, Daemon, free_port
from test_pubsub import expect_nothing

EXAMPLES = os.path.join(REPO, "config", "examples")
HAPROXY_EXAMPLE = os.path.join(EXAMPLES, "haproxy.cfg")
MEMBER_EXAMPLE = os.path.join(EXAMPLES, "fleet-member.toml")
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
SERVERS = ("framed1", "framed2", "framed3")  # the example's server names, in HOSTS' order
BACKEND_NAME = "framed_fleet"
# The example checks every 2 s (500 ms while a state changes), marks a member
# down after 3 failures and up after 2 successes: a few seconds each way.
# These bounds are for a slow, loaded machine.
STATE_TIMEOUT = 20.0
# How long a client may go without an answer beyond the time HAProxy took to
# mark the stopped member down (a thread of this process may be descheduled
# that long on a busy 2-core machine; a real gap is a stuck connection, 5 s).
GAP_SLACK = 2.0


def haproxy_binary():
    """Debian installs it in /usr/sbin, which a non-root PATH lacks."""
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None)


HAPROXY = haproxy_binary()
pytestmark = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (apt install haproxy)")


def port_free_on_every_host(exclude=()):
    """One port that is free on all three member addresses at once: the
    members share a port, as in the example."""
    for _ in range(100):
        port = free_port("tcp", HOSTS[0])
        if port in exclude:
            continue
        try:
            for host in HOSTS[1:]:
                with socket.socket() as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return port
    raise AssertionError("no port free on all of %s" % (HOSTS,))


def replace_exactly(text, old, new, count):
    """text with old replaced by new, asserting it occurred `count` times: an
    edit of the example that moves an address must fail here, loudly, rather
    than leave the test running on the example's fixed ports."""
    assert text.count(old) == count, "%r occurs %d times, expected %d" % (old, text.count(old), count)
    return text.replace(old, new)


def member_config(host, port, http_port):
    """fleet-member.toml for the member on `host`, on the test's ports."""
    with open(MEMBER_EXAMPLE) as example:
        text = example.read()
    text = replace_exactly(text, 'address = "127.0.0.2:9000"', 'address = "%s:%d"' % (host, port), 1)
    return replace_exactly(text, 'address = "127.0.0.2:9100"', 'address = "%s:%d"' % (host, http_port), 1)


def haproxy_config(frontend_port, port, http_port, stats_path):
    """haproxy.cfg from its `defaults` on (frontend, backend, health checks
    and timeouts exactly as documented), on the test's ports, behind a global
    section of the test's own: no chroot, user or syslog, which need root and
    system paths, and a stats socket in the test's directory."""
    with open(HAPROXY_EXAMPLE) as example:
        text = example.read()
    start = re.search(r"^defaults\b", text, re.MULTILINE)
    assert start, "no defaults section in " + HAPROXY_EXAMPLE
    text = text[start.start():]
    text = replace_exactly(text, "bind 127.0.0.1:9000", "bind 127.0.0.1:%d" % frontend_port, 1)
    for host in HOSTS:
        text = replace_exactly(text, " %s:9000 " % host, " %s:%d " % (host, port), 1)
    text = replace_exactly(text, "check port 9100", "check port %d" % http_port, len(HOSTS))
    return "global\n    stats socket %s mode 600 level admin\n\n%s" % (stats_path, text)


class Fleet:
    """Three members and HAProxy in front of them, in one temp directory."""

    def __init__(self, redis_port=None):
        self.redis_port = redis_port  # members bridge their channels through it
        self.dir = tempfile.mkdtemp(prefix="framed-fleet-")
        self.port = port_free_on_every_host()
        self.http_port = port_free_on_every_host(exclude=(self.port,))
        self.frontend_port = free_port("tcp", "127.0.0.1")
        self.stats_path = os.path.join(self.dir, "haproxy.sock")
        self.config_path = os.path.join(self.dir, "haproxy.cfg")
        self.log_path = os.path.join(self.dir, "haproxy.log")
        self.members = [None] * len(HOSTS)  # the Daemon now serving each host
        self.retired = []  # stopped members, kept for their stderr
        self.haproxy = None
        self.log_file = None

    def start_member(self, index):
        text = member_config(HOSTS[index], self.port, self.http_port)
        if self.redis_port is not None:
            # The example's commented [pubsub] table, switched on.
            text = replace_exactly(text, '# [pubsub]\n# bridge = "redis://127.0.0.1:6379"',
                                   '[pubsub]\nbridge = "redis://127.0.0.1:%d"' % self.redis_port, 1)
        daemon = Daemon(config_text=text)
        self.members[index] = daemon
        return daemon.start()

    def start_haproxy(self):
        with open(self.config_path, "w") as config:
            config.write(haproxy_config(self.frontend_port, self.port, self.http_port, self.stats_path))
        check = subprocess.run([HAPROXY, "-c", "-f", self.config_path], capture_output=True, timeout=30)
        assert check.returncode == 0, check.stdout.decode(errors="replace") + check.stderr.decode(errors="replace")
        self.log_file = open(self.log_path, "wb")
        # -db: in the foreground, not daemonized, so that it is our child and
        # the finally below can stop it.
        self.haproxy = subprocess.Popen([HAPROXY, "-f", self.config_path, "-db"], stdin=subprocess.DEVNULL,
                                        stdout=self.log_file, stderr=self.log_file)
        self.wait_for(lambda: os.path.exists(self.stats_path) and self.server_states(), "HAProxy's stats socket")

    def haproxy_log(self):
        try:
            with open(self.log_path, "rb") as log:
                return "--- haproxy output ---\n" + log.read().decode("utf-8", "replace")[-20000:]
        except FileNotFoundError:
            return "(no haproxy output)"

    def stats_command(self, command):
        """One command on HAProxy's runtime API; its whole answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(self.stats_path)
            sock.sendall(command.encode() + b"\n")
            data = bytearray()
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return data.decode()
                data += chunk

    def server_states(self):
        """{server name: (status, check_status)} from `show stat`, e.g.
        ("UP", "L7OK"), ("DOWN", "L4CON"), ("DOWN 1/2", "L7OK")."""
        if self.haproxy.poll() is not None:
            raise AssertionError("haproxy exited with status %d\n%s" % (self.haproxy.returncode, self.haproxy_log()))
        try:
            text = self.stats_command("show stat")
        except OSError:
            return {}
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {row["svname"]: (row["status"], row["check_status"])
                for row in rows if row["pxname"] == BACKEND_NAME and row["svname"] in SERVERS}

    def wait_for(self, predicate, what, timeout=STATE_TIMEOUT):
        """Polls predicate (every 50 ms) until it is true; the time it took."""
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > timeout:
                states = self.server_states() if self.haproxy else {}
                raise AssertionError("%s: not within %.0f s; HAProxy: %s" % (what, timeout, states))
            time.sleep(0.05)
        return time.monotonic() - start

    def healthy(self, index):
        """Up, and because a check passed: a member counts as up before its
        first check, so "UP" alone would not show the check works."""
        return self.server_states().get(SERVERS[index]) == ("UP", "L7OK")

    def down(self, index):
        return self.server_states().get(SERVERS[index], ("",))[0] == "DOWN"

    def connect(self, timeout=framed_client.DEFAULT_TIMEOUT):
        """A client connection to HAProxy's frontend."""
        return framed_client.Client(("127.0.0.1", self.frontend_port), timeout=timeout)

    def close(self, failed):
        try:
            if self.haproxy is not None and self.haproxy.poll() is None:
                self.haproxy.terminate()
                try:
                    self.haproxy.wait(5)
                except subprocess.TimeoutExpired:
                    self.haproxy.kill()
                    self.haproxy.wait(5)
            if failed:
                sys.stderr.write(self.haproxy_log() + "\n")
        finally:
            if self.log_file:
                self.log_file.close()
            for daemon in self.retired + [m for m in self.members if m is not None]:
                if failed:
                    sys.stderr.write(daemon.stderr_text() + "\n")
                daemon.cleanup()
            shutil.rmtree(self.dir, ignore_errors=True)


def started_fleet(request, redis_port=None):
    """Three healthy members behind HAProxy; everything stopped afterwards."""
    fleet = Fleet(redis_port)
    try:
        for index in range(len(HOSTS)):
            fleet.start_member(index)
        fleet.start_haproxy()
        fleet.wait_for(lambda: all(fleet.healthy(i) for i in range(len(HOSTS))), "all three members healthy")
        yield fleet
    finally:
        failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
        fleet.close(failed)


@pytest.fixture
def fleet(request):
    yield from started_fleet(request)


def member_pid(client):
    """Which member a connection through HAProxy landed on: `stats` says its pid."""
    header, body = client.request({"cmd": "stats", "id": "which"})
    framed_client.assert_ok(header)
    return json.loads(body)["pid"]


def test_example_haproxy_config_is_valid():
    result = subprocess.run([HAPROXY, "-c", "-f", HAPROXY_EXAMPLE], capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


def test_connections_are_spread_over_all_three_members(fleet):
    pids = [m.pid for m in fleet.members]
    clients = []
    try:
        # Held open at once: leastconn gives each new connection to the
        # member with the fewest, so 12 fall 4, 4, 4.
        for _ in range(12):
            clients.append(fleet.connect())
            assert member_pid(clients[-1]) in pids
        landed = collections.Counter(member_pid(c) for c in clients)
        for client in clients:
            header, _ = client.request({"cmd": "ping", "id": 1})
            assert header.get("pong") is True, header
    finally:
        for client in clients:
            client.close()
    assert set(landed) == set(pids), landed
    assert max(landed.values()) - min(landed.values()) <= 1, landed
    # The members' own count agrees with HAProxy's choice: each accepted what
    # HAProxy sent it, plus the direct connection that asks.
    for index, member in enumerate(fleet.members):
        with framed_client.Client((HOSTS[index], fleet.port)) as direct:
            header, body = direct.request({"cmd": "stats"})
        accepted = json.loads(body)["listeners"]["fleet"]["connections_accepted"]
        assert accepted == landed[member.pid] + 1, (index, accepted, landed)


class Pipeliner(threading.Thread):
    """One client of the rolling restart: through HAProxy, asks `stats` for
    the pid of the member it landed on, then pipelines batches of ping and
    echo and checks every reply; when its connection closes, it counts the
    close (with that pid) and connects again, until told to stop."""

    DEPTH = 4  # requests in flight per batch

    def __init__(self, fleet, number, stop):
        super().__init__(name="pipeliner-%d" % number, daemon=True)
        self.fleet = fleet
        self.number = number
        self.stop = stop
        self.pid = None  # the member of the current connection
        self.pids = []  # the member of each connection, in order
        self.answered_at = []  # when each batch's last answer came
        self.answered = 0
        self.closes = []  # (time, pid, answers on that connection)
        self.wrong = []  # replies that do not match their request
        self.errors = []  # anything else: timeouts, refused connects
        self.sequence = 0

    def run(self):
        while not self.stop.is_set() and not self.wrong and len(self.errors) < 5:
            self.pid = None
            answers = 0
            try:
                with self.fleet.connect() as client:
                    self.pid = member_pid(client)
                    self.pids.append(self.pid)
                    while not self.stop.is_set():
                        answers += self.batch(client)
                        if self.wrong:
                            return
                        # Leaves the two cores to HAProxy and the members.
                        time.sleep(0.002)
            except (framed_client.ConnectionClosed, ConnectionError) as closed:
                self.closes.append((time.monotonic(), self.pid, answers, repr(closed)))
            except framed_client.ProtocolError as error:
                self.wrong.append(repr(error))
            except OSError as error:  # a timeout, a connect HAProxy refused
                self.errors.append((time.monotonic(), self.pid, repr(error)))
                time.sleep(0.1)

    def batch(self, client):
        """Sends DEPTH requests at once, reads their replies in order."""
        expected = []
        data = bytearray()
        for _ in range(self.DEPTH):
            self.sequence += 1
            request_id = "%d-%d" % (self.number, self.sequence)
            if self.sequence % 2:
                data += framed_client.frame({"cmd": "ping", "id": request_id})
                expected.append((request_id, None))
            else:
                body = ("echo %s " % request_id).encode() * 3
                data += framed_client.frame({"cmd": "echo", "id": request_id}, body)
                expected.append((request_id, body))
        client.send(bytes(data))
        for request_id, body in expected:
            header, reply_body = client.read_reply()
            good = header.get("ok") is True and header.get("id") == request_id and (
                header.get("pong") is True if body is None else reply_body == body)
            if not good:
                self.wrong.append((request_id, header, reply_body[:100]))
                return 0
            self.answered += 1
            self.answered_at.append(time.monotonic())
        return len(expected)

    def longest_gap(self, since, until):
        """The longest time between two answers (or the window's ends) within [since, until]."""
        times = [since] + [t for t in self.answered_at if since <= t <= until] + [until]
        return max(b - a for a, b in zip(times, times[1:]))


def test_a_member_stopped_and_restarted_under_pipelined_load(fleet):
    stop = threading.Event()
    clients = [Pipeliner(fleet, number, stop) for number in range(6)]
    victim_index = 1
    victim = fleet.members[victim_index]
    try:
        for client in clients:
            client.start()
        fleet.wait_for(lambda: all(c.answered >= 20 for c in clients), "every client answered", timeout=10)
        time.sleep(0.5)
        on_victim = {c.number for c in clients if c.pid == victim.pid}
        assert on_victim, "leastconn put no client on the member to stop: %s" % [c.pid for c in clients]

        t_stop = time.monotonic()
        victim.send_signal(signal.SIGTERM)
        assert victim.wait(STOP_TIMEOUT) == 0, victim.stderr_text()
        fleet.retired.append(victim)
        assert "while draining" in victim.stderr_text(), victim.stderr_text()
        fleet.wait_for(lambda: fleet.down(victim_index), "the stopped member marked down")
        t_down = time.monotonic()
        time.sleep(1.0)  # the fleet serving on two members

        restarted = fleet.start_member(victim_index)
        fleet.wait_for(lambda: fleet.healthy(victim_index), "the restarted member marked up")
        t_up = time.monotonic()
        # New connections go to it: it holds none, the others hold every client.
        fresh = [fleet.connect() for _ in range(3)]
        try:
            fresh_pids = [member_pid(c) for c in fresh]
        finally:
            for client in fresh:
                client.close()
        time.sleep(0.5)
        t_end = time.monotonic()
    finally:
        stop.set()
        for client in clients:
            client.join(10)
    assert not [c.name for c in clients if c.is_alive()], "clients still running"

    # No reply that came was wrong, and nothing failed but closes.
    assert not [c.wrong for c in clients if c.wrong], [c.wrong for c in clients if c.wrong]
    assert not [c.errors for c in clients if c.errors], [c.errors for c in clients if c.errors]
    # The only closes are those of the connections on the stopped member:
    # one each, for each client that was on it; none for the others.
    closes = {c.number: c.closes for c in clients if c.closes}
    assert set(closes) == on_victim, (closes, on_victim)
    for number, client_closes in closes.items():
        assert len(client_closes) == 1 and client_closes[0][1] == victim.pid, (number, client_closes)
        assert client_closes[0][0] >= t_stop, (number, client_closes, t_stop)
    # Those clients came back through HAProxy on another member, at once.
    for client in clients:
        if client.number in on_victim:
            assert len(client.pids) >= 2 and client.pids[-1] not in (victim.pid, restarted.pid), client.pids
    # Answers all along: no client waited longer than the time HAProxy took
    # to mark the member down (plus slack), and the clients of the other
    # members never waited.
    gaps = {c.number: round(c.longest_gap(t_stop - 0.5, t_end), 3) for c in clients}
    for client in clients:
        bound = (t_down - t_stop if client.number in on_victim else 0.0) + GAP_SLACK
        assert gaps[client.number] <= bound, (gaps, on_victim, "marked down after %.2f s" % (t_down - t_stop))
    assert all(c.answered_at[-1] > t_up for c in clients), "a client stopped being answered"
    # Back in rotation: leastconn gives it the new connections.
    assert fresh_pids == [restarted.pid] * 3, (fresh_pids, restarted.pid)


# --- channels across the fleet: the Redis bridge ------------------------------

@pytest.fixture
def bridged_fleet(request):
    from test_pubsub_bridge import REDIS, RedisServer
    if REDIS is None:
        pytest.skip("redis-server is not installed")
    redis = RedisServer(free_port()).start()
    try:
        for fleet in started_fleet(request, redis.port):
            yield fleet, redis
    finally:
        redis.stop()


def member_client(fleet, index):
    """A connection to one member itself, past HAProxy."""
    return framed_client.Client((HOSTS[index], fleet.port), timeout=10)


def bridges_connected(fleet):
    for index in range(len(HOSTS)):
        with member_client(fleet, index) as client:
            header, body = client.request({"cmd": "stats"})
            if not json.loads(body).get("bridge", {}).get("connected"):
                return False
    return True


def publish_through_haproxy(fleet, count, tag):
    """`count` publishes, each on a new connection through HAProxy (so on
    whichever member it picks); the members each one landed on."""
    landed = collections.Counter()
    for number in range(count):
        with fleet.connect(timeout=10) as client:
            landed[member_pid(client)] += 1
            header, _ = client.request({"cmd": "publish", "channel": "fleet"}, b"%s-%d" % (tag, number))
            framed_client.assert_ok(header)
    return landed


def receive(subscriber, count):
    bodies = []
    for _ in range(count):
        header, body = subscriber.read_reply(10)
        assert header["event"] == "message" and header["channel"] == "fleet", header
        bodies.append(body)
    return bodies


def test_a_publish_through_haproxy_reaches_every_members_subscribers_through_redis(bridged_fleet):
    fleet, redis = bridged_fleet
    fleet.wait_for(lambda: bridges_connected(fleet), "every member's bridge connected")
    # Subscribers on members A and C directly; publishers through HAProxy,
    # which puts them on all three (least connections, one at a time).
    subscribers = [member_client(fleet, 0), member_client(fleet, 2)]
    for subscriber in subscribers:
        framed_client.assert_ok(subscriber.request({"cmd": "subscribe", "channel": "fleet"})[0])
    landed = publish_through_haproxy(fleet, 12, b"up")
    assert len(landed) == 3, "the publishes did not land on every member: %r" % landed
    expected = sorted(b"up-%d" % number for number in range(12))
    for subscriber in subscribers:
        # Each exactly once, whichever member it was published on.
        assert sorted(receive(subscriber, 12)) == expected
        expect_nothing(subscriber)

    # Redis away: every member still serves, and each subscriber gets what
    # was published on its own member.
    redis.stop()
    fleet.wait_for(lambda: not bridges_connected(fleet), "the bridges seeing Redis gone")
    with member_client(fleet, 2) as client:
        header, _ = client.request({"cmd": "publish", "channel": "fleet"}, b"local")
        framed_client.assert_ok(header)
        assert header["receivers"] == 1
    assert receive(subscribers[1], 1) == [b"local"]
    expect_nothing(subscribers[0])

    # Redis back on its port: the bridges reconnect, and the fleet is one again.
    redis.start()
    fleet.wait_for(lambda: bridges_connected(fleet), "every member's bridge back")
    publish_through_haproxy(fleet, 6, b"back")
    expected = sorted(b"back-%d" % number for number in range(6))
    # "local" waited in member C's bridge queue and is sent once C's bridge is
    # back: A sees it once if its own subscription to Redis was back by then
    # (Redis keeps nothing for a subscriber that is away), else never.
    got = receive(subscribers[0], 6)
    if b"local" in got:
        got = [body for body in got if body != b"local"] + receive(subscribers[0], 1)
    assert sorted(got) == expected
    assert sorted(receive(subscribers[1], 6)) == expected
    for subscriber in subscribers:
        expect_nothing(subscriber)
        subscriber.close()


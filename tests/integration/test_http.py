"""HTTP listeners (kind = "http"): /metrics in the Prometheus text format,
/healthz (503 while draining), the HTML status page, and HTTP/1.1 as a
strict client expects it: keep-alive, pipelining, HEAD, 404/405/431."""

import html
import http.client
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import Daemon, free_port
from framed_client import assert_ok

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # scripts/install-deps.sh installs python3-prometheus-client
    text_string_to_metric_families = None

WEB_NAME = "web <status> & \"co\""


def http_listener(name="web", **extra):
    spec = {"kind": "http", "name": name, "address": "127.0.0.1:%d" % free_port()}
    spec.update(extra)
    return spec


class SleepDaemon(Daemon):
    """A daemon with a [commands.sleep] that takes a while, to hold a drain open."""

    def __init__(self, listeners, **kwargs):
        super().__init__(listeners, **kwargs)
        with open(self.config_path, "a") as config:
            config.write('\n[commands.sleep]\nargv = ["/bin/sleep", "1.5"]\ntimeout = "10s"\n')


@pytest.fixture(scope="module")
def web():
    daemon = SleepDaemon([{"kind": "tcp", "name": "tcp"}, http_listener(WEB_NAME),
                          http_listener("small", max_header=1024)])
    daemon.start()
    yield daemon
    daemon.cleanup()


def connection(daemon, name=WEB_NAME, timeout=5):
    _, (host, port) = daemon.address(name)
    return http.client.HTTPConnection(host, port, timeout=timeout)


def get(daemon, path, method="GET", name=WEB_NAME, headers=None):
    conn = connection(daemon, name)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def raw_exchange(daemon, data, name=WEB_NAME, timeout=5):
    """Sends bytes, reads until the daemon closes; returns everything it sent."""
    family, address = daemon.address(name)
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def metric_families(text):
    if text_string_to_metric_families is None:
        pytest.skip("python3-prometheus-client is not installed (scripts/install-deps.sh installs it)")
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample_value(families, family, sample_name, **labels):
    for sample in families[family].samples:
        if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    raise AssertionError("no sample %s %r in %s" % (sample_name, labels, families[family].samples))


# --- /metrics ----------------------------------------------------------------

def test_metrics_parse_strictly_and_count_framed_traffic(web):
    response, body = get(web, "/metrics")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    before = metric_families(body.decode())
    for family in ("framed_build_info", "framed_connections_accepted", "framed_frames_in", "framed_errors",
                   "framed_command_calls", "framed_worker_queue_depth", "framed_accept_fd_exhausted",
                   "framed_reload_failures", "framed_exec_latency_seconds", "framed_connections_active"):
        assert family in before, sorted(before)
    build = before["framed_build_info"].samples[0]
    assert build.value == 1 and build.labels["backend"] in ("epoll", "io_uring") and build.labels["version"]
    assert before["framed_exec_latency_seconds"].type == "summary"
    assert before["framed_command_calls"].type == "counter"

    frames = sample_value(before, "framed_frames_in", "framed_frames_in_total", listener="tcp")
    pings = sample_value(before, "framed_command_calls", "framed_command_calls_total", command="ping")
    with web.connect("tcp") as client:
        for i in range(3):
            header, _ = client.request({"cmd": "ping", "id": i})
            assert_ok(header)
        header, _ = client.request({"cmd": "nope", "id": "x"})
        assert header.get("ok") is False
    after = metric_families(get(web, "/metrics")[1].decode())
    assert sample_value(after, "framed_frames_in", "framed_frames_in_total", listener="tcp") == frames + 4
    assert sample_value(after, "framed_command_calls", "framed_command_calls_total", command="ping") == pings + 3
    assert sample_value(after, "framed_errors", "framed_errors_total", listener="tcp", code="unknown_command") >= 1
    # The http listener's name, quoted in a label, survives the round trip.
    assert sample_value(after, "framed_frames_in", "framed_frames_in_total", listener=WEB_NAME) >= 2


def command_buckets(families, command):
    """{le: cumulative count} of framed_command_duration_seconds for one command."""
    return {sample.labels["le"]: sample.value for sample in families["framed_command_duration_seconds"].samples
            if sample.name == "framed_command_duration_seconds_bucket" and sample.labels["command"] == command}


def test_metrics_has_a_latency_histogram_for_every_command(web):
    before = metric_families(get(web, "/metrics")[1].decode())
    assert before["framed_command_duration_seconds"].type == "histogram"
    with web.connect("tcp") as client:
        for i in range(3):
            assert_ok(client.request({"cmd": "ping", "id": i})[0])
        # A deferred command, timed until its answer: 1.5 s of sleep.
        assert_ok(client.request({"cmd": "exec", "id": "nap", "name": "sleep"}, timeout=10)[0])
    after = metric_families(get(web, "/metrics")[1].decode())
    commands = {sample.labels["command"] for sample in after["framed_command_duration_seconds"].samples}
    assert {"ping", "echo", "stats", "exec", "publish"} <= commands, commands
    for command in commands:
        buckets = command_buckets(after, command)
        counts = [buckets[le] for le in sorted(buckets, key=float)]
        assert counts == sorted(counts), (command, buckets)  # cumulative
        count = sample_value(after, "framed_command_duration_seconds", "framed_command_duration_seconds_count",
                             command=command)
        assert buckets["+Inf"] == count
    ping_count = ("framed_command_duration_seconds", "framed_command_duration_seconds_count")
    assert sample_value(after, *ping_count, command="ping") == sample_value(before, *ping_count, command="ping") + 3
    ping_after, ping_before = command_buckets(after, "ping"), command_buckets(before, "ping")
    assert ping_after["0.1"] == ping_before["0.1"] + 3  # a reactor command: well under 100 ms
    exec_after, exec_before = command_buckets(after, "exec"), command_buckets(before, "exec")
    assert exec_after["1"] == exec_before["1"]
    assert exec_after["2.5"] == exec_before["2.5"] + 1
    exec_sum = ("framed_command_duration_seconds", "framed_command_duration_seconds_sum")
    assert sample_value(after, *exec_sum, command="exec") - sample_value(before, *exec_sum, command="exec") >= 1.5


def test_stats_and_metrics_read_the_same_counters(web):
    stats = web.stats("tcp")
    families = metric_families(get(web, "/metrics")[1].decode())
    # The stats request itself came before the scrape: equal, not off by one.
    assert sample_value(families, "framed_frames_in", "framed_frames_in_total", listener="tcp") == \
        stats["listeners"]["tcp"]["frames_in"]
    assert sample_value(families, "framed_reload_failures", "framed_reload_failures_total") == \
        stats["reload_failures"]


# --- /healthz, 404, 405, HEAD ----------------------------------------------

def test_healthz_ok(web):
    response, body = get(web, "/healthz")
    assert (response.status, body) == (200, b"ok\n")


def test_unknown_path_is_404(web):
    response, _ = get(web, "/nope")
    assert response.status == 404
    response, _ = get(web, "/metrics/extra")
    assert response.status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_are_405_with_allow(web, method):
    response, _ = get(web, "/metrics", method=method)
    assert response.status == 405
    assert response.getheader("Allow") == "GET, HEAD"


def test_head_has_the_get_headers_and_no_body(web):
    conn = connection(web)
    try:
        conn.request("HEAD", "/healthz")
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Length") == "3"
        assert response.read() == b""
        # The connection is still in step: the next answer is the GET's.
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert response.read() == b"ok\n"
    finally:
        conn.close()


def test_query_string_is_not_part_of_the_path(web):
    response, body = get(web, "/healthz?probe=1")
    assert response.status == 200 and body == b"ok\n"


# --- HTTP/1.1 connection handling ------------------------------------------

def test_keep_alive_two_requests_on_one_connection(web):
    family, address = web.address(WEB_NAME)
    with socket.create_connection(address, timeout=5) as sock:
        reader = sock.makefile("rb")
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert response.status == 200 and response.read() == b"ok\n"
            assert response.getheader("Connection") == "keep-alive"
        reader.close()


def test_pipelined_requests_answered_in_order(web):
    requests = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path for path in (b"/healthz", b"/nope", b"/healthz"))
    data = raw_exchange(web, requests + b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"200", b"404", b"200", b"200"], data


def test_pipelined_split_byte_by_byte(web):
    family, address = web.address(WEB_NAME)
    requests = b"GET /healthz HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"
    with socket.create_connection(address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in requests:
            sock.sendall(bytes([byte]))
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2, data


def test_connection_close_is_honoured(web):
    data = raw_exchange(web, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK") and b"Connection: close\r\n" in data


def test_http_1_0_closes_unless_keep_alive(web):
    data = raw_exchange(web, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK") and b"Connection: close\r\n" in data
    family, address = web.address(WEB_NAME)
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.getheader("Connection") == "keep-alive" and response.read() == b"ok\n"
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 200


def test_headers_past_max_header_are_431(web):
    request = b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    data = raw_exchange(web, request, name="small")
    assert data.startswith(b"HTTP/1.1 431 "), data[:100]
    # Just under the bound is served.
    request = b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 900 + b"\r\nConnection: close\r\n\r\n"
    assert raw_exchange(web, request, name="small").startswith(b"HTTP/1.1 200 OK")


def test_too_many_headers_are_431(web):
    request = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n"
    assert raw_exchange(web, request).startswith(b"HTTP/1.1 431 ")


def test_a_request_body_is_refused_and_the_connection_closed(web):
    data = raw_exchange(web, b"GET /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413 ") and data.count(b"HTTP/1.1") == 1, data


@pytest.mark.parametrize("garbage", [
    b"\x00\x01\x02\x03\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    struct.pack(">I", 20) + b'{"cmd":"ping"}',
    b"\r\n" * 10 + b"GARBAGE / HTTP/1.1\r\n\r\n",
    os.urandom(4096),
])
def test_garbage_gets_an_error_or_a_close_never_a_crash(web, garbage):
    data = raw_exchange(web, garbage)
    assert data == b"" or re.match(rb"HTTP/1\.1 (4\d\d|505) ", data), data[:200]
    assert get(web, "/healthz")[0].status == 200
    web.ping("tcp")


def test_header_timeout_answers_408(daemon_factory):
    daemon = daemon_factory([http_listener("web", header_timeout="300ms")])
    started = time.monotonic()
    data = raw_exchange(daemon, b"GET /healthz HTTP/1.1\r\nHost:", name="web")
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert time.monotonic() - started < 3


def test_idle_keep_alive_connection_is_closed(daemon_factory):
    daemon = daemon_factory([http_listener("web", idle_timeout="300ms")])
    family, address = daemon.address("web")
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert time.monotonic() - started < 3


# --- drain -------------------------------------------------------------------

def test_healthz_is_503_while_draining(daemon_factory):
    daemon = SleepDaemon([{"kind": "tcp", "name": "tcp", "address": "127.0.0.1:%d" % free_port()},
                          http_listener("web")])
    daemon.start()
    try:
        kept = connection(daemon, "web")
        kept.request("GET", "/healthz")
        assert kept.getresponse().read() == b"ok\n"
        with daemon.connect("tcp", timeout=10) as client:
            # An exec that runs 1.5 s holds the drain open; its reply must still come.
            client.send_request({"cmd": "exec", "id": "slow", "name": "sleep"})
            time.sleep(0.3)  # the request has reached the daemon and is running
            daemon.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            response, body = get(daemon, "/healthz", name="web")
            assert (response.status, body) == (503, b"draining\n")
            # A connection kept open from before: answered, then closed.
            kept.request("GET", "/healthz")
            response = kept.getresponse()
            assert response.status == 503 and response.getheader("Connection") == "close"
            response.read()
            header, _ = client.read_reply()
            assert_ok(header)
            assert header.get("id") == "slow"
        assert daemon.wait(10) == 0
    finally:
        daemon.cleanup()


# --- the status page -----------------------------------------------------------

def test_status_page_html_escapes_names(web):
    response, body = get(web, "/")
    assert response.status == 200 and response.getheader("Content-Type") == "text/html; charset=utf-8"
    page = body.decode()
    assert html.escape(WEB_NAME, quote=True).replace("&#x27;", "&#39;") in page
    assert WEB_NAME not in page
    assert '<meta name="viewport"' in page
    assert "http://" not in page and "https://" not in page and "<script" not in page


def chromium_binary():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium(args, url):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (scripts/install-deps.sh installs it)")
    profile = tempfile.mkdtemp(prefix="framed-chromium-")
    try:
        command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-dev-shm-usage", "--user-data-dir=" + profile] + args + [url]
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_status_page_in_headless_chromium(web):
    _, (host, port) = web.address(WEB_NAME)
    url = "http://%s:%d/" % (host, port)
    dom = chromium(["--dump-dom"], url)
    page = dom.stdout.decode("utf-8", "replace")
    assert dom.returncode == 0, dom.stderr.decode("utf-8", "replace")[-2000:]
    for name in ("tcp", "small"):
        assert "<td>%s</td>" % name in page, page[:2000]
    assert html.escape(WEB_NAME, quote=False) in page  # the DOM serializer re-escapes < > &

    artefacts = os.environ.get("FRAMED_ARTEFACTS") or tempfile.mkdtemp(prefix="framed-artefacts-")
    os.makedirs(artefacts, exist_ok=True)
    shot = os.path.join(artefacts, "status-page-%s.png" % (os.environ.get("FRAMED_BACKEND") or "auto"))
    if os.path.exists(shot):
        os.unlink(shot)
    result = chromium(["--screenshot=" + shot, "--window-size=1000,800", "--hide-scrollbars"], url)
    assert os.path.exists(shot), result.stderr.decode("utf-8", "replace")[-2000:]
    with open(shot, "rb") as png:
        head = png.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert (width, height) == (1000, 800)


# --- stats: the process ------------------------------------------------------

def test_stats_and_metrics_show_the_process(web):
    stats = web.stats("tcp")
    assert stats["pid"] == web.pid
    assert stats["config_path"] == web.config_path
    assert stats["rss_bytes"] > 1 << 20
    assert stats["cpu_user_seconds"] + stats["cpu_system_seconds"] > 0
    assert isinstance(stats["uptime_seconds"], int)
    families = metric_families(get(web, "/metrics")[1].decode())
    assert sample_value(families, "process_resident_memory_bytes", "process_resident_memory_bytes") > 1 << 20
    assert sample_value(families, "process_cpu_seconds", "process_cpu_seconds_total") > 0

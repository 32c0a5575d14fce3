#!/usr/bin/env python3
"""The cost of one /metrics scrape, with and without many idle connections.

Starts the daemon with a tcp (json) listener and an http listener, times
--requests GET /metrics on one keep-alive connection, opens --connections idle
json connections (checked through framed_connections_active), and times the
scrapes again. With redis-server installed, does the same for Redis INFO with
as many idle clients, for reference. Prints a markdown table: wall-clock time
per scrape as the scraper sees it (median, p99), the daemon's own CPU time per
scrape (from /proc, over all the scrapes), and the body size.

  bench/metrics_scrape.py                       # from the top of the checkout
  bench/metrics_scrape.py --backend io_uring --connections 1000 --requests 50

Standard library only; everything it starts is stopped on exit.
"""

import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

WARMUP_REQUESTS = 10  # first scrapes fill caches and grow buffers: not counted
START_TIMEOUT_S = 10.0
IO_TIMEOUT_S = 10.0


def cpu_seconds(pid):
    """CPU time of every thread of a process, from /proc/PID/task/*/schedstat
    (nanoseconds; /proc/PID/stat counts clock ticks, 10 ms, too coarse for a
    scrape)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return total / 1e9


def wait_for_port(port, process):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {START_TIMEOUT_S} s")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Reader:
    """Buffered reads from a blocking socket: lines and exact byte counts."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self.buffer += chunk

    def until(self, marker):
        while marker not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def exactly(self, count):
        while len(self.buffer) < count:
            self._fill()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data


def http_get(sock, reader, path):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = reader.until(b"\r\n\r\n").decode("latin-1")
    status = head.split(" ", 2)[1]
    if status != "200":
        raise RuntimeError(f"GET {path}: {head.splitlines()[0]}")
    match = re.search(r"(?im)^content-length:\s*(\d+)\s*$", head)
    if not match:
        raise RuntimeError(f"GET {path}: no Content-Length")
    return reader.exactly(int(match.group(1)))


def redis_info(sock, reader):
    sock.sendall(b"*1\r\n$4\r\nINFO\r\n")
    line = reader.until(b"\r\n")
    if not line.startswith(b"$"):
        raise RuntimeError(f"INFO: {line[:200]!r}")
    body = reader.exactly(int(line[1:]) + 2)
    return body[:-2]


def time_requests(request, count, server_pid):
    """Per-request wall-clock times (s), server CPU per request (s), body size."""
    for _ in range(WARMUP_REQUESTS):
        request()
    times = []
    cpu_before = cpu_seconds(server_pid)
    size = 0
    for _ in range(count):
        start = time.perf_counter()
        body = request()
        times.append(time.perf_counter() - start)
        size = len(body)
    cpu_per_request = (cpu_seconds(server_pid) - cpu_before) / count
    return times, cpu_per_request, size


def p99(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def open_idle(port, count):
    """count connections to 127.0.0.1:port that send nothing."""
    idle = []
    try:
        for _ in range(count):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S))
    except OSError:
        for sock in idle:
            sock.close()
        raise
    return idle


def active_connections(metrics_text, listener):
    pattern = r'^framed_connections_active\{listener="' + re.escape(listener) + r'"[^}]*\} (\d+)$'
    match = re.search(pattern, metrics_text, re.M)
    return int(match.group(1)) if match else None


def wait_until(predicate, what):
    deadline = time.monotonic() + IO_TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def row(server, idle, times, cpu, size):
    return (f"| {server} | {idle:,} | {len(times)} | {statistics.median(times) * 1e6:,.0f} | "
            f"{p99(times) * 1e6:,.0f} | {cpu * 1e6:,.0f} | {size:,} |").replace(",", "\u202f")


def time_with_idle(args, rows, label, fetch, pid, port, idle, counted, what):
    """Appends a row for `fetch` timed with no idle connections, then one with
    args.connections idle connections to `port` open (kept in `idle`, for the
    caller to close), once `counted(extra)` says the server counts them."""
    for extra in (0, args.connections):
        if extra:
            idle.extend(open_idle(port, extra))
            wait_until(lambda: counted(extra), f"{extra} {what}")
        times, cpu, size = time_requests(fetch, args.requests, pid)
        rows.append(row(label, extra, times, cpu, size))


def measure_framed(args, backend, rows, work):
    tcp_port, http_port = free_port(), free_port()
    config = os.path.join(work, "framed.toml")
    with open(config, "w") as out:
        out.write(f"[daemon]\nmax_connections = {args.connections + 100}\n\n"
                  f'[[listener]]\nkind = "tcp"\nname = "json"\naddress = "127.0.0.1:{tcp_port}"\n\n'
                  f'[[listener]]\nkind = "http"\naddress = "127.0.0.1:{http_port}"\n')
    log = open(os.path.join(work, f"framed-{backend}.log"), "w")
    process = subprocess.Popen([args.framed_bin, "--config", config], stdout=log, stderr=subprocess.STDOUT,
                               env=dict(os.environ, FRAMED_BACKEND=backend))
    idle = []
    try:
        wait_for_port(tcp_port, process)
        wait_for_port(http_port, process)
        scraper = socket.create_connection(("127.0.0.1", http_port), timeout=IO_TIMEOUT_S)
        reader = Reader(scraper)
        scrape = lambda: http_get(scraper, reader, "/metrics")  # noqa: E731
        time_with_idle(args, rows, f"framed {backend} /metrics", scrape, process.pid, tcp_port, idle,
                       lambda extra: active_connections(scrape().decode(), "json") == extra,
                       "connections to show in framed_connections_active")
        scraper.close()
    finally:
        for sock in idle:
            sock.close()
        stop(process)
        log.close()


def measure_redis(args, rows, work):
    port = free_port()
    log = open(os.path.join(work, "redis.log"), "w")
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--maxclients", str(args.connections + 100)],
                               stdout=log, stderr=subprocess.STDOUT)
    idle = []
    try:
        wait_for_port(port, process)
        client = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
        reader = Reader(client)
        info = lambda: redis_info(client, reader)  # noqa: E731
        version = re.search(rb"redis_version:([0-9.]+)", info()).group(1).decode()
        time_with_idle(args, rows, f"redis {version} INFO", info, process.pid, port, idle,
                       lambda extra: re.search(rb"connected_clients:(\d+)", info()).group(1) == str(extra + 1).encode(),
                       "clients to show in connected_clients")
        client.close()
    finally:
        for sock in idle:
            sock.close()
        stop(process)
        log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framed-bin", default=os.environ.get("FRAMED_BIN", "build/daemon/framed"))
    parser.add_argument("--backend", action="append", choices=["epoll", "io_uring"],
                        help="daemon backend (repeat for both; default: both)")
    parser.add_argument("--connections", type=int, default=10000, help="idle json connections (default 10000)")
    parser.add_argument("--requests", type=int, default=200, help="timed scrapes per point (default 200)")
    parser.add_argument("--skip-redis", action="store_true", help="do not measure Redis INFO")
    args = parser.parse_args()
    if not 1 <= args.connections <= 50000 or not 1 <= args.requests <= 100000:
        parser.error("--connections 1-50000, --requests 1-100000")

    # One descriptor per idle connection here and in the server (inherited).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.connections + 1024
    if hard != resource.RLIM_INFINITY and hard < wanted:
        sys.exit(f"metrics_scrape.py: {wanted} file descriptors needed, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))

    rows = []
    load_before = open("/proc/loadavg").read().split()[:3]
    with tempfile.TemporaryDirectory(prefix="metrics-scrape.") as work:
        for backend in args.backend or ["epoll", "io_uring"]:
            measure_framed(args, backend, rows, work)
        if not args.skip_redis and shutil.which("redis-server"):
            measure_redis(args, rows, work)

    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; nproc {os.cpu_count()}; "
          f"load average before: {' '.join(load_before)}")
    print(f"{WARMUP_REQUESTS} warm-up requests, then {args.requests} timed, one keep-alive connection, loopback\n")
    print("| server | idle connections | scrapes | median µs | p99 µs | server CPU µs/scrape | body bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

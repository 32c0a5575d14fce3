#!/usr/bin/env python3
"""Memory per idle connection: the daemon's RSS growth for N open, idle
clients, for each binary given (e.g. two builds of framed, side by side).

    bench/idle_rss.py [--connections 10000] [--rounds 2] [--redis] BINARY [BINARY...]

Each binary runs on its built-in defaults except for a temporary config
(TCP on 127.0.0.1, a free port, max_connections above N). Every client does
one ping, so its buffers exist as they would in use, then stays idle. RSS is
VmRSS from /proc, read after the clients are connected; rounds alternate
between the binaries and the table gives each binary's median.
With --redis, redis-server (persistence off, maxclients above N) is
measured the same way in the same rounds, each client sending one PING.
Loopback only; everything started is stopped on exit.
"""
import argparse
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time



REDIS = "redis-server"


def ping_frame():
    header = b'{"cmd":"ping"}'
    return struct.pack(">I", len(header)) + header


RESP_PING = b"*1\r\n$4\r\nPING\r\n"
RESP_PONG = b"+PONG\r\n"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_for_port(port, deadline=10.0):
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"daemon did not listen on {port}")


def start_server(binary, connections, workdir):
    """The server process and its port: framed on a temporary config, or
    Redis on the command line."""
    port = free_port()
    if binary == REDIS:
        command = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--maxclients", str(connections + 100), "--loglevel", "warning"]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL), port
    config = os.path.join(workdir, "idle.toml")
    with open(config, "w") as out:
        out.write(f"""[daemon]
max_connections = {connections + 100}
log_level = "warn"

[[listener]]
kind = "tcp"
address = "127.0.0.1:{port}"
""")
    return subprocess.Popen([binary, "--config", config]), port


def read_reply(sock, resp):
    """Reads one whole reply: +PONG, or one json frame."""
    need = len(RESP_PONG) if resp else 4
    data = b""
    while len(data) < need:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("the server closed a connection")
        data += chunk
        if not resp and len(data) >= 4:
            need = 4 + struct.unpack(">I", data[:4])[0]
    if resp and data != RESP_PONG:
        raise RuntimeError(f"unexpected reply to PING: {data!r}")


def measure(binary, connections, workdir):
    resp = binary == REDIS
    server, port = start_server(binary, connections, workdir)
    clients = []
    try:
        wait_for_port(port)
        time.sleep(0.2)
        before = rss_kib(server.pid)
        frame = RESP_PING if resp else ping_frame()
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(frame)
            clients.append(sock)
        for sock in clients:  # every reply read: the server has served each one
            read_reply(sock, resp)
        time.sleep(0.5)
        after = rss_kib(server.pid)
        return before, after
    finally:
        for sock in clients:
            sock.close()
        server.terminate()
        server.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--redis", action="store_true", help="measure redis-server too")
    parser.add_argument("binaries", nargs="*")
    args = parser.parse_args()
    if args.redis:
        args.binaries.append(REDIS)
    if not args.binaries:
        parser.error("nothing to measure: give a binary or --redis")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # This process holds every client socket, the server as many again: both
    # need N descriptors and spares (the server inherits the limit).
    need = args.connections + 200
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit(f"idle_rss.py: {args.connections} connections need {need} descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    results = {binary: [] for binary in args.binaries}
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.rounds):
            for binary in args.binaries:
                results[binary].append(measure(binary, args.connections, workdir))
    print(f"{args.connections} idle connections, {args.rounds} round(s) each, median\n")
    print("| binary | RSS before (KiB) | RSS with clients (KiB) | per connection (bytes) |")
    print("|---|---:|---:|---:|")
    for binary, samples in results.items():
        before = statistics.median(s[0] for s in samples)
        after = statistics.median(s[1] for s in samples)
        per = (after - before) * 1024 / args.connections
        print(f"| {binary} | {before:.0f} | {after:.0f} | {per:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

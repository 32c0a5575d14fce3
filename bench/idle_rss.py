#!/usr/bin/env python3
"""Memory per idle connection: the daemon's RSS growth for N open, idle
clients, for each binary given (e.g. two builds of framed, side by side).

    bench/idle_rss.py [--connections 10000] [--rounds 2] BINARY [BINARY...]

Each binary runs on its built-in defaults except for a temporary config
(TCP on 127.0.0.1, a free port, max_connections above N). Every client does
one ping, so its buffers exist as they would in use, then stays idle. RSS is
VmRSS from /proc, read after the clients are connected; rounds alternate
between the binaries and the table gives each binary's median.
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



def ping_frame():
    header = b'{"cmd":"ping"}'
    return struct.pack(">I", len(header)) + header


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


def measure(binary, connections, workdir):
    port = free_port()
    config = os.path.join(workdir, "idle.toml")
    with open(config, "w") as out:
        out.write(f"""[daemon]
max_connections = {connections + 100}
log_level = "warn"

[[listener]]
kind = "tcp"
address = "127.0.0.1:{port}"
""")
    daemon = subprocess.Popen([binary, "--config", config])
    clients = []
    try:
        wait_for_port(port)
        time.sleep(0.2)
        before = rss_kib(daemon.pid)
        frame = ping_frame()
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(frame)
            clients.append(sock)
        for sock in clients:  # every reply read: the daemon has served each one
            need = 4
            data = b""
            while len(data) < need:
                chunk = sock.recv(4096)
                if not chunk:
                    raise RuntimeError("daemon closed a connection")
                data += chunk
                if len(data) >= 4:
                    need = 4 + struct.unpack(">I", data[:4])[0]
        time.sleep(0.5)
        after = rss_kib(daemon.pid)
        return before, after
    finally:
        for sock in clients:
            sock.close()
        daemon.terminate()
        daemon.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("binaries", nargs="+")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))  # the daemon inherits it
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

#!/usr/bin/env python3
"""A soak: mixed load on every transport for a while, the daemon's RSS and
open fds sampled every second, and their drift reported.

    bench/soak.py [--minutes 10] [--binary build/daemon/framed] [--backend epoll|io_uring]

The daemon runs on a temporary config: tcp, unix stream, udp and unix
datagram listeners, [files] in a temporary root, and one exec command
(/bin/echo). Eight client threads loop until the time is up, each round
picking one of: a ping/echo/upper pipeline on a connection it keeps; a
short-lived connection (connect, a few requests, close; one in four closed
mid-frame or reset); a datagram ping; a put/get/list/delete of a small
file; an exec; a publish to a channel a subscriber thread reads. Errors a
client sees are counted (they must be zero). Loopback and Unix sockets
only; the daemon is stopped on exit.

The report gives RSS and fds at the end of the first minute (warm), at the
last sample under load, the drift between the two, the peak, and after the
clients have gone; and the requests done. Not part of
the test suite: run it by hand, it takes minutes.
"""
import argparse
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python"))
import framed  # noqa: E402  (the project's own client)


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_value(pid, field):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Load:
    def __init__(self, args, work):
        self.deadline = time.monotonic() + args.minutes * 60
        self.tcp = ("127.0.0.1", args.tcp_port)
        self.udp = ("127.0.0.1", args.udp_port)
        self.unix = os.path.join(work, "framed.sock")
        self.unix_dgram = os.path.join(work, "framed-dgram.sock")
        self.work = work
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = []
        self.messages = 0

    def count(self, n=1):
        with self.lock:
            self.requests += n

    def error(self, what):
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(what)
            else:
                self.errors[-1] = "... and more"

    def running(self):
        return time.monotonic() < self.deadline

    def kept_connection(self, client):
        pipe = client.pipeline()
        for i in range(16):
            pipe.request("ping", id=i)
        pipe.request("echo", b"x" * random.choice((1, 100, 4096, 65536)))
        pipe.request("upper", b"soak")
        replies = pipe.execute()
        if not all(reply.ok for reply in replies):
            raise RuntimeError("a pipelined request failed: %r" % [r for r in replies if not r.ok][:1])
        self.count(len(replies))

    def short_connection(self, thread_id):
        how = random.randrange(4)
        if how == 0:  # vanish mid-frame, with a reset
            sock = socket.create_connection(self.tcp, timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(struct.pack(">I", 30) + b'{"cmd":"ec')
            sock.close()
            return
        client = framed.Client.tcp(*self.tcp) if how % 2 else framed.Client.unix(self.unix)
        with client:
            for _ in range(random.randrange(1, 10)):
                client.ping()
                self.count()

    def datagram(self):
        client = framed.DatagramClient.udp(*self.udp, timeout=5) if random.randrange(2) else \
            framed.DatagramClient.unix(self.unix_dgram, bind_path=os.path.join(
                self.work, "c-%d-%d.sock" % (threading.get_ident(), time.monotonic_ns())), timeout=5)
        with client:
            if client.command("ping") != b"pong":
                raise RuntimeError("a datagram ping was not answered pong")
            self.count()

    def files(self, client, thread_id):
        name = "soak-%d-%d" % (thread_id, random.randrange(8))
        data = os.urandom(random.choice((10, 10000, 300000)))
        client.put(name, data)
        if client.get(name).data != data:
            raise RuntimeError("get returned other bytes than put stored")
        client.list()
        client.delete(name)
        self.count(4)

    def exec(self, client):
        result = client.exec("say", ["soak"])
        if result.stdout != b"soak\n":
            raise RuntimeError("exec printed %r" % result.stdout)
        self.count()

    def publish(self, client):
        client.publish("soak", b"message")
        self.count()

    def client_thread(self, thread_id):
        kept = framed.Client.tcp(*self.tcp)
        while self.running():
            action = random.choice(("kept", "kept", "short", "datagram", "files", "exec", "publish"))
            try:
                if action == "kept":
                    self.kept_connection(kept)
                elif action == "short":
                    self.short_connection(thread_id)
                elif action == "datagram":
                    self.datagram()
                elif action == "files":
                    self.files(kept, thread_id)
                elif action == "exec":
                    self.exec(kept)
                else:
                    self.publish(kept)
            except Exception as error:  # counted and reported; the soak goes on
                self.error("%s: %s: %s" % (action, type(error).__name__, error))
                kept.close()
                kept = framed.Client.tcp(*self.tcp)
        kept.close()

    def subscriber_thread(self):
        while self.running():
            try:
                with framed.Client.unix(self.unix) as client:
                    for event in client.subscribe("soak", timeout=1):
                        if isinstance(event, framed.Message):
                            with self.lock:
                                self.messages += 1
                        if not self.running() or random.randrange(5000) == 0:
                            break  # a subscriber that comes and goes
            except framed.ClientTimeoutError:
                continue
            except Exception as error:
                self.error("subscribe: %s: %s" % (type(error).__name__, error))


def write_config(path, args, work):
    root = os.path.join(work, "files")
    os.mkdir(root)
    with open(path, "w") as config:
        config.write(f"""
[daemon]
log_level = "warn"
max_connections = 20000

[[listener]]
kind = "tcp"
address = "127.0.0.1:{args.tcp_port}"

[[listener]]
kind = "unix"
path = "{work}/framed.sock"

[[listener]]
kind = "udp"
address = "127.0.0.1:{args.udp_port}"

[[listener]]
kind = "unix_dgram"
path = "{work}/framed-dgram.sock"

[files]
root = "{root}"

[commands.say]
argv = ["/bin/echo"]
allow_args = true
""")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--binary", default=os.environ.get("FRAMED_BIN", "build/daemon/framed"))
    parser.add_argument("--backend", default=os.environ.get("FRAMED_BACKEND", "io_uring"))
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    args.tcp_port = free_port()
    args.udp_port = free_port(socket.SOCK_DGRAM)
    with tempfile.TemporaryDirectory(prefix="framed-soak-") as work:
        config = os.path.join(work, "framed.toml")
        write_config(config, args, work)
        env = dict(os.environ, FRAMED_BACKEND=args.backend)
        daemon = subprocess.Popen([args.binary, "--config", config], env=env)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with framed.Client.tcp(*("127.0.0.1", args.tcp_port)) as client:
                        client.ping()
                    break
                except OSError:
                    if time.monotonic() > deadline or daemon.poll() is not None:
                        sys.exit("the daemon did not start")
                    time.sleep(0.05)
            load = Load(args, work)
            threads = [threading.Thread(target=load.client_thread, args=(i,)) for i in range(args.threads)]
            threads.append(threading.Thread(target=load.subscriber_thread))
            for thread in threads:
                thread.start()
            samples = []
            loaded = None  # the last sample taken while the clients were still at it
            started = time.monotonic()
            while load.running():
                time.sleep(1)
                if daemon.poll() is not None:
                    sys.exit("the daemon exited during the soak (status %r)" % daemon.returncode)
                sample = (time.monotonic() - started, proc_value(daemon.pid, "VmRSS"), open_fds(daemon.pid))
                samples.append(sample)
                # Asked after the sample: a sample taken once the clients
                # had stopped (the end came during the sleep) is not "under load".
                if load.running():
                    loaded = sample
            loaded = loaded or samples[0]
            for thread in threads:
                thread.join()
            time.sleep(1)
            samples.append((time.monotonic() - started, proc_value(daemon.pid, "VmRSS"), open_fds(daemon.pid)))
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
    warm = next((s for s in samples if s[0] >= min(60, samples[-1][0] / 2)), samples[0])
    end = samples[-1]
    print("soak: %.1f min, backend %s, %d client threads + 1 subscriber, nproc %d" % (
        args.minutes, args.backend, args.threads, os.cpu_count()))
    print("| measure | warm (%.0f s) | last under load (%.0f s) | drift under load | peak | clients gone |" % (
        warm[0], loaded[0]))
    print("|---|---:|---:|---:|---:|---:|")
    for label, index in (("RSS (KiB)", 1), ("open fds", 2)):
        print("| %s | %d | %d | %+d | %d | %d |" % (label, warm[index], loaded[index], loaded[index] - warm[index],
                                                   max(s[index] for s in samples), end[index]))
    print("requests answered: %d; pub/sub messages received: %d; client errors: %d; daemon exit status %d" % (
        load.requests, load.messages, len(load.errors), daemon.returncode))
    for error in load.errors:
        print("  error:", error)
    sys.exit(1 if load.errors or daemon.returncode != 0 else 0)


if __name__ == "__main__":
    main()

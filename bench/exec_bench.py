#!/usr/bin/python3
"""exec throughput: framed against the classic Python baseline.

Measures `exec` of /bin/true (execs per second, and mean latency) with 1, 4
and 16 concurrent clients, each a connection that sends one request and
waits for its reply, against:

  framed     the daemon (build/daemon/framed), [commands.true] argv = ["/bin/true"]
  baseline   socketserver.ThreadingTCPServer (a thread per connection) doing
             subprocess.run for each request, over the same json framing:
             u32 big-endian header length, JSON header, body. It is shipped in
             this script (--serve-baseline) and runs in its own process, as
             framed does, so neither shares the clients' interpreter.

For scale, it also reports the machine's own ceiling: one process doing
posix_spawn + waitpid of /bin/true in a loop, no server and no socket.

Loopback only; every point runs for a bounded time (--duration, after a
--warmup). Standard library only.

    bench/exec_bench.py                          # after `ninja -C build`
    bench/exec_bench.py --duration 5 --clients 1,4,16,64 --workers 8
    bench/exec_bench.py --containment process_group,subreaper,cgroup   # as root
"""

import argparse
import json
import os
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
COMMAND = ["/bin/true"]


# --- the json framing, both sides ------------------------------------------------

def encode(header, body=b""):
    header = dict(header)
    if body:
        header["total_size"] = len(body)
    raw = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(raw)) + raw + body


def read_exact(sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("EOF after %d of %d bytes" % (len(data), size))
        data += chunk
    return bytes(data)


def read_frame(sock):
    (length,) = struct.unpack(">I", read_exact(sock, 4))
    header = json.loads(read_exact(sock, length))
    size = header.get("total_size", 0)
    return header, (read_exact(sock, size) if size else b"")


# --- the baseline server ---------------------------------------------------------

class BaselineHandler(socketserver.BaseRequestHandler):
    """What the tutorials write, minus shell=True: subprocess.run per request."""

    def handle(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                header, body = read_frame(sock)
            except (ConnectionError, OSError):
                return
            reply = {"ok": True}
            if "id" in header:
                reply["id"] = header["id"]
            out = b""
            if header.get("cmd") == "exec" and header.get("name") == "true":
                try:
                    done = subprocess.run(COMMAND, input=body, capture_output=True, timeout=10)
                    out = done.stdout + done.stderr
                    reply.update(exit_code=done.returncode, stdout_size=len(done.stdout),
                                 stderr_size=len(done.stderr))
                except subprocess.TimeoutExpired:
                    reply = {"ok": False, "error": {"code": "timeout", "message": "timeout"}}
            else:
                reply = {"ok": False, "error": {"code": "forbidden", "message": "not configured"}}
            sock.sendall(encode(reply, out))


class BaselineServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def serve_baseline(port_file):
    server = BaselineServer(("127.0.0.1", 0), BaselineHandler)
    with open(port_file + ".tmp", "w") as out:
        out.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


# --- servers under test ----------------------------------------------------------

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(port, proc, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("%s exited with status %d" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(encode({"cmd": "exec", "name": "true"}))
                header, _ = read_frame(sock)
                if header.get("ok"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("%s did not answer within %.0f s" % (what, timeout))


def delegated_cgroup():
    """A fresh cgroup (v2) beside this process's, as systemd's Delegate=yes
    would give the daemon; needs root where the hierarchy is writable."""
    with open("/proc/self/mountinfo") as mounts:
        roots = [line.split(" - ")[0].split()[4] for line in mounts
                 if line.partition(" - ")[2].startswith("cgroup2 ") and line.split()[3] == "/"]
    with open("/proc/self/cgroup") as cgroups:
        mine = [line[3:].strip() for line in cgroups if line.startswith("0::")]
    if not roots or not mine:
        raise SystemExit("--containment cgroup: no cgroup v2 hierarchy is mounted")
    path = os.path.join(roots[0] + mine[0].rstrip("/"), "framed-exec-bench-%d" % os.getpid())
    try:
        os.mkdir(path)
    except OSError as error:
        raise SystemExit("--containment cgroup: cannot make %s: %s (run as root)" % (path, error))
    return path


class Framed:
    def __init__(self, binary, workers, backend, work, containment=None):
        self.port = free_port()
        self.cgroup = delegated_cgroup() if containment == "cgroup" else None
        config = os.path.join(work, "framed.toml")
        with open(config, "w") as out:
            out.write("[daemon]\nworkers = %d\nlog_level = \"warn\"\n%s\n"
                      "[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:%d\"\n\n"
                      "[commands.true]\nargv = %s\n" % (
                          workers, ("exec_containment = \"%s\"\n" % containment) if containment else "",
                          self.port, json.dumps(COMMAND)))
        env = dict(os.environ)
        if backend:
            env["FRAMED_BACKEND"] = backend

        def join_cgroup():
            with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as procs:
                procs.write("0")
        self.log = open(os.path.join(work, "framed.log"), "wb")
        self.proc = subprocess.Popen([binary, "--config", config], stdout=self.log, stderr=self.log, env=env,
                                     preexec_fn=join_cgroup if self.cgroup else None)
        wait_until_answering(self.port, self.proc, "framed")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if self.cgroup:
            os.rmdir(self.cgroup)


class Baseline:
    def __init__(self, work):
        port_file = os.path.join(work, "baseline.port")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-baseline", port_file])
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("the baseline server did not start")
            time.sleep(0.02)
        with open(port_file) as port:
            self.port = int(port.read())
        wait_until_answering(self.port, self.proc, "the baseline")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- the load --------------------------------------------------------------------

def measure(port, clients, duration, warmup):
    """(execs per second, mean latency in ms, errors) over `duration` seconds."""
    start_at = time.monotonic() + 0.2  # every client connected before the clock starts
    measure_from = start_at + warmup
    stop_at = measure_from + duration
    results = []
    lock = threading.Lock()
    request = encode({"cmd": "exec", "id": 1, "name": "true"})

    def client():
        done = errors = 0
        busy = 0.0
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            time.sleep(max(0.0, start_at - time.monotonic()))
            while True:
                sent = time.monotonic()
                if sent >= stop_at:
                    break
                sock.sendall(request)
                header, _ = read_frame(sock)
                if sent >= measure_from:
                    if header.get("ok") and header.get("exit_code") == 0:
                        done += 1
                        busy += time.monotonic() - sent
                    else:
                        errors += 1
        with lock:
            results.append((done, busy, errors))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = sum(r[0] for r in results)
    busy = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    return done / duration, (busy / done * 1000.0 if done else float("nan")), errors


def spawn_ceiling(duration):
    """posix_spawn + waitpid of COMMAND in a loop, in this process: per second."""
    done = 0
    stop_at = time.monotonic() + duration
    while time.monotonic() < stop_at:
        pid = os.posix_spawn(COMMAND[0], COMMAND, {})
        os.waitpid(pid, 0)
        done += 1
    return done / duration


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framed-bin", default=os.environ.get("FRAMED_BIN", os.path.join(REPO, "build", "daemon", "framed")))
    parser.add_argument("--backend", default=os.environ.get("FRAMED_BACKEND", ""), help="epoll | io_uring | auto")
    parser.add_argument("--workers", type=int, default=0, help="framed daemon.workers (0 = CPUs)")
    parser.add_argument("--clients", default="1,4,16", help="comma-separated client counts")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per point")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before measuring, per point")
    parser.add_argument("--only", choices=("framed", "baseline"), help="measure one server only")
    parser.add_argument("--containment", default="",
                        help="comma-separated daemon.exec_containment modes to measure framed under, one row each "
                             "(auto, cgroup, subreaper, process_group; cgroup makes a cgroup for the daemon: root)")
    parser.add_argument("--serve-baseline", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        return serve_baseline(args.serve_baseline)

    counts = [int(c) for c in args.clients.split(",") if c]
    if args.only != "baseline" and not os.access(args.framed_bin, os.X_OK):
        raise SystemExit("%s not found: build it with 'ninja -C build'" % args.framed_bin)
    work = tempfile.mkdtemp(prefix="framed-exec-bench-")
    rows = []
    ceiling = spawn_ceiling(args.duration)
    print("spawn ceiling: %.0f spawns/s (posix_spawn + waitpid, one process)" % ceiling, file=sys.stderr)
    modes = [mode for mode in args.containment.split(",") if mode] or [None]
    servers = [("framed" + (" (%s)" % mode if mode else ""), mode) for mode in modes] + [("baseline", None)]
    try:
        for name, mode in servers:
            if args.only and not name.startswith(args.only):
                continue
            server = (Framed(args.framed_bin, args.workers, args.backend, work, mode) if name.startswith("framed")
                      else Baseline(work))
            try:
                for count in counts:
                    rate, latency, errors = measure(server.port, count, args.duration, args.warmup)
                    rows.append((name, count, rate, latency, errors))
                    print("%-8s %3d clients: %8.0f execs/s  %7.2f ms mean%s" % (
                        name, count, rate, latency, ("  (%d errors)" % errors) if errors else ""),
                        file=sys.stderr)
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cpus = len(os.sched_getaffinity(0))
    print("\nexec of %s, %g s per point, %d CPUs, framed workers = %s%s\n" % (
        " ".join(COMMAND), args.duration, cpus, args.workers or "CPUs",
        (", backend " + args.backend) if args.backend else ""))
    print("| server | clients | execs/s | mean latency (ms) |")
    print("|---|---:|---:|---:|")
    print("| (posix_spawn loop, no server) | - | %.0f | %.2f |" % (ceiling, 1000.0 / ceiling if ceiling else 0))
    for name, count, rate, latency, errors in rows:
        print("| %s | %d | %.0f | %.2f |%s" % (name, count, rate, latency, " %d errors" % errors if errors else ""))


if __name__ == "__main__":
    main()

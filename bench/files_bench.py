#!/usr/bin/python3
"""put and get of a large file: framed against the raw limit of the machine.

For each transport (TCP loopback, Unix socket) it measures, in MB/s
(10^6 bytes per second):

  framed put   a json-framed put of the file (the client sends the header,
               then the file with sendfile(2)); timed until the reply;
               deleted between runs, as raw put removes its output, so
               both write into page cache the run before freed
  framed get   a get of it; the client reads the body into one reused
               buffer and drops it; timed until the last byte
  raw put      the same bytes through socat into a file over the same
               transport: `socat -u OPEN:file TCP:...` into
               `socat -u TCP-LISTEN:... CREATE:out`
  raw get      `cat file | socat -u - TCP-LISTEN:...`, read by
               `socat -u TCP:... -` into /dev/null
               (every socat with -b 1048576: its default 8 KiB blocks
               would measure socat's system calls, not the transport)

and the daemon's peak resident memory (VmHWM of /proc/PID/status) after
the put and after the get, with a fresh daemon per transport. The daemon
runs with files.fsync = false, as socat does not fsync either: what is
compared is the path through the daemon, not the disk's flush.

Every file lives in a temporary directory under /tmp, removed at the end.
Loopback and Unix sockets only. Standard library only (and socat).

    bench/files_bench.py                    # after `ninja -C build`: 1 GiB
    bench/files_bench.py --size-mib 256 --runs 3
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CHUNK = 1 << 20
SOCAT = ["socat", "-b", str(CHUNK), "-u"]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def encode(header):
    raw = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(raw)) + raw


def read_exact(sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("EOF after %d of %d bytes" % (len(data), size))
        data += chunk
    return bytes(data)


def read_reply_header(sock):
    (length,) = struct.unpack(">I", read_exact(sock, 4))
    return json.loads(read_exact(sock, length))


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


class Framed:
    def __init__(self, binary, workdir, transport):
        self.root = os.path.join(workdir, "root")
        os.makedirs(self.root, exist_ok=True)
        self.transport = transport
        if transport == "tcp":
            self.address = ("127.0.0.1", free_port())
            listener = 'kind = "tcp"\naddress = "127.0.0.1:%d"\n' % self.address[1]
        else:
            self.address = os.path.join(workdir, "framed.sock")
            listener = 'kind = "unix"\npath = "%s"\n' % self.address
        config = os.path.join(workdir, "framed.toml")
        with open(config, "w") as out:
            out.write("[[listener]]\n%s\n[files]\nroot = \"%s\"\nmax_file_size = \"64GiB\"\nfsync = false\n"
                      % (listener, self.root))
        self.proc = subprocess.Popen([binary, "--config", config], stderr=subprocess.DEVNULL)
        if not wait_for(self._answers):
            self.proc.kill()
            raise RuntimeError("framed did not start")

    def connect(self):
        family = socket.AF_INET if self.transport == "tcp" else socket.AF_UNIX
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.connect(self.address)
        return sock

    def _answers(self):
        try:
            with self.connect() as sock:
                sock.sendall(encode({"cmd": "ping"}))
                return read_reply_header(sock).get("ok") is True
        except OSError:
            return False

    def put(self, path, name):
        size = os.path.getsize(path)
        with self.connect() as sock, open(path, "rb") as source:
            start = time.monotonic()
            sock.sendall(encode({"cmd": "put", "name": name, "total_size": size}))
            sock.sendfile(source)
            reply = read_reply_header(sock)
            elapsed = time.monotonic() - start
        if not reply.get("ok"):
            raise RuntimeError("put failed: %r" % reply)
        return elapsed, reply["sha256"]

    def get(self, name):
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        with self.connect() as sock:
            start = time.monotonic()
            sock.sendall(encode({"cmd": "get", "name": name}))
            reply = read_reply_header(sock)
            remaining = reply.get("total_size", 0)
            while remaining:
                n = sock.recv_into(view[: min(CHUNK, remaining)])
                if n == 0:
                    raise ConnectionError("EOF with %d bytes to come" % remaining)
                remaining -= n
            elapsed = time.monotonic() - start
        if not reply.get("ok"):
            raise RuntimeError("get failed: %r" % reply)
        return elapsed

    def delete(self, name):
        with self.connect() as sock:
            sock.sendall(encode({"cmd": "delete", "name": name}))
            reply = read_reply_header(sock)
        if not reply.get("ok"):
            raise RuntimeError("delete failed: %r" % reply)

    def peak_rss_kib(self):
        return vm_hwm_kib(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def socat_address(transport, workdir, listen):
    if transport == "tcp":
        port = socat_address.port
        return ("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr" % port) if listen else ("TCP:127.0.0.1:%d" % port)
    path = os.path.join(workdir, "raw.sock")
    return ("UNIX-LISTEN:%s,unlink-early" % path) if listen else ("UNIX-CONNECT:%s" % path)


def socat_listening(transport, workdir):
    if transport == "tcp":
        def bound():
            with open("/proc/net/tcp") as table:
                return (":%04X " % socat_address.port) in table.read()
        return bound
    return lambda: os.path.exists(os.path.join(workdir, "raw.sock"))


def raw_put(path, transport, workdir):
    """socat from the file into a file, over the transport: seconds."""
    socat_address.port = free_port()
    out = os.path.join(workdir, "raw-out.bin")
    server = subprocess.Popen(SOCAT + [socat_address(transport, workdir, True), "CREATE:%s" % out])
    if not wait_for(socat_listening(transport, workdir)):
        server.kill()
        raise RuntimeError("socat did not listen")
    start = time.monotonic()
    subprocess.run(SOCAT + ["OPEN:%s" % path, socat_address(transport, workdir, False)], check=True)
    server.wait(timeout=600)
    elapsed = time.monotonic() - start
    os.unlink(out)
    if transport == "unix" and os.path.exists(os.path.join(workdir, "raw.sock")):
        os.unlink(os.path.join(workdir, "raw.sock"))
    return elapsed


def raw_get(path, transport, workdir):
    """cat of the file into socat, read by socat into /dev/null: seconds."""
    socat_address.port = free_port()
    server = subprocess.Popen("cat %s | %s - %s" % (path, " ".join(SOCAT), socat_address(transport, workdir, True)),
                              shell=True)
    if not wait_for(socat_listening(transport, workdir)):
        server.kill()
        raise RuntimeError("socat did not listen")
    start = time.monotonic()
    with open(os.devnull, "wb") as sink:
        subprocess.run(SOCAT + [socat_address(transport, workdir, False), "-"], stdout=sink, check=True)
    elapsed = time.monotonic() - start
    server.wait(timeout=600)
    if transport == "unix" and os.path.exists(os.path.join(workdir, "raw.sock")):
        os.unlink(os.path.join(workdir, "raw.sock"))
    return elapsed


def make_file(path, size):
    block = os.urandom(CHUNK)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        written = 0
        while written < size:
            piece = block[: min(CHUNK, size - written)]
            out.write(piece)
            digest.update(piece)
            written += len(piece)
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(REPO, "build", "daemon", "framed"))
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3, help="best of this many runs per figure")
    parser.add_argument("--transports", default="tcp,unix")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the temporary directory goes too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if shutil.which("socat") is None:
        sys.exit("socat is needed for the raw figures (apt install socat)")
    size = args.size_mib << 20
    workdir = tempfile.mkdtemp(prefix="framed-files-bench-", dir="/tmp")
    try:
        source = os.path.join(workdir, "source.bin")
        expected = make_file(source, size)
        mb = size / 1e6
        print("file: %d MiB; best of %d runs; MB/s = 10^6 bytes per second" % (args.size_mib, args.runs))
        print("| transport | framed put MB/s | raw put MB/s | framed get MB/s | raw get MB/s "
              "| peak RSS after put | after get |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for transport in args.transports.split(","):
            daemon = Framed(args.binary, workdir, transport)
            try:
                puts = []
                for run in range(args.runs):
                    elapsed, digest = daemon.put(source, "bench.bin")
                    if digest != expected:
                        raise RuntimeError("put stored sha256 %s, the file is %s" % (digest, expected))
                    puts.append(elapsed)
                    if run + 1 < args.runs:
                        daemon.delete("bench.bin")  # as raw_put removes its output
                rss_put = daemon.peak_rss_kib()
                gets = [daemon.get("bench.bin") for _ in range(args.runs)]
                rss_get = daemon.peak_rss_kib()
            finally:
                daemon.stop()
            raw_puts = [raw_put(source, transport, workdir) for _ in range(args.runs)]
            raw_gets = [raw_get(source, transport, workdir) for _ in range(args.runs)]
            print("| %s | %.0f | %.0f | %.0f | %.0f | %.1f MiB | %.1f MiB |" % (
                transport, mb / min(puts), mb / min(raw_puts), mb / min(gets), mb / min(raw_gets),
                rss_put / 1024, rss_get / 1024))
            sys.stdout.flush()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

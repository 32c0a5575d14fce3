"""TLS on tcp listeners (tls_cert, tls_key, tls_client_ca).

Certificates are made at test time with the openssl command: a CA, a server
certificate for 127.0.0.1 and localhost, a client certificate from the same
CA, and a second CA with a client certificate of its own. Clients are
Python's ssl module and `openssl s_client`; every framing is spoken over TLS
to show the layers above the transport see plain bytes.
"""

import hashlib
import json
import os
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

import framed_client
from conftest import FRAMED_BIN, Daemon, render_config

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")


def openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(directory, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/CN=" + name,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            cwd=directory)


def make_leaf(directory, name, ca, subject, extensions):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", subject, cwd=directory)
    with open(os.path.join(directory, name + ".ext"), "w") as ext:
        ext.write(extensions + "\n")
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-CAcreateserial",
            "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext", cwd=directory)


class Pki:
    def __init__(self, directory):
        self.dir = str(directory)
        make_ca(self.dir, "ca")
        make_ca(self.dir, "other_ca")
        server_ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"
        make_leaf(self.dir, "server", "ca", "/CN=framed-test-server", server_ext)
        make_leaf(self.dir, "server2", "ca", "/CN=framed-test-server-2", server_ext)
        client_ext = "subjectAltName=DNS:deploy.example,email:deploy@example.org\nextendedKeyUsage=clientAuth"
        make_leaf(self.dir, "client", "ca", "/CN=deploy", client_ext)
        make_leaf(self.dir, "stranger", "other_ca", "/CN=stranger", client_ext)
        make_leaf(self.dir, "robot", "ca", "/CN=robot-7", "subjectAltName=DNS:robot.example\nextendedKeyUsage=clientAuth")
        make_leaf(self.dir, "unmapped", "ca", "/CN=unmapped", "extendedKeyUsage=clientAuth")

    def path(self, name):
        return os.path.join(self.dir, name)

    def fingerprint(self, name):
        with open(self.path(name + ".pem")) as pem:
            return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.read())).hexdigest()

    def client_context(self, cert=None, ca="ca"):
        context = ssl.create_default_context(cafile=self.path(ca + ".pem"))
        if cert:
            context.load_cert_chain(self.path(cert + ".pem"), self.path(cert + ".key"))
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def tls_keys(pki, server="server", client_ca=None):
    keys = {"tls_cert": pki.path(server + ".pem"), "tls_key": pki.path(server + ".key")}
    if client_ca:
        keys["tls_client_ca"] = pki.path(client_ca + ".pem")
    return keys


def listeners(pki):
    keys = tls_keys(pki)
    return [
        {"kind": "tcp", "name": "plain"},
        dict({"kind": "tcp", "name": "json"}, **keys),
        dict({"kind": "tcp", "name": "length", "framing": "length"}, **keys),
        dict({"kind": "tcp", "name": "line", "framing": "line"}, **keys),
        dict({"kind": "tcp", "name": "raw", "framing": "raw", "command": "upper"}, **keys),
        dict({"kind": "tcp", "name": "mtls"}, **tls_keys(pki, client_ca="ca")),
        dict({"kind": "tcp", "name": "quick", "header_timeout": "300ms"}, **keys),
    ]


@pytest.fixture(scope="module")
def tls_daemon(pki):
    daemon = Daemon(listeners(pki))
    daemon.start()
    yield daemon
    daemon.stop_cleanly()


class TlsConn:
    """A TLS connection with the framings' helpers."""

    def __init__(self, daemon, name, context, timeout=5.0):
        family, address = daemon.address(name)
        raw = socket.create_connection(address, timeout=timeout)
        try:
            self.sock = context.wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise
        self.pending = bytearray()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def read_exact(self, size):
        while len(self.pending) < size:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise framed_client.ConnectionClosed("EOF after %d of %d bytes" % (len(self.pending), size))
            self.pending += chunk
        data = bytes(self.pending[:size])
        del self.pending[:size]
        return data

    def json_request(self, header, body=b""):
        self.sock.sendall(framed_client.frame(dict(header, total_size=len(body)) if body else header, body))
        (size,) = struct.unpack(">I", self.read_exact(4))
        reply = json.loads(self.read_exact(size))
        return reply, self.read_exact(reply.get("total_size", 0))

    def length_request(self, payload):
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)
        (size,) = struct.unpack(">I", self.read_exact(4))
        return self.read_exact(size)

    def line_request(self, line):
        self.sock.sendall(line + b"\n")
        while b"\n" not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise framed_client.ConnectionClosed("EOF before a whole line")
            self.pending += chunk
        end = self.pending.index(b"\n")
        line = bytes(self.pending[:end])
        del self.pending[:end + 1]
        return line

    def server_fingerprint(self):
        return hashlib.sha256(self.sock.getpeercert(binary_form=True)).hexdigest()


def stats(daemon):
    return daemon.stats("plain")


def listener_stats(daemon, name):
    return stats(daemon)["listeners"][name]


# --- every framing over TLS ---------------------------------------------------

def test_json_framing_over_tls(tls_daemon, pki):
    with TlsConn(tls_daemon, "json", pki.client_context()) as conn:
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
        reply, _ = conn.json_request({"cmd": "ping", "id": 7})
        assert reply["ok"] is True and reply["pong"] is True and reply["id"] == 7
        reply, body = conn.json_request({"cmd": "echo"}, b"over tls")
        assert reply["ok"] is True and body == b"over tls"


def test_length_line_and_raw_framings_over_tls(tls_daemon, pki):
    with TlsConn(tls_daemon, "length", pki.client_context()) as conn:
        assert conn.length_request(b"upper hello") == b"HELLO"
        assert conn.length_request(b"ping") == b"pong"
    with TlsConn(tls_daemon, "line", pki.client_context()) as conn:
        assert conn.line_request(b"upper simple mode") == b"SIMPLE MODE"
        assert conn.line_request(b"nosuch").startswith(b"ERR ")
    with TlsConn(tls_daemon, "raw", pki.client_context()) as conn:
        conn.sock.sendall(b"raw text")
        assert conn.sock.recv(100) == b"RAW TEXT"


def test_a_large_body_crosses_intact(tls_daemon, pki):
    body = os.urandom(8 << 20)
    with TlsConn(tls_daemon, "json", pki.client_context(), timeout=20) as conn:
        reply, echoed = conn.json_request({"cmd": "echo"}, body)
    assert reply["ok"] is True
    assert len(echoed) == len(body) and hashlib.sha256(echoed).digest() == hashlib.sha256(body).digest()


def test_pipelined_requests_in_one_write(tls_daemon, pki):
    with TlsConn(tls_daemon, "line", pki.client_context()) as conn:
        conn.sock.sendall(b"".join(b"upper r%d\n" % i for i in range(200)))
        data = b""
        while data.count(b"\n") < 200:
            chunk = conn.sock.recv(65536)
            assert chunk, "EOF before 200 replies"
            data += chunk
        assert data.split(b"\n")[:200] == [b"R%d" % i for i in range(200)]


def test_openssl_s_client_simple_mode(tls_daemon, pki):
    _, (host, port) = tls_daemon.address("line")
    proc = subprocess.Popen([OPENSSL, "s_client", "-connect", "%s:%d" % (host, port), "-quiet",
                             "-CAfile", pki.path("ca.pem"), "-verify_return_error"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(b"upper from s_client\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 5
        out = b""
        while b"\n" not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
        assert out.split(b"\n")[0] == b"FROM S_CLIENT", (out, proc.stderr.read1() if proc.poll() else b"")
    finally:
        proc.kill()
        proc.communicate(timeout=5)


# --- refused handshakes -------------------------------------------------------

def test_tls_1_1_is_refused(tls_daemon, pki):
    _, (host, port) = tls_daemon.address("json")
    result = subprocess.run([OPENSSL, "s_client", "-connect", "%s:%d" % (host, port), "-tls1_1",
                             "-cipher", "DEFAULT@SECLEVEL=0"], stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=10)
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    assert result.returncode != 0, output
    # The server's alert 70 (protocol_version), not the client declining to offer TLS 1.1.
    assert "alert protocol version" in output and "Cipher    : 0000" in output, output


def test_a_client_that_does_not_trust_the_server_fails(tls_daemon, pki):
    with pytest.raises(ssl.SSLCertVerificationError):
        TlsConn(tls_daemon, "json", pki.client_context(ca="other_ca"))


def test_plaintext_on_a_tls_listener_is_closed(tls_daemon):
    with tls_daemon.connect("json") as client:
        client.send(framed_client.frame({"cmd": "ping"}))
        try:
            rest = client.read_until_eof(timeout=5)  # at most OpenSSL's alert, never a reply
            assert not rest.startswith(b"\x00"), rest
        except framed_client.ConnectionClosed:
            pass  # a reset: the alert was not read before the close
    tls_daemon.ping("plain")


# --- client certificates ------------------------------------------------------

def test_client_certificate_required(tls_daemon, pki):
    with TlsConn(tls_daemon, "mtls", pki.client_context(cert="client")) as conn:
        reply, _ = conn.json_request({"cmd": "ping"})
        assert reply["ok"] is True
    failures_before = listener_stats(tls_daemon, "mtls")["tls_handshake_failures"]
    for cert in (None, "stranger"):
        with pytest.raises((ssl.SSLError, ConnectionError, framed_client.ConnectionClosed)):
            # TLS 1.3 reports the refusal on the first read after the handshake.
            with TlsConn(tls_daemon, "mtls", pki.client_context(cert=cert)) as conn:
                conn.json_request({"cmd": "ping"})
    deadline = time.monotonic() + 3
    while listener_stats(tls_daemon, "mtls")["tls_handshake_failures"] < failures_before + 2:
        assert time.monotonic() < deadline, listener_stats(tls_daemon, "mtls")
        time.sleep(0.05)
    assert listener_stats(tls_daemon, "mtls")["tls_handshakes"] >= 1


# --- the handshake deadline ---------------------------------------------------

def test_a_silent_or_half_handshake_is_closed_at_header_timeout(tls_daemon, pki):
    before = stats(tls_daemon)["header_timeouts"]
    family, address = tls_daemon.address("quick")
    silent = socket.create_connection(address, timeout=5)
    half = socket.create_connection(address, timeout=5)
    # The first bytes of a ClientHello: a handshake record that never completes.
    half.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
    started = time.monotonic()
    try:
        for sock in (silent, half):
            assert sock.recv(4096) == b""
        assert time.monotonic() - started < 4
    finally:
        silent.close()
        half.close()
    assert stats(tls_daemon)["header_timeouts"] >= before + 2
    # A handshake that completes is not bound by it.
    with TlsConn(tls_daemon, "quick", pki.client_context()) as conn:
        time.sleep(0.5)
        assert conn.json_request({"cmd": "ping"})[0]["ok"] is True


# --- reload -------------------------------------------------------------------

def reload_and_wait(daemon):
    before = stats(daemon)
    daemon.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = stats(daemon)
        if now["config_generation"] != before["config_generation"]:
            return True
        if now["reload_failures"] != before["reload_failures"]:
            return False
        time.sleep(0.05)
    raise AssertionError("the reload neither applied nor failed\n" + daemon.stderr_text())


def test_reload_takes_a_new_certificate_and_rejects_a_missing_key(pki, tmp_path):
    keys = {"tls_cert": str(tmp_path / "live.pem"), "tls_key": str(tmp_path / "live.key")}
    shutil.copy(pki.path("server.pem"), keys["tls_cert"])
    shutil.copy(pki.path("server.key"), keys["tls_key"])
    daemon = Daemon([{"kind": "tcp", "name": "plain"}, dict({"kind": "tcp", "name": "tls"}, **keys)])
    daemon.start()
    try:
        old = TlsConn(daemon, "tls", pki.client_context())
        assert old.server_fingerprint() == pki.fingerprint("server")

        shutil.copy(pki.path("server2.pem"), keys["tls_cert"])
        shutil.copy(pki.path("server2.key"), keys["tls_key"])
        assert reload_and_wait(daemon)
        with TlsConn(daemon, "tls", pki.client_context()) as new:
            assert new.server_fingerprint() == pki.fingerprint("server2")
            assert new.json_request({"cmd": "ping"})[0]["ok"] is True
        assert old.json_request({"cmd": "echo"}, b"still here") [1] == b"still here"

        os.unlink(keys["tls_key"])
        assert not reload_and_wait(daemon)
        assert "tls_key" in daemon.stderr_text() or "live.key" in daemon.stderr_text()
        with TlsConn(daemon, "tls", pki.client_context()) as new:
            assert new.server_fingerprint() == pki.fingerprint("server2")
        old.sock.close()
    finally:
        text = daemon.stderr_text()
        status = daemon.stop()
        daemon.cleanup()
    assert status == 0, text
    assert "Sanitizer" not in text and "runtime error" not in text, text
    assert text.count("TLS in userspace (OpenSSL 3.") == 1, text


# --- check-config -------------------------------------------------------------

def check_config(tmp_path, listener):
    path = tmp_path / "check.toml"
    path.write_text(render_config([listener]))
    return subprocess.run([FRAMED_BIN, "--config", str(path), "--check-config"], capture_output=True, text=True,
                          timeout=30)


@pytest.mark.parametrize("keys, expected", [
    (lambda p: {"tls_cert": p.path("server.pem")}, "tls_cert: needs tls_key"),
    (lambda p: {"tls_key": p.path("server.key")}, "tls_key: needs tls_cert"),
    (lambda p: {"tls_client_ca": p.path("ca.pem")}, "tls_client_ca: needs tls_cert"),
    (lambda p: {"tls_cert": p.path("server.pem"), "tls_key": p.path("client.key")}, "does not match"),
    (lambda p: {"tls_cert": p.path("server.pem"), "tls_key": p.path("absent.key")}, "absent.key"),
    (lambda p: {"tls_cert": p.path("server.pem"), "tls_key": p.path("server.key"),
                "tls_client_ca": p.path("absent-ca.pem")}, "absent-ca.pem"),
    (lambda p: {"tls_cert": "server.pem", "tls_key": p.path("server.key")}, "must be an absolute path"),
])
def test_check_config_errors(pki, tmp_path, keys, expected):
    result = check_config(tmp_path, dict({"kind": "tcp", "name": "t", "address": "127.0.0.1:0"}, **keys(pki)))
    assert result.returncode != 0 and expected in result.stderr, result.stderr


@pytest.mark.parametrize("kind", ["unix", "http"])
def test_tls_on_another_kind_is_a_config_error(pki, tmp_path, kind):
    listener = {"kind": kind, "name": "t"}
    listener.update({"path": str(tmp_path / "t.sock")} if kind == "unix" else {"address": "127.0.0.1:0"})
    listener.update(tls_keys(pki))
    result = check_config(tmp_path, listener)
    assert result.returncode != 0, result.stderr
    assert "listener.tls_cert: TLS applies only to tcp listeners" in result.stderr, result.stderr


def test_check_config_accepts_good_tls(pki, tmp_path):
    result = check_config(tmp_path, dict({"kind": "tcp", "name": "t", "address": "127.0.0.1:0"},
                                         **tls_keys(pki, client_ca="ca")))
    assert result.returncode == 0, result.stderr


# --- framectl --tls -----------------------------------------------------------

FRAMECTL_BIN = os.path.abspath(os.environ.get("FRAMECTL_BIN") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build", "framectl", "framectl"))


def framectl(daemon, name, *args):
    _, (host, port) = daemon.address(name)
    return subprocess.run([FRAMECTL_BIN, "--tcp", "%s:%d" % (host, port), "--timeout", "5", *args],
                          capture_output=True, text=True, timeout=30)


def test_framectl_over_tls(tls_daemon, pki):
    result = framectl(tls_daemon, "json", "--tls", "--tls-ca", pki.path("ca.pem"), "upper", "over", "tls")
    assert result.returncode == 0 and result.stdout == "OVER TLS\n", result
    result = framectl(tls_daemon, "line", "--tls", "--tls-ca", pki.path("ca.pem"), "--framing", "line", "ping")
    assert result.returncode == 0 and result.stdout.strip() == "pong", result
    # The server's certificate is checked: against another CA it fails.
    result = framectl(tls_daemon, "json", "--tls", "--tls-ca", pki.path("other_ca.pem"), "ping")
    assert result.returncode == 3 and "certificate verify failed" in result.stderr, result
    result = framectl(tls_daemon, "json", "--tls", "--tls-insecure", "ping")
    assert result.returncode == 0, result


def test_framectl_with_a_client_certificate(tls_daemon, pki):
    ca = ("--tls", "--tls-ca", pki.path("ca.pem"))
    result = framectl(tls_daemon, "mtls", *ca, "--tls-cert", pki.path("client.pem"), "--tls-key",
                      pki.path("client.key"), "ping")
    assert result.returncode == 0, result
    result = framectl(tls_daemon, "mtls", *ca, "ping")
    assert result.returncode == 3, result


# --- the Python client library ------------------------------------------------

def test_python_client_ssl_context(tls_daemon, pki):
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                    "clients", "python"))
    import framed
    _, (host, port) = tls_daemon.address("json")
    with framed.connect("tcp://%s:%d" % (host, port), ssl_context=pki.client_context()) as client:
        assert client.upper(b"python over tls") == b"PYTHON OVER TLS"
        with client.pipeline() as batch:
            for i in range(500):
                batch.request("echo", b"%d" % i)
        assert [reply.body for reply in batch.replies] == [b"%d" % i for i in range(500)]
    _, (host, port) = tls_daemon.address("line")
    with framed.connect("tcp://%s:%d" % (host, port), framing="line", ssl_context=pki.client_context()) as client:
        assert client.command("upper x") == b"X"
    with pytest.raises(ssl.SSLError):
        framed.connect("tcp://%s:%d" % (host, port), ssl_context=pki.client_context(ca="other_ca"))


# --- the drain at stop ---------------------------------------

def test_stop_answers_what_was_queued_over_tls_then_closes(pki):
    daemon = Daemon([{"kind": "tcp", "name": "plain"},
                     dict({"kind": "tcp", "name": "line", "framing": "line"}, **tls_keys(pki))])
    daemon.start()
    try:
        family, address = daemon.address("line")
        raw = socket.create_connection(address, timeout=5)
        conn = pki.client_context().wrap_socket(raw, server_hostname="localhost")
        conn.sendall(b"ping\n")
        assert conn.recv(100) == b"pong\n"
        conn.sendall(b"".join(b"upper n%d\n" % i for i in range(50)))
        time.sleep(0.2)  # the requests are in the daemon's socket queue
        daemon.send_signal(signal.SIGTERM)
        data = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.split(b"\n")[:50] == [b"N%d" % i for i in range(50)]
        conn.close()
        assert daemon.wait(10) == 0
    finally:
        daemon.cleanup()


# --- principals from certificates, and tokens over TLS ------------------------------

def test_a_client_certificate_names_its_principal(pki, tmp_path):
    keys = tls_keys(pki, client_ca="ca")
    token = "t0ken-over-tls"
    extra = """
[principals.deploy]
certificate_subject = "CN=deploy"
files = "none"
channels = ["builds.*"]

[principals.robot]
certificate_subject = "robot.example"

[principals.tokened]
token_sha256 = "%s"
""" % hashlib.sha256(token.encode()).hexdigest()
    specs = [dict({"kind": "tcp", "name": "certs", "auth": "certificate"}, **keys),
             dict({"kind": "tcp", "name": "tokens", "auth": "token"}, **tls_keys(pki))]
    daemon = Daemon(specs)
    with open(daemon.config_path, "a") as config:
        config.write(extra)
    daemon.start()
    try:
        # The subject names deploy: its permissions apply from the first request.
        with TlsConn(daemon, "certs", pki.client_context("client")) as conn:
            reply, _ = conn.json_request({"cmd": "ping"})
            assert reply["ok"] is True, reply
            reply, _ = conn.json_request({"cmd": "subscribe", "channel": "builds.x"})
            assert reply["ok"] is True, reply
            reply, _ = conn.json_request({"cmd": "subscribe", "channel": "other"})
            assert reply["error"]["code"] == "forbidden", reply
            # A token is no substitute on a certificate listener.
            reply, _ = conn.json_request({"cmd": "auth", "token": token})
            assert reply["error"]["code"] == "forbidden", reply
        # A subjectAltName names robot.
        with TlsConn(daemon, "certs", pki.client_context("robot")) as conn:
            reply, _ = conn.json_request({"cmd": "ping"})
            assert reply["ok"] is True, reply
        # Signed by the CA, but no principal's: verified, and still refused everything.
        with TlsConn(daemon, "certs", pki.client_context("unmapped")) as conn:
            reply, _ = conn.json_request({"cmd": "ping"})
            assert reply["error"]["code"] == "forbidden", reply
            assert "client certificate that names a principal" in reply["error"]["message"]
        # A token over TLS.
        with TlsConn(daemon, "tokens", pki.client_context()) as conn:
            reply, _ = conn.json_request({"cmd": "ping"})
            assert reply["error"]["code"] == "forbidden", reply
            reply, _ = conn.json_request({"cmd": "auth", "token": token})
            assert reply["ok"] is True and reply["principal"] == "tokened", reply
            reply, _ = conn.json_request({"cmd": "ping"})
            assert reply["ok"] is True, reply
    finally:
        text = daemon.stderr_text()
        daemon.cleanup()
    assert "Sanitizer" not in text and "runtime error" not in text, text

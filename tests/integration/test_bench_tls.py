"""framed-bench's client TLS (--tls, --tls-ca, --server-name, --mode handshake)
against a real daemon's TLS listener.

BENCH_BIN  the load generator (default: build/bench/framed-bench of this tree)

Each run is about a second: enough to see that requests flow with no errors
over TLS, that handshake mode really makes handshakes (the daemon counts
them), and that the server's certificate is verified: a wrong CA or a wrong
name fails every connection.
"""

import json
import os
import shutil
import subprocess

import pytest

from conftest import REPO, Daemon
from test_tls import make_ca, make_leaf

BENCH_BIN = os.path.abspath(os.environ.get("BENCH_BIN") or os.path.join(REPO, "build", "bench", "framed-bench"))

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed"),
    pytest.mark.skipif(not os.access(BENCH_BIN, os.X_OK),
                       reason="%s is not built (ninja -C build bench/framed-bench)" % BENCH_BIN),
]

# Seconds: a short window after a short warmup, and what a run may take at most
# (warmup + duration + the client's 2 s drain + its 3 s hard-deadline slack).
DURATION = "1"
WARMUP = "0.2"
RUN_TIMEOUT = 30


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("bench-pki"))
    make_ca(directory, "ca")
    make_ca(directory, "other_ca")
    make_leaf(directory, "server", "ca", "/CN=framed-bench-test",
              "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth")
    return directory


@pytest.fixture(scope="module")
def daemon(pki):
    daemon = Daemon([
        {"kind": "tcp", "name": "plain"},
        {"kind": "tcp", "name": "tls", "tls_cert": os.path.join(pki, "server.pem"),
         "tls_key": os.path.join(pki, "server.key")},
    ])
    daemon.start()
    yield daemon
    daemon.stop_cleanly()


def port(daemon, name):
    return str(daemon.address(name)[1][1])


def bench(daemon, listener, *args):
    """Runs framed-bench --json; returns (exit status, result dict or None, stderr)."""
    command = [BENCH_BIN, "--port", port(daemon, listener), "--duration", DURATION, "--warmup", WARMUP,
               "--json", *args]
    run = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    lines = run.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else None
    return run.returncode, result, run.stderr


def tls_handshakes(daemon):
    with daemon.connect("plain") as client:
        header, body = client.request({"cmd": "stats"})
    assert header.get("ok") is True, header
    return json.loads(body)["listeners"]["tls"]["tls_handshakes"]


@pytest.mark.parametrize("command", [["--command", "ping"], ["--command", "echo", "--size", "1024"]],
                         ids=["ping", "echo"])
def test_load_over_tls(daemon, pki, command):
    status, result, stderr = bench(daemon, "tls", "--tls", "--tls-ca", os.path.join(pki, "ca.pem"),
                                   "--connections", "4", "--pipeline", "8", *command)
    assert status == 0, stderr
    assert result["tls"] is True and result["mode"] == "load", result
    assert result["errors"] == 0, stderr
    assert result["requests"] > 0 and result["connected"] == 4, result


def test_handshake_mode_over_tls(daemon, pki):
    before = tls_handshakes(daemon)
    status, result, stderr = bench(daemon, "tls", "--tls", "--tls-ca", os.path.join(pki, "ca.pem"),
                                   "--server-name", "localhost", "--mode", "handshake", "--connections", "4")
    assert status == 0, stderr
    assert result["mode"] == "handshake" and result["errors"] == 0, (result, stderr)
    assert result["requests"] > 0 and result["handshakes_per_s"] > 0, result
    # Every cycle was a new connection with a full handshake, and the daemon saw each one.
    assert result["handshakes"] >= result["requests"], result
    assert tls_handshakes(daemon) - before >= result["handshakes"], result


def test_handshake_mode_in_plaintext(daemon):
    status, result, stderr = bench(daemon, "plain", "--mode", "handshake", "--connections", "4")
    assert status == 0, stderr
    assert result["tls"] is False and result["errors"] == 0, (result, stderr)
    assert result["requests"] > 0 and result["handshakes"] >= result["requests"], result


@pytest.mark.parametrize("verification, reason", [
    (["--tls-ca", "other_ca.pem"], "unable to get local issuer certificate"),
    (["--tls-ca", "ca.pem", "--server-name", "wrong.example"], "hostname mismatch"),
], ids=["wrong-ca", "wrong-name"])
def test_server_is_verified(daemon, pki, verification, reason):
    args = [os.path.join(pki, a) if a.endswith(".pem") else a for a in verification]
    for mode in ("load", "handshake"):
        status, result, stderr = bench(daemon, "tls", "--tls", *args, "--mode", mode, "--connections", "2")
        assert status == 1, (mode, result, stderr)
        assert result["errors"] >= 2 and result["requests"] == 0 and result["connected"] == 0, (mode, result)
        assert "certificate verify failed" in stderr and reason in stderr, stderr


def test_insecure_skips_verification(daemon, pki):
    # The throwaway-certificate case: no CA given, nothing checked.
    status, result, stderr = bench(daemon, "tls", "--tls", "--tls-insecure", "--connections", "2")
    assert status == 0 and result["errors"] == 0 and result["requests"] > 0, (result, stderr)
    # Without --tls-insecure the same certificate fails against the system store.
    status, result, stderr = bench(daemon, "tls", "--tls", "--connections", "1")
    assert status == 1 and result["requests"] == 0 and "certificate verify failed" in stderr, (result, stderr)

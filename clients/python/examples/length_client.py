#!/usr/bin/env python3
"""framed `length` framing client, written with Python's own length-prefixed
connection: multiprocessing.connection (send_bytes/recv_bytes, no authkey).

usage: length_client.py [HOST] [PORT]   (default 127.0.0.1 9001)

Needs a listener with framing = "length", which the built-in defaults do not
have: run  build/daemon/framed --config config/examples/framings.toml
(its length listener is 127.0.0.1:9001). HOST is IPv4 (or a name):
Client((host, port)) opens AF_INET sockets only; Client("/path/to.sock")
reaches a Unix stream `length` listener. Payloads are simple mode,
"COMMAND ARGUMENTS"; failures are "ERR code message".
"""
import sys
from multiprocessing.connection import Client

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9001
HINT = ("%s:%d does not speak the length framing (%s).\n"
        "Start framed with a length listener: build/daemon/framed --config config/examples/framings.toml")

try:
    connection = Client((host, port))
except ConnectionRefusedError:
    sys.exit(HINT % (host, port, "nothing listens there"))
with connection:
    for payload in (b"ping", b"upper hello, framed", b"nosuchcommand"):
        connection.send_bytes(payload)
        try:
            reply = connection.recv_bytes()
        except (EOFError, OSError):
            sys.exit(HINT % (host, port, "it closed the connection"))
        if reply.startswith(b'{"') and b'"error"' in reply:
            # A json listener read our u32 + "ping" as a header that is not JSON
            # and answered with a json error frame before closing.
            sys.exit(HINT % (host, port, "it answered with a json frame: " + reply.decode(errors="replace")))
        print(reply.decode())

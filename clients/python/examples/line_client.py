#!/usr/bin/env python3
r"""framed `line` framing client: one request per line, one reply per line.

usage: line_client.py [HOST] [PORT]   (default 127.0.0.1 9002)

Needs a listener with framing = "line", which the built-in defaults do not
have: run  build/daemon/framed --config config/examples/framings.toml
(its line listener is 127.0.0.1:9002). `nc HOST PORT` works the same.
Replies never contain a raw newline: a backslash, newline or carriage return
inside a reply arrives escaped as the two characters \\, \n, \r.
"""
import socket
import sys

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9002
HINT = ("%s:%d does not speak the line framing (%s).\n"
        "Start framed with a line listener: build/daemon/framed --config config/examples/framings.toml")

try:
    sock = socket.create_connection((host, port), timeout=5)
except ConnectionRefusedError:
    sys.exit(HINT % (host, port, "nothing listens there"))
with sock:
    # The third request is  echo two\nlines  with one real backslash in it; the
    # reply doubles it,  two\\nlines , so it is never mistaken for an escaped newline.
    sock.sendall(b"ping\r\nupper hello, framed\necho two\\nlines\n")
    replies = sock.makefile("rb")
    for _ in range(3):
        line = replies.readline()
        if not line.endswith(b"\n") or line.startswith(b"\0"):
            # A json listener took "ping" as a 4-byte header length and answered a
            # length-prefixed json error frame, then closed: no line at all.
            sys.exit(HINT % (host, port, "the reply is not a line: %r" % line[:120]))
        print(line.decode().rstrip("\n"))

#!/usr/bin/env python3
r"""framed `line` framing client: one request per line, one reply per line.

usage: line_client.py [HOST] [PORT]
Replies never contain a raw newline: a backslash, newline or carriage return
inside a reply arrives escaped as the two characters \\, \n, \r.
`nc HOST PORT` works the same.
"""
import socket
import sys

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9000

with socket.create_connection((host, port), timeout=5) as sock:
    # The third request is  echo two\nlines  with one real backslash in it; the
    # reply doubles it,  two\\nlines , so it is never mistaken for an escaped newline.
    sock.sendall(b"ping\r\nupper hello, framed\necho two\\nlines\n")
    replies = sock.makefile("rb")
    for _ in range(3):
        print(replies.readline().decode().rstrip("\n"))

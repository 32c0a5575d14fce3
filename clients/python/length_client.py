#!/usr/bin/env python3
"""framed `length` framing client, written with Python's own length-prefixed
connection: multiprocessing.connection (send_bytes/recv_bytes, no authkey).

usage: length_client.py [HOST] [PORT]
HOST is IPv4 (or a name): Client((host, port)) opens AF_INET sockets only.
Client("/path/to/listener.sock") reaches a Unix stream `length` listener.
Payloads are simple-mode: "COMMAND ARGUMENTS"; failures are "ERR code message".
"""
import sys
from multiprocessing.connection import Client

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9000

with Client((host, port)) as connection:
    for payload in (b"ping", b"upper hello, framed", b"nosuchcommand"):
        connection.send_bytes(payload)
        print(connection.recv_bytes().decode())

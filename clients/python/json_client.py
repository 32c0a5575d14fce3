#!/usr/bin/env python3
"""framed `json` framing client: u32 header length, JSON header, body.

usage: json_client.py [HOST] [PORT] [--little]   (default 127.0.0.1 9000)
Sends ping and `upper hello, framed`, prints each reply header and body.
"""
import json
import socket
import struct
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
host = args[0] if args else "127.0.0.1"
port = int(args[1]) if len(args) > 1 else 9000
prefix = "<I" if "--little" in sys.argv else ">I"   # big-endian unless the listener says little


def send(sock, header, body=b""):
    header = dict(header, total_size=len(body))
    encoded = json.dumps(header).encode()
    sock.sendall(struct.pack(prefix, len(encoded)) + encoded + body)


def read_exactly(sock, size):
    data = b""
    while len(data) < size:
        # Never ask recv for more than 64 KiB at once: it allocates what it is
        # asked for, and a length read in the wrong byte order can say 2 GB.
        chunk = sock.recv(min(size - len(data), 65536))
        if not chunk:
            raise ConnectionError("connection closed by framed")
        data += chunk
    return data


def receive(sock):
    (header_size,) = struct.unpack(prefix, read_exactly(sock, 4))
    header = json.loads(read_exactly(sock, header_size))
    return header, read_exactly(sock, header.get("total_size", 0))


with socket.create_connection((host, port), timeout=5) as sock:
    send(sock, {"cmd": "ping", "id": 1})
    send(sock, {"cmd": "upper", "id": 2}, b"hello, framed")  # pipelined: replies come in order
    for _ in range(2):
        header, body = receive(sock)
        print(json.dumps(header, sort_keys=True), body.decode(errors="replace"))

#!/usr/bin/env python3
"""A minimal framed client: json framing over TCP, standard library only.

Each frame is a 4-byte big-endian header length, a JSON header, then
header["total_size"] bytes of body. Usage: readme_client.py [PORT]
"""
import json
import socket
import struct
import sys


def request(sock, header, body=b""):
    header = dict(header, total_size=len(body))
    raw = json.dumps(header).encode()
    sock.sendall(struct.pack(">I", len(raw)) + raw + body)
    return read_reply(sock)


def read_exact(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def read_reply(sock):
    (length,) = struct.unpack(">I", read_exact(sock, 4))
    header = json.loads(read_exact(sock, length))
    return header, read_exact(sock, header.get("total_size", 0))


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
    print(request(sock, {"cmd": "ping", "id": 1}))
    print(request(sock, {"cmd": "upper", "id": 2}, b"hello, framed"))

#!/usr/bin/env python3
"""framed `datagram` client over UDP: one datagram in, one datagram back.

usage: udp_client.py [HOST] [PORT] [TEXT]
With payload = "text" the datagram is "COMMAND ARGUMENTS" (or, on a listener
with command = "upper", just the text); the reply is the output.
"""
import socket
import sys

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9000
text = sys.argv[3] if len(sys.argv) > 3 else "upper hello, framed"

family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_DGRAM) as sock:
    sock.settimeout(5)
    sock.sendto(text.encode(), (host, port))
    reply, _ = sock.recvfrom(65535)
    print(reply.decode())

#!/usr/bin/env python3
"""framed `datagram` client over a Unix datagram socket.

usage: unix_dgram_client.py SOCKET_PATH [TEXT]
A Unix datagram client must bind an address of its own, or framed has
nowhere to send the reply.
"""
import os
import socket
import sys
import tempfile

server_path = sys.argv[1]
text = sys.argv[2] if len(sys.argv) > 2 else "upper hello, framed"

with tempfile.TemporaryDirectory() as directory, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
    sock.bind(os.path.join(directory, "client.sock"))
    sock.settimeout(5)
    sock.sendto(text.encode(), server_path)
    print(sock.recv(65535).decode())

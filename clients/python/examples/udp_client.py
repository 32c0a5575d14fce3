#!/usr/bin/env python3
"""framed `datagram` client over UDP, using the framed module: one datagram
in, one datagram back.

usage: udp_client.py [HOST] [PORT] [TEXT]   (default 127.0.0.1 9000 "upper hello, framed")

Works against framed's built-in defaults: the UDP listener on 127.0.0.1:9000
takes text datagrams, "COMMAND ARGUMENTS" (on a listener with
command = "upper", just the text). Prints the reply.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import framed  # noqa: E402  (or: pip install ./clients/python)

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9000
text = sys.argv[3] if len(sys.argv) > 3 else "upper hello, framed"

try:
    with framed.DatagramClient.udp(host, port, timeout=5) as client:
        print(client.command(text).decode(errors="replace"))
except framed.ClientTimeoutError:
    sys.exit("no answer from udp %s:%d: is framed running (build/daemon/framed)?" % (host, port))
except framed.ConnectionClosedError:
    sys.exit("nothing listens on udp %s:%d: start framed first (build/daemon/framed)" % (host, port))
except framed.Error as error:
    sys.exit(str(error))

#!/usr/bin/env python3
"""framed `datagram` client over a Unix datagram socket, using the framed module.

usage: unix_dgram_client.py [SOCKET_PATH] [TEXT]   (default /tmp/framed-examples.dgram)

The built-in defaults have no Unix datagram listener: run
  build/daemon/framed --config config/examples/framings.toml
which listens on /tmp/framed-examples.dgram. The client binds a path of its
own (in a private temporary directory), or framed has nowhere to answer.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import framed  # noqa: E402  (or: pip install ./clients/python)

server_path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/framed-examples.dgram"
text = sys.argv[2] if len(sys.argv) > 2 else "upper hello, framed"

try:
    with framed.DatagramClient.unix(server_path, timeout=5) as client:
        print(client.command(text).decode(errors="replace"))
except (FileNotFoundError, ConnectionRefusedError, framed.ConnectionClosedError):
    sys.exit("nothing listens at %s: build/daemon/framed --config config/examples/framings.toml" % server_path)
except framed.Error as error:
    sys.exit(str(error))

#!/usr/bin/env python3
"""framed `json` framing client, using the framed module (clients/python/framed.py).

usage: json_client.py [HOST] [PORT] [--little]   (default 127.0.0.1 9000)

Works against framed's built-in defaults (`build/daemon/framed`, no config):
the TCP listener on 127.0.0.1:9000 speaks json framing. Sends ping and
`upper hello, framed` pipelined, prints each reply header (as JSON) and body.
--little is for a listener configured with byte_order = "little".
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import framed  # noqa: E402  (or: pip install ./clients/python)

args = [a for a in sys.argv[1:] if not a.startswith("--")]
host = args[0] if args else "127.0.0.1"
port = int(args[1]) if len(args) > 1 else 9000
byte_order = "little" if "--little" in sys.argv else "big"

try:
    with framed.Client.tcp(host, port, timeout=5, byte_order=byte_order) as client:
        with client.pipeline() as batch:      # both sent at once; replies come in order
            batch.request("ping")
            batch.request("upper", b"hello, framed")
        for reply in batch.replies:
            print(json.dumps(reply.header, sort_keys=True), reply.body.decode(errors="replace"))
except ConnectionRefusedError:
    sys.exit("nothing listens on %s:%d: start framed first (build/daemon/framed)" % (host, port))
except framed.Error as error:
    sys.exit("%s\n(is %s:%d a json listener with byte_order = %r?)" % (error, host, port, byte_order))

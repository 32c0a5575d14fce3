#!/usr/bin/env python3
"""Reads a framed pub/sub channel and prints every message, using the framed module.

usage: chat_reader.py [HOST] [PORT] [CHANNEL] [--count N]   (default 127.0.0.1 9000 lobby)

Subscribes over a json stream listener (the built-in TCP default on
127.0.0.1:9000 is one; config/examples/tutorial-udp-chat.toml puts the
readers on 9001) and prints each message as it is published, from any
transport: `printf 'publish lobby hi' | socat - UDP:127.0.0.1:9000`.
With --count N it exits after N messages (else at Ctrl-C).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import framed  # noqa: E402  (or: pip install ./clients/python)

args = sys.argv[1:]
count = None
if "--count" in args:
    where = args.index("--count")
    count = int(args[where + 1])
    del args[where:where + 2]
host = args[0] if args else "127.0.0.1"
port = int(args[1]) if len(args) > 1 else 9000
channel = args[2] if len(args) > 2 else "lobby"

try:
    with framed.Client.tcp(host, port, timeout=None) as client:
        seen = 0
        events = client.subscribe(channel)     # returns once the daemon confirmed it
        print("subscribed to %s" % channel, flush=True)
        for event in events:
            if isinstance(event, framed.Message):
                print("[%s] %s" % (event.channel, event.data.decode(errors="replace")), flush=True)
                seen += 1
                if count is not None and seen >= count:
                    break
except ConnectionRefusedError:
    sys.exit("nothing listens on %s:%d: start framed first" % (host, port))
except framed.Error as error:
    sys.exit("%s\n(is %s:%d a json listener?)" % (error, host, port))
except KeyboardInterrupt:
    pass

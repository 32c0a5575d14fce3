"""The worked examples of docs/protocol.md section 5 are what the daemon says:
each code block is replayed on one json connection, every `→` line sent as
its bytes, and the `←` lines after it compared byte for byte with the reply
(only `mtime`, which changes from run to run, is left out of the comparison)."""

import os
import re

from conftest import REPO, Daemon, toml_value

DOC = os.path.join(REPO, "docs", "protocol.md")

# The command the examples use, exactly as the doc shows it.
GREET_ARGV = ["/bin/sh", "-c", "echo hello \"$@\"; echo warn >&2; exit 2", "sh"]


def unescape(text):
    """The doc's notation: \\xNN one byte, \\n \\r, \\\\ one backslash, \\" a JSON escape."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            mark = text[i + 1]
            if mark == "x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            if mark in "nr":
                out.append(10 if mark == "n" else 13)
                i += 2
                continue
            if mark == "\\":
                out.append(0x5C)
                i += 2
                continue
            if mark == '"':
                out += b'\\"'
                i += 2
                continue
        out += text[i].encode()
        i += 1
    return bytes(out)


def section_5_blocks():
    with open(DOC, encoding="utf-8") as doc:
        text = doc.read()
    section = text.split("## 5. Commands", 1)[1].split("## 6. Events", 1)[0]
    blocks, block = [], None
    for line in section.splitlines():
        if line.startswith("```"):
            if block is None:
                block = []
            else:
                blocks.append("\n".join(block))
                block = None
        elif block is not None:
            block.append(line)
    conversations = []
    for block in blocks:
        steps = []
        for line in block.splitlines():
            match = re.match(r"^([→←]) (\\x00\S*.*)$", line)
            if not match or "..." in line:
                continue
            if match.group(1) == "→":
                steps.append((unescape(match.group(2)), b""))
            elif steps:
                sent, expected = steps[-1]
                steps[-1] = (sent, expected + unescape(match.group(2)))
        if steps:
            conversations.append(steps)
    return conversations


def without_mtime(data):
    return re.sub(rb'"mtime":\d+', b'"mtime":0', data)


def test_section_5_examples_are_what_the_daemon_answers(tmp_path):
    root = tmp_path / "files"
    root.mkdir()
    daemon = Daemon([{"kind": "tcp", "name": "json"}], daemon={"workers": 1})
    with open(daemon.config_path, "a") as config:
        config.write('\n[files]\nroot = %s\nfsync = false\n\n[commands.greet]\nargv = %s\nallow_args = true\n'
                     % (toml_value(str(root)), toml_value(GREET_ARGV)))
    try:
        daemon.start()
        conversations = section_5_blocks()
        assert len(conversations) >= 10, "the doc's examples were not found: %d blocks" % len(conversations)
        checked = 0
        for steps in conversations:
            with daemon.connect("json") as client:
                for sent, expected in steps:
                    client.send(sent)
                    if expected:
                        got = client.read_exact(len(expected))
                        assert without_mtime(got) == without_mtime(expected), (sent, got, expected)
                        checked += 1
        assert checked >= 15, checked
    finally:
        daemon.cleanup()

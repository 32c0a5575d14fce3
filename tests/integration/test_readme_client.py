"""The example client pasted into README.md works against the real daemon."""

import ast
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_readme_client(std):
    _, (host, port) = std.address("tcp4")
    result = subprocess.run([sys.executable, os.path.join(HERE, "readme_client.py"), str(port)],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    ping_header, ping_body = ast.literal_eval(lines[0])
    assert ping_header.get("ok") is True and ping_header.get("pong") is True and ping_header.get("id") == 1
    assert ping_body == b""
    upper_header, upper_body = ast.literal_eval(lines[1])
    assert upper_header.get("ok") is True and upper_header.get("id") == 2
    assert upper_body == b"HELLO, FRAMED"


def test_readme_client_is_short_and_stdlib_only():
    with open(os.path.join(HERE, "readme_client.py")) as source:
        text = source.read()
    tree = ast.parse(text)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"json", "socket", "struct", "sys"}, imported
    assert len(text.splitlines()) <= 45


def test_readme_shows_this_exact_client():
    with open(os.path.join(HERE, "readme_client.py")) as source:
        client = source.read()
    with open(os.path.join(HERE, "..", "..", "README.md")) as readme:
        text = readme.read()
    assert "```python\n" + client + "```" in text, "README.md's client differs from readme_client.py"

#!/usr/bin/env bash
# The README's first command: install what is missing, build the daemon
# (only the daemon: the tests are built by scripts/test.sh), and run it in
# the foreground on its built-in defaults (TCP and UDP on 127.0.0.1:9000).
# Extra arguments go to framed, e.g. --config FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "== building the daemon in build/ (a few minutes the first time on 2 cores; ninja shows its progress)"
scripts/configure.sh build
ninja -C build daemon/framed
echo "== starting build/daemon/framed $* (Ctrl-C stops it)"
exec build/daemon/framed "$@"

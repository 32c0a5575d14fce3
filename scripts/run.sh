#!/usr/bin/env bash
# The README's first command: install what is missing, build the daemon
# (only the daemon: the tests are built by scripts/test.sh), and run it in
# the foreground on its built-in defaults (TCP and UDP on 127.0.0.1:9000).
# Extra arguments go to framed, e.g. --config FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --build-only
echo "== building the daemon in build/ (about 3 minutes the first time on 2 cores; ninja shows its progress)"
# A fresh build/ leaves the tests out (they need more packages); one that
# scripts/test.sh configured keeps them.
if [ -f build/build.ninja ]; then scripts/configure.sh build; else scripts/configure.sh build -Dtests=false; fi
ninja -C build daemon/framed
echo "== starting build/daemon/framed $* (Ctrl-C stops it)"
exec build/daemon/framed "$@"

#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the
# daemon in the foreground on its built-in defaults (TCP and UDP on
# 127.0.0.1:9000). Extra arguments go to framed, e.g. --config FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build >/dev/null
exec build/daemon/framed "$@"

#!/usr/bin/env bash
# Configures (once) and builds framed in build/ (or the directory given).
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=${1:-build}
shift || true
[ -f "$builddir/build.ninja" ] || meson setup "$builddir" "$@" >/dev/null
ninja -C "$builddir"

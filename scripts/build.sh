#!/usr/bin/env bash
# Configures (scripts/configure.sh: warnings are errors) and builds framed in
# build/ (or the directory given); options after the directory go to meson.
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=${1:-build}
shift || true
scripts/configure.sh "$builddir" "$@"
ninja -C "$builddir"

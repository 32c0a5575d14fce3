#!/usr/bin/env bash
# Configures build/ (or the directory given) for the project's own builds:
# the meson options given after the directory, plus warnings as errors.
# meson.build leaves werror off so that a packager's compiler or flags never
# fail a build on a warning; here every warning must be fixed. A directory
# configured before is reconfigured with the same options.
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=${1:-build}
shift || true
if [ -f "$builddir/build.ninja" ]; then
  meson configure "$builddir" -Dwerror=true "$@" >/dev/null
else
  meson setup "$builddir" -Dwerror=true "$@" >/dev/null
fi

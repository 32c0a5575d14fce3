#!/usr/bin/env bash
# Builds framed for installation and installs it: the daemon in
# PREFIX/sbin, the units in PREFIX/lib/systemd/system, the config in
# /etc/framed (an edited framed.toml is kept), man pages and docs.
#   scripts/install.sh                   # PREFIX=/usr/local
#   scripts/install.sh --prefix=/opt/framed
# Uses its own build directory, build-install/, so a prefix given here is
# never lost to a build/ configured before. Calls sudo for the install step
# when not run as root. Uninstall: sudo ninja -C build-install uninstall
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local
for arg in "$@"; do
  case $arg in
    --prefix=*) prefix=${arg#--prefix=} ;;
    *) echo "usage: scripts/install.sh [--prefix=DIR]" >&2; exit 2 ;;
  esac
done
scripts/install-deps.sh --build-only
options=(--prefix="$prefix" --sysconfdir=/etc --localstatedir=/var -Dtests=false --buildtype=release)
if [ -f build-install/build.ninja ]; then
  meson setup --reconfigure build-install "${options[@]}" >/dev/null
else
  meson setup build-install "${options[@]}" >/dev/null
fi
echo "== building framed in build-install/ (prefix $prefix)"
ninja -C build-install
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
"${sudo[@]}" meson install -C build-install --no-rebuild
if [ -d /run/systemd/system ]; then
  "${sudo[@]}" systemctl daemon-reload
  echo "== installed; start it with: systemctl enable --now framed"
fi

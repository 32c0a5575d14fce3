#!/bin/sh
# meson install step: puts the example config in place as the live config
# only where there is none yet. An operator's edited framed.toml is never
# overwritten; the new example always lands beside it as framed.toml.example.
# Honours DESTDIR (packaging) through MESON_INSTALL_DESTDIR_PREFIX.
set -eu
sysconfdir=$1  # absolute
dest="${DESTDIR:-}${sysconfdir}/framed"
if [ ! -e "$dest/framed.toml" ]; then
  cp "$dest/framed.toml.example" "$dest/framed.toml"
  chmod 0644 "$dest/framed.toml"
  echo "Installing $dest/framed.toml (from the example)"
else
  echo "Keeping $dest/framed.toml (the new example is $dest/framed.toml.example)"
fi

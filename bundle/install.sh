#!/usr/bin/env bash
# Copies the bundle into the OpenFX plugin folder hosts scan: the first entry of $OFX_PLUGIN_PATH if set,
# else /usr/OFX/Plugins (Resolve and Natron on Linux). Run bundle/make-bundle.sh --release first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/target/bundle/SvdInbetween.ofx.bundle"
[ -d "$src" ] || { echo "install: $src missing; run bundle/make-bundle.sh --release first" >&2; exit 2; }
dest="${OFX_PLUGIN_PATH:-/usr/OFX/Plugins}"
dest="${dest%%:*}"
mkdir -p "$dest"
rm -rf "$dest/SvdInbetween.ofx.bundle"
cp -r "$src" "$dest/"
echo "installed $dest/SvdInbetween.ofx.bundle"

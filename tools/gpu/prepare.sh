#!/usr/bin/env bash
# Here (no GPU): packs what a GPU session needs into .gpu/ (git-ignored): the stripped release CLI and the
# onnxruntime-gpu 1.31.1 libraries as zstd parts small enough to carry one per device call (the device machine
# cannot download anything; each call carries at most 64 MiB with the working tree). See tools/gpu/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup.sh
. scripts/setup-ort-gpu.sh
_excl="$(git rev-parse --git-path info/exclude)"; mkdir -p "$(dirname "$_excl")"
grep -qx "/.gpu/" "$_excl" 2>/dev/null || echo "/.gpu/" >> "$_excl"
rm -rf .gpu && mkdir -p .gpu
cargo build -q --release --bin svd-inbetween
strip -o .gpu/svd-inbetween target/release/svd-inbetween
_libs="$(dirname "$SVD_INBETWEEN_ORT_GPU_LIB")"
tar -C "$_libs" -cf - libonnxruntime.so.1.31.1 libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so \
  | zstd -q -T0 -19 | split -b 45m -d - .gpu/ort.part-
(cd .gpu && sha256sum ort.part-* > ort.sha256)
# the device image has no zstd command (seen 2026-12-04); this one is linked only against libc, zlib, lzma and lz4
cp "$(command -v zstd)" .gpu/zstd
# the package without its diffusers source (what on-device.sh runs) and the diffusers folder to train on (the
# package's source/ without reverse_unet/): each larger than one call may carry since the UNet was widened
# (85 and 81 MB), so parts too; float weights barely compress, hence the fast level
pack() { # NAME DIR [tar options]: DIR's contents as .gpu/NAME.part-NN
  local name="$1" dir="$2"; shift 2
  tar -C "$dir" "$@" -cf - . | zstd -q -T0 -3 | split -b 45m -d - ".gpu/$name.part-"
}
pack tiny models/tiny --exclude=./source
pack init models/tiny/source --exclude=./reverse_unet
(cd .gpu && sha256sum tiny.part-* init.part-* > packs.sha256)
echo "parts:" && ls -l .gpu

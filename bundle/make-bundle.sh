#!/usr/bin/env bash
# Builds the plugin and assembles a standard OpenFX bundle:
#   target/bundle/SvdInbetween.ofx.bundle/Contents/
#     Info.plist
#     Linux-x86-64/SvdInbetween.ofx                 the plugin (our cdylib)
#     Linux-x86-64/lib/libonnxruntime.so.1.31.1     ONNX Runtime (+ its provider libraries), found by the plugin
#     Resources/models/tiny/                        the embedded demo model (tiny, trained on a procedural sprite world)
#
# usage: bundle/make-bundle.sh [--release] [--ort-dir DIR] [--no-models]
#   --ort-dir DIR  folder holding libonnxruntime.so.1.31.1 (default: the folder of $SVD_INBETWEEN_ORT_LIB, set by
#                  scripts/setup.sh, else the onnxruntime of the project venv; for CUDA use the onnxruntime-gpu
#                  wheel's onnxruntime/capi folder)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
profile=debug; cargo_flags=(); ort_dir=""; models=1
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release; cargo_flags+=(--release) ;;
    --ort-dir) ort_dir="$2"; shift ;;
    --no-models) models=0 ;;
    *) echo "make-bundle: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
cargo build -q -p svd-inbetween --lib "${cargo_flags[@]}"
version="$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)"
b="target/bundle/SvdInbetween.ofx.bundle/Contents"
rm -rf target/bundle/SvdInbetween.ofx.bundle
mkdir -p "$b/Linux-x86-64/lib" "$b/Resources"
sed "s/@VERSION@/$version/g" bundle/Info.plist.in > "$b/Info.plist"
cp "target/$profile/libsvd_inbetween.so" "$b/Linux-x86-64/SvdInbetween.ofx"

if [ -z "$ort_dir" ] && [ -n "${SVD_INBETWEEN_ORT_LIB:-}" ] && [ -e "$SVD_INBETWEEN_ORT_LIB" ]; then
  ort_dir="$(dirname "$SVD_INBETWEEN_ORT_LIB")"
fi
if [ -z "$ort_dir" ]; then
  py="${SVD_INBETWEEN_PYTHON:-$HOME/.cache/svd-inbetween/venv/bin/python}"
  ort_dir="$("$py" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))' 2>/dev/null || true)"
fi
if [ -n "$ort_dir" ] && [ -e "$ort_dir/libonnxruntime.so.1.31.1" ]; then
  # The runtime and every provider library beside it (providers_shared, and providers_cuda from the GPU wheel):
  # ONNX Runtime loads providers from its own folder.
  cp "$ort_dir"/libonnxruntime.so.1.31.1 "$b/Linux-x86-64/lib/"
  for f in "$ort_dir"/libonnxruntime_providers_*.so; do [ -e "$f" ] && cp "$f" "$b/Linux-x86-64/lib/"; done
else
  echo "make-bundle: no ONNX Runtime 1.31.1 found (pass --ort-dir); the plugin will look for a pip-installed one" >&2
fi
if [ "$models" = 1 ]; then
  mkdir -p "$b/Resources/models/tiny"
  cp models/tiny/manifest.json models/tiny/*.onnx "$b/Resources/models/tiny/"
fi
echo "$root/target/bundle/SvdInbetween.ofx.bundle"

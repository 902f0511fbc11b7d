#!/usr/bin/env bash
# Set-up of the main job (scripts/demo.sh: the bundle, the demo, the CLI on the embedded models), idempotent, on a
# fresh Debian/Ubuntu x86-64 machine that has Rust (rustup) and Python 3:
#   - libclang: bindgen reads our OFX header with it. Checked with bindgen's own search rules
#     (scripts/lib/libclang.sh), installed as libclang-dev when bindgen would find none;
#   - ONNX Runtime 1.31.1 (CPU): the shared libraries taken from the onnxruntime wheel (~24 MB download), kept in
#     ${SVD_INBETWEEN_ORT_DIR:-~/.cache/svd-inbetween/onnxruntime-1.31.1}. No torch, no venv.
#   - nothing for Rust beyond the toolchain: cargo fetches crates itself.
# The test/exporter stack (torch, diffusers, ...) is scripts/setup-dev.sh, used by scripts/test.sh only.
# Source it (". scripts/setup.sh") to get SVD_INBETWEEN_ORT_LIB exported.
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$_root/scripts/lib/apt.sh"
. "$_root/scripts/lib/libclang.sh"
. "$_root/scripts/lib/wheel.sh"

if ! command -v cargo >/dev/null 2>&1; then
  echo "[setup] cargo not found: install Rust (https://rustup.rs), version 1.92 or newer" >&2
  exit 1
fi

if ! svd_find_libclang >/dev/null; then
  echo "[setup] bindgen would find no libclang (libclang.so*, libclang-*.so*; libclang-cpp does not count)" >&2
  svd_apt_install libclang-dev
  svd_find_libclang >/dev/null || { echo "[setup] libclang-dev installed but bindgen still finds no libclang; set LIBCLANG_PATH" >&2; exit 1; }
fi
echo "[setup] libclang: $(svd_find_libclang)" >&2

export SVD_INBETWEEN_ORT_DIR="${SVD_INBETWEEN_ORT_DIR:-$HOME/.cache/svd-inbetween/onnxruntime-1.31.1}"
if [ ! -f "$SVD_INBETWEEN_ORT_DIR/libonnxruntime.so.1.31.1" ]; then
  echo "[setup] fetching ONNX Runtime 1.31.1 (the onnxruntime wheel's libraries only, ~24 MB)" >&2
  # Fixed wheel tags: the C library is the same for every Python, so any python3 with pip will do, and every
  # machine gets the same file.
  svd_wheel_libs onnxruntime==1.31.1 "$SVD_INBETWEEN_ORT_DIR" --python-version 3.11 --platform manylinux_2_28_x86_64
fi
export SVD_INBETWEEN_ORT_LIB="$SVD_INBETWEEN_ORT_DIR/libonnxruntime.so.1.31.1"
echo "[setup] onnxruntime: $SVD_INBETWEEN_ORT_LIB" >&2

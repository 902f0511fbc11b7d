#!/usr/bin/env bash
# Installs everything the build, the demo and the tests need on a fresh Debian/Ubuntu machine, idempotently:
#   - libclang (bindgen reads our OFX headers with it),
#   - a Python venv with the pinned exporter/reference stack (torch CPU use, diffusers, onnx, onnxruntime),
#     re-used while tools/requirements.txt is unchanged,
#   - nothing for Rust beyond the toolchain: cargo fetches crates itself.
# Source it (". scripts/setup.sh") to get SVD_INBETWEEN_PYTHON and SVD_INBETWEEN_ORT_LIB exported.
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && ! ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
  echo "[setup] installing libclang-dev (needed by bindgen)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libclang-dev >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq libclang-dev >/dev/null; fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "[setup] cargo not found: install Rust (https://rustup.rs), version 1.92 or newer" >&2
  exit 1
fi

export SVD_INBETWEEN_VENV="${SVD_INBETWEEN_VENV:-$HOME/.cache/svd-inbetween/venv}"
_req="$_root/tools/requirements.txt"
_stamp="$SVD_INBETWEEN_VENV/.requirements.sha256"
_want="$(sha256sum "$_req" | cut -d' ' -f1)"
if [ ! -x "$SVD_INBETWEEN_VENV/bin/python" ] || [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ]; then
  echo "[setup] creating Python venv at $SVD_INBETWEEN_VENV (first time: downloads ~3 GB, a few minutes)" >&2
  python3 -m venv "$SVD_INBETWEEN_VENV"
  "$SVD_INBETWEEN_VENV/bin/pip" install -q --upgrade pip
  "$SVD_INBETWEEN_VENV/bin/pip" install -q -r "$_req"
  echo "$_want" > "$_stamp"
fi
export SVD_INBETWEEN_PYTHON="$SVD_INBETWEEN_VENV/bin/python"
SVD_INBETWEEN_ORT_LIB="$("$SVD_INBETWEEN_PYTHON" -c 'import onnxruntime, os, glob; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so.*")))[-1])')"
export SVD_INBETWEEN_ORT_LIB
echo "[setup] python: $SVD_INBETWEEN_PYTHON" >&2
echo "[setup] onnxruntime: $SVD_INBETWEEN_ORT_LIB" >&2

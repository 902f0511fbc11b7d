#!/usr/bin/env bash
# Set-up of the test command (scripts/test.sh) and the Python tools (exporter, reference, training), on top of
# scripts/setup.sh (source that first), idempotent:
#   - the rustup components rustfmt and clippy (the house rules are checked by the tests);
#   - valgrind (the memory check of a host scenario);
#   - a Python venv with the pinned exporter/reference stack (torch CPU use, diffusers, onnx, onnxruntime, pytest)
#     at ${SVD_INBETWEEN_VENV:-~/.cache/svd-inbetween/venv}, re-used while tools/requirements.txt is unchanged
#     (first time: ~3 GB of wheels, PyPI's torch pulls its CUDA libraries).
# Exports SVD_INBETWEEN_VENV and SVD_INBETWEEN_PYTHON.
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$_root/scripts/lib/apt.sh"

for _c in rustfmt clippy; do
  if ! cargo "${_c#rust}" --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 || { echo "[setup] cargo $_c missing and no rustup to add it" >&2; exit 1; }
    echo "[setup] rustup component add $_c" >&2
    rustup component add "$_c" >/dev/null
  fi
done

command -v valgrind >/dev/null 2>&1 || svd_apt_install valgrind

export SVD_INBETWEEN_VENV="${SVD_INBETWEEN_VENV:-$HOME/.cache/svd-inbetween/venv}"
_req="$_root/tools/requirements.txt"
_stamp="$SVD_INBETWEEN_VENV/.requirements.sha256"
_want="$(sha256sum "$_req" | cut -d' ' -f1)"
if [ ! -x "$SVD_INBETWEEN_VENV/bin/python" ] || [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ]; then
  # The pinned stack has wheels for CPython 3.11+ only (numpy 2.4, onnxruntime 1.31).
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "[setup] Python 3.11 or newer needed for the test stack, found $(python3 --version 2>&1)" >&2; exit 1; }
  python3 -c 'import ensurepip' 2>/dev/null || svd_apt_install python3-venv
  echo "[setup] creating Python venv at $SVD_INBETWEEN_VENV (first time: downloads ~3 GB, a few minutes)" >&2
  python3 -m venv "$SVD_INBETWEEN_VENV"
  "$SVD_INBETWEEN_VENV/bin/pip" install -q --upgrade pip
  "$SVD_INBETWEEN_VENV/bin/pip" install -q -r "$_req"
  echo "$_want" > "$_stamp"
fi
export SVD_INBETWEEN_PYTHON="$SVD_INBETWEEN_VENV/bin/python"
echo "[setup] python: $SVD_INBETWEEN_PYTHON" >&2

#!/usr/bin/env bash
# The CUDA build of ONNX Runtime (onnxruntime-gpu 1.31.1 wheel, ~256 MB download once) for the tests of the CUDA
# paths that can run without a GPU: registration failing with the real provider library, the reason reported, the
# CPU fallback. Only its shared libraries are kept. Source it after scripts/setup.sh; exports
# SVD_INBETWEEN_ORT_GPU_LIB.
set -euo pipefail
_dir="${SVD_INBETWEEN_ORT_GPU_DIR:-$HOME/.cache/svd-inbetween/onnxruntime-gpu-1.31.1}"
if [ ! -f "$_dir/libonnxruntime_providers_cuda.so" ]; then
  echo "[setup] fetching onnxruntime-gpu 1.31.1 (CUDA provider libraries for the fallback tests)" >&2
  _tmp="$(mktemp -d)"
  "$SVD_INBETWEEN_VENV/bin/pip" download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 onnxruntime-gpu==1.31.1 -d "$_tmp"
  mkdir -p "$_dir.partial"
  "$SVD_INBETWEEN_PYTHON" - "$_tmp" "$_dir.partial" <<'PY'
import glob, os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(src, "onnxruntime_gpu-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime"):
            with z.open(name) as f, open(os.path.join(dst, base), "wb") as out:
                out.write(f.read())
            os.chmod(os.path.join(dst, base), 0o755)
PY
  rm -rf "$_tmp" "$_dir"
  mv "$_dir.partial" "$_dir"
fi
export SVD_INBETWEEN_ORT_GPU_LIB="$_dir/libonnxruntime.so.1.31.1"
echo "[setup] onnxruntime-gpu: $SVD_INBETWEEN_ORT_GPU_LIB" >&2

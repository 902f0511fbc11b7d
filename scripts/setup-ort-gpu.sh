#!/usr/bin/env bash
# The CUDA build of ONNX Runtime (onnxruntime-gpu 1.31.1 wheel, ~256 MB download once) for the tests of the CUDA
# paths that can run without a GPU: registration failing with the real provider library, the reason reported, the
# CPU fallback. Only its shared libraries are kept (no venv needed). Source it; exports SVD_INBETWEEN_ORT_GPU_LIB.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/wheel.sh"
_dir="${SVD_INBETWEEN_ORT_GPU_DIR:-$HOME/.cache/svd-inbetween/onnxruntime-gpu-1.31.1}"
if [ ! -f "$_dir/libonnxruntime_providers_cuda.so" ]; then
  echo "[setup] fetching onnxruntime-gpu 1.31.1 (CUDA provider libraries for the fallback tests)" >&2
  svd_wheel_libs onnxruntime-gpu==1.31.1 "$_dir" --python-version 3.11 --platform manylinux_2_28_x86_64
fi
export SVD_INBETWEEN_ORT_GPU_LIB="$_dir/libonnxruntime.so.1.31.1"
echo "[setup] onnxruntime-gpu: $SVD_INBETWEEN_ORT_GPU_LIB" >&2

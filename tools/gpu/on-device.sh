#!/usr/bin/env bash
# There (the device machine, with the parts carried into /tmp/parts by earlier calls, see README.md): unpacks
# ONNX Runtime's CUDA build, points it at the CUDA 13 / cuDNN 9 pip libraries of the machine's Python, and runs
# the GPU checks: doctor (kernel placement), CUDA vs CPU latents, host vs device loop timings. Everything it
# prints is also written to $OUT. Steps continue after a failure so one run reports as much as it can.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-/tmp/gpu-out}"; mkdir -p "$out"
exec > >(tee "$out/gpu-session.log") 2>&1
parts="${SVD_INBETWEEN_PARTS:-/tmp/parts}"
ort=/tmp/ort-gpu
step() { echo; echo "== $*"; }

unpack() { # NAME SUMS DEST: checks $parts/NAME.part-* against their lines in SUMS (prepare.sh's), unpacks to DEST
  (cd "$parts" && grep " $1\.part-" "$OLDPWD/$2" | sha256sum -c) || echo "WARNING: $1 parts missing or damaged"
  mkdir -p "$3" && cat "$parts/$1".part-* | zstd -d -q | tar -C "$3" -xf - && ls -l "$3"
}

step "machine"; date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
step "unpack onnxruntime-gpu"
cp -n .gpu/ort.part-* "$parts"/ 2>/dev/null || true
unpack ort .gpu/ort.sha256 "$ort"
step "unpack the package (models/tiny, carried as parts: it is larger than one call)"
unpack tiny .gpu/packs.sha256 models/tiny
site="$(python3 -c 'import os, nvidia; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)"
for d in "$site/nvidia/cu13/lib" "$site/nvidia/cudnn/lib"; do [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; done
export LD_LIBRARY_PATH SVD_INBETWEEN_ORT_LIB="$ort/libonnxruntime.so.1.31.1"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
cli=.gpu/svd-inbetween

step "doctor --device cuda (expects 'CUDA verified')"
$cli doctor --models models/tiny --device cuda; echo "rc=$?"
step "doctor --device cuda --sampler host"
$cli doctor --models models/tiny --device cuda --sampler host; echo "rc=$?"

gen() { # out-name, extra args
  local name="$1"; shift
  $cli generate --models models/tiny --from assets/keyframes/a.png --to assets/keyframes/b.png --seed 7 \
    --out "$out/$name" "$@" 2>"$out/$name.err"; local rc=$?; echo "$name rc=$rc"; tail -n 2 "$out/$name.err"
}
step "CUDA vs CPU, same seed (paper defaults)"
gen cpu --device cpu
gen cuda-device --device cuda --sampler device
gen cuda-host --device cuda --sampler host
python3 - "$out" <<'PY'
import json, sys, numpy as np
out = sys.argv[1]
def load(n):
    try: return np.load(f"{out}/{n}/latents.npy"), json.load(open(f"{out}/{n}/summary.json"))
    except Exception as e: print(n, "missing:", e); return None, None
cpu, _ = load("cpu")
for n in ("cuda-device", "cuda-host"):
    l, s = load(n)
    if l is None: continue
    print(f"{n}: provider {s['provider']['provider']}, latents on {s['latents_on']}, denoise {s['seconds']['denoise']:.2f} s "
          f"({1000*s['seconds']['denoise']/s['unet_calls']:.1f} ms/call)"
          + ("" if cpu is None else f", latents vs CPU max abs {np.abs(l-cpu).max():.3e} (|z| max {np.abs(cpu).max():.2f})"))
PY
step "host vs device loop on CUDA, 3 runs interleaved"
SVD_INBETWEEN_PYTHON=python3 bash tools/bench/bench.sh 3 cuda --prebuilt "$cli"
echo; echo "done: $out"

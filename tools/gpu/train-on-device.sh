#!/usr/bin/env bash
# There (the device machine), started in the background by the first call of a GPU session (see README.md): trains
# the tiny model on the GPU while later calls carry the ONNX Runtime parts. Works from a private copy in /tmp/gt, since
# each call replaces the repo copy. Stages: the carried wheels (diffusers is not in the image), a latent pool encoded
# by parallel processes (the world is drawn on the CPU, ~30 ms a clip), the UNet trained on from the carried
# --init folder for a wall-clock budget, Algorithm 1 on the result, and the outputs packed in parts small enough to
# come back (16 MiB a file). Writes /tmp/gt/done (or /tmp/gt/failed) when it ends.
#   usage (from the repo copy): bash tools/gpu/train-on-device.sh INIT_DIR BUDGET_S [DATA]
# DATA: the world's motion for every stage, world (default) or world:rightward (docs/TRAINING.md: a world that is not
# time-symmetric, where Algorithm 1 has something to learn)
set -uo pipefail
init="$1"; budget="$2"; data="${3:-world}"
g=/tmp/gt
procs="${SVD_INBETWEEN_ENCODERS:-14}"; per="${SVD_INBETWEEN_CLIPS_PER_ENCODER:-2048}"
# The first run (batch 256) took 328 ms a step for 1 TFLOP: ≈ 7,500 kernels a step whatever the batch
# (tools/bench/train_step_ops.py), so the step is bound by dispatch and a 4× batch should cost little more time
# (docs/BENCHMARKS.md); --time-budget settles the length on the pace measured either way.
batch="${SVD_INBETWEEN_GPU_BATCH:-1024}"
# Algorithm 1: the shipped recipe by default; on the one-way world 400 steps recovered more than 200 (docs/QUALITY.md)
rev_steps="${SVD_INBETWEEN_REVERSE_STEPS:-200}"; rev_batch="${SVD_INBETWEEN_REVERSE_BATCH:-8}"
cd "$g" || exit 1
step() { echo "== $(date -u +%T) $*"; }
fail() { echo "FAILED: $*"; touch "$g/failed"; exit 1; }

step "wheels"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$g/site" "$g"/.whl/*.whl \
  || fail "pip install of the carried wheels"
export PYTHONPATH="$g/site:$g" PYTHONUNBUFFERED=1
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__,
'transformers', transformers.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))" \
  || fail "imports"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

step "latent pool: $procs encoders x $per clips"
for i in $(seq 0 $((procs - 1))); do
  OMP_NUM_THREADS=1 python3 -m tools.train encode --vae "$init/vae" --out "$g/pool" --first $((i * per)) \
    --count "$per" --chunk 64 --data "$data" --device cuda --threads 1 > "$g/encode-$i.log" 2>&1 &
done
wait
n=$(ls "$g/pool" | grep -c '^pool-.*\.pt$'); echo "shards: $n"
[ "$n" -eq $((procs * per / 64)) ] || { tail -n 5 "$g"/encode-0.log; fail "encode wrote $n shards"; }

step "forward: the UNet trained on for ${budget} s"
python3 -m tools.train forward --out "$g/fwd" --init "$init" --device cuda --autocast bf16 \
  --threads 8 --batch "$batch" --lr 5e-4 --warmup 100 --unet-steps 100000 --time-budget "$budget" \
  --checkpoint-every 1000 --latent-pool "$g/pool" --seed 3 2>&1 | grep -v '^unet .*[1-9]0 loss' \
  || fail "forward"
[ -f "$g/fwd/svd/unet/config.json" ] || fail "forward wrote no UNet"

step "reverse: Algorithm 1, $rev_steps steps x $rev_batch clips"
python3 -m tools.train reverse --svd "$g/fwd/svd" --out "$g/rev" --data "$data" --device cuda --threads 8 \
  --steps "$rev_steps" --batch "$rev_batch" --lr 5e-4 --checkpoint-every 50 2>&1 | grep -v '^reverse .*[1-9]0 loss' || fail "reverse"
[ -f "$g/rev/unet/config.json" ] || fail "reverse wrote no UNet"

step "pack"
tar -C "$g" -cf - fwd/svd/unet fwd/svd/training.json fwd/log.jsonl rev/unet rev/training.json rev/log.jsonl \
  | zstd -q -T0 -3 | split -b 15m -d - "$g/result.part-"
(cd "$g" && sha256sum result.part-* > result.sha256 && ls -l result.part-*)
step "done"; touch "$g/done"

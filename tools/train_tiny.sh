#!/usr/bin/env bash
# Rebuilds the embedded package models/tiny from nothing, as recorded in docs/BENCHMARKS.md ("Training run"): the
# autoencoder, a pool of encoded clips, the UNet and the decoder fine-tune side by side (one core each), Algorithm 1,
# then the export and the committed source folders. Every stage checkpoints and resumes: run it again with the same
# RUN folder after an interruption.
#   bash tools/train_tiny.sh [RUN]        (default RUN=runs/tiny; needs scripts/setup-dev.sh's venv)
# Step counts are the shipped run's (docs/BENCHMARKS.md: ≈ 10 h of a 2-core CPU and 5 min of an H200: the
# autoencoder, which learns the sprites' colours only after ≈ 1400 steps, then the UNet in five runs, each continuing
# the last one's EMA weights with a fresh optimiser, the fourth on the GPU with a pool seven times as large, the
# fifth on the one-way `rightward` world that the embedded model is for; Algorithm 1 on it; then the UNet and its
# fine-tune widened twice, trained on, and fine-tuned again; last, the decoder trained on);
# override them with the variables below.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-dev.sh >/dev/null
run="${1:-runs/tiny}"
py="$SVD_INBETWEEN_PYTHON"
# One-thread processes side by side (steps 2, 3, 5's encode) wait passively: spinning OpenMP waits cost 5x here.
# Two-thread trainers alone keep the default policy, which was faster for them (docs/BENCHMARKS.md, fifth attempt).
side_by_side() { OMP_WAIT_POLICY=PASSIVE "$@"; }
VAE_STEPS="${VAE_STEPS:-5000}" POOL_CLIPS="${POOL_CLIPS:-2048}" UNET_STEPS="${UNET_STEPS:-1600}"
DECODER_STEPS="${DECODER_STEPS:-700}" REVERSE_STEPS="${REVERSE_STEPS:-1800}"
MORE_POOL_CLIPS="${MORE_POOL_CLIPS:-2048}" MORE_UNET_STEPS="${MORE_UNET_STEPS:-2400}"
SIXTH_UNET_STEPS="${SIXTH_UNET_STEPS:-2400}" GPU_POOL_CLIPS="${GPU_POOL_CLIPS:-28672}" GPU_UNET_STEPS="${GPU_UNET_STEPS:-902}"
RIGHTWARD_POOL_CLIPS="${RIGHTWARD_POOL_CLIPS:-4096}" RIGHTWARD_UNET_STEPS="${RIGHTWARD_UNET_STEPS:-2387}"
WIDE_UNET_STEPS="${WIDE_UNET_STEPS:-1170}" WIDE_REVERSE_STEPS="${WIDE_REVERSE_STEPS:-400}" WIDE_DECODER_STEPS="${WIDE_DECODER_STEPS:-1200}"
mkdir -p "$run"

# encode_split FIRST COUNT [POOL DATA]: clips FIRST..FIRST+COUNT-1 of the world (DATA, default: the free world) into
# POOL (default RUN/pool), half on each core
encode_split() {
  local half=$(($2 / 2)) pool="${3:-$run/pool}" data="${4:-world}" enc
  side_by_side "$py" -m tools.train encode --vae "$run/vae" --data "$data" --out "$pool" --first "$1" \
    --count "$half" --autocast bf16 &
  enc=$!
  side_by_side "$py" -m tools.train encode --vae "$run/vae" --data "$data" --out "$pool" --first $(($1 + half)) \
    --count $(($2 - half)) --autocast bf16
  wait "$enc"
}

# with_vae SVD VAE OUT: OUT is a copy of the diffusers folder SVD with VAE as its vae/ (a decoder fine-tune's)
with_vae() {
  rm -rf "$3" && cp -r "$1" "$3" && rm -rf "$3/vae" && cp -r "$2" "$3/vae"
}

# 1. the autoencoder (its encoder fixes the latent space); --unet-steps 0 writes $run/fwd/svd/vae with its scale
"$py" -m tools.train forward --out "$run/fwd" --threads 2 --autocast bf16 --vae-steps "$VAE_STEPS" --vae-batch 1 \
  --vae-lr 5e-4 --unet-steps 0 --checkpoint-every 100
rm -rf "$run/vae" && cp -r "$run/fwd/svd/vae" "$run/vae"

# 2. the pool of encoded clips, split over both cores
encode_split 0 "$POOL_CLIPS"

# 3. the UNet on the pool, and the decoder (frozen encoder: the latent space does not move) on the other core
side_by_side "$py" -m tools.train decoder --vae "$run/vae" --out "$run/dec" --threads 1 --autocast bf16 \
  --steps "$DECODER_STEPS" --batch 2 --lr 5e-4 --checkpoint-every 100 &
dec=$!
side_by_side "$py" -m tools.train forward --out "$run/fwd" --threads 1 --autocast bf16 --vae-steps "$VAE_STEPS" \
  --vae-batch 1 --vae-lr 5e-4 --unet-steps "$UNET_STEPS" --batch 16 --lr 8e-4 --checkpoint-every 100 \
  --latent-pool "$run/pool"
wait "$dec"

# 4. the forward folder with the fine-tuned decoder
with_vae "$run/fwd/svd" "$run/dec/vae" "$run/tiny-trained"

# 5. the UNet trained on (docs/BENCHMARKS.md, "fifth attempt"): more clips in the pool (the encoder is the one of
#    step 2: the decoder fine-tune froze it), then --init continues the UNet's EMA weights with a fresh AdamW, warm-up
#    and cosine schedule; the folder's VAE (fine-tuned decoder) and image encoder are kept as they are
encode_split "$POOL_CLIPS" "$MORE_POOL_CLIPS"
"$py" -m tools.train forward --out "$run/fwd2" --init "$run/tiny-trained" --threads 2 --autocast bf16 \
  --unet-steps "$MORE_UNET_STEPS" --batch 16 --lr 5e-4 --warmup 100 --checkpoint-every 100 --latent-pool "$run/pool" \
  --seed 1

# 6. the UNet trained on twice more (docs/BENCHMARKS.md, sixth attempt and first GPU run): 2400 steps on the same
#    pool, then on a pool of 28,672 clips with batches of 256 for the 902 steps that the GPU run's 300 s budget
#    settled on (--device auto: a GPU when PyTorch sees one; on this 2-core CPU the last stage would take ≈ 6 h, the
#    pool's extension ≈ ½ h)
"$py" -m tools.train forward --out "$run/fwd3" --init "$run/fwd2/svd" --threads 2 --autocast bf16 \
  --unet-steps "$SIXTH_UNET_STEPS" --batch 16 --lr 5e-4 --warmup 100 --checkpoint-every 100 --latent-pool "$run/pool" \
  --seed 2
encode_split $((POOL_CLIPS + MORE_POOL_CLIPS)) $((GPU_POOL_CLIPS - POOL_CLIPS - MORE_POOL_CLIPS))
"$py" -m tools.train forward --out "$run/fwd4" --init "$run/fwd3/svd" --device auto --threads 2 --autocast bf16 \
  --unet-steps "$GPU_UNET_STEPS" --batch 256 --lr 5e-4 --warmup 100 --checkpoint-every 100 \
  --latent-pool "$run/pool" --seed 3

# 7. the eighth attempt (docs/BENCHMARKS.md, "The one-way world"): the free world is time-symmetric, so a reversed
#    clip is as likely as a forward one and Algorithm 1 has nothing to learn (docs/QUALITY.md); the UNet is trained on
#    for 2387 steps (the hour of CPU that session 11's --time-budget 3600 settled on; the cosine schedule runs over
#    exactly these steps) on a pool of `rightward` clips, where every horizontal path runs left to right
encode_split 0 "$RIGHTWARD_POOL_CLIPS" "$run/pool-rightward" world:rightward
"$py" -m tools.train forward --out "$run/fwd5" --init "$run/fwd4/svd" --device cpu --threads 2 --autocast bf16 \
  --unet-steps "$RIGHTWARD_UNET_STEPS" --batch 16 --lr 5e-4 --warmup 100 --checkpoint-every 100 \
  --latent-pool "$run/pool-rightward" --seed 4

# 8. Algorithm 1 on the forward folder, on the same world (1800 steps: the eleventh attempt, which ran on from the
#    ninth's 1200, itself run on from the eighth's 400; the batches are a function of the step and the learning rate
#    is constant, so it is this run)
"$py" -m tools.train reverse --svd "$run/fwd5/svd" --out "$run/rev" --data world:rightward --device cpu --threads 2 \
  --steps "$REVERSE_STEPS" --batch 8 --lr 5e-4 --checkpoint-every 50

# 9. the twelfth attempt (docs/QUALITY.md): the UNet and the fine-tune of step 8 widened twice (the same function;
#    1 % noise on the forward copies so they can part, the 32 fine-tuned tensors widened exactly), the forward UNet
#    trained on from there on the same pool (1170 steps: what session 15's --time-budget 2700 settled on; warm-up
#    and cosine are functions of the step, so this is that run), and Algorithm 1 run again from the widened fine-tune
"$py" -m tools.train widen --svd "$run/fwd5/svd" --reverse-unet "$run/rev/unet" --out "$run/wide" --factor 2 \
  --noise 0.01 --seed 0
"$py" -m tools.train forward --out "$run/fwd6" --init "$run/wide" --device cpu --threads 2 --autocast bf16 \
  --unet-steps "$WIDE_UNET_STEPS" --batch 16 --lr 3e-4 --warmup 100 --checkpoint-every 100 \
  --latent-pool "$run/pool-rightward" --seed 7
"$py" -m tools.train reverse --svd "$run/fwd6/svd" --out "$run/rev2" --data world:rightward --device cpu \
  --threads 2 --steps "$WIDE_REVERSE_STEPS" --batch 8 --lr 5e-4 --seed 1 --checkpoint-every 50 \
  --init-reverse "$run/wide/reverse_unet"

# 10. the fifteenth attempt (docs/QUALITY.md): the decoder trained on for 1200 steps on the one-way world, the
#     encoder frozen (the latent space, and so both UNets, unchanged)
"$py" -m tools.train decoder --vae "$run/fwd6/svd/vae" --out "$run/dec2" --data world:rightward --threads 2 \
  --steps "$WIDE_DECODER_STEPS" --batch 2 --lr 2e-4 --seed 5 --autocast bf16 --checkpoint-every 100
with_vae "$run/fwd6/svd" "$run/dec2/vae" "$run/final"

# 11. package + committed source (the reverse UNet folder beside the forward folders, slim: only its 32 tensors,
#     taken as they are, with no delta base), and the demo keyframes and the plugin test's pairs in the same world
"$py" -m tools.export --svd "$run/final" --reverse-unet "$run/rev2/unet" --out models/tiny --frames 7 --height 64 \
  --width 128 --name tiny-world-rightward-w2-d1200 >/dev/null
rm -rf models/tiny/source && cp -r "$run/final" models/tiny/source
"$py" -m tools.train slim --reverse-unet "$run/rev2/unet" --out models/tiny/source/reverse_unet
cp "$run/rev2/training.json" models/tiny/source/reverse_unet/  # how the 32 tensors were trained, beside them
"$py" -m tools.world --fixtures . --motion rightward
echo "models/tiny rebuilt from $run"

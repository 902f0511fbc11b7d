#!/usr/bin/env bash
# Rebuilds the embedded package models/tiny from nothing: the forward stage (VAE, then UNet) and the decoder
# fine-tune side by side (one core each), then Algorithm 1, then the export. Every stage checkpoints and resumes:
# run it again with the same RUN folder after an interruption. The committed models/tiny/source holds the folders
# this produced (docs/TRAINING.md says how the recorded run differed: its step counts were changed at restarts).
#   bash tools/train_tiny.sh [RUN]        (default RUN=runs/tiny; needs scripts/setup-dev.sh's venv)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-dev.sh >/dev/null
run="${1:-runs/tiny}"
py="$SVD_INBETWEEN_PYTHON"
export OMP_WAIT_POLICY=PASSIVE  # two one-thread trainers on two cores: spinning OpenMP waits cost 5x here
mkdir -p "$run"

# 1. VAE (its encoder fixes the latent space)
"$py" -m tools.train forward --out "$run/fwd" --threads 1 --vae-steps 500 --vae-lr 1e-3 --unet-steps 0
vae_dir="$run/vae"
[ -d "$vae_dir" ] || "$py" -c "
import sys, torch
from tools import train
vae = train.new_vae(train.CONFIGS['tiny'])
vae.load_state_dict(torch.load('$run/fwd/checkpoints/vae-0000500.pt', weights_only=False)['model'])
x, _ = train.WorldData(7, 64, 128).batch(9_000_000 // 64, 64)
with torch.no_grad():
    vae.register_to_config(scaling_factor=round(1.0 / float(vae.eval().encode(x.flatten(0, 1)).latent_dist.mean.std()), 5))
vae.save_pretrained('$vae_dir')"

# 2. UNet on the frozen encoder's latents, and the decoder on the other core
"$py" -m tools.train decoder --vae "$vae_dir" --out "$run/dec" --threads 1 --steps 1500 --batch 2 --lr 5e-4 &
dec=$!
"$py" -m tools.train forward --out "$run/fwd" --threads 1 --vae-steps 500 --vae-lr 1e-3 --unet-steps 700 \
  --batch 16 --lr 6e-4 --checkpoint-every 50
wait "$dec"

# 3. the forward folder with the fine-tuned decoder, then Algorithm 1 on it
rm -rf "$run/tiny-trained" && cp -r "$run/fwd/svd" "$run/tiny-trained" && rm -rf "$run/tiny-trained/vae" && cp -r "$run/dec/vae" "$run/tiny-trained/vae"
"$py" -m tools.train reverse --svd "$run/tiny-trained" --out "$run/rev" --threads 2 --steps 300 --batch 8 --lr 5e-4 \
  --checkpoint-every 50

# 4. package + committed source
"$py" -m tools.export --svd "$run/tiny-trained" --reverse-unet "$run/rev/unet" --out models/tiny --frames 7 --height 64 \
  --width 128 >/dev/null
rm -rf models/tiny/source && cp -r "$run/tiny-trained" models/tiny/source && cp -r "$run/rev/unet" models/tiny/source/reverse_unet
echo "models/tiny rebuilt from $run"

#!/usr/bin/env bash
# The main job, set-up included (see README): build the OpenFX bundle, then render the in-between frames of a
# 7-frame clip (keyframes 0 and 6: a sun thrown over a horizon, a square sliding the same way) through the plugin
# in the in-repo host, exactly as an editor's host would call it, on the embedded tiny package (a model of SVD-XT's
# architecture trained here on a procedural sprite world at 128x64 whose motion runs left to right: docs/TRAINING.md,
# measured in docs/QUALITY.md).
# Also runs the same generation with the CLI. Outputs under out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
bash bundle/make-bundle.sh --release >/dev/null
cargo build -q --release -p ofx-test-host --bin ofx-demo
cargo build -q --release -p svd-inbetween --bin svd-inbetween
export SVD_INBETWEEN_OFX="$PWD/target/bundle/SvdInbetween.ofx.bundle/Contents/Linux-x86-64/SvdInbetween.ofx"
rm -rf out/demo && mkdir -p out/demo
echo "== generative in-betweening through the plugin (paper defaults: 50 steps, 5 re-injections on the first 25)"
./target/release/ofx-demo --from assets/keyframes/a.png --to assets/keyframes/b.png --length 6 \
  --out out/demo/plugin --sheet out/demo/contact_sheet.png
echo "== frame blend (preview baseline) through the plugin"
./target/release/ofx-demo --mode blend --from assets/keyframes/a.png --to assets/keyframes/b.png --length 6 \
  --out out/demo/blend --sheet out/demo/contact_sheet_blend.png
echo "== the same generation with the CLI"
./target/release/svd-inbetween generate --models models/tiny --from assets/keyframes/a.png \
  --to assets/keyframes/b.png --out out/demo/cli
echo
echo "Done. Frames: out/demo/plugin/frame_*.png; contact sheets: out/demo/contact_sheet.png (generative),"
echo "out/demo/contact_sheet_blend.png (blend); CLI output and timings: out/demo/cli/summary.json"

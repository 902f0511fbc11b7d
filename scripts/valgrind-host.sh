#!/usr/bin/env bash
# Runs a short OpenFX host scenario through the bundle's plugin under valgrind memcheck: load, describe,
# instance, clip preferences, identity, and frame-blend renders (every image fetched, converted, written,
# released). Fails on any invalid read/write, overlap or use of uninitialised memory.
#   --with-generative  also a 1-step generation (loads ONNX Runtime; ~7 minutes under valgrind, so not in CI).
# scripts/valgrind.supp lists what is suppressed inside ONNX Runtime and why.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { . scripts/lib/apt.sh; svd_apt_install valgrind; }
cargo build -q -p ofx-test-host --bin ofx-demo
bash bundle/make-bundle.sh >/dev/null
out="$(mktemp -d)"
export SVD_INBETWEEN_OFX="$PWD/target/bundle/SvdInbetween.ofx.bundle/Contents/Linux-x86-64/SvdInbetween.ofx"
modes=(blend)
[ "${1:-}" = "--with-generative" ] && modes+=(generative)
for mode in "${modes[@]}"; do
  valgrind --error-exitcode=99 --errors-for-leak-kinds=none --leak-check=no --track-origins=no \
    --suppressions=scripts/valgrind.supp -q \
    ./target/debug/ofx-demo --mode "$mode" --from assets/keyframes/a.png --to assets/keyframes/b.png \
    --length 3 --frames 1..2 --param steps=1 --param noiseInjectionSteps=0 --out "$out/$mode" 2> "$out/$mode.log" \
    || { cat "$out/$mode.log"; echo "valgrind found errors in the $mode scenario" >&2; exit 1; }
  echo "valgrind: $mode scenario clean ($(ls "$out/$mode"/*.png | wc -l) frames)"
done
rm -rf "$out"

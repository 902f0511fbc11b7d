#!/usr/bin/env bash
# A farm node with N intervals to render (one `generate` each, seeds 1..N) on the embedded tiny package, three ways:
#   shared         N processes at once, each with --threads = cores / N (at least 1)
#   oversubscribed N processes at once, each with ONNX Runtime's default (one thread per core each)
#   serial         one process after another, default threads
# Time it as a whole process, e.g. with /usr/bin/time, or two ways side by side with a benchmark harness that
# alternates them. Usage: bash tools/bench/node.sh shared|oversubscribed|serial [N] [steps]
# (build first: cargo build --release; results land in a temporary folder that is removed)
set -euo pipefail
cd "$(dirname "$0")/../.."
mode="$1"; n="${2:-2}"; steps="${3:-50}"
cli=./target/release/svd-inbetween
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
share=$(( $(nproc) / n )); [ "$share" -ge 1 ] || share=1
gen() { # seed, extra args
  local seed="$1"; shift
  "$cli" generate --models models/tiny --from assets/keyframes/a.png --to assets/keyframes/b.png --steps "$steps" \
    --seed "$seed" --out "$out/$seed" "$@" 2>/dev/null >/dev/null
}
case "$mode" in
  shared) for s in $(seq 1 "$n"); do gen "$s" --threads "$share" & done; wait ;;
  oversubscribed) for s in $(seq 1 "$n"); do gen "$s" & done; wait ;;
  serial) for s in $(seq 1 "$n"); do gen "$s"; done ;;
  *) echo "usage: bash tools/bench/node.sh shared|oversubscribed|serial [N] [steps]" >&2; exit 2 ;;
esac
for s in $(seq 1 "$n"); do [ -f "$out/$s/frame_006.png" ] || { echo "interval $s produced no frames" >&2; exit 1; }; done

#!/usr/bin/env bash
# The whole test suite, set-up included (see README). Used verbatim by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
. scripts/setup-ort-gpu.sh

echo "== build (workspace) and the OpenFX bundle"
cargo build --workspace --all-targets
bash bundle/make-bundle.sh >/dev/null
ofx=target/bundle/SvdInbetween.ofx.bundle/Contents/Linux-x86-64/SvdInbetween.ofx
for sym in OfxGetNumberOfPlugins OfxGetPlugin; do
  nm -D --defined-only "$ofx" | grep -q " T $sym$" || { echo "missing export $sym in $ofx" >&2; exit 1; }
done
echo "exports ok: $(nm -D --defined-only "$ofx" | grep -c ' T Ofx') OpenFX entry points"

echo "== Python: exporter, tiny models, reference pipeline"
"$SVD_INBETWEEN_PYTHON" -m pytest -q -p no:cacheprovider tools/tests

echo "== Rust: unit, CLI parity with the reference, OFX test host (lifecycle, generative, farm, bundle)"
cargo test --workspace

echo "== memory check: a short host scenario under valgrind"
bash scripts/valgrind-host.sh

#!/usr/bin/env bash
# The whole test suite, set-up included (see README). Used verbatim by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
. scripts/setup-dev.sh
. scripts/setup-ort-gpu.sh

echo "== set-up checks: libclang detection (bindgen's rules, against fake roots)"
bash scripts/tests/test-libclang-detection.sh

echo "== house rules: rustfmt, clippy (warnings are errors)"
cargo fmt --all --check
cargo clippy -q --workspace --all-targets -- -D warnings
echo "fmt and clippy clean"

echo "== build (workspace) and the OpenFX bundle"
cargo build --workspace --all-targets
target="${CARGO_TARGET_DIR:-target}"
libclang_report="$(ls -t "$target"/debug/build/svd-inbetween-*/out/libclang.txt 2>/dev/null | head -1)"
echo "bindgen used libclang: $(cat "$libclang_report" 2>/dev/null || echo 'not reported')"
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

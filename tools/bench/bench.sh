#!/usr/bin/env bash
# Generation benchmark on the embedded tiny package, side by side in one run (runs interleaved, medians):
#   defaults  paper defaults (50 steps, 5 re-injections on the first 25 = 175 fused UNet calls), latents on the host
#   device    the same with the latents kept in the provider's memory (IoBinding loop, the CUDA default)
#   noinject  no re-injection (50 calls), latents on the host
# Prints the median seconds per stage and per UNet call, and the ratios device/defaults and defaults/noinject.
# Usage: bash tools/bench/bench.sh [runs] [cpu|cuda] [--prebuilt CLI]   (--prebuilt: a machine without cargo)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-3}"
device="${2:-cpu}"
cli=./target/release/svd-inbetween
if [ "${3:-}" = "--prebuilt" ]; then cli="$4"; else cargo build -q --release -p svd-inbetween --bin svd-inbetween; fi
out="$(mktemp -d)"
run() { # name, index, extra args
  local name="$1" i="$2"; shift 2
  "$cli" generate --models models/tiny --from assets/keyframes/a.png \
    --to assets/keyframes/b.png --out "$out/$name-$i" --device "$device" "$@" 2>/dev/null
}
for i in $(seq 1 "$runs"); do
  run defaults "$i" --sampler host
  run device "$i" --sampler device
  run noinject "$i" --sampler host --noise-injection-steps 0
done
"${SVD_INBETWEEN_PYTHON:-python3}" - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
res = {}
for name in ("defaults", "device", "noinject"):
    s = [json.load(open(f"{out}/{name}-{i}/summary.json")) for i in range(1, runs + 1)]
    med = lambda k: statistics.median(x["seconds"][k] for x in s)
    calls = s[0]["unet_calls"]
    res[name] = dict(calls=calls, load=med("load"), encode=med("encode"), denoise=med("denoise"), decode=med("decode"),
                     total=med("total_generate"), per_call=med("denoise") / calls, latents_on=s[0]["latents_on"],
                     peak_rss_mb=max(x["peak_rss_bytes"] for x in s) / 2**20, provider=s[0]["provider"]["provider"])
for k, r in res.items():
    print(f"{k:9s} calls {r['calls']:4d}  load {r['load']:.2f}s  encode {r['encode']:.3f}s  denoise {r['denoise']:.2f}s "
          f"({1000*r['per_call']:.1f} ms/call)  decode {r['decode']:.3f}s  total {r['total']:.2f}s  peak RSS {r['peak_rss_mb']:.0f} MB  "
          f"[{r['provider']}, latents on {r['latents_on']}]")
a, d, b = res["defaults"], res["device"], res["noinject"]
print(f"ratio device/defaults: denoise {d['denoise']/a['denoise']:.3f}x, per call {d['per_call']/a['per_call']:.3f}x")
print(f"ratio defaults/noinject: total {a['total']/b['total']:.2f}x, UNet calls {a['calls']/b['calls']:.2f}x, per call {a['per_call']/b['per_call']:.2f}x")
PY
rm -rf "$out"

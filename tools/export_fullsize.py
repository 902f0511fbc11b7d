"""Full-size architecture check: the real SVD-XT UNet configuration with random weights (nothing is downloaded),
fused with a reverse branch, exported to ONNX in fp16 with external data, then opened in ONNX Runtime.

    python -m tools.export_fullsize --out DIR [--frames 25 --height 576 --width 1024] [--exporter dynamo|torchscript]

TorchScript tracing runs one real forward pass (≈320 TFLOP at 25×576×1024, batch 4: hours on a laptop CPU);
the dynamo exporter traces with fake tensors and needs only the weights in memory. Prints a JSON report
(seconds, peak RSS, file sizes) for docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

from . import gi

SVD_XT_UNET = dict(
    sample_size=96, in_channels=8, out_channels=4,
    down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
    up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
    block_out_channels=(320, 640, 1280, 1280), addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=768, layers_per_block=2, cross_attention_dim=1024,
    transformer_layers_per_block=1, num_attention_heads=(5, 10, 20, 20), num_frames=25,
)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def main(argv=None) -> int:
    from diffusers import UNetSpatioTemporalConditionModel

    ap = argparse.ArgumentParser(prog="python -m tools.export_fullsize")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=25)
    ap.add_argument("--height", type=int, default=576)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
    a = ap.parse_args(argv)
    report: dict = {"frames": a.frames, "height": a.height, "width": a.width, "exporter": a.exporter}
    t0 = time.time()
    with torch.device("meta") if False else torch.no_grad():
        unet = UNetSpatioTemporalConditionModel(**SVD_XT_UNET).eval()
    report["unet_params"] = sum(p.numel() for p in unet.parameters())
    rev = UNetSpatioTemporalConditionModel(**SVD_XT_UNET).eval()  # stands in for the reverse checkpoint
    fused = gi.make_fused_unet(unet, rev, None).eval().half()
    del unet, rev
    report["fused_params"] = sum(p.numel() for p in fused.parameters())
    report["build_seconds"] = round(time.time() - t0, 1)
    h, w = a.height // 8, a.width // 8
    args = (torch.randn(4, a.frames, 8, h, w, dtype=torch.float16), torch.tensor([1.6378], dtype=torch.float16),
            torch.randn(4, 1, 1024, dtype=torch.float16), torch.tensor([[6.0, 127.0, 0.02]] * 4, dtype=torch.float16))
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / "unet.onnx"
    t0 = time.time()
    torch.onnx.export(gi.UNetForExport(fused), args, str(path), input_names=["sample", "timestep", "encoder_hidden_states", "added_time_ids"],
                      output_names=["noise_pred"], opset_version=18, dynamo=(a.exporter == "dynamo"), external_data=True)
    report["export_seconds"] = round(time.time() - t0, 1)
    report["files"] = {p.name: p.stat().st_size for p in sorted(a.out.iterdir())}
    report["peak_rss_gb_after_export"] = round(peak_rss_gb(), 2)
    del fused
    import onnxruntime as ort

    t0 = time.time()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    report["ort_open_seconds"] = round(time.time() - t0, 1)
    report["ort_inputs"] = [(i.name, i.shape, i.type) for i in sess.get_inputs()]
    report["peak_rss_gb"] = round(peak_rss_gb(), 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How much work one UNet training step asks of a device, counted (not timed): arithmetic (FLOPs, from PyTorch's
flop counter) and the number of operators dispatched (each non-view operator is about one kernel launch on a GPU),
at two batch sizes. A step whose operator count does not grow with the batch is bound by dispatch on a GPU
whenever its arithmetic per operator is small: the step time then hardly depends on the batch.

    python -m tools.bench.train_step_ops [--unet models/tiny/source/unet] [--batches 1 4]
"""
from __future__ import annotations

import argparse
import json
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode


class CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func] += 1
        return func(*args, **(kwargs or {}))


def step(unet, batch: int, autocast: bool):
    cfg = unet.config
    h = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
    x = torch.randn(batch, cfg.num_frames, cfg.in_channels, h, 2 * h)
    args = (x, torch.rand(batch), torch.randn(batch, 1, cfg.cross_attention_dim), torch.randn(batch, 3))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = unet(*args, return_dict=False)[0]
    out.float().pow(2).mean().backward()


def measure(unet, batch: int, autocast: bool) -> dict:
    unet.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as fc:
        step(unet, batch, autocast)
    unet.zero_grad(set_to_none=True)
    with CountOps() as co:
        step(unet, batch, autocast)
    views = sum(n for f, n in co.ops.items() if f.is_view)  # aliases: no kernel
    total = sum(co.ops.values())
    return {"batch": batch, "autocast_bf16": autocast, "gflop": fc.get_total_flops() / 1e9,
            "operators": total, "compute_operators": total - views,
            "mflop_per_compute_operator": fc.get_total_flops() / 1e6 / max(1, total - views)}


def main(argv=None) -> int:
    from diffusers import UNetSpatioTemporalConditionModel

    ap = argparse.ArgumentParser(prog="python -m tools.bench.train_step_ops", description=__doc__.split("\n\n")[0])
    ap.add_argument("--unet", default="models/tiny/source/unet")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel.from_pretrained(a.unet).train()
    rows = [measure(unet, b, ac) for ac in (False, True) for b in a.batches]
    print(json.dumps({"unet": a.unet, "parameters": sum(p.numel() for p in unet.parameters()), "rows": rows},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

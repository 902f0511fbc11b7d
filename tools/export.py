"""Export SVD-XT + the reverse-motion checkpoint to the svd-inbetween model package (docs/INTERFACES.md §3).

    python -m tools.export --svd DIR --reverse-unet DIR [--reverse-base DIR] --out MODELDIR [--dtype fp32|fp16]
                           [--frames F --height H --width W]
    python -m tools.export --tiny --out MODELDIR      # random-weight small models of the same classes

Every exported graph is checked against its PyTorch module on random inputs before the manifest is written; the
manifest is written last, so a folder with a manifest is a complete, verified package.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import gi
from .tiny import CLIP_MEAN, CLIP_STD, TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, write_tiny_source

OPSET = 17
FORMAT = "svd-inbetween-model-package"
EXTERNAL_DATA_THRESHOLD = 1_800_000_000  # stay clear of protobuf's 2 GB limit


class ExportError(Exception):
    pass


# ---------------------------------------------------------------------------------------------- model wrappers
class ImageEncoder(nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, pixel_values):
        return self.clip(pixel_values=pixel_values).image_embeds


class VaeEncoder(nn.Module):
    """Distribution mode (= mean), unscaled: what SVD conditions on."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, image):
        return self.vae.encode(image).latent_dist.mode()


class VaeDecoder(nn.Module):
    """N latents (already divided by the scaling factor) decoded as ONE temporal chunk of N frames."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latents):
        return self.vae.decode(latents, num_frames=latents.shape[0]).sample


# ---------------------------------------------------------------------------------------------- loading
def load_folders(svd: Path, reverse_unet: Path, reverse_base: Path | None):
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionModelWithProjection

    for sub in ("unet", "vae", "image_encoder"):
        if not (svd / sub).is_dir():
            raise ExportError(f"{svd} has no {sub}/ folder: expected a diffusers SVD-XT folder "
                              "(model_index.json, unet/, vae/, image_encoder/, feature_extractor/, scheduler/)")
    unet = UNetSpatioTemporalConditionModel.from_pretrained(svd / "unet", torch_dtype=torch.float32).eval()
    vae = AutoencoderKLTemporalDecoder.from_pretrained(svd / "vae", torch_dtype=torch.float32).eval()
    clip = CLIPVisionModelWithProjection.from_pretrained(svd / "image_encoder", torch_dtype=torch.float32).eval()
    rev = gi.load_reverse_unet(reverse_unet, unet)
    base = None
    if reverse_base is not None:
        base = UNetSpatioTemporalConditionModel.from_pretrained(reverse_base, torch_dtype=torch.float32).eval()
    return unet, vae, clip, rev, base


# ---------------------------------------------------------------------------------------------- export + check
def _export(module, args, path: Path, inputs, outputs, dynamic_axes, large: bool):
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
    import onnx

    model = onnx.load(str(path), load_external_data=True)
    compact_names(model)
    if large:
        path.with_name(path.name + ".data").unlink(missing_ok=True)
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path) if large else model)


def compact_names(model) -> None:
    """The tracer names every intermediate tensor and node after its Python scope ('/unet/down_blocks.0/...'),
    which is 3 MB of the tiny UNet's 12 MB. Intermediate names carry no contract (inputs, outputs and initializers
    keep theirs), so shorten them: the committed tiny package stays small and the real one loads a little faster."""
    g = model.graph
    keep = {i.name for i in g.input} | {o.name for o in g.output} | {t.name for t in g.initializer}
    rename: dict[str, str] = {}
    for i, node in enumerate(g.node):
        node.name = f"n{i}"
        node.doc_string = ""
        for j, out in enumerate(node.output):
            if out and out not in keep:
                rename[out] = f"v{i}_{j}"
    for node in g.node:
        for j, x in enumerate(node.input):
            if x in rename:
                node.input[j] = rename[x]
        for j, x in enumerate(node.output):
            if x in rename:
                node.output[j] = rename[x]
    del g.value_info[:]


def _run_ort(path: Path, feeds: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in feeds.items()})


def check_parity(name: str, got: np.ndarray, want: torch.Tensor, tol: float) -> dict:
    want = want.detach().numpy()
    if got.shape != want.shape:
        raise ExportError(f"{name}: ONNX output shape {got.shape} != PyTorch {want.shape}")
    err = float(np.max(np.abs(got - want)))
    mag = float(np.max(np.abs(want)))
    rel = err / max(mag, 1e-12)
    # tol is absolute for outputs up to magnitude 1 and scales with larger ones: both sides add the same fp32 terms
    # in different orders, and the CPU's kernels (AVX2 vs AVX-512) decide how far that moves big outputs.
    bound = tol * max(1.0, mag)
    if not err <= bound:
        raise ExportError(f"{name}: ONNX vs PyTorch max abs {err:.3e} > {bound:.1e} (= {tol:.0e} x max(1, |output| "
                          f"{mag:.3g}); rel {rel:.3e})")
    return {"max_abs": err, "max_rel": rel}


def unet_inputs(k: int, frames: int, h: int, w: int, embed_dim: int, gen: torch.Generator):
    sample = torch.randn(2 * k, frames, 8, h, w, generator=gen)
    timestep = torch.tensor([0.25 * np.log(30.0)], dtype=torch.float32)
    ehs = torch.randn(2 * k, 1, embed_dim, generator=gen)
    ids = torch.tensor([[6.0, 127.0, 0.02]] * (2 * k))
    return sample, timestep, ehs, ids


def export_package(svd: Path, reverse_unet: Path, reverse_base: Path | None, out: Path, dtype: str,
                   frames: int, height: int, width: int, name: str, tol: float = 1e-4,
                   unet_batch: str = "4", reverse_attention: str = "rotated") -> dict:
    """reverse_attention "own" exports the TRF-style evaluation baseline instead of the method: the stock UNet, so
    the reverse rows run the forward weights with their own attention (tools.evaluate; never a product package)."""
    if height % 64 or width % 64:
        raise ExportError(f"height and width must be multiples of 64, got {height}x{width}")
    if dtype not in ("fp32", "fp16"):
        raise ExportError(f"dtype must be fp32 or fp16, got {dtype}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # a manifest only ever describes a verified folder
    unet, vae, clip, rev, base = load_folders(svd, reverse_unet, reverse_base)
    if reverse_attention == "rotated":
        fused = gi.make_fused_unet(unet, rev, base).eval()
    elif reverse_attention == "own":
        fused = unet
    else:
        raise ExportError(f"reverse attention must be rotated or own, got {reverse_attention!r}")
    embed_dim = clip.config.projection_dim
    h, w = height // 8, width // 8
    gen = torch.Generator().manual_seed(0)
    report: dict = {}
    t0 = time.time()

    # 1. CLIP image encoder
    px = torch.randn(2, 3, 224, 224, generator=gen)
    _export(ImageEncoder(clip), (px,), out / "image_encoder.onnx", ["pixel_values"], ["image_embeds"],
            {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}}, large=False)
    # 2. VAE encoder
    img = torch.rand(2, 3, height, width, generator=gen) * 2 - 1
    _export(VaeEncoder(vae), (img,), out / "vae_encoder.onnx", ["image"], ["latent"],
            {"image": {0: "batch"}, "latent": {0: "batch"}}, large=False)
    # 3. fused UNet. A static batch (4 = k 2: CFG pairs of both directions) lets the exporter fold every shape
    #    computation: the tiny graph has 44 % fewer nodes and ONNX Runtime opens it 7x faster (0.9 s vs 6.3 s)
    #    than with a dynamic batch axis. "2" exports the low-memory k = 1 graph, "dynamic" both.
    if unet_batch not in ("4", "2", "dynamic"):
        raise ExportError(f"--unet-batch must be 4, 2 or dynamic, got {unet_batch}")
    ks = (1, 2) if unet_batch == "dynamic" else (int(unet_batch) // 2,)
    ui = unet_inputs(ks[-1], frames, h, w, embed_dim, gen)
    n_params = sum(p.numel() for p in fused.parameters())
    large = n_params * (2 if dtype == "fp16" else 4) > EXTERNAL_DATA_THRESHOLD
    dyn = None
    if unet_batch == "dynamic":
        dyn = {n: {0: "batch2k"} for n in ("sample", "encoder_hidden_states", "added_time_ids", "noise_pred")}
    _export(gi.UNetForExport(fused), ui, out / "unet.onnx",
            ["sample", "timestep", "encoder_hidden_states", "added_time_ids"], ["noise_pred"], dyn, large=large)
    # 4. VAE temporal decoder, one chunk of N frames
    lat = torch.randn(frames, 4, h, w, generator=gen)
    _export(VaeDecoder(vae), (lat,), out / "vae_decoder.onnx", ["latents"], ["frames"],
            {"latents": {0: "frames"}, "frames": {0: "frames"}}, large=False)
    report["export_seconds"] = time.time() - t0

    if dtype == "fp16":
        convert_fp16(out)

    # Parity against PyTorch before anything is declared done (fp32 only: fp16 is checked loosely by tests).
    if dtype == "fp32":
        with torch.no_grad():
            report["image_encoder"] = check_parity("image_encoder", _run_ort(out / "image_encoder.onnx", {"pixel_values": px})[0],
                                                   ImageEncoder(clip)(px), tol)
            report["vae_encoder"] = check_parity("vae_encoder", _run_ort(out / "vae_encoder.onnx", {"image": img})[0],
                                                 VaeEncoder(vae)(img), tol)
            for k in ks:
                ui = unet_inputs(k, frames, h, w, embed_dim, gen)
                feeds = dict(zip(["sample", "timestep", "encoder_hidden_states", "added_time_ids"], ui))
                report[f"unet_k{k}"] = check_parity(f"unet (k={k})", _run_ort(out / "unet.onnx", feeds)[0],
                                                    gi.UNetForExport(fused)(*ui), tol)
            for n in sorted({1, frames}):
                l = torch.randn(n, 4, h, w, generator=gen)
                report[f"vae_decoder_n{n}"] = check_parity(f"vae_decoder (N={n})", _run_ort(out / "vae_decoder.onnx", {"latents": l})[0],
                                                           VaeDecoder(vae)(l), tol)

    manifest = build_manifest(out, name, dtype, frames, height, width, embed_dim, unet_batch,
                              vae.config.scaling_factor, {"svd": str(svd), "reverse_unet": str(reverse_unet),
                                                          "reverse_base": str(reverse_base) if reverse_base else None})
    if reverse_attention == "own":
        manifest["baseline"] = "TRF-style: reverse rows use their own attention and the forward weights (evaluation)"
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return report


def convert_fp16(out: Path) -> None:
    """fp16 weights and activations; the graph I/O stays fp32 so callers never change, and the sinusoidal
    embedding subgraphs (Sin/Cos/Exp and what feeds them) stay fp32: t·freq in fp16 loses ~0.03 rad of phase."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    for f in ("image_encoder.onnx", "vae_encoder.onnx", "unet.onnx", "vae_decoder.onnx"):
        p = out / f
        m = onnx.load(str(p), load_external_data=True)
        m16 = convert_float_to_float16(m, keep_io_types=True, op_block_list=["Sin", "Cos", "Exp", "Range", "Pow"])
        dedupe_casts(m16.graph)  # the converter emits one Cast per blocked consumer, all with the same output
        toposort(m16.graph)  # and appends its input Casts at the end of the node list
        data = p.with_name(p.name + ".data")
        data.unlink(missing_ok=True)
        big = m16.ByteSize() > EXTERNAL_DATA_THRESHOLD if hasattr(m16, "ByteSize") else False
        if big:
            onnx.save_model(m16, str(p), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=p.name + ".data", size_threshold=1024)
        else:
            onnx.save_model(m16, str(p))
        onnx.checker.check_model(str(p))


def dedupe_casts(graph) -> None:
    """Drops Cast nodes that re-produce an output an identical earlier Cast already produces (SSA form)."""
    seen: dict[str, tuple] = {}
    keep = []
    for n in graph.node:
        sig = (n.op_type, tuple(n.input), tuple((a.name, a.i) for a in n.attribute))
        if n.op_type == "Cast" and len(n.output) == 1 and n.output[0] in seen:
            if seen[n.output[0]] != sig:
                raise ExportError(f"two different nodes produce {n.output[0]}")
            continue
        for o in n.output:
            seen[o] = sig
        keep.append(n)
    del graph.node[:]
    graph.node.extend(keep)


def toposort(graph) -> None:
    """Reorders nodes so each comes after the producers of its inputs (ONNX requires it; ORT tolerates it)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for n in pending:
            if all(x in available for x in n.input):
                ordered.append(n)
                available.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ExportError(f"graph has a cycle or a dangling input near node {rest[0].name}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_manifest(out: Path, name, dtype, frames, height, width, embed_dim, unet_batch, scaling, sources) -> dict:
    import diffusers

    files = {}
    for p in sorted(out.iterdir()):
        if p.is_file() and p.name != "manifest.json":
            files[p.name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return {
        "format": FORMAT,
        "format_version": 1,
        "name": name,
        "dtype": dtype,
        "num_frames": frames, "height": height, "width": width,
        "latent_channels": 4,
        "vae_scaling_factor": scaling,
        "fused_unet": True,
        "unet_batch": unet_batch if unet_batch == "dynamic" else int(unet_batch),
        "decode_chunk_frames": frames,
        "image_encoder": {"size": 224, "embed_dim": embed_dim, "mean": CLIP_MEAN, "std": CLIP_STD},
        "scheduler": {"sigma_min": 0.002, "sigma_max": 700.0, "rho": 7.0, "prediction_type": "v_prediction",
                      "timestep_spacing": "leading", "timestep_type": "continuous", "use_karras_sigmas": True},
        "defaults": {"fps": 7, "motion_bucket_id": 127, "noise_aug_strength": 0.02,
                     "min_guidance_scale": 1.0, "max_guidance_scale": 3.0, "num_inference_steps": 50,
                     "noise_injection_steps": 5, "noise_injection_ratio": 0.5},
        "models": {
            "image_encoder": {"file": "image_encoder.onnx", "inputs": ["pixel_values"], "outputs": ["image_embeds"]},
            "vae_encoder": {"file": "vae_encoder.onnx", "inputs": ["image"], "outputs": ["latent"]},
            "unet": {"file": "unet.onnx", "inputs": ["sample", "timestep", "encoder_hidden_states", "added_time_ids"],
                     "outputs": ["noise_pred"]},
            "vae_decoder": {"file": "vae_decoder.onnx", "inputs": ["latents"], "outputs": ["frames"]},
        },
        "files": files,
        "sources": {**sources, "exporter": "tools.export 1", "torch": torch.__version__,
                    "diffusers": diffusers.__version__},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--svd", type=Path, help="diffusers SVD-XT folder")
    ap.add_argument("--reverse-unet", type=Path, help="reverse-motion fine-tuned UNet folder")
    ap.add_argument("--reverse-base", type=Path, help="UNet the reverse one was fine-tuned from (delta base)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16"])
    ap.add_argument("--frames", type=int, default=25)
    ap.add_argument("--height", type=int, default=576)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--unet-batch", default="4", choices=["4", "2", "dynamic"],
                    help="UNet batch: 4 = both directions with CFG in one call (default, fastest to load), "
                         "2 = low-memory k=1 graph, dynamic = either (slow to open)")
    ap.add_argument("--tiny", action="store_true", help="write and export random-weight tiny models")
    ap.add_argument("--name", help="the package's name in its manifest (default: the --svd folder's name)")
    a = ap.parse_args(argv)
    try:
        if a.tiny:
            src = write_tiny_source(a.out / "source")
            report = export_package(src, src / "reverse_unet", src / "reverse_base", a.out, a.dtype,
                                    TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, "tiny-random", unet_batch=a.unet_batch)
        else:
            if not (a.svd and a.reverse_unet):
                raise ExportError("--svd and --reverse-unet are required (or --tiny)")
            report = export_package(a.svd, a.reverse_unet, a.reverse_base, a.out, a.dtype, a.frames, a.height,
                                    a.width, a.name or a.svd.name, unet_batch=a.unet_batch)
    except ExportError as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

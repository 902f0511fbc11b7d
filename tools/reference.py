"""The Generative Inbetweening pipeline in PyTorch, built the authors' way on the diffusers folders: a forward
SVD-XT UNet and a separate reverse UNet (delta-merged weights) whose 16 temporal self-attention layers use the
forward UNet's probabilities rotated 180 degrees. It shares no code with the ONNX export path or the Rust sampler,
which is what makes it a reference for both (docs/INTERFACES.md §4 for the noise files).

    python -m tools.reference --models-source models/tiny/source --from A.png --to B.png --out DIR \
        [--steps N] [--seed S] [--noise-injection-steps K] [--noise-injection-ratio R] [--motion-bucket M] \
        [--fps F] [--noise-aug X] [--guidance-min G] [--guidance-max G] [--fusion average|linear] \
        [--decode-chunk N] [--save-noise DIR | --load-noise DIR]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import gi


@dataclass
class Params:
    steps: int = 50
    seed: int = 42
    noise_injection_steps: int = 5
    noise_injection_ratio: float = 0.5
    motion_bucket_id: float = 127.0
    fps: float = 7.0
    noise_aug_strength: float = 0.02
    min_guidance_scale: float = 1.0
    max_guidance_scale: float = 3.0
    fusion: str = "average"  # "average" (authors' default) | "linear" | "forward-only" (SVD baseline, tests)
    decode_chunk_frames: int | None = None


class Noise:
    """Every random draw of the pipeline, in the authors' order, either from one seeded generator or replayed from
    .npy files; optionally saved. Names follow docs/INTERFACES.md §4."""

    def __init__(self, seed: int, load_dir: Path | None = None, save_dir: Path | None = None):
        self.gen = torch.Generator().manual_seed(seed)
        self.load_dir, self.save_dir, self.count = load_dir, save_dir, 0
        if save_dir:
            save_dir.mkdir(parents=True, exist_ok=True)

    def draw(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        fname = f"{self.count:03d}_{name}.npy"
        self.count += 1
        if self.load_dir is not None:
            path = self.load_dir / fname
            if not path.exists():
                raise FileNotFoundError(f"noise file {path} is missing (expected shape {shape})")
            arr = np.load(path)
            if arr.shape != shape or arr.dtype != np.float32:
                raise ValueError(f"noise file {path} has shape {arr.shape} {arr.dtype}, expected {shape} float32")
            t = torch.from_numpy(arr.copy())
        else:
            t = torch.randn(shape, generator=self.gen, dtype=torch.float32)
        if self.save_dir is not None:
            np.save(self.save_dir / fname, np.ascontiguousarray(t.numpy().astype("<f4")))
        return t


class Models:
    def __init__(self, source: Path, reverse_unet: Path | None = None, reverse_base: Path | None = None,
                 reverse_attention: str = "rotated"):
        """reverse_attention "rotated" is the method; "own" is the TRF-style baseline the paper compares with:
        the reverse branch is the unmodified forward UNet on the flipped latents, with its own attention."""
        from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
        from transformers import CLIPVisionModelWithProjection

        reverse_unet = reverse_unet or source / "reverse_unet"
        if reverse_base is None and (source / "reverse_base").is_dir():
            reverse_base = source / "reverse_base"
        f32 = torch.float32
        self.unet = UNetSpatioTemporalConditionModel.from_pretrained(source / "unet", torch_dtype=f32).eval()
        self.vae = AutoencoderKLTemporalDecoder.from_pretrained(source / "vae", torch_dtype=f32).eval()
        self.clip = CLIPVisionModelWithProjection.from_pretrained(source / "image_encoder", torch_dtype=f32).eval()
        self.scheduler = EulerDiscreteScheduler.from_pretrained(source / "scheduler")
        rev = gi.load_reverse_unet(reverse_unet, self.unet)
        base = UNetSpatioTemporalConditionModel.from_pretrained(reverse_base, torch_dtype=f32).eval() if reverse_base else None
        if reverse_attention == "rotated":
            self.rev_unet = gi.authors_reverse_unet(self.unet, rev, base).eval()
            gi.attach_authors_processors(self.unet, self.rev_unet)
        elif reverse_attention == "own":
            self.rev_unet = self.unet
        else:
            raise ValueError(f"unknown reverse attention {reverse_attention!r}")
        fe = json.loads((source / "feature_extractor" / "preprocessor_config.json").read_text())
        self.mean = torch.tensor(fe["image_mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(fe["image_std"]).view(1, 3, 1, 1)


def clip_embedding(models: Models, img01: torch.Tensor) -> torch.Tensor:
    """diffusers' SVD `_encode_image` on an already-[0,1] tensor: antialiased resize to 224 in [-1,1], back to [0,1],
    CLIP mean/std. Returns (1, 1, D)."""
    from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

    x = _resize_with_antialiasing(img01 * 2.0 - 1.0, (224, 224))
    x = ((x + 1.0) / 2.0 - models.mean) / models.std
    return models.clip(pixel_values=x).image_embeds.unsqueeze(1)


def karras_sigmas(models: Models, steps: int) -> torch.Tensor:
    models.scheduler.set_timesteps(steps)
    return models.scheduler.sigmas.to(torch.float32)  # n + 1 values, last 0


def guidance_and_weights(p: Params, frames: int):
    ramp = torch.linspace(p.min_guidance_scale, p.max_guidance_scale, frames)
    if p.fusion == "average":
        g = (ramp + ramp.flip(0)) / 2
        return g, g, torch.full((frames,), 0.5)
    if p.fusion == "linear":
        return ramp, ramp, torch.linspace(1.0, 0.0, frames)
    if p.fusion == "forward-only":
        return ramp, ramp, torch.ones(frames)
    raise ValueError(f"unknown fusion {p.fusion!r}")


@torch.no_grad()
def generate(models: Models, a01: torch.Tensor, b01: torch.Tensor, p: Params, noise: Noise):
    """a01/b01: (1,3,H,W) keyframes in [0,1] at the model size. Returns (latents (1,F,4,h,w), frames (F,H,W,3) [0,1])."""
    frames = models.unet.config.num_frames
    _, _, H, W = a01.shape
    h, w = H // 8, W // 8

    # 1. encode: CLIP embeddings, VAE conditioning latents (one augmentation noise shared by both keyframes)
    emb_a, emb_b = clip_embedding(models, a01), clip_embedding(models, b01)
    aug = noise.draw("noise_aug", (1, 3, H, W))
    lat_a = models.vae.encode(a01 * 2 - 1 + p.noise_aug_strength * aug).latent_dist.mode()
    lat_b = models.vae.encode(b01 * 2 - 1 + p.noise_aug_strength * aug).latent_dist.mode()

    # 2. prepare: CFG batches [uncond, cond] (uncond = zero embedding and zero latents), micro-conditioning, sigmas
    def cond(emb, lat):
        ehs = torch.cat([torch.zeros_like(emb), emb])
        lat = lat.unsqueeze(1).repeat(1, frames, 1, 1, 1)
        return ehs, torch.cat([torch.zeros_like(lat), lat])

    ehs_a, clat_a = cond(emb_a, lat_a)
    ehs_b, clat_b = cond(emb_b, lat_b)
    ids = torch.tensor([[p.fps - 1, p.motion_bucket_id, p.noise_aug_strength]] * 2, dtype=torch.float32)
    sigmas = karras_sigmas(models, p.steps)
    g_fwd, g_rev, wts = guidance_and_weights(p, frames)
    g_fwd, g_rev, wts = (t.view(1, frames, 1, 1, 1) for t in (g_fwd, g_rev, wts))
    z = noise.draw("init_latents", (1, frames, 4, h, w)) * (sigmas.max() ** 2 + 1) ** 0.5  # diffusers' init_noise_sigma

    def flip_t(x):
        return x.flip(1)

    def step(z, i):
        s, s_next = sigmas[i], sigmas[i + 1]
        c_in = (s**2 + 1) ** 0.5  # divided by, in diffusers' order (scale_model_input)
        t = (0.25 * torch.log(s)).reshape(1)
        x1 = torch.cat([torch.cat([z, z]) / c_in, clat_a], dim=2)
        v1 = models.unet(x1, t, ehs_a, ids, return_dict=False)[0]  # records the 16 temporal attention maps
        v1 = v1[:1] + g_fwd * (v1[1:] - v1[:1])
        if p.fusion == "forward-only":
            v = v1
        else:
            zr = flip_t(z)
            x2 = torch.cat([torch.cat([zr, zr]) / c_in, clat_b], dim=2)
            v2 = models.rev_unet(x2, t, ehs_b, ids, return_dict=False)[0]  # uses them rotated 180 degrees
            v2 = v2[:1] + g_rev * (v2[1:] - v2[:1])
            v = wts * v1 + (1 - wts) * flip_t(v2)
        # diffusers' EulerDiscreteScheduler.step (v-prediction, s_churn = 0), operation for operation: the last
        # step computes z − (z − x0) at |z| ≈ 10³, where any reordering shows up as ~1e-4.
        x0 = v * (-s / (s**2 + 1) ** 0.5) + (z / (s**2 + 1))
        derivative = (z - x0) / s
        return z + derivative * (s_next - s)

    # 3. denoise: Euler over Karras sigmas; in the first ⌊ratio·steps⌋ steps, re-inject noise back to σ_i and redo
    n_inject = int(p.steps * p.noise_injection_ratio)
    for i in range(p.steps):
        z = step(z, i)
        if i < n_inject:
            for j in range(p.noise_injection_steps):
                eps = noise.draw(f"inject_step{i}_iter{j}", (1, frames, 4, h, w))
                z = z + eps * torch.sqrt(sigmas[i] ** 2 - sigmas[i + 1] ** 2)
                z = step(z, i)

    # 4. decode in temporal chunks
    chunk = p.decode_chunk_frames or frames
    lat = z[0] / models.vae.config.scaling_factor
    outs = [models.vae.decode(lat[k:k + chunk], num_frames=lat[k:k + chunk].shape[0]).sample
            for k in range(0, frames, chunk)]
    video = torch.cat(outs)  # (F,3,H,W) in [-1,1]
    frames01 = ((video + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).contiguous()
    return z, frames01


def load_keyframe(path: Path, height: int, width: int) -> torch.Tensor:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    if img.size != (width, height):
        print(f"reference: resizing {path} from {img.size[0]}x{img.size[1]} to {width}x{height} (PIL bicubic)",
              file=sys.stderr)
        img = img.resize((width, height), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def write_outputs(out: Path, latents: torch.Tensor, frames01: torch.Tensor) -> None:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "latents.npy", latents.numpy().astype("<f4"))
    np.save(out / "frames.npy", frames01.numpy().astype("<f4"))
    for i, f in enumerate(frames01.numpy()):
        Image.fromarray(np.round(np.clip(f, 0, 1) * 255).astype(np.uint8)).save(out / f"frame_{i:03d}.png")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.reference", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models-source", type=Path, required=True, help="diffusers folders (e.g. models/tiny/source)")
    ap.add_argument("--reverse-unet", type=Path)
    ap.add_argument("--reverse-base", type=Path)
    ap.add_argument("--from", dest="a", type=Path, required=True)
    ap.add_argument("--to", dest="b", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    d = Params()
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--noise-injection-steps", type=int, default=d.noise_injection_steps)
    ap.add_argument("--noise-injection-ratio", type=float, default=d.noise_injection_ratio)
    ap.add_argument("--motion-bucket", type=float, default=d.motion_bucket_id)
    ap.add_argument("--fps", type=float, default=d.fps)
    ap.add_argument("--noise-aug", type=float, default=d.noise_aug_strength)
    ap.add_argument("--guidance-min", type=float, default=d.min_guidance_scale)
    ap.add_argument("--guidance-max", type=float, default=d.max_guidance_scale)
    ap.add_argument("--fusion", choices=["average", "linear", "forward-only"], default=d.fusion)
    ap.add_argument("--decode-chunk", type=int)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--save-noise", type=Path)
    g.add_argument("--load-noise", type=Path)
    a = ap.parse_args(argv)
    p = Params(a.steps, a.seed, a.noise_injection_steps, a.noise_injection_ratio, a.motion_bucket, a.fps, a.noise_aug,
               a.guidance_min, a.guidance_max, a.fusion, a.decode_chunk)
    try:
        models = Models(a.models_source, a.reverse_unet, a.reverse_base)
        H = W = None
        cfg = json.loads((a.models_source / "vae" / "config.json").read_text())
        H = W = cfg.get("sample_size")
        # the package's H×W is what the Rust side uses; take it from the sibling manifest when there is one
        man = a.models_source.parent / "manifest.json"
        if man.exists():
            m = json.loads(man.read_text())
            H, W = m["height"], m["width"]
        ka, kb = load_keyframe(a.a, H, W), load_keyframe(a.b, H, W)
        noise = Noise(p.seed, a.load_noise, a.save_noise)
        latents, frames01 = generate(models, ka, kb, p, noise)
    except (FileNotFoundError, ValueError) as e:
        print(f"reference: error: {e}", file=sys.stderr)
        return 2
    write_outputs(a.out, latents, frames01)
    (a.out / "params.json").write_text(json.dumps(asdict(p), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

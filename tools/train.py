"""Training for svd-inbetween: SVD's objective from scratch (forward) and the paper's reverse-motion fine-tune.

    python -m tools.train forward --out DIR [--config tiny] [--vae-steps N] [--unet-steps N] [--batch B] ...
        VAE (AutoencoderKLTemporalDecoder) then UNet (UNetSpatioTemporalConditionModel) from scratch on the procedural
        world (tools.world) or a folder of frame folders; writes a diffusers SVD folder (model_index.json, unet/,
        vae/, image_encoder/, feature_extractor/, scheduler/) that tools.export takes unchanged.
    python -m tools.train reverse --svd DIR --out DIR [--steps N] [--batch B] [--grad-accum K]
                                  [--mixed-precision no|fp16|bf16] [--gradient-checkpointing] [--data world|FOLDER]
        Algorithm 1 of Wang et al. 2024 (arXiv 2408.15239): only the 32 attn1.to_v / attn1.to_out.0 weights of the
        16 temporal self-attention layers train; writes DIR/unet (the exporter's --reverse-unet, with --svd's unet as
        --reverse-base). The same command serves a real SVD folder on a GPU.
    python -m tools.train check-reverse --svd DIR --reverse-unet DIR/unet [--data world|world:rightward|FOLDER]
        The held-out loss Algorithm 1 lowers, paired on the same clips and noise: TRF's reverse branch, GI's without
        and with the fine-tune, and the forward model on the clips played forwards (a time-symmetric world shows no
        gap between the last and TRF: nothing for the fine-tune to learn).
    python -m tools.train average --svd DIR DIR2 [--reverse-unet REV REV2] [--weight 0.5] --out DIR
        Two runs of one model averaged weight by weight: the UNets (and the fine-tunes' 32 tensors); VAE and image
        encoder must be the same in both.
    python -m tools.train slim --reverse-unet DIR/unet --out DIR
        The fine-tune's 32 tensors alone (config.json beside them): every tool that takes a reverse UNet folder
        takes this one too, on top of the forward UNet (how models/tiny/source keeps it small).
    python -m tools.train plot --log DIR/log.jsonl --out curve.png

--data: the procedural world ('world', or 'world:rightward' for its one-way motion, tools.world.MOTIONS) or a folder
of frame folders (the user's own footage).

The UNet stages run on a GPU with --device cuda (forward's autoencoder stage stays on the CPU); forward's
--time-budget settles the step count on the measured pace, so a lent GPU's minutes end with a finished schedule.
Both stages checkpoint every --checkpoint-every steps into DIR/checkpoints/ and resume from the newest checkpoint
when run again with the same DIR (the data order is a function of the step, so a resumed run sees the same clips).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F_

from . import gi, world
from .tiny import CLIP_MEAN, CLIP_STD, tiny_clip, tiny_unet, tiny_vae, write_pipeline_folder

# SVD's training noise distribution (EDM, as in the authors' training code)
P_MEAN, P_STD = 0.7, 1.6
FPS_ID = 6.0  # 7 fps clips, passed as fps − 1 like SVD's pipeline
MOTION_BUCKET = 127.0
NOISE_AUG = 0.02
MOVING_TOL = 0.1  # a pixel "moves" when it changes by more than this (of [-1, 1]) in the clip: footage grain does not


# ---------------------------------------------------------------------------------------------- the objective
def sample_sigmas(batch: int, gen: torch.Generator) -> torch.Tensor:
    return torch.exp(P_MEAN + P_STD * torch.randn(batch, generator=gen))


def edm_scalings(sigma: torch.Tensor):
    """SVD's v-prediction preconditioning: (c_in, c_skip, c_out, c_noise, loss weight)."""
    s2 = sigma**2
    return 1 / torch.sqrt(s2 + 1), 1 / (s2 + 1), -sigma / torch.sqrt(s2 + 1), 0.25 * torch.log(sigma), (1 + s2) / s2


def moving_cells(clip: torch.Tensor, tol: float = MOVING_TOL) -> torch.Tensor:
    """(B,F,3,H,W) clip in [-1, 1] → (B,1,1,H/8,W/8): the share of each latent cell's pixels that change somewhere
    in the clip (max − min over the frames above `tol` in some channel) — what moves, where it starts and where it
    goes. It does not depend on the frames' order, so a clip and its time-reversal get the same cells."""
    changes = (clip.amax(1) - clip.amin(1)).amax(1, keepdim=True) > tol  # (B,1,H,W)
    return F_.avg_pool2d(changes.float(), 8).unsqueeze(1)


def region_weight(cells: torch.Tensor | None, moving_weight: float) -> torch.Tensor | None:
    """Per-latent-cell weight of the denoising loss: `moving_weight` on what moves, 1 on the still background. In
    the world the cells the sprites sweep are about a quarter of all (24 % in the rightward pool), so the plain loss
    is mostly the textured background — which every in-between metric but the still PSNR ignores. 1 (or no cells)
    is SVD's plain loss."""
    if cells is None or moving_weight == 1:
        return None
    return 1 + (moving_weight - 1) * cells


def denoising_loss(unet, latents, noise, sigma, cond_latents, embeds, time_ids, region=None):
    """latents, noise: (B,F,4,h,w); cond_latents: (B,4,h,w) (unscaled VAE mode, repeated over frames); embeds:
    (B,1,D); time_ids (B,3); region: None or (B,1,1,h,w) cell weights (region_weight), normalised per sample so
    they move the emphasis, not the scale. Returns (loss, per-sample loss)."""
    c_in, c_skip, c_out, c_noise, weight = (t.view(-1, 1, 1, 1, 1) if t.dim() else t for t in edm_scalings(sigma))
    noisy = latents + noise * sigma.view(-1, 1, 1, 1, 1)
    frames = latents.shape[1]
    x = torch.cat([noisy * c_in, cond_latents.unsqueeze(1).expand(-1, frames, -1, -1, -1).to(noisy.dtype)], dim=2)
    pred = unet(x, c_noise.flatten(), embeds, time_ids, return_dict=False)[0]
    denoised = pred.float() * c_out + noisy * c_skip
    err = weight * (denoised - latents) ** 2
    if region is None:
        per = err.flatten(1).mean(1)
    else:
        region = region.to(err.dtype).expand_as(err)
        per = (region * err).flatten(1).sum(1) / region.flatten(1).sum(1)
    return per.mean(), per.detach()


# ---------------------------------------------------------------------------------------------- data
class WorldData:
    """Clips of the procedural world; the seeds of step s are a pure function of (s, batch), all below the
    evaluation range. Also gives each clip's motion-bucket id from its true displacement."""

    def __init__(self, frames: int, height: int, width: int, seed_offset: int = 0, motion: str = "free"):
        self.frames, self.height, self.width, self.offset, self.motion = frames, height, width, seed_offset, motion

    def batch(self, step: int, size: int):
        seeds = [self.offset + step * size + i for i in range(size)]
        assert max(seeds) < world.EVAL_SEED_BASE, "training seeds must stay below the evaluation range"
        clips = [world.make_clip(s, self.frames, self.height, self.width, motion=self.motion) for s in seeds]
        x = np.stack([c.frames for c in clips]).transpose(0, 1, 4, 2, 3) * 2 - 1
        return torch.from_numpy(x.astype(np.float32)), torch.tensor([motion_bucket(c, self.width) for c in clips])


def motion_bucket(clip: world.Clip, width: int) -> float:
    """127 for the world's typical motion (mean sprite path ≈ 45 % of the width over the clip), proportional to it,
    clipped to SVD's 1–255."""
    tr = clip.tracks()
    path = np.linalg.norm(np.diff(tr, axis=1), axis=-1).sum(axis=1).mean()
    return float(np.clip(127.0 * path / (0.45 * width), 1.0, 255.0))


class FolderData:
    """The user's own footage: a folder of clip folders, each holding numbered frames (PNG/JPEG). A sample is F
    consecutive frames (every `stride`-th) from a random start, resized to the model size (bilinear, like the
    authors' loader). The motion bucket is the default 127 (no tracks to measure)."""

    EXT = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

    def __init__(self, root: Path, frames: int, height: int, width: int, stride: int = 1, seed: int = 0):
        self.frames, self.height, self.width, self.stride, self.seed = frames, height, width, stride, seed
        self.clips = []
        for d in sorted(p for p in Path(root).iterdir() if p.is_dir()):
            files = sorted(f for f in d.iterdir() if f.suffix.lower() in self.EXT)
            if len(files) >= (frames - 1) * stride + 1:
                self.clips.append(files)
        if not self.clips:
            raise SystemExit(f"train: {root} holds no folder with at least {(frames - 1) * stride + 1} frames "
                             f"(expected {root}/<clip>/<numbered frames>.png)")

    def batch(self, step: int, size: int):
        from PIL import Image

        rng = np.random.default_rng([self.seed, step])
        out = []
        for _ in range(size):
            files = self.clips[int(rng.integers(len(self.clips)))]
            span = (self.frames - 1) * self.stride + 1
            start = int(rng.integers(len(files) - span + 1))
            imgs = [Image.open(f).convert("RGB").resize((self.width, self.height), Image.BILINEAR)
                    for f in files[start:start + span:self.stride]]
            out.append(np.stack([np.asarray(i, np.float32) / 127.5 - 1 for i in imgs]).transpose(0, 3, 1, 2))
        return torch.from_numpy(np.stack(out)), torch.full((size,), MOTION_BUCKET)


def world_motion(spec: str) -> str | None:
    """'world' → "free", 'world:<motion>' → that motion (tools.world.MOTIONS); anything else (a folder) → None."""
    name, _, motion = spec.partition(":")
    if name != "world":
        return None
    if (motion or "free") not in world.MOTIONS:
        raise SystemExit(f"train: --data {spec}: the world's motions are {', '.join(world.MOTIONS)}")
    return motion or "free"


def make_data(spec: str, frames, height, width, stride=1, seed=0):
    motion = world_motion(spec)
    if motion:
        return WorldData(frames, height, width, seed_offset=seed * 10_000_000, motion=motion)
    return FolderData(Path(spec), frames, height, width, stride, seed)


# ---------------------------------------------------------------------------------------------- models
@dataclass
class Config:
    frames: int = 7
    height: int = 64
    width: int = 128
    # GroupNorm has 32 groups everywhere in these classes (hard-coded in the temporal decoder and the UNet's output
    # norm) and normalises each group over all pixels of a frame. With one or two channels a group it removes a
    # frame's absolute level: the autoencoder's last norms (the encoder's before the latent, the decoder's before the
    # RGB output) then cannot carry a flat background's colour (measured: every reconstruction got the same grey-green
    # background at 32 and at 64 channels). Three channels a group at full resolution and four at the latent's
    # resolution keep it; the UNet's deepest levels (2×4 and 1×2 latent pixels a frame) get two a group.
    channels: tuple = (32, 32, 64, 64)
    heads: tuple = (2, 2, 2, 2)
    vae_channels: tuple = (96, 64, 64, 128)


CONFIGS = {
    # today's embedded package: SVD-XT's block structure (16 temporal self-attention layers), widths shrunk
    "tiny": Config(),
    # the CI smoke test: the same UNet structure at 3 frames of 64×64, one-block VAE levels
    "smoke": Config(frames=3, height=64, width=64),
}


def config_of(a) -> Config:
    """--config, with --vae-channels (an autoencoder experiment) laid over it."""
    c = CONFIGS[a.config]
    return replace(c, vae_channels=a.vae_channels) if a.vae_channels else c


def new_unet(c: Config):
    return tiny_unet(c.frames, c.height, c.channels, c.heads)


def new_vae(c: Config):
    return tiny_vae(c.height, c.vae_channels)


def new_clip(seed: int = 20240828):
    """A fixed random CLIP vision tower of the real class (not trained: the conditioning latents carry the image;
    the embedding adds a fixed random projection of it to the cross-attention)."""
    torch.manual_seed(seed)
    return tiny_clip().eval()


class Encoders:
    """The frozen conditioning path, as SVD's pipeline and the authors' training compute it."""

    def __init__(self, vae, clip, mean=CLIP_MEAN, std=CLIP_STD):
        self.vae, self.clip = vae, clip
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    @torch.no_grad()
    def embed(self, img):  # img (B,3,H,W) in [-1,1] → (B,1,D)
        from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import \
            _resize_with_antialiasing

        dev = next(self.clip.parameters()).device
        x = _resize_with_antialiasing(img.float(), (224, 224))
        x = ((x + 1) / 2 - self.mean.to(dev)) / self.std.to(dev)
        return self.clip(pixel_values=x.to(self.clip.dtype)).image_embeds.unsqueeze(1).float()

    @torch.no_grad()
    def cond_latent(self, img, aug_noise, strength):  # VAE mode of the noise-augmented image, unscaled
        s = strength.view(-1, 1, 1, 1).to(img.device)
        return self.vae.encode((img + s * aug_noise.to(img.device)).to(self.vae.dtype)).latent_dist.mode().float()

    @torch.no_grad()
    def clip_latents(self, clip, gen):  # (B,F,3,H,W) → (B,F,4,h,w) sampled and scaled, as the authors train
        b, f = clip.shape[:2]
        dist = self.vae.encode(clip.flatten(0, 1).to(self.vae.dtype)).latent_dist
        z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen).to(dist.mean.device, dist.mean.dtype)
        return (z.float() * self.vae.config.scaling_factor).unflatten(0, (b, f))


# ---------------------------------------------------------------------------------------------- bookkeeping
class Run:
    """Output folder with a JSON-lines log, checkpoints every N steps (kept: the newest two) and resume."""

    def __init__(self, out: Path, every: int):
        self.out, self.every = Path(out), every
        self.ck = self.out / "checkpoints"
        self.ck.mkdir(parents=True, exist_ok=True)
        self.log = open(self.out / "log.jsonl", "a")
        self.t0 = time.time()

    def latest(self, prefix: str):
        cks = sorted(self.ck.glob(f"{prefix}-*.pt"))
        return torch.load(cks[-1], weights_only=False, map_location="cpu") if cks else None

    def resume(self, module, state: dict, what: str):
        """Loads a checkpoint's weights into the module this run built, or stops with the flags to fix: a checkpoint
        does not record the widths it was trained at, and PyTorch's own size-mismatch error does not name them."""
        problem = checkpoint_mismatch(module.state_dict(), state)
        if problem:
            raise SystemExit(f"train: the {what} checkpoint in {self.ck} does not fit the model this run builds "
                             f"({problem}). Resume with the --config and --vae-channels the run was started with, "
                             f"or train into a new --out folder.")
        module.load_state_dict(state)

    def save(self, prefix: str, step: int, state: dict):
        path = self.ck / f"{prefix}-{step:07d}.pt"
        torch.save(state, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)
        for old in sorted(self.ck.glob(f"{prefix}-*.pt"))[:-2]:
            old.unlink()

    def record(self, **kv):
        kv.update(wall_s=round(time.time() - self.t0, 2), peak_rss_mb=peak_rss_mb())
        self.log.write(json.dumps(kv) + "\n")
        self.log.flush()


def checkpoint_mismatch(mine: dict, saved: dict) -> str | None:
    """The first difference between two state dicts' names and shapes, in words; None when they match."""
    for name in mine.keys() - saved.keys():
        return f"it lacks {name}"
    for name in saved.keys() - mine.keys():
        return f"it has {name}, which this model lacks"
    for name, t in mine.items():
        if tuple(t.shape) != tuple(saved[name].shape):
            return f"{name} is {tuple(saved[name].shape)} there, {tuple(t.shape)} here"
    return None


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def peak_gpu_mb(dev: torch.device) -> float | None:
    """The most GPU memory PyTorch's allocator held (None on the CPU)."""
    return round(torch.cuda.max_memory_allocated(dev) / 2**20, 1) if dev.type == "cuda" else None


def lr_at(step, total, base, warmup):
    """Linear warm-up, then cosine to 10 % of the base rate."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


# ---------------------------------------------------------------------------------------------- forward stage
def init_posterior_std_(vae, logvar: float) -> None:
    """Starts the encoder's posterior narrow (log-variance `logvar`), as a trained SD autoencoder has it. At diffusers'
    default init the sampled latent is nearly pure noise (measured on the tiny VAE: latent means with std 0.25 against
    a posterior std of 1.1), so the decoder can only learn the mean picture and the loss stalls until the encoder
    slowly shrinks its variance — the plateau of the first run (docs/QUALITY.md)."""
    conv = vae.quant_conv if getattr(vae, "quant_conv", None) is not None else vae.encoder.conv_out
    lc = conv.out_channels // 2
    with torch.no_grad():
        conv.bias[lc:] = logvar


def autocast(a, device: torch.device | str = "cpu"):
    """bf16 autocast (fp32 master weights): on the CPU faster steps on CPUs with AVX512-BF16/AMX (measured here, one
    core: a VAE step 2.2-2.6 s against 3.3-4.7 s, the encoder 1.7 s against 5.3 s), on a GPU the usual mixed
    precision; `--autocast no` keeps fp32."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=a.autocast == "bf16")


def pick_device(spec: str) -> torch.device:
    """`auto` is CUDA when PyTorch sees a GPU, else the CPU; a named device is taken as given."""
    return torch.device(spec if spec != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))


def steps_within(seconds: float, pace: float) -> int:
    """How many more steps of `pace` seconds each fit in `seconds` (none when the time is already spent)."""
    return max(0, int(seconds / pace)) if pace > 0 else 0


def train_vae(a, cfg: Config, run: Run, data):
    vae = new_vae(cfg)
    if a.vae_logvar_init is not None:
        init_posterior_std_(vae, a.vae_logvar_init)
    opt = torch.optim.AdamW(vae.parameters(), lr=a.vae_lr, weight_decay=0.0)
    start = 0
    st = run.latest("vae")
    if st:
        run.resume(vae, st["model"], "VAE")
        opt.load_state_dict(st["opt"])
        start = st["step"]
        print(f"train: resuming the VAE at step {start}", file=sys.stderr)
    gen = torch.Generator().manual_seed(a.seed)
    for step in range(start, a.vae_steps):
        gen.manual_seed(a.seed * 1_000_003 + step)
        x, _ = data.batch(step, a.vae_batch)
        flat = x.flatten(0, 1)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.vae_steps, a.vae_lr, 50)
        with autocast(a):
            dist = vae.encode(flat).latent_dist
            z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen)
            rec = vae.decode(z, num_frames=x.shape[1]).sample.float()
        mse = F_.mse_loss(rec, flat)
        kl = dist.kl().float().mean() / z[0].numel()
        loss = reconstruction_loss(rec, flat, a.vae_saturated_weight) + a.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 10 == 0 or step == a.vae_steps - 1:
            lv, mv = loss.item(), mse.item()
            run.record(stage="vae", step=step, loss=lv, mse=mv, kl=kl.item())
            print(f"vae {step:5d} loss {lv:.4f} mse {mv:.4f}", file=sys.stderr)
        if (step + 1) % a.checkpoint_every == 0 or step == a.vae_steps - 1:
            run.save("vae", step + 1, {"model": vae.state_dict(), "opt": opt.state_dict(), "step": step + 1})
    vae.eval().requires_grad_(False)
    # Like SD's 0.18215: scale the sampled latents to unit variance, measured on clips no step trained on.
    with torch.no_grad():
        x, _ = data.batch(9_000_000 // 64, 64)  # seeds 9,000,000…: neither stage trains on them
        sf = 1.0 / float(vae.encode(x.flatten(0, 1)).latent_dist.mean.std())
    vae.register_to_config(scaling_factor=round(sf, 5))
    return vae


def saliency_weight(x: torch.Tensor, saturated: float) -> torch.Tensor:
    """Per-pixel weight of the VAE's reconstruction loss: `saturated` on strongly coloured pixels, 1 elsewhere. In the
    procedural world the sprites are the saturated pixels and cover a few percent of a frame; with a plain pixel loss
    a small autoencoder first learns the backgrounds and drops the sprites (measured: none survived 200 steps). On
    footage it favours coloured detail in the same way; 1 turns it off."""
    rgb = (x + 1) / 2
    sat = rgb.amax(1, keepdim=True) - rgb.amin(1, keepdim=True)
    return 1 + (saturated - 1) * (sat > 0.4).float()


def reconstruction_loss(rec, target, saturated_weight):
    weight = saliency_weight(target, saturated_weight)
    return (weight * ((rec - target) ** 2 + 0.5 * (rec - target).abs())).mean() / weight.mean()


def decoder(a) -> int:
    """Fine-tunes the VAE's temporal decoder with the encoder frozen — as SVD's own temporal decoder was trained on a
    frozen image encoder. The latent space (and its scaling factor) does not move, so a UNet trained on this
    encoder's latents keeps working while its decoder improves; the two can train side by side."""
    from diffusers import AutoencoderKLTemporalDecoder

    torch.set_num_threads(a.threads)
    vae = AutoencoderKLTemporalDecoder.from_pretrained(a.vae, torch_dtype=torch.float32)
    cfg = Config(frames=a.frames, height=a.height, width=a.width)
    run = Run(a.out, a.checkpoint_every)
    data = make_data(a.data, cfg.frames, cfg.height, cfg.width, a.stride, a.seed)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False) if getattr(vae, "quant_conv", None) is not None else None
    params = [p for p in vae.decoder.parameters()]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
    start = 0
    st = run.latest("decoder")
    if st:
        run.resume(vae.decoder, st["model"], "decoder")
        opt.load_state_dict(st["opt"])
        start = st["step"]
        print(f"train: resuming the decoder at step {start}", file=sys.stderr)
    gen = torch.Generator()
    for step in range(start, a.steps):
        gen.manual_seed(a.seed * 3_000_017 + step)
        x, _ = data.batch(step + 3_000_000 // max(1, a.batch), a.batch)
        flat = x.flatten(0, 1)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.steps, a.lr, 50)
        with torch.no_grad():
            dist = vae.encode(flat).latent_dist
            z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen)
        with autocast(a):
            rec = vae.decode(z, num_frames=x.shape[1]).sample.float()
        loss = reconstruction_loss(rec, flat, a.saturated_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 10 == 0 or step == a.steps - 1:
            lv = loss.item()
            run.record(stage="decoder", step=step, loss=lv, mse=F_.mse_loss(rec, flat).item())
            print(f"decoder {step:5d} loss {lv:.4f}", file=sys.stderr)
        if (step + 1) % a.checkpoint_every == 0 or step == a.steps - 1:
            run.save("decoder", step + 1, {"model": vae.decoder.state_dict(), "opt": opt.state_dict(),
                                           "step": step + 1})
            vae.save_pretrained(Path(a.out) / "vae")
    return 0


@torch.no_grad()
def encode_clips(enc, x, buckets, gen, precision) -> dict:
    """What a UNet step needs of B clips (B,F,3,H,W), all from the frozen encoders: every frame's posterior (mean,
    std; unscaled), the conditioning latent (VAE mode of the first frame noise-augmented at a drawn strength: 0.02
    for half the clips, uniform in [0, 0.1] for the rest), the first frame's CLIP embedding, the strength and the
    motion bucket."""
    b, f = x.shape[:2]
    strength = torch.where(torch.rand(b, generator=gen) < 0.5, torch.full((b,), NOISE_AUG),
                           torch.rand(b, generator=gen) * 0.1)
    aug = torch.randn(x[:, 0].shape, generator=gen)
    with precision:
        dist = enc.vae.encode(x.flatten(0, 1).to(enc.vae.dtype)).latent_dist
        cond = enc.cond_latent(x[:, 0], aug, strength)
    return {"mean": dist.mean.float().unflatten(0, (b, f)), "std": dist.std.float().unflatten(0, (b, f)),
            "cond": cond.float(), "emb": enc.embed(x[:, 0]), "strength": strength, "bucket": buckets.float(),
            "moving": moving_cells(x)}


class LatentPool:
    """Clips encoded once by the frozen encoders (`python -m tools.train encode`), shards of encode_clips' output.
    On a CPU the encoder costs as much as a UNet step (measured: 1.7 s for the 112 frames of a 16-clip batch, bf16),
    so the UNet draws its batches from a pool and sees each clip a few times instead; the posterior is re-sampled at
    every draw. The batch of step s is a function of (seed, s), so a resumed run sees the same clips."""

    def __init__(self, root: Path, seed: int, device: torch.device | str = "cpu"):
        shards = sorted(Path(root).glob("pool-*.pt"))
        if not shards:
            raise SystemExit(f"train: {root} holds no pool-*.pt shards (write them with `python -m tools.train encode`)")
        parts = [torch.load(p, weights_only=True, map_location="cpu") for p in shards]
        # an `encode` upgrade stopped part-way leaves shards with and without the moving cells
        odd = [p.name for p, e in zip(shards, parts) if e.keys() != parts[0].keys()]
        if odd:
            raise SystemExit(f"train: {root}: shards {', '.join(odd[:3])}{' …' if len(odd) > 3 else ''} hold other "
                             f"tensors than {shards[0].name} ({', '.join(sorted(parts[0]))}); run the `encode` "
                             "command that wrote the pool on it again (it completes the older shards)")
        self.t = {k: torch.cat([p[k] for p in parts]).float().to(device) for k in parts[0]}  # stored as bf16
        self.n, self.seed = len(self.t["mean"]), seed
        print(f"train: latent pool of {self.n} clips from {len(shards)} shards", file=sys.stderr)

    def batch(self, step: int, size: int) -> dict:
        idx = torch.from_numpy(np.random.default_rng([self.seed, step]).choice(self.n, size, replace=False))
        return {k: v[idx.to(v.device)] for k, v in self.t.items()}


def write_shard(path: Path, e: dict, what: str = "") -> None:
    """One pool shard, its large tensors as bf16, written whole or not at all (an interrupted encode resumes)."""
    e = {k: (v.to(torch.bfloat16) if k in ("mean", "std", "cond", "moving") else v).cpu() for k, v in e.items()}
    torch.save(e, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)
    print(f"encode: {path.name}" + (f" ({what})" if what else ""), file=sys.stderr, flush=True)


def encode(a) -> int:
    """Writes pool shards of `--chunk` world clips each (seeds 5·10⁶ + i: the UNet's block, never the VAE's), clips
    [first, first + count); existing shards are kept, so an interrupted run resumes and processes can split ranges."""
    from diffusers import AutoencoderKLTemporalDecoder

    torch.set_num_threads(a.threads)
    dev = pick_device(a.device)
    vae = AutoencoderKLTemporalDecoder.from_pretrained(a.vae, torch_dtype=torch.float32).eval().requires_grad_(False)
    enc = Encoders(vae.to(dev), new_clip().to(dev))
    motion = world_motion(a.data)
    if motion is None:
        raise SystemExit(f"train: encode takes the world (--data world or world:<motion>), not {a.data}")
    data = WorldData(a.frames, a.height, a.width, seed_offset=5_000_000, motion=motion)
    a.out.mkdir(parents=True, exist_ok=True)
    for chunk in range(a.first // a.chunk, (a.first + a.count) // a.chunk):
        path = a.out / f"pool-{chunk * a.chunk:08d}.pt"
        if path.exists():
            e = torch.load(path, weights_only=True)
            if "moving" not in e:  # a pool encoded before the cells were stored: the clips give them, no encoder
                write_shard(path, {**e, "moving": moving_cells(data.batch(chunk, a.chunk)[0])}, "moving cells added")
            continue
        x, buckets = data.batch(chunk, a.chunk)
        gen = torch.Generator().manual_seed(a.seed * 5_000_011 + chunk)
        write_shard(path, encode_clips(enc, x.to(dev), buckets, gen, autocast(a, dev)))
    return 0


def check_init_fits(unet, cfg: Config, folder: Path) -> None:
    """The clips this run draws must be ones the --init UNet takes: latents of 1/8 the frame's height with 4
    channels (8 in: the conditioning latent's 4 beside them)."""
    size = unet.config.sample_size
    high = size[0] if isinstance(size, (list, tuple)) else size
    if unet.config.in_channels != 8 or high * 8 != cfg.height:
        raise SystemExit(f"train: {folder / 'unet'} takes {high * 8}-pixel-high clips with "
                         f"{unet.config.in_channels} input channels; this run draws {cfg.height}-pixel-high clips "
                         "(--config). Pick the --config of the folder's model.")


def forward(a) -> int:
    cfg = config_of(a)
    torch.set_num_threads(a.threads)
    dev = pick_device(a.device)
    run = Run(a.out, a.checkpoint_every)
    data = make_data(a.data, cfg.frames, cfg.height, cfg.width, a.stride, a.seed)
    torch.manual_seed(a.seed)
    if a.init:
        unet, vae, clip, mean, std = load_svd(a.init, torch.float32)
        check_init_fits(unet, cfg, a.init)
        enc = Encoders(vae, clip, mean, std)
        print(f"train: the UNet starts from {a.init / 'unet'} (its VAE and image encoder are kept)", file=sys.stderr)
    else:
        vae = train_vae(a, cfg, run, data)
        clip = new_clip()
        enc = Encoders(vae, clip)
        unet = new_unet(cfg)
    for m in (unet, enc.vae, enc.clip):
        m.to(dev)
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=a.lr, weight_decay=0.01, fused=dev.type == "cuda")
    start, total, settled = 0, a.unet_steps, None
    st = run.latest("unet")
    if st:
        run.resume(unet, st["model"], "UNet")
        ema.load_state_dict(st["ema"]), opt.load_state_dict(st["opt"])
        settled = st.get("settled_total")  # a budgeted run keeps the length it settled on
        start, total = st["step"], settled or total
        print(f"train: resuming the UNet at step {start} of {total}", file=sys.stderr)
    gen = torch.Generator()  # on the CPU whatever the device: the same draws on a GPU and here
    b = a.batch
    pool = LatentPool(a.latent_pool, a.seed, dev) if a.latent_pool else None
    if pool and a.moving_weight != 1 and "moving" not in pool.t:
        raise SystemExit(f"train: {a.latent_pool} was encoded without the moving cells --moving-weight needs; "
                         "run the same `encode` command on it again (it adds them without the encoder)")
    sf = vae.config.scaling_factor
    settle = start + 30 if a.time_budget and not settled else None
    t_loop, t_pace = time.time(), None
    step = start
    while step < total:
        gen.manual_seed(a.seed * 7_000_003 + step)
        if pool:
            e = pool.batch(step, b)
        else:  # the UNet sees other clips than the VAE did (a second seed block)
            x, buckets = data.batch(step + 5_000_000 // max(1, b), b)
            e = encode_clips(enc, x.to(dev), buckets, gen, autocast(a, dev))
            e = {k: v.to(dev) for k, v in e.items()}  # the strength and bucket are drawn on the CPU
        latents = (e["mean"] + e["std"] * torch.randn(e["mean"].shape, generator=gen).to(dev)) * sf
        cond, emb, strength = e["cond"], e["emb"], e["strength"]
        # conditioning dropout, so that classifier-free guidance (zero embedding + zero latents) means something
        r = torch.rand(b, generator=gen).to(dev)
        drop_both, drop_emb, drop_lat = r < a.drop, (r >= a.drop) & (r < a.drop * 1.5), (r >= a.drop * 1.5) & (r < a.drop * 2)
        emb = emb * (~(drop_both | drop_emb)).float().view(-1, 1, 1)
        cond = cond * (~(drop_both | drop_lat)).float().view(-1, 1, 1, 1)
        ids = torch.stack([torch.full((b,), FPS_ID, device=dev), e["bucket"], strength], dim=1)
        sigma = sample_sigmas(b, gen).to(dev)
        noise = torch.randn(latents.shape, generator=gen).to(dev)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, a.lr, a.warmup)
        region = region_weight(e.get("moving"), a.moving_weight)
        with autocast(a, dev):
            loss, _ = denoising_loss(unet, latents, noise, sigma, cond, emb, ids, region)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(a.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(list(ema.parameters()), list(unet.parameters()), 1 - d)
        if settle is not None and step == settle - 20:
            t_pace = time.time()  # the pace is measured after the first steps' warm-up (allocations, autotuning)
        if settle is not None and step == settle:
            pace = (time.time() - t_pace) / 20
            total = settled = min(total, step + 1 + steps_within(a.time_budget - (time.time() - t_loop), pace))
            run.record(stage="unet", step=step, pace_s=round(pace, 4), planned_steps=total)
            print(f"train: {pace * 1000:.1f} ms a step; {total} steps fit the {a.time_budget:.0f} s budget",
                  file=sys.stderr)
        if step % 10 == 0 or step == total - 1:
            lv = loss.item()
            run.record(stage="unet", step=step, loss=lv, grad_norm=float(gn), lr=opt.param_groups[0]["lr"])
            print(f"unet {step:5d} loss {lv:.4f}", file=sys.stderr)
        if (step + 1) % a.checkpoint_every == 0 or step == total - 1:
            run.save("unet", step + 1, {"model": unet.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                                        "step": step + 1, "settled_total": settled})
        step += 1
    write_pipeline_folder(Path(a.out) / "svd", (ema if a.ema > 0 else unet).cpu(), vae.cpu(), clip.cpu())
    (Path(a.out) / "svd" / "training.json").write_text(json.dumps({
        "stage": "forward", "args": {k: str(v) for k, v in vars(a).items() if k != "func"}, "config": asdict(cfg),
        "wall_s": round(time.time() - run.t0, 1), "peak_rss_mb": peak_rss_mb(), "device": str(dev),
        "peak_gpu_mb": peak_gpu_mb(dev), "unet_steps_run": total,
        "vae_scaling_factor": vae.config.scaling_factor}, indent=2))
    print(f"train: wrote {Path(a.out) / 'svd'}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------- reverse stage
def trainable_reverse_params(unet) -> dict[str, torch.nn.Parameter]:
    """The 32 tensors Algorithm 1 trains; everything else is frozen."""
    unet.requires_grad_(False)
    named = {n: p for n, p in unet.named_parameters() if gi.is_reverse_key(n)}
    if len(named) != 32:
        raise SystemExit(f"train: expected 32 reverse-motion tensors (16 temporal attn1 × to_v/to_out.0), found "
                         f"{len(named)}: is this an SVD UNet?")
    for p in named.values():
        p.requires_grad_(True)
    return named


def load_reverse_tensors_(params: dict, folder: Path) -> None:
    """Starts the 32 trained tensors from another fine-tune's UNet folder (an earlier run on a base that has since
    trained on, or been widened): everything else stays the --svd base's."""
    from safetensors.torch import load_file

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise SystemExit(f"train: --init-reverse {folder}: no .safetensors weights there (a diffusers UNet folder)")
    saved = load_file(files[0])
    mine = {n: p.detach() for n, p in params.items()}
    problem = checkpoint_mismatch(mine, {n: saved[n] for n in mine if n in saved})
    if problem:
        raise SystemExit(f"train: --init-reverse {folder} does not fit the --svd UNet ({problem})")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(saved[n])


def reverse_inputs(enc, clip, gen):
    """The two sides of one Algorithm 1 sample, each (latents, noise, σ, conditioning latent, embedding) for
    denoising_loss. clip: (B,F,3,H,W) forward in time. The forward side is the clip conditioned on its first frame,
    the reverse side the same noisy video flipped in time conditioned on the last frame (one noise, one σ, one
    augmentation noise for both conditioning images)."""
    b = clip.shape[0]
    rev = clip.flip(1)
    lat_rev = enc.clip_latents(rev, gen)
    aug = torch.randn(clip[:, 0].shape, generator=gen)
    strength = torch.full((b,), NOISE_AUG)
    cond_fwd, cond_rev = enc.cond_latent(clip[:, 0], aug, strength), enc.cond_latent(rev[:, 0], aug, strength)
    sigma = sample_sigmas(b, gen).to(clip.device)
    eps = torch.randn(lat_rev.shape, generator=gen).to(clip.device)
    return ((lat_rev.flip(1), eps.flip(1), sigma, cond_fwd, enc.embed(clip[:, 0])),
            (lat_rev, eps, sigma, cond_rev, enc.embed(rev[:, 0])))


def reverse_step_loss(ref, trainable, enc, clip, gen, time_ids, moving_weight: float = 1.0):
    """One step of Algorithm 1: the frozen reference sees the forward side and records its 16 temporal attention
    maps (gi.StoreProbs); the trainable copy sees the reverse side and uses the maps rotated 180° (gi.FlipProbs)."""
    fwd, rev = reverse_inputs(enc, clip, gen)
    with torch.no_grad():
        denoising_loss(ref, *fwd, time_ids)
    return denoising_loss(trainable, *rev, time_ids, region_weight(moving_cells(clip), moving_weight))


def clip_size_of(a, unet_config) -> tuple[int, int, int]:
    """(frames, height, width) of the clips: each flag where given, else the UNet's (its sample size × 8 high, twice
    that wide)."""
    size = unet_config.sample_size * 8
    return a.frames or unet_config.num_frames, a.height or size, a.width or size * 2


def load_svd(svd: Path, dtype):
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionModelWithProjection

    for sub in ("unet", "vae", "image_encoder"):
        if not (svd / sub).is_dir():
            raise SystemExit(f"train: {svd} has no {sub}/: expected a diffusers SVD folder (e.g. "
                             "stable-video-diffusion-img2vid, or the output of `tools.train forward`)")
    unet = UNetSpatioTemporalConditionModel.from_pretrained(svd / "unet", torch_dtype=torch.float32)
    vae = AutoencoderKLTemporalDecoder.from_pretrained(svd / "vae", torch_dtype=dtype).eval().requires_grad_(False)
    clip = CLIPVisionModelWithProjection.from_pretrained(svd / "image_encoder", torch_dtype=dtype).eval()
    clip.requires_grad_(False)
    fe = svd / "feature_extractor" / "preprocessor_config.json"
    mean, std = (json.loads(fe.read_text())["image_mean"], json.loads(fe.read_text())["image_std"]) if fe.exists() \
        else (CLIP_MEAN, CLIP_STD)
    return unet, vae, clip, mean, std


def reverse(a) -> int:
    torch.set_num_threads(a.threads)
    dev = pick_device(a.device)
    half = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[a.mixed_precision]
    unet, vae, clip, mean, std = load_svd(a.svd, half)
    cfg = unet.config
    frames, height, width = clip_size_of(a, cfg)
    run = Run(a.out, a.checkpoint_every)
    data = make_data(a.data, frames, height, width, a.stride, a.seed + 1)
    ref = copy.deepcopy(unet).to(dev, half).eval().requires_grad_(False)
    trainable = unet.to(dev)
    if half != torch.float32:  # frozen weights in half precision, the 32 trained tensors stay fp32 (autocast)
        trainable.to(half)
    params = trainable_reverse_params(trainable)
    for p in params.values():
        p.data = p.data.float()
    if a.gradient_checkpointing:
        trainable.enable_gradient_checkpointing()
    trainable.train()
    gi.attach_authors_processors(ref, trainable)
    enc = Encoders(vae.to(dev), clip.to(dev), mean, std)
    opt = torch.optim.AdamW(params.values(), lr=a.lr, weight_decay=0.01)
    scaler = torch.amp.GradScaler(dev.type, enabled=half == torch.float16)
    start = 0
    st = run.latest("reverse")
    if st:
        with torch.no_grad():
            for n, t in st["tensors"].items():
                params[n].copy_(t)
        opt.load_state_dict(st["opt"])
        start = st["step"]
        print(f"train: resuming the reverse fine-tune at step {start}", file=sys.stderr)
    elif a.init_reverse:
        load_reverse_tensors_(params, a.init_reverse)
        print(f"train: the 32 tensors start from {a.init_reverse} (fresh optimiser)", file=sys.stderr)
    gen = torch.Generator()
    ids = torch.tensor([[FPS_ID, MOTION_BUCKET, NOISE_AUG]] * a.batch, device=dev)
    for step in range(start, a.steps):
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(a.grad_accum):
            gen.manual_seed(a.seed * 9_000_011 + step * a.grad_accum + micro)
            x, _ = data.batch(step * a.grad_accum + micro + 7_000_000 // max(1, a.batch), a.batch)
            with torch.autocast(dev.type, dtype=half, enabled=half != torch.float32):
                loss, _ = reverse_step_loss(ref, trainable, enc, x.to(dev), gen, ids, a.moving_weight)
            scaler.scale(loss / a.grad_accum).backward()
            total += loss.item() / a.grad_accum
        scaler.unscale_(opt)
        gn = torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        scaler.step(opt)
        scaler.update()
        if step % 10 == 0 or step == a.steps - 1:
            run.record(stage="reverse", step=step, loss=total, grad_norm=float(gn))
            print(f"reverse {step:5d} loss {total:.4f}", file=sys.stderr)
        if (step + 1) % a.checkpoint_every == 0 or step == a.steps - 1:
            run.save("reverse", step + 1, {"tensors": {n: p.detach().cpu() for n, p in params.items()},
                                           "opt": opt.state_dict(), "step": step + 1})
    # a UNet folder: the loaded weights (fp32 on disk) with the 32 trained tensors
    from diffusers import UNetSpatioTemporalConditionModel

    out_unet = UNetSpatioTemporalConditionModel.from_pretrained(a.svd / "unet", torch_dtype=torch.float32)
    with torch.no_grad():
        sd = out_unet.state_dict()
        for n, p in params.items():
            sd[n].copy_(p.detach().float().cpu())
    out_unet.save_pretrained(Path(a.out) / "unet")
    (Path(a.out) / "training.json").write_text(json.dumps({
        "stage": "reverse", "args": {k: str(v) for k, v in vars(a).items() if k != "func"},
        "wall_s": round(time.time() - run.t0, 1), "peak_rss_mb": peak_rss_mb(), "device": str(dev),
        "peak_gpu_mb": peak_gpu_mb(dev)}, indent=2))
    print(f"train: wrote {Path(a.out) / 'unet'} (use it as --reverse-unet with --reverse-base {a.svd / 'unet'})",
          file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------- reverse check
SIGMA_BANDS = ((0.0, 0.5), (0.5, 3.0), (3.0, None))  # fine detail · placement · layout (the sampler goes 700 → 0.002)


def mean_ci95(x: np.ndarray, draws: int = 2000, seed: int = 0) -> dict:
    """Mean of per-clip values with a 95 % bootstrap interval over the clips."""
    picks = np.random.default_rng(seed).integers(0, len(x), size=(draws, len(x)))
    lo, hi = np.percentile(x[picks].mean(1), [2.5, 97.5])
    return {"mean": float(x.mean()), "ci95": [float(lo), float(hi)]}


def check_reverse(a) -> int:
    """Held-out denoising loss of the reverse branch, which is what Algorithm 1 lowers: on reversed clips
    conditioned on their last frame, paired (same clip, noise and σ), for
      trf      the forward UNet with its own attention (TRF's reverse branch),
      rotated  the forward UNet using the forward pass's maps rotated 180° (GI without the fine-tune),
      gi       the fine-tuned reverse UNet using them (GI),
    beside the forward UNet on the clips played forwards (forward). trf − forward is how much less likely the
    forward model finds a clip played backwards: on a time-symmetric world ≈ 0, and the fine-tune has nothing to
    learn. World clips come from the validation seeds; a footage folder should hold clips the fine-tune never saw."""
    torch.set_num_threads(a.threads)
    dev = pick_device(a.device)
    unet, vae, clip, mean, std = load_svd(a.svd, torch.float32)
    from diffusers import UNetSpatioTemporalConditionModel

    for folder in filter(None, (a.reverse_unet, a.reverse_base)):
        if not (folder / "config.json").exists():
            raise SystemExit(f"train: {folder} is not a UNet folder (no config.json): expected the unet/ that "
                             "`tools.train reverse` wrote (--reverse-unet) or the UNet it started from "
                             "(--reverse-base)")
    rev_unet = gi.load_reverse_unet(a.reverse_unet, unet)
    base = UNetSpatioTemporalConditionModel.from_pretrained(a.reverse_base, torch_dtype=torch.float32) \
        if a.reverse_base else None
    # one UNet serves every branch (a real SVD UNet is 6 GB): the branches differ in the 32 tensors and in what the
    # 16 temporal layers attend with, both swapped per branch
    tuned = {n: t.to(dev) for n, t in gi.merge_reverse_weights(unet, rev_unet, base).items()}
    unet = unet.to(dev).eval()
    own = {n: p.detach().clone() for n, p in unet.named_parameters() if n in tuned}
    params = dict(unet.named_parameters())
    layers = [m for _, m in gi.temporal_self_attention_layers(unet)]
    store: list = [None] * len(layers)

    def branch(weights: dict, processor) -> None:
        with torch.no_grad():
            for n, t in weights.items():
                params[n].copy_(t)
        for i, m in enumerate(layers):
            m.set_processor(processor(store, i))

    cfg = unet.config
    frames, height, width = clip_size_of(a, cfg)
    motion = world_motion(a.data)
    data = WorldData(frames, height, width, seed_offset=world.VALIDATION_SEED_BASE, motion=motion) if motion \
        else FolderData(Path(a.data), frames, height, width, a.stride, a.seed)
    enc = Encoders(vae.to(dev), clip.to(dev), mean, std)
    gen = torch.Generator()
    ids = torch.tensor([[FPS_ID, MOTION_BUCKET, NOISE_AUG]] * a.batch, device=dev)
    losses, sigmas = {k: [] for k in ("forward", "trf", "rotated", "gi")}, []
    with torch.no_grad(), autocast(a, dev):
        for step in range(math.ceil(a.clips / a.batch)):
            gen.manual_seed(a.seed * 9_000_011 + step)
            x, _ = data.batch(step, a.batch)
            fwd, rev = reverse_inputs(enc, x.to(dev), gen)
            branch(own, gi.StoreProbs)  # the forward branch records its maps
            losses["forward"].append(denoising_loss(unet, *fwd, ids)[1])
            branch(own, gi.FlipProbs)
            losses["rotated"].append(denoising_loss(unet, *rev, ids)[1])
            branch(tuned, gi.FlipProbs)
            losses["gi"].append(denoising_loss(unet, *rev, ids)[1])
            branch(own, gi.StoreProbs)  # own attention (the store is not read again this step)
            losses["trf"].append(denoising_loss(unet, *rev, ids)[1])
            sigmas.append(fwd[2])
    per = {k: torch.cat(v).float().cpu().numpy().astype(np.float64) for k, v in losses.items()}
    sig = torch.cat(sigmas).cpu().numpy()
    report = {"svd": str(a.svd), "reverse_unet": str(a.reverse_unet), "data": a.data, "clips": len(sig),
              "loss": {k: mean_ci95(v) for k, v in per.items()}, "minus_trf": {}, "bands": []}
    for k in ("forward", "rotated", "gi"):
        report["minus_trf"][k] = mean_ci95(per[k] - per["trf"])
    for lo, hi in SIGMA_BANDS:
        m = (sig >= lo) & (sig < (hi or math.inf))
        if m.sum() >= 2:
            report["bands"].append({"sigma": [lo, hi], "clips": int(m.sum()),
                                    **{f"{k}_minus_trf": mean_ci95(per[k][m] - per["trf"][m])
                                       for k in ("forward", "rotated", "gi")}})
    if a.out:
        a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(reverse_report_text(report))
    return 0


def reverse_report_text(r: dict) -> str:
    def ci(d):
        return f"{d['mean']:+.5f} [{d['ci95'][0]:+.5f}, {d['ci95'][1]:+.5f}]"

    lines = [f"check-reverse: {r['clips']} clips of {r['data']}; held-out loss of the reverse branch, and minus TRF's "
             "(paired; negative = better than TRF)"]
    for k, d in r["loss"].items():
        vs = f"   minus trf {ci(r['minus_trf'][k])}" if k in r["minus_trf"] else ""
        lines.append(f"  {k:8s} {d['mean']:.5f}{vs}")
    for b in r["bands"]:
        lo, hi = b["sigma"]
        lines.append(f"  σ in [{lo}, {hi or '∞'}) ({b['clips']} clips): " + "  ".join(
            f"{k} {ci(b[f'{k}_minus_trf'])}" for k in ("forward", "rotated", "gi")))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- autoencoder check
def check_vae(a) -> int:
    """The autoencoder's own round trip (encode → posterior mode → decode as a clip) of validation clips (seeds
    world.VALIDATION_SEED_BASE…, neither trained nor evaluated on), scored with tools.evaluate's metrics: no
    diffusion model can place a sprite better than its autoencoder draws it."""
    from diffusers import AutoencoderKLTemporalDecoder

    from . import evaluate

    torch.set_num_threads(a.threads)
    if a.vae.is_dir():
        vae = AutoencoderKLTemporalDecoder.from_pretrained(a.vae, torch_dtype=torch.float32)
    else:  # a checkpoint of `forward` (vae-*.pt) or of `decoder` (decoder-*.pt, with --base)
        st = torch.load(a.vae, weights_only=False)
        if a.base:
            vae = AutoencoderKLTemporalDecoder.from_pretrained(a.base, torch_dtype=torch.float32)
            vae.decoder.load_state_dict(st["model"])
        else:
            vae = new_vae(config_of(a))
            vae.load_state_dict(st["model"])
    vae.eval()
    scores, rows = [], []
    for k in range(a.clips):
        clip = world.make_clip(world.VALIDATION_SEED_BASE + k, a.frames, a.height, a.width)
        x = torch.from_numpy(clip.frames.transpose(0, 3, 1, 2) * 2 - 1)
        with torch.no_grad():
            rec = vae.decode(vae.encode(x).latent_dist.mode(), num_frames=x.shape[0]).sample
        rec01 = ((rec.permute(0, 2, 3, 1).numpy() + 1) / 2).clip(0, 1)
        scores.append(evaluate.score_pair(clip, rec01))
        if k < 4:
            rows += [world.contact_sheet(clip.frames), world.contact_sheet(rec01)]
    if a.sheet:  # true clips and their round trips, row by row
        from PIL import Image

        Image.fromarray(np.concatenate(rows)).save(a.sheet)
    res = evaluate.summarise(scores)
    print(json.dumps({"vae": str(a.vae), "clips": a.clips, **res}))
    return 0


# ---------------------------------------------------------------------------------------------- loss plot
def loss_points(rows: list[dict], stage: str) -> list[tuple[int, float]]:
    """(step, loss) of a stage in step order. A resumed run logs again the steps after its checkpoint; the later
    rows are the ones the model kept. Rows without a loss (a budgeted run's settled length) are skipped."""
    return sorted({r["step"]: r["loss"] for r in rows if r["stage"] == stage and r.get("loss", 0) > 0}.items())


def widen(a) -> int:
    """A wider copy of an SVD folder's UNet that computes the same function (tools/widen.py): a larger model to
    train on from where this one stopped. The other folders are copied unchanged."""
    import shutil

    from diffusers import UNetSpatioTemporalConditionModel

    from .widen import widen_unet

    if a.factor < 2:
        raise SystemExit("train: widen --factor must be at least 2")
    if a.out.exists():
        raise SystemExit(f"train: widen --out {a.out} exists; pick a new folder")
    shutil.copytree(a.svd, a.out, ignore=shutil.ignore_patterns("unet", "reverse_unet", "training.json"))
    unet = UNetSpatioTemporalConditionModel.from_pretrained(a.svd / "unet", torch_dtype=torch.float32)
    widen_unet(unet, a.factor, a.noise, a.seed).save_pretrained(a.out / "unet")
    if a.reverse_unet:  # exactly (no noise): only its 32 fine-tuned tensors are used, through --init-reverse
        rev = gi.load_reverse_unet(a.reverse_unet, unet)
        widen_unet(rev, a.factor).save_pretrained(a.out / "reverse_unet")
    before = a.svd / "training.json"
    (a.out / "training.json").write_text(json.dumps({
        "stage": "widen", "args": {k: str(v) for k, v in vars(a).items() if k != "func"},
        "block_out_channels": [c * a.factor for c in unet.config.block_out_channels],
        "widened_from": json.loads(before.read_text()) if before.exists() else None}, indent=2))
    print(f"train: wrote {a.out} (UNet widths × {a.factor})", file=sys.stderr)
    return 0


def average_tensors(a_sd: dict, b_sd: dict, weight_b: float, what: str) -> dict:
    """(1 − w)·A + w·B tensor by tensor, for two runs of one model (same names, shapes and dtypes)."""
    if a_sd.keys() != b_sd.keys():
        only_a, only_b = sorted(a_sd.keys() - b_sd.keys()), sorted(b_sd.keys() - a_sd.keys())
        raise SystemExit(f"train: average: the two {what} are not one model: only in the first {only_a[:3]}, only in "
                         f"the second {only_b[:3]}")
    out = {}
    for n, x in a_sd.items():
        y = b_sd[n]
        if x.shape != y.shape or x.dtype != y.dtype:
            raise SystemExit(f"train: average: {what}: {n} is {tuple(x.shape)} {x.dtype} in the first and "
                             f"{tuple(y.shape)} {y.dtype} in the second: not one model")
        out[n] = (1 - weight_b) * x + weight_b * y if x.is_floating_point() else x
    return out


def same_weights(x: Path, y: Path) -> bool:
    """Whether two model folders hold the same tensors (names and values), whatever wrote their files."""
    from safetensors.torch import load_file

    fx, fy = sorted(x.glob("*.safetensors")), sorted(y.glob("*.safetensors"))
    if not fx or [f.name for f in fx] != [f.name for f in fy]:
        return False
    for a, b in zip(fx, fy):
        ta, tb = load_file(str(a)), load_file(str(b))
        if ta.keys() != tb.keys() or not all(torch.equal(ta[n], tb[n]) for n in ta):
            return False
    return True


def average(a) -> int:
    """Two runs of one model averaged weight by weight (a two-point weight average, as stochastic weight averaging
    does along one run): the forward UNets of two SVD folders and, with --reverse-unet, their fine-tunes' 32 tensors
    (written slim). Everything else is the first folder's, and must be the second's too."""
    import shutil

    from safetensors.torch import load_file, save_file

    first, second = a.svd
    if not 0 < a.weight < 1:
        raise SystemExit(f"train: average --weight {a.weight}: the second run's share must lie strictly between 0 "
                         "and 1")
    if a.out.exists():
        raise SystemExit(f"train: average --out {a.out} exists; pick a new folder")
    for part in ("vae", "image_encoder"):
        if not same_weights(first / part, second / part):
            raise SystemExit(f"train: average: {first} and {second} differ in {part}/; only UNets are averaged, "
                             "so the second run's would be lost")
    unet = average_tensors(load_file(str(first / "unet" / gi.WEIGHTS)), load_file(str(second / "unet" / gi.WEIGHTS)),
                           a.weight, "UNets")
    shutil.copytree(first, a.out, ignore=shutil.ignore_patterns("unet", "reverse_unet", "training.json"))
    shutil.copytree(first / "unet", a.out / "unet", ignore=shutil.ignore_patterns(gi.WEIGHTS))
    save_file(unet, str(a.out / "unet" / gi.WEIGHTS), metadata={"format": "pt"})

    def record(folder: Path) -> dict | None:
        return json.loads((folder / "training.json").read_text()) if (folder / "training.json").exists() else None

    (a.out / "training.json").write_text(json.dumps({
        "stage": "average", "weight_of_second": a.weight, "svd": [str(s) for s in a.svd],
        "first": record(first), "second": record(second)}, indent=2))
    if a.reverse_unet:
        rev_first, rev_second = a.reverse_unet
        tuned = average_tensors(gi.reverse_tensors(rev_first), gi.reverse_tensors(rev_second), a.weight,
                                "fine-tunes")
        try:
            gi.check_fine_tune_fits(tuned, unet, "the averaged fine-tune")
        except ValueError as e:
            raise SystemExit(f"train: average: {e}")
        gi.save_slim_reverse_unet(tuned, rev_first, a.out / "reverse_unet")
        (a.out / "reverse_unet" / "training.json").write_text(json.dumps({
            "stage": "average", "weight_of_second": a.weight, "reverse_unet": [str(r) for r in a.reverse_unet],
            "first": record(rev_first), "second": record(rev_second)}, indent=2))
    print(f"train: wrote {a.out} ({1 - a.weight:g} of {first}, {a.weight:g} of {second})", file=sys.stderr)
    return 0


def slim(a) -> int:
    """The fine-tuned UNet folder without the weights it shares with the forward UNet (what models/tiny/source keeps:
    the rest is the forward unet/ beside it)."""
    if a.out.exists() and a.out.resolve() != a.reverse_unet.resolve():
        raise SystemExit(f"train: slim --out {a.out} exists; pick a new folder")
    try:
        n = gi.write_slim_reverse_unet(a.reverse_unet, a.out)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"train: slim: {e}")
    print(f"train: wrote {a.out} ({n} fine-tuned tensors)", file=sys.stderr)
    return 0


def plot(a) -> int:
    """A loss-curve PNG from log.jsonl (one panel per stage, log-scale loss, a moving average), drawn with PIL."""
    from PIL import Image, ImageDraw

    rows = [json.loads(line) for line in Path(a.log).read_text().splitlines() if line.strip()]
    stages = [s for s in ("vae", "decoder", "unet", "reverse") if any(r["stage"] == s for r in rows)]
    pw, ph, pad = 420, 220, 40
    img = Image.new("RGB", (pw * len(stages) + pad, ph + 2 * pad), "white")
    d = ImageDraw.Draw(img)
    for k, s in enumerate(stages):
        pts = loss_points(rows, s)
        x0, y0 = pad + k * pw, pad
        xs, ys = np.array([p[0] for p in pts], float), np.log10([p[1] for p in pts])
        smooth = np.convolve(ys, np.ones(9) / 9, mode="valid") if len(ys) >= 9 else ys
        lo, hi = ys.min(), ys.max()
        sx = lambda v: x0 + (v - xs.min()) / max(1, xs.max() - xs.min()) * (pw - pad)  # noqa: E731
        sy = lambda v: y0 + ph - (v - lo) / max(1e-9, hi - lo) * ph  # noqa: E731
        d.rectangle([x0, y0, x0 + pw - pad, y0 + ph], outline="black")
        d.line([(sx(x), sy(y)) for x, y in zip(xs, ys)], fill=(170, 190, 230), width=1)
        off = (len(ys) - len(smooth)) // 2
        d.line([(sx(x), sy(y)) for x, y in zip(xs[off:off + len(smooth)], smooth)], fill=(20, 60, 160), width=2)
        d.text((x0, 8), f"{s}: loss (log10 {lo:.2f}..{hi:.2f}) vs step 0..{int(xs.max())}", fill="black")
    img.save(a.out)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.train", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--out", type=Path, required=True)
        data_flag(p)
        p.add_argument("--stride", type=int, default=1, help="frame stride within a footage clip")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
        p.add_argument("--checkpoint-every", type=int, default=100)

    def data_flag(p):
        p.add_argument("--data", default="world", help="'world' (procedural; 'world:rightward' for its one-way motion, "
                                                       "see tools.world.MOTIONS) or a folder of frame folders")

    def clip_size(p):  # the world's clip size for the stages that take no --config
        p.add_argument("--frames", type=int, default=7)
        p.add_argument("--height", type=int, default=64)
        p.add_argument("--width", type=int, default=128)

    def vae_channels_flag(p):
        p.add_argument("--vae-channels", type=lambda v: tuple(int(x) for x in v.split(",")),
                       help="the autoencoder's four block widths, e.g. 96,128,256,256 (default: the config's)")

    def autocast_flag(p):
        p.add_argument("--autocast", choices=["no", "bf16"], default="no", help="bf16 autocast")

    def moving_weight_flag(p):
        p.add_argument("--moving-weight", type=float, default=1.0,
                       help="denoising-loss weight of the latent cells where the clip moves, against 1 on the still "
                            "background (1: SVD's plain loss)")

    def device_flag(p):
        p.add_argument("--device", default="auto", help="auto (cuda if available), cuda, cpu")

    f = sub.add_parser("forward", help="train the VAE and the UNet from scratch (or the UNet on, with --init)")
    common(f)
    f.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    f.add_argument("--vae-steps", type=int, default=400)
    f.add_argument("--vae-batch", type=int, default=4, help="clips per VAE step (all their frames)")
    f.add_argument("--vae-logvar-init", type=float, default=-6.0,
                   help="initial log-variance of the encoder's posterior (none: diffusers' init)")
    f.add_argument("--vae-lr", type=float, default=2e-3)
    f.add_argument("--vae-kl", type=float, default=1e-4)
    f.add_argument("--vae-saturated-weight", type=float, default=20.0,
                   help="reconstruction-loss weight of saturated pixels (1: plain loss)")
    f.add_argument("--unet-steps", type=int, default=2000)
    f.add_argument("--batch", type=int, default=16)
    f.add_argument("--lr", type=float, default=1e-3)
    f.add_argument("--warmup", type=int, default=100)
    f.add_argument("--ema", type=float, default=0.995, help="EMA decay of the shipped UNet weights (0: off)")
    f.add_argument("--drop", type=float, default=0.1, help="probability of dropping both conditionings")
    moving_weight_flag(f)
    autocast_flag(f)
    vae_channels_flag(f)
    f.add_argument("--latent-pool", type=Path, help="draw the UNet's batches from these encoded clips (see encode)")
    f.add_argument("--time-budget", type=float,
                   help="seconds for the UNet loop: after 30 steps the run settles its length on the measured pace "
                        "(at most --unet-steps), so a lent GPU's minutes are spent in full and the schedule still ends")
    device_flag(f)
    f.add_argument("--init", type=Path,
                   help="start from this diffusers SVD folder (the output of an earlier forward run, or a real SVD): "
                        "its UNet trains on, its VAE and image encoder are kept (no autoencoder stage)")
    f.set_defaults(func=forward)

    e = sub.add_parser("encode", help="encode world clips once into a latent pool for the UNet stage")
    e.add_argument("--vae", type=Path, required=True, help="the trained VAE folder (its encoder is frozen)")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--first", type=int, default=0)
    e.add_argument("--count", type=int, required=True)
    e.add_argument("--chunk", type=int, default=64, help="clips per shard")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--threads", type=int, default=1)
    data_flag(e)
    clip_size(e)
    autocast_flag(e)
    device_flag(e)
    e.set_defaults(func=encode)

    d = sub.add_parser("decoder", help="fine-tune the VAE's temporal decoder on a frozen encoder")
    common(d)
    d.add_argument("--vae", type=Path, required=True, help="a diffusers VAE folder")
    d.add_argument("--steps", type=int, default=1000)
    d.add_argument("--batch", type=int, default=2, help="clips per step (all their frames)")
    d.add_argument("--lr", type=float, default=5e-4)
    d.add_argument("--saturated-weight", type=float, default=20.0)
    clip_size(d)
    autocast_flag(d)
    d.set_defaults(func=decoder)

    r = sub.add_parser("reverse", help="Algorithm 1: the reverse-motion fine-tune of the 32 tensors")
    common(r)
    r.add_argument("--svd", type=Path, required=True, help="diffusers SVD folder (unet/, vae/, image_encoder/)")
    r.add_argument("--steps", type=int, default=1000)
    r.add_argument("--batch", type=int, default=1)
    r.add_argument("--grad-accum", type=int, default=1)
    r.add_argument("--lr", type=float, default=1e-4, help="the authors' constant rate")
    r.add_argument("--frames", type=int, help="default: the UNet's num_frames")
    r.add_argument("--height", type=int, help="default: the UNet's sample size × 8")
    r.add_argument("--width", type=int, help="default: twice the height")
    r.add_argument("--init-reverse", type=Path,
                   help="start the 32 tensors from this UNet folder (an earlier fine-tune) rather than from --svd's")
    r.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no")
    moving_weight_flag(r)
    r.add_argument("--gradient-checkpointing", action="store_true")
    device_flag(r)
    r.set_defaults(func=reverse)

    k = sub.add_parser("check-reverse",
                       help="held-out loss of the reverse branch: TRF, GI without and with the fine-tune")
    k.add_argument("--svd", type=Path, required=True, help="the forward diffusers SVD folder")
    k.add_argument("--reverse-unet", type=Path, required=True, help="the fine-tuned UNet folder (reverse's DIR/unet)")
    k.add_argument("--reverse-base", type=Path, help="the UNet the fine-tune started from, when not --svd's")
    data_flag(k)
    k.add_argument("--stride", type=int, default=1)
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--clips", type=int, default=256)
    k.add_argument("--batch", type=int, default=8)
    k.add_argument("--frames", type=int, help="default: the UNet's num_frames")
    k.add_argument("--height", type=int, help="default: the UNet's sample size × 8")
    k.add_argument("--width", type=int, help="default: twice the height")
    k.add_argument("--threads", type=int, default=1)
    autocast_flag(k)
    device_flag(k)
    k.add_argument("--out", type=Path, help="also write the report (JSON) here")
    k.set_defaults(func=check_reverse)

    c = sub.add_parser("check-vae", help="score the autoencoder's round trip of validation clips")
    c.add_argument("--vae", type=Path, required=True, help="a VAE folder, or a vae-*.pt / decoder-*.pt checkpoint")
    c.add_argument("--base", type=Path, help="the VAE folder a decoder-*.pt checkpoint belongs to")
    c.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    c.add_argument("--clips", type=int, default=16)
    c.add_argument("--sheet", type=Path, help="PNG: the first 4 clips and their round trips")
    c.add_argument("--threads", type=int, default=1)
    clip_size(c)
    vae_channels_flag(c)
    c.set_defaults(func=check_vae)

    w = sub.add_parser("widen", help="a UNet k times wider computing the same function, to train on (Net2Net)")
    w.add_argument("--svd", type=Path, required=True, help="diffusers SVD folder (unet/, vae/, image_encoder/)")
    w.add_argument("--out", type=Path, required=True)
    w.add_argument("--factor", type=int, default=2, help="every channel width times this")
    w.add_argument("--noise", type=float, default=0.01,
                   help="Gaussian noise, relative to each widened weight's spread, so the copies can part")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--reverse-unet", type=Path, help="also widen this fine-tuned UNet (to OUT/reverse_unet)")
    w.set_defaults(func=widen)

    v = sub.add_parser("average", help="two runs of one model averaged weight by weight (UNets and fine-tunes)")
    v.add_argument("--svd", type=Path, nargs=2, required=True, metavar=("FIRST", "SECOND"),
                   help="two diffusers SVD folders of one model (e.g. a shipped one and its continuation)")
    v.add_argument("--reverse-unet", type=Path, nargs=2, metavar=("FIRST", "SECOND"),
                   help="their fine-tunes (whole or slim folders): averaged too, into OUT/reverse_unet (slim)")
    v.add_argument("--weight", type=float, default=0.5, help="the second run's share")
    v.add_argument("--out", type=Path, required=True)
    v.set_defaults(func=average)

    s = sub.add_parser("slim", help="keep only the 32 fine-tuned tensors of a reverse UNet folder (1 MB, not 69)")
    s.add_argument("--reverse-unet", type=Path, required=True, help="the UNet folder `reverse` wrote")
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(func=slim)

    p = sub.add_parser("plot", help="loss curve PNG from a log.jsonl")
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=plot)
    a = ap.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())

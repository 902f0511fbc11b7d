"""Random-weight, small-config SVD-XT folders (same diffusers/transformers classes as the real model).

The block structure is SVD-XT's (4 down blocks, layers_per_block 2, transformer levels 0-2 + mid) so the UNet has
exactly the 16 temporal self-attention layers the method rewires; only widths shrink. Everything is seeded, so the
folders (and the exported package) are reproducible bit for bit on one machine and numerically elsewhere.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

from .gi import is_reverse_key

TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH = 7, 64, 128
TINY_SEED = 20240828

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def tiny_unet(num_frames: int = TINY_FRAMES, height: int = TINY_HEIGHT, channels=(32, 32, 32, 32),
              heads=(2, 2, 2, 2)) -> UNetSpatioTemporalConditionModel:
    return UNetSpatioTemporalConditionModel(
        sample_size=height // 8,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
        up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
        block_out_channels=channels,  # GroupNorm(32) needs multiples of 32
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24,  # 3 micro-conditions x 8
        layers_per_block=2,
        cross_attention_dim=32,
        transformer_layers_per_block=1,
        num_attention_heads=heads,
        num_frames=num_frames,
    )


def tiny_vae(height: int = TINY_HEIGHT, channels=(32, 32, 32, 32)) -> AutoencoderKLTemporalDecoder:
    return AutoencoderKLTemporalDecoder(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        block_out_channels=channels,
        layers_per_block=1,
        latent_channels=4,
        sample_size=height,
        scaling_factor=0.18215,
        force_upcast=True,
    )


def tiny_clip() -> CLIPVisionModelWithProjection:
    cfg = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                           image_size=224, patch_size=32, projection_dim=32, hidden_act="gelu")
    return CLIPVisionModelWithProjection(cfg)


def _perturb_(module: torch.nn.Module, gen: torch.Generator, scale: float = 0.1) -> None:
    """Random init leaves some tensors at constants (zero biases, unit norms, AlphaBlender mix factors); add noise so
    every parameter matters and a wrong wiring anywhere changes the output. Too little noise leaves near-constant
    GroupNorm groups whose normalisation amplifies fp32 rounding (fp32 vs fp64 differences of 1e-2 were seen at
    0.02); 0.1 keeps the tiny UNet as well conditioned as a real one (fp32 vs fp64 ~1e-5)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def scheduler_config() -> dict:
    return {
        "_class_name": "EulerDiscreteScheduler",
        "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
        "interpolation_type": "linear", "num_train_timesteps": 1000, "prediction_type": "v_prediction",
        "set_alpha_to_one": False, "sigma_max": 700.0, "sigma_min": 0.002, "skip_prk_steps": True,
        "steps_offset": 1, "timestep_spacing": "leading", "timestep_type": "continuous", "trained_betas": None,
        "use_karras_sigmas": True,
    }


def write_pipeline_folder(out: Path, unet, vae, clip) -> None:
    """A diffusers StableVideoDiffusionPipeline folder (model_index.json, unet/, vae/, image_encoder/,
    feature_extractor/, scheduler/) around the three models: what tools.export and tools.reference read."""
    out.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(out / "unet")
    vae.save_pretrained(out / "vae")
    clip.save_pretrained(out / "image_encoder")
    CLIPImageProcessor(crop_size={"height": 224, "width": 224}, size={"shortest_edge": 224}, image_mean=CLIP_MEAN,
                       image_std=CLIP_STD, do_normalize=True, do_resize=True, do_center_crop=True,
                       do_rescale=True).save_pretrained(out / "feature_extractor")
    EulerDiscreteScheduler.from_config(scheduler_config()).save_pretrained(out / "scheduler")
    (out / "model_index.json").write_text(json.dumps({
        "_class_name": "StableVideoDiffusionPipeline", "_diffusers_version": "0.42.1",
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
        "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
    }, indent=2))


def write_tiny_source(out: Path, seed: int = TINY_SEED) -> Path:
    """Writes an SVD-XT-layout folder plus reverse_unet/ and reverse_base/ UNet folders that differ in exactly the 32
    reverse-motion tensors. Returns the folder."""
    out = Path(out)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    unet, vae, clip = tiny_unet(), tiny_vae(), tiny_clip()
    for m in (unet, vae, clip):
        _perturb_(m, gen)
    write_pipeline_folder(out, unet, vae, clip)

    # The authors fine-tuned a 14-frame SVD UNet ("base") into a reverse-motion UNet. Mimic that: base = an
    # independent random UNet; reverse = base with the 32 tensors changed. Only the delta reaches our SVD weights.
    base = tiny_unet()
    _perturb_(base, gen)
    reverse = tiny_unet()
    reverse.load_state_dict(base.state_dict())
    with torch.no_grad():
        changed = 0
        for name, p in reverse.named_parameters():
            if is_reverse_key(name):
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
                changed += 1
    assert changed == 32, changed
    base.save_pretrained(out / "reverse_base")
    reverse.save_pretrained(out / "reverse_unet")
    return out

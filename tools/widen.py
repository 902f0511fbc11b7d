"""Function-preserving widening of an SVD UNet (Net2WiderNet, Chen et al. 2016, for this block structure).

Every channel width of `UNetSpatioTemporalConditionModel` (block_out_channels, and with them the time embedding,
the attention heads' widths and the feed-forward widths) is multiplied by k. Each old channel becomes k adjacent
copies: a layer's outputs are repeated, its inputs' weights divided by k. Three places need more than that:

- GroupNorm and LayerNorm: k adjacent copies of every channel leave each group's (and each row's) mean and variance
  unchanged, so the norms are preserved as they are — that is why the copies are adjacent, not tiled.
- Attention: the heads stay as many, each k times wider, so q·k over a head sums k copies while the softmax scale
  only shrinks by √k; `to_q` is scaled by 1/√k to give the same logits, hence the same attention maps (which GI's
  reverse branch borrows, rotated).
- The sinusoidal embeddings of the diffusion time and of the frame index (`Timesteps` with frequency shift 0):
  k times as many frequencies, of which every k-th is an old one; the first linear layer reads only those.

A wider model that computes the same function can be trained on from where the narrow one stopped. Its copies get
identical gradients, so `noise` (relative to each weight tensor's spread) breaks the symmetry.
"""
from __future__ import annotations

import math

import torch

# The first linear layer after a sinusoidal embedding whose width is the (widened) channel count.
SINUSOID_INPUTS = ("time_embedding.linear_1.weight", "time_pos_embed.linear_1.weight")
# GEGLU projections: their output is [hidden, gate], each half widened on its own.
GEGLU = ("ff.net.0.proj.", "ff_in.net.0.proj.")


def widened_config(config: dict, k: int) -> dict:
    cfg = {key: v for key, v in config.items() if not key.startswith("_")}
    cfg["block_out_channels"] = [c * k for c in config["block_out_channels"]]
    return cfg


def output_index(n_new: int, n_old: int, k: int, chunked: bool) -> torch.Tensor:
    """Old index of each new output channel: k adjacent copies, per half for a GEGLU projection."""
    if not chunked:
        return torch.arange(n_new) // k
    half = n_old // 2
    j = torch.arange(n_new)
    return torch.where(j < k * half, j // k, half + (j - k * half) // k)


def widen_input(w: torch.Tensor, k: int, sinusoid: bool) -> torch.Tensor:
    """Axis 1 (inputs) of a weight widened k times so that the layer sees the same sum."""
    n_old = w.shape[1]
    j = torch.arange(n_old * k)
    if not sinusoid:
        return w[:, j // k] / k
    half = n_old // 2  # [cos | sin] of half frequencies; old frequency i is new frequency k·i
    part, f = j // (k * half), j % (k * half)
    out = w[:, part * half + f // k].clone()
    out[:, f % k != 0] = 0
    return out


def widen_tensor(name: str, old: torch.Tensor, new_shape: torch.Size, k: int) -> torch.Tensor:
    t = old
    if t.ndim >= 2 and new_shape[1] != t.shape[1]:
        assert new_shape[1] == k * t.shape[1], (name, tuple(t.shape), tuple(new_shape))
        t = widen_input(t, k, any(name.endswith(s) for s in SINUSOID_INPUTS))
    if t.ndim >= 1 and new_shape[0] != t.shape[0]:
        assert new_shape[0] == k * t.shape[0], (name, tuple(t.shape), tuple(new_shape))
        t = t[output_index(new_shape[0], t.shape[0], k, any(g in name for g in GEGLU))]
    if name.endswith("to_q.weight") and new_shape[0] != old.shape[0]:
        t = t / math.sqrt(k)
    assert t.shape == new_shape, (name, tuple(t.shape), tuple(new_shape))
    return t


def widen_state_dict(old: dict, new_shapes: dict, k: int, noise: float = 0.0,
                     gen: torch.Generator | None = None) -> dict:
    if old.keys() != new_shapes.keys():
        raise ValueError(f"the widened model's tensors differ from the old one's: "
                         f"{sorted(old.keys() ^ new_shapes.keys())[:3]}")
    out = {}
    for name, t in old.items():
        w = widen_tensor(name, t.float(), new_shapes[name], k)
        if noise and w.ndim >= 2 and w.shape != t.shape:
            w = w + noise * w.std() * torch.randn(w.shape, generator=gen)
        out[name] = w.to(t.dtype)
    return out


def widen_unet(unet, k: int, noise: float = 0.0, seed: int = 0):
    """A new UNet of the same class, every width times k, computing the same function (up to `noise`)."""
    cls = type(unet)
    wide = cls.from_config(widened_config(dict(unet.config), k))
    gen = torch.Generator().manual_seed(seed)
    shapes = {n: t.shape for n, t in wide.state_dict().items()}
    wide.load_state_dict(widen_state_dict(unet.state_dict(), shapes, k, noise, gen))
    return wide

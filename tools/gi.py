"""Generative Inbetweening building blocks shared by the exporter, the reference pipeline and the tests.

Two ways to run the reverse-motion UNet are defined here:

* the authors' way (``StoreProbs`` / ``FlipProbs``): two separate UNets; the forward one records the attention
  probabilities of its 16 temporal self-attention layers, the reverse one (delta-merged weights) discards its own
  probabilities and uses the recorded ones rotated 180 degrees. This is the oracle.
* the fused way (``FusedTemporalAttention``): ONE UNet whose batch is [forward rows; reverse rows]. Each temporal
  self-attention layer computes probabilities for the forward rows only and re-uses them, flipped, for the reverse
  rows with the reverse ``to_v``/``to_out`` weights. This is what we export to ONNX: all other weights are shared.
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import torch
from torch import nn

# The 32 tensors the reverse-motion fine-tune changes (16 temporal self-attention layers x {to_v, to_out.0}).
REVERSE_KEYS = ("temporal_transformer_blocks.0.attn1.to_v.weight", "temporal_transformer_blocks.0.attn1.to_out.0.weight")


def temporal_self_attention_layers(unet) -> list[tuple[str, nn.Module]]:
    """The 16 ``…temporal_transformer_blocks.0.attn1`` modules in the order the forward pass visits them
    (down 0-5, mid 0, up 0-8), which is also ``named_modules`` order for this UNet class."""
    layers = [(n, m) for n, m in unet.named_modules() if n.endswith("temporal_transformer_blocks.0.attn1")]
    return layers


def merge_reverse_weights(svd_unet, reverse_unet, reverse_base=None) -> dict[str, torch.Tensor]:
    """W_reverse_on_svd = W_svd + (W_reverse - W_base) for the 32 fine-tuned tensors (authors' recipe); without a
    base the reverse tensors are used as they are."""
    svd_sd, rev_sd = svd_unet.state_dict(), reverse_unet.state_dict()
    base_sd = reverse_base.state_dict() if reverse_base is not None else None
    merged = {}
    for name, w in svd_sd.items():
        if is_reverse_key(name):
            if base_sd is None:
                merged[name] = rev_sd[name].clone()
            else:
                merged[name] = w + (rev_sd[name] - base_sd[name])
    if len(merged) != 32:
        raise ValueError(f"expected 32 reverse-motion tensors, found {len(merged)}: is this an SVD UNet?")
    return merged


WEIGHTS = "diffusion_pytorch_model.safetensors"  # the file diffusers reads and writes in a UNet folder


def is_reverse_key(name: str) -> bool:
    return name.endswith(REVERSE_KEYS)


def load_reverse_unet(folder: Path, forward_unet):
    """The reverse-motion UNet in `folder`: a diffusers UNet folder (what `tools.train reverse` writes, or the
    authors' checkpoint), or a slim one (`write_slim_reverse_unet`) that holds only the 32 fine-tuned tensors, taken
    on top of a copy of `forward_unet`. Only those 32 tensors are ever read from a reverse UNet, so both give the
    same package."""
    from diffusers import UNetSpatioTemporalConditionModel
    from safetensors import safe_open

    weights = Path(folder) / WEIGHTS
    tensors = {}
    if weights.exists():
        with safe_open(str(weights), "pt") as f:
            if all(is_reverse_key(n) for n in f.keys()):
                tensors = {n: f.get_tensor(n) for n in f.keys()}
    if not tensors:
        return UNetSpatioTemporalConditionModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
    rev = copy.deepcopy(forward_unet)
    sd = rev.state_dict()
    check_fine_tune_fits(tensors, sd, str(weights))
    sd.update({n: w.to(sd[n].dtype) for n, w in tensors.items()})
    rev.load_state_dict(sd)
    return rev.eval()


def check_fine_tune_fits(tensors: dict[str, torch.Tensor], unet_sd: dict[str, torch.Tensor], where: str) -> None:
    """ValueError unless `tensors` are exactly the 32 fine-tuned tensors of the UNet whose state dict is `unet_sd`."""
    want = {n for n in unet_sd if is_reverse_key(n)}
    if tensors.keys() != want:
        missing, extra = sorted(want - tensors.keys()), sorted(tensors.keys() - want)
        raise ValueError(f"{where}: a fine-tune must hold exactly the 32 fine-tuned tensors of the forward UNet; "
                         f"missing {missing[:3]}, unknown {extra[:3]}")
    for n, w in tensors.items():
        if w.shape != unet_sd[n].shape:
            raise ValueError(f"{where}: {n} is {tuple(w.shape)}, the forward UNet's is {tuple(unet_sd[n].shape)}: "
                             "fine-tuned from another model")


def reverse_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """The 32 fine-tuned tensors of a reverse UNet folder, whole or slim."""
    from safetensors import safe_open

    weights = Path(folder) / WEIGHTS
    with safe_open(str(weights), "pt") as f:  # reads the 32 alone, not a whole (real: 6 GB) UNet
        tensors = {n: f.get_tensor(n) for n in f.keys() if is_reverse_key(n)}
    if len(tensors) != 32:
        raise ValueError(f"{weights}: expected 32 reverse-motion tensors, found {len(tensors)}")
    return tensors


def save_slim_reverse_unet(tensors: dict[str, torch.Tensor], config_from: Path, out: Path) -> None:
    """Writes a slim reverse UNet folder: `tensors` (the 32) and the UNet config.json of `config_from`."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({n: w.contiguous() for n, w in tensors.items()}, str(out / WEIGHTS), metadata={"format": "pt"})
    if (Path(config_from) / "config.json").resolve() != (out / "config.json").resolve():
        shutil.copyfile(Path(config_from) / "config.json", out / "config.json")


def write_slim_reverse_unet(folder: Path, out: Path) -> int:
    """`out`: the reverse UNet folder `folder` with only its 32 fine-tuned tensors (1 MB for the tiny model where the
    whole UNet is 69 MB), its config.json and any training.json beside them; `load_reverse_unet` reads it on top of
    the forward UNet. Returns the tensor count."""
    folder, out = Path(folder), Path(out)
    tensors = reverse_tensors(folder)
    save_slim_reverse_unet(tensors, folder, out)
    record = folder / "training.json"
    if record.exists() and record.resolve() != (out / "training.json").resolve():
        shutil.copyfile(record, out / "training.json")
    return len(tensors)


def _heads_split(attn, x):
    b, n, c = x.shape
    h = attn.heads
    return x.reshape(b, n, h, c // h).permute(0, 2, 1, 3)  # (b, h, n, d)


def _heads_merge(x):
    b, h, n, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, n, h * d)


def _probs(attn, x):
    q = _heads_split(attn, attn.to_q(x))
    k = _heads_split(attn, attn.to_k(x))
    return torch.softmax((q @ k.transpose(-1, -2)) * attn.scale, dim=-1)


class StoreProbs:
    """Authors' forward-UNet processor: normal attention that also records its probabilities."""

    def __init__(self, store: list, index: int):
        self.store, self.index = store, index

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        p = _probs(attn, hidden_states)
        self.store[self.index] = p
        v = _heads_split(attn, attn.to_v(hidden_states))
        return attn.to_out[1](attn.to_out[0](_heads_merge(p @ v)))


class FlipProbs:
    """Authors' reverse-UNet processor: its own Q/K are ignored; the recorded forward probabilities of the same
    layer (and same batch row) are used rotated by 180 degrees: A'[i, j] = A[F-1-i, F-1-j]."""

    def __init__(self, store: list, index: int):
        self.store, self.index = store, index

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        p = torch.flip(self.store[self.index], dims=(-2, -1))
        v = _heads_split(attn, attn.to_v(hidden_states))
        return attn.to_out[1](attn.to_out[0](_heads_merge(p @ v)))


def attach_authors_processors(fwd_unet, rev_unet) -> list:
    store: list = [None] * 16
    fl, rl = temporal_self_attention_layers(fwd_unet), temporal_self_attention_layers(rev_unet)
    assert len(fl) == len(rl) == 16, f"expected 16 temporal self-attention layers, found {len(fl)}"
    for i, ((_, fa), (_, ra)) in enumerate(zip(fl, rl)):
        fa.set_processor(StoreProbs(store, i))
        ra.set_processor(FlipProbs(store, i))
    return store


def authors_reverse_unet(svd_unet, reverse_unet, reverse_base=None):
    """A separate reverse UNet = SVD weights with the delta-merged 32 tensors (authors' assembly)."""
    rev = copy.deepcopy(svd_unet)
    sd = rev.state_dict()
    sd.update(merge_reverse_weights(svd_unet, reverse_unet, reverse_base))
    rev.load_state_dict(sd)
    return rev


class FusedTemporalAttention(nn.Module):
    """Processor for one temporal self-attention layer of the fused UNet. The input is (2k·S, F, C): the first k·S
    sequences belong to the forward rows, the last k·S to the reverse rows in the same CFG order, so sequence
    k·S + j of the reverse half pairs with sequence j of the forward half. Holding the reverse to_v/to_out as
    sub-modules makes them initializers of the exported graph; everything else is the shared module's."""

    def __init__(self, attn, rev_to_v: torch.Tensor, rev_to_out: torch.Tensor):
        super().__init__()
        c_in, c_out = attn.to_v.in_features, attn.to_out[0].out_features
        self.rev_to_v = nn.Linear(c_in, attn.to_v.out_features, bias=False)
        self.rev_to_v.weight.data.copy_(rev_to_v)
        self.rev_to_out = nn.Linear(attn.to_out[0].in_features, c_out, bias=True)
        self.rev_to_out.weight.data.copy_(rev_to_out)
        # Training only updated the weight; the bias is the shared one (its delta is zero by construction).
        self.rev_to_out.bias.data.copy_(attn.to_out[0].bias.data)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        return self.forward(attn, hidden_states)

    def forward(self, attn, x):
        n = x.shape[0] // 2
        fwd, rev = x[:n], x[n:]
        p = _probs(attn, fwd)  # Q/K of the reverse rows would be discarded by the authors' code: never computed.
        out_f = attn.to_out[0](_heads_merge(p @ _heads_split(attn, attn.to_v(fwd))))
        p_rev = torch.flip(p, dims=(-2, -1))
        out_r = self.rev_to_out(_heads_merge(p_rev @ _heads_split(attn, self.rev_to_v(rev))))
        return torch.cat([out_f, out_r], dim=0)


def make_fused_unet(svd_unet, reverse_unet, reverse_base=None):
    fused = copy.deepcopy(svd_unet)
    merged = merge_reverse_weights(svd_unet, reverse_unet, reverse_base)
    layers = temporal_self_attention_layers(fused)
    assert len(layers) == 16, f"expected 16 temporal self-attention layers, found {len(layers)}"
    for name, attn in layers:
        attn.set_processor(FusedTemporalAttention(attn, merged[f"{name}.to_v.weight"], merged[f"{name}.to_out.0.weight"]))
    return fused


class UNetForExport(nn.Module):
    """Positional-argument wrapper with the package's tensor names (sample, timestep, encoder_hidden_states,
    added_time_ids) -> noise_pred."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states, added_time_ids):
        return self.unet(sample, timestep, encoder_hidden_states, added_time_ids, return_dict=False)[0]

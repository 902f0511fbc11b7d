"""Exporter: ONNX parity with PyTorch, the fused graph against the authors' two-UNet construction, and the
committed tiny package against a fresh export of its committed source."""
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tools import gi
from tools.export import ExportError, load_folders, main, unet_inputs

TOL = 1e-4  # fp32; see docs/EXPORT.md for why (summation order differs between PyTorch and ONNX Runtime)


def random_feeds(seed):
    """Fixed random inputs for each of the tiny package's four models."""
    rng = np.random.default_rng(seed)
    return {
        "image_encoder.onnx": {"pixel_values": rng.standard_normal((2, 3, 224, 224), dtype=np.float32)},
        "vae_encoder.onnx": {"image": rng.uniform(-1, 1, (2, 3, 64, 128)).astype(np.float32)},
        "unet.onnx": {"sample": rng.standard_normal((4, 7, 8, 8, 16), dtype=np.float32),
                      "timestep": np.array([0.25 * np.log(30.0)], np.float32),
                      "encoder_hidden_states": rng.standard_normal((4, 1, 32), dtype=np.float32),
                      "added_time_ids": np.array([[6, 127, 0.02]] * 4, np.float32)},
        "vae_decoder.onnx": {"latents": rng.standard_normal((7, 4, 8, 16), dtype=np.float32)},
    }


def _sess(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def test_export_report_is_within_tolerance(tiny_package):
    _, report = tiny_package
    for name, r in report.items():
        if isinstance(r, dict):
            print(f"{name}: max abs {r['max_abs']:.2e} rel {r['max_rel']:.2e}")
            assert r["max_abs"] <= TOL, name


def test_manifest_lists_every_file_with_checksums(tiny_package):
    out, _ = tiny_package
    m = json.loads((out / "manifest.json").read_text())
    assert m["format"] == "svd-inbetween-model-package" and m["unet_batch"] == 4
    assert (m["num_frames"], m["height"], m["width"]) == (7, 64, 128)
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "manifest.json")
    assert sorted(m["files"]) == files
    import hashlib
    for f, e in m["files"].items():
        assert hashlib.sha256((out / f).read_bytes()).hexdigest() == e["sha256"]


@pytest.mark.parametrize("k", [1, 2])
def test_fused_unet_rows_equal_stock_forward_and_authors_reverse(tiny_source, k):
    unet, _, _, rev, base = load_folders(tiny_source, tiny_source / "reverse_unet", tiny_source / "reverse_base")
    fused = gi.make_fused_unet(unet, rev, base).eval()
    fwd = load_folders(tiny_source, tiny_source / "reverse_unet", None)[0]  # a pristine stock UNet
    authors_rev = gi.authors_reverse_unet(fwd, rev, base).eval()
    gi.attach_authors_processors(fwd, authors_rev)
    sample, t, ehs, ids = unet_inputs(k, 7, 8, 16, 32, torch.Generator().manual_seed(3))
    with torch.no_grad():
        both = gi.UNetForExport(fused)(sample, t, ehs, ids)
        want_f = fwd(sample[:k], t, ehs[:k], ids[:k], return_dict=False)[0]  # stores maps per CFG row
        want_r = authors_rev(sample[k:], t, ehs[k:], ids[k:], return_dict=False)[0]  # flips them
    err_f = (both[:k] - want_f).abs().max().item()
    err_r = (both[k:] - want_r).abs().max().item()
    # Relative to the outputs' magnitude: the two constructions add the same fp32 terms in different orders, and
    # how much that moves a result depends on the CPU's kernels (reverse rows, k=1: 1.9e-5 with AVX2 kernels,
    # 2.8e-4 with AVX-512 ones, on outputs of magnitude ~M), so an absolute bound fails on some machines.
    scale = max(1.0, want_f.abs().max().item(), want_r.abs().max().item())
    print(f"k={k}: forward rows {err_f:.2e}, reverse rows {err_r:.2e} (max |output| {scale:.3g})")
    assert err_f <= TOL * scale and err_r <= TOL * scale
    # the reverse branch really uses the forward maps: with its own attention the result differs
    plain_rev = gi.authors_reverse_unet(load_folders(tiny_source, tiny_source / "reverse_unet", None)[0], rev, base).eval()
    with torch.no_grad():
        own = plain_rev(sample[k:], t, ehs[k:], ids[k:], return_dict=False)[0]
    assert (own - want_r).abs().max().item() > 1e-3


def test_onnx_unet_equals_authors_construction(tiny_package, tiny_source):
    out, _ = tiny_package
    unet, _, _, rev, base = load_folders(tiny_source, tiny_source / "reverse_unet", tiny_source / "reverse_base")
    authors_rev = gi.authors_reverse_unet(unet, rev, base).eval()
    gi.attach_authors_processors(unet, authors_rev)
    sample, t, ehs, ids = unet_inputs(2, 7, 8, 16, 32, torch.Generator().manual_seed(4))
    got = _sess(out / "unet.onnx").run(None, {"sample": sample.numpy(), "timestep": t.numpy(),
                                              "encoder_hidden_states": ehs.numpy(), "added_time_ids": ids.numpy()})[0]
    with torch.no_grad():
        want = torch.cat([unet(sample[:2], t, ehs[:2], ids[:2], return_dict=False)[0],
                          authors_rev(sample[2:], t, ehs[2:], ids[2:], return_dict=False)[0]]).numpy()
    err = np.abs(got - want).max()
    print(f"onnx fused vs authors: {err:.2e}")
    assert err <= TOL


def test_a_slim_reverse_unet_gives_the_same_fine_tune_in_a_fiftieth_of_the_bytes(tiny_source, tmp_path):
    """The 32 tensors alone (tools.train slim) stand for the whole reverse UNet folder: same merged weights."""
    from safetensors import safe_open

    from tools import train

    full, slim = tiny_source / "reverse_unet", tmp_path / "slim"
    assert train.main(["slim", "--reverse-unet", str(full), "--out", str(slim)]) == 0
    with safe_open(str(slim / gi.WEIGHTS), "pt") as f:
        assert len(list(f.keys())) == 32 and all(gi.is_reverse_key(n) for n in f.keys())
    assert (slim / gi.WEIGHTS).stat().st_size * 50 < (full / gi.WEIGHTS).stat().st_size
    assert (slim / "config.json").read_bytes() == (full / "config.json").read_bytes()
    unet, _, _, rev_full, base = load_folders(tiny_source, full, tiny_source / "reverse_base")
    rev_slim = load_folders(tiny_source, slim, tiny_source / "reverse_base")[3]
    for b in (base, None):
        want, got = gi.merge_reverse_weights(unet, rev_full, b), gi.merge_reverse_weights(unet, rev_slim, b)
        assert sorted(want) == sorted(got) and all(torch.equal(want[n], got[n]) for n in want)
    with pytest.raises(SystemExit, match="exists; pick a new folder"):
        train.main(["slim", "--reverse-unet", str(full), "--out", str(tiny_source)])


def test_a_slim_reverse_unet_that_does_not_fit_the_forward_unet_is_refused(tiny_source, tmp_path):
    from safetensors.torch import load_file, save_file

    from tools.widen import widen_unet

    slim = tmp_path / "slim"
    gi.write_slim_reverse_unet(tiny_source / "reverse_unet", slim)
    unet = load_folders(tiny_source, tiny_source / "reverse_unet", None)[0]
    wrong = r"attn1\.to_\S+ is \(\d+, \d+\), the forward UNet's is \(\d+, \d+\): fine-tuned from another model"
    with pytest.raises(ValueError, match=wrong):
        gi.load_reverse_unet(slim, widen_unet(unet, 2))
    tensors = load_file(str(slim / gi.WEIGHTS))
    dropped = sorted(tensors)[0]
    del tensors[dropped]
    save_file(tensors, str(slim / gi.WEIGHTS))
    with pytest.raises(ValueError,
                       match=f"exactly the 32 fine-tuned tensors of the forward UNet; missing \\['{dropped}"):
        gi.load_reverse_unet(slim, unet)


def test_committed_tiny_package_matches_a_fresh_export_of_its_committed_source(tmp_path):
    """models/tiny is exactly what the exporter makes of models/tiny/source (the trained folders, committed beside
    it), with the recipe's arguments (tools/train_tiny.sh)."""
    from pathlib import Path

    from tools.export import export_package

    committed = Path(__file__).resolve().parents[2] / "models" / "tiny"
    src = committed / "source"
    m = json.loads((committed / "manifest.json").read_text())
    export_package(src, src / "reverse_unet", None, tmp_path, "fp32", m["num_frames"], m["height"], m["width"],
                   m["name"])
    fresh = json.loads((tmp_path / "manifest.json").read_text())
    assert fresh["vae_scaling_factor"] == m["vae_scaling_factor"]
    for f, feed in random_feeds(0).items():
        a = _sess(committed / f).run(None, feed)[0]
        b = _sess(tmp_path / f).run(None, feed)[0]
        err = np.abs(a - b).max()
        print(f"{f}: committed vs fresh {err:.2e}")
        assert err <= 1e-5, f


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["--svd", str(tmp_path / "nope"), "--reverse-unet", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"export: error: {tmp_path / 'nope'} has no unet/ folder: expected a diffusers SVD-XT folder "
                   "(model_index.json, unet/, vae/, image_encoder/, feature_extractor/, scheduler/)")
    assert main(["--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == "export: error: --svd and --reverse-unet are required (or --tiny)"


def test_fp16_package_checks_loads_and_stays_close_to_fp32(tiny_source, tiny_package, tmp_path):
    """fp16: onnx.checker passes on every graph (export runs it), I/O stays fp32, and outputs stay within fp16's
    precision of the fp32 package: 11-bit mantissas give ~5e-4 relative per operation; through the tiny UNet's
    ~60 layers that compounds to ~1e-2 of the output's magnitude, so we require ≤ 3e-2 relative."""
    from pathlib import Path
    from tools.export import export_package
    from tools.tiny import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH

    out = tmp_path / "fp16"
    export_package(tiny_source, tiny_source / "reverse_unet", tiny_source / "reverse_base", out, "fp16",
                   TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, "tiny-fp16")
    assert json.loads((out / "manifest.json").read_text())["dtype"] == "fp16"
    fp32 = tiny_package[0]
    feeds = random_feeds(2)
    for f, feed in feeds.items():
        s16 = _sess(out / f)
        assert all(i.type == "tensor(float)" for i in s16.get_inputs()), f"{f}: graph inputs must stay fp32"
        a, b = s16.run(None, feed)[0], _sess(fp32 / f).run(None, feed)[0]
        rel = np.abs(a - b).max() / np.abs(b).max()
        print(f"{f}: fp16 vs fp32 max abs {np.abs(a - b).max():.2e}, relative {rel:.2e}")
        assert rel <= 3e-2, f

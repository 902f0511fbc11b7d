"""Training smoke tests (a few steps on the small `smoke` config, never the real training): the objective learns, the
forward stage writes folders the exporter takes, the reverse stage (Algorithm 1) changes exactly the 32 tensors,
runs on a folder of the user's own frames with bf16 autocast, gradient checkpointing and accumulation, and resumes."""
import copy
import json
import shutil

import numpy as np
import pytest
import torch

from tools import gi, train, world

CFG = train.CONFIGS["smoke"]


def fixed_batch(b=2, seed=3):
    g = torch.Generator().manual_seed(seed)
    lat = torch.randn(b, CFG.frames, 4, CFG.height // 8, CFG.width // 8, generator=g)
    return dict(latents=lat, noise=torch.randn(lat.shape, generator=g), sigma=torch.tensor([0.5, 3.0])[:b],
                cond_latents=torch.randn(b, 4, CFG.height // 8, CFG.width // 8, generator=g),
                embeds=torch.randn(b, 1, 32, generator=g), time_ids=torch.tensor([[6.0, 127.0, 0.02]] * b))


def test_edm_scalings_are_svds():
    s = torch.tensor([0.002, 1.0, 700.0])
    c_in, c_skip, c_out, c_noise, w = train.edm_scalings(s)
    torch.testing.assert_close(c_in, 1 / torch.sqrt(s**2 + 1))
    torch.testing.assert_close(c_skip, 1 / (s**2 + 1))
    torch.testing.assert_close(c_out, -s / torch.sqrt(s**2 + 1))
    torch.testing.assert_close(c_noise, 0.25 * torch.log(s))
    torch.testing.assert_close(w, (1 + s**2) / s**2)


def test_a_perfect_v_prediction_has_zero_loss():
    """denoising_loss wires the scalings as SVD does: the v target (ε − σ·x)/√(σ²+1) reconstructs x exactly."""
    fb = fixed_batch()
    x, eps, sig = fb["latents"], fb["noise"], fb["sigma"].view(-1, 1, 1, 1, 1)
    v = (eps - sig * x) / torch.sqrt(sig**2 + 1)
    loss, per = train.denoising_loss(lambda *a, **k: (v,), **fb)
    assert float(loss) < 1e-10, per
    wrong, _ = train.denoising_loss(lambda *a, **k: (-v,), **fb)
    assert float(wrong) > 1.0


def test_sigma_distribution_is_lognormal_0_7_1_6():
    s = train.sample_sigmas(200_000, torch.Generator().manual_seed(0))
    assert abs(float(torch.log(s).mean()) - 0.7) < 0.02
    assert abs(float(torch.log(s).std()) - 1.6) < 0.02


def test_forward_objective_learns_a_fixed_batch():
    torch.manual_seed(0)
    unet = train.new_unet(CFG)
    fb = fixed_batch()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    with torch.no_grad():
        before = float(train.denoising_loss(unet, **fb)[0])
    for _ in range(8):
        loss, _ = train.denoising_loss(unet, **fb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(train.denoising_loss(unet, **fb)[0])
    assert after < 0.8 * before, (before, after)


def test_reverse_objective_learns_and_touches_only_the_32_tensors():
    torch.manual_seed(1)
    ref = train.new_unet(CFG).eval().requires_grad_(False)
    trainable = copy.deepcopy(ref)
    params = train.trainable_reverse_params(trainable)
    assert len(params) == 32 and all(any(n.endswith(k) for k in gi.REVERSE_KEYS) for n in params)
    gi.attach_authors_processors(ref, trainable)
    enc = train.Encoders(train.new_vae(CFG).eval().requires_grad_(False), train.new_clip())
    clip = torch.from_numpy(world.batch([11, 12], CFG.frames, CFG.height, CFG.width))
    ids = torch.tensor([[6.0, 127.0, 0.02]] * 2)
    opt = torch.optim.AdamW(params.values(), lr=1e-2)

    def loss_at(seed):
        return train.reverse_step_loss(ref, trainable, enc, clip, torch.Generator().manual_seed(seed), ids)[0]

    with torch.no_grad():
        before = float(loss_at(5))
    start = {n: p.detach().clone() for n, p in trainable.state_dict().items()}
    for _ in range(8):
        loss = loss_at(5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(loss_at(5))
    assert after < 0.9 * before, (before, after)
    changed = {n for n, t in trainable.state_dict().items() if not torch.equal(t, start[n])}
    assert changed == set(params), sorted(changed ^ set(params))[:5]


def test_reverse_uses_the_reference_maps_rotated():
    """The trainable copy's temporal attention really is the reference's map flipped on both frame axes: giving the
    reference a different clip changes the trainable copy's output, although its own input is the same."""
    torch.manual_seed(2)
    ref = train.new_unet(CFG).eval()
    trainable = copy.deepcopy(ref).eval()
    store = gi.attach_authors_processors(ref, trainable)
    fb = fixed_batch()
    with torch.no_grad():
        train.denoising_loss(ref, **fb)
        maps = [p.clone() for p in store]
        a = train.denoising_loss(trainable, **fb)[1]
        fb2 = dict(fb, latents=fb["latents"].flip(1) * 2)
        train.denoising_loss(ref, **fb2)
        b = train.denoising_loss(trainable, **fb)[1]
    assert len(maps) == 16 and all(m.shape[-1] == CFG.frames for m in maps)
    assert not torch.allclose(a, b)


@pytest.fixture(scope="module")
def smoke_svd(tmp_path_factory):
    out = tmp_path_factory.mktemp("fwd")
    rc = train.main(["forward", "--out", str(out), "--config", "smoke", "--vae-steps", "3", "--unet-steps", "3",
                     "--batch", "2", "--vae-batch", "1", "--checkpoint-every", "2", "--threads", "1"])
    assert rc == 0
    return out


def test_forward_stage_writes_folders_the_exporter_takes(smoke_svd, tmp_path):
    from tools.export import export_package

    svd = smoke_svd / "svd"
    for sub in ("unet", "vae", "image_encoder", "feature_extractor", "scheduler"):
        assert (svd / sub).is_dir(), sub
    logged = [json.loads(line) for line in (smoke_svd / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in logged} == {"vae", "unet"}
    sf = json.loads((svd / "vae" / "config.json").read_text())["scaling_factor"]
    assert sf > 0 and sf != 0.18215  # measured on held-out clips, not the SD constant
    # 1e-3: three steps from diffusers' init leave near-constant GroupNorm groups (zero biases, unit scales) whose
    # normalisation amplifies fp32 rounding (tools/tiny.py); measured 1.5e-4 relative here, 6.7e-6 on a
    # well-conditioned tiny UNet. This test is about the folders, the exporter's numerics have their own tests.
    report = export_package(svd, svd / "unet", None, tmp_path / "pkg", "fp32", CFG.frames, CFG.height, CFG.width,
                            "smoke", tol=1e-3)
    assert json.loads((tmp_path / "pkg" / "manifest.json").read_text())["vae_scaling_factor"] == pytest.approx(sf)
    assert all(r["max_rel"] <= 1e-3 for r in report.values() if isinstance(r, dict)), report


def test_reverse_stage_on_own_footage_bf16_checkpointing_accumulation_and_resume(smoke_svd, tmp_path):
    from diffusers import UNetSpatioTemporalConditionModel
    from PIL import Image

    # "the user's own footage": a folder of clip folders of numbered frames, at another size than the model's
    footage = tmp_path / "footage"
    for c in range(2):
        d = footage / f"shot{c}"
        d.mkdir(parents=True)
        for i, f in enumerate(world.make_clip(100 + c, 5, 96, 96).frames):
            Image.fromarray(np.round(f * 255).astype(np.uint8)).save(d / f"{i:04d}.png")
    out = tmp_path / "rev"
    args = ["reverse", "--svd", str(smoke_svd / "svd"), "--out", str(out), "--data", str(footage),
            "--frames", str(CFG.frames), "--height", str(CFG.height), "--width", str(CFG.width), "--batch", "1",
            "--grad-accum", "2", "--mixed-precision", "bf16", "--gradient-checkpointing", "--checkpoint-every", "1",
            "--threads", "1", "--lr", "1e-2"]
    assert train.main(args + ["--steps", "2"]) == 0
    assert sorted(p.name for p in (out / "checkpoints").glob("reverse-*.pt")) == ["reverse-0000001.pt",
                                                                                    "reverse-0000002.pt"]
    assert train.main(args + ["--steps", "3"]) == 0  # resumes at step 2, trains one more
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2], steps
    base = UNetSpatioTemporalConditionModel.from_pretrained(smoke_svd / "svd" / "unet").state_dict()
    tuned = UNetSpatioTemporalConditionModel.from_pretrained(out / "unet").state_dict()
    assert base.keys() == tuned.keys()
    changed = {n for n in base if not torch.equal(base[n], tuned[n])}
    expected = {n for n in base if any(n.endswith(k) for k in gi.REVERSE_KEYS)}
    assert len(expected) == 32 and changed == expected


def test_footage_folder_without_enough_frames_is_a_clear_error(tmp_path):
    (tmp_path / "shot").mkdir()
    with pytest.raises(SystemExit, match="holds no folder with at least 7 frames"):
        train.FolderData(tmp_path, 7, 64, 128)


def test_training_seeds_never_reach_the_evaluation_range():
    data = train.WorldData(7, 64, 128, seed_offset=0)
    with pytest.raises(AssertionError, match="evaluation range"):
        data.batch(world.EVAL_SEED_BASE // 16, 16)


def test_autoencoder_starts_with_a_narrow_posterior():
    """At diffusers' init the sampled latent is mostly noise (posterior std ≈ 1 against means of ≈ 0.25); the trainer
    starts the log-variance at --vae-logvar-init instead."""
    torch.manual_seed(0)
    x = torch.from_numpy(world.batch([21], CFG.frames, CFG.height, CFG.width)[0])
    vae = train.new_vae(CFG)
    assert float(vae.encode(x).latent_dist.std.mean()) > 0.5
    train.init_posterior_std_(vae, -6.0)
    dist = vae.encode(x).latent_dist
    assert float(dist.std.max()) < 0.2 and float(dist.mean.std()) > 0.1


def test_unet_stage_trains_from_a_latent_pool_and_resumes(smoke_svd, tmp_path):
    """`encode` writes shards of the frozen encoders' output (resumable: existing shards are kept); `forward
    --latent-pool` draws its batches from them, the same batch for the same step."""
    pool = tmp_path / "pool"
    args = ["encode", "--vae", str(smoke_svd / "svd" / "vae"), "--out", str(pool), "--count", "4", "--chunk", "2",
            "--frames", str(CFG.frames), "--height", str(CFG.height), "--width", str(CFG.width)]
    assert train.main(args) == 0
    shards = sorted(p.name for p in pool.glob("pool-*.pt"))
    assert shards == ["pool-00000000.pt", "pool-00000002.pt"]
    stamp = (pool / shards[0]).stat().st_mtime_ns
    assert train.main(args) == 0 and (pool / shards[0]).stat().st_mtime_ns == stamp
    p = train.LatentPool(pool, seed=0)
    assert p.n == 4 and p.t["mean"].shape == (4, CFG.frames, 4, CFG.height // 8, CFG.width // 8)
    assert p.t["cond"].shape == (4, 4, CFG.height // 8, CFG.width // 8) and p.t["emb"].shape == (4, 1, 32)
    assert torch.equal(p.batch(5, 2)["mean"], p.batch(5, 2)["mean"])
    assert float(p.t["std"].max()) < float(p.t["mean"].abs().max())  # a trained-style narrow posterior
    run = tmp_path / "fwd"
    shutil.copytree(smoke_svd, run)  # the fixture's folders stay as the other tests expect them
    fwd = ["forward", "--out", str(run), "--config", "smoke", "--vae-steps", "3", "--batch", "2",
           "--vae-batch", "1", "--checkpoint-every", "2", "--threads", "1", "--latent-pool", str(pool)]
    assert train.main(fwd + ["--unet-steps", "5"]) == 0  # resumes the fixture's UNet at step 3
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()
             if json.loads(line)["stage"] == "unet"]
    assert steps == [0, 2, 4], steps  # logged every 10th and the last step of each run
    assert sorted(p.name for p in (run / "checkpoints").glob("unet-*.pt"))[-1] == "unet-0000005.pt"


def test_forward_init_trains_the_folders_unet_on_and_keeps_its_vae(smoke_svd, tmp_path):
    """`forward --init` starts the UNet from a diffusers folder and keeps its VAE and image encoder (no autoencoder
    stage): at learning rate 0 the written UNet is the folder's, bit for bit; at a real rate it moves."""
    from safetensors.torch import load_file

    svd = smoke_svd / "svd"
    base = ["forward", "--config", "smoke", "--init", str(svd), "--unet-steps", "2", "--batch", "2", "--warmup", "1",
            "--threads", "1"]
    assert train.main(base + ["--out", str(tmp_path / "still"), "--lr", "0"]) == 0
    assert train.main(base + ["--out", str(tmp_path / "moved"), "--lr", "1e-3"]) == 0

    def tensors(folder, sub):
        return load_file(next((folder / sub).glob("*.safetensors")))

    init = tensors(svd, "unet")
    still, moved = tensors(tmp_path / "still" / "svd", "unet"), tensors(tmp_path / "moved" / "svd", "unet")
    assert all(torch.equal(init[k], still[k]) for k in init)
    assert sum(not torch.equal(init[k], moved[k]) for k in init) > len(init) // 2
    for sub in ("vae", "image_encoder"):
        a, b = tensors(svd, sub), tensors(tmp_path / "moved" / "svd", sub)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), sub
    logged = [json.loads(line) for line in (tmp_path / "moved" / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in logged} == {"unet"}


def test_steps_within_a_budget():
    assert train.steps_within(10.0, 0.5) == 20
    assert train.steps_within(10.0, 3.0) == 3  # whole steps only: never past the budget
    assert train.steps_within(-1.0, 0.5) == 0  # the time is already spent
    assert train.steps_within(10.0, 0.0) == 0


def test_forward_time_budget_settles_the_length_and_a_resume_keeps_it(smoke_svd, tmp_path):
    """With --time-budget the UNet loop measures its pace over steps 10-30 and settles its length on what fits (an
    all but spent budget: stop right after the pace is measured; the cosine schedule runs to the settled length), and a
    resumed run keeps that length instead of --unet-steps."""
    run = tmp_path / "fwd"
    args = ["forward", "--out", str(run), "--config", "smoke", "--init", str(smoke_svd / "svd"), "--batch", "1",
            "--warmup", "1", "--threads", "1", "--checkpoint-every", "1000", "--unet-steps", "400",
            "--time-budget", "0.001", "--lr", "1e-3"]
    assert train.main(args) == 0
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    settled = [r for r in logged if "planned_steps" in r]
    assert len(settled) == 1 and settled[0]["step"] == 30 and settled[0]["planned_steps"] == 31, settled
    assert settled[0]["pace_s"] > 0
    assert [r for r in logged if "loss" in r][-1]["step"] == 30
    assert sorted(p.name for p in (run / "checkpoints").glob("unet-*.pt")) == ["unet-0000031.pt"]
    record = json.loads((run / "svd" / "training.json").read_text())
    assert record["unet_steps_run"] == 31 and record["device"] == "cpu" and record["peak_gpu_mb"] is None
    assert train.main(args[:-4] + ["--lr", "1e-3"]) == 0  # no budget now: the checkpoint's length holds
    assert len((run / "log.jsonl").read_text().splitlines()) == len(logged)


def test_forward_init_with_another_frame_size_names_the_flag(smoke_svd):
    from dataclasses import replace

    unet = train.load_svd(smoke_svd / "svd", torch.float32)[0]
    train.check_init_fits(unet, train.CONFIGS["smoke"], smoke_svd / "svd")  # its own size passes
    with pytest.raises(SystemExit) as e:
        train.check_init_fits(unet, replace(train.CONFIGS["smoke"], height=128), smoke_svd / "svd")
    assert str(e.value) == (f"train: {smoke_svd / 'svd' / 'unet'} takes 64-pixel-high clips with 8 input channels; "
                            "this run draws 128-pixel-high clips (--config). Pick the --config of the folder's model.")


def test_vae_channels_lay_other_autoencoder_widths_over_the_config():
    from argparse import Namespace

    a = Namespace(config="smoke", vae_channels=(96, 64, 64, 96))
    assert train.config_of(a).vae_channels == (96, 64, 64, 96)
    assert train.config_of(Namespace(config="smoke", vae_channels=None)) == train.CONFIGS["smoke"]
    assert list(train.new_vae(train.config_of(a)).config.block_out_channels) == [96, 64, 64, 96]


def test_resuming_with_other_widths_names_the_flags(smoke_svd, tmp_path):
    """A checkpoint does not record the widths it was trained at; a resume that builds other widths stops with the
    flags to fix and the first tensor that differs, before PyTorch's size-mismatch error."""
    run = tmp_path / "fwd"
    shutil.copytree(smoke_svd, run)
    wide = ",".join(str(2 * c) for c in CFG.vae_channels)
    with pytest.raises(SystemExit) as e:
        train.main(["forward", "--out", str(run), "--config", "smoke", "--vae-channels", wide, "--vae-steps", "3",
                    "--unet-steps", "0", "--threads", "1"])
    msg = str(e.value)
    assert msg.startswith(f"train: the VAE checkpoint in {run / 'checkpoints'} does not fit"), msg
    assert "Resume with the --config and --vae-channels the run was started with" in msg and " is (" in msg, msg


def test_checkpoint_mismatch_names_the_first_difference():
    mine = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    assert train.checkpoint_mismatch(mine, dict(mine)) is None
    assert train.checkpoint_mismatch(mine, {"a": torch.zeros(2, 3)}) == "it lacks b"
    assert train.checkpoint_mismatch(mine, {**mine, "c": torch.zeros(1)}) == "it has c, which this model lacks"
    assert train.checkpoint_mismatch(mine, {**mine, "b": torch.zeros(5)}) == "b is (5,) there, (4,) here"


def test_loss_points_keep_the_resumed_run_where_steps_repeat():
    rows = [{"stage": "unet", "step": 0, "loss": 1.0}, {"stage": "unet", "step": 10, "loss": 0.9},
            {"stage": "unet", "step": 20, "loss": 0.8}, {"stage": "vae", "step": 10, "loss": 0.5},
            {"stage": "unet", "step": 10, "loss": 0.7}, {"stage": "unet", "step": 30, "loss": 0.6},
            {"stage": "unet", "step": 30, "pace_s": 0.33, "planned_steps": 902}]  # a budgeted run's settled length
    assert train.loss_points(rows, "unet") == [(0, 1.0), (10, 0.7), (20, 0.8), (30, 0.6)]


def test_world_data_takes_a_motion_and_names_the_known_ones():
    data = train.make_data("world:rightward", CFG.frames, CFG.height, CFG.width)
    assert isinstance(data, train.WorldData) and data.motion == "rightward"
    assert train.make_data("world", CFG.frames, CFG.height, CFG.width).motion == "free"
    with pytest.raises(SystemExit, match="free, rightward"):
        train.make_data("world:upward", CFG.frames, CFG.height, CFG.width)


def test_the_reverse_side_is_the_forward_side_played_backwards():
    enc = train.Encoders(train.new_vae(CFG).eval().requires_grad_(False), train.new_clip())
    clip = torch.from_numpy(world.batch([11, 12], CFG.frames, CFG.height, CFG.width))
    with torch.no_grad():
        (lat_f, eps_f, sig_f, cond_f, emb_f), (lat_r, eps_r, sig_r, cond_r, emb_r) = train.reverse_inputs(
            enc, clip, torch.Generator().manual_seed(3))
    torch.testing.assert_close(lat_f, lat_r.flip(1), rtol=0, atol=0)
    torch.testing.assert_close(eps_f, eps_r.flip(1), rtol=0, atol=0)
    assert torch.equal(sig_f, sig_r)
    # each side is conditioned on its own first frame: the clip's first for the forward side, its last for the other
    assert not torch.allclose(cond_f, cond_r) and not torch.allclose(emb_f, emb_r)


def test_check_reverse_pairs_the_branches_on_the_same_noise(smoke_svd, tmp_path):
    """With reverse weights equal to the forward ones, GI's branch is exactly GI-without-fine-tune's; changing one
    of the 32 tensors changes GI's loss only; the rotation itself changes the loss against TRF's own attention."""
    from diffusers import UNetSpatioTemporalConditionModel

    svd = smoke_svd / "svd"
    args = ["check-reverse", "--svd", str(svd), "--clips", "4", "--batch", "2", "--threads", "1"]
    same = tmp_path / "same.json"
    assert train.main(args + ["--reverse-unet", str(svd / "unet"), "--out", str(same)]) == 0
    r = json.loads(same.read_text())
    assert r["clips"] == 4 and set(r["loss"]) == {"forward", "trf", "rotated", "gi"}
    assert r["loss"]["gi"]["mean"] == r["loss"]["rotated"]["mean"]
    assert r["loss"]["rotated"]["mean"] != r["loss"]["trf"]["mean"]
    tuned = UNetSpatioTemporalConditionModel.from_pretrained(svd / "unet")
    name = next(n for n, _ in tuned.named_parameters() if n.endswith(gi.REVERSE_KEYS[0]))
    with torch.no_grad():
        dict(tuned.named_parameters())[name].mul_(3.0)
    tuned.save_pretrained(tmp_path / "tuned")
    other = tmp_path / "other.json"
    assert train.main(args + ["--reverse-unet", str(tmp_path / "tuned"), "--out", str(other)]) == 0
    o = json.loads(other.read_text())
    for k in ("forward", "trf", "rotated"):
        assert o["loss"][k]["mean"] == r["loss"][k]["mean"], k
    assert o["loss"]["gi"]["mean"] != r["loss"]["gi"]["mean"]
    with pytest.raises(SystemExit, match="is not a UNet folder"):
        train.main(args + ["--reverse-unet", str(svd)])


def test_a_training_step_dispatches_as_many_operators_whatever_the_batch():
    """tools/bench/train_step_ops.py, on which docs/BENCHMARKS.md rests the GPU batch size: arithmetic grows with the
    batch, the number of kernels does not."""
    from tools.bench.train_step_ops import measure

    unet = train.new_unet(CFG).train()
    one, four = measure(unet, 1, True), measure(unet, 4, True)
    assert four["gflop"] == pytest.approx(4 * one["gflop"], rel=1e-6)
    assert one["compute_operators"] > 1000
    assert abs(four["compute_operators"] - one["compute_operators"]) < 0.02 * one["compute_operators"]


def perturbed_smoke_unet(seed=11):
    from tools.tiny import _perturb_, tiny_unet

    torch.manual_seed(seed)
    unet = tiny_unet(CFG.frames, CFG.height, CFG.channels, CFG.heads)
    _perturb_(unet, torch.Generator().manual_seed(seed))
    return unet.eval()


@pytest.mark.parametrize("k", [2, 3])
def test_widened_unet_computes_the_same_function(k):
    """Every width × k, the same outputs: fp32 sums in another order, so agreement to ~1e-6 of outputs of order 1;
    1e-4 would still catch a wrong attention scale (√k on the logits) or a misread sinusoid (both change outputs by
    more than 1e-2 here)."""
    from tools.widen import widen_unet

    unet = perturbed_smoke_unet()
    wide = widen_unet(unet, k).eval()
    assert list(wide.config.block_out_channels) == [c * k for c in CFG.channels]
    assert sum(p.numel() for p in wide.parameters()) > 3 * sum(p.numel() for p in unet.parameters())
    fb = fixed_batch()
    x = torch.cat([fb["latents"], fb["cond_latents"].unsqueeze(1).expand_as(fb["latents"])], dim=2)
    args = (x, torch.tensor([0.3, -1.2]), fb["embeds"], fb["time_ids"])
    with torch.no_grad():
        ref, out = unet(*args).sample, wide(*args).sample
    assert ref.abs().max() > 0.5
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    # with noise the copies part, and the function moves only a little
    noisy = widen_unet(unet, k, noise=0.01, seed=1).eval()
    w = noisy.state_dict()["conv_in.weight"]
    assert not torch.equal(w[0], w[1])
    with torch.no_grad():
        moved = (noisy(*args).sample - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()
    assert 0 < moved < 0.1, moved


def test_widen_then_reverse_init_reverse_starts_from_the_widened_fine_tune(smoke_svd, tmp_path):
    from diffusers import UNetSpatioTemporalConditionModel

    svd = smoke_svd / "svd"
    tuned = UNetSpatioTemporalConditionModel.from_pretrained(svd / "unet")
    with torch.no_grad():  # stands for a finished fine-tune: the 32 tensors moved
        for n, p in tuned.named_parameters():
            if any(n.endswith(k) for k in gi.REVERSE_KEYS):
                p.add_(0.5)
    tuned.save_pretrained(tmp_path / "tuned")
    wide = tmp_path / "wide"
    assert train.main(["widen", "--svd", str(svd), "--out", str(wide), "--reverse-unet", str(tmp_path / "tuned")]) == 0
    assert sorted(p.name for p in wide.iterdir()) == ["feature_extractor", "image_encoder", "model_index.json",
                                                       "reverse_unet", "scheduler", "training.json", "unet", "vae"]
    assert json.loads((wide / "training.json").read_text())["block_out_channels"] == [2 * c for c in CFG.channels]
    rev = ["reverse", "--svd", str(wide), "--steps", "1", "--batch", "1", "--threads", "1", "--lr", "0"]
    assert train.main(rev + ["--out", str(tmp_path / "rev"), "--init-reverse", str(wide / "reverse_unet")]) == 0
    base = UNetSpatioTemporalConditionModel.from_pretrained(wide / "unet").state_dict()
    start = UNetSpatioTemporalConditionModel.from_pretrained(wide / "reverse_unet").state_dict()
    out = UNetSpatioTemporalConditionModel.from_pretrained(tmp_path / "rev" / "unet").state_dict()
    for n in base:  # learning rate 0: what was loaded is what comes out
        assert torch.equal(out[n], start[n] if any(n.endswith(k) for k in gi.REVERSE_KEYS) else base[n]), n
    with pytest.raises(SystemExit) as e:  # the narrow fine-tune does not fit the wide base
        train.main(rev + ["--out", str(tmp_path / "rev2"), "--init-reverse", str(tmp_path / "tuned")])
    assert str(e.value) == (f"train: --init-reverse {tmp_path / 'tuned'} does not fit the --svd UNet "
                            "(down_blocks.0.attentions.0.temporal_transformer_blocks.0.attn1.to_v.weight is (32, 32) "
                            "there, (64, 64) here)")


def test_moving_cells_are_the_share_of_each_latent_cell_that_changes_in_the_clip():
    clip = torch.from_numpy(world.batch([21, 22], 7, 64, 128))
    cells = train.moving_cells(clip)
    assert cells.shape == (2, 1, 1, 8, 16)
    px = clip.numpy()
    changes = ((px.max(1) - px.min(1)).max(1) > train.MOVING_TOL).astype(np.float64)  # (B,H,W)
    want = changes.reshape(2, 8, 8, 16, 8).mean((2, 4))
    np.testing.assert_allclose(cells[:, 0, 0].numpy(), want, rtol=0, atol=1e-6)
    assert 0 < float(cells.mean()) < 0.6  # sprites move over a still background: some cells, not all
    # every sprite's start and end lie in moving cells; a clip and its reversal get the same cells
    for b, seed in enumerate([21, 22]):
        c = world.make_clip(seed, 7, 64, 128)
        for s_idx, s in enumerate(c.sprites):
            for i in (0, 6):
                x, y = s.pos[i]
                if c.visible[s_idx, i] >= 0.5 and 0 <= x < 128 and 0 <= y < 64:
                    assert float(cells[b, 0, 0, int(y) // 8, int(x) // 8]) > 0, (seed, s_idx, i)
    assert torch.equal(train.moving_cells(clip.flip(1)), cells)


def test_the_moving_weight_moves_the_loss_towards_the_moving_cells_and_one_is_the_plain_loss():
    fb = fixed_batch()
    x, eps, sig = fb["latents"], fb["noise"], fb["sigma"].view(-1, 1, 1, 1, 1)
    v = (eps - sig * x) / torch.sqrt(sig**2 + 1)
    h, w = x.shape[-2:]
    cells = torch.zeros(2, 1, 1, h, w)
    cells[..., : h // 4, :] = 1  # a quarter of the cells move
    # a prediction exact on the still cells and off by 1 in x on the moving ones
    c_out = (-sig / torch.sqrt(sig**2 + 1))
    bad = v + cells / c_out
    plain, per_plain = train.denoising_loss(lambda *a, **k: (bad,), **fb)
    lam = (1 + fb["sigma"] ** 2) / fb["sigma"] ** 2
    torch.testing.assert_close(per_plain, lam * 0.25, rtol=1e-4, atol=0)
    assert train.region_weight(cells, 1.0) is None and train.region_weight(None, 4.0) is None
    _, per_4 = train.denoising_loss(lambda *a, **k: (bad,), **fb, region=train.region_weight(cells, 4.0))
    torch.testing.assert_close(per_4, lam * (4 * 0.25) / (1 + 3 * 0.25), rtol=1e-4, atol=0)  # 4/7 of the weight
    _, per_uniform = train.denoising_loss(lambda *a, **k: (bad,), **fb, region=torch.full_like(cells, 2.5))
    torch.testing.assert_close(per_uniform, per_plain)  # normalised: a uniform weight is the plain loss


def test_a_pool_without_moving_cells_gets_them_from_encode_and_forward_names_the_fix(smoke_svd, tmp_path):
    pool = tmp_path / "pool"
    enc = ["encode", "--vae", str(smoke_svd / "svd" / "vae"), "--out", str(pool), "--count", "2", "--chunk", "2",
           "--frames", str(CFG.frames), "--height", str(CFG.height), "--width", str(CFG.width)]
    assert train.main(enc) == 0
    shard = pool / "pool-00000000.pt"
    e = torch.load(shard, weights_only=True)
    clips, _ = train.WorldData(CFG.frames, CFG.height, CFG.width, seed_offset=5_000_000).batch(0, 2)
    assert torch.equal(e["moving"], train.moving_cells(clips).to(torch.bfloat16))
    old = {k: v for k, v in e.items() if k != "moving"}  # as pools were written before the cells
    torch.save(old, shard)
    fwd = ["forward", "--out", str(tmp_path / "fwd"), "--config", "smoke", "--batch", "2", "--threads", "1",
           "--latent-pool", str(pool), "--init", str(smoke_svd / "svd"), "--unet-steps", "2", "--moving-weight", "4"]
    with pytest.raises(SystemExit, match="without the moving cells --moving-weight needs; run the same `encode`"):
        train.main(fwd)
    # an upgrade stopped after one shard: the pool names the shards that differ instead of failing on a missing key
    assert train.main(enc + ["--first", "2"]) == 0
    with pytest.raises(SystemExit, match=r"shards pool-00000002.pt hold other tensors than pool-00000000.pt "
                                         r"\(bucket, cond, emb, mean, std, strength\); run the `encode`"):
        train.LatentPool(pool, 0)
    assert train.main(enc) == 0
    again = torch.load(shard, weights_only=True)
    assert torch.equal(again["moving"], e["moving"]) and torch.equal(again["mean"], e["mean"])
    assert train.main(fwd) == 0


def _second_run(first, out, seed=0):
    """A copy of the SVD folder `first` whose UNet moved a little, as a continuation's would, and a slim fine-tune of
    it that moved too: (its folder, its fine-tune's folder)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(first, out, ignore=shutil.ignore_patterns("reverse_unet", "reverse_base"))
    gen = torch.Generator().manual_seed(seed)
    moved = {n: w + 0.01 * torch.randn(w.shape, generator=gen) for n, w in
             load_file(str(first / "unet" / gi.WEIGHTS)).items()}
    save_file(moved, str(out / "unet" / gi.WEIGHTS), metadata={"format": "pt"})
    tuned = {n: w + 0.01 * torch.randn(w.shape, generator=gen) for n, w in
             gi.reverse_tensors(first / "reverse_unet").items()}
    gi.save_slim_reverse_unet(tuned, first / "reverse_unet", out / "rev")
    return out, out / "rev"


def test_average_is_the_weighted_mean_of_two_runs_unets_and_fine_tunes(tiny_source, tmp_path):
    from safetensors.torch import load_file

    from tools.export import load_folders

    second, second_rev = _second_run(tiny_source, tmp_path / "second")
    out = tmp_path / "avg"
    assert train.main(["average", "--svd", str(tiny_source), str(second), "--reverse-unet",
                       str(tiny_source / "reverse_unet"), str(second_rev), "--weight", "0.25", "--out", str(out)]) == 0
    ua, ub, got = (load_file(str(d / "unet" / gi.WEIGHTS)) for d in (tiny_source, second, out))
    assert got.keys() == ua.keys() and all(torch.equal(got[n], 0.75 * ua[n] + 0.25 * ub[n]) for n in ua)
    ra, rb = gi.reverse_tensors(tiny_source / "reverse_unet"), gi.reverse_tensors(second_rev)
    tuned = load_file(str(out / "reverse_unet" / gi.WEIGHTS))  # slim: the 32 alone
    assert tuned.keys() == ra.keys() and all(torch.equal(tuned[n], 0.75 * ra[n] + 0.25 * rb[n]) for n in ra)
    assert train.same_weights(out / "vae", tiny_source / "vae")
    assert train.same_weights(out / "image_encoder", tiny_source / "image_encoder")
    record = json.loads((out / "training.json").read_text())
    assert record["stage"] == "average" and record["weight_of_second"] == 0.25
    # what the exporter builds from it: the averaged UNet with the averaged 32 tensors
    unet, _, _, rev, _ = load_folders(out, out / "reverse_unet", None)
    merged = gi.merge_reverse_weights(unet, rev)
    assert all(torch.equal(merged[n], tuned[n]) for n in tuned)


def test_average_refuses_what_is_not_two_runs_of_one_model(tiny_source, tmp_path):
    from safetensors.torch import load_file, save_file

    second, _ = _second_run(tiny_source, tmp_path / "second")
    args = ["average", "--svd", str(tiny_source), str(second)]
    with pytest.raises(SystemExit, match=r"--weight 1.0: the second run's share must lie strictly between 0 and 1"):
        train.main(args + ["--weight", "1", "--out", str(tmp_path / "o1")])
    with pytest.raises(SystemExit, match=r"exists; pick a new folder"):
        train.main(args + ["--out", str(second)])
    vae = load_file(str(second / "vae" / gi.WEIGHTS))
    name = sorted(vae)[0]
    vae[name] = vae[name] + 1
    save_file(vae, str(second / "vae" / gi.WEIGHTS), metadata={"format": "pt"})
    with pytest.raises(SystemExit, match=r"differ in vae/; only UNets are averaged"):
        train.main(args + ["--out", str(tmp_path / "o2")])
    shutil.copytree(tiny_source / "vae", second / "vae", dirs_exist_ok=True)
    unet = load_file(str(second / "unet" / gi.WEIGHTS))
    dropped = sorted(unet)[0]
    del unet[dropped]
    save_file(unet, str(second / "unet" / gi.WEIGHTS), metadata={"format": "pt"})
    with pytest.raises(SystemExit, match=rf"the two UNets are not one model: only in the first \['{dropped}'\]"):
        train.main(args + ["--out", str(tmp_path / "o3")])

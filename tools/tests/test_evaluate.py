"""The quality metrics (tools.evaluate) on cases whose answers are known: the truth scores perfectly, a copy of
keyframe A misses every moving sprite's track, frame blend ghosts, a reversed clip goes back and forth, and split runs
combine into one table."""
import json
import sys

import numpy as np
import pytest

from tools import evaluate, world

SEED = world.VALIDATION_SEED_BASE + 7  # a development seed, never the evaluation range


@pytest.fixture(scope="module")
def clip():
    c = world.make_clip(SEED)
    assert c.visible[:, 1:-1].min() >= evaluate.MIN_VISIBLE, "pick a seed whose sprites stay in view"
    return c


def test_the_truth_scores_perfectly(clip):
    s = evaluate.summarise([evaluate.score_pair(clip, clip.frames)])
    assert s["psnr_db"] == 99.0 and s["ssim"] == pytest.approx(1.0)
    assert s["track_error"] < 0.02 and s["ghosting_rate"] == 0.0 and s["back_and_forth_rate"] == 0.0
    assert s["found_rate"] == 1.0
    assert s["track_error_n"] == len(clip.sprites) * (clip.frames.shape[0] - 2)


def test_holding_keyframe_a_misses_the_track_by_the_distance_travelled(clip):
    held = np.repeat(clip.frames[:1], clip.frames.shape[0], axis=0)
    per = evaluate.score_pair(clip, held)["track"]
    nf = clip.frames.shape[0]
    for k, s in enumerate(clip.sprites):
        disp = np.linalg.norm(s.pos[-1] - s.pos[0])
        for j, i in enumerate(range(1, nf - 1)):
            want = min(1.0, np.linalg.norm(s.pos[0] - s.pos[i]) / disp)
            assert per[k * (nf - 2) + j] == pytest.approx(want, abs=0.03)


def test_frame_blend_ghosts_and_a_reversed_clip_goes_back_and_forth(clip):
    nf = clip.frames.shape[0]
    blend = evaluate.blend(clip.frames[0], clip.frames[-1], nf)
    ghost = evaluate.score_pair(clip, blend)["ghost"]
    # the middle in-between holds every sprite at half opacity: never one blob of its colour
    assert all(ghost[k * (nf - 2) + nf // 2 - 1] for k in range(len(clip.sprites))), ghost
    rev = clip.frames[::-1].copy()
    rev[0], rev[-1] = clip.frames[0], clip.frames[-1]  # right keyframes, the in-betweens run backwards
    assert evaluate.summarise([evaluate.score_pair(clip, rev)])["back_and_forth_rate"] > 0.3


def test_split_runs_combine_per_pair(tmp_path, clip):
    good = evaluate.score_pair(clip, clip.frames)
    bad = evaluate.score_pair(clip, evaluate.blend(clip.frames[0], clip.frames[-1], clip.frames.shape[0]))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "scores.jsonl").write_text(json.dumps({"pair": 0, "seed": SEED, "blend": bad}) + "\n")
    (tmp_path / "b" / "scores.jsonl").write_text(json.dumps({"pair": 0, "seed": SEED, "gi": good}) + "\n"
                                                 + json.dumps({"pair": 1, "seed": SEED + 1, "gi": good}) + "\n")
    assert evaluate.combine([tmp_path / "a", tmp_path / "b"], tmp_path / "all") == 0
    table = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert table["pairs"] == 1 and table["pair_ids"] == [0]  # pair 1 has no blend score yet: left out
    assert set(table["methods"]) == {"gi", "blend"}
    assert table["methods"]["gi"]["ghosting_rate"] == 0.0 and table["methods"]["blend"]["ghosting_rate"] > 0.2
    assert table["minus_gi"]["blend"]["ghosting_rate"]["difference"] == table["methods"]["blend"]["ghosting_rate"]


def test_combine_draws_each_pairs_methods_from_the_runs_that_made_them(tmp_path, clip):
    nf = clip.frames.shape[0]
    blend = evaluate.blend(clip.frames[0], clip.frames[-1], nf)
    for run, arrays, methods in (("base", {"truth": clip.frames, "blend": blend}, ("blend",)),
                                 ("ours", {"truth": clip.frames, "gi": clip.frames[::-1]}, ("gi",))):
        (tmp_path / run / "pairs" / "0000").mkdir(parents=True)
        np.savez_compressed(tmp_path / run / "pairs" / "0000" / "frames.npz", **arrays)
        row = {"pair": 0, "seed": SEED, **{m: evaluate.score_pair(clip, arrays[m]) for m in methods}}
        (tmp_path / run / "scores.jsonl").write_text(json.dumps(evaluate.jsonable(row)) + "\n")
    evaluate.combine([tmp_path / "base", tmp_path / "ours"], tmp_path / "all", sheets=3)
    from PIL import Image

    sheet = np.asarray(Image.open(tmp_path / "all" / "sheet_0000.png"))
    h = clip.frames.shape[1]
    # rows: truth, then the methods in METHODS order (gi before blend), whichever run saved them
    for row, frames in enumerate((clip.frames, clip.frames[::-1], blend)):
        np.testing.assert_array_equal(sheet[row * (h + 2):row * (h + 2) + h], world.contact_sheet(frames))
    assert sheet.shape[0] == 3 * h + 4
    with pytest.raises(SystemExit, match="pair 0: no saved frames for gi in"):
        evaluate.combined_sheet([tmp_path / "base"], 0, ["gi"])


def test_a_sprite_lost_to_the_background_is_not_found_and_old_runs_rescore(tmp_path, clip):
    nf = clip.frames.shape[0]
    # the truth with every sprite painted over by the pixel colour of the clip's first-frame corner
    erased = clip.frames.copy()
    erased[1:-1] = clip.frames[0, :1, :1]
    per = evaluate.score_pair(clip, erased)
    assert per["found"] == [False] * len(clip.sprites) * (nf - 2)
    assert per["track"] == [1.0] * len(per["found"])
    # a run written before the found rate existed: its scores lack it until rescored from the saved frames
    run = tmp_path / "old"
    (run / "pairs" / "0000").mkdir(parents=True)
    np.savez_compressed(run / "pairs" / "0000" / "frames.npz", truth=clip.frames, gi_noft=erased, blend=clip.frames)
    old = {m: {k: v for k, v in evaluate.score_pair(clip, f).items() if k != "found"}
           for m, f in (("gi-noft", erased), ("blend", clip.frames))}
    (run / "scores.jsonl").write_text(json.dumps({"pair": 0, "seed": SEED, **old}) + "\n")
    evaluate.combine([run], tmp_path / "plain")
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["methods"]["blend"]["found_rate_n"] == 0
    evaluate.combine([run], tmp_path / "again", rescore=True)
    table = json.loads((tmp_path / "again" / "summary.json").read_text())["methods"]
    assert table["gi-noft"]["found_rate"] == 0.0 and table["blend"]["found_rate"] == 1.0
    assert table["gi-noft"]["psnr_db"] == pytest.approx(evaluate.summarise([per])["psnr_db"])
    merged = [json.loads(line) for line in (tmp_path / "again" / "scores.jsonl").read_text().splitlines()]
    assert [r["pair"] for r in merged] == [0] and merged[0]["gi-noft"]["found"] == [0.0] * len(per["found"])
    with pytest.raises(SystemExit, match="another version of the world"):
        np.savez_compressed(run / "pairs" / "0000" / "frames.npz", truth=erased, gi_noft=erased, blend=erased)
        evaluate.combine([run], tmp_path / "bad", rescore=True)


def test_baseline_packages_are_reused_only_for_the_source_they_were_built_from(tmp_path, monkeypatch):
    """A --baselines folder kept across runs: the same source reuses its packages, a retrained one rebuilds them."""
    import tools.export

    built = []

    def fake_export(source, unet, base, out, *args, **kw):
        built.append((source, kw["reverse_attention"]))
        out.mkdir(parents=True, exist_ok=True)
        (out / "manifest.json").write_text("{}")

    monkeypatch.setattr(tools.export, "export_package", fake_export)
    source = tmp_path / "source"
    (source / "unet").mkdir(parents=True)
    (source / "unet" / "weights").write_bytes(b"old model")
    out = tmp_path / "baselines" / "pkg-trf"
    assert evaluate.make_baseline_package(source, out, "trf") == out
    assert evaluate.make_baseline_package(source, out, "trf") == out
    assert built == [(source, "own")]
    (source / "unet" / "weights").write_bytes(b"new model")
    evaluate.make_baseline_package(source, out, "trf")
    assert built == [(source, "own")] * 2
    stamp = json.loads((out / "built-from.json").read_text())
    assert stamp == {"source_sha256": evaluate.folder_digest(source), "kind": "trf"}
    (out / "built-from.json").unlink()  # a package from before the stamp existed is rebuilt too
    evaluate.make_baseline_package(source, out, "trf")
    assert len(built) == 3


def test_paired_differences_pool_like_the_table_and_bound_the_pair_to_pair_spread():
    # pooled like summarise: gi's track values 0, 0, 1 -> 1/3; blend's 1, 0, 0, 0 -> 1/4
    rows = [{"pair": 0, "gi": {"track": [0.0, 0.0]}, "blend": {"track": [1.0]}},
            {"pair": 1, "gi": {"track": [1.0]}, "blend": {"track": [0.0, 0.0, 0.0]}}]
    d = evaluate.paired_differences(rows)["blend"]["track_error"]
    assert d["difference"] == pytest.approx(1 / 4 - 1 / 3)
    assert d["ci95"][0] <= d["difference"] <= d["ci95"][1]
    assert set(evaluate.paired_differences(rows)["blend"]) == {"track_error"}  # metrics nobody scored are left out

    rng = np.random.default_rng(3)
    gi = rng.normal(20, 2, size=40)  # pairs differ a lot from each other...
    rows = [{"pair": k, "gi": {"psnr": [g]},
             "blend": {"psnr": [g + 0.5 + rng.normal(0, 0.1)]},  # ...blend is always ≈ 0.5 dB better
             "trf": {"psnr": [g + (1.0 if k % 2 else -1.0)]}}  # trf is ±1 dB: no better on balance
            for k, g in enumerate(gi)]
    v = evaluate.paired_differences(rows)
    lo, hi = v["blend"]["psnr_db"]["ci95"]
    assert 0.4 < lo < 0.5 < hi < 0.6  # the pairing removes the 2 dB pair-to-pair spread from the interval
    assert v["trf"]["psnr_db"]["difference"] == pytest.approx(0.0)
    lo, hi = v["trf"]["psnr_db"]["ci95"]
    assert lo < 0 < hi
    same = [{"pair": 0, "gi": {"ssim": [0.7, 0.8]}, "gi-noft": {"ssim": [0.7, 0.8]}}] * 3
    assert evaluate.paired_differences(same)["gi-noft"]["ssim"] == {"difference": 0.0, "ci95": [0.0, 0.0]}


def test_psnr_splits_into_the_still_background_and_the_moving_region(clip):
    still = evaluate.still_mask(clip.frames)
    assert 0.3 < still.mean() < 0.98  # the sprites sweep part of the frame, the rest never changes
    nf = clip.frames.shape[0]
    # frame blend is exact (to float32 rounding) wherever nothing moves, and only there
    s = evaluate.summarise([evaluate.score_pair(clip, evaluate.blend(clip.frames[0], clip.frames[-1], nf))])
    assert s["psnr_still_db"] > 90 and s["psnr_still_db_n"] == nf - 2
    assert s["psnr_moving_db"] < 30
    # a uniform error of 0.1 is 20 dB in both regions
    s = evaluate.summarise([evaluate.score_pair(clip, np.clip(clip.frames + 0.1, 0, 1.1))])
    assert s["psnr_still_db"] == pytest.approx(20.0) and s["psnr_moving_db"] == pytest.approx(20.0)


def test_runs_of_other_motions_do_not_combine(tmp_path, clip):
    good = evaluate.score_pair(clip, clip.frames)
    for d, motion in (("free", None), ("right", "rightward")):
        (tmp_path / d).mkdir()
        row = {"pair": 0, "seed": SEED, "gi" if d == "free" else "trf": good} | ({"motion": motion} if motion else {})
        (tmp_path / d / "scores.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(SystemExit, match="seed .* of the rightward world, another run's is seed .* of the free world"):
        evaluate.combine([tmp_path / "free", tmp_path / "right"], tmp_path / "all")


def test_by_frame_says_which_in_between_lost_the_sprites(tmp_path, clip):
    nf = clip.frames.shape[0]
    lost = clip.frames.copy()
    lost[2] = clip.frames[0, :1, :1]  # in-between 2 painted over with a background pixel's colour
    per = evaluate.score_pair(clip, lost)
    assert per["frame"] == [i for _ in clip.sprites for i in range(1, nf - 1)]
    table = evaluate.by_frame([per, evaluate.score_pair(clip, clip.frames)])
    assert list(table) == [str(i) for i in range(1, nf - 1)]
    assert table["2"]["track_error"] == pytest.approx(0.5, abs=0.01)  # 1 where lost, a centroid's rounding where not
    assert table["2"] | {"track_error": 0.5} == {"track_error": 0.5, "ghosting_rate": 0.5, "found_rate": 0.5,
                                                 "n": 2 * len(clip.sprites)}
    for i in set(table) - {"2"}:
        assert table[i]["found_rate"] == 1.0 and table[i]["ghosting_rate"] == 0.0 and table[i]["track_error"] < 0.05
    # through combine, after the JSON round trip (indices come back as floats)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "scores.jsonl").write_text(json.dumps(evaluate.jsonable({"pair": 0, "seed": SEED, "gi": per})))
    evaluate.combine([tmp_path / "run"], tmp_path / "all")
    assert json.loads((tmp_path / "all" / "summary.json").read_text())["by_frame"]["gi"]["2"]["found_rate"] == 0.0


def test_gi_linear_is_the_same_package_with_linear_fusion(tmp_path, clip):
    """Through a stand-in CLI that records its arguments and returns the true clip."""
    nf, h, w = clip.frames.shape[:3]
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "manifest.json").write_text(json.dumps({"num_frames": nf, "height": h, "width": w}))
    np.save(tmp_path / "truth.npy", world.make_clip(world.VALIDATION_SEED_BASE, nf, h, w).frames)
    cli = tmp_path / "cli"
    cli.write_text(f"#!{sys.executable}\nimport sys, shutil, pathlib\n"
                   f"out = pathlib.Path(sys.argv[sys.argv.index('--out') + 1]); out.mkdir(parents=True)\n"
                   f"(out / 'args').write_text(' '.join(sys.argv[1:]))\n"
                   f"shutil.copy({str(tmp_path / 'truth.npy')!r}, out / 'frames.npy')\n")
    cli.chmod(0o755)
    assert evaluate.main(["--package", str(pkg), "--cli", str(cli), "--pairs", "1", "--split", "validation",
                          "--methods", "gi", "gi-linear", "--sheets", "0", "--out", str(tmp_path / "out")]) == 0
    pair = tmp_path / "out" / "pairs" / "0000"
    args = {m: (pair / m / "args").read_text().replace(str(pair / m), "OUT").split() for m in ("gi", "gi-linear")}
    assert args["gi-linear"] == args["gi"] + ["--fusion", "linear"]
    assert args["gi"][-2:] == ["--seed", "42"] and f"--models {pkg}" in " ".join(args["gi"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["methods"]["gi-linear"]["track_error"] == summary["methods"]["gi"]["track_error"] < 0.05
    assert set(summary["by_frame"]) == {"gi", "gi-linear"}


def test_versus_pairs_a_candidates_runs_with_the_shipped_packages_by_pair(tmp_path, clip):
    good = evaluate.score_pair(clip, clip.frames)
    held = evaluate.score_pair(clip, np.repeat(clip.frames[:1], clip.frames.shape[0], 0))  # keyframe A held
    assert np.mean(held["track"]) > 0.3 and np.mean(good["track"]) < 0.01

    def run(name, rows):
        (tmp_path / name).mkdir()
        (tmp_path / name / "scores.jsonl").write_text("".join(json.dumps(evaluate.jsonable(r)) + "\n" for r in rows))
        return tmp_path / name

    # the shipped package held A on pair 0 and was right on pair 1; the candidate the other way round, in another
    # order and split over two runs, and it also scored a pair the shipped package never ran
    shipped = run("shipped", [{"pair": 0, "seed": SEED, "gi": held}, {"pair": 1, "seed": SEED + 1, "gi": good}])
    cand = [run("c0", [{"pair": 1, "seed": SEED + 1, "gi": held}]),
            run("c1", [{"pair": 2, "seed": SEED + 2, "gi": held}, {"pair": 0, "seed": SEED, "gi": good}])]
    assert evaluate.combine(cand, tmp_path / "all", versus=[shipped]) == 0
    v = json.loads((tmp_path / "all" / "summary.json").read_text())["versus"]
    assert v["methods"]["gi"]["pairs"] == 2
    d = v["methods"]["gi"]["minus_theirs"]
    assert d["track_error"]["difference"] == pytest.approx(0.0, abs=1e-12)  # the same two outcomes, swapped
    assert d["ssim"]["ci95"][0] < 0 < d["ssim"]["ci95"][1]
    # one pair each way, the candidate right where the shipped one held A: minus_theirs is candidate − shipped
    evaluate.combine([cand[1]], tmp_path / "one", versus=[shipped])
    d = json.loads((tmp_path / "one" / "summary.json").read_text())["versus"]["methods"]["gi"]["minus_theirs"]
    assert d["track_error"]["difference"] == pytest.approx(np.mean(good["track"]) - np.mean(held["track"]))
    assert d["track_error"]["ci95"] == [pytest.approx(d["track_error"]["difference"])] * 2

    wrong = run("wrong", [{"pair": 0, "seed": SEED + 5, "gi": good}])
    with pytest.raises(SystemExit, match="pair 0 is seed .* here and seed .* in --versus"):
        evaluate.combine(cand, tmp_path / "x", versus=[wrong])
    other = run("other", [{"pair": 0, "seed": SEED, "blend": good}])
    with pytest.raises(SystemExit, match="scored no method on a pair these runs scored"):
        evaluate.combine([cand[1]], tmp_path / "y", versus=[other])
    with pytest.raises(SystemExit):
        evaluate.main(["--versus", str(shipped), "--out", str(tmp_path / "z")])

"""Quality evaluation on held-out pairs of the procedural world (seeds ≥ tools.world.EVAL_SEED_BASE, never trained on).

For each pair (frame 0 and frame F−1 of a world clip, the true in-betweens between them) every method makes F
frames; the F−2 in-betweens are scored against the truth:

  gi          ours: Generative Inbetweening through the Rust CLI on the exported package (paper defaults)
  gi-linear   the same with the authors' other fusion (`--fusion linear`: output frame i weighs the forward branch
              by 1 − i/(F−1)); an option of the product, not the paper's default
  gi-noft     the same without the fine-tune: a package whose reverse weights are the forward ones (rotation kept)
  trf         TRF-style: the reverse branch is the unmodified forward UNet with its own attention (no rotation)
  forward     forward-only SVD from keyframe A (keyframe B unused)
  blend       frame blend (the preview baseline)

gi, gi-linear, gi-noft and trf run through `svd-inbetween generate` (the last two on packages the exporter builds
from the same folders: zero fine-tune delta / the stock UNet in every row), all with the same sampler and paper
defaults but gi-linear's fusion; forward
runs SVD's plain sampling through the PyTorch reference pipeline (tools.reference, which the Rust sampler matches to
2e-5), since the package has no forward-only mode.

Metrics (per method, over all pairs): PSNR and SSIM of the in-betweens, and the PSNR split into the still
background (pixels the true clip never changes) and the moving region (the rest: what the sprites sweep);
sprite-track error (each sprite found by its colour, centroid distance to its true track as a fraction of its
displacement A→B, capped at 1; a sprite that is not found counts 1); ghosting rate (share of (sprite, in-between)
where the sprite is not exactly one solid blob of its colour); found rate (share of (sprite, in-between) where the sprite is found by its colour at all: at least one
blob of a fifth of its true area; the other colour-based metrics rest on it); back-and-forth rate (share of
consecutive frame pairs, keyframes included, where a sprite's centroid moves against its true direction). Only
sprites at least half visible in the true frame are scored. summary.json's "by_frame" splits the track error,
ghosting and found rate by in-between (1 … F−2: where between the keyframes a method loses the sprites).
`--combine` also writes each method's difference from gi per metric with a 95 % paired-bootstrap interval over the
pairs (summary.json's "minus_gi"); `--combine CANDIDATE_RUNS --versus SHIPPED_RUNS` adds each method's difference
from the same method of other runs (summary.json's "versus": a candidate package against the shipped one).

    python -m tools.evaluate --package models/tiny --source models/tiny/source --pairs 100 --out out/eval
    (--motion rightward: the pairs of the world's one-way motion, for a model trained on it)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import world

METHODS = ("gi", "gi-linear", "gi-noft", "trf", "forward", "blend")
COLOUR_TOL = 0.28  # RGB distance (0..√3) within which a pixel counts as the sprite's colour
MIN_VISIBLE = 0.5
# per-pair score key -> table name
METRICS = (("psnr", "psnr_db"), ("ssim", "ssim"), ("track", "track_error"), ("ghost", "ghosting_rate"),
           ("found", "found_rate"), ("backforth", "back_and_forth_rate"), ("psnr_still", "psnr_still_db"),
           ("psnr_moving", "psnr_moving_db"))
# the metrics scored per (sprite, in-between), which score_pair's "frame" list indexes: by_frame splits them
PER_INBETWEEN = tuple((k, name) for k, name in METRICS if k in ("track", "ghost", "found"))


# ---------------------------------------------------------------------------------------------- metrics
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(1.0 / mse)


def _gauss_filter(x: np.ndarray, sigma=1.5, radius=5) -> np.ndarray:
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(x, ((radius, radius), (radius, radius)), mode="reflect")
    rows = sum(k[i] * pad[i:i + x.shape[0], :] for i in range(2 * radius + 1))
    return sum(k[i] * rows[:, i:i + x.shape[1]] for i in range(2 * radius + 1))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window σ 1.5, K1 0.01, K2 0.03, range 1) over the RGB channels."""
    c1, c2 = 0.01**2, 0.03**2
    out = []
    for ch in range(a.shape[-1]):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)
        mx, my = _gauss_filter(x), _gauss_filter(y)
        vx, vy = _gauss_filter(x * x) - mx * mx, _gauss_filter(y * y) - my * my
        cxy = _gauss_filter(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        out.append(s.mean())
    return float(np.mean(out))


def colour_mask(frame: np.ndarray, rgb) -> np.ndarray:
    return np.linalg.norm(frame - np.asarray(rgb, np.float32), axis=-1) < COLOUR_TOL


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask, as index arrays (iterative flood fill; masks are small)."""
    seen = np.zeros_like(mask, bool)
    h, w = mask.shape
    comps = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        stack, pix = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            pix.append((y, x))
            for yy, xx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not seen[yy, xx]:
                    seen[yy, xx] = True
                    stack.append((yy, xx))
        comps.append(np.array(pix))
    return comps


def find_sprite(frame: np.ndarray, rgb, expected_area: float):
    """(centroid (x, y) or None, number of significant blobs). A blob is significant when it holds at least a fifth of
    the sprite's true visible area (and 3 pixels)."""
    comps = components(colour_mask(frame, rgb))
    sig = [c for c in comps if len(c) >= max(3.0, 0.2 * expected_area)]
    if not sig:
        return None, 0
    allpix = np.concatenate(sig)
    return np.array([allpix[:, 1].mean() + 0.5, allpix[:, 0].mean() + 0.5]), len(sig)


def still_mask(truth: np.ndarray) -> np.ndarray:
    """(H, W) True where the true clip never changes: background no sprite covers in any frame."""
    return np.all(truth.max(0) - truth.min(0) <= 1e-6, axis=-1)


def score_pair(clip: world.Clip, frames: np.ndarray) -> dict:
    """frames: (F, H, W, 3) in [0, 1], the method's output including its two keyframe slots."""
    truth = clip.frames
    nf = truth.shape[0]
    mids = range(1, nf - 1)
    still = still_mask(truth)
    out = {"psnr": [psnr(frames[i], truth[i]) for i in mids], "ssim": [ssim(frames[i], truth[i]) for i in mids],
           # where the PSNR is lost: the background nothing crosses, and the region the sprites sweep
           "psnr_still": [psnr(frames[i][still], truth[i][still]) for i in mids] if still.any() else [],
           "psnr_moving": [psnr(frames[i][~still], truth[i][~still]) for i in mids] if (~still).any() else [],
           "track": [], "ghost": [], "found": [], "backforth": [],
           "frame": []}  # the in-between each track/ghost/found value belongs to
    for s_idx, s in enumerate(clip.sprites):
        disp = max(float(np.linalg.norm(s.pos[-1] - s.pos[0])), 1.0)
        cents = {}
        for i in range(nf):
            if clip.visible[s_idx, i] < MIN_VISIBLE:
                continue
            area = float(colour_mask(truth[i], s.rgb).sum())
            c, blobs = find_sprite(frames[i], s.rgb, area)
            cents[i] = c
            if 0 < i < nf - 1:
                out["ghost"].append(blobs != 1)
                out["found"].append(c is not None)
                out["track"].append(1.0 if c is None else min(1.0, float(np.linalg.norm(c - s.pos[i])) / disp))
                out["frame"].append(i)
        for i in range(nf - 1):
            a, b = cents.get(i), cents.get(i + 1)
            if a is None or b is None:
                continue
            true_step = s.pos[i + 1] - s.pos[i]
            if np.linalg.norm(true_step) < 1.0:  # no clear direction to go against
                continue
            out["backforth"].append(float(np.dot(b - a, true_step)) < 0)
    return out


def summarise(scores: list[dict]) -> dict:
    def mean(k):
        vals = [v for s in scores for v in s.get(k, [])]  # runs older than a metric lack it (see --rescore)
        return float(np.mean(vals)) if vals else float("nan"), len(vals)

    res = {}
    for k, name in METRICS:
        res[name], res[f"{name}_n"] = mean(k)
    return res


def by_frame(scores: list[dict]) -> dict:
    """Track error, ghosting and found rate of one method per in-between index (pooled over the pairs), from scores
    that carry "frame" (runs older than it: --rescore)."""
    acc: dict[int, dict[str, list]] = {}
    for s in scores:
        for j, i in enumerate(s.get("frame", [])):
            slot = acc.setdefault(int(i), {k: [] for k, _ in PER_INBETWEEN})
            for k, _ in PER_INBETWEEN:
                if k in s:  # runs older than a metric lack it (see --rescore)
                    slot[k].append(s[k][j])
    return {str(i): {name: float(np.mean(acc[i][k])) for k, name in PER_INBETWEEN if acc[i][k]}
            | {"n": len(acc[i]["track"])} for i in sorted(acc)}


def print_by_frame(table: dict) -> None:
    for m, rows in table.items():
        print(f"{m} by in-between: " + "  ".join(
            f"{i}: " + " ".join(f"{name} {v[name]:.3f}" for _, name in PER_INBETWEEN if name in v)
            for i, v in rows.items()))


def paired_differences(rows: list[dict], ours: str = "gi", draws: int = 2000, seed: int = 0) -> dict:
    """Each other method's table value minus ours, metric by metric, with a 95 % interval from a paired bootstrap
    over the pairs (the pairs are the independent samples; a pair's in-betweens and sprites are not). Resampling the
    same pairs for both methods keeps what the pairs share out of the interval, so "ahead but inside the interval"
    is a statement about the methods, not about which pairs were drawn. The statistic is the table's own: the pooled
    mean of every value of the resampled pairs."""
    return {m: paired_difference([r[m] for r in rows], [r[ours] for r in rows], draws, seed)
            for m in METHODS if m != ours and all(m in r for r in rows)}


def paired_difference(these: list[dict], those: list[dict], draws: int = 2000, seed: int = 0) -> dict:
    """Metric by metric, the table value of `these` per-pair scores minus that of `those` (the same pairs, in the
    same order), with the paired bootstrap's 95 % interval; metrics either side lacks are left out."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(these), size=(draws, len(these)))

    def pooled(scores: list[dict], key: str):
        """Per pair, the sum and count of its values: a resample's pooled mean is then sum / count."""
        vals = [s.get(key, []) for s in scores]
        return np.array([np.sum(v) for v in vals], np.float64), np.array([len(v) for v in vals], np.float64)

    out = {}
    for key, name in METRICS:
        (s_m, c_m), (s_o, c_o) = pooled(these, key), pooled(those, key)
        if c_m.sum() == 0 or c_o.sum() == 0:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            diffs = s_m[picks].sum(1) / c_m[picks].sum(1) - s_o[picks].sum(1) / c_o[picks].sum(1)
        lo, hi = np.nanpercentile(diffs, [2.5, 97.5])
        full = s_m.sum() / c_m.sum() - s_o.sum() / c_o.sum()
        out[name] = {"difference": float(full), "ci95": [float(lo), float(hi)]}
    return out


def print_differences(versus: dict) -> None:
    for m, d in versus.items():
        print(f"{m} minus gi: " + "  ".join(f"{name} {v['difference']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}]"
                                            for name, v in d.items()))


# ---------------------------------------------------------------------------------------------- methods
def blend(a: np.ndarray, b: np.ndarray, nf: int) -> np.ndarray:
    u = np.linspace(0, 1, nf, dtype=np.float32)[:, None, None, None]
    return (1 - u) * a[None] + u * b[None]


def save_png(path: Path, img01: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.round(np.clip(img01, 0, 1) * 255).astype(np.uint8)).save(path)


def run_cli(cli: Path, package: Path, a_png: Path, b_png: Path, out: Path, extra: list[str]) -> np.ndarray:
    cmd = [str(cli), "generate", "--models", str(package), "--from", str(a_png), "--to", str(b_png), "--out", str(out),
           *extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return np.load(out / "frames.npy")


class Reference:
    """Forward-only SVD from keyframe A through the PyTorch reference (the package has no forward-only mode): SVD's
    own sampling, 50 steps, its per-frame guidance ramp, no noise re-injection."""

    def __init__(self, source: Path):
        from . import reference

        self.ref = reference
        self.models = reference.Models(source, source / "unet", None, reverse_attention="own")

    def forward_only(self, a01, seed: int) -> np.ndarray:
        import torch

        ta = torch.from_numpy(a01).permute(2, 0, 1)[None].contiguous()
        p = self.ref.Params(seed=seed, fusion="forward-only", noise_injection_steps=0)
        with torch.no_grad():
            _, frames = self.ref.generate(self.models, ta, ta, p, self.ref.Noise(seed))
        return frames.numpy()


def make_baseline_package(source: Path, out: Path, kind: str) -> Path:
    """(b) "gi-noft": the exporter run with the forward UNet as the reverse UNet (delta zero, rotation kept);
    (c) "trf": the stock UNet for all four rows (each row its own attention, the forward weights). A package built
    earlier in OUT is reused only if it was built from these very source folders: a --baselines folder shared across
    runs must never score an old model's baselines against a new one."""
    stamp = {"source_sha256": folder_digest(source), "kind": kind}
    if (out / "manifest.json").exists() and (out / "built-from.json").exists():
        if json.loads((out / "built-from.json").read_text()) == stamp:
            return out
    shutil.rmtree(out, ignore_errors=True)
    from .export import export_package

    m = json.loads((source.parent / "manifest.json").read_text()) if (source.parent / "manifest.json").exists() else {}
    export_package(source, source / "unet", None, out, "fp32", m.get("num_frames", 7), m.get("height", 64),
                   m.get("width", 128), f"{m.get('name', 'tiny')}-{kind}",
                   reverse_attention="own" if kind == "trf" else "rotated")
    (out / "built-from.json").write_text(json.dumps(stamp) + "\n")
    return out


def folder_digest(folder: Path) -> str:
    """SHA-256 over a folder's files (relative name and each file's SHA-256, in name order); files are streamed,
    since a real SVD source folder holds several GB."""
    from .export import sha256_file

    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(folder).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def saved_name(method: str) -> str:
    """The method's array name in a pair's frames.npz (npz names are identifiers)."""
    return method.replace("-", "_")


def jsonable(row: dict) -> dict:
    return {k: ({kk: [float(x) for x in vv] for kk, vv in v.items()} if k in METHODS else v) for k, v in row.items()}


def rescored(row: dict, pair_dir: Path) -> dict:
    """The row's scores recomputed from the frames its run saved (after a metric changed; no method runs again)."""
    saved = np.load(pair_dir / "frames.npz")
    nf, h, w = saved["truth"].shape[:3]
    clip = world.make_clip(row["seed"], nf, h, w, motion=row.get("motion", "free"))
    if not np.array_equal(clip.frames, saved["truth"]):
        raise SystemExit(f"evaluate: {pair_dir} was made by another version of the world; "
                         "its frames cannot be rescored")
    return {k: (score_pair(clip, saved[saved_name(k)]) if k in METHODS else v) for k, v in row.items()}


def combined_sheet(dirs: list[Path], pair: int, methods: list[str]) -> np.ndarray:
    """Contact sheet of one pair whose methods ran in different runs: rows truth, then `methods` in order, each read
    from the first run whose saved frames hold it."""
    names = ["truth", *map(saved_name, methods)]
    found = {}
    for d in dirs:
        npz = d / "pairs" / f"{pair:04d}" / "frames.npz"
        if npz.exists():
            saved = np.load(npz)
            for name in names:
                if name in saved.files:
                    found.setdefault(name, saved[name])
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"evaluate: pair {pair}: no saved frames for {', '.join(missing)} in {', '.join(map(str, dirs))}")
    return world.stack_rows([world.contact_sheet(found[n]) for n in names])


def merged_rows(dirs: list[Path], rescore: bool = False) -> dict[int, dict]:
    """Several runs' per-pair scores by pair: each pair once, its methods from whichever run scored them (later runs
    win), refusing runs of another split or motion for the same pair index."""
    by_pair = {}
    for d in dirs:
        for line in (d / "scores.jsonl").read_text().splitlines():
            row = json.loads(line)
            if rescore:
                row = rescored(row, d / "pairs" / f"{row['pair']:04d}")
            row.setdefault("motion", "free")  # runs older than the motions
            seen = by_pair.setdefault(row["pair"], {})
            if seen and (seen["seed"], seen["motion"]) != (row["seed"], row["motion"]):
                raise SystemExit(f"evaluate: pair {row['pair']} of {d} is seed {row['seed']} of the {row['motion']} "
                                 f"world, another run's is seed {seen['seed']} of the {seen['motion']} world: "
                                 "combine runs of one split and motion")
            seen.update(row)
    return by_pair


def versus_runs(mine: dict[int, dict], dirs: list[Path]) -> dict:
    """Each method of the combined runs minus the same method of other runs (another package or checkpoint on the
    same pairs and generation seed), paired over the pairs both scored — how a candidate model is judged against the
    shipped one."""
    theirs = merged_rows(dirs)
    for k in sorted(mine.keys() & theirs.keys()):
        if (mine[k]["seed"], mine[k]["motion"]) != (theirs[k]["seed"], theirs[k]["motion"]):
            raise SystemExit(f"evaluate: pair {k} is seed {mine[k]['seed']} of the {mine[k]['motion']} world here and "
                             f"seed {theirs[k]['seed']} of the {theirs[k]['motion']} world in --versus: compare runs "
                             "of one split and motion")
    out = {"runs": [str(d) for d in dirs], "methods": {}}
    for m in METHODS:
        ids = sorted(k for k in mine.keys() & theirs.keys() if m in mine[k] and m in theirs[k])
        if ids:
            out["methods"][m] = {"pairs": len(ids), "theirs": summarise([theirs[k][m] for k in ids]),
                                 "minus_theirs": paired_difference([mine[k][m] for k in ids],
                                                                   [theirs[k][m] for k in ids])}
    if not out["methods"]:
        raise SystemExit(f"evaluate: --versus {' '.join(map(str, dirs))} scored no method on a pair these runs scored")
    return out


def combine(dirs: list[Path], out: Path, rescore: bool = False, sheets: int = 0,
            versus: list[Path] | None = None) -> int:
    """One table from several runs' per-pair scores: pairs counted once each, and a pair's methods may come from
    different runs (e.g. the baselines on one core while the fine-tune still trains, ours later on the other)."""
    by_pair = merged_rows(dirs, rescore)
    methods = [m for m in METHODS if any(m in r for r in by_pair.values())]
    # only pairs every method has scored: one table over the same pairs (a run still going leaves some out)
    by_pair = {k: r for k, r in by_pair.items() if all(m in r for m in methods)}
    table = {m: summarise([r[m] for r in by_pair.values()]) for m in methods}
    rows = [by_pair[k] for k in sorted(by_pair)]
    versus_gi = paired_differences(rows) if "gi" in methods and rows else {}
    other = versus_runs(by_pair, versus) if versus else None
    out.mkdir(parents=True, exist_ok=True)
    # the merged rows too: the per-pair record of the table (bools as 0/1, as the runs write them)
    (out / "scores.jsonl").write_text("".join(json.dumps(jsonable(by_pair[k])) + "\n" for k in sorted(by_pair)))
    if sheets:
        from PIL import Image

        for k in sorted(by_pair)[:sheets]:
            Image.fromarray(combined_sheet(dirs, k, methods)).save(out / f"sheet_{k:04d}.png")
    motions = sorted({r["motion"] for r in by_pair.values()})
    frames = {m: by_frame([r[m] for r in rows]) for m in methods}
    (out / "summary.json").write_text(json.dumps({"pairs": len(by_pair), "pair_ids": sorted(by_pair),
                                                   "motion": motions,
                                                   "from": [str(d) for d in dirs], "methods": table,
                                                   "minus_gi": versus_gi, "by_frame": frames}
                                                  | ({"versus": other} if other else {}), indent=2))
    print(json.dumps(table, indent=2))
    print_differences(versus_gi)
    print_by_frame(frames)
    for m, v in (other or {}).get("methods", {}).items():
        print(f"{m} minus --versus ({v['pairs']} pairs): " + "  ".join(
            f"{name} {d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
            for name, d in v["minus_theirs"].items()))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", type=Path, default=Path("models/tiny"))
    ap.add_argument("--source", type=Path, help="the package's diffusers folders (default: PACKAGE/source)")
    ap.add_argument("--cli", type=Path, default=Path("target/release/svd-inbetween"))
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--first", type=int, default=0, help="first pair index (to split the work across processes)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--seed", type=int, default=42, help="generation seed (the same for every pair and method)")
    ap.add_argument("--split", choices=["evaluation", "validation"], default="evaluation",
                    help="which held-out seeds: the evaluation's (the reported tables) or the validation range "
                         "(checks while developing a model; never the evaluation seeds)")
    ap.add_argument("--motion", choices=world.MOTIONS, default="free", help="the world's motion (tools.world.MOTIONS)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sheets", type=int,
                    help="contact sheets for the first N pairs (default 6; with --combine, default 0: rows truth, "
                         "then every method, from the runs' saved frames)")
    ap.add_argument("--baselines", type=Path, help="folder for the baseline packages (default: OUT)")
    ap.add_argument("--combine", type=Path, nargs="+", metavar="DIR",
                    help="only summarise the scores.jsonl of these earlier runs (e.g. split across processes) into OUT")
    ap.add_argument("--rescore", action="store_true",
                    help="with --combine: score each pair again from its saved frames.npz (metrics changed since)")
    ap.add_argument("--versus", type=Path, nargs="+", metavar="DIR",
                    help="with --combine: also each method minus the same method of these runs (another package on "
                         "the same pairs), paired (summary.json's \"versus\")")
    a = ap.parse_args(argv)
    if a.versus and not a.combine:
        ap.error("--versus compares with the runs of --combine: name those too")
    if a.combine:
        return combine(a.combine, a.out, a.rescore, a.sheets or 0, a.versus)
    source = a.source or a.package / "source"
    man = json.loads((a.package / "manifest.json").read_text())
    nf, h, w = man["num_frames"], man["height"], man["width"]
    a.out.mkdir(parents=True, exist_ok=True)
    ref = Reference(source) if "forward" in a.methods else None
    # the methods the Rust CLI runs: (package, arguments beyond the shared ones)
    cli_runs = {"gi": (a.package, []), "gi-linear": (a.package, ["--fusion", "linear"])}
    for kind in ("gi-noft", "trf"):
        if kind in a.methods:
            cli_runs[kind] = (make_baseline_package(source, (a.baselines or a.out) / f"pkg-{kind}", kind), [])
    results = {m: [] for m in a.methods}
    timing = {m: 0.0 for m in a.methods}
    for k in range(a.first, a.first + a.pairs):
        seed = (world.EVAL_SEED_BASE if a.split == "evaluation" else world.VALIDATION_SEED_BASE) + k
        clip = world.make_clip(seed, nf, h, w, motion=a.motion)
        pdir = a.out / "pairs" / f"{k:04d}"
        pdir.mkdir(parents=True, exist_ok=True)
        a_png, b_png = pdir / "a.png", pdir / "b.png"
        save_png(a_png, clip.frames[0])
        save_png(b_png, clip.frames[-1])
        # the methods see the keyframes as 8-bit PNGs, like a user's
        a01 = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(a_png), np.float32)[..., :3] / 255
        b01 = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(b_png), np.float32)[..., :3] / 255
        outs = {}
        for m in a.methods:
            t0 = time.time()
            if m in cli_runs:
                pkg, extra = cli_runs[m]
                outs[m] = run_cli(a.cli, pkg, a_png, b_png, pdir / m, ["--seed", str(a.seed), *extra])
            elif m == "forward":
                outs[m] = ref.forward_only(a01, a.seed)
            else:
                outs[m] = blend(a01, b01, nf)
            timing[m] += time.time() - t0
            results[m].append(score_pair(clip, outs[m]))
        np.savez_compressed(pdir / "frames.npz", truth=clip.frames, **{saved_name(m): v for m, v in outs.items()})
        if k - a.first < (6 if a.sheets is None else a.sheets):
            rows = [world.contact_sheet(clip.frames)] + [world.contact_sheet(outs[m]) for m in a.methods]
            from PIL import Image

            Image.fromarray(world.stack_rows(rows)).save(a.out / f"sheet_{k:04d}.png")
        row = {"pair": k, "seed": seed, "motion": a.motion, **{m: results[m][-1] for m in a.methods}}
        (a.out / "scores.jsonl").open("a").write(json.dumps(jsonable(row)) + "\n")
        print(f"pair {k}: " + "  ".join(f"{m} track {np.mean(results[m][-1]['track'] or [np.nan]):.2f}"
                                         for m in a.methods), file=sys.stderr, flush=True)
    table = {m: summarise(results[m]) | {"seconds_per_pair": timing[m] / max(1, a.pairs)} for m in a.methods}
    (a.out / "summary.json").write_text(json.dumps({"pairs": a.pairs, "first": a.first, "seed": a.seed,
                                                     "split": a.split, "motion": a.motion,
                                                     "package": str(a.package), "methods": table,
                                                     "by_frame": {m: by_frame(results[m]) for m in a.methods}},
                                                    indent=2))
    print(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())

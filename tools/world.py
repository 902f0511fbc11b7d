"""A procedural motion world: seeded clips of sprites moving over simple backgrounds, with their true tracks.

Every clip is a pure function of its seed (numpy's PCG64), generated on the fly; nothing is stored. The motion is the
kind Generative Inbetweening is about (the FILM/TRF failure cases in the paper): large, directional displacements
between the first and the last frame — straight lines and throws under gravity, some sprites rotating or scaling,
entering or leaving the frame, passing in front of one another. Two motions (MOTIONS): "free", where every path is
as likely as its mirror image (the world is time-symmetric), and "rightward", the same clips with every horizontal
path turned to run left to right (a clip played backwards is then one the world never makes).

Colours are chosen so that a sprite can be found again by its colour in a generated frame (tools.evaluate):
backgrounds are desaturated, sprites are saturated and their hues about 60° apart (at least MIN_HUE_GAP).

    python -m tools.world --seed 7 --out /tmp/clip.png     # a contact sheet of one clip
    python -m tools.world --fixtures . --motion M           # demo keyframes + the plugin test's pairs, world M
    python -m tools.world --demo-picture out/demo --motion M --out docs/img/demo.png   # after scripts/demo.sh
"""
from __future__ import annotations

import argparse
import colorsys
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHAPES = ("disc", "square", "ring", "triangle")
# "free": every direction as likely as its mirror, so a clip played backwards is as likely as forwards (the world is
# time-symmetric, and a forward model already predicts reversed motion: Algorithm 1 has nothing to learn);
# "rightward": the horizontal motion always goes left to right, like traffic on one side of a road, so a reversed
# clip is one the forward model never saw (the asymmetry behind the paper's TRF failure cases).
MOTIONS = ("free", "rightward")
SUPERSAMPLE = 2  # shapes are rendered with analytic soft edges at 2x and box-filtered down: anti-aliased edges

# Seed ranges (contract between training and evaluation): training draws seeds below 10⁸; checks made while
# developing a model (e.g. how well the autoencoder reconstructs) use VALIDATION_SEED_BASE…; test fixtures 9·10⁸…;
# the evaluation EVAL_SEED_BASE… only, and nothing is ever trained or tuned on it.
VALIDATION_SEED_BASE = 800_000_000
EVAL_SEED_BASE = 1_000_000_000

# The world's colour rules (the demo scene keeps them too, so it measures the model, not a scene it never saw):
# background colours are dull, sprites saturated and bright, and a clip's sprite hues sit in slots 60° apart, each
# jittered, so two hues are never closer than MIN_HUE_GAP (a fraction of the circle: 45.6°).
BACKGROUND_SATURATION = (0.0, 0.25)
BACKGROUND_VALUE = (0.25, 0.85)
SPRITE_SATURATION = (0.8, 1.0)
SPRITE_VALUE = (0.85, 1.0)
HUE_JITTER = 0.02
MIN_HUE_GAP = 1 / 6 - 2 * HUE_JITTER


@dataclass
class Sprite:
    shape: str
    rgb: tuple[float, float, float]  # in [0, 1]
    hue: float  # in [0, 1)
    size: float  # radius-like half extent in pixels at scale 1
    pos: np.ndarray  # (F, 2) centre x, y in pixels
    angle: np.ndarray  # (F,) radians
    scale: np.ndarray  # (F,)
    z: int  # draw order: larger is in front


@dataclass
class Clip:
    frames: np.ndarray  # (F, H, W, 3) float32 in [0, 1]
    sprites: list[Sprite] = field(default_factory=list)
    # per sprite: (F,) fraction of its area inside the frame and not covered by sprites in front of it
    visible: np.ndarray | None = None

    def tracks(self) -> np.ndarray:
        """(S, F, 2) the true centres (x, y) in pixels."""
        return np.stack([s.pos for s in self.sprites])


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Vertical gradient or a two-tone sky/ground horizon, desaturated, with mild texture."""
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]

    def dull():
        hue, sat, val = rng.uniform(0, 1), rng.uniform(*BACKGROUND_SATURATION), rng.uniform(*BACKGROUND_VALUE)
        return np.array(colorsys.hsv_to_rgb(hue, sat, val), np.float32)

    if rng.uniform() < 0.5:
        top, bottom = dull(), dull()
        img = top * (1 - y) + bottom * y
    else:
        sky_top, sky_low, ground = dull(), dull(), dull()
        horizon = rng.uniform(0.45, 0.75)
        sky = sky_top * (1 - y / horizon) + sky_low * (y / horizon)
        soft = np.clip((y - horizon) * h / 1.5 + 0.5, 0, 1)
        img = sky * (1 - soft) + ground * soft
    img = np.broadcast_to(img, (h, w, 3)).copy()
    # mild texture: low-frequency value noise, a few percent
    amp = rng.uniform(0.0, 0.05)
    coarse = rng.standard_normal((h // 8 + 2, w // 8 + 2)).astype(np.float32)
    yy = np.linspace(0, coarse.shape[0] - 1.001, h)
    xx = np.linspace(0, coarse.shape[1] - 1.001, w)
    y0, x0 = yy.astype(int), xx.astype(int)
    fy, fx = (yy - y0)[:, None], (xx - x0)[None, :]
    c = coarse
    tex = (c[y0][:, x0] * (1 - fy) * (1 - fx) + c[y0 + 1][:, x0] * fy * (1 - fx)
           + c[y0][:, x0 + 1] * (1 - fy) * fx + c[y0 + 1][:, x0 + 1] * fy * fx)
    img += amp * tex[:, :, None]
    return np.clip(img, 0, 1)


def _hues(rng: np.random.Generator, n: int) -> list[float]:
    """n hues in distinct slots 60 degrees apart on the circle, each jittered: at least MIN_HUE_GAP apart."""
    start = rng.uniform(0, 1)
    slots = rng.permutation(6)[:n]
    return [float((start + s / 6.0 + rng.uniform(-HUE_JITTER, HUE_JITTER)) % 1.0) for s in slots]


def _trajectory(rng: np.random.Generator, frames: int, h: int, w: int, size: float, motion: str = "free") -> np.ndarray:
    """Centres over time: a straight line or a throw under gravity, with a clear displacement (at least a third of
    the width overall); sometimes starting or ending outside the frame. Both motions draw the same numbers, so a
    seed's "rightward" clip is its "free" clip with the leftward paths turned round."""
    t = np.linspace(0.0, 1.0, frames)[:, None]
    for _ in range(100):
        enter, leave = rng.uniform() < 0.15, rng.uniform() < 0.15
        margin = size + 2
        x0 = -size * 0.6 if enter else rng.uniform(margin, w - margin)
        x1 = w + size * 0.6 if leave else rng.uniform(margin, w - margin)
        mirror = rng.uniform() < 0.5
        if motion == "free" and mirror:
            x0, x1 = w - x0, w - x1
        elif motion == "rightward" and x1 < x0:  # only when both ends are in the frame (entering is from the left)
            x0, x1 = x1, x0
        y0, y1 = rng.uniform(margin, h - margin), rng.uniform(margin, h - margin)
        start, end = np.array([x0, y0]), np.array([x1, y1])
        if np.linalg.norm(end - start) < w / 3:
            continue
        pos = start + (end - start) * t
        if rng.uniform() < 0.4:  # thrown: a parabola through both ends whose apex is higher up (smaller y)
            lift = rng.uniform(0.3, 0.9) * min(y0, y1, h * 0.6)
            pos[:, 1] -= 4 * lift * (t[:, 0] * (1 - t[:, 0]))
        if (pos[:, 1] < -size).any():
            continue
        return pos.astype(np.float32)
    return (start + (end - start) * t).astype(np.float32)


def _coverage(shape: str, xs: np.ndarray, ys: np.ndarray, cx, cy, r, angle) -> np.ndarray:
    """Soft coverage in [0, 1] from a signed distance (pixels, negative inside) with a one-sample ramp."""
    dx, dy = xs - cx, ys - cy
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = ca * dx + sa * dy, -sa * dx + ca * dy
    if shape == "disc":
        sd = np.sqrt(u * u + v * v) - r
    elif shape == "ring":
        sd = np.abs(np.sqrt(u * u + v * v) - 0.72 * r) - 0.28 * r
    elif shape == "square":
        s = r * 0.85
        sd = np.maximum(np.abs(u) - s, np.abs(v) - s)
    elif shape == "triangle":  # equilateral, centred on its centroid, pointing up at angle 0
        k = np.sqrt(3.0) / 2
        d1 = v - r * 0.5
        d2 = -k * u - 0.5 * v - r * 0.5
        d3 = k * u - 0.5 * v - r * 0.5
        sd = np.maximum(np.maximum(d1, d2), d3)
    else:
        raise ValueError(shape)
    return np.clip(0.5 - sd, 0.0, 1.0)


def make_clip(seed: int, frames: int = 7, height: int = 64, width: int = 128, max_sprites: int = 3,
              motion: str = "free") -> Clip:
    if motion not in MOTIONS:
        raise ValueError(f"motion {motion!r}: expected one of {MOTIONS}")
    rng = np.random.default_rng(seed)
    bg = _background(rng, height, width)
    n = int(rng.integers(1, max_sprites + 1))
    hues = _hues(rng, n)
    sprites = []
    for i, hue in enumerate(hues):
        size = float(rng.uniform(0.09, 0.18) * height)
        rgb = tuple(float(c) for c in colorsys.hsv_to_rgb(hue, rng.uniform(*SPRITE_SATURATION),
                                                          rng.uniform(*SPRITE_VALUE)))
        spin = rng.uniform(-1.5, 1.5) if rng.uniform() < 0.4 else 0.0
        grow = rng.uniform(0.6, 1.5) if rng.uniform() < 0.3 else 1.0
        tt = np.linspace(0, 1, frames, dtype=np.float32)
        sprites.append(Sprite(
            shape=SHAPES[int(rng.integers(len(SHAPES)))], rgb=rgb, hue=hue, size=size,
            pos=_trajectory(rng, frames, height, width, size, motion),
            angle=(rng.uniform(0, 2 * np.pi) + spin * tt * np.pi).astype(np.float32),
            scale=(1 + (grow - 1) * tt).astype(np.float32), z=i))
    return render(bg, sprites, frames, height, width)


def render(bg: np.ndarray, sprites: list[Sprite], frames: int, height: int, width: int) -> Clip:
    """Draws the sprites (in list order, back to front) over the background for every frame."""
    n = len(sprites)
    ss = SUPERSAMPLE
    ys, xs = np.mgrid[0:height * ss, 0:width * ss].astype(np.float32)
    xs, ys = (xs + 0.5) / ss, (ys + 0.5) / ss
    out = np.empty((frames, height, width, 3), np.float32)
    visible = np.zeros((n, frames), np.float32)
    bg_ss = np.repeat(np.repeat(bg, ss, 0), ss, 1)
    for f in range(frames):
        img = bg_ss.copy()
        covs = []
        for s in sprites:  # z order = list order
            cov = _coverage(s.shape, xs, ys, s.pos[f, 0], s.pos[f, 1], s.size * s.scale[f], s.angle[f])
            covs.append(cov)
            img = img * (1 - cov[..., None]) + np.array(s.rgb, np.float32) * cov[..., None]
        # what remains visible of each sprite: its coverage times what the sprites in front leave uncovered
        for i, cov in enumerate(covs):
            full = _coverage(sprites[i].shape, *_unbounded_grid(sprites[i], f, ss),
                             sprites[i].pos[f, 0], sprites[i].pos[f, 1],
                             sprites[i].size * sprites[i].scale[f], sprites[i].angle[f]).sum()
            front = np.ones_like(cov)
            for j in range(i + 1, n):
                front *= 1 - covs[j]
            visible[i, f] = float((cov * front).sum() / max(full, 1e-6))
        out[f] = img.reshape(height, ss, width, ss, 3).mean(axis=(1, 3))
    return Clip(frames=out, sprites=sprites, visible=visible)


def _unbounded_grid(s: Sprite, f: int, ss: int):
    """A sample grid around the sprite that is not clipped by the frame: its full area, for the visible fraction."""
    r = int(np.ceil(s.size * s.scale[f] * 1.5)) + 2
    g = np.arange(-r * ss, r * ss, dtype=np.float32)
    ys, xs = np.meshgrid(g, g, indexing="ij")
    return (xs + 0.5) / ss + np.floor(s.pos[f, 0]), (ys + 0.5) / ss + np.floor(s.pos[f, 1])


# The demo scene's sky top, sky low and ground colours, and its square's and sun's colours: hues 60° apart (0° and
# 60°). Until 2026-12-07 the sky's top was bluer (saturation 0.42) and the hues 44.5° apart, both outside the world.
DEMO_BACKGROUND = ((0.465, 0.519, 0.62), (0.72, 0.70, 0.66), (0.33, 0.38, 0.30))
DEMO_SPRITE_RGB = ((0.86, 0.12, 0.12), (0.98, 0.98, 0.10))


def demo_clip(frames: int = 7, height: int = 64, width: int = 128, motion: str = "free") -> Clip:
    """The README/demo scene, not from any seed but inside the world's rules (DEMO_BACKGROUND, DEMO_SPRITE_RGB): a
    sun thrown in an arc over a horizon while a red square slides below it — the other way in the "free" world, the
    same way (left to right) in "rightward"."""
    if motion not in MOTIONS:
        raise ValueError(f"motion {motion!r}: expected one of {MOTIONS}")
    t = np.linspace(0, 1, frames, dtype=np.float32)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    sky_top, sky_low, ground = (np.array(c, np.float32) for c in DEMO_BACKGROUND)
    horizon = 0.66
    soft = np.clip((y - horizon) * height / 1.5 + 0.5, 0, 1)
    bg = np.broadcast_to((sky_top * (1 - y / horizon) + sky_low * (y / horizon)) * (1 - soft) + ground * soft,
                         (height, width, 3)).copy()
    sun_x = 0.16 * width + t * 0.68 * width
    sun_y = 0.55 * height - 4 * 0.32 * height * t * (1 - t)
    sq_x = 0.82 * width - t * 0.55 * width if motion == "free" else 0.27 * width + t * 0.55 * width
    sprites = [
        Sprite("square", DEMO_SPRITE_RGB[0], 0.0, 0.11 * height, np.stack([sq_x, np.full_like(t, 0.83 * height)], 1),
               t * 1.2, np.ones_like(t), 0),
        Sprite("disc", DEMO_SPRITE_RGB[1], 1 / 6, 0.14 * height, np.stack([sun_x, sun_y], 1), np.zeros_like(t),
               np.ones_like(t), 1),
    ]
    return render(bg, sprites, frames, height, width)


def batch(seeds, frames: int = 7, height: int = 64, width: int = 128, motion: str = "free") -> np.ndarray:
    """(B, F, 3, H, W) float32 in [-1, 1]: what the trainers feed."""
    clips = [make_clip(int(s), frames, height, width, motion=motion).frames for s in seeds]
    return (np.stack(clips).transpose(0, 1, 4, 2, 3) * 2 - 1).astype(np.float32)


def contact_sheet(frames01: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) → (H, F·(W+2)−2, 3) uint8 with 2-pixel white gaps."""
    f, h, w, _ = frames01.shape
    sheet = np.ones((h, f * (w + 2) - 2, 3), np.float32)
    for i in range(f):
        sheet[:, i * (w + 2):i * (w + 2) + w] = frames01[i]
    return np.round(np.clip(sheet, 0, 1) * 255).astype(np.uint8)


def stack_rows(sheets: list[np.ndarray]) -> np.ndarray:
    """Contact-sheet rows of equal width, top to bottom, with 2-pixel white gaps."""
    gap = np.full((2, sheets[0].shape[1], 3), 255, np.uint8)
    return np.concatenate(sum([[r, gap] for r in sheets], [])[:-1])


def write_pair_fixture(clip: Clip, out: Path) -> None:
    """Keyframes a.png (frame 0) and b.png (frame F−1) plus truth.json: every sprite's colour and true centres, for
    tests that check an in-between without Python (tests/host/tests/trained.rs)."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for name, i in (("a.png", 0), ("b.png", -1)):
        Image.fromarray(np.round(clip.frames[i] * 255).astype(np.uint8)).save(out / name)
    (out / "truth.json").write_text(json.dumps({
        "frames": int(clip.frames.shape[0]), "width": int(clip.frames.shape[2]), "height": int(clip.frames.shape[1]),
        "sprites": [{"shape": s.shape, "rgb": [round(c, 4) for c in s.rgb],
                     "centres": [[round(float(x), 3), round(float(y), 3)] for x, y in s.pos],
                     "visible": [round(float(v), 3) for v in clip.visible[i]],
                     # pixels of its colour (RGB distance < 0.28, as tools.evaluate counts them) in each true frame
                     "area": [int((np.linalg.norm(f - np.asarray(s.rgb, np.float32), axis=-1) < 0.28).sum())
                              for f in clip.frames]} for i, s in enumerate(clip.sprites)],
    }, indent=1) + "\n")


# The plugin test's pairs (tests/host/tests/trained.rs) and the demo keyframes, at twice the model size (the plugin
# resizes, as it would a host's frames): the demo scene and one fixture seed.
FIXTURE_SEED = 900_000_003


def write_fixtures(root: Path, motion: str, frames: int = 7, height: int = 128, width: int = 256) -> None:
    """assets/keyframes/{a,b}.png and tests/fixtures/trained/{sun,seed<FIXTURE_SEED>}/ under root, in the world the
    embedded model was trained on (`motion`)."""
    import shutil

    fixtures = root / "tests/fixtures/trained"
    write_pair_fixture(demo_clip(frames, height, width, motion=motion), fixtures / "sun")
    write_pair_fixture(make_clip(FIXTURE_SEED, frames, height, width, motion=motion),
                       fixtures / f"seed{FIXTURE_SEED}")
    (root / "assets/keyframes").mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.png"):
        shutil.copyfile(fixtures / "sun" / name, root / "assets/keyframes" / name)


def demo_picture(demo_out: Path, motion: str) -> np.ndarray:
    """The README picture from `scripts/demo.sh`'s frames: the true demo clip, the plugin's generated in-betweens
    (demo_out/plugin/frame_*.png) and its frame blend (demo_out/blend/), a row each, 2-pixel white gaps."""
    from PIL import Image

    rows = []
    for sub in ("plugin", "blend"):
        paths = sorted((demo_out / sub).glob("frame_*.png"))
        if not paths:
            raise SystemExit(f"world: no {demo_out / sub}/frame_*.png: run scripts/demo.sh first")
        rows.append(np.stack([np.asarray(Image.open(q).convert("RGB"), np.float32) / 255 for q in paths]))
    f, h, w, _ = rows[0].shape
    rows.insert(0, demo_clip(f, h, w, motion=motion).frames)
    return stack_rows([contact_sheet(r) for r in rows])


def main(argv=None) -> int:
    from PIL import Image

    ap = argparse.ArgumentParser(prog="python -m tools.world", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, nargs="+", default=[0])
    ap.add_argument("--frames", type=int, default=7)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--motion", choices=MOTIONS, default="free")
    ap.add_argument("--out", type=Path, help="contact sheet PNG (one row per seed)")
    ap.add_argument("--fixtures", type=Path, metavar="ROOT",
                    help="instead: write the demo keyframes and the plugin test's pairs under ROOT (the repository) "
                         "in --motion's world")
    ap.add_argument("--demo-picture", type=Path, metavar="DEMO_OUT",
                    help="instead: the README picture (to --out) from scripts/demo.sh's output folder (out/demo)")
    a = ap.parse_args(argv)
    if a.demo_picture:
        if a.out is None:
            ap.error("--demo-picture needs --out")
        Image.fromarray(demo_picture(a.demo_picture, a.motion)).save(a.out)
        return 0
    if a.fixtures:
        write_fixtures(a.fixtures, a.motion, a.frames, 2 * a.height, 2 * a.width)
        return 0
    if a.out is None:
        ap.error("--out or --fixtures is required")
    rows = [contact_sheet(make_clip(s, a.frames, a.height, a.width, motion=a.motion).frames) for s in a.seed]
    Image.fromarray(stack_rows(rows)).save(a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

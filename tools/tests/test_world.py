"""The procedural world's motions: "free" is time-symmetric (a direction as likely as its mirror), "rightward" is the
same clips with every horizontal path turned left to right."""
import numpy as np
import pytest

from tools import world

SEEDS = range(120)


def horizontal_steps(motion):
    return np.array([s.pos[-1, 0] - s.pos[0, 0] for k in SEEDS for s in world.make_clip(k, motion=motion).sprites])


def test_free_motion_goes_either_way_about_equally():
    dx = horizontal_steps("free")
    assert len(dx) > 180 and 0.4 < np.mean(dx > 0) < 0.6, np.mean(dx > 0)


def test_rightward_motion_turns_every_path_left_to_right_and_keeps_the_rest_of_the_clip():
    dx = horizontal_steps("rightward")
    assert np.all(dx > 0), dx.min()
    turned = 0
    for k in SEEDS:
        free, right = world.make_clip(k, motion="free"), world.make_clip(k, motion="rightward")
        assert [(s.shape, s.rgb, s.size, s.z) for s in free.sprites] == \
               [(s.shape, s.rgb, s.size, s.z) for s in right.sprites]
        for f, r in zip(free.sprites, right.sprites):
            np.testing.assert_array_equal(f.angle, r.angle)
            np.testing.assert_array_equal(f.scale, r.scale)
            # the same path, or its mirror image, or the same ends taken the other way; heights untouched
            np.testing.assert_allclose(f.pos[:, 1], r.pos[:, 1], atol=1e-4)
            turned += not np.allclose(f.pos, r.pos)
    assert turned > 30  # about half of the free paths went leftward


def test_an_unknown_motion_names_the_known_ones():
    with pytest.raises(ValueError, match="'free', 'rightward'"):
        world.make_clip(0, motion="upward")


def test_the_demo_scene_follows_the_motion():
    free, right = world.demo_clip(motion="free"), world.demo_clip(motion="rightward")
    dx = {m: [s.pos[-1, 0] - s.pos[0, 0] for s in c.sprites] for m, c in (("free", free), ("rightward", right))}
    assert dx["free"][0] < 0 < dx["free"][1]  # the square slides against the sun
    assert min(dx["rightward"]) > 0 and abs(dx["rightward"][0]) == pytest.approx(abs(dx["free"][0]))
    np.testing.assert_array_equal(free.sprites[1].pos, right.sprites[1].pos)  # the sun's throw is the same


def test_the_demo_scene_keeps_the_worlds_colour_rules():
    """The demo pair (README picture, the plugin test's `sun` pair) must be a scene the world could make, or it
    measures the scene and not the model: background colours dull, sprites saturated and bright, hues apart."""
    import colorsys

    def inside(x, lo_hi):
        return lo_hi[0] - 1e-6 <= x <= lo_hi[1] + 1e-6

    for rgb in world.DEMO_BACKGROUND:
        _, s, v = colorsys.rgb_to_hsv(*rgb)
        assert inside(s, world.BACKGROUND_SATURATION) and inside(v, world.BACKGROUND_VALUE), (rgb, s, v)
    hues = []
    for rgb, sprite in zip(world.DEMO_SPRITE_RGB, world.demo_clip(motion="rightward").sprites):
        h, s, v = colorsys.rgb_to_hsv(*rgb)
        assert inside(s, world.SPRITE_SATURATION) and inside(v, world.SPRITE_VALUE), (rgb, s, v)
        assert sprite.rgb == rgb and sprite.hue == pytest.approx(h, abs=1e-3)
        hues.append(h)
    gap = abs(hues[0] - hues[1])
    assert min(gap, 1 - gap) >= world.MIN_HUE_GAP


def test_the_worlds_hues_are_never_closer_than_the_stated_gap():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        hs = world._hues(rng, 3)
        gaps = [abs(a - b) for i, a in enumerate(hs) for b in hs[i + 1:]]
        assert min(min(g, 1 - g) for g in gaps) >= world.MIN_HUE_GAP - 1e-9


def test_committed_keyframes_and_plugin_fixtures_are_the_embedded_models_world(tmp_path):
    """assets/keyframes and tests/fixtures/trained are exactly what `--fixtures` writes in the world the embedded
    model's reverse UNet was fine-tuned on (its training.json), so demo, test and model never disagree."""
    import json
    from pathlib import Path

    from PIL import Image

    from tools.train import world_motion

    root = Path(__file__).resolve().parents[2]
    spec = json.loads((root / "models/tiny/source/reverse_unet/training.json").read_text())["args"]["data"]
    world.write_fixtures(tmp_path, world_motion(spec))
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(made) == 8
    for rel in made:
        if rel.suffix == ".png":
            np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / rel)), np.asarray(Image.open(root / rel)),
                                          err_msg=str(rel))
        else:
            assert (tmp_path / rel).read_text() == (root / rel).read_text(), rel


def test_the_demo_picture_stacks_truth_generated_and_blend(tmp_path):
    from PIL import Image

    for sub, v in (("plugin", 10), ("blend", 200)):
        (tmp_path / sub).mkdir()
        for t in range(7):
            Image.fromarray(np.full((32, 64, 3), v + t, np.uint8)).save(tmp_path / sub / f"frame_{t:04}.png")
    pic = world.demo_picture(tmp_path, "rightward")
    assert pic.shape == (3 * 32 + 4, 7 * 66 - 2, 3)
    np.testing.assert_array_equal(pic[:32], world.contact_sheet(world.demo_clip(7, 32, 64, "rightward").frames))
    assert (pic[32:34] == 255).all() and pic[34, 66 * 3, 0] == 13 and pic[68, 66 * 6, 0] == 206


def test_the_demo_picture_says_to_run_the_demo_first(tmp_path):
    with pytest.raises(SystemExit, match="run scripts/demo.sh first"):
        world.demo_picture(tmp_path, "free")

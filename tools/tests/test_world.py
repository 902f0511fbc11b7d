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

"""Pieces behind the extraction benchmark's accuracy and speed: shadow-tolerant colour cue, hole filling,
batched distances, hidden-bottom lifting and floor snapping over a clip."""
import numpy as np
import pytest
import torch

from neuralassets.perception import ClassicalConfig, ClassicalSegmenter, LiftingConfig, mask_iou
from neuralassets.perception.classical import _distance_to_palette, _fill_holes, _shadowless_distance
from neuralassets.perception.lifting import _bottom_hidden, _lowest_rows, stabilise


def _floor(T=3, H=48, W=64, colour=(0.55, 0.5, 0.4)):
    return torch.tensor(colour)[None, :, None, None].expand(T, 3, H, W).clone()


def test_a_darker_patch_of_the_floor_colour_is_shadow_but_another_hue_is_an_object():
    frames = _floor()
    frames[:, :, 10:30, 8:24] *= 0.6  # shadow: the floor colour at 60 % brightness
    frames[:, :, 10:30, 40:56] = torch.tensor([0.3, 0.3, 0.5])[:, None, None]  # as dark, but blue
    dets = ClassicalSegmenter().segment(frames)
    truth = torch.zeros(1, 48, 64, dtype=torch.bool)
    truth[0, 10:30, 40:56] = True
    for d in dets:
        assert len(d) == 1
        # the opening takes the rectangle's four corner pixels: IoU (320 - 4) / 320
        assert float(mask_iou(truth, d.masks)[0, 0]) == pytest.approx(316 / 320)
    # a shadow darker than shadow_min_brightness counts as object
    strict = ClassicalSegmenter(ClassicalConfig(shadow_min_brightness=0.8)).segment(frames)
    assert len(strict[0]) == 2


def test_shadowless_distance_by_hand():
    floor = np.array([0.6, 0.4, 0.2])
    assert _shadowless_distance(0.5 * floor, floor, 0.3) == pytest.approx(0.0, abs=1e-7)
    # below the brightness floor the nearest allowed copy is 0.3 * floor
    assert _shadowless_distance(0.1 * floor, floor, 0.3) == pytest.approx(0.2 * np.linalg.norm(floor))
    # a different hue keeps its distance to the best-scaled copy
    p = np.array([0.0, 0.0, 1.0])
    a = (p @ floor) / (floor @ floor)
    assert _shadowless_distance(p, floor, 0.0) == pytest.approx(np.linalg.norm(p - a * floor))


def test_batched_palette_distance_equals_the_broadcast_one():
    g = np.random.default_rng(0)
    video = g.random((3, 5, 7, 3)).astype(np.float32)
    palettes = g.random((3, 4, 3)).astype(np.float32)
    direct = _shadowless_distance(video[:, :, :, None, :], palettes[:, None, None], 0.5).min(-1)
    assert np.allclose(_distance_to_palette(video, palettes, 0.5), direct, atol=1e-5)


def test_holes_are_filled_but_regions_reaching_the_border_are_not():
    mask = np.zeros((12, 12), np.uint8)
    mask[2:9, 2:9] = 1
    mask[4:7, 4:7] = 0  # a hole
    mask[:, 10] = 1
    mask[0:5, 11] = 0  # background touching the border stays background
    filled = _fill_holes(mask)
    assert filled[4:7, 4:7].all() and filled[2:9, 2:9].all()
    assert not filled[0:5, 11].any() and filled.sum() == 7 * 7 + 12


def test_a_textured_object_with_floor_coloured_spots_comes_out_whole():
    frames = _floor()
    frames[:, :, 12:32, 20:40] = torch.tensor([0.8, 0.1, 0.1])[:, None, None]
    frames[:, :, 18:22, 26:30] = torch.tensor([0.55, 0.5, 0.4])[:, None, None]  # a floor-coloured spot inside it
    dets = ClassicalSegmenter().segment(frames)
    assert len(dets[0]) == 1 and int(dets[0].masks[0].sum()) == 20 * 20 - 4  # less the four corners the opening rounds


def test_lowest_rows_and_hidden_bottoms_by_hand():
    masks = torch.zeros(5, 4, dtype=torch.bool)
    masks[1:3, 0:2] = True
    masks[4, 3] = True
    assert _lowest_rows(masks).tolist() == [2, 2, -1, 4]
    others = np.zeros((5, 4), bool)
    others[3, 0] = True  # under column 0
    others[3, 1] = True  # under column 1, but farther than the object
    depth = np.full((5, 4), 5.0)
    depth[3, 0], depth[3, 1] = 4.0, 6.0
    # columns 0 (nearer object below) and 3 (last image row) are hidden; column 1 is not
    assert _bottom_hidden(_lowest_rows(masks).numpy(), others, depth) == pytest.approx(2 / 3)


def test_an_object_on_the_floor_in_most_frames_stays_on_it():
    nan = float("nan")
    raw = torch.tensor([[[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0],
                         [0.0, 0.0, 0.4, 1.0, 1.0, 0.6, 0.0],  # bottom hidden: seen floating
                         [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0],
                         [nan] * 7]])
    boxes = stabilise(raw, LiftingConfig())
    assert boxes.centers[0, :, 2].tolist() == pytest.approx([0.5] * 4)
    # without the majority rule the second frame floats
    floating = stabilise(raw, LiftingConfig(floor_majority=1.01))
    assert float(floating.centers[0, 1, 2]) == pytest.approx(0.9)

"""Classical segmenter: splitting merged objects by colour, achromatic objects, shadows (hand-made frames)."""
import numpy as np
import pytest
import torch

from neuralassets.perception import ClassicalConfig, ClassicalSegmenter, mask_iou
from neuralassets.perception.classical import _merge_interleaved, _shading_groups

FLOOR = (0.55, 0.5, 0.4)


def _floor(H=48, W=64, colour=FLOOR):
    return torch.tensor(colour)[None, :, None, None].expand(1, 3, H, W).clone()


def _paint(frames, rows, cols, colour):
    frames[:, :, rows, cols] = torch.tensor(colour)[:, None, None]


def _box(rows, cols, H=48, W=64):
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[rows, cols] = True
    return mask


def test_two_touching_objects_of_different_colour_are_split():
    frames = _floor()
    _paint(frames, slice(10, 30), slice(10, 30), (0.8, 0.1, 0.1))  # red, behind
    _paint(frames, slice(20, 40), slice(25, 45), (0.1, 0.2, 0.8))  # blue, in front, overlapping it
    blue = _box(slice(20, 40), slice(25, 45))
    red = _box(slice(10, 30), slice(10, 30)) & ~blue
    dets = ClassicalSegmenter().segment(frames)[0]
    assert len(dets) == 2
    iou = mask_iou(torch.stack([red, blue]), dets.masks)
    # the opening rounds the outline's corners and the closing may round the one where they meet
    assert iou.max(1).values.tolist() == pytest.approx([1.0, 1.0], abs=0.02)
    # without splitting they are one mask
    assert len(ClassicalSegmenter(ClassicalConfig(split_threshold=None)).segment(frames)[0]) == 1


def test_striped_and_shaded_objects_stay_whole():
    frames = _floor()
    _paint(frames, slice(8, 40), slice(4, 28), (0.8, 0.1, 0.1))
    for row in range(8, 40, 4):  # blue stripes two pixels wide across the red object
        _paint(frames, slice(row, row + 2), slice(4, 28), (0.1, 0.2, 0.8))
    _paint(frames, slice(8, 40), slice(36, 48), (0.2, 0.7, 0.2))  # a green box: lit face ...
    _paint(frames, slice(8, 40), slice(48, 60), (0.1, 0.35, 0.1))  # ... and its face in shade, half as bright
    dets = ClassicalSegmenter().segment(frames)[0]
    truth = torch.stack([_box(slice(8, 40), slice(4, 28)), _box(slice(8, 40), slice(36, 60))])
    assert len(dets) == 2
    # whole, less the four corner pixels the opening rounds: IoU (32 * 24 - 4) / (32 * 24)
    assert mask_iou(truth, dets.masks).max(1).values.tolist() == pytest.approx([764 / 768, 764 / 768])


def test_colours_that_differ_only_by_shading_share_a_group():
    centres = np.array([[0.8, 0.1, 0.1], [0.4, 0.05, 0.05], [0.1, 0.2, 0.8], [0.11, 0.2, 0.79]])
    groups = _shading_groups(centres, threshold=0.05, min_brightness=0.4)
    assert groups[0] == groups[1] and groups[2] == groups[3] and groups[0] != groups[2]


def test_enclosed_small_and_interleaved_regions_are_merged():
    label = np.full((10, 12), -1)
    label[1:9, 1:6] = 0
    label[1:9, 6:11] = 1  # two halves with a straight cut between them: kept apart
    label[4:6, 2:4] = 2  # a spot inside region 0: merged into it
    merged = _merge_interleaved(label, min_pixels=3, interleave=2.0)
    assert set(np.unique(merged)) == {-1, 0, 1} and (merged[4:6, 2:4] == 0).all()
    stripes = np.full((10, 12), -1)
    stripes[1:9, 1:11] = np.arange(8)[:, None] % 2  # one-pixel stripes: a boundary far longer than the regions are wide
    assert len(np.unique(_merge_interleaved(stripes, min_pixels=3, interleave=2.0))) == 2  # the outside and one region


def test_a_grey_object_on_a_checkered_grey_floor_is_found():
    light = torch.tensor([0.5, 0.49, 0.47])
    H, W = 48, 64
    checks = ((torch.arange(H)[:, None] // 8 + torch.arange(W)[None] // 8) % 2).float()  # (H, W) 0 / 1 tiles
    frames = (light[:, None, None] * (1 - 0.4 * checks))[None]  # dark tiles: the light colour at 60 %
    _paint(frames, slice(16, 32), slice(20, 36), (0.5, 0.5, 0.52))  # grey: 0.04 from the light tiles
    truth = _box(slice(16, 32), slice(20, 36))[None]
    dets = ClassicalSegmenter().segment(frames)[0]
    assert len(dets) == 1 and float(mask_iou(truth, dets.masks)[0, 0]) == pytest.approx(252 / 256)  # corners rounded
    assert len(ClassicalSegmenter(ClassicalConfig(colour_threshold=0.05)).segment(frames)[0]) == 0


def test_a_white_object_on_the_floor_is_not_taken_for_a_white_sky():
    frames = _floor(H=64, W=64)
    _paint(frames, slice(0, 10), slice(0, 64), (0.88, 0.88, 0.86))  # sky above the horizon
    _paint(frames, slice(40, 56), slice(20, 40), (0.9, 0.9, 0.87))  # a white box on the floor
    truth = _box(slice(40, 56), slice(20, 40), 64, 64)[None]
    dets = ClassicalSegmenter().segment(frames)[0]
    assert len(dets) == 1 and float(mask_iou(truth, dets.masks)[0, 0]) == pytest.approx(316 / 320)  # corners rounded
    # compared with the whole border, the box matches the sky
    assert len(ClassicalSegmenter(ClassicalConfig(border_bands=1)).segment(frames)[0]) == 0

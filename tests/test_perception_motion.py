"""The motion cue: residual flow once the camera's motion is taken out, and moving parts merged into one object."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from neuralassets.perception import ClassicalConfig, ClassicalSegmenter, mask_iou
from neuralassets.perception.motion import MotionCue


def _texture(H, W, seed=0):
    """(3, H, W) smooth random colour texture in [0.3, 0.7] (something for optical flow to hold on to)."""
    noise = np.random.default_rng(seed).random((3, H, W))
    smooth = np.stack([ndimage.gaussian_filter(c, 2.0) for c in noise])
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return torch.from_numpy(0.3 + 0.4 * smooth).float()


def _panning_clip(T=8, H=64, W=96, pan=2, speed=3, two_tone=False):
    """The camera pans right by ``pan`` pixels a frame over a textured wall, so the wall slides left in the image; a
    textured red square (red over green with ``two_tone``) stays at the same columns and moves down by ``speed``
    pixels a frame. Returns frames and the square's masks."""
    wall = _texture(H, W + pan * T)
    skin = _texture(16, 16, seed=1) - 0.5  # the square's own texture, for the flow to hold on to
    colour = torch.tensor([0.8, 0.15, 0.1])[:, None, None].expand(3, 16, 16).clone()
    if two_tone:
        colour[:, 8:] = torch.tensor([0.1, 0.7, 0.2])[:, None, None]
    frames = torch.zeros(T, 3, H, W)
    truth = torch.zeros(T, H, W, dtype=torch.bool)
    for t in range(T):
        frames[t] = wall[:, :, pan * t:pan * t + W]
        top = 8 + speed * t
        truth[t, top:top + 16, 40:56] = True
        frames[t, :, top:top + 16, 40:56] = (colour + 0.3 * skin).clamp(0, 1)
    return frames, truth


def test_the_camera_pan_is_taken_out_and_the_mover_is_left():
    frames, truth = _panning_clip()
    cue = MotionCue()
    assert cue(frames[0]) is None  # nothing to compare the first frame with
    found = [cue(frame) for frame in frames[1:]]
    for t, motion in enumerate(found, start=1):
        assert motion is not None
        moving = torch.from_numpy(motion.moving)
        # the flow spreads a few pixels past where the mover is and was (three frames back); beyond that the
        # panned wall is not moving
        swept = (truth[t] | truth[max(t - 3, 0)]).numpy()
        near = torch.from_numpy(ndimage.binary_dilation(swept, iterations=8))
        assert float((moving & ~near).float().mean()) < 0.02
        assert float((moving & truth[t]).sum()) > 0.95 * float(truth[t].sum())
        # against the wall the square moves right by 2 and down by 3 pixels a frame: its residual flow (where
        # its pixels were, less where the wall's motion would have them) is the opposite
        assert np.median(motion.residual[truth[t].numpy()], axis=0) == pytest.approx([-2.0, -3.0], abs=0.5)
    cue.reset()
    assert cue(frames[3]) is None


def test_parts_that_move_alike_are_one_object_and_colour_alone_splits_them():
    frames, truth = _panning_clip(two_tone=True)
    with_motion, colour_only = ClassicalSegmenter(), ClassicalSegmenter(ClassicalConfig(motion=None))
    for t in range(frames.shape[0]):
        moved = with_motion.segment(frames[t:t + 1])[0]
        still = colour_only.segment(frames[t:t + 1])[0]
        if t >= 1:  # from the second frame on, the two colours move alike: one object (corners rounded: 252 / 256)
            assert float(mask_iou(truth[t][None], moved.masks).max()) > 0.97
            assert float(mask_iou(truth[t][None], still.masks).max()) < 0.6  # red top and green bottom apart

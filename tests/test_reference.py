"""The decoder's object reference: pixels of each source box resized into its target box, near over far."""
import torch

from neuralassets.conditioning import Conditioning
from neuralassets.models.reference import REFERENCE_CHANNELS, object_reference


def _conditioning(images, image_index, boxes, target_boxes, depths, mask, view_changes=None) -> Conditioning:
    N = len(image_index)
    poses = torch.zeros(1, N, 12)
    poses[0, :, [2, 5, 8, 11]] = torch.tensor(depths, dtype=torch.float32)[:, None]
    return Conditioning(appearance_images=images[None], object_image_index=torch.tensor([image_index]),
                        object_boxes=torch.tensor([boxes], dtype=torch.float32),
                        object_poses=poses, object_target_boxes=torch.tensor([target_boxes], dtype=torch.float32),
                        object_paste_boxes=torch.tensor([target_boxes], dtype=torch.float32),
                        object_view_change=torch.tensor([view_changes or [0.0] * N]), object_mask=torch.tensor([mask]),
                        background_image=torch.full((1, 3, 8, 8), 0.5),
                        camera_pose=torch.zeros(1, 12))


def test_a_box_is_resized_into_its_target_box():
    image = torch.zeros(1, 3, 8, 8)
    image[0, 0, :4, :4] = torch.arange(16.0).view(4, 4) / 15  # a ramp in the source box's red channel
    cond = _conditioning(image, [0], [[0, 0, 0.5, 0.5]], [[0.5, 0.5, 1.0, 1.0]], [3.0], [True])
    reference = object_reference(cond, (8, 8))
    assert reference.shape == (1, REFERENCE_CHANNELS, 8, 8)
    assert torch.equal(reference[0, 3, 4:, 4:], torch.ones(4, 4)) and reference[0, 3, :4].abs().sum() == 0
    assert torch.allclose(reference[0, 0, 4:, 4:], image[0, 0, :4, :4] * 2 - 1)  # same size: moved pixel for pixel
    assert reference[0, :3, :4].abs().sum() == 0 and reference[0, :3, :, :4].abs().sum() == 0
    # at twice the size the ramp is stretched over 8 x 8 pixels, still rising along rows and columns
    big = object_reference(cond, (16, 16))
    ramp = big[0, 0, 9:15, 9:15]
    assert big[0, 3].sum() == 64 and (ramp.diff(dim=0) > 0).all() and (ramp.diff(dim=1) > 0).all()


def test_nearer_objects_cover_farther_ones_and_padding_is_ignored():
    images = torch.stack([torch.full((3, 8, 8), 1.0), torch.full((3, 8, 8), 0.0)])  # white photo, black photo
    whole = [0, 0, 1, 1]
    for near_first in (True, False):
        depths = [2.0, 5.0] if near_first else [5.0, 2.0]
        cond = _conditioning(images, [0, 1, 0], [whole, whole, whole], [[0, 0, 0.75, 0.75], [0.25, 0.25, 1, 1], [0, 0, 1, 1]],
                             depths + [1.0], [True, True, False])
        reference = object_reference(cond, (4, 4))
        overlap = reference[0, 0, 1:3, 1:3]
        assert torch.equal(overlap, torch.full((2, 2), 1.0 if near_first else -1.0))
        assert reference[0, 0, 0, 0] == 1.0 and reference[0, 0, 3, 3] == -1.0  # each alone where the other is not
        assert reference[0, 3, 0, 3] == 0 and reference[0, 3, 3, 0] == 0  # the padding slot's whole-image box paints nothing


def test_objects_seen_from_another_side_are_left_out():
    image = torch.ones(1, 3, 8, 8)
    halves = [[0, 0, 0.5, 1], [0.5, 0, 1, 1]]
    cond = _conditioning(image, [0, 0], halves, halves, [2.0, 2.0], [True, True], view_changes=[15.0, 15.5])
    reference = object_reference(cond, (8, 8))
    assert torch.equal(reference[0, 3, :, :4], torch.ones(8, 4)) and reference[0, :, :, 4:].abs().sum() == 0
    assert object_reference(cond, (8, 8), max_view_change=20.0)[0, 3].sum() == 64


def test_no_objects_give_an_empty_reference():
    cond = _conditioning(torch.rand(1, 3, 8, 8), [], [], [], [], [])
    cond = Conditioning(**{**cond.__dict__, "object_boxes": torch.zeros(1, 0, 4), "object_target_boxes": torch.zeros(1, 0, 4),
                           "object_view_change": torch.zeros(1, 0), "object_paste_boxes": torch.zeros(1, 0, 4),
                           "object_image_index": torch.zeros(1, 0, dtype=torch.long), "object_mask": torch.zeros(1, 0, dtype=torch.bool)})
    assert torch.equal(object_reference(cond, (8, 8)), torch.zeros(1, REFERENCE_CHANNELS, 8, 8))


def test_objects_are_pasted_into_their_paste_box_not_their_target_box():
    from dataclasses import replace

    cond = _conditioning(torch.ones(1, 3, 8, 8), [0], [[0, 0, 0.5, 0.5]], [[0, 0, 1, 1]], [2.0], [True])
    cond = replace(cond, object_paste_boxes=torch.tensor([[[0.25, 0.25, 0.75, 0.75]]]))
    reference = object_reference(cond, (8, 8))
    assert reference[0, 3].sum() == 16 and torch.equal(reference[0, 3, 2:6, 2:6], torch.ones(4, 4))

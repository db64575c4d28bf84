"""Image operations: box masks against a brute-force rule, mask boxes, uint8 round-trips, resizing and box drawing."""

import numpy as np
import pytest
import torch

from neuralassets.image_ops import (
    box_mask,
    draw_projected_box,
    from_numpy_image,
    masks_to_boxes,
    quantize,
    resize_images,
    resize_maps,
    to_numpy_image,
    to_uint8,
    upscale,
)


def brute_force(boxes, height, width, covers):
    mask = torch.zeros(height, width, dtype=torch.bool)
    for x0, y0, x1, y1 in boxes.tolist():
        for i in range(height):
            for j in range(width):
                mask[i, j] |= covers(x0, x1, j) and covers(y0, y1, i)
    return mask


def centre_inside(lo, hi, i):  # pixel i's centre i + 0.5 in [lo, hi]
    return lo <= i + 0.5 <= hi


def overlaps(lo, hi, i):  # [lo, hi] meets the open pixel (i, i + 1)
    return lo < i + 1 and hi > i


@pytest.mark.parametrize("cover, rule", [("centre", centre_inside), ("touch", overlaps)])
def test_box_mask_follows_its_pixel_rule(cover, rule):
    generator = torch.Generator().manual_seed(0)
    for trial in range(40):
        boxes = torch.rand(3, 4, generator=generator) * 16 - 3  # some reach past the 9 x 11 image
        if trial % 2:
            boxes = (boxes * 2).round() / 2  # edges exactly on pixel centres and borders
        assert torch.equal(box_mask(boxes, 9, 11, cover), brute_force(boxes, 9, 11, rule)), boxes
    assert not box_mask(torch.zeros(0, 4), 3, 3, cover).any()
    assert not box_mask(torch.tensor([[2.0, 2.0, 1.0, 3.0]]), 4, 4, cover).any()  # x1 < x0: empty
    with pytest.raises(ValueError, match="cover"):
        box_mask(torch.zeros(0, 4), 3, 3, "inside")


def test_masks_to_boxes_inverts_box_mask_and_keeps_leading_dimensions():
    masks = torch.zeros(2, 3, 6, 7, dtype=torch.bool)
    masks[0, 1, 2:5, 1:3] = True
    masks[1, 0, 0, 6] = True
    boxes = masks_to_boxes(masks)
    assert boxes.shape == (2, 3, 4)
    assert boxes[0, 1].tolist() == [1.0, 2.0, 3.0, 5.0] and boxes[1, 0].tolist() == [6.0, 0.0, 7.0, 1.0]
    assert boxes[0, 0].tolist() == [0.0] * 4  # empty
    assert torch.equal(box_mask(boxes[0, 1:2], 6, 7), masks[0, 1])  # a rectangle's box gives the rectangle back
    assert masks_to_boxes(torch.zeros(0, 4, 4, dtype=torch.bool)).shape == (0, 4)


def test_uint8_conversions_round_trip_and_round_to_nearest():
    images = torch.tensor([-0.5, 0.0, 0.5 / 255, 1.49 / 255, 0.5, 1.0, 2.0]).view(1, 1, 7).expand(3, 1, 7)
    assert to_uint8(images)[0, 0].tolist() == [0, 0, 0, 1, 128, 255, 255]  # clamped; 0.5 * 255 = 127.5 -> 128 (half to even)
    array = to_numpy_image(images)
    assert array.shape == (1, 7, 3) and array.dtype == np.uint8 and array.flags.c_contiguous
    back = from_numpy_image(array)
    assert back.shape == (3, 1, 7) and back.dtype == torch.float32
    assert torch.equal(back, quantize(images))
    assert torch.equal(quantize(back), back)  # multiples of 1/255 stay


def test_resizing_and_upscaling():
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert resize_images(images, (8, 8)) is images
    assert resize_images(images, (4, 6)).shape == (2, 3, 4, 6)
    slots = torch.arange(4, dtype=torch.int16).view(1, 2, 2)
    assert resize_maps(slots, (4, 4)).tolist() == [[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]]
    assert resize_maps(slots, (4, 4)).dtype == torch.int16
    assert upscale(np.arange(4).reshape(2, 2), 2).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]


def test_projected_box_edges_are_drawn_through_pixel_centres():
    # a flat "box" whose corners are the centres of pixels (1, 1) and (6, 1), (1, 4), (6, 4): its edges are the rectangle
    x = torch.tensor([1.5, 6.5])
    y = torch.tensor([1.5, 4.5])
    corners = torch.stack([torch.stack([x[i & 1], y[(i >> 1) & 1]]) for i in range(8)])
    image = np.zeros((6, 8, 3), np.uint8)
    draw_projected_box(image, corners, (255, 0, 0))
    lit = image[..., 0] >= 200  # anti-aliased: the line's own pixels are bright, their neighbours dimmer
    assert lit[1, 1:7].all() and lit[4, 1:7].all() and lit[1:5, 1].all() and lit[1:5, 6].all()
    assert lit.sum() == 2 * 6 + 2 * 2 and not lit[2:4, 2:6].any()
    big = np.zeros((12, 16, 3), np.uint8)
    draw_projected_box(big, corners, (255, 0, 0), scale=2)
    lit = big[..., 0] >= 200  # twice as large: the corners' centres 3.0 and 9.0 land on pixel 3 - 0.5 -> 2 and 8.5 -> 8
    assert lit[2, 2:13].all() and lit[8, 2:13].all() and lit[2:9, 2].all() and lit[2:9, 12].all()
    assert lit.sum() == 2 * 11 + 2 * 5

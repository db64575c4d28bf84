import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuralassets import Camera, edits
from neuralassets.data.edit_cases import blind_target
from neuralassets.data.renderer import render
from neuralassets.data.synthetic import fill_from_render, generator_config, sample_scene_spec, select_frames
from neuralassets.pipelines.geometric import GeometricRenderer, inpaint
from neuralassets.pipelines.reprojection import FAR_DEPTH, floor_depth


@pytest.fixture(scope="module")
def plain_object():
    """A still pair of one plain, matt object (64x64): its colours depend only on its surface normals and the light."""
    spec = sample_scene_spec(1, generator_config({"image_size": 64, "num_frames": 1, "min_objects": 1, "max_objects": 1}))
    for asset in spec.assets:
        asset.attributes.update(texture="solid", specular=0.0)
    scene = fill_from_render(spec, render(spec)).validate()
    return blind_target(select_frames(scene, [0, 0]))


def _grown(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    return F.max_pool2d(mask[None, None].float(), 2 * pixels + 1, 1, pixels)[0, 0] > 0


def test_a_translation_with_exact_depth_redraws_the_object_as_the_exact_render(plain_object):
    asset = plain_object.assets[0]
    moved = edits.move(plain_object, asset.id, [0.4, 0.2], frames=1, frame_of_reference="floor")
    truth = render(moved, frames=[1])
    out = GeometricRenderer()(moved, 1, source_frame=0)
    assert out.shape == (3, 64, 64) and 0 <= float(out.min()) and float(out.max()) <= 1
    target_mask = truth.masks()[0, 0]
    inside = ~_grown(~target_mask, 1)  # the object's pixels less its anti-aliased rim
    assert int(inside.sum()) >= 40
    error = (out - truth.rgb[0]).abs().amax(0)[inside]
    # A translation keeps every surface normal, so a matt plain object's pixels keep their colours; what is left
    # is resampling (points land up to a quarter pixel off a pixel's centre) and the few pixels of the side the
    # photo did not see. Moved half a metre, 90% of the pixels are within 8-bit rounding plus one level.
    assert float((error <= 2 / 255).float().mean()) >= 0.9
    assert float(error.mean()) <= 0.01


def test_the_background_is_the_photo_wherever_the_edit_changes_nothing(plain_object):
    asset = plain_object.assets[0]
    moved = edits.move(plain_object, asset.id, [0.4, 0.2], frames=1, frame_of_reference="floor")
    truth = render(moved, frames=[1]).rgb[0]
    out = GeometricRenderer()(moved, 1, source_frame=0)
    photo = plain_object.frames[0]
    near_object = _grown(asset.masks[0] | render(moved, frames=[1]).masks()[0, 0], 2)
    untouched = ((truth - photo).abs().amax(0) == 0) & ~near_object  # not the object, its shadow or what they uncover
    assert float(untouched.float().mean()) > 0.8
    assert torch.equal(out[:, untouched], photo[:, untouched])
    unedited = GeometricRenderer()(plain_object, 1, source_frame=0)
    assert torch.equal(unedited[:, ~asset.masks[0]], photo[:, ~asset.masks[0]])  # nothing is cut or inpainted


def test_a_removed_object_is_inpainted_from_its_surroundings(plain_object):
    asset = plain_object.assets[0]
    out = GeometricRenderer()(edits.remove(plain_object, asset.id), 1, source_frame=0)
    hole, photo = asset.masks[0], plain_object.frames[0]
    # Telea fills the hole from the floor around it: the object's own colour is gone.
    object_colour = photo[:, hole].mean(1)
    floor_colour = photo[:, ~_grown(hole, 3) & _grown(hole, 6)].mean(1)
    filled = out[:, hole].mean(1)
    assert float((filled - floor_colour).abs().max()) < float((object_colour - floor_colour).abs().max()) / 2
    # Only the removed object's box (the scene keeps no mask of it), grown by the rim, is cut.
    outside = ~_grown(_box(asset.boxes_2d[0]), 1)
    assert torch.equal(out[:, outside], photo[:, outside])


def _box(box: torch.Tensor) -> torch.Tensor:
    x0, y0, x1, y1 = (int(v) for v in box.tolist())
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_a_camera_move_without_depth_reprojects_the_photo_through_the_floor(plain_object):
    no_depth = plain_object.replace(depth=None)
    cam = no_depth.cameras[1]
    turned = edits.move_camera(no_depth, 1, eye=(cam.center + torch.tensor([0.3, 0.0, 0.0])).tolist(),
                               target=[0.0, 0.0, 0.0])
    out = GeometricRenderer()(turned, 1, source_frame=0)
    assert out.shape == (3, 64, 64) and torch.isfinite(out).all()
    assert not torch.equal(out, no_depth.frames[0])


def test_floor_depth_is_the_height_looking_straight_down_and_far_above_the_horizon():
    down = Camera(torch.tensor([[32.0, 0, 16], [0, 32.0, 16], [0, 0, 1]]), torch.diag(torch.tensor([1.0, -1.0, -1.0])),
                  torch.tensor([0.0, 0.0, 4.0]), 32, 32)
    assert torch.allclose(floor_depth(down), torch.full((32, 32), 4.0))
    level = Camera.look_at([0.0, -5.0, 2.0], [0.0, 5.0, 2.0], 60.0, 32, 32)  # looking straight ahead from 2 m
    depth = floor_depth(level)
    assert (depth[:16] == FAR_DEPTH).all()  # rows above the image centre look up
    # The bottom row's rays meet the floor at z = 0: depth = height / tan(angle below the horizon).
    below = math.atan((31.5 - 16) / float(level.K[1, 1]))
    assert float(depth[31, 16]) == pytest.approx(2.0 / math.tan(below), rel=1e-4)


def test_inpaint_changes_only_the_hole():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    hole = np.zeros((16, 16), bool)
    assert inpaint(image, hole) is image
    hole[5:8, 5:8] = True
    out = inpaint(image, hole)
    assert np.array_equal(out[~hole], image[~hole]) and not np.array_equal(out[hole], image[hole])
    grown = inpaint(image, hole, grow=1)
    assert np.array_equal(grown[:4], image[:4]) and not np.array_equal(grown[4, 4:9], image[4, 4:9])


@pytest.mark.parametrize("seed", [3, 12])
def test_objects_the_edit_leaves_alone_keep_their_photo_pixels_exactly(seed):
    from neuralassets.data.synthetic import generate_scene

    config = generator_config({"image_size": 96, "num_frames": 1, "min_objects": 5, "max_objects": 5})
    scene = blind_target(select_frames(generate_scene(seed, config), [0, 0]))
    asset = scene.assets[0]
    moved = edits.move(scene, asset.id, [0.5, 0.0], frames=1, frame_of_reference="floor")
    out = GeometricRenderer()(moved, 1, source_frame=0)
    after = render(moved, frames=[1]).masks()[0, 0]  # where the moved object now stands
    touched = _grown(asset.masks[0] | after, 3)
    others = torch.stack([a.masks[0] for a in scene.assets[1:]]).any(0) & ~touched
    assert int(others.sum()) > 100
    photo = scene.frames[0]
    assert torch.equal(out[:, ~touched], photo[:, ~touched])  # the other objects (drawn over, in place) included

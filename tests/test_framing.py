"""Windows of a scene: letterbox squares, crops, and the scene a windowed camera sees."""
import pytest
import torch

from neuralassets import edits as E
from neuralassets.data import GeneratorConfig, generate_scene
from neuralassets.data import render as exact_render
from neuralassets.errors import ValidationError
from neuralassets.framing import FILL, cut, letterbox_window, window_scene


@pytest.mark.parametrize("height, width, window", [(540, 960, (0, -210, 960, 750)), (960, 540, (-210, 0, 750, 960)),
                                                   (24, 32, (0, -4, 32, 28)), (7, 4, (-1, 0, 6, 7)), (5, 5, (0, 0, 5, 5))])
def test_letterbox_window_is_the_centred_square_holding_the_frame(height, width, window):
    assert letterbox_window(height, width) == window


def test_cut_crops_and_pads_by_hand():
    images = torch.arange(12.0).reshape(1, 3, 4)  # rows 0-3, 4-7, 8-11
    assert torch.equal(cut(images, (1, 1, 3, 3)), torch.tensor([[[5.0, 6.0], [9.0, 10.0]]]))
    padded = cut(images, (-1, 2, 2, 4), fill=-1.0)
    assert torch.equal(padded, torch.tensor([[[-1.0, 8.0, 9.0], [-1.0, -1.0, -1.0]]]))
    masks = torch.ones(2, 3, 4, dtype=torch.bool)
    out = cut(masks, (3, 0, 5, 3), False)
    assert out.dtype == torch.bool and out[:, :, 0].all() and not out[:, :, 1].any()


def test_the_windowed_camera_sees_the_same_world_shifted(simple_scene):
    window = (-3, 5, 20, 30)
    seen = window_scene(simple_scene, window)
    points = torch.tensor([[0.2, -0.1, 0.3], [1.0, 0.5, 0.0]])
    for cam, new in zip(simple_scene.cameras, seen.cameras):
        (uv, depth), (uv_w, depth_w) = cam.project(points), new.project(points)
        assert torch.allclose(uv_w, uv - torch.tensor([-3.0, 5.0]), atol=1e-5) and torch.allclose(depth_w, depth)
        assert (new.width, new.height) == (23, 25)
    assert seen.frames.shape == (3, 3, 25, 23) and seen.depth.shape == (3, 25, 23)
    assert torch.equal(seen.frames[:, :, :19, 3:], simple_scene.frames[:, :, 5:24, 0:20])  # inside the frame: its pixels
    assert (seen.frames[:, :, :, :3] == FILL).all() and (seen.depth[:, 19:] == 0).all()  # outside: bars, depth unknown
    a, b = simple_scene.assets[0], seen.assets[0]
    assert torch.equal(b.masks[:, :19, 3:], a.masks[:, 5:24, 0:20]) and not b.masks[:, 19:].any()
    assert torch.equal(b.boxes_2d[0], torch.tensor([5.0, 0.0, 15.0, 10.0]))  # (2, 3, 12, 15) moved by (3, -5), clipped
    assert simple_scene.frames.shape == (3, 3, 24, 32)  # the input is not changed


def test_the_photos_pose_numbers_follow_the_window(simple_scene):
    moved = E.move(simple_scene, 1, (0.3, 0.0, 0.0))  # keeps the photos' pose numbers, then moves the box
    window = (4, -2, 30, 20)
    seen = window_scene(moved, window)
    original = window_scene(simple_scene, window)
    for f in range(3):
        # the windowed photo shows the box where the unmoved box projects through the windowed camera
        expected = original.assets[0].pose_features(f, original.cameras[f])
        assert torch.allclose(seen.assets[0].photo_pose(f, seen.cameras[f]), expected, atol=1e-5)


def test_a_render_of_the_windowed_scene_is_the_window_of_the_render():
    scene = generate_scene(0, GeneratorConfig(image_size=48, num_frames=2, min_objects=2, max_objects=3))
    edited = E.move(scene, scene.assets[0].id, (0.2, 0.1, 0.0), check_visibility="warn")
    window = (-6, 10, 40, 56)  # past the left and bottom edges
    full = exact_render(edited, frames=[1]).rgb[0]
    windowed = exact_render(window_scene(edited, window), frames=[1]).rgb[0]
    assert windowed.shape == (3, 46, 46)
    assert torch.equal(windowed[:, :38, 6:], full[:, 10:48, 0:40])


def test_an_empty_window_is_refused(simple_scene):
    with pytest.raises(ValidationError, match=r"window: expected \(x0, y0, x1, y1\) with x0 < x1"):
        window_scene(simple_scene, (5, 0, 5, 10))

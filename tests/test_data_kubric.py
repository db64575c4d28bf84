"""Kubric MOVi folders: camera convention, corner order, depth conversion, round-trip."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from neuralassets import SceneFormatError
from neuralassets.data import GeneratorConfig, generate_scene, render
from neuralassets.data.kubric import read_kubric, write_kubric
from neuralassets.geometry import look_at


def test_round_trip_of_a_generated_scene(tmp_path):
    scene = generate_scene(21, GeneratorConfig(image_size=64, num_frames=4))
    back = read_kubric(write_kubric(scene, tmp_path / "movi"))
    assert torch.equal(back.frames, scene.frames)
    assert torch.allclose(back.depth, scene.depth, rtol=1e-5, atol=1e-5)
    assert back.metadata["renderer"] == scene.metadata["renderer"] and back.metadata["kubric"]["num_frames"] == 4
    for c, d in zip(back.cameras, scene.cameras):
        assert torch.allclose(c.K, d.K, atol=1e-4) and torch.allclose(c.R, d.R, atol=1e-5)
        assert torch.allclose(c.t, d.t, atol=1e-5)
    for a, b in zip(back.assets, scene.assets):
        assert (a.id, a.name, a.category, a.attributes) == (b.id, b.name, b.category, b.attributes)
        assert torch.equal(a.masks, b.masks) and torch.equal(a.boxes_2d, b.boxes_2d) and torch.equal(a.visibility, b.visibility)
        assert torch.allclose(a.centers, b.centers, atol=1e-5) and torch.allclose(a.sizes, b.sizes, atol=1e-5)
        assert torch.allclose(a.rotations, b.rotations, atol=1e-5)
    # What was read re-renders the same video up to a few silhouette pixels.
    assert (render(back).rgb != scene.frames).any(1).float().mean() < 0.01


def _write_movi_folder(folder, corners, quaternion, depth_value=5.0):
    """A one-frame Kubric-style folder written by hand: camera at (0, -5, 0) looking along +y."""
    folder.mkdir()
    W = H = 8
    meta = {
        "metadata": {"num_frames": 1, "resolution": [W, H]},
        # Blender camera looking along world +y: a +90 degree turn about x (w, x, y, z).
        "camera": {"focal_length": 35.0, "sensor_width": 32.0, "positions": [[0.0, -5.0, 0.0]],
                   "quaternions": [[math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0]]},
        "instances": [{"bboxes_3d": [corners], "quaternions": [quaternion], "positions": [[0.0, 0.0, 0.0]],
                       "asset_id": "Toy_Car", "category": "Toys", "shape": "car"}],
    }
    (folder / "metadata.json").write_text(json.dumps(meta))
    Image.fromarray(np.zeros((H, W, 4), np.uint8)).save(folder / "rgba_00000.png")
    seg = np.zeros((H, W), np.uint8)
    seg[3:5, 3:5] = 1
    Image.fromarray(seg).save(folder / "segmentation_00000.png")
    Image.fromarray(np.full((H, W), depth_value, np.float32), mode="F").save(folder / "depth_00000.tiff")
    return folder


def test_reading_a_hand_written_folder_converts_kubric_conventions(tmp_path):
    # An axis-aligned 2 x 4 x 6 box at (1, 2, 3), corners in itertools.product order.
    corners = [[1 + x, 2 + y, 3 + z] for x in (-1, 1) for y in (-2, 2) for z in (-3, 3)]
    scene = read_kubric(_write_movi_folder(tmp_path / "movi", corners, [1.0, 0.0, 0.0, 0.0]))
    cam = scene.cameras[0]
    R, t = look_at(torch.tensor([0.0, -5.0, 0.0]), torch.zeros(3))
    assert torch.allclose(cam.R, R, atol=1e-6) and torch.allclose(cam.t, t, atol=1e-6)
    assert torch.allclose(cam.K, torch.tensor([[8.75, 0, 4], [0, 8.75, 4], [0, 0, 1]]))
    a = scene.assets[0]
    assert a.name == "Toy_Car" and a.category == "Toys" and a.attributes["shape"] == "car"
    assert torch.allclose(a.centers[0], torch.tensor([1.0, 2.0, 3.0])) and torch.allclose(a.sizes[0], torch.tensor([2.0, 4.0, 6.0]))
    assert torch.allclose(a.box(0).corners()[7], torch.tensor([2.0, 4.0, 6.0]))  # our corner 7 is (+, +, +)
    assert a.boxes_2d[0].tolist() == [3.0, 3.0, 5.0, 5.0] and a.visibility.tolist() == [1.0]
    # Kubric depth is the distance along the ray: at a corner pixel z is shorter than it.
    u = 0.5 - 4
    assert scene.depth[0, 0, 0] == pytest.approx(5.0 / math.sqrt(1 + 2 * (u / 8.75) ** 2), rel=1e-6)


def test_missing_files_and_fields_are_named(tmp_path):
    with pytest.raises(SceneFormatError, match="metadata.json"):
        read_kubric(tmp_path)
    folder = _write_movi_folder(tmp_path / "movi", [[0, 0, 0]] * 8, [1.0, 0, 0, 0])
    meta = json.loads((folder / "metadata.json").read_text())
    del meta["instances"][0]["bboxes_3d"]
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(SceneFormatError, match=r"instances\[0\].*bboxes_3d"):
        read_kubric(folder)
    (folder / "rgba_00000.png").unlink()
    with pytest.raises(SceneFormatError, match="rgba_00000.png"):
        read_kubric(folder)

"""`neuralassets data` subcommands and the preview drawing."""
import json

import numpy as np
import torch
from PIL import Image

from neuralassets import Scene
from neuralassets.cli import main
from neuralassets.data import GeneratorConfig, generate_scene
from neuralassets.data.kubric import read_kubric
from neuralassets.data.pairs import ShardedPairDataset
from neuralassets.data.preview import PALETTE, contact_sheet, draw_boxes


def test_draw_boxes_marks_corner_zero_in_the_asset_colour():
    scene = generate_scene(2, GeneratorConfig(image_size=64, num_frames=2))
    image = draw_boxes(scene, 0, scale=2)
    assert image.shape == (128, 128, 3)
    a = scene.assets[-1]  # drawn last, so nothing covers its corner dot
    uv, depth = scene.cameras[0].project(a.box(0).corners())
    u, v = (uv[0] * 2).round().long().tolist()
    if 0 <= u < 128 and 0 <= v < 128:
        assert (image[v, u] == PALETTE[(a.id - 1) % len(PALETTE)]).all()
    assert not np.array_equal(image[::2, ::2], (scene.frames[0].permute(1, 2, 0) * 255).round().byte().numpy())
    sheet = contact_sheet([scene, scene], frames=[0, 1], scale=1, gap=2)
    assert sheet.shape == (64 * 2 + 2, 64 * 4 + 2 * 3, 3)


def test_preview_scene_and_make_commands(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert main(["data", "preview", "--seed", "4", "--scenes", "2", "--image-size", "64", "--scale", "1",
                 "--out", str(sheet)]) == 0
    assert Image.open(sheet).size == (64 * 5 + 4 * 4, 64 * 2 + 4)

    assert main(["data", "scene", "--seed", "4", "--image-size", "64", "--frames", "3", "--out", str(tmp_path / "s")]) == 0
    saved = Scene.load(tmp_path / "s")
    assert saved.num_frames == 3 and "wrote" in capsys.readouterr().out
    assert main(["data", "scene", "--seed", "4", "--image-size", "64", "--frames", "3", "--format", "kubric",
                 "--out", str(tmp_path / "k")]) == 0
    assert torch.equal(read_kubric(tmp_path / "k").frames, saved.frames)

    args = ["data", "make", "--split", "val", "--n", "3", "--shard-size", "2", "--max-objects", "4",
            "--image-size", "64", "--out", str(tmp_path / "pairs")]
    assert main(args) == 0 and len(ShardedPairDataset(tmp_path / "pairs")) == 3
    assert main(args[:5] + ["4"] + args[6:]) == 2  # other settings in the same folder: a clear error
    assert "other settings" in capsys.readouterr().err
    assert main(args + ["--gen", "resize_probability=1", "--out", str(tmp_path / "grow")]) == 0
    grown = json.loads((tmp_path / "grow" / "dataset.json").read_text())["config"]
    assert grown["resize_probability"] == 1 and grown["image_size"] == 64
    assert main(args + ["--gen", "wobble=1", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown config key(s): generator.wobble; valid keys of generator: " in capsys.readouterr().err
    assert main(args + ["--edits", "scale, camera", "--out", str(tmp_path / "edits")]) == 0
    assert "wrote 3 val edit pairs" in capsys.readouterr().out
    assert json.loads((tmp_path / "edits" / "dataset.json").read_text())["edit_tasks"] == ["scale", "camera"]
    assert main(args + ["--edits", "novel_pose", "--out", str(tmp_path / "novel")]) == 2
    assert "edit pairs support translation, rotation, scale, camera, multi_object, removal, insertion" in capsys.readouterr().err


def test_make_writes_pairs_with_geometry_noise(tmp_path, capsys):
    args = ["data", "make", "--split", "val", "--n", "2", "--max-objects", "4", "--image-size", "32"]
    noisy = tmp_path / "noisy"
    assert main(args + ["--out", str(noisy), "--geometry-noise", "depth_scale=[0.9,1.1]", "probability=1",
                        "--geometry-noise", "box_yaw=10"]) == 0
    assert "wrote 2 val video pairs with geometry noise" in capsys.readouterr().out
    noise = json.loads((noisy / "dataset.json").read_text())["geometry_noise"]
    assert noise["depth_scale"] == [0.9, 1.1] and noise["box_yaw"] == 10 and noise["mask"] == [0, 0]
    exact = tmp_path / "exact"
    assert main(args + ["--out", str(exact)]) == 0
    a, b = ShardedPairDataset(noisy)[1], ShardedPairDataset(exact)[1]
    assert torch.equal(a[1], b[1]) and not torch.equal(a[0].object_poses, b[0].object_poses)
    assert main(args + ["--out", str(tmp_path / "bad"), "--geometry-noise", "depth_scale=[1.2,1.1]"]) == 2
    assert "geometry_noise.depth_scale: expected a range (low, high) with low <= high" in capsys.readouterr().err
    assert main(args + ["--out", str(tmp_path / "bad"), "--geometry-noise", "yaw=10"]) == 2
    assert "unknown config key(s): --geometry-noise.yaw; valid keys of --geometry-noise: box_center" in capsys.readouterr().err

"""The ``neuralassets edit`` command."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from neuralassets import Scene
from neuralassets import edits as E
from neuralassets import geometry as G
from neuralassets.cli import main
from neuralassets.commands.edit import parse_frames


@pytest.fixture
def folders(tmp_path, simple_scene):
    simple_scene.save(tmp_path / "scene")
    other = simple_scene.replace(frames=simple_scene.frames.flip(-1), metadata={"renderer": {"backdrop": "sky"}})
    other.save(tmp_path / "other")
    return tmp_path


@pytest.mark.filterwarnings("ignore::neuralassets.edits.EditWarning")  # the scaled cube reaches into its neighbour
def test_flags_apply_in_order_with_degrees(folders, simple_scene, capsys):
    code = main(["edit", str(folders / "scene"), "--out", str(folders / "out"), "--move", "1:0.1,0,-0.05",
                 "--rotate", "2:90", "--scale", "1:2", "--frames", "0,2", "--remove", "2"])
    assert code == 0
    assert "4 edit(s) (move, rotate, scale, remove)" in capsys.readouterr().out
    out = Scene.load(folders / "out")
    expected = E.scale(E.move(simple_scene, 1, (0.1, 0, -0.05), frames=[0, 2]), 1, 2.0, frames=[0, 2])
    assert out.asset_ids == [1]
    assert torch.allclose(out.asset(1).centers, expected.asset(1).centers)
    assert torch.allclose(out.asset(1).sizes, expected.asset(1).sizes)
    rotate = out.metadata["edits"][1]
    assert rotate["op"] == "rotate" and math.isclose(rotate["args"]["yaw"], math.pi / 2) and rotate["args"]["frames"] == [0, 2]
    assert E.load_edits(folders / "out" / "edits.json") == E.history(out)


def test_swap_background_and_replay(folders, simple_scene):
    assert main(["edit", str(folders / "scene"), "--out", str(folders / "a"), "--swap", "1:2",
                 "--background", str(folders / "other")]) == 0
    a = Scene.load(folders / "a")
    assert a.asset(1).name == "obj1" and a.background.attributes == {"backdrop": "sky"}
    assert torch.equal(a.background.image, simple_scene.frames[0].flip(-1))
    # edits.json names the other scene by its folder, so it replays without --other ...
    assert main(["edit", str(folders / "scene"), "--out", str(folders / "b"), "--edits", str(folders / "a" / "edits.json")]) == 0
    assert Scene.load(folders / "b").metadata == a.metadata
    # ... and --other maps any recorded name to a folder.
    edits = json.loads((folders / "a" / "edits.json").read_text())
    edits["edits"][1]["args"]["other_scene"] = "clip"
    (folders / "renamed.json").write_text(json.dumps(edits))
    assert main(["edit", str(folders / "scene"), "--out", str(folders / "c"), "--edits", str(folders / "renamed.json"),
                 "--other", f"clip={folders / 'other'}"]) == 0
    assert torch.equal(Scene.load(folders / "c").background.image, a.background.image)


@pytest.mark.parametrize("flags, message", [
    (["--move", "1:0.1,0"], "--move '1:0.1,0': expected ID:DX,DY,DZ"),
    (["--rotate", "x:10"], "--rotate 'x:10': expected ID:YAW"),
    (["--swap", "1-2"], "--swap '1-2': expected A:B"),
    (["--remove", "9"], "asset id 9 is not in this scene (ids: [1, 2])"),
    (["--scale", "1:0"], "factor: every scale factor must be positive"),
    (["--move", "1:0,0,0", "--frames", "3-1"], "--frames '3-1': expected indices and ranges"),
    (["--move", "1:0,-9,0"], "would be out of view"),
    ([], "no edit given"),
    (["--remove", "1", "--render", "--weights", "no_such_folder"], "--render: cannot load the model (no_such_folder: no such pipeline"),
])
def test_bad_flags_are_reported(folders, capsys, flags, message):
    assert main(["edit", str(folders / "scene"), "--out", str(folders / "out"), *flags]) == 2
    assert message in capsys.readouterr().err


def test_allow_offscreen_warns(folders, capsys):
    assert main(["edit", str(folders / "scene"), "--out", str(folders / "out"), "--move", "1:0,-9,0", "--allow-offscreen"]) == 0
    assert "neuralassets edit: warning: asset 1 (obj0) would be out of view (frame 0: outside the 32x24 view" in capsys.readouterr().err


def test_parse_frames():
    assert parse_frames("0,3-5") == [0, 3, 4, 5]
    assert parse_frames(" 2 , -1") == [2, -1]
    assert parse_frames(None) is None


def test_ground_truth_render_of_a_generated_scene(tmp_path):
    from neuralassets.data import GeneratorConfig, generate_scene

    scene = generate_scene(2, GeneratorConfig(image_size=32, num_frames=2, min_objects=2, max_objects=3))
    scene.save(tmp_path / "gen")
    assert main(["edit", str(tmp_path / "gen"), "--out", str(tmp_path / "out"), "--remove", "1", "--ground-truth",
                 "--allow-offscreen"]) == 0
    image = np.asarray(Image.open(tmp_path / "out" / "ground_truth.png"))
    assert image.shape == (32, 32, 3)
    original = (scene.frames[1].permute(1, 2, 0) * 255).round().byte().numpy()
    removed = scene.assets[0].masks[1].numpy()
    assert (image != original).any(-1)[removed].mean() > 0.5  # where the removed object was, the image changed


def test_rotate_with_three_angles(folders, simple_scene):
    assert main(["edit", str(folders / "scene"), "--out", str(folders / "out"), "--rotate", "1:10,20,30"]) == 0
    turn = G.euler_to_matrix(*torch.tensor([10.0, 20.0, 30.0]).deg2rad())
    assert torch.allclose(Scene.load(folders / "out").asset(1).rotations, turn @ simple_scene.asset(1).rotations, atol=1e-6)


def test_render_with_a_model_folder(folders, capsys):
    from test_models import tiny_pipeline

    tiny_pipeline().save_pretrained(folders / "tiny")
    assert main(["edit", str(folders / "scene"), "--out", str(folders / "out"), "--move", "2:0.1,0,0", "--render",
                 "--weights", str(folders / "tiny"), "--steps", "2", "--render-frame", "1"]) == 0
    image = np.asarray(Image.open(folders / "out" / "render.png"))
    assert image.shape == (24, 32, 3) and image.std() > 0  # the scene's size (the tiny model renders 32 x 32), not blank
    assert "render.png: frame 1 (chosen with --render-frame), 32x24, rendered by the model" in capsys.readouterr().out


def test_render_keeps_unchanged_pixels_unless_raw(tmp_path, simple_scene):
    import copy

    from test_models import tiny_pipeline

    still = simple_scene.replace(cameras=[copy.deepcopy(simple_scene.cameras[0]) for _ in simple_scene.cameras])
    still.save(tmp_path / "scene")
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "tiny")
    images = {}
    for flags in ([], ["--raw"]):
        assert main(["edit", str(tmp_path / "scene"), "--out", str(tmp_path / "out"), "--move", "2:0.1,0,0", "--render",
                     "--weights", str(tmp_path / "tiny"), "--steps", "2", "--target-frame", "1", *flags]) == 0  # the older name
        images[bool(flags)] = np.asarray(Image.open(tmp_path / "out" / "render.png"))
    edited = Scene.load(tmp_path / "out")
    for raw in (False, True):
        expected = pipe(edited, target_frame=1, source_frame=1, num_inference_steps=2,
                        generator=torch.Generator().manual_seed(0), output_type="np", keep_unchanged=not raw).images[0]
        assert np.array_equal(images[raw], expected)
    assert not np.array_equal(images[False], images[True])

import json

import pytest
import torch

from neuralassets import Scene, SceneFormatError, ValidationError
from neuralassets.scene import AppearanceSource, Background, Box3D


def assert_scenes_equal(a: Scene, b: Scene):
    assert torch.equal(a.frames, b.frames)
    assert torch.equal(a.depth, b.depth)
    for ca, cb in zip(a.cameras, b.cameras):
        assert torch.equal(ca.K, cb.K) and torch.equal(ca.R, cb.R) and torch.equal(ca.t, cb.t)
    assert a.asset_ids == b.asset_ids
    for x, y in zip(a.assets, b.assets):
        for name in ("centers", "sizes", "rotations", "boxes_2d", "visibility", "masks"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name
        assert (x.name, x.category, x.source_frame, x.attributes) == (y.name, y.category, y.source_frame, y.attributes)
    assert a.metadata == b.metadata


def test_save_load_roundtrip_is_exact(tmp_path, simple_scene):
    simple_scene.background = Background(simple_scene.frames[1], simple_scene.cameras[1], torch.tensor([[1.0, 2, 3, 4]]),
                                         {"style": "sky"})
    simple_scene.save(tmp_path / "s")
    loaded = Scene.load(tmp_path / "s")
    assert_scenes_equal(simple_scene, loaded)
    assert torch.equal(loaded.background.image, simple_scene.background.image)
    assert loaded.background.attributes == {"style": "sky"} and loaded.background.depth is None
    assert loaded.background.shows_scene
    simple_scene.background.depth, simple_scene.background.shows_scene = simple_scene.depth[1], False
    simple_scene.save(tmp_path / "d")
    reloaded = Scene.load(tmp_path / "d").background
    assert torch.equal(reloaded.depth, simple_scene.depth[1]) and not reloaded.shows_scene
    simple_scene.background.depth = simple_scene.depth[1][:-1]
    with pytest.raises(ValidationError, match=r"background.depth: expected shape \(24, 32\), got \(23, 32\)"):
        simple_scene.validate()


def test_missing_file_is_named(tmp_path, simple_scene):
    folder = simple_scene.save(tmp_path / "s")
    (folder / "frames" / "00001.png").unlink()
    with pytest.raises(SceneFormatError, match="00001.png: missing"):
        Scene.load(folder)


def test_newer_version_is_refused(tmp_path, simple_scene):
    folder = simple_scene.save(tmp_path / "s")
    meta = json.loads((folder / "scene.json").read_text())
    meta["format_version"] = 99
    (folder / "scene.json").write_text(json.dumps(meta))
    with pytest.raises(SceneFormatError, match="format_version 99 is not supported"):
        Scene.load(folder)


def test_nan_pose_is_named(tmp_path, simple_scene):
    simple_scene.save(tmp_path / "s")
    from safetensors.torch import load_file, save_file
    path = tmp_path / "s" / "tensors.safetensors"
    t = load_file(str(path))
    t["asset_0002.centers"][1, 0] = float("nan")
    save_file(t, str(path))
    with pytest.raises(SceneFormatError, match=r"assets\[1\] \(id 2\)\.centers\[1, 0\]: expected a finite number"):
        Scene.load(tmp_path / "s")


def test_truncated_tensors_and_bad_json(tmp_path, simple_scene):
    folder = simple_scene.save(tmp_path / "s")
    data = (folder / "tensors.safetensors").read_bytes()
    (folder / "tensors.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(SceneFormatError, match="tensors.safetensors: unreadable or truncated"):
        Scene.load(folder)
    (folder / "scene.json").write_text("{not json")
    with pytest.raises(SceneFormatError, match="scene.json: not valid JSON"):
        Scene.load(folder)


def test_path_outside_folder_is_refused(tmp_path, simple_scene):
    folder = simple_scene.save(tmp_path / "s")
    meta = json.loads((folder / "scene.json").read_text())
    meta["assets"][0]["masks"] = "../../etc/passwd"
    (folder / "scene.json").write_text(json.dumps(meta))
    with pytest.raises(SceneFormatError, match="points outside the scene folder"):
        Scene.load(folder)


def test_photo_poses_round_trip(tmp_path, simple_scene):
    from neuralassets import edits

    moved = edits.move(simple_scene, 1, (0.1, 0.0, 0.0), frames=[0])  # the photos' poses are kept
    moved.asset(2).appearance = AppearanceSource(simple_scene.frames[2], torch.tensor([1.0, 2, 3, 4]))  # pose unknown
    seen = simple_scene.asset(1)
    H, W = simple_scene.height, simple_scene.width
    mask, depth = torch.rand(H, W) < 0.3, torch.rand(H, W) + 2
    moved.asset(1).appearance = AppearanceSource(simple_scene.frames[1], seen.boxes_2d[1], seen.pose_features(1, simple_scene.cameras[1]),
                                                 mask, depth)
    moved.save(tmp_path / "s")
    loaded = Scene.load(tmp_path / "s")
    assert torch.equal(loaded.asset(1).observed_poses, moved.asset(1).observed_poses) and loaded.asset(2).observed_poses is None
    assert torch.equal(loaded.asset(1).appearance.pose, simple_scene.asset(1).pose_features(1, simple_scene.cameras[1]))
    assert loaded.asset(2).appearance.pose is None and torch.equal(loaded.asset(2).appearance.box_2d, torch.tensor([1.0, 2, 3, 4]))
    assert torch.equal(loaded.asset(1).appearance.mask, mask) and torch.equal(loaded.asset(1).appearance.depth, depth)
    assert loaded.asset(2).appearance.mask is None and loaded.asset(2).appearance.depth is None
    loaded.asset(1).appearance.depth = torch.ones(H, W + 1)
    with pytest.raises(ValidationError, match=rf"\.appearance\.depth: expected the image's size \({H}, {W}\), got \({H}, {W + 1}\)"):
        loaded.validate()
    loaded.asset(1).appearance.depth = depth
    loaded.asset(1).appearance.pose = torch.zeros(4)
    with pytest.raises(ValidationError, match=r"assets\[0\] \(id 1\)\.appearance\.pose: expected shape \(12\), got \(4,\)"):
        loaded.validate()
    loaded.asset(1).appearance.pose, loaded.asset(1).observed_poses = None, torch.zeros(2, 12)
    with pytest.raises(ValidationError, match=r"\(id 1\)\.observed_poses: expected shape \(3, 12\), got \(2, 12\)"):
        loaded.validate()


def test_validate_names_bad_fields(simple_scene):
    s = simple_scene.copy()
    s.assets[0].sizes[2, 1] = -1.0
    with pytest.raises(ValidationError, match=r"assets\[0\] \(id 1\)\.sizes\[2\]: every extent must be positive"):
        s.validate()
    s = simple_scene.copy()
    s.assets[1].rotations[0] = torch.ones(3, 3)
    with pytest.raises(ValidationError, match=r"rotations\[0\]: expected a rotation matrix"):
        s.validate()
    s = simple_scene.copy()
    s.cameras = s.cameras[:2]
    with pytest.raises(ValidationError, match="cameras: expected one per frame"):
        s.validate()


def test_edits_on_copies_leave_original(simple_scene):
    before = simple_scene.assets[0].centers.clone()
    moved = simple_scene.assets[0].with_box(1, Box3D(torch.zeros(3), torch.ones(3), torch.eye(3)))
    assert torch.equal(simple_scene.assets[0].centers, before)
    assert torch.equal(moved.centers[1], torch.zeros(3))
    c = simple_scene.copy()
    c.assets[0].centers += 1
    assert torch.equal(simple_scene.assets[0].centers, before)


def test_iadd_and_lookup(simple_scene):
    from neuralassets import AssetNotFoundError
    s = simple_scene.copy()
    extra = s.assets[0].copy()
    with pytest.raises(ValidationError, match="already in this scene"):
        s += extra
    extra.id = s.next_asset_id()
    s += extra
    assert s.asset_ids == [1, 2, 3] and s.asset(3).name == "obj0"
    with pytest.raises(AssetNotFoundError, match=r"asset id 9 is not in this scene \(ids: \[1, 2, 3\]\)"):
        s.asset(9)


def test_box_corners_and_instance_map(simple_scene):
    box = simple_scene.assets[0].box(0)
    assert box.corners().shape == (8, 3)
    m = simple_scene.instance_map(0)
    assert set(m.unique().tolist()) <= {0, 1, 2}
    assert (m == 2).equal(simple_scene.assets[1].masks[0])


def test_cli_scene_info(tmp_path, simple_scene, capsys):
    from neuralassets.cli import main
    simple_scene.save(tmp_path / "s")
    assert main(["scene", "info", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "3 frames of 32x24, 2 assets" in out and "obj1" in out
    assert main(["scene", "info", str(tmp_path / "nope")]) == 2
    assert "scene.json: missing" in capsys.readouterr().err

import zipfile

import pytest
import torch

from neuralassets import Scene, SceneFormatError


def test_zip_roundtrip(tmp_path, simple_scene):
    simple_scene.save_zip(tmp_path / "s.zip")
    loaded = Scene.load_zip(tmp_path / "s.zip")
    assert torch.equal(loaded.frames, simple_scene.frames)
    assert torch.equal(loaded.assets[1].rotations, simple_scene.assets[1].rotations)


def test_zip_path_traversal_is_refused(tmp_path, simple_scene):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("scene.json", "{}")
        zf.writestr("../../escaped.txt", "owned")
    with pytest.raises(SceneFormatError, match=r"entry '\.\./\.\./escaped\.txt' points outside"):
        Scene.load_zip(evil)
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_zip_not_a_zip_or_not_a_scene(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SceneFormatError, match="not a readable zip archive"):
        Scene.load_zip(bad)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(SceneFormatError, match="no scene.json inside"):
        Scene.load_zip(empty)

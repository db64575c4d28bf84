"""Hostile and malformed inputs through the API, the editor's upload reader and the command line.

Each test is a row of docs/RELIABILITY.md: zip bombs refused from their listing, images too
large to decode refused from their header, JSON nested too deeply, edit arguments of the wrong
type, model folders that are not models, and messages that name the user's file by its base name.
"""
import json
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
import torch

from neuralassets import Scene, SceneFormatError, ValidationError
from neuralassets import edits as E
from neuralassets.cli import main
from neuralassets.editor import inputs
from neuralassets.errors import VideoError, WeightsError
from neuralassets.video import read_video


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG claiming ``width`` x ``height`` pixels whose pixel data stops after 1 kB: it opens, but never decodes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1024)))
                     + chunk(b"IEND", b""))
    return path


def rewrite_listing(archive: Path, entry: str, file_size: int) -> None:
    """Make the archive's central directory (and local header) declare ``file_size`` bytes for ``entry``."""
    data = bytearray(archive.read_bytes())
    name = entry.encode()
    for signature, size_at, name_at in ((b"PK\x01\x02", 24, 46), (b"PK\x03\x04", 22, 30)):
        at = data.find(signature)
        while at >= 0 and data[at + name_at:at + name_at + len(name)] != name:
            at = data.find(signature, at + 1)
        data[at + size_at:at + size_at + 4] = struct.pack("<I", file_size)
    archive.write_bytes(bytes(data))


@pytest.fixture(scope="session")
def zeros_bomb(tmp_path_factory) -> Path:
    """A 1 MB zip holding one entry of 1000 MB of zeros (deflate squeezes them about 1000:1)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    block = bytes(1024**2)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("frames/00000.png", "w", force_zip64=True) as f:
        for _ in range(1000):
            f.write(block)
    return path


def listing(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


# --------------------------------------------------------------------------------------
# Scene zips (Scene.load_zip)
# --------------------------------------------------------------------------------------

def test_zip_bomb_is_refused_from_its_listing_before_anything_is_extracted(zeros_bomb, tmp_path):
    assert zeros_bomb.stat().st_size < 1.1 * 1024**2
    work = tmp_path / "work"
    with pytest.raises(SceneFormatError) as e:
        Scene.load_zip(zeros_bomb, workdir=work)
    assert str(e.value) == ("bomb.zip: unpacks to 1000.0 MB from 1.0 MB (1029:1); a Scene's PNG frames and tensors "
                            "compress less than 100:1, so it is refused as a zip bomb before extracting")
    assert listing(work) == []  # nothing was extracted, not even the folder for it


def test_zip_over_the_size_or_entry_limit_is_refused_before_extracting(tmp_path, simple_scene, monkeypatch):
    import neuralassets.scene as scene_module

    archive = simple_scene.save_zip(tmp_path / "s.zip")
    big = tmp_path / "big.zip"
    big.write_bytes(archive.read_bytes())
    rewrite_listing(big, "tensors.safetensors", 2 * 1024**3 - 1)  # the listing of a 2 GiB archive
    work = tmp_path / "work"
    with pytest.raises(SceneFormatError, match=r"^big\.zip: unpacks to 2048\.\d MB, over the 1024\.0 MB limit for a "
                                               r"Scene zip; refused before extracting$"):
        Scene.load_zip(big, workdir=work)
    assert listing(work) == []
    monkeypatch.setattr(scene_module, "MAX_ZIP_ENTRIES", 5)
    with pytest.raises(SceneFormatError, match=r"^s\.zip: \d+ entries, over the 5 limit for a Scene zip; refused"):
        Scene.load_zip(archive, workdir=work)
    assert listing(work) == []


def test_zip_whose_listing_understates_an_entry_is_refused_and_leaves_nothing(tmp_path, simple_scene):
    archive = simple_scene.save_zip(tmp_path / "s.zip")
    rewrite_listing(archive, "tensors.safetensors", 1000)  # the entry really holds far more
    work = tmp_path / "work"
    with pytest.raises(SceneFormatError, match=r"^s\.zip: entry 'tensors\.safetensors' is corrupt or unsupported"):
        Scene.load_zip(archive, workdir=work)
    assert work.is_dir() and listing(work) == []


def test_zip_is_extracted_inside_the_callers_folder_and_removed(tmp_path, simple_scene, monkeypatch):
    archive = simple_scene.save_zip(tmp_path / "s.zip")
    work, seen = tmp_path / "work", []
    load = Scene.load.__func__

    def spy(cls, folder):
        seen.append(Path(folder))
        return load(cls, folder)

    monkeypatch.setattr(Scene, "load", classmethod(spy))
    loaded = Scene.load_zip(archive, workdir=work)
    assert torch.equal(loaded.frames, simple_scene.frames)
    assert seen and seen[-1].is_relative_to(work.resolve())
    assert listing(work) == []


def test_zip_errors_name_files_inside_the_archive_not_the_extraction_folder(tmp_path, simple_scene):
    folder = simple_scene.save(tmp_path / "scene")
    (folder / "frames" / "00001.png").write_bytes(b"not a png")
    archive = tmp_path / "deep" / "broken.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for f in folder.rglob("*"):
            zf.write(f, f.relative_to(folder).as_posix())
    with pytest.raises(SceneFormatError) as e:
        Scene.load_zip(archive)
    assert str(e.value) == "broken.zip/frames/00001.png: not a readable image (expected one of .png, .jpg, .jpeg, .bmp, " \
                           ".tif, .tiff, .webp)"
    with pytest.raises(SceneFormatError, match=r"^missing\.zip: no such file$"):
        Scene.load_zip(tmp_path / "missing.zip")
    with pytest.raises(SceneFormatError, match=r"^scene\.json: not a readable zip archive"):
        Scene.load_zip(folder / "scene.json")


# --------------------------------------------------------------------------------------
# Images too large to decode
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("side, message", [
    (30000, "more than 178956970 pixels, over the 8192 pixel limit per side"),  # past Pillow's own bomb limit
    (10000, "10000x10000 pixels is over the 8192 pixel limit per side"),  # Pillow would decode it (with a warning)
])
def test_a_huge_frame_in_a_scene_folder_or_zip_is_refused_from_its_header(tmp_path, simple_scene, side, message):
    folder = simple_scene.save(tmp_path / "scene")
    png_header(folder / "frames" / "00001.png", side, side)
    with pytest.raises(SceneFormatError) as e:
        Scene.load(folder)
    assert str(e.value) == f"{folder / 'frames' / '00001.png'}: {message}"
    archive = tmp_path / "huge.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in folder.rglob("*"):
            zf.write(f, f.relative_to(folder).as_posix())
    with pytest.raises(SceneFormatError) as e:
        Scene.load(archive)
    assert str(e.value) == f"huge.zip/frames/00001.png: {message}"


def test_a_scene_json_claiming_huge_frames_is_refused_before_reading_them(tmp_path, simple_scene):
    folder = simple_scene.save(tmp_path / "scene")
    meta = json.loads((folder / "scene.json").read_text())
    meta["height"] = meta["width"] = 30000
    (folder / "scene.json").write_text(json.dumps(meta))
    with pytest.raises(SceneFormatError, match=r"scene\.json: frames of 30000x30000 pixels are over the 8192 pixel limit"):
        Scene.load(folder)


def test_a_huge_image_in_an_upload_pair_or_a_frame_folder_is_refused_from_its_header(tmp_path):
    from PIL import Image

    small = tmp_path / "a.png"
    Image.new("RGB", (64, 48), (90, 120, 30)).save(small)
    huge = png_header(tmp_path / "huge.png", 30000, 30000)
    with pytest.raises(inputs.UploadError) as e:
        inputs.read_upload_frames([small, huge])
    assert str(e.value) == "huge.png: more than 178956970 pixels, over the 4096 pixel limit per side"
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (64, 48)).save(frames / "f0.png")
    png_header(frames / "f1.png", 30000, 30000)
    with pytest.raises(VideoError) as e:
        read_video(frames)
    assert str(e.value) == "f1.png: more than 178956970 pixels, over the 8192 pixel limit per side"


# --------------------------------------------------------------------------------------
# JSON nested too deeply
# --------------------------------------------------------------------------------------

def test_deeply_nested_scene_json_or_edits_file_is_a_format_error(tmp_path, simple_scene, capsys):
    deep = "[" * 200_000 + "]" * 200_000
    folder = simple_scene.save(tmp_path / "scene")
    (folder / "scene.json").write_text(deep)
    with pytest.raises(SceneFormatError, match=r"scene\.json: JSON nested more than 100 levels deep; not a file this library"):
        Scene.load(folder)
    assert main(["scene", "info", str(folder)]) == 2
    assert "scene.json: JSON nested more than 100 levels deep" in capsys.readouterr().err
    # A valid scene.json whose metadata nests 500 levels would load, then break copying it: refused too.
    simple_scene.save(folder)
    meta = json.loads((folder / "scene.json").read_text())
    (folder / "scene.json").write_text(json.dumps(meta)[:-1] + ', "extra": ' + "[" * 500 + "]" * 500 + "}")
    with pytest.raises(SceneFormatError, match="nested more than 100 levels deep"):
        Scene.load(folder)
    edits = tmp_path / "edits.json"
    edits.write_text(deep)
    with pytest.raises(ValidationError, match=r"edits\.json: JSON nested more than 100 levels deep"):
        E.load_edits(edits)


# --------------------------------------------------------------------------------------
# Edit arguments of the wrong type
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda s: E.move(s, True, (0.1, 0, 0)), "asset id: expected an integer, got the boolean True"),
    (lambda s: E.move(s, 1.0, (0.1, 0, 0)), "asset id: expected an integer, got the float 1.0"),
    (lambda s: E.remove(s, "1"), "asset id: expected an integer, got the string '1'"),
    (lambda s: E.swap_appearance(s, 1, "2"), "asset id: expected an integer, got the string '2'"),
    (lambda s: E.move(s, 1, [[0.1], [0], [0]]), r"delta: expected 3 numbers, got \[\[0\.1\], \[0\], \[0\]\] \(an entry is a nested list\)"),
    (lambda s: E.move(s, 1, [True, False, False]),
     r"delta: expected 3 numbers, got \[True, False, False\] \(an entry is the boolean True\)"),
    (lambda s: E.move(s, 1, torch.tensor([[0.1, 0.0, 0.0]])), r"delta: expected 3 numbers, got a nested array"),
    (lambda s: E.scale(s, 1, [[2.0]]), r"factor: expected one number, got \[\[2\.0\]\] \(an entry is a nested list\)"),
    (lambda s: E.rotate(s, 1, yaw="0.5"), r"yaw: expected one number, got the string '0\.5'"),
    (lambda s: E.move(s, 1, (0.1, 0, 0), frames="0-3"),
     r"frames: expected None \(every frame\), a frame index or a list of frame indices \(integers in \[-3, 3\)\), "
     r"got the string '0-3'"),
    (lambda s: E.move(s, 1, (0.1, 0, 0), frames=["0"]), r"frames: the string '0' is not a frame index; expected None"),
    (lambda s: E.swap_background(s, s, frame="0"), r"frame: expected one frame index \(an integer\), got the string '0'"),
])
def test_edit_arguments_of_the_wrong_type_are_named(simple_scene, call, message):
    with pytest.raises(ValidationError, match=message):
        call(simple_scene)


def test_integer_like_ids_and_arrays_still_work(simple_scene):
    import numpy as np

    a = E.move(simple_scene, np.int64(1), np.array([0.1, 0.0, 0.0]), frames=torch.tensor([0, 2]))
    b = E.move(simple_scene, torch.tensor(1), torch.tensor([0.1, 0.0, 0.0]), frames=[0, 2])
    assert torch.equal(a.asset(1).centers, b.asset(1).centers)
    assert torch.allclose(a.asset(1).centers[0] - simple_scene.asset(1).centers[0], torch.tensor([0.1, 0.0, 0.0]))


def test_a_replayed_edit_file_with_a_string_id_names_the_entry(tmp_path, simple_scene):
    path = tmp_path / "edits.json"
    path.write_text(json.dumps({"format_version": 1, "edits": [{"op": "move", "args": {"asset_id": "1", "delta": [0.1, 0, 0]}}]}))
    with pytest.raises(ValidationError, match=r"^edits\[0\] \(move\): asset id: expected an integer, got the string '1'$"):
        E.apply_edits(simple_scene, E.load_edits(path))


# --------------------------------------------------------------------------------------
# Model folders that are not models
# --------------------------------------------------------------------------------------

def _model_folders(root: Path) -> dict[str, Path]:
    transformers = pytest.importorskip("transformers")
    folders = {name: root / name for name in ("empty", "config_only", "junk_weights")}
    for folder in folders.values():
        folder.mkdir()
    transformers.SamConfig().save_pretrained(folders["config_only"])
    transformers.SamConfig().save_pretrained(folders["junk_weights"])
    (folders["junk_weights"] / "model.safetensors").write_bytes(b"junk" * 100)
    return folders


@pytest.mark.parametrize("loader", ["sam", "depth", "sam2_video", "detector"])
def test_every_perception_model_loader_turns_a_bad_folder_into_a_weights_error(tmp_path, loader):
    from neuralassets.perception.depth import DepthAnythingEstimator
    from neuralassets.perception.sam import HFSamSegmenter
    from neuralassets.perception.text_prompt import TextPromptedSegmenter
    from neuralassets.perception.tracking import Sam2VideoTracker

    load = {"sam": HFSamSegmenter.from_pretrained, "depth": DepthAnythingEstimator.from_pretrained,
            "sam2_video": Sam2VideoTracker.from_pretrained,
            "detector": lambda p: TextPromptedSegmenter.from_pretrained(p, None, ["cup"])}[loader]
    for folder in _model_folders(tmp_path).values():
        with pytest.raises(WeightsError, match=rf"^{folder}: "):
            load(folder)


def test_extract_names_the_model_flag_when_its_folder_is_empty(tmp_path, capsys):
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.new("RGB", (64, 48), (40 * i, 90, 30)).save(frames / f"{i}.png")
    (tmp_path / "empty").mkdir()
    for flag in ("--sam-model", "--depth-model", "--sam2-video"):
        assert main(["extract", str(frames), "--out", str(tmp_path / "out"), flag, str(tmp_path / "empty")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"neuralassets extract: error: {flag}: {tmp_path / 'empty'}: cannot load a ") and "Traceback" not in err


# --------------------------------------------------------------------------------------
# Messages name the user's file, never a server path or a decoder's output
# --------------------------------------------------------------------------------------

def test_a_renamed_non_video_names_the_file_only(tmp_path):
    clip = tmp_path / "uploads" / "0123abcd" / "clip.mp4"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(bytes(range(256)) * 20)
    expected = "clip.mp4: not a readable .mp4 video: unsupported codec, corrupt, truncated or not a video at all"
    for read in (read_video, lambda p: inputs.read_upload_frames([p])):
        with pytest.raises(VideoError) as e:
            read(clip)
        assert str(e.value) == expected

import json
import shutil
import warnings
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import neuralassets.scene as scene_module
from neuralassets import Asset, Camera, Scene, SceneFormatError, ValidationError
from neuralassets.scene import SceneWriter, _write_mask_png

FIXTURES = Path(__file__).parent / "fixtures"


def small_scene(T: int, H: int, W: int) -> Scene:
    """A T-frame H x W scene of two assets whose masks are rectangles moving one pixel a frame (asset 2 has none)."""
    frames = (torch.arange(T * 3 * H * W) % 256).float().reshape(T, 3, H, W) / 255
    cams = [Camera.look_at([4.0, -4.0, 3.0], [0.0, 0.0, 0.3], 50.0, W, H) for _ in range(T)]
    masks = torch.zeros(T, H, W, dtype=torch.bool)
    for t in range(T):
        masks[t, 2:H // 2, t % W:t % W + W // 3] = True
    assets = [Asset(id=k, name=f"obj{k}", centers=torch.tensor([[k - 1.5, 0.0, 0.25]]).repeat(T, 1), sizes=torch.full((T, 3), 0.5),
                    rotations=torch.eye(3).repeat(T, 1, 1), boxes_2d=torch.tensor([[1.0, 2, 8, 9]]).repeat(T, 1),
                    visibility=torch.ones(T), masks=masks if k == 1 else None) for k in (1, 2)]
    return Scene(frames, cams, assets, metadata={"made_by": "small_scene"})


def assert_same_scene(a: Scene, b: Scene) -> None:
    assert torch.equal(a.frames, b.frames) and a.metadata == b.metadata and a.asset_ids == b.asset_ids
    for x, y in zip(a.assets, b.assets):
        for name in ("centers", "sizes", "rotations", "boxes_2d", "visibility"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name
        assert (x.masks is None) == (y.masks is None) and (x.masks is None or torch.equal(x.masks, y.masks))


def write_format_1(folder: Path, scene: Scene) -> None:
    """Turn a saved Scene folder into format 1: each asset's masks in one PNG of (T*H, W) pixels."""
    meta = json.loads((folder / "scene.json").read_text())
    meta["format_version"] = 1
    del meta["mask_frames_per_file"]
    for entry, asset in zip(meta["assets"], scene.assets):
        if asset.masks is not None:
            entry["masks"] = f"masks/asset_{asset.id:04d}.png"
            _write_mask_png(folder / entry["masks"], asset.masks, (scene.height, scene.width))
            shutil.rmtree(folder / "masks" / f"asset_{asset.id:04d}")
    (folder / "scene.json").write_text(json.dumps(meta))


@pytest.fixture
def long_clip(monkeypatch):
    """A 20-frame 16x12 scene whose stacked masks (3840 pixels) are over a Pillow limit of 1000 (errors above 2000),
    stored 3 frames (576 pixels) a file."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    monkeypatch.setattr(scene_module, "MASK_FILE_PIXELS", 3 * 16 * 12 + 5)
    return small_scene(20, 12, 16)


def test_long_clip_masks_are_stored_in_files_below_the_pillow_limit_and_round_trip(tmp_path, long_clip):
    folder = long_clip.save(tmp_path / "s")
    meta = json.loads((folder / "scene.json").read_text())
    assert meta["format_version"] == 2 and meta["mask_frames_per_file"] == 3
    assert [e["masks"] for e in meta["assets"]] == ["masks/asset_0001", None]
    files = sorted((folder / "masks" / "asset_0001").iterdir())
    assert [f.name for f in files] == [f"{t:05d}.png" for t in range(0, 20, 3)]
    masks = long_clip.assets[0].masks
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either: every file is under the limit
        for f in files:
            start = int(f.stem)
            with Image.open(f) as img:
                assert img.mode == "1" and img.size == (16, 12 * min(3, 20 - start))  # one bit a pixel
                stacked = np.asarray(img).reshape(-1, 12, 16)
            assert np.array_equal(stacked, masks[start:start + 3].numpy())
        assert_same_scene(Scene.load(folder), long_clip)
    # the same masks as one format-1 PNG: Pillow refuses to open it ...
    write_format_1(folder, long_clip)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(folder / "masks" / "asset_0001.png")
    # ... and the Scene still loads, without a change to Pillow's limit
    assert_same_scene(Scene.load(folder), long_clip)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_writer_keeps_at_most_one_file_of_masks_and_resaving_drops_stale_files(tmp_path, long_clip):
    folder = tmp_path / "s"
    writer = SceneWriter(folder)
    for frame in long_clip.frames:
        writer.add_frame(frame)
    asset_folder = folder / "masks" / "asset_0001"

    def masks():
        for t, mask in enumerate(long_clip.assets[0].masks):
            # every file before the current one is on disk before its next mask is asked for
            assert sorted(f.name for f in asset_folder.glob("*.png")) == [f"{s:05d}.png" for s in range(0, t - t % 3, 3)]
            yield mask

    writer.add_masks(1, masks())
    writer.finish(long_clip.cameras, [replace(a, masks=None) for a in long_clip.assets], metadata=long_clip.metadata)
    assert_same_scene(Scene.load(folder), long_clip)
    short = small_scene(4, 12, 16)
    short.save(folder)
    assert sorted(f.name for f in asset_folder.iterdir()) == ["00000.png", "00003.png"]
    assert_same_scene(Scene.load(folder), short)
    with pytest.raises(ValidationError, match=r"asset 1: mask 2 is \(12, 15\), expected \(12, 16\)"):
        writer.add_masks(1, [torch.zeros(12, 16, dtype=torch.bool)] * 2 + [torch.zeros(12, 15, dtype=torch.bool)])
    with pytest.raises(ValidationError, match="asset 1: 4 masks for 20 frames"):
        writer.add_masks(1, short.assets[0].masks)


def test_format_1_scene_folder_and_zip_still_load():
    """tests/fixtures/scene_v1 and scene_v1.zip were written by the format-1 writer from small_scene(5, 12, 16)."""
    expected = small_scene(5, 12, 16)
    assert json.loads((FIXTURES / "scene_v1" / "scene.json").read_text())["format_version"] == 1
    assert (FIXTURES / "scene_v1" / "masks" / "asset_0001.png").is_file()
    assert_same_scene(Scene.load(FIXTURES / "scene_v1"), expected)
    assert_same_scene(Scene.load(FIXTURES / "scene_v1.zip"), expected)


def test_zip_round_trip_keeps_the_mask_files(tmp_path, long_clip):
    path = long_clip.save_zip(tmp_path / "s.zip")
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.startswith("masks/")]
    assert names == [f"masks/asset_0001/{t:05d}.png" for t in range(0, 20, 3)]
    assert_same_scene(Scene.load_zip(path), long_clip)


def test_bad_or_oversized_mask_files_are_named(tmp_path, long_clip, monkeypatch):
    folder = long_clip.save(tmp_path / "s")
    meta_path, chunk = folder / "scene.json", folder / "masks" / "asset_0001" / "00003.png"
    good_meta, good_chunk = meta_path.read_text(), chunk.read_bytes()
    # a file whose header claims 16x10000000 pixels: Pillow alone raises its own error, the Scene names the file
    _write_mask_png(chunk, [torch.zeros(12, 16, dtype=torch.bool)], (12, 16))
    header = bytearray(chunk.read_bytes())
    header[20:24] = (10_000_000).to_bytes(4, "big")
    header[29:33] = zlib.crc32(bytes(header[12:29])).to_bytes(4, "big")
    chunk.write_bytes(bytes(header))
    with pytest.raises(Image.DecompressionBombError):
        Image.open(chunk)
    with pytest.raises(SceneFormatError, match=r"asset_0001/00003\.png: expected 16x36 pixels, got 16x10000000 "
                                               r"\(3 masks of 16x12 stacked\)"):
        Scene.load(folder)
    chunk.write_bytes(good_chunk[:60])
    with pytest.raises(SceneFormatError, match=r"asset_0001/00003\.png: not a readable PNG image"):
        Scene.load(folder)
    chunk.unlink()
    with pytest.raises(SceneFormatError, match=r"asset_0001/00003\.png: missing"):
        Scene.load(folder)
    chunk.write_bytes(good_chunk)
    # files of more than MASK_FILE_PIXELS are refused before one is opened
    monkeypatch.setattr(scene_module, "MASK_FILE_PIXELS", 2 * 16 * 12)
    with pytest.raises(SceneFormatError, match=r"scene\.json: mask_frames_per_file 3 makes mask files of 576 pixels, "
                                               r"over the 384 pixel limit for one file"):
        Scene.load(folder)
    for bad in ("3", 0, None):
        meta_path.write_text(good_meta.replace('"mask_frames_per_file": 3', f'"mask_frames_per_file": {json.dumps(bad)}'))
        with pytest.raises(SceneFormatError, match=r"scene\.json: mask_frames_per_file: expected a positive integer"):
            Scene.load(folder)
    meta_path.write_text(good_meta.replace('"num_frames": 20', '"num_frames": 0'))
    with pytest.raises(SceneFormatError, match=r"scene\.json: num_frames, height and width must be positive, got 0, 12, 16"):
        Scene.load(folder)


@pytest.mark.slow
def test_400_frames_of_960x540_masks_round_trip(tmp_path):
    """A 13-second 30 fps clip: its stacked masks (207 million pixels) would be over twice Pillow's default limit.

    Peak memory is about 3.4 GB (measured), nearly all of it the loaded Scene: frames 2.5 GB, masks 0.2 GB.
    """
    T, H, W = 400, 540, 960
    assert T * H * W > 2 * Image.MAX_IMAGE_PIXELS

    def mask(t: int) -> torch.Tensor:
        m = torch.zeros(H, W, dtype=torch.bool)
        m[100 + t % 300:200 + t % 300, t:t + 300] = True
        return m

    writer = SceneWriter(tmp_path / "s")
    frame = torch.zeros(3, H, W)
    for _ in range(T):
        writer.add_frame(frame)
    writer.add_masks(1, (mask(t) for t in range(T)))
    cams = [Camera.look_at([4.0, -4.0, 3.0], [0.0, 0.0, 0.3], 50.0, W, H)] * T
    asset = Asset(id=1, name="box", centers=torch.zeros(T, 3), sizes=torch.ones(T, 3), rotations=torch.eye(3).repeat(T, 1, 1),
                  boxes_2d=torch.tensor([[0.0, 0, 10, 10]]).repeat(T, 1), visibility=torch.ones(T))
    folder = writer.finish(cams, [asset])
    assert len(list((folder / "masks" / "asset_0001").iterdir())) == 13  # 32 frames a file
    loaded = Scene.load(folder).assets[0].masks
    assert loaded.shape == (T, H, W)
    for t in range(T):
        assert torch.equal(loaded[t], mask(t)), t


def test_a_save_like_a_saved_scene_copies_its_unchanged_files(tmp_path, monkeypatch):
    from neuralassets import edits as E

    source = small_scene(T=5, H=12, W=16)
    source.assets[1].masks = torch.roll(source.assets[0].masks, 1, dims=2)
    first = Scene.load(source.save(tmp_path / "first"))
    encoded = []
    monkeypatch.setattr(scene_module, "_write_png", lambda path, image: encoded.append(path.name) or
                        Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(path))
    written = []
    real_masks = scene_module._write_mask_png
    monkeypatch.setattr(scene_module, "_write_mask_png", lambda path, masks, size: written.append(path.parent.name) or
                        real_masks(path, masks, size))
    moved = E.move(first, 1, (0.2, 0.0, 0.0))  # poses change; frames and masks do not
    moved.assets[1].masks = moved.assets[1].masks.clone()
    moved.assets[1].masks[0, 0, 0] = ~moved.assets[1].masks[0, 0, 0]  # one pixel of asset 2's masks differs
    moved.save(tmp_path / "moved", like=(tmp_path / "first", first))
    assert encoded == [] and set(written) == {"asset_0002"}  # frames and asset 1's masks copied, asset 2's encoded
    assert_same_scene(Scene.load(tmp_path / "moved"), moved)
    for t in range(5):
        assert (tmp_path / "moved/frames" / f"{t:05d}.png").read_bytes() == (tmp_path / "first/frames" / f"{t:05d}.png").read_bytes()
    # other frames, or saving over the folder it was read from: everything is encoded
    changed = first.replace(frames=first.frames.flip(-1))
    changed.save(tmp_path / "changed", like=(tmp_path / "first", first))
    assert len(encoded) == 5
    first.save(tmp_path / "first", like=(tmp_path / "first", first))
    assert len(encoded) == 10

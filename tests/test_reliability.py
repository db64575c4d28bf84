"""Bad inputs the other test files do not reach: every case here is a row of docs/RELIABILITY.md.

Each test feeds one kind of broken, odd or hostile input and checks the library answers
with its own error class and a message naming what was wrong, or with the documented
fallback, and that hostile files never run code.
"""
import json
import tracemalloc
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from test_models import TINY, one_thread, tiny_pipeline  # noqa: F401 (one_thread: autouse fixture)

from neuralassets import Scene, SceneFormatError, ValidationError
from neuralassets.conditioning import conditioning_from_scene
from neuralassets.errors import VideoError, WeightsError
from neuralassets.pipelines import NeuralAssetsPipeline
from neuralassets.video import read_video, write_video


class CreatesMarker:
    """Unpickling this object opens (creates) ``path``: the proof that a file's code ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def hostile_pickle(path: Path, marker: Path) -> Path:
    """A torch-saved dict whose unpickling would create ``marker``."""
    torch.save({"weight": torch.zeros(2), "payload": CreatesMarker(marker)}, path)
    return path


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------
# Videos and images
# --------------------------------------------------------------------------------------

def test_unsupported_codec_is_a_video_error(tmp_path):
    write_video(tmp_path / "clip.mp4", torch.rand(3, 3, 16, 16, generator=seeded()), fps=8)
    data = (tmp_path / "clip.mp4").read_bytes()
    assert data.count(b"avc1") >= 1
    (tmp_path / "odd.mp4").write_bytes(data.replace(b"avc1", b"zzzz"))  # a codec tag no decoder knows
    with pytest.raises(VideoError, match=r"odd\.mp4: not a readable \.mp4 video: unsupported codec"):
        read_video(tmp_path / "odd.mp4")


def _peak_bytes_reading(folder: Path, max_side: int) -> tuple[torch.Tensor, int]:
    tracemalloc.start()
    try:
        with pytest.warns(UserWarning, match=f"shrunk to {max_side}x{max_side}"):
            frames, _ = read_video(folder, max_side=max_side)
        return frames, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_huge_frames_are_shrunk_one_at_a_time(tmp_path):
    side = 2000
    big = np.full((side, side, 3), 90, np.uint8)
    big[:, side // 2:] = 200
    for count in (2, 6):
        (tmp_path / str(count)).mkdir()
        for i in range(count):
            Image.fromarray(big).save(tmp_path / str(count) / f"{i}.png", compress_level=1)
    short, peak_short = _peak_bytes_reading(tmp_path / "2", 64)
    long, peak_long = _peak_bytes_reading(tmp_path / "6", 64)
    assert short.shape == (2, 3, 64, 64) and long.shape == (6, 3, 64, 64)
    assert torch.equal(long[0], short[0]) and long[0, :, :, :30].max() < long[0, :, :, 34:].min()
    one_frame = side * side * 3
    # Four more full-size frames cost (almost) nothing more: each is shrunk before the next is decoded.
    assert peak_long < peak_short + one_frame / 4, f"{peak_short / 1e6:.0f} MB for 2 frames, {peak_long / 1e6:.0f} MB for 6"


# --------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------

def _square_clip(T: int) -> torch.Tensor:
    """T frames of a grey floor with one still yellow square."""
    frames = torch.full((T, 3, 40, 40), 0.3)
    frames[:, :, 10:22, 8:20] = torch.tensor([0.9, 0.9, 0.1])[:, None, None]
    return frames


def test_extract_on_an_empty_scene_warns_and_returns_no_assets(tmp_path):
    from neuralassets.perception import extract

    with pytest.warns(UserWarning, match=r"no objects found in 3 frame\(s\) of 40x40"):
        scene = extract(torch.full((3, 3, 40, 40), 0.3))
    assert len(scene) == 0 and scene.num_frames == 3
    assert len(Scene.load(scene.save(tmp_path / "empty"))) == 0  # an empty scene is still a valid Scene folder


def test_extract_on_a_single_frame_keeps_its_object():
    from neuralassets.perception import extract

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scene = extract(_square_clip(1))
    assert len(scene) == 1 and scene.assets[0].boxes_2d[0].tolist() == [8, 10, 20, 22]


@pytest.mark.parametrize("frames, message", [
    ((_square_clip(2) * 255).to(torch.uint8), r"extract: frames: expected float values in \[0, 1\], got dtype torch.uint8"),
    (torch.full((2, 3, 40, 40), float("nan")), "extract: frames: expected finite values in .*NaN"),
    (_square_clip(2) * 2, r"extract: frames: expected finite values in \[0, 1\], got \[0.2, 1.8\]"),
    (torch.empty(2, 3, 40, 40, device="meta"), "extract: frames: tensor is on the 'meta' device"),
])
def test_extract_refuses_frames_of_the_wrong_type(frames, message):
    from neuralassets.perception import extract

    with pytest.raises(ValidationError, match=message):
        extract(frames)


def test_extract_accepts_float64_frames_as_float32():
    from neuralassets.perception import extract

    scene = extract(_square_clip(2).double())
    assert scene.frames.dtype == torch.float32 and len(scene) == 1


def test_a_single_frame_video_gives_identical_source_and_target_pairs():
    from neuralassets.data import GeneratorConfig
    from neuralassets.data.pairs import FramePairDataset, pair_frames

    assert pair_frames(123, 1) == (0, 0)
    data = FramePairDataset("train", 2, 3, GeneratorConfig(image_size=32, num_frames=1, min_objects=1, max_objects=2))
    scene, source, target = data.pair(0)
    assert (scene.num_frames, source, target) == (1, 0, 0)
    cond, image = data[0]
    assert torch.equal(image, scene.frames[0]) and cond.object_mask.sum() == len(scene)


# --------------------------------------------------------------------------------------
# Scene folders and archives
# --------------------------------------------------------------------------------------

def test_extra_files_in_a_scene_folder_are_ignored(tmp_path, simple_scene):
    folder = simple_scene.save(tmp_path / "s")
    (folder / "notes.txt").write_text("user notes")
    (folder / "overlay.png").write_bytes(b"not even a png")
    (folder / "frames" / "00099.png").write_bytes(b"stray")
    (folder / "masks" / "asset_0042.png").write_bytes(b"stray")
    meta = json.loads((folder / "scene.json").read_text())
    meta["written_by"] = "a future tool"  # unknown keys in scene.json, too
    (folder / "scene.json").write_text(json.dumps(meta))
    tensors = load_file(str(folder / "tensors.safetensors"))
    save_file({**tensors, "unrelated": torch.zeros(3)}, str(folder / "tensors.safetensors"))
    loaded = Scene.load(folder)
    assert torch.equal(loaded.frames, simple_scene.frames) and loaded.asset_ids == [1, 2]
    assert (folder / "notes.txt").read_text() == "user notes"


def test_corrupt_frame_or_mask_png_is_named(tmp_path, simple_scene):
    folder = simple_scene.save(tmp_path / "s")
    (folder / "frames" / "00002.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(SceneFormatError, match=r"00002\.png: not a readable image"):
        Scene.load(folder)
    folder = simple_scene.save(tmp_path / "t")
    Image.new("L", (32, 10)).save(folder / "masks" / "asset_0001" / "00000.png")
    with pytest.raises(SceneFormatError, match=r"asset_0001/00000\.png: expected 32x72 pixels, got 32x10"):
        Scene.load(folder)


def test_missing_tensor_and_malformed_asset_entry_are_named(tmp_path, simple_scene):
    folder = simple_scene.save(tmp_path / "s")
    tensors = load_file(str(folder / "tensors.safetensors"))
    del tensors["asset_0002.rotations"]
    save_file(tensors, str(folder / "tensors.safetensors"))
    with pytest.raises(SceneFormatError, match=r"tensors\.safetensors: tensor 'asset_0002\.rotations' is missing"):
        Scene.load(folder)
    folder = simple_scene.save(tmp_path / "t")
    meta = json.loads((folder / "scene.json").read_text())
    del meta["assets"][1]["source_frame"]
    (folder / "scene.json").write_text(json.dumps(meta))
    with pytest.raises(SceneFormatError, match=r"scene\.json: assets\[1\] is malformed \('source_frame'\)"):
        Scene.load(folder)


def test_scene_zip_with_a_link_or_over_the_size_limit_is_refused(tmp_path, simple_scene, monkeypatch):
    import neuralassets.scene as scene_module

    linked = tmp_path / "link.zip"
    with zipfile.ZipFile(linked, "w") as zf:
        info = zipfile.ZipInfo("frames/00000.png")
        info.external_attr = (0o120777 << 16)  # a symbolic link entry
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(SceneFormatError, match=r"entry 'frames/00000\.png' points outside"):
        Scene.load_zip(linked)
    absolute = tmp_path / "absolute.zip"
    with zipfile.ZipFile(absolute, "w") as zf:
        zf.writestr("/tmp/escaped.txt", "x")
    with pytest.raises(SceneFormatError, match="points outside"):
        Scene.load_zip(absolute)
    archive = simple_scene.save_zip(tmp_path / "s.zip")
    monkeypatch.setattr(scene_module, "MAX_ZIP_BYTES", 1000)
    with pytest.raises(SceneFormatError, match=r"^s\.zip: unpacks to \d+ bytes, over the 1000 bytes limit for a Scene zip; "
                                                "refused before extracting$"):
        Scene.load_zip(archive)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.assets[0].sizes.__setitem__((1, 2), float("inf")), r"sizes\[1, 2\]: expected a finite number, got inf"),
    (lambda s: s.assets[1].centers.__setitem__((0, 0), float("nan")), r"assets\[1\] \(id 2\)\.centers\[0, 0\]: expected a finite"),
    (lambda s: s.assets[0].sizes.__setitem__((0, 0), 0.0), r"sizes\[0\]: every extent must be positive"),
    (lambda s: setattr(s, "frames", s.frames * 255), r"frames: expected finite values in \[0, 1\], got \[0, 255\]"),
    (lambda s: setattr(s, "frames", torch.empty(3, 3, 24, 32, device="meta")), "frames: tensor is on the 'meta' device"),
    (lambda s: setattr(s.cameras[1], "t", torch.empty(3, device="meta")), r"cameras\[1\]\.t: tensor is on the 'meta' device"),
])
def test_bad_scene_fields_are_named_before_rendering(simple_scene, change, message):
    scene = simple_scene.copy()
    change(scene)
    with pytest.raises(ValidationError, match=message):
        scene.validate()
    with pytest.raises(ValidationError, match=message):  # the model never sees such a scene
        conditioning_from_scene(scene, 1, 3)


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"generator": 5}, "generator: expected a torch.Generator or None, got int"),
    ({"generator": "seed"}, "generator: expected a torch.Generator or None, got str"),
    ({"guidance_scale": float("inf")}, "guidance_scale"),
    ({"num_inference_steps": -3}, "num_inference_steps"),
    ({"latents": torch.full((1, 4, 16, 16), float("nan"))}, "latents: expected finite numbers"),
    ({"latents": torch.empty(1, 4, 16, 16, device="meta")}, "latents: expected finite numbers on a real device"),
])
def test_bad_render_arguments_are_named(simple_scene, kwargs, message):
    with pytest.raises(ValidationError, match=message):
        tiny_pipeline()(simple_scene, num_inference_steps=kwargs.pop("num_inference_steps", 1), **kwargs)


def test_conditioning_dtype_is_converted_and_meta_refused(simple_scene):
    pipe = tiny_pipeline()
    cond = conditioning_from_scene(simple_scene, 1, 3)
    noise = torch.randn(1, 4, 16, 16, generator=seeded(1))
    as_float32 = pipe.render(cond, num_inference_steps=1, latents=noise)
    as_float64 = pipe.render(cond.to(torch.float64), num_inference_steps=1, latents=noise.double())
    assert as_float64.dtype == torch.float32 and torch.allclose(as_float64, as_float32, atol=1e-5)
    with pytest.raises(ValidationError, match=r"conditioning\.appearance_images: tensor is on the 'meta' device"):
        pipe.render(cond.to("meta"), num_inference_steps=1)


def test_object_behind_the_camera_renders_a_finite_image(simple_scene):
    """Edits refuse such a move by default (test_edits.py); a scene built that way still renders."""
    scene = simple_scene.copy()
    camera = scene.cameras[1]
    behind = camera.center - 2.0 * camera.R[2]  # 2 m behind the camera, along its viewing axis
    scene.assets[0].centers[1] = behind
    cond = conditioning_from_scene(scene, 1, 3)
    depths = cond.object_poses[0, 0, 2::3]
    assert (depths < 0).all() and torch.isfinite(cond.object_poses).all()
    image = tiny_pipeline()(scene, target_frame=1, num_inference_steps=1, generator=seeded()).images
    assert image.shape == (1, 3, 24, 32) and torch.isfinite(image).all()


def test_editor_render_settings_out_of_range_are_named():
    from neuralassets.editor.backends import MAX_SEED, MAX_STEPS, check_settings
    from neuralassets.editor.state import RenderSettings

    good = RenderSettings()
    check_settings(replace(good, seed=MAX_SEED))
    for change, message in [({"steps": 0}, "steps: expected 1..200, got 0"), ({"steps": MAX_STEPS + 1}, "steps"),
                            ({"guidance": -0.5}, "guidance: expected 0..20"), ({"guidance": float("nan")}, "guidance"),
                            ({"seed": -1}, "seed: expected an integer in 0.."), ({"seed": MAX_SEED + 1}, "seed"),
                            ({"backend": "magic"}, "backend: 'magic' is not one of")]:
        with pytest.raises(ValidationError, match=message):
            check_settings(replace(good, **change))


# --------------------------------------------------------------------------------------
# Weights: pickles are refused and never run
# --------------------------------------------------------------------------------------

def test_hostile_pickle_would_run_code_when_unpickled(tmp_path):
    """The control for the tests below: an unrestricted load of such a file does run its payload."""
    marker = tmp_path / "ran"
    path = hostile_pickle(tmp_path / "control.pt", marker)
    torch.load(path, weights_only=False)  # never do this outside this test
    assert marker.exists()


@pytest.mark.parametrize("part, name", [("vae", "diffusion_pytorch_model.bin"), ("asset_encoder", "model.pt"),
                                        ("denoiser", "model.pkl")])
def test_pipeline_folder_with_pickled_weights_is_refused_unopened(tmp_path, monkeypatch, part, name):
    import pickle

    from neuralassets.pipelines import neural_assets

    tiny_pipeline().save_pretrained(tmp_path / "p")
    (tmp_path / "p" / part / neural_assets.WEIGHT_FILES[part]).unlink()
    marker = tmp_path / "ran"
    hostile_pickle(tmp_path / "p" / part / name, marker)

    def forbidden(*args, **kwargs):
        raise AssertionError("a weights file was unpickled")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    with pytest.raises(WeightsError, match=rf"{part}/.*: weights file is missing \({name} there is pickle-based"):
        NeuralAssetsPipeline.from_pretrained(tmp_path / "p")
    assert not marker.exists()


def test_pickle_renamed_to_safetensors_is_unreadable_not_run(tmp_path):
    tiny_pipeline().save_pretrained(tmp_path / "p")
    marker = tmp_path / "ran"
    hostile_pickle(tmp_path / "p" / "denoiser" / "model.safetensors", marker)
    with pytest.raises(WeightsError, match=r"denoiser/model\.safetensors: cannot read safetensors weights"):
        NeuralAssetsPipeline.from_pretrained(tmp_path / "p")
    assert not marker.exists()


def test_sam_pth_with_a_pickled_object_is_refused(tmp_path):
    from neuralassets.perception.sam import load_sam

    marker = tmp_path / "ran"
    path = hostile_pickle(tmp_path / "sam_vit_b.pth", marker)
    with pytest.raises(WeightsError, match=r"sam_vit_b\.pth: refused: it holds a pickled Python object \(\S*open\)"):
        load_sam(path)
    assert not marker.exists()


def test_pretrained_vae_folder_with_a_hostile_bin_is_refused(tmp_path):
    """Third-party diffusers folders are read by diffusers with weights_only=True."""
    from diffusers import AutoencoderKL

    from neuralassets.models import AutoencoderConfig
    from neuralassets.models.autoencoder import build_autoencoder

    AutoencoderKL(block_out_channels=(8,), down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
                  norm_num_groups=4, latent_channels=4).save_pretrained(tmp_path / "vae")
    (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    marker = tmp_path / "ran"
    hostile_pickle(tmp_path / "vae" / "diffusion_pytorch_model.bin", marker)
    with pytest.raises(WeightsError, match="autoencoder.pretrained: cannot load an autoencoder"):
        build_autoencoder(AutoencoderConfig(pretrained=str(tmp_path / "vae")))
    assert not marker.exists()


def test_newer_pipeline_and_checkpoint_versions_are_refused(tmp_path):
    from neuralassets.training.checkpoint import load_checkpoint, save_checkpoint

    tiny_pipeline().save_pretrained(tmp_path / "p")
    index_path = tmp_path / "p" / "model_index.json"
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**index, "format_version": 2}))
    with pytest.raises(WeightsError, match=r"model_index\.json: format_version 2, expected 1"):
        NeuralAssetsPipeline.from_pretrained(tmp_path / "p")
    path = save_checkpoint(tmp_path / "ckpt", 1, {"w": torch.ones(2)}, {}, keep=1)
    save_file({"w": torch.ones(2)}, str(path), metadata={"format": "neuralassets-checkpoint", "version": "2", "meta": "{}"})
    with pytest.raises(WeightsError, match="not a neuralassets-checkpoint version 1 file .*version '2'"):
        load_checkpoint(path)


def test_weights_config_of_another_size_names_the_tensor(tmp_path):
    tiny_pipeline().save_pretrained(tmp_path / "p")
    config_path = tmp_path / "p" / "denoiser" / "config.json"
    config = json.loads(config_path.read_text())
    config["model_config"]["num_layers"] += 1  # the stored diffusers config is what builds the network
    config_path.write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"denoiser/model\.safetensors: weights do not match the config: missing tensor"):
        NeuralAssetsPipeline.from_pretrained(tmp_path / "p")


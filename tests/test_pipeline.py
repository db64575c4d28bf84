"""NeuralAssetsPipeline: determinism, save/load, weights errors and settings validation (tiny random model)."""
import copy
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_models import TINY, one_thread, tiny_pipeline  # noqa: F401 (one_thread: autouse fixture)

from neuralassets import edits as E
from neuralassets.conditioning import conditioning_from_scene
from neuralassets.errors import ValidationError, WeightsError
from neuralassets.pipelines import NeuralAssetsPipeline
from neuralassets.pipelines import neural_assets as module


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_same_seed_same_image_and_output_types(simple_scene):
    pipe = tiny_pipeline()
    a = pipe(simple_scene, target_frame=2, generator=seeded(5)).images
    assert a.shape == (1, 3, 24, 32) and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1  # the scene's size
    assert torch.equal(a, pipe(simple_scene, target_frame=-1, generator=seeded(5)).images)
    assert not torch.equal(a, pipe(simple_scene, target_frame=2, generator=seeded(6)).images)
    arr = pipe(simple_scene, generator=seeded(5), output_type="np").images
    assert arr.shape == (1, 24, 32, 3) and arr.dtype == np.uint8
    assert np.array_equal(arr[0], (a[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    pil = pipe(simple_scene, generator=seeded(5), output_type="pil").images
    assert pil[0].size == (32, 24) and pil[0].mode == "RGB"


def test_fixed_initial_noise_equals_seeded_noise(simple_scene):
    pipe = tiny_pipeline()
    noise = torch.randn(1, 4, 16, 16, generator=seeded(9))
    assert torch.equal(pipe(simple_scene, latents=noise).images, pipe(simple_scene, generator=seeded(9)).images)


def test_scenes_render_as_a_batch_like_one_by_one(simple_scene):
    from neuralassets.data import GeneratorConfig, generate_scene

    pipe = tiny_pipeline()
    static_scene = simple_scene.replace(cameras=[copy.deepcopy(simple_scene.cameras[0]) for _ in simple_scene.cameras])
    noise = torch.randn(2, 4, 16, 16, generator=seeded(3))
    both = pipe([simple_scene, static_scene], target_frame=2, source_frame=0, latents=noise).images
    assert both.shape == (2, 3, 24, 32)
    for k, scene in enumerate((simple_scene, static_scene)):
        assert torch.allclose(both[k], pipe(scene, target_frame=2, source_frame=0, latents=noise[k:k + 1]).images[0], atol=1e-5)
    with pytest.raises(ValidationError, match=r"scene: a batch of scenes must share one size, got \[\(24, 32\), \(32, 32\)\]"):
        pipe([simple_scene, generate_scene(0, GeneratorConfig(num_frames=3, image_size=32, max_objects=3))], target_frame=2)
    with pytest.raises(ValidationError, match="scene: an empty list"):
        pipe([])


def test_render_batches_like_single_calls(simple_scene):
    pipe = tiny_pipeline()
    conds = [conditioning_from_scene(simple_scene, t, 3) for t in (0, 2)]
    noise = torch.randn(2, 4, 16, 16, generator=seeded(1))
    from neuralassets.conditioning import Conditioning

    both = pipe.render(Conditioning.collate(conds), latents=noise)
    one = pipe.render(conds[1], latents=noise[1:])
    assert both.shape == (2, 3, 32, 32)
    assert torch.allclose(both[1:], one, atol=1e-5)


def test_save_load_bit_identical(tmp_path, simple_scene):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["format_version"] == 1 and index["image_size"] == 32 and index["max_objects"] == 3
    assert index["scheduler"] == ["diffusers", "FlowMatchEulerDiscreteScheduler"]
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt"))
    loaded = NeuralAssetsPipeline.from_pretrained(tmp_path / "p")
    a = pipe(simple_scene, generator=seeded(2)).images
    assert torch.equal(a, loaded(simple_scene, generator=seeded(2)).images)
    # the vae folder is a plain diffusers AutoencoderKL folder
    from diffusers import AutoencoderKL

    loaded.vae = AutoencoderKL.from_pretrained(tmp_path / "p" / "vae")  # as a trainer's autoencoder.pretrained loads it
    assert loaded.vae.config.latent_channels == 4
    # saved again, the folder does not name the folder its parts were loaded from
    loaded.save_pretrained(tmp_path / "again")
    for name in ("vae/config.json", "scheduler/scheduler_config.json"):
        assert "_name_or_path" not in json.loads((tmp_path / "again" / name).read_text()), name
    assert str(tmp_path) not in "".join(p.read_text() for p in (tmp_path / "again").rglob("*.json"))


def test_sharded_weights_round_trip_and_missing_shard_is_named(tmp_path, simple_scene):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "p", max_shard_bytes=20_000)
    shards = sorted((tmp_path / "p" / "denoiser").glob("model-*-of-*.safetensors"))
    assert len(shards) > 1 and not (tmp_path / "p" / "denoiser" / "model.safetensors").exists()
    index = json.loads((tmp_path / "p" / "denoiser" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {s.name for s in shards}
    assert set(index["weight_map"]) == set(pipe.denoiser.state_dict())
    # every shard keeps to the limit unless it holds a single larger tensor
    for s in shards:
        tensors = load_file(str(s))
        assert len(tensors) == 1 or sum(t.numel() * t.element_size() for t in tensors.values()) <= 20_000
    loaded = NeuralAssetsPipeline.from_pretrained(tmp_path / "p")
    assert torch.equal(pipe(simple_scene, generator=seeded(2)).images, loaded(simple_scene, generator=seeded(2)).images)
    shards[1].unlink()
    with pytest.raises(WeightsError, match=f"{shards[1].name}: weights shard is missing"):
        NeuralAssetsPipeline.from_pretrained(tmp_path / "p")


def test_saving_over_a_folder_keeps_its_model_card_and_replaces_the_components(tmp_path):
    pipe, folder = tiny_pipeline(), tmp_path / "p"
    pipe.save_pretrained(folder, max_shard_bytes=20_000)
    (folder / "README.md").write_text("model card")
    (folder / "images").mkdir()
    (folder / "images" / "grid.png").write_bytes(b"png")
    pipe.save_pretrained(folder)
    assert (folder / "README.md").read_text() == "model card" and (folder / "images" / "grid.png").read_bytes() == b"png"
    assert sorted(f.name for f in (folder / "denoiser").iterdir()) == ["config.json", "model.safetensors"]  # old shards gone
    assert not (tmp_path / "p.tmp").exists() and not (tmp_path / "p.old").exists()


def test_replace_folder_never_leaves_half_a_folder(tmp_path):
    from neuralassets.pipelines.neural_assets import replace_folder

    folder, staged = tmp_path / "p", tmp_path / "p.tmp"
    folder.mkdir()
    (folder / "a").write_text("old")
    staged.mkdir()
    (staged / "a").write_text("new")
    replace_folder(staged, folder)
    assert (folder / "a").read_text() == "new" and not staged.exists() and not (tmp_path / "p.old").exists()
    with pytest.raises(FileNotFoundError):  # the staged folder is gone: the current one is kept whole, set aside
        replace_folder(tmp_path / "missing", folder)
    assert (tmp_path / "p.old" / "a").read_text() == "new"
    with pytest.raises(FileNotFoundError):  # failing again does not delete the only copy
        replace_folder(tmp_path / "missing", folder)
    assert (tmp_path / "p.old" / "a").read_text() == "new"
    staged.mkdir()
    (staged / "a").write_text("newer")
    replace_folder(staged, folder)
    assert (folder / "a").read_text() == "newer" and not (tmp_path / "p.old").exists()


def test_bf16_storage_upcasts_on_load(tmp_path, simple_scene):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "p", dtype=torch.bfloat16)
    stored = load_file(str(tmp_path / "p" / "denoiser" / "model.safetensors"))
    assert {v.dtype for v in stored.values()} == {torch.bfloat16}
    loaded = NeuralAssetsPipeline.from_pretrained(tmp_path / "p")
    assert all(p.dtype == torch.float32 for p in loaded.denoiser.parameters())
    a, b = pipe(simple_scene, generator=seeded(2)).images, loaded(simple_scene, generator=seeded(2)).images
    assert (a - b).abs().mean() < 0.05


def test_int8_storage_is_small_and_close(tmp_path, simple_scene):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "bf16", dtype=torch.bfloat16)
    pipe.save_pretrained(tmp_path / "int8", dtype=torch.int8)
    size = {k: sum(f.stat().st_size for f in (tmp_path / k).rglob("*.safetensors")) for k in ("bf16", "int8")}
    assert size["int8"] < 0.65 * size["bf16"]
    stored = load_file(str(tmp_path / "int8" / "denoiser" / "model.safetensors"))
    assert torch.int8 in {v.dtype for v in stored.values()}
    loaded = NeuralAssetsPipeline.from_pretrained(tmp_path / "int8")
    original = pipe.denoiser.state_dict()
    for name, value in loaded.denoiser.state_dict().items():
        assert value.dtype == torch.float32
        scale = stored.get(name + ".int8_scale")
        if scale is not None:  # per-row error at most half a quantisation step
            error = (value - original[name]).flatten(1).abs().amax(dim=1)
            assert torch.all(error <= scale * 0.5 + 1e-7), name
    a, b = pipe(simple_scene, generator=seeded(2)).images, loaded(simple_scene, generator=seeded(2)).images
    assert (a - b).abs().mean() < 0.05
    # scales without their tensor: a damaged file, named
    save_file({**stored, "ghost.int8_scale": torch.ones(2)}, str(tmp_path / "int8" / "denoiser" / "model.safetensors"))
    with pytest.raises(WeightsError, match="int8 scales for tensor 'ghost'"):
        NeuralAssetsPipeline.from_pretrained(tmp_path / "int8")


def test_mismatched_weights_name_the_tensor(tmp_path):
    tiny_pipeline().save_pretrained(tmp_path / "p")
    path = tmp_path / "p" / "asset_encoder" / "model.safetensors"
    tensors = load_file(str(path))
    tensors["null_tokens"] = torch.zeros(5, 32)
    save_file(tensors, str(path))
    with pytest.raises(WeightsError, match=r"null_tokens.*\(5, 32\).*\(2, 32\)"):
        NeuralAssetsPipeline.from_pretrained(tmp_path / "p")
    del tensors["null_tokens"]
    save_file(tensors, str(path))
    with pytest.raises(WeightsError, match="missing tensor.*null_tokens"):
        NeuralAssetsPipeline.from_pretrained(tmp_path / "p")
    path.write_bytes(b"truncated")
    with pytest.raises(WeightsError, match="cannot read"):
        NeuralAssetsPipeline.from_pretrained(tmp_path / "p")


def test_missing_default_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(module, "DEFAULT_WEIGHTS", tmp_path / "weights")
    with pytest.raises(WeightsError, match="neuralassets train --config configs/shipped/01_autoencoder.yaml"):
        NeuralAssetsPipeline.from_pretrained()
    with pytest.raises(WeightsError, match="model_index.json missing"):
        NeuralAssetsPipeline.from_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="no such pipeline folder"):
        NeuralAssetsPipeline.from_pretrained(tmp_path / "nothing" / "here")


@pytest.mark.parametrize("kwargs, match", [
    ({"num_inference_steps": 0}, "num_inference_steps"),
    ({"num_inference_steps": 2.5}, "num_inference_steps"),
    ({"guidance_scale": -1.0}, "guidance_scale"),
    ({"guidance_scale": float("nan")}, "guidance_scale"),
    ({"output_type": "jpeg"}, "output_type"),
    ({"target_frame": 3}, "target_frame"),
    ({"latents": torch.zeros(1, 4, 8, 8)}, "latents"),
])
def test_invalid_settings_raise_validation_errors(simple_scene, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        tiny_pipeline()(simple_scene, **kwargs)


def test_too_many_slots_rejected(simple_scene):
    cond = conditioning_from_scene(simple_scene, 1, TINY.max_objects + 1)
    with pytest.raises(ValidationError, match="object slots"):
        tiny_pipeline().render(cond)


def test_callback_reports_every_denoising_step(simple_scene):
    pipe = tiny_pipeline()
    steps = []
    silent = pipe(simple_scene, num_inference_steps=4, generator=seeded(1)).images
    reported = pipe(simple_scene, num_inference_steps=4, generator=seeded(1), callback=lambda k, n: steps.append((k, n))).images
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert torch.equal(silent, reported)  # reporting does not change the render


def test_the_shipped_weights_load_and_the_code_defaults_are_the_shipped_model():
    """The folder written before the parts became ConfigMixin models still loads; every default is the shipped model."""
    from neuralassets.config import config_arguments, diffusers_config
    from neuralassets.models import AssetEncoder, Denoiser, ModelConfig
    from neuralassets.models.autoencoder import build_autoencoder
    from neuralassets.models.scheduler import build_scheduler

    folder = module.DEFAULT_WEIGHTS
    index = json.loads((folder / "model_index.json").read_text())
    saved = {name: json.loads((folder / name / "config.json").read_text()) for name in ("asset_encoder", "denoiser", "vae")}
    pipe = NeuralAssetsPipeline.from_pretrained()
    defaults = ModelConfig()
    assert (defaults.image_size, defaults.max_objects, defaults.num_inference_steps, defaults.guidance_scale) == (
        index["image_size"], index["max_objects"], index["num_inference_steps"], index["guidance_scale"]) == (128, 10, 3, 1.0)
    assert pipe.config.max_objects == 10 and pipe.config.num_inference_steps == 3 and pipe.config.guidance_scale == 1.0
    # the encoder's file names every argument; the code's defaults are those values
    assert set(saved["asset_encoder"]) == set(config_arguments(AssetEncoder))
    assert diffusers_config(AssetEncoder()) == diffusers_config(pipe.asset_encoder) == saved["asset_encoder"]
    # the denoiser's file predates the arguments the other parts decide; its own are the defaults
    denoiser = Denoiser()
    own = {k: v for k, v in saved["denoiser"].items() if k != "model_config"}
    assert own == {k: v for k, v in diffusers_config(denoiser).items() if k in own}
    assert diffusers_config(denoiser)["model_config"] == saved["denoiser"]["model_config"]
    # the autoencoder the default config builds has the shipped architecture (the scale is measured in training)
    vae, _ = build_autoencoder(defaults.autoencoder)
    assert {k: v for k, v in diffusers_config(vae).items() if k != "scaling_factor"} == {
        k: v for k, v in saved["vae"].items() if not k.startswith("_") and k != "scaling_factor"}
    shipped_scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert {k: v for k, v in build_scheduler(defaults.scheduler).config.items() if not k.startswith("_")} == {
        k: v for k, v in shipped_scheduler.items() if not k.startswith("_")}


def test_a_saved_part_config_with_an_unknown_key_is_refused(tmp_path):
    tiny_pipeline().save_pretrained(tmp_path / "p")
    path = tmp_path / "p" / "asset_encoder" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "token_width": 3}))
    with pytest.raises(WeightsError, match=r"asset_encoder/config.json: unknown config key\(s\): AssetEncoder.token_width"):
        NeuralAssetsPipeline.from_pretrained(tmp_path / "p")


def test_a_scene_with_more_objects_than_slots_is_rendered_with_the_rest_folded_into_the_background(simple_scene):
    from neuralassets.perception import SlotWarning

    pipe = tiny_pipeline()
    crowded = simple_scene.copy()
    for k in range(pipe.config.max_objects):  # copies of object 2 beside it: more objects than slots
        extra = crowded.asset(2).copy()
        extra.id = 10 + k
        extra.centers = extra.centers + torch.tensor([0.6 * (k + 1), 0.0, 0.0])
        crowded.assets.append(extra)
    moved = E.move(crowded, 1, (0.1, 0.0, 0.0), check_visibility="ignore")
    with pytest.warns(SlotWarning, match="object slots"):
        image = pipe(moved, generator=seeded(0)).images
    assert image.shape == (1, 3, 24, 32)
    with pytest.warns(SlotWarning):
        fitted = pipe.fit_to_slots(moved, 2)
    assert len(fitted) == pipe.config.max_objects and 1 in fitted.asset_ids  # the edited object stays
    assert len(moved) == pipe.config.max_objects + 2  # the user's scene is not changed

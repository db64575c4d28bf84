"""Trainer: configs, checkpoints, overfitting, exact resume and multi-process training (tiny models)."""
import dataclasses
import inspect
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from test_models import TINY, one_thread  # noqa: F401 (one_thread: autouse fixture)

from neuralassets.conditioning import Conditioning, conditioning_from_scene
from neuralassets.errors import ConfigError, WeightsError
from neuralassets.models import AssetEncoder, Denoiser, ModelConfig, build_components
from neuralassets.models.patch_autoencoder import PatchAutoencoder
from neuralassets.pipelines.surface_splatting import object_reference
from neuralassets.training import Trainer, load_config
from neuralassets.training.checkpoint import (
    ExponentialMovingAverage,
    flatten_optimizer_state,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    unflatten_optimizer_state,
)
from neuralassets.training.config import TrainConfig, merged, read_config_file
from neuralassets.training.data import ResumableBatchSampler, SampledLatentPairs, collate_latents
from neuralassets.training.objectives import ConditionalDenoiser, DecoderObjective, DiffusionObjective, object_weights
from neuralassets.training.trainer import learning_rate

ROOT = Path(__file__).resolve().parents[1]
TINY_YAML = ROOT / "configs" / "tiny.yaml"


def tiny_config(tmp_path, **overrides):
    return load_config(TINY_YAML, output_dir=str(tmp_path / "run"), **overrides)


def test_shipped_configs_load_as_small_overrides_of_one_base():
    stages = sorted((ROOT / "configs" / "shipped").glob("*.yaml"))
    assert [p.name[:2] for p in stages] == [f"{i:02d}" for i in range(1, 11)]  # every shipped stage, the last one included
    # what a stage inherits: the code's defaults with the base laid over them
    inherited = flat(merged(dataclasses.asdict(TrainConfig()), read_config_file(ROOT / "configs" / "base.yaml")))
    for parts, cls in ((("model", "asset_encoder"), AssetEncoder), (("model", "denoiser"), Denoiser)):
        inherited.update({(*parts, k): p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"})
    for path in [*stages, *sorted((ROOT / "configs" / "experiments").glob("*.yaml"))]:
        raw = yaml.safe_load(path.read_text())
        assert raw.pop("base") == "../base.yaml", path
        repeated = [".".join(k) for k, v in flat(raw).items() if k not in (("stage",), ("output_dir",))  # said for the reader
                    and k in inherited and inherited[k] == (tuple(v) if isinstance(inherited[k], tuple) else v)]
        assert not repeated, f"{path.name} repeats what it inherits: {repeated}"  # a stage is the keys that differ
        assert load_config(path).max_steps >= 1
    first, shipped = load_config(stages[0]), load_config(stages[9])
    noisy = load_config(ROOT / "configs" / "experiments" / "geometry_noise.yaml")
    assert first.stage == "autoencoder" and first.mixed_precision == "bf16" and first.optim.ema_decay == 0.999  # from the base
    assert shipped.stage == "denoiser" and shipped.init_from == "runs/decoder_reference/pipeline" and shipped.data.resident
    assert shipped.model == ModelConfig(autoencoder=replace(shipped.model.autoencoder,
                                                            pretrained="runs/decoder_reference/pipeline/vae"))
    # the geometry-noise experiment tunes the shipped weights folder's reference branch, the model as shipped
    assert noisy.stage == "decoder" and noisy.init_from == "weights" and noisy.reference_only and noisy.model == ModelConfig()


def flat(mapping: dict, prefix: tuple = ()) -> dict:
    """{(section, ..., key): value} of a nested mapping (the part configs' own dicts included)."""
    out = {}
    for key, value in mapping.items():
        out.update(flat(value, (*prefix, key)) if isinstance(value, dict) else {(*prefix, key): value})
    return out


def test_a_config_extends_its_base_key_by_key(tmp_path):
    (tmp_path / "base.yaml").write_text("max_steps: 50\nseed: 3\noptim:\n  lr: 0.5\n  batch_size: 8\n")
    (tmp_path / "stage.yaml").write_text("base: base.yaml\nmax_steps: 7\noptim:\n  lr: 0.25\n")
    config = load_config(tmp_path / "stage.yaml")
    assert (config.max_steps, config.seed, config.optim.lr, config.optim.batch_size) == (7, 3, 0.25, 8)
    (tmp_path / "base.yaml").write_text("base: stage.yaml\n")
    with pytest.raises(ConfigError, match="bases name each other in a circle"):
        load_config(tmp_path / "stage.yaml")
    (tmp_path / "stage.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml: cannot read config"):
        load_config(tmp_path / "stage.yaml")


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage: denoiser\noptim:\n  lrr: 0.1\nmodel:\n  denoiser:\n    widht: 3\n")
    with pytest.raises(ConfigError, match=r"optim\.lrr"):
        load_config(bad)
    bad.write_text("stage: diffusion\n")
    with pytest.raises(ConfigError, match="stage"):
        load_config(bad)
    bad.write_text("optim: [1, 2]\n")
    with pytest.raises(ConfigError, match="optim: expected a mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_shard_folders_concatenate_in_order(tmp_path):
    from neuralassets.data.pairs import ShardedPairDataset, write_shards
    from neuralassets.data.synthetic import GeneratorConfig
    from neuralassets.training.config import DataConfig
    from neuralassets.training.data import build_pair_dataset

    generator = GeneratorConfig(image_size=32, num_frames=4, min_objects=1, max_objects=2)
    first = write_shards(tmp_path / "a", "train", 3, 2, generator, 2, progress=False)
    second = write_shards(tmp_path / "b", "train", 2, 2, replace(generator, resize_probability=1.0), 2, 10,
                          progress=False)
    dataset, _ = build_pair_dataset(DataConfig(source="shards", shard_folder=[str(first), str(second)]), 2, 32)
    assert len(dataset) == 5
    assert torch.equal(dataset[4][1], ShardedPairDataset(second)[1][1])
    assert torch.equal(dataset[0][1], build_pair_dataset(DataConfig(source="shards", shard_folder=str(first)), 2, 32)[0][0][1])
    for folders in ([], [""], None):
        with pytest.raises(ConfigError, match="data.shard_folder"):
            tiny_config(tmp_path, data={"source": "shards", "shard_folder": folders})


def test_generated_pairs_take_generator_overrides_with_named_errors():
    from neuralassets.training.config import DataConfig
    from neuralassets.training.data import build_pair_dataset

    dataset, _ = build_pair_dataset(DataConfig(length=2, generator_config={"num_frames": 3, "max_objects": 4}), 6, 32)
    assert dataset.config.num_frames == 3 and dataset.config.image_size == 32 and dataset.config.max_objects == 4
    with pytest.raises(ConfigError, match=r"data\.generator_config\.wobble; valid keys of data\.generator_config: .*resize_range"):
        build_pair_dataset(DataConfig(generator_config={"wobble": 1}), 6, 32)
    with pytest.raises(ConfigError, match="resize_probability: expected 0..1, got 2"):
        build_pair_dataset(DataConfig(generator_config={"resize_probability": 2}), 6, 32)


def test_learning_rate_schedule(tmp_path):
    c = tiny_config(tmp_path, max_steps=105)  # lr 1e-3, warm-up 5, min ratio 0.1
    assert learning_rate(0, c) == pytest.approx(2e-4)
    assert learning_rate(4, c) == pytest.approx(1e-3)
    assert learning_rate(55, c) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert learning_rate(105, c) == pytest.approx(1e-4)


def test_batch_sampler_is_resumable_and_sharded():
    full = ResumableBatchSampler(10, 3, seed=1)
    first = [b for _, b in zip(range(8), full)]
    assert sorted(sum(first[:3], []) + [first[3][0]]) == list(range(10))  # each epoch is a permutation
    resumed = ResumableBatchSampler(10, 3, seed=1, start_batch=5)
    assert [b for _, b in zip(range(3), resumed)] == first[5:8]
    ranks = [ResumableBatchSampler(10, 3, seed=1, rank=r, world_size=2) for r in (0, 1)]
    assert next(iter(ranks[0])) + next(iter(ranks[1])) == first[0] + first[1]


def test_optimizer_state_round_trips_through_checkpoint(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    tensors, meta = flatten_optimizer_state(opt.state_dict())
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, tensors, {"optimizer": meta}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002.safetensors", "step_00000003.safetensors"]
    assert not list(tmp_path.glob("*.tmp"))
    loaded, loaded_meta = load_checkpoint(tmp_path / "step_00000003.safetensors")
    assert loaded_meta["step"] == 3
    opt2 = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.5)
    opt2.load_state_dict(unflatten_optimizer_state(loaded, loaded_meta["optimizer"]))
    assert opt2.param_groups[0]["lr"] == 0.1
    for a, b in zip(opt.state.values(), opt2.state.values()):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"]) and float(a["step"]) == float(b["step"])
    (tmp_path / "step_00000003.safetensors").write_bytes(b"x" * 20)
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "step_00000003.safetensors")


def test_ema_warms_up_then_uses_its_decay():
    module = torch.nn.Linear(1, 1, bias=False)
    module.weight.data.fill_(0.0)
    ema = ExponentialMovingAverage(module, decay=0.5)
    module.weight.data.fill_(11.0)
    ema.update(module)  # effective decay min(0.5, 2 / 11): 0 + (1 - 2/11) * 11 = 9
    assert ema.shadow["weight"].item() == pytest.approx(9.0)
    module.weight.data.fill_(1.0)
    ema.update(module)  # min(0.5, 3 / 12) = 0.25: 9 + 0.75 * (1 - 9) = 3
    assert ema.shadow["weight"].item() == pytest.approx(3.0)


def test_ema_averages_float_tensors_and_copies_integer_buffers():
    module = torch.nn.BatchNorm1d(2)  # float weights and running stats, a long num_batches_tracked
    ema = ExponentialMovingAverage(module, decay=0.5)
    module.weight.data.fill_(12.0)
    module.running_mean.fill_(-12.0)
    module.num_batches_tracked.fill_(7)
    for _ in range(3):  # effective decays 2/11, 3/12, 4/13 (all below 0.5)
        ema.update(module)
    expected_weight = 1 + (12 - 1) * (1 - (2 / 11) * (3 / 12) * (4 / 13))  # the weights start at 1
    assert ema.shadow["weight"].tolist() == pytest.approx([expected_weight] * 2)
    assert ema.shadow["running_mean"].tolist() == pytest.approx([-12 * (1 - (2 / 11) * (3 / 12) * (4 / 13))] * 2)
    assert ema.shadow["num_batches_tracked"].item() == 7


def test_ema_follows_its_module_to_another_device():
    module = torch.nn.Linear(2, 2)
    ema = ExponentialMovingAverage(module, decay=0.9)  # made on the CPU, as the trainer does before accelerate moves the model
    module.to("meta")
    ema.update(module)
    assert {t.device.type for t in ema.shadow.values()} == {"meta"}


def test_latent_cache_is_rebuilt_for_another_training_set(tmp_path):
    from neuralassets.data.pairs import FramePairDataset, collate_pairs
    from neuralassets.data.synthetic import GeneratorConfig

    generator = GeneratorConfig(image_size=32, num_frames=4, min_objects=1, max_objects=3)
    for length in (4, 6):  # same config and output folder, so only the pairs tell the two caches apart
        trainer = Trainer(tiny_config(tmp_path, max_steps=1), dataset=FramePairDataset("train", length, 4, generator),
                          collate_fn=collate_pairs)
        assert len(trainer.train_set) == length


class _ZeroModel(torch.nn.Module):
    def forward(self, noisy, timesteps, cond):
        return torch.zeros_like(noisy)


@pytest.mark.parametrize("object_weight", [1.0, 4.0])
def test_diffusion_loss_weights_cells_inside_object_boxes(simple_scene, object_weight):
    cond = Conditioning.collate([conditioning_from_scene(simple_scene, t, 3, source_frame=0) for t in (1, 2)])
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    objective = DiffusionObjective(build_components(TINY).scheduler, 0.0, object_loss_weight=object_weight)
    loss = objective(_ZeroModel(), latents, cond, torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)  # the objective's draws: drop decisions, then the noise
    torch.rand(2, generator=g)
    squared_error = (torch.randn(latents.shape, generator=g) - latents).square().mean(dim=1)  # zero model: target^2
    weights = object_weights(cond, (8, 8), object_weight)
    assert loss.item() == pytest.approx(((squared_error * weights).sum() / weights.sum()).item(), rel=1e-5)
    if object_weight == 1.0:
        assert loss.item() == pytest.approx(squared_error.mean().item(), rel=1e-5)
    else:
        assert weights.amax() > 2 and weights.amin() == 1.0  # cells inside boxes and cells outside every box


def test_object_weights_follow_boxes_of_real_objects_only():
    cond = Conditioning(
        appearance_images=torch.zeros(1, 1, 3, 8, 8), appearance_depths=torch.zeros(1, 1, 8, 8),
        appearance_slots=torch.full((1, 1, 8, 8), -1, dtype=torch.int16), object_image_index=torch.zeros(1, 2, dtype=torch.long),
        object_boxes=torch.zeros(1, 2, 4), object_poses=torch.zeros(1, 2, 12),
        object_target_boxes=torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]]),
        object_source_poses=torch.zeros(1, 2, 12),
        object_mask=torch.tensor([[True, False]]), background_image=torch.zeros(1, 3, 8, 8),
        camera_pose=torch.zeros(1, 12))
    weights = object_weights(cond, (4, 4), 3.0)
    expected = torch.ones(1, 4, 4)
    expected[0, :2, :2] = 3.0  # the padded second object's box adds nothing
    assert torch.equal(weights, expected)


def test_geometry_noise_is_off_unless_a_config_asks_for_it(tmp_path):
    from neuralassets.data.perturbations import GeometryNoise

    assert all(load_config(path).data.geometry_noise is None for path in (ROOT / "configs" / "shipped").glob("*.yaml"))
    (tmp_path / "null.yaml").write_text(f"base: {TINY_YAML}\ndata:\n  geometry_noise: null\n")
    assert load_config(tmp_path / "null.yaml", output_dir=str(tmp_path / "run")) == tiny_config(tmp_path)
    (tmp_path / "noisy.yaml").write_text(f"base: {TINY_YAML}\ndata:\n  geometry_noise:\n    depth_scale: [0.9, 1.1]\n"
                                         "    box_yaw: 10\n")
    assert load_config(tmp_path / "noisy.yaml").data.geometry_noise == GeometryNoise(depth_scale=(0.9, 1.1), box_yaw=10)
    (tmp_path / "bad.yaml").write_text(f"base: {TINY_YAML}\ndata:\n  geometry_noise:\n    depth_scale: [1.2, 1.1]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: geometry_noise\.depth_scale: expected a range"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "shards.yaml").write_text(f"base: {TINY_YAML}\ndata:\n  source: shards\n  shard_folder: pairs\n"
                                          "  geometry_noise: {box_yaw: 10}\n")
    with pytest.raises(ConfigError, match="data.geometry_noise: shards hold the geometry they were made with"):
        load_config(tmp_path / "shards.yaml")


def test_a_tiny_denoiser_trains_on_noisy_geometry_against_the_exact_targets(tmp_path):
    from neuralassets.data.perturbations import GeometryNoise

    noise = GeometryNoise(depth_scale=(0.85, 1.15), depth_blur=(0.0, 2.0), depth_noise=0.05, mask=(-2, 2), box_center=0.1,
                          box_size=0.1, box_yaw=15.0)
    config = tiny_config(tmp_path / "exact", max_steps=3, log_every=1, checkpoint_every=100)
    exact = Trainer(config)
    noisy = Trainer(replace(config, output_dir=str(tmp_path / "noisy"), data=replace(config.data, geometry_noise=noise)))
    assert torch.equal(noisy.train_set.latents, exact.train_set.latents)  # the same targets, cached alike
    assert not torch.equal(noisy.train_set[0][0].object_poses, exact.train_set[0][0].object_poses)
    assert torch.equal(noisy.train_set[0][0].appearance_images, exact.train_set[0][0].appearance_images)
    losses = noisy.train()
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    assert (tmp_path / "noisy" / "pipeline" / "model_index.json").is_file()


def test_object_loss_weight_must_be_positive(tmp_path):
    config = tiny_config(tmp_path)
    with pytest.raises(ConfigError, match=r"optim\.object_loss_weight: 0.0 must be > 0"):
        replace(config, optim=replace(config.optim, object_loss_weight=0.0))


def test_tiny_denoiser_overfits_a_fixed_batch(simple_scene):
    torch.manual_seed(0)
    c = build_components(replace(TINY, asset_encoder={**TINY.asset_encoder, "spatial_channels": 0}))
    model = ConditionalDenoiser(c.asset_encoder, c.denoiser)
    objective = DiffusionObjective(c.scheduler, cfg_drop_prob=0.0)
    from neuralassets.conditioning import Conditioning

    cond = Conditioning.collate([conditioning_from_scene(simple_scene, t, 3, source_frame=0) for t in (1, 2)])
    latents = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    losses = []
    for _ in range(250):
        loss = objective(model, latents, cond, torch.Generator().manual_seed(2))  # same noise and level: a fixed batch
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


def test_time_limit_ends_the_schedule_at_the_last_step_that_fits(tmp_path, monkeypatch):
    import neuralassets.training.trainer as trainer_module

    clock = [0.0]  # every training step takes one second of this clock
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: clock[0])
    trainer = Trainer(tiny_config(tmp_path, max_steps=100, checkpoint_every=1000))
    loss = trainer.stage.loss

    def one_second_step(*args):
        clock[0] += 1.0
        return loss(*args)

    monkeypatch.setattr(trainer.stage, "loss", one_second_step)
    with pytest.raises(ConfigError, match="time_limit: 0 must be > 0 seconds"):
        trainer.train(time_limit=0)
    losses = trainer.train(time_limit=30.5)
    # timed from the end of step 1: after step 11, 19.5 s are left at 1 s per step
    assert len(losses) == 30 and trainer.step == 30 and trainer.config.max_steps == 30
    assert learning_rate(29, trainer.config) == pytest.approx(1e-3 * trainer.config.optim.min_lr_ratio, rel=0.05)  # decayed
    records = [json.loads(line) for line in trainer.log_path.read_text().splitlines()]
    fitted = [r for r in records if "time_limit_s" in r]
    assert len(fitted) == 1 and {"step": 11, "time_limit_s": 30.5, "s_per_step": 1.0, "max_steps": 30}.items() <= fitted[0].items()
    _, meta = load_checkpoint(list_checkpoints(trainer.config.checkpoints)[-1])
    assert meta["step"] == 30 and meta["config"]["max_steps"] == 30
    assert (tmp_path / "run" / "pipeline" / "model_index.json").is_file()


def test_a_time_limit_that_suffices_changes_nothing(tmp_path):
    limited = Trainer(tiny_config(tmp_path / "a", max_steps=14))
    assert limited.train(time_limit=3600) == pytest.approx(Trainer(tiny_config(tmp_path / "b", max_steps=14)).train())
    assert limited.config.max_steps == 14


def test_trainers_of_both_precisions_run_in_one_process(tmp_path):
    bf16 = Trainer(tiny_config(tmp_path / "bf16", max_steps=2, mixed_precision="bf16"))
    with bf16._autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert len(bf16.train()) == 2
    full = Trainer(tiny_config(tmp_path / "fp32", max_steps=2))
    with full._autocast():
        assert not torch.is_autocast_enabled("cpu")
    assert len(full.train()) == 2
    # samples and exports render in the precision the run trained in
    assert bf16.pipeline().autocast_dtype == torch.bfloat16 and full.pipeline().autocast_dtype is None


def test_trainer_resume_reproduces_uninterrupted_run(tmp_path):
    full = Trainer(tiny_config(tmp_path / "a", max_steps=6, log_every=1, checkpoint_every=3))
    losses = full.train()
    assert len(losses) == 6
    part = Trainer(tiny_config(tmp_path / "b", max_steps=3, log_every=1, checkpoint_every=3))
    assert part.train() == pytest.approx(losses[:3], rel=1e-6)
    resumed = Trainer(tiny_config(tmp_path / "b", max_steps=6, log_every=1, checkpoint_every=3))
    assert resumed.step == 3
    assert resumed.train() == pytest.approx(losses[3:], rel=1e-5, abs=1e-6)
    run = tmp_path / "b" / "run"
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert (run / "loss.png").is_file() and (run / "samples" / "step_00000006.png").is_file()
    from neuralassets.pipelines import NeuralAssetsPipeline

    pipe = NeuralAssetsPipeline.from_pretrained(run / "pipeline")
    assert pipe.render(full.pairs[0][0], generator=torch.Generator().manual_seed(0)).shape == (1, 3, 32, 32)
    # a weights-only start takes the weights, not the step or the optimiser
    fresh = Trainer(tiny_config(tmp_path / "c", max_steps=1, init_from=str(run / "pipeline")))
    assert fresh.step == 0 and not fresh.optimizer.state
    ema = fresh.ema.shadow["denoiser.model.proj_out.weight"]
    assert torch.equal(ema, pipe.denoiser.state_dict()["model.proj_out.weight"])


def test_stop_at_pauses_a_run_on_its_own_schedule(tmp_path):
    full = Trainer(tiny_config(tmp_path / "a", max_steps=9, log_every=1, checkpoint_every=100))
    losses = full.train()
    paused = Trainer(tiny_config(tmp_path / "b", max_steps=9, log_every=1, checkpoint_every=100))
    # steps 6 and 7 run on the 9-step cosine (a 7-step run would be at its floor LR by step 7)
    assert paused.train(stop_at=7) == pytest.approx(losses[:7], rel=1e-6)
    run = tmp_path / "b" / "run"
    assert [p.name for p in (run / "checkpoints").glob("*.safetensors")] == ["step_00000007.safetensors"]
    assert (run / "pipeline" / "model_index.json").is_file()
    resumed = Trainer(tiny_config(tmp_path / "b", max_steps=9, log_every=1, checkpoint_every=100))
    assert resumed.step == 7
    assert resumed.train() == pytest.approx(losses[7:], rel=1e-5, abs=1e-6)
    for name, value in full.model.state_dict().items():
        assert torch.allclose(value, resumed.model.state_dict()[name], atol=1e-6), name


def test_a_resident_training_set_gives_the_loaders_batches_and_run(tmp_path):
    loaded = Trainer(tiny_config(tmp_path / "a", max_steps=4, log_every=1, checkpoint_every=100))
    losses = loaded.train()
    config = tiny_config(tmp_path / "b", max_steps=4, log_every=1, checkpoint_every=100)
    resident = Trainer(replace(config, data=replace(config.data, resident=True)))
    assert resident.train(stop_at=2) == pytest.approx(losses[:2], rel=1e-6)
    held = resident.resident
    assert len(held) == 16 and torch.equal(held.latents, loaded.train_set.latents)
    assert resident.train() == pytest.approx(losses[2:], rel=1e-5, abs=1e-6)
    assert resident.resident is held  # read once, kept across train() calls
    for name, value in loaded.model.state_dict().items():
        assert torch.allclose(value, resident.model.state_dict()[name], atol=1e-6), name
    batch, latents = next(held.batches([[5, 2]]))
    expected, expected_latents = collate_latents([loaded.train_set[5], loaded.train_set[2]])
    assert torch.equal(latents, expected_latents)
    for f in dataclasses.fields(Conditioning):
        assert torch.equal(getattr(batch, f.name), getattr(expected, f.name)), f.name
    autoencoder = tiny_config(tmp_path / "c", stage="autoencoder")
    with pytest.raises(ConfigError, match="data.resident: only the denoiser stage .* not 'autoencoder'"):
        replace(autoencoder, data=replace(autoencoder.data, resident=True))


def test_decoder_stage_tunes_only_the_decoder_on_the_pipelines_own_samples(tmp_path, monkeypatch):
    from neuralassets.pipelines import NeuralAssetsPipeline

    Trainer(tiny_config(tmp_path / "base", max_steps=2, checkpoint_every=100)).train()
    init = tmp_path / "base" / "run" / "pipeline"
    config = tiny_config(tmp_path / "dec", stage="decoder", init_from=str(init), max_steps=4, log_every=1, checkpoint_every=100)
    config = replace(config, data=replace(config.data, sampled_pairs=6))
    trainer = Trainer(config)
    assert trainer.train_set.indices == [0, 3, 6, 9, 12, 15]  # evenly spaced over the 16 pairs
    before = NeuralAssetsPipeline.from_pretrained(init)
    cond, _ = trainer.collate([trainer.pairs[i] for i in trainer.train_set.indices])
    expected = before.sample_latents(cond, generator=torch.Generator().manual_seed(0)) / before.vae.config.scaling_factor
    assert torch.allclose(trainer.train_set.latents, expected, atol=1e-5)  # one batch of 16 holds all six
    (_, reference), target = trainer.train_set[1]
    assert reference.shape == (0, *target.shape[-2:])  # a decoder without a reference branch gets none
    assert SampledLatentPairs(trainer.pairs, [3], expected[1:2])[0][0][1].shape == (4, *target.shape[-2:])
    losses = trainer.train()
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    after = NeuralAssetsPipeline.from_pretrained(tmp_path / "dec" / "run" / "pipeline")
    for part in ("asset_encoder", "denoiser"):
        for name, value in getattr(before, part).state_dict().items():
            assert torch.equal(value, getattr(after, part).state_dict()[name]), (part, name)
    old_vae, new_vae = before.vae.state_dict(), after.vae.state_dict()
    assert all(torch.equal(old_vae[k], new_vae[k]) for k in old_vae if k.startswith("encoder."))
    assert any(not torch.equal(old_vae[k], new_vae[k]) for k in old_vae if k.startswith("decoder."))
    # a second run over the same weights and pairs reads the cached samples instead of sampling again
    monkeypatch.setattr(NeuralAssetsPipeline, "sample_latents", lambda *a, **k: pytest.fail("sampled again"))
    again = Trainer(replace(config, output_dir=str(tmp_path / "dec" / "run"), max_steps=5))
    assert torch.equal(again.train_set.latents, trainer.train_set.latents)


def test_decoder_objective_decodes_encoder_latents_for_its_share_of_the_batch():
    torch.manual_seed(0)
    vae = build_components(TINY).vae
    images = torch.rand(4, 3, 32, 32)
    sampled = torch.randn(4, *vae.encode(images * 2 - 1).latent_dist.mode().shape[1:])
    with torch.no_grad():
        all_encoded = DecoderObjective(vae, 1.0)
        assert all_encoded(sampled, images) == all_encoded(torch.zeros_like(sampled), images)  # samples unused
        expected = (vae.decode(sampled).sample - (images * 2 - 1)).abs().mean()
        assert torch.allclose(DecoderObjective(vae, 0.0)(sampled, images), expected)
        half = DecoderObjective(vae, 0.5)(sampled, images)
        encoded = vae.encode(images[:2] * 2 - 1).latent_dist.mode()
        by_hand = (vae.decode(torch.cat([encoded, sampled[2:]])).sample - (images * 2 - 1)).abs().mean()
        assert torch.allclose(half, by_hand)
    assert not any(p.requires_grad for p in vae.encoder.parameters())


def test_decoder_objective_gives_the_samples_their_references_and_the_encoder_latents_none():
    torch.manual_seed(0)
    vae = PatchAutoencoder(latent_channels=4, width=16, num_blocks=1, reference_channels=4)
    with torch.no_grad():
        vae.reference_fine[1].weight.normal_(0, 0.1)
    images, references = torch.rand(4, 3, 32, 32), torch.randn(4, 4, 32, 32)
    sampled = torch.randn(4, 4, 4, 4)
    with torch.no_grad():
        loss = DecoderObjective(vae, 0.5)(sampled, images, references)
        encoded = vae.encode(images[:2] * 2 - 1).latent_dist.mode()
        decoded = torch.cat([vae.decode(encoded).sample, vae.decode(sampled[2:], reference=references[2:]).sample])
        error = (decoded - (images * 2 - 1)).abs()
        assert torch.allclose(loss, error.mean(), atol=1e-6)
        assert not torch.allclose(loss, DecoderObjective(vae, 0.5)(sampled, images))
        references[:, 3] = 0
        references[:, 3, :8] = 1  # the top quarter of every image is inside an object box
        weighted = DecoderObjective(vae, 0.5, object_loss_weight=3.0)(sampled, images, references)
        decoded = torch.cat([vae.decode(encoded).sample, vae.decode(sampled[2:], reference=references[2:]).sample])
        error = (decoded - (images * 2 - 1)).abs().mean(dim=1)
        by_hand = (3 * error[:, :8].sum() + error[:, 8:].sum()) / (3 * 8 * 32 + 24 * 32) / 4
        assert torch.allclose(weighted, by_hand, atol=1e-6)


def test_decoder_stage_adds_a_reference_branch_to_a_trained_decoder(tmp_path):
    from neuralassets.models import AutoencoderConfig
    from neuralassets.pipelines import NeuralAssetsPipeline

    patch = AutoencoderConfig(kind="patch", latent_channels=4, width=16, num_blocks=1, reference_channels=0)
    base = tiny_config(tmp_path / "base", max_steps=2, checkpoint_every=100)
    Trainer(replace(base, model=replace(base.model, autoencoder=patch))).train()
    init = tmp_path / "base" / "run" / "pipeline"
    before = NeuralAssetsPipeline.from_pretrained(init)
    config = tiny_config(tmp_path / "dec", stage="decoder", init_from=str(init), max_steps=3, checkpoint_every=100)
    config = replace(config, data=replace(config.data, sampled_pairs=4),
                     model=replace(config.model, autoencoder=replace(patch, reference_channels=4)))
    trainer = Trainer(config)
    assert trainer.components.vae.config.scaling_factor == before.vae.config.scaling_factor  # the init pipeline's scale
    (latent, reference), target = trainer.train_set[1]
    cond, expected_target = trainer.pairs[trainer.train_set.indices[1]]
    assert torch.equal(reference, object_reference(cond, (32, 32))[0]) and torch.equal(target, expected_target)
    trainer.train()
    after = NeuralAssetsPipeline.from_pretrained(tmp_path / "dec" / "run" / "pipeline")
    assert after.uses_reference and after.vae.reference_fine[1].weight.abs().sum() > 0  # the branch learnt
    old_vae = before.vae.state_dict()
    assert all(torch.equal(v, after.vae.state_dict()[k]) for k, v in old_vae.items() if k.startswith("encoder."))
    assert any(not torch.equal(v, after.vae.state_dict()[k]) for k, v in old_vae.items() if k.startswith("decoder."))
    # reference_only: the branch learns and every weight the decoder had stays as it was
    only = replace(config, output_dir=str(tmp_path / "only" / "run"), reference_only=True)
    Trainer(only).train()
    branch_only = NeuralAssetsPipeline.from_pretrained(tmp_path / "only" / "run" / "pipeline")
    assert all(torch.equal(v, branch_only.vae.state_dict()[k]) for k, v in old_vae.items())
    assert branch_only.vae.reference_fine[1].weight.abs().sum() > 0
    with pytest.raises(ConfigError, match="reference_only: trains a decoder's reference branch, so it needs stage: decoder"):
        replace(only, model=replace(only.model, autoencoder=patch))


def test_decoder_stage_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="init_from: the decoder stage fine-tunes a trained pipeline"):
        tiny_config(tmp_path, stage="decoder")
    config = tiny_config(tmp_path)
    with pytest.raises(ConfigError, match=r"optim.encoder_latent_fraction: 1.5 is not in \[0, 1\]"):
        replace(config, optim=replace(config.optim, encoder_latent_fraction=1.5))
    with pytest.raises(ConfigError, match="data.sampled_pairs: 0 must be >= 1"):
        replace(config, data=replace(config.data, sampled_pairs=0))


def test_autoencoder_stage_exports_a_scaled_vae(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, stage="autoencoder", max_steps=2, checkpoint_every=2))
    trainer.train()
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tmp_path / "run" / "autoencoder")
    assert vae.config.scaling_factor != 1.0 and vae.config.latent_channels == 4
    with pytest.raises(WeightsError, match="'autoencoder' checkpoint cannot resume the 'denoiser'"):
        Trainer(tiny_config(tmp_path, max_steps=2))


@pytest.mark.parametrize("kind", ["kl", "patch"])
def test_decoder_only_training_keeps_the_latent_space(tmp_path, kind):
    config = tiny_config(tmp_path, stage="autoencoder", max_steps=2, checkpoint_every=2, freeze_encoder=True)
    if kind == "patch":
        vae = replace(config.model.autoencoder, kind="patch", width=32, num_blocks=1, reference_channels=0)
        config = replace(config, model=replace(config.model, autoencoder=vae))
    trainer = Trainer(config)
    before = {k: v.clone() for k, v in trainer.components.vae.state_dict().items()}
    trainer.train()
    after = trainer.components.vae.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == ({"decoder", "post_quant_conv"} if kind == "kl" else {"decoder"})


def test_cli_trains_and_resumes(tmp_path):
    from neuralassets.cli import main

    out = str(tmp_path / "cli")
    assert main(["train", "--config", str(TINY_YAML), "--output-dir", out, "--max-steps", "2"]) == 0
    assert [p.name for p in list_checkpoints(Path(out) / "checkpoints")] == ["step_00000002.safetensors"]
    assert main(["train", "--config", str(TINY_YAML), "--output-dir", out, "--max-steps", "3", "--time-limit", "3600"]) == 0
    assert list_checkpoints(Path(out) / "checkpoints")[-1].name == "step_00000003.safetensors"
    assert main(["train", "--config", str(TINY_YAML), "--output-dir", str(tmp_path / "none"), "--resume"]) == 2


@pytest.mark.slow
def test_accelerate_launch_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}  # torchrun processes joined by gloo
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "neuralassets.cli", "train", "--config", str(TINY_YAML),
           "--output-dir", str(tmp_path / "run"), "--max-steps", "4"]
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    checkpoints = [r for r in records if "checkpoint" in r]
    assert [r["step"] for r in checkpoints] == [4] and checkpoints[0]["ranks_in_sync"] is True  # written once
    _, meta = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000004.safetensors")
    assert meta["world_size"] == 2

"""The paper's configuration (configs/paper/movi_e.yaml): its numbers, and a dry run of its code path with tiny random
models of the same classes (SD's AutoencoderKL and UNet2DConditionModel layouts, a DINO ViTModel) on MOVi-E shards."""
import dataclasses
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from benchmark_scripts import load_benchmark
from dataset_fixtures import movi_example, write_tfrecord
from test_models import one_thread  # noqa: F401 (autouse fixture)
from test_training import ROOT, flat

from neuralassets.cli import main
from neuralassets.models import AssetEncoder, Denoiser
from neuralassets.training import Trainer, load_config
from neuralassets.training.checkpoint import list_checkpoints, load_checkpoint
from neuralassets.training.config import TrainConfig, merged, read_config_file

PAPER = ROOT / "configs" / "paper" / "movi_e.yaml"


def test_the_paper_config_holds_the_papers_numbers_as_a_small_override():
    config = load_config(PAPER)
    m, e = config.model, config.model.asset_encoder
    assert (m.image_size, m.max_objects, m.denoiser["kind"], m.scheduler.kind) == (256, 23, "unet", "ddim")
    assert (m.scheduler.beta_start, m.scheduler.beta_end, m.scheduler.prediction_type, m.scheduler.num_train_timesteps) \
        == (0.00085, 0.012, "epsilon", 1000)
    assert (e["backbone"], e["token_dim"], e["hidden_dim"], e["pose_frequencies"], e["spatial_channels"]) == ("dino", 1024, 512, 0, 0)
    roi = e.get("roi_size", 2)
    assert e["num_null_tokens"] + (1 + m.max_objects) * roi**2 == 96  # 4 tokens per object, 23 objects and the background
    assert config.optim.cfg_drop_prob == 0.1 and config.mixed_precision == "bf16" and config.data.source == "shards"
    assert config.optim.batch_size * config.optim.grad_accum_steps * 8 == 256
    inherited = flat(merged(dataclasses.asdict(TrainConfig()), read_config_file(ROOT / "configs" / "base.yaml")))
    for parts, cls in ((("model", "asset_encoder"), AssetEncoder), (("model", "denoiser"), Denoiser)):
        inherited.update({(*parts, k): p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"})
    raw = yaml.safe_load(PAPER.read_text())
    assert raw.pop("base") == "../base.yaml"
    repeated = [k for k, v in flat(raw).items() if k not in (("stage",), ("output_dir",)) and inherited.get(k, object()) == v]
    assert not repeated, f"repeats what base.yaml or the defaults give: {repeated}"


def write_tiny_paper_models(folder: Path) -> Path:
    """Random tiny models of the paper's classes and layouts: SD 2.1's VAE (4 blocks, factor 8) and UNet (three cross-
    attention down blocks and one plain, linear projections, 1024-d cross-attention), a DINO ViT (patch 8, no pooler)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                  block_out_channels=(8, 16, 16, 16), latent_channels=4, norm_num_groups=8,
                  scaling_factor=0.18215).save_pretrained(folder / "sd" / "vae")
    UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                         down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                         up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, block_out_channels=(16, 16, 32, 32),
                         attention_head_dim=(2, 2, 4, 4), use_linear_projection=True, cross_attention_dim=1024,
                         norm_num_groups=8).save_pretrained(folder / "sd" / "unet")
    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, patch_size=8,
                       image_size=32), add_pooling_layer=False).save_pretrained(folder / "dino")
    return folder


def tiny_paper_run(tmp_path: Path, max_steps: int = 2) -> Path:
    """MOVi-E shards and a config that names the paper's as its base and changes only sizes, folders and the run's length."""
    models = write_tiny_paper_models(tmp_path / "models")
    movi = tmp_path / "movi_e"
    movi.mkdir()
    write_tfrecord(movi / "movi_e-train.tfrecord-00000-of-00001", [movi_example(seed=s)[0] for s in range(2)])
    write_tfrecord(movi / "movi_e-validation.tfrecord-00000-of-00001", [movi_example(seed=7)[0]])
    assert main(["data", "make", "--from", "movi-e", str(movi), "--n", "4", "--out", str(tmp_path / "shards"),
                 "--image-size", "64", "--max-objects", "23", "--shard-size", "4"]) == 0
    override = {"base": str(PAPER), "output_dir": str(tmp_path / "run"), "max_steps": max_steps, "checkpoint_every": 1,
                "log_every": 1,
                "model": {"image_size": 64, "num_inference_steps": 2,
                          "autoencoder": {"pretrained": str(models / "sd" / "vae")},
                          "asset_encoder": {"backbone_path": str(models / "dino"), "dinov2_image_size": 32},
                          "denoiser": {"pretrained": str(models / "sd" / "unet")}},
                "data": {"shard_folder": str(tmp_path / "shards"), "num_workers": 0},
                "optim": {"batch_size": 2, "warmup_steps": 1}}
    path = tmp_path / "tiny_paper.yaml"
    path.write_text(yaml.safe_dump(override))
    return path


def test_the_paper_configuration_trains_resumes_and_benchmarks_with_tiny_models(tmp_path, capsys):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import ViTModel

    from neuralassets.pipelines import NeuralAssetsPipeline

    config_path = tiny_paper_run(tmp_path)
    trainer = Trainer(load_config(config_path))
    c = trainer.components
    assert isinstance(c.vae, AutoencoderKL) and isinstance(c.denoiser.model, UNet2DConditionModel)
    assert isinstance(c.asset_encoder.backbone.model, ViTModel) and isinstance(c.scheduler, DDIMScheduler)
    assert c.asset_encoder.num_tokens(23) == 96 and isinstance(c.denoiser.token_proj, torch.nn.Identity)  # 1024-d tokens
    assert trainer.config.optim.grad_accum_steps == 4 and trainer.config.mixed_precision == "bf16"
    losses = trainer.train()
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(p, q) for p, q in zip(c.asset_encoder.backbone.model.parameters(),
                                                    ViTModel.from_pretrained(tmp_path / "models" / "dino").parameters()))
    # resumable: a longer run of the same config continues from the last checkpoint
    resumed = Trainer(load_config(config_path, max_steps=3))
    assert resumed.step == 2 and len(resumed.train()) == 1
    pipeline = tmp_path / "run" / "pipeline"
    assert NeuralAssetsPipeline.from_pretrained(pipeline).config.max_objects == 23
    # one benchmark case end to end: a held-out clip, the trained pipeline among the methods
    out = tmp_path / "bench"
    assert main(["bench", "--dataset", "movi-e", str(tmp_path / "movi_e"), "--split", "val", "--model", str(pipeline),
                 "--cases", "1", "--steps", "2", "--out", str(out)]) == 0
    report = json.loads((out / "pose_edit-movi-e-val.json").read_text())
    assert report["methods"][-1] == "pipeline" and {r["method"] for r in report["cases"]} >= {"pipeline", "geometric"}
    assert report["config"]["cases_per_task"] == 1


@pytest.mark.slow
def test_the_paper_configuration_trains_in_two_processes(tmp_path):
    config_path = tiny_paper_run(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}  # torchrun processes joined by gloo
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "neuralassets.cli", "train", "--config", str(config_path)]
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2]
    assert all(r["ranks_in_sync"] for r in records if "checkpoint" in r)
    _, meta = load_checkpoint(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    assert meta["world_size"] == 2 and meta["step"] == 2


def test_the_cost_table_counts_the_full_size_networks_of_the_config():
    paper_cost = load_benchmark("paper_cost")
    counted = paper_cost.count_step(batch=1)
    assert counted["params"]["unet"] == 865_910_724  # Stable Diffusion 2.1's UNet
    assert round(counted["params"]["dino_vitb8"] / 1e6, 1) == 85.8 and counted["tokens"] == 96
    committed = json.loads((ROOT / "benchmarks" / "results" / "paper_cost.json").read_text())
    assert counted["params"] == committed["params"]  # the documented table is this code's count
    for part, flops in counted["flops_per_pair"].items():
        assert flops == pytest.approx(committed["flops_per_pair"][part], rel=1e-6)

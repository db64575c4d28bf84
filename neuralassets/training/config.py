"""Training configs: nanoGPT-style dataclasses, one comment per field, loadable from YAML or JSON.

A config file mirrors the dataclasses: top-level :class:`TrainConfig` fields, with ``model``,
``data`` and ``optim`` sections. Unknown keys raise :class:`ConfigError` naming them. A file
may name another as its ``base`` (a path relative to it): the file then holds only the keys
that differ, merged into the base section by section (``configs/base.yaml`` and the stages in
``configs/shipped/``). The code's defaults are the shipped model's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config import from_dict
from ..errors import ConfigError
from ..models.build import ModelConfig
from .stages import STAGES

DATA_SOURCES = ("pairs", "shards")


@dataclass
class DataConfig:
    """Where training pairs come from."""

    source: str = "pairs"  # "pairs": synthetic FramePairDataset rendered on the fly; "shards": a ShardedPairDataset folder
    shard_folder: str | list[str] | None = None  # shards: a folder of pre-rendered pair shards, or a list whose pairs are concatenated
    length: int = 20000  # pairs in the fixed training set (the denoiser stage caches their latents)
    generator_config: dict | None = None  # pairs: settings for the synthetic generator (None: its defaults)
    num_workers: int = 0  # data-loader worker processes (rendering pairs runs there)
    resident: bool = False  # denoiser: hold the whole training set on the training device, batches gathered there (no loader)
    sampled_pairs: int = 2048  # decoder: training pairs (evenly spaced over the set) whose latents the pipeline samples
    num_samples: int = 4  # pairs shown in the periodic sample grid (the first of the training set)


@dataclass
class OptimConfig:
    """Optimiser, schedule and regularisation."""

    batch_size: int = 32  # examples per process per micro-step
    grad_accum_steps: int = 1  # micro-steps per optimiser step
    lr: float = 3e-4  # peak learning rate (AdamW)
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio at max_steps
    warmup_steps: int = 500  # linear warm-up from 0 to lr
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    betas: tuple[float, float] = (0.9, 0.99)  # AdamW betas
    grad_clip: float = 1.0  # clip the global gradient norm to this (0 = off)
    ema_decay: float = 0.999  # decay of the exponential moving average of the weights (0 = off)
    cfg_drop_prob: float = 0.1  # denoiser: probability per example of dropping all objects (classifier-free guidance)
    object_loss_weight: float = 1.0  # weight inside the target's object boxes (1 = plain mean): denoiser cells, decoder pixels
    encoder_latent_fraction: float = 0.5  # decoder: share of each batch decoded from the encoder's latents, so reconstructions stay good
    kl_weight: float = 1e-6  # autoencoder: weight of the KL term against the L1 reconstruction loss


@dataclass
class TrainConfig:
    """One training run (one stage)."""

    stage: str = "denoiser"  # "autoencoder" (the VAE on frames), "denoiser" (asset encoder + denoiser on latents) or
    # "decoder" (the VAE decoder of the init_from pipeline, on the latents that pipeline samples for the training pairs)
    output_dir: str = "runs/denoiser"  # logs, plots, exported weights (and checkpoints unless checkpoint_dir is set)
    checkpoint_dir: str | None = None  # where checkpoints go (default: output_dir/checkpoints)
    max_steps: int = 100000  # optimiser steps of the whole run
    seed: int = 0  # seeds initialisation, data order, noise and dropout
    mixed_precision: str = "no"  # "no" or "bf16" (autocast; about 3x faster convolutions on recent CPUs)
    log_every: int = 50  # steps between JSON-lines log records
    checkpoint_every: int = 1000  # steps between checkpoints (and weight exports)
    keep_checkpoints: int = 3  # newest checkpoints kept; older ones are deleted
    sample_every: int = 2000  # steps between sample-grid and loss-curve PNGs (0 = only at the end)
    auto_resume: bool = True  # continue from the newest checkpoint in checkpoint_dir when there is one
    init_from: str | None = None  # weights-only start: a saved pipeline (or autoencoder) folder, fresh optimiser (zero-init parts may lack)
    freeze_encoder: bool = False  # autoencoder: train only the decoder, keeping the latent space (and denoisers trained on it) valid
    reference_only: bool = False  # decoder: train only its reference branch, so decoding without a reference stays init_from's
    model: ModelConfig = field(default_factory=ModelConfig)  # the model (see neuralassets.models)
    data: DataConfig = field(default_factory=DataConfig)  # training pairs
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimiser

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ConfigError(f"stage: {self.stage!r} is not one of {', '.join(STAGES)}")
        if self.reference_only and (self.stage != "decoder" or not self.model.autoencoder.reference_channels):
            raise ConfigError("reference_only: trains a decoder's reference branch, so it needs stage: decoder and "
                              f"model.autoencoder.reference_channels (got stage {self.stage!r}, "
                              f"reference_channels {self.model.autoencoder.reference_channels})")
        if self.data.source not in DATA_SOURCES:
            raise ConfigError(f"data.source: {self.data.source!r} is not one of {', '.join(DATA_SOURCES)}")
        if self.data.source == "shards":
            folders = self.data.shard_folder
            if not folders or (isinstance(folders, list)
                               and not all(isinstance(f, str) and f for f in folders)):
                raise ConfigError("data.shard_folder: a folder or a non-empty list of folders is required when "
                                  f"data.source is 'shards', got {folders!r}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ConfigError(f"mixed_precision: {self.mixed_precision!r} is not 'no' or 'bf16'")
        for name in ("max_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: {getattr(self, name)} must be >= 1")
        if self.optim.batch_size < 1 or self.optim.grad_accum_steps < 1:
            raise ConfigError("optim.batch_size and optim.grad_accum_steps must be >= 1")
        if self.optim.object_loss_weight <= 0:
            raise ConfigError(f"optim.object_loss_weight: {self.optim.object_loss_weight} must be > 0")
        if not 0.0 <= self.optim.encoder_latent_fraction <= 1.0:
            raise ConfigError(f"optim.encoder_latent_fraction: {self.optim.encoder_latent_fraction} is not in [0, 1]")
        if self.data.sampled_pairs < 1:
            raise ConfigError(f"data.sampled_pairs: {self.data.sampled_pairs} must be >= 1")
        if self.stage == "decoder" and not self.init_from:
            raise ConfigError("init_from: the decoder stage fine-tunes a trained pipeline's decoder; name the pipeline folder")
        if self.data.resident and self.stage != "denoiser":
            raise ConfigError(f"data.resident: only the denoiser stage holds its training set on the device, not {self.stage!r}")

    @property
    def checkpoints(self) -> Path:
        return Path(self.checkpoint_dir) if self.checkpoint_dir else Path(self.output_dir) / "checkpoints"


def load_config(path: str | Path, **overrides) -> TrainConfig:
    """Read a YAML (``.yaml``/``.yml``) or JSON config file.

    Args:
        path: the file.
        overrides: top-level fields to replace (e.g. ``max_steps=10``); None values are ignored.

    Raises:
        ConfigError: unreadable file, invalid syntax, unknown keys or invalid values.
    """
    path = Path(path)
    data = read_config_file(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return from_dict(TrainConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


def read_config_file(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """A config file's mapping, merged onto the file its ``base`` key names (recursively).

    Raises:
        ConfigError: unreadable file, invalid syntax, a top level that is not a mapping, a
            missing base or bases that name each other in a circle.
    """
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: its bases name each other in a circle ({' -> '.join(p.name for p in _seen)} -> {path.name})")
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from e
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as e:  # yaml and json raise their own syntax error types
        raise ConfigError(f"{path}: invalid {path.suffix.lstrip('.').upper()}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: expected a path relative to the file, got {base!r}")
    return merged(read_config_file(path.parent / base, (*_seen, path.resolve())), data)


def merged(base: dict, override: dict) -> dict:
    """``override`` laid over ``base``: mappings merge key by key, anything else (lists too) replaces."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out

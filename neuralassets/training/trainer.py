"""The accelerate trainer, one loop for every stage.

What a stage trains and how (its module, data, loss, export and samples) is a
:class:`~neuralassets.training.stages.Stage` the trainer calls (:data:`~.stages.STAGES`).
One code path runs on one CPU, several processes (``accelerate launch --num_processes N``)
or GPUs, with optional bf16 autocast and gradient accumulation.

Outputs under ``output_dir``: ``log.jsonl`` (one JSON record per ``log_every`` steps),
``loss.png``, ``samples/step_*.png``, the exported EMA weights (``autoencoder/``, a diffusers
``AutoencoderKL`` folder, or ``pipeline/``, a :class:`NeuralAssetsPipeline` folder) and the
checkpoints (see :mod:`.checkpoint`), from which a run resumes exactly.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..conditioning import Conditioning
from ..config import to_dict
from ..errors import ConfigError, WeightsError
from ..models.build import build_components
from ..pipelines.neural_assets import NeuralAssetsPipeline
from .checkpoint import (
    ExponentialMovingAverage,
    flatten_optimizer_state,
    list_checkpoints,
    load_checkpoint,
    prefixed,
    save_checkpoint,
    unflatten_optimizer_state,
)
from .config import TrainConfig
from .data import (
    ResidentPairs,
    ResumableBatchSampler,
    build_pair_dataset,
    cache_latents,
    state_hash,
)
from .plots import save_image_grid, save_loss_curve
from .stages import STAGES

TIME_PROBE_STEPS = 10  # timed steps before a time limit first fits the schedule to the time left


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to ``optim.lr`` over ``warmup_steps``, then cosine to ``lr * min_lr_ratio`` at ``max_steps``."""
    o = config.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    progress = min(1.0, (step - o.warmup_steps) / max(1, config.max_steps - o.warmup_steps))
    return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class Trainer:
    """Builds the model, data and optimiser for one stage and runs it to ``max_steps``.

    Args:
        config: the run.
        dataset: training pairs ``(Conditioning, target (3, H, W))``; default: from ``config.data``.
        collate_fn: batches pairs into ``(Conditioning, (B, 3, H, W))``; required with ``dataset``.
        resume_from: a checkpoint file to resume from; default: the newest in the checkpoint
            folder when ``config.auto_resume``.
    """

    def __init__(self, config: TrainConfig, dataset: Dataset | None = None, collate_fn: Callable | None = None,
                 resume_from: Path | None = None):
        from accelerate import Accelerator

        self.config = config
        # autocast is applied here rather than by accelerate, whose precision is fixed for the life of a
        # process: a second trainer in the same process (a notebook, a test run) may use another precision
        self.accelerator = acc = Accelerator(mixed_precision="no",
                                             gradient_accumulation_steps=config.optim.grad_accum_steps)
        self.output_dir = Path(config.output_dir)
        self.log_path = self.output_dir / "log.jsonl"
        if dataset is None:
            dataset, collate_fn = build_pair_dataset(config.data, config.model.max_objects, config.model.image_size)
        elif collate_fn is None:
            raise ConfigError("collate_fn: required when a dataset is passed")
        self.pairs, self.collate = dataset, collate_fn

        torch.manual_seed(config.seed)  # identical initial weights on every process
        components = build_components(config.model)
        self.components = components
        self.scheduler = components.scheduler
        self.stage = STAGES[config.stage]()
        if config.init_from:
            self.stage.init_weights(components, Path(config.init_from))
        module, train_set = self.stage.build(self)
        self.ema = ExponentialMovingAverage(module, config.optim.ema_decay)
        optimizer = torch.optim.AdamW(_param_groups(module, config.optim.weight_decay), lr=config.optim.lr,
                                      betas=tuple(config.optim.betas))
        self.model, self.optimizer = acc.prepare(module, optimizer)
        self.train_set = train_set
        self.resident: ResidentPairs | None = None  # built by the first train() when config.data.resident
        self.step = 0
        resume = resume_from
        if resume is None and config.auto_resume:
            existing = list_checkpoints(config.checkpoints)
            resume = existing[-1] if existing else None
        if resume is not None:
            self._load(Path(resume))

    # ------------------------------------------------------------------ setup helpers

    def _encode(self, cond: Conditioning, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, C, h, w) unscaled latents (posterior mode); ``cond`` is not needed."""
        vae = self.components.vae
        with torch.no_grad(), self._autocast():
            return vae.encode(images.to(self.accelerator.device) * 2 - 1).latent_dist.mode().float().cpu()

    def latents(self) -> Tensor:
        """Scaled latents of the fixed training set, computed once by the main process and cached on disk."""
        vae = self.components.vae.to(self.accelerator.device)
        key = {"data": to_dict(self.config.data), "pairs": len(self.pairs), "image_size": self.config.model.image_size,
               "autoencoder": state_hash(vae)}
        self._check_image_size()
        latents = self._shared_cache("latent_cache.safetensors", self.pairs, self._encode, key, batch_size=64)
        return latents * float(vae.config.scaling_factor)

    def _shared_cache(self, name: str, pairs: Dataset, encode: Callable, key: dict, batch_size: int) -> Tensor:
        """:func:`cache_latents` in ``output_dir/name``: computed once by the main process, then read by every process."""
        path = self.output_dir / name
        if self.accelerator.is_main_process:
            cache_latents(path, pairs, self.collate, encode, key, batch_size, num_workers=self.config.data.num_workers)
        self.accelerator.wait_for_everyone()
        return cache_latents(path, pairs, self.collate, encode, key, batch_size)

    def sampled_latents(self, indices: list[int]) -> Tensor:
        """Unscaled latents the loaded pipeline samples for pairs ``indices`` (its own steps and guidance), cached on disk.

        Batch ``b`` of 16 draws its noise from seed ``(seed, b)``, so the samples depend only on
        the weights, the pairs and the seed.
        """
        c = self.components
        pipe = self._assemble_pipeline(c.vae, c.asset_encoder, c.denoiser).to(self.accelerator.device)
        key = {"data": to_dict(self.config.data), "pairs": len(self.pairs), "indices": len(indices), "seed": self.config.seed,
               "steps": c.config.num_inference_steps, "guidance": c.config.guidance_scale,
               "weights": [state_hash(m) for m in (c.vae.encoder, c.asset_encoder, c.denoiser)]}
        batches = iter(range(len(indices)))

        def sample(cond: Conditioning, _: Tensor) -> Tensor:
            generator = torch.Generator().manual_seed((self.config.seed << 32) + next(batches))
            with torch.no_grad():
                return (pipe.sample_latents(cond, generator=generator) / c.vae.config.scaling_factor).cpu()

        self._check_image_size()
        return self._shared_cache("sample_cache.safetensors", Subset(self.pairs, indices), sample, key, batch_size=16)

    def _check_image_size(self) -> None:
        _, target = self.pairs[0]
        size = self.config.model.image_size
        if tuple(target.shape[-2:]) != (size, size):
            raise ConfigError(f"model.image_size: {size}, but the training pairs are {tuple(target.shape[-2:])} images")

    # ------------------------------------------------------------------ the loop

    def train(self, stop_at: int | None = None, time_limit: float | None = None) -> list[float]:
        """Run from the current step to ``max_steps``; returns the loss of every step run.

        Args:
            stop_at: stop after this step instead (checkpointed and exported there); the learning-rate
                schedule stays that of ``max_steps``, so resuming later continues the same run.
            time_limit: seconds the steps of this call may take (setup and latent caching not
                counted). From the step times so far (first measured after
                :data:`TIME_PROBE_STEPS` steps, then at every log record), a run that would
                overrun ends its schedule early: ``max_steps`` becomes the last step that fits,
                so the learning rate still decays fully; the new ``max_steps`` is logged and
                stored in the checkpoints (resume with ``--max-steps`` set to it).
        """
        from tqdm.auto import tqdm

        if time_limit is not None and not time_limit > 0:
            raise ConfigError(f"time_limit: {time_limit} must be > 0 seconds")
        c, acc = self.config, self.accelerator
        end = c.max_steps if stop_at is None else min(stop_at, c.max_steps)
        first_step = self.step
        accum = c.optim.grad_accum_steps
        sampler = ResumableBatchSampler(len(self.train_set), c.optim.batch_size, c.seed, acc.process_index,
                                        acc.num_processes, start_batch=self.step * accum)
        if c.data.resident:
            if self.resident is None:
                self.resident = ResidentPairs(self.train_set, acc.device, c.data.num_workers)
            batches = self.resident.batches(sampler)
        else:
            batches = iter(DataLoader(self.train_set, batch_sampler=sampler, collate_fn=self.stage.collate(self),
                                      num_workers=c.data.num_workers, pin_memory=acc.device.type == "cuda"))
        unwrapped = acc.unwrap_model(self.model)
        losses: list[float] = []
        window: list[float] = []
        started, window_start = time.perf_counter(), time.perf_counter()
        bar = tqdm(total=c.max_steps, initial=self.step, disable=not acc.is_main_process, desc=c.stage,
                   dynamic_ncols=True)
        self.model.train()
        self.stage.freeze(self.components)
        while self.step < end:
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(self.step, c)
            step_loss = 0.0
            for micro in range(accum):
                inputs, targets = next(batches)
                generator = torch.Generator().manual_seed(
                    (c.seed << 40) + ((self.step * accum + micro) * acc.num_processes + acc.process_index))
                with acc.accumulate(self.model):
                    with self._autocast():
                        loss = self.stage.loss(self, inputs, targets, generator)
                    acc.backward(loss)
                    if acc.sync_gradients and c.optim.grad_clip > 0:
                        acc.clip_grad_norm_(self.model.parameters(), c.optim.grad_clip)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                step_loss += loss.detach() / accum
            self.step += 1
            self.ema.update(unwrapped)
            loss_value = float(acc.reduce(step_loss.to(acc.device), "mean"))
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"step {self.step}: loss is {loss_value}; lower optim.lr or check the data")
            losses.append(loss_value)
            window.append(loss_value)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if time_limit is not None:
                steps_timed = self.step - first_step - 1  # the first step (warm-up, compilation) is not timed
                if steps_timed == 0:
                    first_done = time.perf_counter()
                elif steps_timed == TIME_PROBE_STEPS or (steps_timed > TIME_PROBE_STEPS and self.step % c.log_every == 0):
                    end = self._fit_time_limit(end, time_limit, started, first_done, steps_timed)
                    c = self.config
                    bar.total = c.max_steps
            if self.step % c.log_every == 0 or self.step == c.max_steps:
                seconds = time.perf_counter() - window_start
                samples = len(window) * c.optim.batch_size * accum * acc.num_processes
                self._log({"step": self.step, "loss": sum(window) / len(window), "lr": learning_rate(self.step - 1, c),
                           "samples_per_s": samples / seconds, "elapsed_s": time.perf_counter() - started})
                window, window_start = [], time.perf_counter()
            if self.step % c.checkpoint_every == 0 or self.step == end:
                self.save()
            if (c.sample_every and self.step % c.sample_every == 0) or self.step == c.max_steps:
                self.save_samples()
        bar.close()
        acc.wait_for_everyone()
        return losses

    def _fit_time_limit(self, end: int, time_limit: float, started: float, timing_start: float, steps_timed: int) -> int:
        """The step to end at so that the run ends within ``time_limit`` seconds of ``started``.

        The slowest process's mean step time since ``timing_start`` decides, so every process
        agrees; a run that would overrun gets ``max_steps`` (the cosine's end) at the new end.
        """
        acc = self.accelerator
        now = time.perf_counter()
        seconds = acc.gather(torch.tensor([(now - timing_start) / steps_timed], device=acc.device)).max().item()
        fits = self.step + max(0, int((started + time_limit - now) / seconds))
        if fits >= end:
            return end
        self.config = replace(self.config, max_steps=max(fits, self.step))
        self._log({"step": self.step, "time_limit_s": time_limit, "s_per_step": seconds,
                   "max_steps": self.config.max_steps})
        return self.config.max_steps

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """``torch.bfloat16`` when ``mixed_precision`` is ``"bf16"``, else None (float32): for training and samples."""
        return torch.bfloat16 if self.config.mixed_precision == "bf16" else None

    def _autocast(self):
        dtype = self.autocast_dtype
        return torch.autocast(self.accelerator.device.type, dtype=dtype, enabled=dtype is not None)

    # ------------------------------------------------------------------ outputs

    def _log(self, record: dict) -> None:
        if self.accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as f:
                f.write(json.dumps({**record, "time": time.time()}) + "\n")

    def ema_components(self):
        """Copies of the trained networks carrying the EMA weights: (vae, asset_encoder, denoiser)."""
        module = copy.deepcopy(self.accelerator.unwrap_model(self.model)).float()
        self.ema.copy_to(module)
        return self.stage.networks(self.components, module)

    def pipeline(self) -> NeuralAssetsPipeline:
        """A pipeline over the EMA weights (for samples and export)."""
        return self._assemble_pipeline(*self.ema_components())

    def _assemble_pipeline(self, vae: nn.Module, encoder: nn.Module, denoiser: nn.Module) -> NeuralAssetsPipeline:
        """A pipeline over these networks with this run's scheduler, model config and autocast."""
        pipe = NeuralAssetsPipeline(vae, encoder, denoiser, copy.deepcopy(self.scheduler), self.components.config)
        pipe.autocast_dtype = self.autocast_dtype
        return pipe

    def save(self) -> None:
        """Checkpoint (all processes' RNG states gathered, written once by the main process) and export EMA weights."""
        acc = self.accelerator
        rng = acc.gather(torch.get_rng_state().to(acc.device)[None]).cpu()
        checksum = acc.gather(_checksum(acc.unwrap_model(self.model)).to(acc.device)[None]).cpu()
        in_sync = bool((checksum == checksum[0]).all())
        if acc.is_main_process:
            model = acc.unwrap_model(self.model)
            tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
            tensors.update({f"ema.{k}": v for k, v in self.ema.shadow.items()})
            optimizer_tensors, optimizer_meta = flatten_optimizer_state(self.optimizer.state_dict())
            tensors.update(optimizer_tensors)
            tensors["rng.torch"] = rng
            meta = {"stage": self.config.stage, "config": to_dict(self.config), "optimizer": optimizer_meta,
                    "ema_updates": self.ema.num_updates, "world_size": acc.num_processes, "ranks_in_sync": in_sync}
            path = save_checkpoint(self.config.checkpoints, self.step, tensors, meta, self.config.keep_checkpoints)
            self._log({"step": self.step, "checkpoint": str(path), "ranks_in_sync": in_sync})
            self.export()
        acc.wait_for_everyone()

    def export(self) -> Path:
        """Write the EMA weights as the stage does (``autoencoder/`` with its latent scaling factor, or ``pipeline/``)."""
        return self.stage.export(self, self.pipeline())

    @torch.no_grad()
    def save_samples(self) -> None:
        """The stage's sample grid (:meth:`~.stages.Stage.sample_columns`) and the loss curve."""
        if not self.accelerator.is_main_process:
            return
        pipe = self.pipeline()
        n = min(self.config.data.num_samples, len(self.pairs))
        cond, targets = self.collate([self.pairs[i] for i in range(n)])
        columns = self.stage.sample_columns(pipe, cond, targets, self.config.seed)
        save_image_grid(self.output_dir / "samples" / f"step_{self.step:08d}.png", [c.cpu() for c in columns])
        if self.log_path.is_file():
            save_loss_curve(self.log_path, self.output_dir / "loss.png")

    def _load(self, path: Path) -> None:
        """Resume model, EMA, optimiser, RNG state and step from a checkpoint."""
        tensors, meta = load_checkpoint(path)
        if meta.get("stage") != self.config.stage:
            raise WeightsError(f"{path}: a {meta.get('stage')!r} checkpoint cannot resume the {self.config.stage!r} stage")
        model = self.accelerator.unwrap_model(self.model)
        expected = model.state_dict()
        state = prefixed(tensors, "model.")
        for name, value in expected.items():
            if name not in state or state[name].shape != value.shape:
                raise WeightsError(f"{path}: tensor 'model.{name}' is missing or has another shape than the config gives")
        model.load_state_dict(state)
        self.ema.shadow = {k: v.float() for k, v in prefixed(tensors, "ema.").items()}
        self.ema.num_updates = int(meta["ema_updates"])
        self.optimizer.load_state_dict(unflatten_optimizer_state(tensors, meta["optimizer"]))
        rng = tensors["rng.torch"]
        if rng.shape[0] == self.accelerator.num_processes:
            torch.set_rng_state(rng[self.accelerator.process_index].contiguous())
        self.step = int(meta["step"])


def _param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and convolution kernels, not biases, norms or embeddings of one dimension."""
    params = [p for p in module.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def _checksum(module: nn.Module) -> Tensor:
    """(1,) float64 sum of every parameter (equal on all processes when they are in sync)."""
    return torch.stack([p.detach().double().sum() for p in module.parameters()]).sum().view(1).cpu()

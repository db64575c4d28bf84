"""The stages of training, each a small object the trainer calls.

A :class:`Stage` says what a run trains and how: which weights ``init_from`` loads, the
module the optimiser sees and the set it reads (:meth:`Stage.build`), how a batch becomes a
loss, which networks carry the trained weights, what is exported and what the sample grid
shows. The trainer itself knows nothing of any particular stage; :data:`STAGES` maps the
config's ``stage`` to one.

- ``autoencoder``: the VAE on target frames, exported as ``autoencoder/`` with its latent scale;
- ``denoiser``: the asset encoder and the denoiser on cached latents, the VAE frozen;
- ``decoder``: the VAE decoder of an ``init_from`` pipeline, on the latents that pipeline
  samples for evenly spaced training pairs (the encoder and denoiser frozen).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, default_collate

from ..errors import WeightsError
from ..jsonio import read_json
from ..models.build import Components
from ..models.patch_autoencoder import takes_reference
from ..models.weights import load_weights
from ..pipelines.neural_assets import NeuralAssetsPipeline, replace_folder
from .data import LatentPairs, SampledLatentPairs, collate_latents, evenly_spaced
from .objectives import AutoencoderObjective, ConditionalDenoiser, DecoderObjective, DiffusionObjective

if TYPE_CHECKING:
    from .trainer import Trainer

SCALING_SAMPLES = 64  # training images whose latent std sets the exported autoencoder's scaling factor


class Stage:
    """One stage of training. Subclasses set :attr:`name` and implement :meth:`build` and :meth:`loss`."""

    name = ""

    def init_weights(self, components: Components, folder: Path) -> None:
        """Load ``init_from``: the asset encoder and denoiser of a saved pipeline folder (weights only)."""
        if not (folder / "model_index.json").is_file():
            raise WeightsError(f"init_from: {folder} is not a saved pipeline (model_index.json missing)")
        load_weights(components.asset_encoder, folder / "asset_encoder" / "model.safetensors",
                     components.asset_encoder.zero_initialised)
        load_weights(components.denoiser, folder / "denoiser" / "model.safetensors")

    def build(self, trainer: Trainer) -> tuple[nn.Module, Dataset]:
        """The module the optimiser trains (its trainable parameters are the stage's) and the set of examples it reads."""
        raise NotImplementedError

    def collate(self, trainer: Trainer) -> Callable:
        """Batches the training set's examples for the data loader."""
        return collate_latents

    def freeze(self, components: Components) -> None:
        """Put the networks the stage does not train in eval mode (called when training starts)."""

    def loss(self, trainer: Trainer, inputs, targets: Tensor, generator: torch.Generator) -> Tensor:
        """The scalar loss of one batch (``inputs`` and ``targets`` as :meth:`collate` gives them)."""
        raise NotImplementedError

    def networks(self, components: Components, trained: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module]:
        """(vae, asset_encoder, denoiser) with the trained networks taken from ``trained`` (a copy of the module)."""
        return components.vae, trained.asset_encoder, trained.denoiser

    def export(self, trainer: Trainer, pipe: NeuralAssetsPipeline) -> Path:
        """Write the trained weights under ``output_dir``; returns the folder (``pipeline/``)."""
        folder = trainer.output_dir / "pipeline"
        pipe.save_pretrained(folder)
        return folder

    def sample_columns(self, pipe: NeuralAssetsPipeline, cond, targets: Tensor, seed: int) -> list[Tensor]:
        """Columns of the periodic sample grid: appearance | background | target | generated."""
        generated = pipe.render(cond, generator=torch.Generator().manual_seed(seed))
        fit = pipe.fit_conditioning(cond)
        return [fit.appearance_images[:, 0], fit.background_image, targets, generated]


class AutoencoderStage(Stage):
    """The VAE on target frames (``freeze_encoder``: the decoder alone)."""

    name = "autoencoder"

    def init_weights(self, components: Components, folder: Path) -> None:
        """Load an autoencoder folder, or a pipeline folder's ``vae/``."""
        vae_folder = folder / "vae" if (folder / "vae").is_dir() else folder
        load_weights(components.vae, vae_folder / "diffusion_pytorch_model.safetensors")

    def build(self, trainer: Trainer) -> tuple[nn.Module, Dataset]:
        c = trainer.config
        return AutoencoderObjective(trainer.components.vae, c.optim.kl_weight, c.freeze_encoder), trainer.pairs

    def collate(self, trainer: Trainer) -> Callable:
        return trainer.collate

    def loss(self, trainer: Trainer, inputs, targets: Tensor, generator: torch.Generator) -> Tensor:
        return trainer.model(targets.to(trainer.accelerator.device), generator)

    def networks(self, components: Components, trained: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module]:
        return trained.vae, components.asset_encoder, components.denoiser

    def export(self, trainer: Trainer, pipe: NeuralAssetsPipeline) -> Path:
        """``autoencoder/``, its scaling factor set to one over the latent std of the first training images."""
        _, targets = trainer.collate([trainer.pairs[i] for i in range(min(SCALING_SAMPLES, len(trainer.pairs)))])
        latents = pipe.vae.encode(targets.to(pipe.device) * 2 - 1).latent_dist.mode()
        pipe.vae.register_to_config(scaling_factor=float(1.0 / latents.float().std().clamp(min=1e-6)))
        folder = trainer.output_dir / "autoencoder"
        tmp = folder.with_name("autoencoder.tmp")
        pipe.vae.save_pretrained(tmp)
        replace_folder(tmp, folder)
        return folder

    def sample_columns(self, pipe: NeuralAssetsPipeline, cond, targets: Tensor, seed: int) -> list[Tensor]:
        """target | reconstruction."""
        return [targets, pipe.decode_latents(pipe.encode_images(targets))]


class DenoiserStage(Stage):
    """The asset encoder and the denoiser on the cached latents of a fixed set of pairs; the VAE frozen."""

    name = "denoiser"

    def build(self, trainer: Trainer) -> tuple[nn.Module, Dataset]:
        c, components = trainer.config, trainer.components
        components.vae.eval().requires_grad_(False)
        self.objective = DiffusionObjective(components.scheduler, c.optim.cfg_drop_prob, c.optim.object_loss_weight)
        return ConditionalDenoiser(components.asset_encoder, components.denoiser), LatentPairs(trainer.pairs, trainer.latents())

    def freeze(self, components: Components) -> None:
        components.vae.eval()

    def loss(self, trainer: Trainer, inputs, targets: Tensor, generator: torch.Generator) -> Tensor:
        device = trainer.accelerator.device
        return self.objective(trainer.model, targets.to(device), inputs.to(device), generator)


class DecoderStage(Stage):
    """The ``init_from`` pipeline's VAE decoder on latents the pipeline samples (``reference_only``: its reference branch)."""

    name = "decoder"

    def init_weights(self, components: Components, folder: Path) -> None:
        """The pipeline's networks; the decoder it fine-tunes is its own, with its latent scale."""
        super().init_weights(components, folder)
        vae = components.vae
        load_weights(vae, folder / "vae" / "diffusion_pytorch_model.safetensors", getattr(vae, "zero_initialised", ()))
        vae_config = read_json(folder / "vae" / "config.json", WeightsError, "file is missing")
        vae.register_to_config(scaling_factor=float(vae_config["scaling_factor"]))

    def build(self, trainer: Trainer) -> tuple[nn.Module, Dataset]:
        c, components = trainer.config, trainer.components
        components.asset_encoder.eval().requires_grad_(False)
        components.denoiser.eval().requires_grad_(False)
        indices = evenly_spaced(c.data.sampled_pairs, len(trainer.pairs))
        train_set = SampledLatentPairs(trainer.pairs, indices, trainer.sampled_latents(indices), takes_reference(components.vae))
        module = DecoderObjective(components.vae, c.optim.encoder_latent_fraction, c.optim.object_loss_weight, c.reference_only)
        return module, train_set

    def collate(self, trainer: Trainer) -> Callable:
        return default_collate

    def loss(self, trainer: Trainer, inputs, targets: Tensor, generator: torch.Generator) -> Tensor:
        device = trainer.accelerator.device
        latents, references = inputs
        return trainer.model(latents.to(device), targets.to(device), references.to(device))

    def networks(self, components: Components, trained: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module]:
        return trained.vae, components.asset_encoder, components.denoiser


#: The config's ``stage`` -> its :class:`Stage`.
STAGES: dict[str, type[Stage]] = {stage.name: stage for stage in (AutoencoderStage, DenoiserStage, DecoderStage)}

__all__ = ["STAGES", "AutoencoderStage", "DecoderStage", "DenoiserStage", "Stage"]

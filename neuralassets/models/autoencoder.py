"""The latent autoencoder: our :class:`PatchAutoencoder`, diffusers' ``AutoencoderKL`` or Stable Diffusion's.

The default (``kind: patch``) is trained from scratch on synthetic frames: f = 8 and 8 latent
channels, so a 128×128 image becomes an 8×16×16 latent (more channels at 16×16 raise the
reconstruction ceiling cheaply). ``kind: kl`` builds a diffusers ``AutoencoderKL`` instead;
a pretrained VAE (Stable Diffusion's ``vae`` subfolder) loads from a local folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn

from ..config import diffusers_config
from ..errors import ConfigError, WeightsError
from .patch_autoencoder import PatchAutoencoder, autoencoder_class, autoencoder_kind
from .weights import is_quantized, load_weights

AUTOENCODER_KINDS = ("patch", "kl")


@dataclass
class AutoencoderConfig:
    """The latent autoencoder."""

    kind: str = "patch"  # "patch" (PatchAutoencoder: trains in minutes on a CPU) or "kl" (diffusers AutoencoderKL)
    # folder of a saved autoencoder (ours, or a diffusers AutoencoderKL such as Stable Diffusion's "vae"); its own config
    # then sets the architecture and the fields below are not used
    pretrained: str | None = None
    latent_channels: int = 8  # channels of the latent
    width: int = 256  # patch: channels at the latent resolution (half that at twice it)
    num_blocks: int = 3  # patch: residual blocks at the latent resolution
    reference_channels: int = 4  # patch: channels of a pixel reference the decoder takes detail from (4: object_reference; 0: none)
    block_channels: tuple[int, ...] = (32, 64, 64, 128)  # kl: channels per resolution; downsampling factor 2^(len-1)
    layers_per_block: int = 1  # kl: resnet layers per resolution
    norm_num_groups: int = 8  # kl: GroupNorm groups; one channel per group (instance norm) would erase each image's colours
    scaling_factor: float = 1.0  # latents are multiplied by this before diffusion; training sets it to 1/std of the latents
    model_config: dict | None = None  # filled in when built: the model's full config, so saved weights rebuild exactly


def build_autoencoder(config: AutoencoderConfig, load_pretrained: bool = True) -> tuple[nn.Module, AutoencoderConfig]:
    """Build (or load) the autoencoder.

    Args:
        config: the autoencoder config; a stored ``model_config`` takes precedence.
        load_pretrained: load ``pretrained`` weights; False builds from ``model_config`` with
            random weights (a saved pipeline's weights are loaded afterwards).

    Returns:
        the model and the config with ``model_config`` filled in.

    Raises:
        WeightsError: ``pretrained`` cannot be loaded.
        ConfigError: unknown ``kind``, or ``norm_num_groups`` does not divide every block's channel count.
    """
    from diffusers import AutoencoderKL

    if config.kind not in AUTOENCODER_KINDS:
        raise ConfigError(f"autoencoder.kind: {config.kind!r} is not one of {', '.join(AUTOENCODER_KINDS)}")
    if config.pretrained and load_pretrained and config.model_config is None:
        model = _load_pretrained(config.pretrained)
        config = replace(config, kind=autoencoder_kind(model), scaling_factor=float(model.config.scaling_factor))
    elif config.kind == "patch":
        model = PatchAutoencoder.from_config(config.model_config or dict(
            latent_channels=config.latent_channels, width=config.width, num_blocks=config.num_blocks,
            scaling_factor=config.scaling_factor, reference_channels=config.reference_channels))
    else:
        n = len(config.block_channels)
        if config.model_config is None and any(c % config.norm_num_groups for c in config.block_channels):
            raise ConfigError(f"autoencoder.norm_num_groups: {config.norm_num_groups} must divide every block channel "
                              f"count {tuple(config.block_channels)}")
        model = AutoencoderKL.from_config(config.model_config or dict(
            in_channels=3, out_channels=3, latent_channels=config.latent_channels,
            block_out_channels=tuple(config.block_channels), layers_per_block=config.layers_per_block,
            down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
            norm_num_groups=config.norm_num_groups, scaling_factor=config.scaling_factor))
    model_config = diffusers_config(model)
    return model, replace(config, latent_channels=int(model_config["latent_channels"]),
                          reference_channels=int(model_config.get("reference_channels", 0)), model_config=model_config)


def _load_pretrained(folder: str) -> nn.Module:
    """A saved autoencoder folder -> the model of the class its ``config.json`` names.

    The ``vae/`` folder of a pipeline saved with int8 weights (the shipped default) is read
    by the pipeline's own loader, which dequantises it; diffusers would load the int8
    numbers as if they were the weights.
    """
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        config = {}  # a hub id or an unreadable folder: let diffusers say what is wrong
    weights = Path(folder) / "diffusion_pytorch_model.safetensors"
    try:
        if config and is_quantized(weights):
            model = autoencoder_class(config).from_config(config)
            load_weights(model, weights)
            return model.eval()
        return autoencoder_class(config).from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise WeightsError(f"autoencoder.pretrained: cannot load an autoencoder from {folder!r}: {e}") from e


def downsampling_factor(vae: nn.Module) -> int:
    """Image pixels per latent pixel along each side."""
    if isinstance(vae, PatchAutoencoder):
        return vae.downsampling_factor
    return 2 ** (len(vae.config.block_out_channels) - 1)

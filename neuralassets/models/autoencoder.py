"""The latent autoencoder: diffusers' ``AutoencoderKL``, our own small one or Stable Diffusion's.

The default is trained from scratch on synthetic frames: four blocks (f = 8) and 8 latent
channels, so a 128×128 image becomes a 8×16×16 latent (more channels at 16×16 raise the
reconstruction ceiling cheaply). A pretrained VAE (Stable Diffusion's ``vae`` subfolder)
loads from a local folder instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from ..errors import ConfigError, WeightsError
from .config import diffusers_config


@dataclass
class AutoencoderConfig:
    """The latent autoencoder."""

    pretrained: str | None = None  # folder of a diffusers AutoencoderKL (e.g. Stable Diffusion's "vae" subfolder)
    block_channels: tuple[int, ...] = (32, 64, 64, 128)  # channels per resolution; downsampling factor 2^(len-1)
    layers_per_block: int = 1  # resnet layers per resolution
    latent_channels: int = 8  # channels of the latent
    norm_num_groups: int = 8  # GroupNorm groups; one channel per group (instance norm) would erase each image's colours
    scaling_factor: float = 1.0  # latents are multiplied by this before diffusion; training sets it to 1/std of the latents
    model_config: dict | None = None  # filled in when built: the full diffusers config, so saved weights rebuild exactly


def build_autoencoder(config: AutoencoderConfig, load_pretrained: bool = True) -> tuple[nn.Module, AutoencoderConfig]:
    """Build (or load) the ``AutoencoderKL``.

    Args:
        config: the autoencoder config; a stored ``model_config`` takes precedence.
        load_pretrained: load ``pretrained`` weights; False builds from ``model_config`` with
            random weights (a saved pipeline's weights are loaded afterwards).

    Returns:
        the model and the config with ``model_config`` filled in.

    Raises:
        WeightsError: ``pretrained`` cannot be loaded.
        ConfigError: ``norm_num_groups`` does not divide every block's channel count.
    """
    from diffusers import AutoencoderKL

    if config.pretrained and load_pretrained and config.model_config is None:
        try:
            model = AutoencoderKL.from_pretrained(config.pretrained)
        except (OSError, ValueError) as e:
            raise WeightsError(f"autoencoder.pretrained: cannot load an AutoencoderKL from {config.pretrained!r}: {e}") from e
        config = replace(config, scaling_factor=float(model.config.scaling_factor))
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
    return model, replace(config, latent_channels=int(model_config["latent_channels"]), model_config=model_config)


def downsampling_factor(vae: nn.Module) -> int:
    """Image pixels per latent pixel along each side."""
    return 2 ** (len(vae.config.block_out_channels) - 1)

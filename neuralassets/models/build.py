"""The whole model's config and the builder of its components."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import nn

from ..errors import ConfigError
from .asset_encoder import AssetEncoder, AssetEncoderConfig
from .autoencoder import AutoencoderConfig, build_autoencoder, downsampling_factor
from .denoiser import Denoiser, DenoiserConfig
from .scheduler import SchedulerConfig, build_scheduler


@dataclass
class ModelConfig:
    """Everything that defines a Neural Assets model (the pipeline's components and defaults)."""

    image_size: int = 128  # side of the square images the model renders, in pixels
    max_objects: int = 8  # object slots; scenes with more assets are refused
    num_inference_steps: int = 12  # default sampling steps
    guidance_scale: float = 2.0  # default classifier-free guidance scale (1 = no guidance)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)  # latent autoencoder
    asset_encoder: AssetEncoderConfig = field(default_factory=AssetEncoderConfig)  # conditioning -> tokens
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)  # latent denoiser
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)  # noise schedule and sampler


@dataclass
class Components:
    """Built components and the config they were built from (with ``model_config`` fields filled)."""

    vae: nn.Module
    asset_encoder: AssetEncoder
    denoiser: Denoiser
    scheduler: object
    config: ModelConfig


def build_components(config: ModelConfig) -> Components:
    """Build every component: random weights except pretrained parts named in ``config``.

    Raises:
        ConfigError: the image size does not divide into the latent grid, or a part's config is invalid.
        WeightsError: a pretrained part cannot be loaded.
    """
    vae, ae_config = build_autoencoder(config.autoencoder)
    factor = downsampling_factor(vae)
    if config.image_size % factor:
        raise ConfigError(f"image_size: {config.image_size} is not a multiple of the autoencoder's factor {factor}")
    encoder = AssetEncoder.from_config(config.asset_encoder)
    denoiser = Denoiser.from_config(config.denoiser, latent_channels=ae_config.latent_channels,
                                    latent_size=config.image_size // factor, token_dim=encoder.config.token_dim,
                                    spatial_channels=encoder.config.spatial_channels)
    scheduler = build_scheduler(config.scheduler)
    config = replace(config, autoencoder=ae_config, asset_encoder=encoder.config, denoiser=denoiser.config)
    return Components(vae=vae, asset_encoder=encoder, denoiser=denoiser, scheduler=scheduler, config=config)

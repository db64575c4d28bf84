"""The whole model's config and the builder of its components."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import nn

from ..config import check_config_keys, diffusers_config
from ..errors import ConfigError
from .asset_encoder import AssetEncoder
from .autoencoder import AutoencoderConfig, build_autoencoder, downsampling_factor
from .denoiser import Denoiser
from .scheduler import SchedulerConfig, build_scheduler

#: Denoiser arguments the other parts decide (the autoencoder's latent, the encoder's token and map widths).
DERIVED_DENOISER_ARGUMENTS = ("latent_channels", "latent_size", "token_dim", "spatial_channels")


@dataclass
class ModelConfig:
    """Everything that defines a Neural Assets model (the pipeline's components and defaults); the defaults are the shipped model's.

    The asset encoder and the denoiser take their own configs (the arguments of
    :class:`~neuralassets.models.AssetEncoder` and :class:`~neuralassets.models.Denoiser`, diffusers
    ``ConfigMixin`` models); keys left out keep those classes' defaults.
    """

    image_size: int = 128  # side of the square images the model renders, in pixels
    max_objects: int = 10  # object slots; scenes with more assets are refused
    num_inference_steps: int = 3  # default sampling steps
    guidance_scale: float = 1.0  # default classifier-free guidance scale (1 = no guidance)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)  # latent autoencoder
    asset_encoder: dict = field(default_factory=dict)  # conditioning -> tokens: AssetEncoder's arguments
    denoiser: dict = field(default_factory=dict)  # latent denoiser: Denoiser's arguments, less those the other parts decide
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)  # noise schedule and sampler

    def __post_init__(self) -> None:
        check_config_keys(AssetEncoder, self.asset_encoder, "model.asset_encoder")
        check_config_keys(Denoiser, self.denoiser, "model.denoiser", exclude=DERIVED_DENOISER_ARGUMENTS)


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
    config = replace(config, autoencoder=ae_config, asset_encoder=diffusers_config(encoder),
                     denoiser=part_config(denoiser))
    return Components(vae=vae, asset_encoder=encoder, denoiser=denoiser, scheduler=scheduler, config=config)


def part_config(denoiser: Denoiser) -> dict:
    """A built denoiser's config as :attr:`ModelConfig.denoiser` holds it (without the arguments the other parts decide)."""
    return {k: v for k, v in diffusers_config(denoiser).items() if k not in DERIVED_DENOISER_ARGUMENTS}

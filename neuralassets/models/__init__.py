"""Models: the asset encoder, the latent autoencoder, the denoiser and the noise scheduler."""

from .asset_encoder import AssetEncoder, AssetTokens
from .autoencoder import AutoencoderConfig
from .build import Components, ModelConfig, build_components
from .denoiser import Denoiser
from .scheduler import SchedulerConfig

__all__ = ["AssetEncoder", "AssetTokens", "AutoencoderConfig", "Components", "Denoiser", "ModelConfig", "SchedulerConfig",
           "build_components"]

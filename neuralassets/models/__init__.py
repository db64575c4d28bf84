"""Models: the asset encoder, the latent autoencoder, the denoiser and the noise scheduler."""

from .asset_encoder import AssetEncoder, AssetEncoderConfig, AssetTokens
from .autoencoder import AutoencoderConfig
from .build import Components, ModelConfig, build_components
from .denoiser import Denoiser, DenoiserConfig
from .scheduler import SchedulerConfig

__all__ = ["AssetEncoder", "AssetEncoderConfig", "AssetTokens", "AutoencoderConfig", "Components", "Denoiser",
           "DenoiserConfig", "ModelConfig", "SchedulerConfig", "build_components"]

"""neuralassets: object-centric image and video editing with neural assets.

Objects found in a video become *neural assets* — appearance tokens pooled from a source
frame plus pose tokens from their 3D boxes — that condition a latent diffusion model.
Editing the tokens (move, rotate, scale, remove, insert, swap) edits the rendered image.
"""

from .errors import (
    AssetNotFoundError,
    ConfigError,
    NeuralAssetsError,
    SceneFormatError,
    ValidationError,
    VideoError,
    WeightsError,
)
from .scene import AppearanceSource, Asset, Background, Box3D, Camera, Scene

__version__ = "0.1.0"

__all__ = [
    "AppearanceSource", "Asset", "AssetNotFoundError", "Background", "Box3D", "Camera", "ConfigError",
    "NeuralAssetsError", "Scene", "SceneFormatError", "ValidationError", "VideoError", "WeightsError",
]

"""Pipelines: Scene or Conditioning in, rendered images out."""

from .geometric import GeometricRenderer
from .neural_assets import NeuralAssetsPipeline, NeuralAssetsPipelineOutput

__all__ = ["GeometricRenderer", "NeuralAssetsPipeline", "NeuralAssetsPipelineOutput"]

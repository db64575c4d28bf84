"""Pipelines: Scene or Conditioning in, rendered images out."""

from .neural_assets import NeuralAssetsPipeline, NeuralAssetsPipelineOutput

__all__ = ["NeuralAssetsPipeline", "NeuralAssetsPipelineOutput"]

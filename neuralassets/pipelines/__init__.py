"""Pipelines: Scene or Conditioning in, rendered images out.

The names are imported on first use, so the geometric back end (OpenCV and torch only) loads
without the model code and its diffusers imports, as ``neuralassets edit --backend geometric``
on a person's clip wants.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .geometric import GeometricRenderer
    from .neural_assets import NeuralAssetsPipeline, NeuralAssetsPipelineOutput

_MODULE_OF = {"GeometricRenderer": ".geometric", "NeuralAssetsPipeline": ".neural_assets",
              "NeuralAssetsPipelineOutput": ".neural_assets"}

__all__ = ["GeometricRenderer", "NeuralAssetsPipeline", "NeuralAssetsPipelineOutput"]


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name], __name__), name)

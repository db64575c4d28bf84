"""Monocular depth with Depth Anything (transformers ``DepthAnythingForDepthEstimation``).

Relative Depth Anything models predict an affine-invariant *inverse* depth (disparity).
:class:`DepthAnythingEstimator` turns it into a depth up to one scale factor:
``depth = 1 / max(disparity / max_disparity, min_disparity)`` per frame, ignoring the
unknown shift (documented limit: with a large shift, far regions are compressed).
:func:`~neuralassets.perception.extract.extract` then fixes the scale with the floor:
the floor fitted in frame 0 is put at the camera's (given or assumed) height. Metric
checkpoints (``depth_estimation_type == "metric"``) are used as they are.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from ..video import to_uint8_frames
from .weights import load_model_and_processor


class DepthAnythingEstimator:
    """Per-frame depth from a Depth Anything checkpoint.

    Args:
        model: a ``DepthAnythingForDepthEstimation``.
        processor: its image processor.
        batch_size: frames per forward pass.
        min_disparity: smallest normalised disparity kept (caps relative depth at ``1 / min_disparity``).
    """

    def __init__(self, model, processor, batch_size: int = 8, min_disparity: float = 0.02) -> None:
        self.model, self.processor = model.eval(), processor
        self.batch_size, self.min_disparity = batch_size, min_disparity
        #: True when the checkpoint predicts metres; False for relative (scale-free) depth.
        self.metric = getattr(model.config, "depth_estimation_type", "relative") == "metric"

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs) -> DepthAnythingEstimator:
        """Load a checkpoint folder (or cached hub id) and its image processor."""
        from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

        model, processor = load_model_and_processor(DepthAnythingForDepthEstimation, AutoImageProcessor, name_or_path,
                                                    "a Depth Anything checkpoint")
        return cls(model, processor, **kwargs)

    @torch.no_grad()
    def estimate(self, frames: Tensor) -> Tensor:
        """Depth of ``frames`` (T, 3, H, W) float in [0, 1] → (T, H, W) float, metres if :attr:`metric`, else relative."""
        T, _, H, W = frames.shape
        images = list(to_uint8_frames(frames))
        out = []
        for i in range(0, T, self.batch_size):
            batch = images[i:i + self.batch_size]
            inputs = self.processor(images=batch, return_tensors="pt")
            outputs = self.model(**inputs)
            results = self.processor.post_process_depth_estimation(outputs, target_sizes=[(H, W)] * len(batch))
            out.extend(r["predicted_depth"].float() for r in results)
        prediction = torch.stack(out)
        if self.metric:
            return prediction.clamp(min=1e-3)
        disparity = prediction - prediction.flatten(1).amin(1)[:, None, None]
        disparity = disparity / disparity.flatten(1).amax(1).clamp(min=1e-9)[:, None, None]
        return 1.0 / disparity.clamp(min=self.min_disparity)


__all__ = ["DepthAnythingEstimator"]

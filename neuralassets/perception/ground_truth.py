"""Ground-truth "segmenter": the masks a synthetic Scene already carries."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ValidationError
from ..scene import Scene
from .detections import FrameDetections


class GroundTruthSegmenter:
    """Returns each asset's stored mask, with its id and name, in every frame it is visible.

    Args:
        scene: a Scene whose assets have ``masks`` (e.g. from the synthetic generator).
    """

    def __init__(self, scene: Scene) -> None:
        missing = [a.id for a in scene.assets if a.masks is None]
        if missing:
            raise ValidationError(f"GroundTruthSegmenter: assets {missing} have no masks")
        self.scene = scene

    def segment(self, frames: Tensor) -> list[FrameDetections]:
        """One :class:`FrameDetections` per frame of ``frames`` (T, 3, H, W), which must match the scene's size."""
        if tuple(frames.shape) != tuple(self.scene.frames.shape):
            raise ValidationError(f"GroundTruthSegmenter: frames {tuple(frames.shape)} do not match the scene's "
                                  f"{tuple(self.scene.frames.shape)}")
        out = []
        for t in range(frames.shape[0]):
            seen = [a for a in self.scene.assets if bool(a.masks[t].any())]
            if not seen:
                out.append(FrameDetections.empty(self.scene.height, self.scene.width))
                continue
            masks = torch.stack([a.masks[t] for a in seen])
            out.append(FrameDetections.from_masks(masks, labels=[a.name for a in seen], ids=[a.id for a in seen]))
        return out

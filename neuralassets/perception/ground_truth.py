"""Ground-truth "segmenter": the masks a synthetic Scene already carries."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ValidationError
from ..scene import Scene
from .detections import FrameDetections


class GroundTruthSegmenter:
    """Returns each asset's stored mask, with its id and name, in every frame it is visible.

    Frames are taken to be the scene's, in order: the first call after construction (or
    :meth:`reset`) starts at frame 0 and each call continues where the last one stopped.

    Args:
        scene: a Scene whose assets have ``masks`` (e.g. from the synthetic generator).
    """

    def __init__(self, scene: Scene) -> None:
        missing = [a.id for a in scene.assets if a.masks is None]
        if missing:
            raise ValidationError(f"GroundTruthSegmenter: assets {missing} have no masks")
        self.scene = scene
        self.frame = 0

    def reset(self) -> None:
        """Start again at the scene's first frame."""
        self.frame = 0

    def segment(self, frames: Tensor) -> list[FrameDetections]:
        """One :class:`FrameDetections` per frame of ``frames`` (T, 3, H, W), the scene's next T frames."""
        T = frames.shape[0]
        if tuple(frames.shape[1:]) != tuple(self.scene.frames.shape[1:]) or self.frame + T > self.scene.num_frames:
            raise ValidationError(f"GroundTruthSegmenter: frames {tuple(frames.shape)} from frame {self.frame} do not "
                                  f"match the scene's {tuple(self.scene.frames.shape)}")
        out = []
        for t in range(self.frame, self.frame + T):
            seen = [a for a in self.scene.assets if bool(a.masks[t].any())]
            if not seen:
                out.append(FrameDetections.empty(self.scene.height, self.scene.width))
                continue
            masks = torch.stack([a.masks[t] for a in seen])
            out.append(FrameDetections.from_masks(masks, labels=[a.name for a in seen], ids=[a.id for a in seen]))
        self.frame += T
        return out

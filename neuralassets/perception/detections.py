"""What segmenters and trackers return, and the small mask helpers they share.

A :class:`Segmenter` returns one :class:`FrameDetections` per frame. Extraction hands it
one frame at a time, in order, so a segmenter may carry state from a frame to the next
(optical flow needs the previous frame). A tracker then links those detections into
objects. :class:`CroppedMask` keeps a mask as its bounding box and the bits inside it, so
what a clip's objects cost in memory follows their size, not the frame's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from ..errors import ValidationError
from ..image_ops import masks_to_boxes


@dataclass
class FrameDetections:
    """The objects found in one frame.

    Attributes:
        masks: (K, H, W) bool instance masks.
        boxes: (K, 4) float pixel boxes ``(x0, y0, x1, y1)``; a mask covering pixel columns
            ``a..b`` spans ``x0 = a, x1 = b + 1`` (pixel edges, see docs/ARCHITECTURE.md).
        scores: (K,) float confidences in [0, 1].
        labels: K class names or text prompts, or None.
        ids: (K,) long object ids >= 1 when the source already knows identities (ground
            truth, video propagation), else None.
        estimates: (K, 10) float 3D box estimates in image terms when the segmenter predicts
            boxes too (:data:`~neuralassets.perception.learned.ESTIMATE_FIELDS`), else None.
    """

    masks: Tensor
    boxes: Tensor
    scores: Tensor
    labels: list[str] | None = None
    ids: Tensor | None = None
    estimates: Tensor | None = None

    def __post_init__(self) -> None:
        self.masks = torch.as_tensor(self.masks).bool()
        self.boxes = torch.as_tensor(self.boxes, dtype=torch.float32).reshape(-1, 4)
        self.scores = torch.as_tensor(self.scores, dtype=torch.float32).reshape(-1)
        K = self.masks.shape[0]
        if self.masks.dim() != 3 or self.boxes.shape[0] != K or self.scores.shape[0] != K:
            raise ValidationError(f"FrameDetections: expected masks (K, H, W), boxes (K, 4), scores (K,); got "
                                  f"{tuple(self.masks.shape)}, {tuple(self.boxes.shape)}, {tuple(self.scores.shape)}")
        if self.labels is not None and len(self.labels) != K:
            raise ValidationError(f"FrameDetections: {len(self.labels)} labels for {K} masks")
        if self.ids is not None:
            self.ids = torch.as_tensor(self.ids, dtype=torch.long).reshape(-1)
            if self.ids.shape[0] != K:
                raise ValidationError(f"FrameDetections: {self.ids.shape[0]} ids for {K} masks")
        if self.estimates is not None:
            self.estimates = torch.as_tensor(self.estimates, dtype=torch.float32)
            if self.estimates.dim() != 2 or self.estimates.shape[0] != K:
                raise ValidationError(f"FrameDetections: estimates {tuple(self.estimates.shape)} for {K} masks, "
                                      "expected (K, 10)")

    @classmethod
    def from_masks(cls, masks: Tensor, scores: Tensor | None = None, labels: list[str] | None = None,
                   ids: Tensor | None = None, estimates: Tensor | None = None) -> FrameDetections:
        """Detections whose boxes are the masks' bounds; scores default to 1."""
        masks = torch.as_tensor(masks).bool()
        if scores is None:
            scores = torch.ones(masks.shape[0])
        return cls(masks, masks_to_boxes(masks), scores, labels, ids, estimates)

    @classmethod
    def empty(cls, height: int, width: int) -> FrameDetections:
        """No detections in an ``height`` x ``width`` frame."""
        return cls(torch.zeros(0, height, width, dtype=torch.bool), torch.zeros(0, 4), torch.zeros(0))

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def select(self, keep: Tensor | list[int]) -> FrameDetections:
        """The detections at indices (or a bool mask) ``keep``, in that order."""
        keep = torch.as_tensor(keep)
        if keep.dtype == torch.bool:
            keep = keep.nonzero().flatten()
        keep = keep.long()
        labels = None if self.labels is None else [self.labels[i] for i in keep.tolist()]
        ids = None if self.ids is None else self.ids[keep]
        estimates = None if self.estimates is None else self.estimates[keep]
        return FrameDetections(self.masks[keep], self.boxes[keep], self.scores[keep], labels, ids, estimates)


@runtime_checkable
class Segmenter(Protocol):
    """Finds object masks in frames.

    :func:`~neuralassets.perception.extract` calls ``reset()`` (when the segmenter has one)
    before a clip and then ``segment`` on one frame at a time, in order, so a segmenter
    may keep what it needs from earlier frames between calls.
    """

    def segment(self, frames: Tensor) -> list[FrameDetections]:
        """Segment ``frames`` (T, 3, H, W) float in [0, 1]; returns T :class:`FrameDetections`."""
        ...


@dataclass
class Tracks:
    """Objects linked across frames.

    Attributes:
        ids: N object ids >= 1, in the order of the other fields.
        masks: (N, T, H, W) bool visible mask of each object in each frame (empty where unseen).
        scores: (N, T) float detection confidence, 0 where the object was not detected.
        labels: N class names or prompts ("object" when unknown).
    """

    ids: list[int]
    masks: Tensor
    scores: Tensor
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ids = [int(i) for i in self.ids]
        if not self.labels:
            self.labels = ["object"] * len(self.ids)
        N = len(self.ids)
        if self.masks.dim() != 4 or self.masks.shape[0] != N or tuple(self.scores.shape) != (N, self.masks.shape[1]):
            raise ValidationError(f"Tracks: expected masks (N, T, H, W) and scores (N, T) for {N} ids, got "
                                  f"{tuple(self.masks.shape)} and {tuple(self.scores.shape)}")
        if len(self.labels) != N:
            raise ValidationError(f"Tracks: {len(self.labels)} labels for {N} ids")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_frames(self) -> int:
        return int(self.masks.shape[1])

    @classmethod
    def from_ids(cls, detections: list[FrameDetections]) -> Tracks:
        """Group detections that carry :attr:`FrameDetections.ids` by id (no matching needed)."""
        if not detections:
            raise ValidationError("Tracks.from_ids: no frames")
        if any(d.ids is None for d in detections):
            raise ValidationError("Tracks.from_ids: every FrameDetections needs ids")
        H, W = detections[0].masks.shape[-2:]
        ids = sorted({int(i) for d in detections for i in d.ids.tolist()})
        row = {i: n for n, i in enumerate(ids)}
        masks = torch.zeros(len(ids), len(detections), H, W, dtype=torch.bool)
        scores = torch.zeros(len(ids), len(detections))
        labels = ["object"] * len(ids)
        for t, d in enumerate(detections):
            for k, i in enumerate(d.ids.tolist()):
                masks[row[i], t] |= d.masks[k]
                scores[row[i], t] = max(float(scores[row[i], t]), float(d.scores[k]))
                if d.labels is not None:
                    labels[row[i]] = d.labels[k]
        return cls(ids, masks, scores, labels)


@runtime_checkable
class Tracker(Protocol):
    """Links per-frame detections into object tracks.

    A tracker that also has ``reset()``, ``update(frame, detections) -> list[int]`` (a
    track id per detection, frame by frame) and ``kept_ids() -> list[int]`` is run one frame
    at a time by :func:`~neuralassets.perception.extract` (see
    :class:`~neuralassets.perception.tracking.MaskTracker`); one with only ``track`` sees the
    whole clip at once.
    """

    def track(self, frames: Tensor, detections: list[FrameDetections]) -> Tracks:
        """Link ``detections`` (one per frame of ``frames`` (T, 3, H, W)) into :class:`Tracks`."""
        ...


@dataclass
class CroppedMask:
    """A (H, W) bool mask kept as its bounding box and the packed bits inside it.

    Attributes:
        box: ``(x0, y0, x1, y1)`` int pixel edges of the mask's bounding box (all 0 when empty).
        bits: ``np.packbits`` of the (y1 - y0, x1 - x0) crop.
        area: number of mask pixels.
    """

    box: tuple[int, int, int, int]
    bits: np.ndarray
    area: int

    @classmethod
    def from_mask(cls, mask: Tensor | np.ndarray) -> CroppedMask:
        """Crop a (H, W) bool mask to its bounding box."""
        mask = np.asarray(mask, dtype=bool)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if len(rows) == 0:
            return cls((0, 0, 0, 0), np.zeros(0, np.uint8), 0)
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        crop = mask[y0:y1, x0:x1]
        return cls((x0, y0, x1, y1), np.packbits(crop), int(crop.sum()))

    def crop(self) -> np.ndarray:
        """(y1 - y0, x1 - x0) bool: the mask inside its box."""
        x0, y0, x1, y1 = self.box
        shape = (y1 - y0, x1 - x0)
        return np.unpackbits(self.bits, count=shape[0] * shape[1]).reshape(shape).astype(bool)

    def paste(self, out: np.ndarray) -> np.ndarray:
        """Set the mask's pixels in ``out`` (H, W) bool (in place); returns ``out``."""
        x0, y0, x1, y1 = self.box
        if self.area:
            out[y0:y1, x0:x1] |= self.crop()
        return out

    def full(self, height: int, width: int) -> np.ndarray:
        """(height, width) bool: the whole-frame mask."""
        return self.paste(np.zeros((height, width), bool))

    def shifted(self, dx: int, dy: int, height: int, width: int) -> CroppedMask:
        """The mask moved by (dx, dy) whole pixels in a ``height`` x ``width`` frame; pixels leaving it are lost."""
        x0, y0, x1, y1 = self.box
        if not self.area or (dx == 0 and dy == 0):
            return self
        crop = self.crop()
        nx0, ny0, nx1, ny1 = max(x0 + dx, 0), max(y0 + dy, 0), min(x1 + dx, width), min(y1 + dy, height)
        if nx1 <= nx0 or ny1 <= ny0:
            return CroppedMask((0, 0, 0, 0), np.zeros(0, np.uint8), 0)
        kept = crop[ny0 - y0 - dy:ny1 - y0 - dy, nx0 - x0 - dx:nx1 - x0 - dx]
        return CroppedMask((nx0, ny0, nx1, ny1), np.packbits(kept), int(kept.sum()))

    def centroid(self) -> np.ndarray:
        """(2,) float mean pixel index (x, y) of the mask; zeros when empty."""
        if not self.area:
            return np.zeros(2)
        ys, xs = np.nonzero(self.crop())
        return np.array([xs.mean() + self.box[0], ys.mean() + self.box[1]])


def cropped_iou(a: list[CroppedMask], b: list[CroppedMask]) -> np.ndarray:
    """Pairwise intersection over union, computed only where the boxes overlap.

    Args:
        a: N cropped masks of one frame size.
        b: M cropped masks of the same frame size.

    Returns:
        (N, M) float in [0, 1]; 0 where the boxes do not overlap or both masks are empty.
    """
    out = np.zeros((len(a), len(b)))
    crops_a, crops_b = [m.crop() for m in a], [n.crop() for n in b]
    for i, (m, ca) in enumerate(zip(a, crops_a)):
        for j, (n, cb) in enumerate(zip(b, crops_b)):
            x0, y0 = max(m.box[0], n.box[0]), max(m.box[1], n.box[1])
            x1, y1 = min(m.box[2], n.box[2]), min(m.box[3], n.box[3])
            if x1 <= x0 or y1 <= y0:
                continue
            inter = int((ca[y0 - m.box[1]:y1 - m.box[1], x0 - m.box[0]:x1 - m.box[0]]
                         & cb[y0 - n.box[1]:y1 - n.box[1], x0 - n.box[0]:x1 - n.box[0]]).sum())
            out[i, j] = inter / max(m.area + n.area - inter, 1)
    return out


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise intersection over union of two sets of masks.

    Args:
        a: (N, H, W) bool.
        b: (M, H, W) bool.

    Returns:
        (N, M) float in [0, 1]; 0 where both masks are empty.
    """
    a, b = a.flatten(1).float(), b.flatten(1).float()
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return inter / union.clamp(min=1)


def non_max_suppression(masks: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy mask NMS.

    Args:
        masks: (K, H, W) bool.
        scores: (K,) float.
        iou_threshold: a mask overlapping a better-scoring kept mask by more than this is dropped.

    Returns:
        (K',) long indices of kept masks, best score first.
    """
    order = scores.argsort(descending=True)
    iou = mask_iou(masks[order], masks[order])
    kept: list[int] = []
    for i in range(len(order)):
        if all(iou[i, j] <= iou_threshold for j in kept):
            kept.append(i)
    return order[kept]


__all__ = ["CroppedMask", "FrameDetections", "Segmenter", "Tracker", "Tracks", "cropped_iou", "mask_iou",
           "non_max_suppression"]

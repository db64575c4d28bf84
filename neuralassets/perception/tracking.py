"""Linking per-frame detections into object tracks.

:class:`MaskTracker` (the default) matches each frame's masks to the open tracks with the
Hungarian algorithm on a similarity that mixes mask IoU (against the track's last mask,
shifted by its recent motion) and colour-histogram similarity. A track that finds no
match waits ``patience`` frames before it is closed, so an object that is briefly occluded
keeps its id. :class:`Sam2VideoTracker` instead propagates masks through the clip with
SAM 2's video model.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from ..errors import ConfigError
from .detections import CroppedMask, FrameDetections, Tracks, cropped_iou
from .weights import load_model_and_processor


@dataclass
class TrackerConfig:
    """Settings of :class:`MaskTracker`."""

    iou_weight: float = 0.6  # weight of mask IoU in the match similarity
    appearance_weight: float = 0.4  # weight of colour-histogram similarity (Bhattacharyya coefficient)
    min_similarity: float = 0.3  # pairs below this never match
    patience: int = 8  # frames a track survives without a match (occlusions up to this long keep the id)
    histogram_bins: int = 8  # bins per RGB channel of the appearance histogram
    appearance_momentum: float = 0.8  # how much of the old histogram an update keeps
    min_track_frames: int = 3  # tracks matched in fewer frames are dropped as flicker (at most the clip's length) ...
    min_track_share: float = 0.05  # ... or in less than this share of the clip (half a second of a 10-second clip)

    def __post_init__(self) -> None:
        if self.patience < 0 or self.histogram_bins < 1 or self.min_track_frames < 1:
            raise ConfigError("TrackerConfig: patience >= 0, histogram_bins >= 1 and min_track_frames >= 1 are required")


@dataclass
class _Track:
    id: int
    mask: CroppedMask  # last matched mask
    velocity: np.ndarray  # (2,) centroid motion per frame in pixels (x, y)
    histogram: Tensor  # (bins**3,) appearance
    last_frame: int
    label: str


class MaskTracker:
    """Mask-IoU + colour-histogram tracker with Hungarian matching, run one frame at a time.

    Each open track keeps its last mask (cropped to its box), its velocity and its colour
    histogram; nothing grows with the clip but one match count per id. Detections that
    already carry ids (:attr:`FrameDetections.ids`) keep them.

    Args:
        config: see :class:`TrackerConfig`.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.reset()

    def reset(self) -> None:
        """Forget every track: the next :meth:`update` starts a new clip."""
        self._open: list[_Track] = []
        self._counts: dict[int, int] = {}
        self._given: set[int] = set()  # ids that came with the detections: never dropped as flicker
        self._frame = 0
        self._next_id = 1

    def update(self, frame: Tensor, detections: FrameDetections) -> list[int]:
        """Match one frame's detections to the open tracks.

        Args:
            frame: (3, H, W) float in [0, 1], the frame the detections come from.
            detections: its K detections.

        Returns:
            K track ids >= 1, new ids numbered in order of first appearance.
        """
        cfg = self.config
        t = self._frame
        self._frame += 1
        if detections.ids is not None:
            ids = [int(i) for i in detections.ids.tolist()]
            self._given.update(ids)
        else:
            H, W = frame.shape[-2:]
            cropped = [CroppedMask.from_mask(m.numpy()) for m in detections.masks]
            hists = [colour_histogram(frame, m, cfg.histogram_bins) for m in detections.masks]
            ids = [0] * len(detections)
            if self._open and len(detections):
                sim = self._similarity(cropped, hists, t, H, W)
                rows, cols = linear_sum_assignment(-sim)
                for r, c in zip(rows, cols):
                    if sim[r, c] >= cfg.min_similarity:
                        self._match(self._open[r], cropped[c], hists[c], t)
                        ids[c] = self._open[r].id
            for c in range(len(detections)):
                if not ids[c]:
                    label = detections.labels[c] if detections.labels is not None else "object"
                    self._open.append(_Track(self._next_id, cropped[c], np.zeros(2), hists[c], t, label))
                    ids[c] = self._next_id
                    self._next_id += 1
            self._open = [tr for tr in self._open if t - tr.last_frame <= cfg.patience]
        for i in ids:
            self._counts[i] = self._counts.get(i, 0) + 1
        return ids

    def kept_ids(self) -> list[int]:
        """Ids matched in at least ``min_track_frames`` frames and ``min_track_share`` of the frames seen so far (at most
        all of them), and every given id; ascending."""
        need = min(max(self.config.min_track_frames, math.ceil(self.config.min_track_share * self._frame)), max(self._frame, 1))
        return sorted(i for i, n in self._counts.items() if n >= need or i in self._given)

    def track(self, frames: Tensor, detections: list[FrameDetections]) -> Tracks:
        """Link ``detections`` (one per frame of ``frames`` (T, 3, H, W) float in [0, 1]) into :class:`Tracks`.

        Runs :meth:`update` frame by frame from a fresh start; track ids are 1, 2, ... in
        order of first appearance after dropping flicker (detections with ids keep theirs).
        The returned masks are (N, T, H, W): for short clips and tests; extraction itself
        never builds them.
        """
        if len(detections) != frames.shape[0]:
            raise ConfigError(f"MaskTracker.track: {len(detections)} detections for {frames.shape[0]} frames")
        self.reset()
        assigned = [self.update(frame, det) for frame, det in zip(frames, detections)]
        keep = self.kept_ids()
        with_ids = all(d.ids is not None for d in detections)
        T, _, H, W = frames.shape
        row = {i: r for r, i in enumerate(keep)}
        masks = torch.zeros(len(keep), T, H, W, dtype=torch.bool)
        scores = torch.zeros(len(keep), T)
        labels = ["object"] * len(keep)
        for t, (det, ids) in enumerate(zip(detections, assigned)):
            for c, i in enumerate(ids):
                if i not in row:
                    continue
                masks[row[i], t] |= det.masks[c]
                scores[row[i], t] = max(float(scores[row[i], t]), float(det.scores[c]))
                if det.labels is not None:
                    labels[row[i]] = det.labels[c]
        # renumber 1..N so ids stay dense after dropping flicker; given ids are kept as they are
        return Tracks(keep if with_ids else list(range(1, len(keep) + 1)), masks, scores, labels)

    def _similarity(self, masks: list[CroppedMask], hists: list[Tensor], t: int, H: int, W: int) -> np.ndarray:
        """(N_tracks, K) similarity in [0, 1]."""
        cfg = self.config
        predicted = []
        for tr in self._open:
            dx, dy = np.round(tr.velocity * (t - tr.last_frame)).astype(int).tolist()
            predicted.append(tr.mask.shifted(dx, dy, H, W))
        iou = cropped_iou(predicted, masks)
        app = (torch.stack([tr.histogram for tr in self._open]).sqrt() @ torch.stack(hists).sqrt().T).numpy()  # Bhattacharyya
        sim = (cfg.iou_weight * iou + cfg.appearance_weight * app) / (cfg.iou_weight + cfg.appearance_weight)
        # a track whose prediction does not touch the detection at all must rely on appearance alone,
        # and only after it has been lost (a visible object does not jump)
        lost = np.array([t - tr.last_frame > 1 for tr in self._open])[:, None]
        return np.where((iou > 0) | lost, sim, 0.0)

    def _match(self, track: _Track, mask: CroppedMask, hist: Tensor, t: int) -> None:
        gap = t - track.last_frame
        motion = (mask.centroid() - track.mask.centroid()) / max(gap, 1)
        track.velocity = 0.5 * track.velocity + 0.5 * motion
        m = self.config.appearance_momentum
        track.histogram = m * track.histogram + (1 - m) * hist
        track.mask, track.last_frame = mask, t


def colour_histogram(image: Tensor, mask: Tensor, bins: int) -> Tensor:
    """Normalised joint RGB histogram of the pixels under a mask.

    Args:
        image: (3, H, W) float in [0, 1].
        mask: (H, W) bool.
        bins: bins per channel.

    Returns:
        (bins**3,) float summing to 1 (uniform for an empty mask).
    """
    pixels = image[:, mask]  # (3, P)
    if pixels.shape[1] == 0:
        return torch.full((bins**3,), 1.0 / bins**3)
    q = (pixels * bins).long().clamp(0, bins - 1)
    index = (q[0] * bins + q[1]) * bins + q[2]
    hist = torch.bincount(index, minlength=bins**3).float()
    return hist / hist.sum()


class Sam2VideoTracker:
    """Tracks by SAM 2 video propagation (transformers ``Sam2VideoModel`` and its inference session).

    The objects the segmenter found in the first frame with any detection are prompted
    with their boxes and propagated through the whole clip (forwards, then backwards to
    earlier frames); ids come from the propagation, so no matching is needed. Objects that
    enter later are not added (documented limit).

    Args:
        model: a ``Sam2VideoModel``.
        processor: its ``Sam2VideoProcessor``.
        max_objects: most objects prompted (best detection scores first).
    """

    def __init__(self, model, processor, max_objects: int = 20) -> None:
        self.model, self.processor, self.max_objects = model.eval(), processor, max_objects

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs) -> Sam2VideoTracker:
        """Load a SAM 2 video checkpoint folder (or cached hub id) with its processor."""
        from transformers import Sam2VideoModel, Sam2VideoProcessor

        model, processor = load_model_and_processor(Sam2VideoModel, Sam2VideoProcessor, name_or_path,
                                                    "a SAM 2 video checkpoint")
        return cls(model, processor, **kwargs)

    @torch.no_grad()
    def track(self, frames: Tensor, detections: list[FrameDetections]) -> Tracks:
        """Propagate the objects detected in the first frame that has any through ``frames`` (T, 3, H, W) in [0, 1]."""
        from ..video import to_uint8_frames

        T, _, H, W = frames.shape
        if len(detections) != T:
            raise ConfigError(f"Sam2VideoTracker.track: {len(detections)} detections for {T} frames")
        key = next((t for t, d in enumerate(detections) if len(d)), None)
        if key is None:
            return Tracks([], torch.zeros(0, T, H, W, dtype=torch.bool), torch.zeros(0, T))
        det = detections[key]
        order = det.scores.argsort(descending=True)[: self.max_objects].tolist()
        ids = list(range(1, len(order) + 1))
        labels = [det.labels[k] if det.labels is not None else "object" for k in order]
        session = self.processor.init_video_session(video=to_uint8_frames(frames), inference_device="cpu")
        # the session keeps (and edits) the list it is given
        self.processor.add_inputs_to_inference_session(inference_session=session, frame_idx=key, obj_ids=list(ids),
                                                       input_boxes=[[det.boxes[k].tolist() for k in order]])
        masks = torch.zeros(len(ids), T, H, W, dtype=torch.bool)
        scores = torch.zeros(len(ids), T)
        runs = [dict(start_frame_idx=key)] + ([dict(start_frame_idx=key, reverse=True)] if key > 0 else [])
        for run in runs:
            for output in self.model.propagate_in_video_iterator(session, **run):
                found = self.processor.post_process_masks([output.pred_masks], original_sizes=[[H, W]], binarize=True)[0]
                for row, obj in enumerate(output.object_ids):
                    masks[obj - 1, output.frame_idx] = found[row, 0].bool()
                    scores[obj - 1, output.frame_idx] = float(found[row, 0].any())
        return Tracks(ids, masks, scores, labels)

"""From frames to a :class:`~neuralassets.scene.Scene`: segment, track, find cameras, lift to 3D.

:func:`extract` chains the pieces of :mod:`neuralassets.perception` on a clip held in
memory; :func:`extract_video` reads a video file and writes the Scene folder, holding
neither the clip nor the objects' masks whole. Both run one frame at a time: the
segmenter and the tracker see each frame once, in order, and what is kept of it is
small (each detection's mask cropped to its box and bit-packed, its score and track id),
so memory grows with the clip by about a bit per object pixel and a few numbers per
frame, not by objects x frames x pixels. Cameras wait for the first few frames (their
vanishing points give the pitch); boxes are lifted frame by frame once the cameras are
known and then stabilised per object. Every piece can be swapped (a SAM segmenter, SAM 2
propagation, Depth Anything, known cameras). By default the learned model shipped in
``weights/perception`` segments, gives metric depth and places each object's box
(:mod:`~neuralassets.perception.learned`); without its weights the weights-free classical
stack does.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from .. import geometry
from ..errors import ValidationError
from ..image_ops import any_along
from ..scene import Asset, Camera, Scene, SceneWriter, check_frames
from .camera import (
    ASSUMED_HEIGHT,
    ASSUMED_PITCH,
    CameraConfig,
    CameraMotion,
    assumed_intrinsics,
    estimate_up,
    pitch_and_roll,
    up_from_pitch,
)
from .classical import ClassicalSegmenter
from .detections import CroppedMask, FrameDetections, Segmenter, Tracker, Tracks
from .learned import LearnedPerception, boxes_from_estimates, default_perception
from .lifting import DepthLifter, GroundPlaneLifter, LiftedBoxes, camera_from_floor, fit_floor, stabilise
from .tracking import MaskTracker


class ExtractionWarning(UserWarning):
    """Extraction finished, but the footage is out of its reach in a way the user should know (said once per clip)."""


@dataclass
class ExtractionConfig:
    """Settings of :func:`extract` beyond the pieces it is given."""

    camera: CameraConfig | None = None  # given or assumed camera values (see CameraConfig)
    floor_threshold: float = 0.02  # RANSAC inlier distance as a fraction of each background pixel's depth
    min_visible_frames: int = 1  # tracks lifted in fewer frames are left out of the scene
    up_frames: int = 8  # first frames whose vanishing points give the camera's pitch (held until then)
    top_down_degrees: float = 65.0  # a camera pitched down more than this films from above
    min_floor_share: float = 0.5  # fewer lifted (object, frame) pairs than this share: the clip shows no floor
    training_pitch: tuple[float, float] = (15.0, 50.0)  # camera pitches of the shipped model's training scenes, widened
    max_object_cover: float = 0.5  # objects covering more of the frame than this on average: not objects on a floor
    # Keep the default learned model's depth in the Scene. It always places the camera and the boxes; off, renders draw
    # objects through their 3D boxes, which scored higher end to end than its depth (docs/PERCEPTION.md).
    keep_learned_depth: bool = False


def extract(frames: Tensor, segmenter: Segmenter | None = None, tracker: Tracker | None = None, lifter=None,
            camera: Camera | list[Camera] | Tensor | None = None, depth: Tensor | None = None, depth_estimator=None,
            config: ExtractionConfig | None = None, progress: bool = False) -> Scene:
    """Find the objects of a clip and return them as a Scene of neural assets.

    Args:
        frames: (T, 3, H, W) float in [0, 1]; T = 2 is a frame pair.
        segmenter: anything with ``segment(frames) -> list[FrameDetections]`` (see
            :class:`~neuralassets.perception.detections.Segmenter`; called one frame at a
            time); default: the learned model of ``weights/perception``
            (:func:`~neuralassets.perception.learned.default_perception`) when it is there,
            else :class:`~neuralassets.perception.classical.ClassicalSegmenter`. Detections
            that carry box estimates (the learned model's) get their 3D boxes from them,
            not from the lifter.
        tracker: default :class:`~neuralassets.perception.tracking.MaskTracker`; a tracker
            with only ``track(frames, detections) -> Tracks`` (SAM 2) sees the whole clip.
        lifter: anything with ``lift_frame(masks, camera, depth) -> (K, 7)`` and a
            ``config`` (:class:`~neuralassets.perception.lifting.LiftingConfig`); default
            :class:`~neuralassets.perception.lifting.DepthLifter` when depth is known, else
            :class:`~neuralassets.perception.lifting.GroundPlaneLifter`.
        camera: T cameras (used as they are); one Camera for frame 0 (later frames follow
            the estimated motion); a (3, 3) K (pose from the floor, the given height and
            pitch, or the vanishing points); or None (K from the field of view too).
        depth: (T, H, W) float camera-frame depth in metres.
        depth_estimator: used when ``depth`` is None: anything with ``estimate(frames) ->
            (T, H, W)`` and a bool ``metric``; relative depth is scaled so the fitted floor
            lies at the camera's height (see docs/PERCEPTION.md). Default: the segmenter
            when it is the learned model (its metric depth), else none.
        config: see :class:`ExtractionConfig`.
        progress: show a progress bar over the frames.

    Returns:
        A validated Scene with one asset per track that could be lifted: per-frame 3D
        boxes, 2D boxes, masks, visibility (mask area over the track's largest mask area)
        and ``source_frame`` = the frame where it is most visible. ``metadata["extraction"]``
        records which pieces were used, the camera's height and pitch and where they came
        from, and the warnings given. Footage out of reach (no objects, grayscale, a camera
        looking straight down, no floor, implausible boxes, far from the training scenes)
        gets one :class:`ExtractionWarning` (or ``UserWarning``) each.

    Raises:
        ValidationError: ``frames`` is not (T, 3, H, W) float with finite values in [0, 1]
            (uint8 is refused, not rescaled), or depth / cameras do not match it.
    """
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValidationError(f"extract: frames must be (T, 3, H, W), got {tuple(frames.shape)}")
    check_frames(frames, "extract: frames")
    frames = frames.float()
    T, _, H, W = frames.shape
    if depth is not None and tuple(depth.shape) != (T, H, W):
        raise ValidationError(f"extract: depth must be (T, H, W) = {(T, H, W)}, got {tuple(depth.shape)}")
    if isinstance(camera, list) and len(camera) != T:
        raise ValidationError(f"extract: {len(camera)} cameras for {T} frames")
    segmenter, depth_estimator, store_depth = _default_pieces(segmenter, depth is not None, depth_estimator, config)
    segmenter, tracker = _whole_clip_tracking(frames, segmenter, tracker)
    run = _Extraction(H, W, segmenter, tracker, lifter, camera, depth, depth_estimator, config, store_depth)
    for frame in tqdm(frames, desc="extract", disable=not progress, leave=False):
        run.add(frame)
    found = run.finish()
    assets = found.assets(dense_masks=True)
    found.warn(stacklevel=2)
    return Scene(frames, found.cameras, assets, depth=found.depth, metadata=found.metadata).validate()


def extract_video(source: str | os.PathLike, out: str | os.PathLike, max_side: int | None = 512,
                  max_frames: int | None = None, stride: int = 1, overlay: str = "png", segmenter: Segmenter | None = None,
                  tracker: Tracker | None = None, lifter=None, camera: Camera | Tensor | None = None, depth_estimator=None,
                  config: ExtractionConfig | None = None, progress: bool = False) -> Path:
    """Extract a video file (or folder of frames) straight into a Scene folder, in bounded memory.

    Frames are decoded one at a time (:func:`~neuralassets.video.iter_video`), written to
    the folder and passed through :func:`extract`'s stages; each asset's masks are written
    frame by frame from their cropped form. Only a tracker that needs the whole clip
    (SAM 2 propagation) makes the clip sit in memory.

    Args:
        source: video file or folder of frames.
        out: Scene folder to write.
        max_side, max_frames, stride: as in :func:`~neuralassets.video.read_video`.
        overlay: ``"png"`` (overlay.png of the most visible object's source frame),
            ``"gif"`` (overlay.gif of every frame) or ``"none"``.
        segmenter, tracker, lifter, camera, depth_estimator, config, progress: as in :func:`extract`
            (``camera`` is one Camera or a (3, 3) K).

    Returns:
        ``out``. ``metadata["source"]`` holds the video's name and frame rate.
    """
    from PIL import Image

    from ..video import iter_video, read_video, to_uint8_frames
    from .overlay import write_overlay

    out = Path(out)
    source = Path(source)
    if tracker is not None and not hasattr(tracker, "update"):
        frames, fps = read_video(source, max_side=max_side, max_frames=max_frames, stride=stride)
        scene = extract(frames, segmenter, tracker, lifter, camera, None, depth_estimator, config, progress)
        scene.metadata["source"] = {"video": source.name, "fps": fps}
        scene.save(out)
        write_overlay(out, overlay, fps, scene.assets, scene.cameras, lambda t: to_uint8_frames(scene.frames[t:t + 1])[0],
                      lambda t: [None if a.masks is None else a.masks[t].numpy() for a in scene.assets])
        return out
    segmenter, depth_estimator, store_depth = _default_pieces(segmenter, False, depth_estimator, config)
    stream, fps = iter_video(source, max_side=max_side, max_frames=max_frames, stride=stride)
    writer = SceneWriter(out)
    run = None
    for image in tqdm(stream, desc="extract", disable=not progress, leave=False):
        frame = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        if run is None:
            run = _Extraction(frame.shape[1], frame.shape[2], segmenter, tracker, lifter, camera, None, depth_estimator,
                              config, store_depth)
        writer.add_frame(frame)
        run.add(frame)
    found = run.finish()
    found.metadata["source"] = {"video": source.name, "fps": fps}
    assets = found.assets(dense_masks=False)
    for n, asset in enumerate(assets):
        writer.add_masks(asset.id, found.masks_of(n))
    writer.finish(found.cameras, assets, depth=found.depth, metadata=found.metadata)
    found.warn(stacklevel=2)
    write_overlay(out, overlay, fps, assets, found.cameras,
                  lambda t: np.asarray(Image.open(out / "frames" / f"{t:05d}.png").convert("RGB")).copy(),
                  lambda t: [found.crops[n][t].full(run.H, run.W) if t in found.crops[n] else None for n in found.keep])
    return out


# --------------------------------------------------------------------------------------
# The frame-by-frame run
# --------------------------------------------------------------------------------------

def _default_pieces(segmenter: Segmenter | None, depth_given: bool, depth_estimator,
                    config: ExtractionConfig | None) -> tuple:
    """The segmenter and depth estimator a run uses when the caller left them out, and whether its Scene keeps the depth.

    The segmenter defaults to the learned model of ``weights/perception`` where it is
    shipped, else to :class:`~neuralassets.perception.classical.ClassicalSegmenter`; the
    learned model, default or given, also gives the depth unless depth or a depth estimator
    was given (one forward pass serves both). That depth places the camera and the boxes and
    is left out of the Scene unless ``config.keep_learned_depth``; depth given, or from a
    depth estimator given, is kept.

    Returns:
        ``(segmenter, depth_estimator, store_depth)``.
    """
    if segmenter is None:
        segmenter = default_perception() or ClassicalSegmenter()
    store_depth = True
    if depth_estimator is None and not depth_given and isinstance(segmenter, LearnedPerception):
        depth_estimator = segmenter
        store_depth = (config or ExtractionConfig()).keep_learned_depth
    return segmenter, depth_estimator, store_depth


@dataclass
class _Detection:
    """What is kept of one detection: its track id, mask (cropped), score, label and 3D box estimate (if any)."""

    track: int
    mask: CroppedMask
    score: float
    label: str
    estimate: np.ndarray | None = None  # (10,) learned.ESTIMATE_FIELDS, from segmenters that predict boxes


class _Extraction:
    """One clip's extraction, fed one frame at a time (see the module docstring)."""

    def __init__(self, height: int, width: int, segmenter: Segmenter | None, tracker: Tracker | None, lifter,
                 camera: Camera | list[Camera] | Tensor | None, depth: Tensor | None, depth_estimator,
                 config: ExtractionConfig | None, store_depth: bool = True) -> None:
        self.cfg = config or ExtractionConfig()
        self.store_depth = store_depth
        self.camera_cfg = self.cfg.camera or CameraConfig()
        self.H, self.W = height, width
        self.segmenter = segmenter or ClassicalSegmenter()
        # depth maps are held for the Scene or for lifting; the learned model's detections carry their boxes, so unless
        # the Scene keeps its depth the clip's depth maps are not held and memory does not grow with them
        self.hold_depth = store_depth or not isinstance(self.segmenter, LearnedPerception)
        self.estimate_noise = getattr(self.segmenter, "estimate_noise", None)  # weighs a segmenter's box estimates
        self.tracker = tracker or MaskTracker()
        for piece in (self.segmenter, self.tracker):
            if hasattr(piece, "reset"):
                piece.reset()
        has_depth = depth is not None or depth_estimator is not None
        self.lifter = lifter or (DepthLifter() if has_depth else GroundPlaneLifter())
        self.given_cameras = camera if isinstance(camera, list) else None
        self.first_given = camera if isinstance(camera, Camera) else None
        if isinstance(camera, (list, Camera)):
            self.K = (camera[0] if isinstance(camera, list) else camera).K
        else:
            self.K = camera if camera is not None else assumed_intrinsics(width, height, self.camera_cfg)
        self.depth, self.depth_estimator = depth, depth_estimator
        self.relative = depth is None and depth_estimator is not None and not getattr(depth_estimator, "metric", False)
        self.depth_scale = 1.0
        self.detections: list[list[_Detection]] = []  # per frame
        self.depth_frames: list[Tensor] = []
        self.cameras: list[Camera] = []
        self.pending: list[tuple[Tensor, Tensor, Tensor | None]] = []  # frames waiting for the first camera
        self.motion: CameraMotion | None = None
        self.camera_note: dict = {}
        self.notes: dict[str, str] = {}
        self.grey_frames = 0
        self.object_cover = 0.0
        self.given_ids = True
        self.estimated_boxes = self.lifted_boxes = 0  # per-frame boxes from the segmenter's estimates / the lifter

    @property
    def t(self) -> int:
        return len(self.detections)

    def add(self, frame: Tensor) -> None:
        """Take the next frame: (3, H, W) float in [0, 1]."""
        if tuple(frame.shape) != (3, self.H, self.W):
            raise ValidationError(f"extract: frame {self.t} is {tuple(frame.shape)}, expected {(3, self.H, self.W)}")
        if self.given_cameras is not None and self.t >= len(self.given_cameras):
            raise ValidationError(f"extract: {len(self.given_cameras)} cameras for more frames")
        det = self.segmenter.segment(frame[None])[0]
        if len(det):
            self.given_ids &= det.ids is not None  # a frame without detections says nothing about ids
        ids = self.tracker.update(frame, det)
        labels = det.labels or ["object"] * len(det)
        kept: dict[int, _Detection] = {}
        areas = det.masks.flatten(1).sum(1).tolist() if len(det) else []
        for k, i in enumerate(ids):  # detections sharing a given id are one object, estimated as its larger part
            estimate = None if det.estimates is None else det.estimates[k].numpy()
            if i in kept:
                merged = kept[i].mask.full(self.H, self.W) | det.masks[k].numpy()
                if kept[i].mask.area >= areas[k]:
                    estimate = kept[i].estimate
                kept[i] = _Detection(i, CroppedMask.from_mask(merged), max(kept[i].score, float(det.scores[k])), labels[k],
                                     estimate)
            else:
                kept[i] = _Detection(i, CroppedMask.from_mask(det.masks[k].numpy()), float(det.scores[k]), labels[k],
                                     estimate)
        self.detections.append(list(kept.values()))
        objects = any_along(det.masks, 0) if len(det) else torch.zeros(self.H, self.W, dtype=torch.bool)
        self.object_cover += float(objects.float().mean())
        self.grey_frames += _is_grey(frame)
        depth = self._depth(frame, objects)
        if self.given_cameras is not None:
            self.cameras.append(self.given_cameras[self.t - 1])
        elif self.motion is not None:
            self.cameras.append(self.motion.update(frame, objects, depth))
        else:
            self.pending.append((frame, objects, depth))
            if len(self.pending) >= self.cfg.up_frames or not self._needs_vanishing_points():
                self._start_cameras()

    def _depth(self, frame: Tensor, objects: Tensor) -> Tensor | None:
        t = self.t - 1
        if self.depth is not None:
            depth = self.depth[t].float()
        elif self.depth_estimator is not None:
            depth = self.depth_estimator.estimate(frame[None])[0].float()
            if tuple(depth.shape) != (self.H, self.W):
                raise ValidationError(f"extract: the depth estimator gave {tuple(depth.shape)} for a "
                                      f"{self.W}x{self.H} frame")
        else:
            return None
        if self.relative:
            if t == 0:
                normal, offset, share = self._fit_floor(depth, objects)
                self.depth_scale = self._scale_height() / offset
            depth = depth * self.depth_scale
        if self.hold_depth:
            self.depth_frames.append(depth)
        return depth

    def _scale_height(self) -> float:
        """The camera height relative depth is scaled to."""
        first = self.given_cameras[0] if self.given_cameras is not None else self.first_given
        if first is not None:
            height = float(first.center[2])
            if height <= 0:
                raise ValidationError(f"extract: the given camera is {height:.3g} m above the floor; cannot scale relative depth")
            return height
        return self.camera_cfg.height or ASSUMED_HEIGHT

    def _fit_floor(self, depth: Tensor, objects: Tensor) -> tuple[Tensor, float, float]:
        """Floor plane (normal, offset) in camera coordinates from one depth map's background pixels, and its inlier share."""
        ys, xs = (~objects & torch.isfinite(depth) & (depth > 0)).nonzero(as_tuple=True)
        if len(xs) < 3:
            raise ValidationError("extract: no background pixels with depth to fit the floor to")
        step = max(1, len(xs) // 4000)  # a few thousand points pin a plane down
        xs, ys = xs[::step], ys[::step]
        uv = torch.stack([xs, ys], -1).float() + 0.5
        points = geometry.unproject_points(uv, depth[ys, xs], self.K, torch.eye(3), torch.zeros(3))
        normal, offset, inliers = fit_floor(points, threshold=self.cfg.floor_threshold * depth[ys, xs])
        return normal, offset, float(inliers.float().mean())

    def _needs_vanishing_points(self) -> bool:
        return self.first_given is None and self.camera_cfg.pitch_degrees is None and self.depth is None \
            and self.depth_estimator is None

    def _start_cameras(self) -> None:
        """Fix the first camera from what is known by now and run the camera motion over the held frames."""
        cfg = self.camera_cfg
        frame0, objects0, depth0 = self.pending[0]
        if self.first_given is not None:
            first = self.first_given
            self.camera_note = {"height_source": "given", "pitch_source": "given"}
        else:
            height, height_source = (cfg.height, "given") if cfg.height is not None else (ASSUMED_HEIGHT, "assumed")
            if cfg.pitch_degrees is not None:
                up, pitch_source = up_from_pitch(cfg.pitch_degrees), "given"
            elif depth0 is not None:
                up, offset, share = self._fit_floor(depth0, objects0)
                pitch_source = "depth"
                if not self.relative and cfg.height is None:
                    height, height_source = offset, "depth"
                if share < 0.3:
                    self.notes["no floor"] = (f"no floor found: the plane fitted to the first frame's depth holds only "
                                              f"{100 * share:.0f} % of the background; 3D boxes stand on a guess")
            else:
                up = estimate_up(torch.stack([f for f, _, _ in self.pending]), self.K, cfg)
                pitch_source = "vanishing points"
                if up is None or _share_below_horizon(torch.stack([o for _, o, _ in self.pending]), self.K, up) < 0.5:
                    # objects stand on the floor: a horizon above most of their lowest points is a wrong one
                    up, pitch_source = up_from_pitch(ASSUMED_PITCH), "assumed"
            first = camera_from_floor(up, height, self.K, self.W, self.H)
            self.camera_note = {"height_source": height_source, "pitch_source": pitch_source}
        self._note_camera(first)
        self.motion = CameraMotion(first, cfg)
        for frame, objects, depth in self.pending:
            self.cameras.append(self.motion.update(frame, objects, depth))
        self.pending = []

    def _note_camera(self, first: Camera) -> None:
        """Record the first camera's height, pitch, roll and field of view; say when it films from above."""
        pitch, roll = pitch_and_roll(first.R[:, 2])
        self.camera_note.update(height=round(float(first.center[2]), 4), pitch_degrees=round(pitch, 2),
                                roll_degrees=round(roll, 2), fov_degrees=round(_fov(first), 2))
        if pitch > self.cfg.top_down_degrees:
            self.notes["top-down"] = (f"the camera looks down from above (pitch {pitch:.0f}°): objects' heights and "
                                      "how far they stand cannot be read from their outlines, so their 3D boxes are "
                                      "rough; the shipped model was trained on cameras 22-40° down")

    def finish(self) -> _Found:
        """Lift every kept track frame by frame with the cameras now known; returns what was found."""
        if not self.detections:
            raise ValidationError("extract: no frames")
        if self.pending:
            self._start_cameras()
        if self.given_cameras is not None:
            self.camera_note = {"height_source": "given", "pitch_source": "given"}
            self._note_camera(self.cameras[0])
        T = self.t
        kept = self.tracker.kept_ids() if hasattr(self.tracker, "kept_ids") else sorted(
            {d.track for frame in self.detections for d in frame})
        row = {i: n for n, i in enumerate(kept)}
        raw = torch.full((len(kept), T, 7), float("nan"))
        for t, found in enumerate(self.detections):
            found = [d for d in found if d.track in row]
            if not found:
                continue
            for d, box in zip(found, self._boxes(found, t)):
                raw[row[d.track], t] = box
        attempted = sum(1 for frame in self.detections for d in frame if d.track in row)
        lifted = int(torch.isfinite(raw[..., 0]).sum())
        if attempted and lifted < self.cfg.min_floor_share * attempted and "no floor" not in self.notes:
            self.notes["no floor"] = (f"no floor found under most objects: {attempted - lifted} of {attempted} object "
                                      "outlines never meet a floor the camera sees, so they get no 3D box there")
        depth = torch.stack(self.depth_frames) if self.depth_frames and self.store_depth else None
        return _Found(self, kept, stabilise(raw, self.lifter.config), depth)

    def _boxes(self, found: list[_Detection], t: int) -> Tensor:
        """(K, 7) per-frame boxes of frame t's detections: from their estimates where they have them, else lifted."""
        estimated = [k for k, d in enumerate(found) if d.estimate is not None]
        self.estimated_boxes += len(estimated)
        self.lifted_boxes += len(found) - len(estimated)
        if len(estimated) == len(found):
            return boxes_from_estimates(torch.from_numpy(np.stack([d.estimate for d in found])), self.cameras[t],
                                        self.estimate_noise)
        masks = torch.from_numpy(np.stack([d.mask.full(self.H, self.W) for d in found]))
        boxes = self.lifter.lift_frame(masks, self.cameras[t], self.depth_frames[t] if self.depth_frames else None)
        if estimated:
            boxes[estimated] = boxes_from_estimates(torch.from_numpy(np.stack([found[k].estimate for k in estimated])),
                                                    self.cameras[t], self.estimate_noise)
        return boxes


def _whole_clip_tracking(frames: Tensor, segmenter: Segmenter, tracker: Tracker | None) -> tuple:
    """A tracker that needs the whole clip (SAM 2) runs first; its tracks then stream as detections with ids."""
    if tracker is None or hasattr(tracker, "update"):
        return segmenter, tracker
    if hasattr(segmenter, "reset"):
        segmenter.reset()
    tracks = tracker.track(frames, segmenter.segment(frames))
    return _TrackedDetections(tracks), None


class _TrackedDetections:
    """Replays :class:`Tracks` frame by frame as detections carrying their track ids."""

    def __init__(self, tracks: Tracks) -> None:
        self.tracks, self.frame = tracks, 0

    def segment(self, frames: Tensor) -> list[FrameDetections]:
        out = []
        for _ in range(frames.shape[0]):
            masks = self.tracks.masks[:, self.frame]
            seen = masks.flatten(1).any(1).nonzero().flatten().tolist()
            out.append(FrameDetections.from_masks(masks[seen], self.tracks.scores[seen, self.frame],
                                                  [self.tracks.labels[n] for n in seen], [self.tracks.ids[n] for n in seen]))
            self.frame += 1
        return out


@dataclass
class _Found:
    """The kept tracks of a finished run, their boxes, and the checks made on them."""

    run: _Extraction
    ids: list[int]
    boxes: LiftedBoxes
    depth: Tensor | None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        run = self.run
        T, H, W = run.t, run.H, run.W
        N = len(self.ids)
        row = {i: n for n, i in enumerate(self.ids)}
        self.cameras = run.cameras
        self.area = torch.zeros(N, T)
        self.boxes_2d = torch.zeros(N, T, 4)
        self.scores = torch.zeros(N, T)
        self.labels = ["object"] * N
        self.crops: list[dict[int, CroppedMask]] = [{} for _ in range(N)]
        for t, found in enumerate(run.detections):
            for d in found:
                if d.track not in row:
                    continue
                n = row[d.track]
                self.area[n, t] = d.mask.area
                self.boxes_2d[n, t] = torch.tensor(d.mask.box, dtype=torch.float32)
                self.scores[n, t] = d.score
                self.labels[n] = d.label
                self.crops[n][t] = d.mask
        self.keep = [n for n in range(N) if int(self.boxes.measured[n].sum()) >= run.cfg.min_visible_frames]
        notes = run.notes
        if run.grey_frames == T:
            notes["grayscale"] = ("the clip is grayscale: objects are found by brightness and motion alone, "
                                  "and a neural render has no colour to take from it")
        if not self.keep:
            notes["no objects"] = (f"no objects found in {T} frame(s) of {W}x{H}; the scene has no assets "
                                   "(try another segmenter, or a lower ClassicalConfig.min_area)")
        implausible = self._implausible()
        if implausible:
            listed = "; ".join(f"object {k + 1}: {why}" for k, why in implausible.items())
            notes["implausible boxes"] = (f"{len(implausible)} of {len(self.keep)} 3D boxes are implausible ({listed}); "
                                          "they are kept but marked, check the camera height and pitch")
        self.implausible = implausible
        far = self._far_from_training()
        if far:
            notes["training domain"] = ("this clip is far from the synthetic scenes the shipped renderer was trained on ("
                                        + "; ".join(far) + "): its neural renders will not look real until a model "
                                        "trained on real video is loaded")
        extraction = {
            "segmenter": type(run.segmenter).__name__ if not isinstance(run.segmenter, _TrackedDetections)
            else "from tracker",
            "tracker": type(run.tracker).__name__,
            "lifter": " + ".join((["segmenter estimates"] if run.estimated_boxes else [])
                                 + ([type(run.lifter).__name__] if run.lifted_boxes or not run.estimated_boxes else [])),
            "depth": "given" if run.depth is not None else type(run.depth_estimator).__name__ if run.depth_estimator
            else None,
            "depth_stored": run.store_depth and (run.depth is not None or run.depth_estimator is not None),
            "cameras": "given" if run.given_cameras is not None else "estimated",
            "camera": run.camera_note,
            "warnings": list(notes.values()),
        }
        self.metadata = {"extraction": extraction}

    def _implausible(self) -> dict[int, str]:
        """Asset index (in :attr:`keep` order) -> why its box cannot be right: behind the camera, beyond the far plane,
        or wider than the floor the camera sees at its distance."""
        out = {}
        far = (self.run.cfg.camera or CameraConfig()).far
        for k, n in enumerate(self.keep):
            reasons = []
            for t in self.boxes.measured[n].nonzero().flatten().tolist():
                cam = self.cameras[t]
                centre = self.boxes.centers[n, t]
                z = float((cam.R @ centre + cam.t)[2])
                distance = float((centre - cam.center).norm())
                width = float(self.boxes.sizes[n, t, :2].max())
                if z <= 0:
                    reasons.append("behind the camera")
                elif distance > far:
                    reasons.append(f"{distance:.0f} m away, beyond the {far:.0f} m far plane")
                elif width > 2 * z * math.tan(math.radians(_fov(cam)) / 2):
                    reasons.append(f"{width:.1f} m wide, wider than the {2 * z * math.tan(math.radians(_fov(cam)) / 2):.1f} m "
                                   "of floor in view at its distance")
            if reasons:
                out[k] = max(set(reasons), key=reasons.count)
        return out

    def _far_from_training(self) -> list[str]:
        """Ways the clip differs from the synthetic training scenes (objects on a plain floor, camera 22-40° down)
        beyond those said on their own (grayscale, from above, no floor)."""
        run, cfg = self.run, self.run.cfg
        reasons = []
        pitch = run.camera_note.get("pitch_degrees")
        if pitch is not None and not cfg.training_pitch[0] <= pitch <= cfg.training_pitch[1] and "top-down" not in run.notes:
            reasons.append(f"camera pitch {pitch:.0f}° against 22-40° in training")
        cover = run.object_cover / max(run.t, 1)
        if cover > cfg.max_object_cover:
            reasons.append(f"what stands out from the background covers {100 * cover:.0f} % of the frame, "
                           "not objects on a plain floor")
        return reasons

    def assets(self, dense_masks: bool) -> list[Asset]:
        """The kept tracks as Assets (ids 1, 2, ...); masks (T, H, W) when ``dense_masks``, else None (see :meth:`masks_of`)."""
        out = []
        for k, n in enumerate(self.keep):
            track_id = self.ids[n] if self.run.given_ids else n + 1
            visibility = self.area[n] / self.area[n].max().clamp(min=1)
            source = int(torch.argmax(visibility * (1 + 1e-3 * self.scores[n])))
            attributes = {"track_id": track_id, "lifted_frames": int(self.boxes.measured[n].sum())}
            if k in self.implausible:
                attributes["implausible"] = self.implausible[k]
            out.append(Asset(
                id=len(out) + 1, name=f"{self.labels[n]} {track_id}", category=self.labels[n],
                centers=self.boxes.centers[n], sizes=self.boxes.sizes[n], rotations=self.boxes.rotations[n],
                boxes_2d=self.boxes_2d[n], visibility=visibility, source_frame=source,
                masks=torch.stack(list(self.masks_of(k))) if dense_masks else None, attributes=attributes))
        return out

    def masks_of(self, k: int) -> Iterator[Tensor]:
        """The ``k``-th kept asset's (H, W) bool mask in each frame, one frame at a time."""
        n = self.keep[k]
        H, W = self.run.H, self.run.W
        for t in range(self.run.t):
            crop = self.crops[n].get(t)
            yield torch.from_numpy(crop.full(H, W)) if crop is not None else torch.zeros(H, W, dtype=torch.bool)

    def warn(self, stacklevel: int = 1) -> None:
        """Say each note once."""
        for key, message in self.run.notes.items():
            category = UserWarning if key == "no objects" else ExtractionWarning
            warnings.warn(f"extract: {message}", category, stacklevel=stacklevel + 1)


def _share_below_horizon(objects: Tensor, K: Tensor, up: Tensor) -> float:
    """Share of the lowest object pixels of (F, H, W) bool masks whose rays point below the horizon of a camera seeing ``up``.

    1 when there are no objects (nothing contradicts the horizon).
    """
    F, H, W = objects.shape
    rows = torch.where(objects, torch.arange(H)[:, None], -1).amax(1)  # (F, W) lowest object row per column
    f, cols = (rows >= 0).nonzero(as_tuple=True)
    if len(cols) == 0:
        return 1.0
    uv = torch.stack([cols + 0.5, rows[f, cols] + 1.0, torch.ones(len(cols))], -1)
    return float(((uv @ torch.linalg.inv(K).T) @ up < 0).float().mean())


def _fov(camera: Camera) -> float:
    """Horizontal field of view of a camera in degrees."""
    return math.degrees(2 * math.atan(camera.width / (2 * float(camera.K[0, 0]))))


def _is_grey(frame: Tensor) -> bool:
    """True when (nearly) every pixel of a (3, H, W) frame has equal channels (a few levels of compression noise aside)."""
    spread = (frame.amax(0) - frame.amin(0))[::2, ::2]
    return bool(torch.quantile(spread.flatten().float()[::7], 0.99) < 4 / 255)


__all__ = ["ExtractionConfig", "ExtractionWarning", "extract", "extract_video"]

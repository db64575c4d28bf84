"""From frames to a :class:`~neuralassets.scene.Scene`: segment, track, find cameras, lift to 3D.

:func:`extract` chains the pieces of :mod:`neuralassets.perception`; every piece can be
swapped (a SAM segmenter, SAM 2 propagation, Depth Anything, known cameras), and the
defaults need no model weights.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from .. import geometry
from ..errors import ValidationError
from ..image_ops import any_along, masks_to_boxes
from ..scene import Asset, Camera, Scene, check_frames
from .camera import CameraConfig, assumed_camera, assumed_intrinsics, estimate_camera_motion
from .classical import ClassicalSegmenter
from .detections import Segmenter, Tracker, Tracks
from .lifting import DepthLifter, GroundPlaneLifter, camera_from_floor, fit_floor
from .tracking import MaskTracker


@dataclass
class ExtractionConfig:
    """Settings of :func:`extract` beyond the pieces it is given."""

    camera: CameraConfig | None = None  # assumptions for unknown cameras (see CameraConfig)
    floor_threshold: float = 0.02  # RANSAC inlier distance as a fraction of the median background depth
    min_visible_frames: int = 1  # tracks lifted in fewer frames are left out of the scene


def extract(frames: Tensor, segmenter: Segmenter | None = None, tracker: Tracker | None = None, lifter=None,
            camera: Camera | list[Camera] | Tensor | None = None, depth: Tensor | None = None, depth_estimator=None,
            config: ExtractionConfig | None = None, progress: bool = False) -> Scene:
    """Find the objects of a clip and return them as a Scene of neural assets.

    Args:
        frames: (T, 3, H, W) float in [0, 1]; T = 2 is a frame pair.
        segmenter: anything with ``segment(frames) -> list[FrameDetections]``; default
            :class:`~neuralassets.perception.classical.ClassicalSegmenter`.
        tracker: anything with ``track(frames, detections) -> Tracks``; default
            :class:`~neuralassets.perception.tracking.MaskTracker`.
        lifter: anything with ``lift(tracks, cameras, depth) -> LiftedBoxes``; default
            :class:`~neuralassets.perception.lifting.DepthLifter` when depth is known, else
            :class:`~neuralassets.perception.lifting.GroundPlaneLifter`.
        camera: T cameras (used as they are); one Camera for frame 0 (later frames follow
            the estimated motion); a (3, 3) K (pose from the floor or assumed); or None
            (K from the assumed field of view too).
        depth: (T, H, W) float camera-frame depth in metres.
        depth_estimator: used when ``depth`` is None: anything with ``estimate(frames) ->
            (T, H, W)`` and a bool ``metric``; relative depth is scaled so the fitted floor
            lies at the camera's height (see docs/PERCEPTION.md).
        config: see :class:`ExtractionConfig`.
        progress: show a progress bar over the stages (segment, track, depth and cameras, lift).

    Returns:
        A validated Scene with one asset per track that could be lifted: per-frame 3D
        boxes, 2D boxes, masks, visibility (mask area over the track's largest mask area)
        and ``source_frame`` = the frame where it is most visible. ``metadata["extraction"]``
        records which pieces were used. When nothing is found the Scene has no assets and
        a ``UserWarning`` says so.

    Raises:
        ValidationError: ``frames`` is not (T, 3, H, W) float with finite values in [0, 1]
            (uint8 is refused, not rescaled), or depth / cameras do not match it.
    """
    cfg = config or ExtractionConfig()
    camera_cfg = cfg.camera or CameraConfig()
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValidationError(f"extract: frames must be (T, 3, H, W), got {tuple(frames.shape)}")
    check_frames(frames, "extract: frames")
    frames = frames.float()
    T, _, H, W = frames.shape
    if depth is not None and tuple(depth.shape) != (T, H, W):
        raise ValidationError(f"extract: depth must be (T, H, W) = {(T, H, W)}, got {tuple(depth.shape)}")
    if isinstance(camera, list) and len(camera) != T:
        raise ValidationError(f"extract: {len(camera)} cameras for {T} frames")
    segmenter = segmenter or ClassicalSegmenter()
    tracker = tracker or MaskTracker()
    bar = tqdm(total=4, desc="extract", disable=not progress, leave=False)
    bar.set_postfix_str("segment")
    detections = segmenter.segment(frames)
    bar.update()
    bar.set_postfix_str("track")
    tracks = tracker.track(frames, detections)
    bar.update()
    bar.set_postfix_str("depth and cameras")
    objects = any_along(tracks.masks, 0)  # (T, H, W)

    relative = False
    if depth is None and depth_estimator is not None:
        depth = depth_estimator.estimate(frames).float()
        relative = not getattr(depth_estimator, "metric", False)
    if depth is not None and tuple(depth.shape) != (T, H, W):
        raise ValidationError(f"extract: depth must be (T, H, W) = {(T, H, W)}, got {tuple(depth.shape)}")

    if isinstance(camera, list):
        cameras = camera
        if relative:
            depth = depth * _floor_height(camera[0]) / _fit_floor(depth[0], objects[0], camera[0].K, cfg)[1]
    else:
        K = camera.K if isinstance(camera, Camera) else (camera if camera is not None else assumed_intrinsics(W, H, camera_cfg))
        if isinstance(camera, Camera):
            first = camera
            if relative:
                depth = depth * _floor_height(camera) / _fit_floor(depth[0], objects[0], K, cfg)[1]
        elif depth is not None:
            normal, offset = _fit_floor(depth[0], objects[0], K, cfg)
            if relative:
                depth, offset = depth * camera_cfg.height / offset, camera_cfg.height
            first = camera_from_floor(normal, offset, K, W, H)
        else:
            first = assumed_camera(K, W, H, camera_cfg)
        cameras = estimate_camera_motion(frames, first, objects, depth, camera_cfg)

    bar.update()
    bar.set_postfix_str("lift")
    if lifter is None:
        lifter = DepthLifter() if depth is not None else GroundPlaneLifter()
    boxes = lifter.lift(tracks, cameras, depth)
    bar.update()
    bar.close()
    assets = _assets(tracks, boxes, cfg.min_visible_frames)
    if not assets:
        warnings.warn(f"extract: no objects found in {T} frame(s) of {W}x{H}; the scene has no assets "
                      "(try another segmenter, or a lower ClassicalConfig.min_area)", stacklevel=2)
    metadata = {"extraction": {
        "segmenter": type(segmenter).__name__, "tracker": type(tracker).__name__, "lifter": type(lifter).__name__,
        "depth": "given" if depth is not None and depth_estimator is None else type(depth_estimator).__name__ if depth_estimator
        else None,
        "cameras": "given" if isinstance(camera, list) else "estimated"}}
    return Scene(frames, cameras, assets, depth=depth, metadata=metadata).validate()


def _floor_height(camera: Camera) -> float:
    height = float(camera.center[2])
    if height <= 0:
        raise ValidationError(f"extract: the given camera is {height:.3g} m above the floor; cannot scale relative depth")
    return height


def _fit_floor(depth: Tensor, objects: Tensor, K: Tensor, cfg: ExtractionConfig) -> tuple[Tensor, float]:
    """Floor plane (normal, offset) in camera coordinates from one depth map's background pixels."""
    ys, xs = (~objects & torch.isfinite(depth) & (depth > 0)).nonzero(as_tuple=True)
    if len(xs) < 3:
        raise ValidationError("extract: no background pixels with depth to fit the floor to")
    step = max(1, len(xs) // 4000)  # a few thousand points pin a plane down
    xs, ys = xs[::step], ys[::step]
    uv = torch.stack([xs, ys], -1).float() + 0.5
    points = geometry.unproject_points(uv, depth[ys, xs], K, torch.eye(3), torch.zeros(3))
    threshold = cfg.floor_threshold * float(depth[ys, xs].median())
    normal, offset, _ = fit_floor(points, threshold=threshold)
    return normal, offset


def _assets(tracks: Tracks, boxes, min_frames: int) -> list[Asset]:
    assets = []
    for n, track_id in enumerate(tracks.ids):
        if int(boxes.measured[n].sum()) < min_frames:
            continue
        masks = tracks.masks[n]
        area = masks.flatten(1).sum(1).float()
        visibility = area / area.max().clamp(min=1)
        source = int(torch.argmax(visibility * (1 + 1e-3 * tracks.scores[n])))
        assets.append(Asset(
            id=len(assets) + 1, name=f"{tracks.labels[n]} {track_id}", category=tracks.labels[n],
            centers=boxes.centers[n], sizes=boxes.sizes[n], rotations=boxes.rotations[n],
            boxes_2d=masks_to_boxes(masks), visibility=visibility, source_frame=source, masks=masks,
            attributes={"track_id": track_id, "lifted_frames": int(boxes.measured[n].sum())}))
    return assets


__all__ = ["ExtractionConfig", "extract"]

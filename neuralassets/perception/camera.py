"""Cameras for videos that come without them: intrinsics, the first pose and the motion after it.

* Intrinsics: given, or a pinhole with an assumed horizontal field of view
  (:attr:`CameraConfig.fov_degrees`) and the principal point at the image centre.
* First pose: from a floor fitted to depth (:func:`~neuralassets.perception.lifting.fit_floor`);
  or, without depth, at the given or assumed height (:attr:`CameraConfig.height`) with
  the pitch and roll given (:attr:`CameraConfig.pitch_degrees`) or read from the first
  frame's vertical vanishing point (:func:`estimate_up`: the image's near-vertical line
  segments meet where the world's up direction projects), else the assumed pitch.
* Motion (:class:`CameraMotion`, frame by frame): points of the background (away from every
  object mask) are followed by dense optical flow (OpenCV's DIS, checked forwards and
  backwards) from a keyframe and from the previous frame, lifted to 3D there (with depth, or
  onto the floor) and the new pose is solved by PnP with RANSAC. Too few points keeps the
  previous pose; sub-pixel motion since the keyframe keeps the keyframe's (a still camera).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch import Tensor

from .. import geometry
from ..errors import ConfigError
from ..image_ops import to_uint8
from ..scene import Camera
from .lifting import camera_from_floor
from .motion import gray_for_flow


@dataclass
class CameraConfig:
    """Assumptions and thresholds for estimating cameras. ``None`` means: estimate it, or assume the default."""

    fov_degrees: float = 50.0  # horizontal field of view assumed when intrinsics are unknown
    height: float | None = None  # metres above the floor; None: from metric depth, else ASSUMED_HEIGHT
    pitch_degrees: float | None = None  # downward tilt of the optical axis; None: from depth or the vanishing point,
    # else ASSUMED_PITCH
    far: float = 60.0  # metres: boxes farther from the camera than this are implausible
    flow_side: int = 256  # frames are scaled (up or down) to this longer side for the optical flow; pixel figures
    # of the camera motion are at that size
    flow_step: int = 4  # pixels (at the flow's size) between the background points followed by the flow
    flow_consistency: float = 1.0  # the backward flow must lead a point back this close (pixels), else it is dropped
    key_share: float = 0.5  # a new keyframe once fewer than this share of the keyframe's points still follow it
    min_matches: int = 12  # fewer followed (or PnP-inlier) points keep the previous pose
    static_pixels: float = 0.5  # median motion since the keyframe (pixels) below which the camera is taken as still
    reprojection_pixels: float = 2.0  # PnP RANSAC inlier threshold (pixels)
    vanishing_degrees: float = 1.0  # a line segment within this angle of a vanishing direction supports it
    vanishing_min_support: float = 0.15  # share of the segment length the up direction must be consistent with
    vanishing_min_segments: int = 10  # and at least this many segments
    max_roll_degrees: float = 20.0  # roll beyond which a vanishing point is not taken for the vertical

    def __post_init__(self) -> None:
        if not 5 <= self.fov_degrees <= 170:
            raise ConfigError(f"camera field of view: expected 5..170 degrees, got {self.fov_degrees}")
        if self.height is not None and not 0 < self.height <= 1000:
            raise ConfigError(f"camera height: expected metres above the floor in (0, 1000], got {self.height}")
        if self.flow_side < 16 or self.flow_step < 1 or not 0 < self.key_share <= 1:
            raise ConfigError("camera motion: flow_side >= 16, flow_step >= 1 and 0 < key_share <= 1 are required")
        if self.pitch_degrees is not None and not -90 < self.pitch_degrees <= 90:
            raise ConfigError(f"camera pitch: expected degrees below the horizon in (-90, 90], got {self.pitch_degrees}")


#: Camera height assumed without depth or a given height: a camera held by a standing person (metres).
ASSUMED_HEIGHT = 1.5
#: Downward pitch assumed when neither depth, the user nor a vanishing point gives one (degrees).
ASSUMED_PITCH = 30.0


def assumed_intrinsics(width: int, height: int, config: CameraConfig | None = None) -> Tensor:
    """(3, 3) K for an image of ``width`` x ``height`` pixels with the assumed field of view."""
    return geometry.intrinsics_from_fov((config or CameraConfig()).fov_degrees, width, height)


def up_from_pitch(pitch_degrees: float) -> Tensor:
    """(3,) the world's up direction in the frame of a camera pitched down by ``pitch_degrees``, without roll."""
    p = math.radians(pitch_degrees)
    return torch.tensor([0.0, -math.cos(p), -math.sin(p)])


def pitch_and_roll(up: Tensor) -> tuple[float, float]:
    """Degrees (pitch below the horizon, roll clockwise) of a camera that sees the world's up as ``up`` (3,)."""
    u = up / up.norm()
    return math.degrees(math.asin(float(-u[2]))), math.degrees(math.atan2(float(u[0]), float(-u[1])))


def assumed_camera(K: Tensor, width: int, height: int, config: CameraConfig | None = None) -> Camera:
    """A camera at the given (else assumed) height above the world origin, pitched down by the given (else assumed)
    angle, without roll, facing +y."""
    cfg = config or CameraConfig()
    up = up_from_pitch(ASSUMED_PITCH if cfg.pitch_degrees is None else cfg.pitch_degrees)
    return camera_from_floor(up, ASSUMED_HEIGHT if cfg.height is None else cfg.height, K, width, height)


def estimate_up(frames: Tensor, K: Tensor, config: CameraConfig | None = None) -> Tensor | None:
    """The world's up direction in camera coordinates, from the vanishing points of a few frames.

    Line segments (OpenCV's LSD) of every frame are pooled (a few frames of a clip, over
    which the camera turns little, give more segments than one). RANSAC finds up to three
    vanishing directions in turn: pairs of segments propose the point where their lines
    meet, and a segment supports it when it points at it (within ``vanishing_degrees``, seen
    from the segment's midpoint). Up is then either one of the directions (the vertical
    vanishing point: walls, posts, box edges) or the normal of two clearly different ones
    (the horizon: floor tiles, road edges), whichever is consistent with the most segment
    length (a direction parallel or perpendicular to it counts), among directions a camera
    with at most ``max_roll_degrees`` of roll and a pitch in [-30°, 90°] could see as up.

    Args:
        frames: (F, 3, H, W) float in [0, 1].
        K: (3, 3) intrinsics in pixels.
        config: thresholds.

    Returns:
        (3,) unit up vector (see :func:`pitch_and_roll`), or None when the consistent
        directions gather less than ``vanishing_min_support`` of the segment length or
        fewer than ``vanishing_min_segments`` segments.
    """
    cfg = config or CameraConfig()
    segments = np.concatenate([_segments(frame) for frame in frames])
    if len(segments) < 4:
        return None
    Kd = K.double().numpy()
    directions, supports, counts = [], [], []
    remaining = np.ones(len(segments), bool)
    rng = np.random.default_rng(0)
    for _ in range(3):
        found = _vanishing_direction(segments[remaining], Kd, cfg.vanishing_degrees, rng)
        if found is None:
            break
        directions.append(found)
        inliers = _points_at(segments, Kd @ found, cfg.vanishing_degrees) & remaining
        supports.append(float(_length(segments[inliers]).sum()))
        counts.append(int(inliers.sum()))
        remaining &= ~inliers
    # a horizon needs two clearly different horizontal directions: nearly parallel ones fix no normal
    candidates = list(directions) + [np.cross(a, b) for i, a in enumerate(directions) for b in directions[i + 1:]
                                     if abs(float(a @ b)) < math.cos(math.radians(30))]
    best, best_score = None, cfg.vanishing_min_support * float(_length(segments).sum())
    for up in candidates:
        up = up / max(np.linalg.norm(up), 1e-12)
        up = -up if up[1] > 0 else up  # up points towards the image's top
        pitch, roll = pitch_and_roll(torch.from_numpy(up))
        if abs(roll) > cfg.max_roll_degrees or not -30 <= pitch <= 90:
            continue
        cos = np.abs(np.array(directions) @ up)
        consistent = (cos > math.cos(math.radians(5))) | (cos < math.sin(math.radians(5)))
        score = float(np.array(supports) @ consistent)
        if score > best_score and int(np.array(counts) @ consistent) >= cfg.vanishing_min_segments:
            best, best_score = up, score
    return None if best is None else torch.from_numpy(best).float()


def _segments(frame: Tensor) -> np.ndarray:
    """(S, 4) line segments ``x0, y0, x1, y1`` (pixel centres at +0.5) of a (3, H, W) frame, short ones left out."""
    gray = to_uint8(frame.float().mean(0)).numpy()
    found = cv2.createLineSegmentDetector().detect(gray)[0]
    if found is None:
        return np.zeros((0, 4))
    seg = found.reshape(-1, 4).astype(np.float64) + 0.5
    # short segments are texture, and their direction is noise
    return seg[_length(seg) >= 0.03 * math.hypot(*gray.shape)]


def _length(segments: np.ndarray) -> np.ndarray:
    return np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])


def _points_at(segments: np.ndarray, point: np.ndarray, degrees: float) -> np.ndarray:
    """(S,) bool: the segment's line, seen from its midpoint, points at the homogeneous image ``point`` (3,) within ``degrees``."""
    mid = (segments[:, :2] + segments[:, 2:]) / 2
    along = segments[:, 2:] - segments[:, :2]
    towards = point[:2] - mid * point[2]  # from the midpoint to the point (also for points at infinity)
    sine = np.abs(along[:, 0] * towards[:, 1] - along[:, 1] * towards[:, 0]) / np.maximum(
        np.linalg.norm(along, axis=1) * np.linalg.norm(towards, axis=1), 1e-12)
    return sine < math.sin(math.radians(degrees))


def _vanishing_direction(segments: np.ndarray, K: np.ndarray, degrees: float, rng: np.random.Generator,
                         hypotheses: int = 500) -> np.ndarray | None:
    """(3,) unit camera-frame direction whose vanishing point the most segment length points at; None for < 3 segments."""
    if len(segments) < 3:
        return None
    ones = np.ones((len(segments), 1))
    lines = np.cross(np.concatenate([segments[:, :2], ones], 1), np.concatenate([segments[:, 2:], ones], 1))
    pairs = rng.integers(0, len(segments), (hypotheses, 2))
    points = np.cross(lines[pairs[:, 0]], lines[pairs[:, 1]])  # homogeneous image points where two lines meet
    points = points[np.linalg.norm(points, axis=1) > 1e-9]
    if not len(points):
        return None
    length = _length(segments)
    support = np.array([length[_points_at(segments, p, degrees)].sum() for p in points])
    inliers = _points_at(segments, points[int(support.argmax())], degrees)
    if inliers.sum() < 2:
        return None
    # least squares: the point closest to every inlier line, weighted by length, as a camera-frame direction
    weighted = lines[inliers] / np.linalg.norm(lines[inliers, :2], axis=1, keepdims=True) * np.sqrt(length[inliers])[:, None]
    direction = np.linalg.solve(K, np.linalg.svd(weighted)[2][-1])
    return direction / np.linalg.norm(direction)


class _View(NamedTuple):
    """A frame the camera motion tracks background points from."""

    gray: np.ndarray  # (h, w) uint8 at the flow's size
    background: np.ndarray  # (h, w) bool: pixels away from every object
    depth: Tensor | None  # (H, W) metres at the frame's size, or None (points lie on the floor)
    camera: Camera | None  # None until solved


#: Points the flow follows from one view into the next: (N, 3) world points, (N, 2) their pixels in the new frame
#: and (N,) how far they moved (pixels at the flow's size).
_Followed = tuple[np.ndarray, np.ndarray, np.ndarray]


class CameraMotion:
    """Cameras frame by frame, starting from a known first camera (see the module docstring).

    Background points are followed by dense optical flow into each new frame from two views: a
    keyframe (at first the first frame, whose camera is given) and the previous frame. The
    keyframe's points hold the estimate to one reference, so the error does not add up frame by
    frame; the previous frame's keep it when the view has moved on. A new keyframe is taken
    when fewer than ``config.key_share`` of the points the keyframe gave its next frame still
    follow it, or too few for a pose (``config.min_matches``). Memory holds two frames whatever
    the clip's length.

    Args:
        first: the camera of frame 0 (world frame with the floor at z = 0).
        config: thresholds, see :class:`CameraConfig`.

    Attributes:
        keyframes: how many keyframes have been taken (the first frame is the first).
    """

    def __init__(self, first: Camera, config: CameraConfig | None = None) -> None:
        self.first, self.config = first, config or CameraConfig()
        self.keyframes = 0
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._K = first.K.numpy().astype(np.float64)
        self._scale = self.config.flow_side / max(first.width, first.height)  # frame pixels -> the flow's pixels
        self._key: _View | None = None
        self._key_points: int | None = None  # points the keyframe gave the frame after it
        self._previous: _View | None = None

    def update(self, frame: Tensor, object_mask: Tensor | None = None, depth: Tensor | None = None) -> Camera:
        """The camera of the next frame.

        Args:
            frame: (3, H, W) float in [0, 1].
            object_mask: (H, W) bool union of the frame's object masks; points there are
                not followed because objects move on their own.
            depth: (H, W) float metres, or None to lift points onto the floor instead.

        Returns:
            The first camera for the first frame, then each frame's estimate.
        """
        gray = gray_for_flow(frame, self._scale)
        H, W = frame.shape[-2:]
        background = np.ones((H, W), bool) if object_mask is None else \
            ~cv2.dilate(object_mask.numpy().astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        background = cv2.resize(background.astype(np.uint8), gray.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
        view = _View(gray, background, depth, None)
        if self._key is None:
            camera, from_key = self.first, None
        else:
            from_key = self._points(self._key, view)
            from_previous = self._points(self._previous, view) if self._previous is not self._key else None
            camera = self._solve(from_key, from_previous, self._previous.camera)
            if self._key_points is None:
                self._key_points = len(from_key[0])
        view = view._replace(camera=camera)
        if self._key is None or len(from_key[0]) < max(self.config.min_matches, self.config.key_share * self._key_points):
            self._key, self._key_points = view, None
            self.keyframes += 1
        self._previous = view
        return camera

    def _points(self, source: _View, target: _View) -> _Followed:
        """Background points of ``source`` that the flow follows into ``target`` (their pixels at the frame's scale,
        pixel centres at .5). Points the backward flow does not lead back to, or that land off the frame or on an
        object, are left out."""
        cfg = self.config
        forward = self._flow.calc(source.gray, target.gray, None)
        backward = self._flow.calc(target.gray, source.gray, None)
        h, w = source.gray.shape
        ys, xs = np.mgrid[cfg.flow_step // 2:h:cfg.flow_step, cfg.flow_step // 2:w:cfg.flow_step]
        keep = source.background[ys, xs]
        ys, xs = ys[keep], xs[keep]
        moved = forward[ys, xs]
        x1, y1 = xs + moved[:, 0], ys + moved[:, 1]
        keep = (x1 >= 0) & (x1 <= w - 1) & (y1 >= 0) & (y1 <= h - 1)
        ys, xs, x1, y1, moved = ys[keep], xs[keep], x1[keep], y1[keep], moved[keep]
        landed = np.round(y1).astype(int), np.round(x1).astype(int)
        keep = (np.linalg.norm(moved + backward[landed], axis=1) < cfg.flow_consistency) & target.background[landed]
        uv0 = torch.from_numpy(np.stack([xs[keep] + 0.5, ys[keep] + 0.5], 1) / self._scale).float()
        uv1 = np.stack([x1[keep] + 0.5, y1[keep] + 0.5], 1) / self._scale
        camera = source.camera
        if source.depth is not None:
            H, W = source.depth.shape
            z = source.depth[uv0[:, 1].long().clamp(0, H - 1), uv0[:, 0].long().clamp(0, W - 1)]
            world, ok = geometry.unproject_points(uv0, z, camera.K, camera.R, camera.t), torch.isfinite(z) & (z > 0)
        else:
            world, ok = geometry.ground_intersection(uv0, camera.K, camera.R, camera.t)
        ok = ok.numpy()
        return world.numpy()[ok], uv1[ok], np.linalg.norm(moved[keep][ok], axis=1)

    def _solve(self, from_key: _Followed, from_previous: _Followed | None, previous: Camera) -> Camera:
        """The camera that sees the followed points where the flow put them (PnP with RANSAC, then refined on the
        inliers); the keyframe's camera when they hardly moved, the previous one when there are too few."""
        cfg = self.config
        if len(from_key[2]) and float(np.median(from_key[2])) < cfg.static_pixels:
            return _copy(self._key.camera)
        world, uv = from_key[0], from_key[1]
        if from_previous is not None:
            world, uv = np.concatenate([world, from_previous[0]]), np.concatenate([uv, from_previous[1]])
        if len(world) < cfg.min_matches:
            return _copy(previous)
        world, uv = world.astype(np.float64), uv.astype(np.float64)
        found, rvec, tvec, inliers = cv2.solvePnPRansac(
            world, uv, self._K, None, rvec=cv2.Rodrigues(previous.R.numpy().astype(np.float64))[0],
            tvec=previous.t.numpy().astype(np.float64).reshape(3, 1), useExtrinsicGuess=True,
            reprojectionError=cfg.reprojection_pixels / self._scale, iterationsCount=200, confidence=0.999,
            flags=cv2.SOLVEPNP_ITERATIVE)
        if not found or inliers is None or len(inliers) < cfg.min_matches:
            return _copy(previous)
        inliers = inliers.ravel()
        rvec, tvec = cv2.solvePnPRefineLM(world[inliers], uv[inliers], self._K, None, rvec, tvec)
        R, _ = cv2.Rodrigues(rvec)
        return Camera(previous.K.clone(), torch.from_numpy(R).float(), torch.from_numpy(tvec.ravel()).float(),
                      previous.width, previous.height)


def estimate_camera_motion(frames: Tensor, first: Camera, object_masks: Tensor | None = None,
                           depth: Tensor | None = None, config: CameraConfig | None = None) -> list[Camera]:
    """Cameras for every frame of a clip held in memory (:class:`CameraMotion` frame by frame).

    Args:
        frames: (T, 3, H, W) float in [0, 1].
        first: the camera of frame 0 (world frame with the floor at z = 0).
        object_masks: (T, H, W) bool union of object masks, or None.
        depth: (T, H, W) float metres, or None to lift features onto the floor instead.
        config: thresholds, see :class:`CameraConfig`.

    Returns:
        T cameras sharing ``first``'s intrinsics.
    """
    motion = CameraMotion(first, config)
    return [motion.update(frames[t], None if object_masks is None else object_masks[t], None if depth is None else depth[t])
            for t in range(frames.shape[0])]


def _copy(camera: Camera) -> Camera:
    return Camera(camera.K.clone(), camera.R.clone(), camera.t.clone(), camera.width, camera.height)


__all__ = ["ASSUMED_HEIGHT", "ASSUMED_PITCH", "CameraConfig", "CameraMotion", "assumed_camera", "assumed_intrinsics",
           "estimate_camera_motion", "estimate_up", "pitch_and_roll", "up_from_pitch"]

"""Cameras for videos that come without them: intrinsics, the first pose and the motion after it.

* Intrinsics: given, or a pinhole with an assumed horizontal field of view
  (:attr:`CameraConfig.fov_degrees`) and the principal point at the image centre.
* First pose: from a floor fitted to depth (:func:`~neuralassets.perception.lifting.fit_floor`),
  or, without depth, an assumed height and downward pitch (:attr:`CameraConfig.height`,
  :attr:`CameraConfig.pitch_degrees`).
* Motion: ORB features outside every object mask are matched from frame to frame; the
  previous frame's features are lifted to 3D (with depth, or onto the floor) and the new
  pose is solved by PnP with RANSAC. Too few matches, or sub-pixel motion, keeps the
  previous pose (the static-camera fallback).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from .. import geometry
from ..image_ops import to_uint8
from ..scene import Camera


@dataclass
class CameraConfig:
    """Assumptions and thresholds for estimating cameras."""

    fov_degrees: float = 50.0  # horizontal field of view assumed when intrinsics are unknown
    height: float = 3.5  # metres above the floor assumed without depth, and the scale given to relative depth
    pitch_degrees: float = 30.0  # downward tilt of the optical axis assumed without depth
    features: int = 400  # ORB features per frame
    min_matches: int = 12  # fewer matched (or PnP-inlier) features keep the previous pose
    static_pixels: float = 0.3  # median feature motion (pixels) below which the camera is taken as still
    reprojection_pixels: float = 2.0  # PnP RANSAC inlier threshold


def assumed_intrinsics(width: int, height: int, config: CameraConfig | None = None) -> Tensor:
    """(3, 3) K for an image of ``width`` x ``height`` pixels with the assumed field of view."""
    return geometry.intrinsics_from_fov((config or CameraConfig()).fov_degrees, width, height)


def assumed_camera(K: Tensor, width: int, height: int, config: CameraConfig | None = None) -> Camera:
    """A camera at the assumed height above the world origin, pitched down by the assumed angle, facing +y."""
    cfg = config or CameraConfig()
    eye = torch.tensor([0.0, 0.0, cfg.height])
    target = torch.tensor([0.0, cfg.height / math.tan(math.radians(cfg.pitch_degrees)), 0.0])
    R, t = geometry.look_at(eye, target)
    return Camera(K, R, t, width, height)


def estimate_camera_motion(frames: Tensor, first: Camera, object_masks: Tensor | None = None,
                           depth: Tensor | None = None, config: CameraConfig | None = None) -> list[Camera]:
    """Cameras for every frame, starting from ``first``.

    Args:
        frames: (T, 3, H, W) float in [0, 1].
        first: the camera of frame 0 (world frame with the floor at z = 0).
        object_masks: (T, H, W) bool union of object masks; features there are ignored
            because objects move on their own.
        depth: (T, H, W) float metres, or None to lift features onto the floor instead.
        config: thresholds, see :class:`CameraConfig`.

    Returns:
        T cameras sharing ``first``'s intrinsics.
    """
    cfg = config or CameraConfig()
    T, _, H, W = frames.shape
    gray = to_uint8(frames.float().mean(1)).numpy()
    orb = cv2.ORB_create(nfeatures=cfg.features, edgeThreshold=8, patchSize=15, fastThreshold=10)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)

    def features(t: int):
        allowed = np.full((H, W), 255, np.uint8)
        if object_masks is not None:
            allowed = cv2.erode(allowed * ~object_masks[t].numpy(), np.ones((5, 5), np.uint8), borderValue=255)
        return orb.detectAndCompute(gray[t], allowed)

    cameras = [first]
    previous = features(0)
    K = first.K.numpy().astype(np.float64)
    for t in range(1, T):
        current = features(t)
        cameras.append(_next_camera(previous, current, cameras[-1], t, matcher, K, depth, cfg))
        previous = current
    return cameras


def _next_camera(previous, current, camera: Camera, t: int, matcher, K: np.ndarray, depth: Tensor | None,
                 cfg: CameraConfig) -> Camera:
    """Camera ``t`` from camera ``t - 1`` and the two frames' ORB features; the previous pose when unsure."""
    (kp0, des0), (kp1, des1) = previous, current
    if des0 is None or des1 is None or len(kp0) < cfg.min_matches or len(kp1) < cfg.min_matches:
        return _copy(camera)
    matches = matcher.match(des0, des1)
    if len(matches) < cfg.min_matches:
        return _copy(camera)
    p0 = np.float32([kp0[m.queryIdx].pt for m in matches])
    p1 = np.float32([kp1[m.trainIdx].pt for m in matches])
    if np.median(np.linalg.norm(p1 - p0, axis=1)) < cfg.static_pixels:
        return _copy(camera)
    # OpenCV keypoints have the top-left pixel centre at (0, 0); the library puts it at (0.5, 0.5)
    uv0 = torch.from_numpy(p0 + 0.5)
    if depth is not None:
        H, W = depth.shape[-2:]
        cols = uv0[:, 0].long().clamp(0, W - 1)
        rows = uv0[:, 1].long().clamp(0, H - 1)
        z = depth[t - 1, rows, cols]
        ok = torch.isfinite(z) & (z > 0)
        world = geometry.unproject_points(uv0, z, camera.K, camera.R, camera.t)
    else:
        world, ok = geometry.ground_intersection(uv0, camera.K, camera.R, camera.t)
    ok = ok.numpy()
    if ok.sum() < cfg.min_matches:
        return _copy(camera)
    rvec0, _ = cv2.Rodrigues(camera.R.numpy().astype(np.float64))
    found, rvec, tvec, inliers = cv2.solvePnPRansac(
        world.numpy()[ok].astype(np.float64), (p1[ok] + 0.5).astype(np.float64), K, None,
        rvec=rvec0, tvec=camera.t.numpy().astype(np.float64).reshape(3, 1), useExtrinsicGuess=True,
        reprojectionError=cfg.reprojection_pixels, iterationsCount=200, confidence=0.999, flags=cv2.SOLVEPNP_ITERATIVE)
    if not found or inliers is None or len(inliers) < cfg.min_matches:
        return _copy(camera)
    R, _ = cv2.Rodrigues(rvec)
    return Camera(camera.K.clone(), torch.from_numpy(R).float(), torch.from_numpy(tvec.ravel()).float(), camera.width,
                  camera.height)


def _copy(camera: Camera) -> Camera:
    return Camera(camera.K.clone(), camera.R.clone(), camera.t.clone(), camera.width, camera.height)


__all__ = ["CameraConfig", "assumed_camera", "assumed_intrinsics", "estimate_camera_motion"]

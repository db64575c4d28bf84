"""Lifting tracked 2D masks to oriented 3D boxes standing on the floor.

Two lifters share one output, :class:`LiftedBoxes`:

* :class:`DepthLifter` unprojects the mask's pixels with a depth map
  (:func:`neuralassets.geometry.unproject_points`), takes the minimum-area rectangle of the
  points seen from above (x, y in the world frame, whose z axis is the floor normal) as the
  footprint and the points' height range as the vertical extent. Yaw is the rectangle's
  heading about the floor normal.
* :class:`GroundPlaneLifter` needs no depth: the lowest mask pixel of each column is
  taken to touch the floor (:func:`neuralassets.geometry.ground_intersection`), the contact
  points' rectangle gives the footprint (a one-sided view is completed to a square footprint
  pushed away from the camera) and the ray through the mask's top meets the vertical plane
  through the footprint centre at the object's height.

Both then hold each object's size fixed over the clip (the median of its per-frame sizes),
keep yaw continuous (a box turned by 90° with swapped sides is the same box) and fill frames
where the object is unseen by interpolating its centre.

:func:`fit_floor` (RANSAC) and :func:`camera_from_floor` give a camera's pose from depth
when no camera is known: the world frame is placed on the fitted floor under the camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from .. import geometry
from ..errors import ConfigError, ValidationError
from ..image_ops import any_along
from ..scene import Camera
from .detections import Tracks


@dataclass
class LiftedBoxes:
    """3D boxes of tracked objects.

    Attributes:
        centers: (N, T, 3) float box centres, world metres.
        sizes: (N, T, 3) float full extents, metres (constant over T after stabilising).
        rotations: (N, T, 3, 3) float box-to-world rotations (yaw about the world z axis only).
        measured: (N, T) bool, True where the box came from that frame's mask (False: interpolated).
    """

    centers: Tensor
    sizes: Tensor
    rotations: Tensor
    measured: Tensor


@dataclass
class LiftingConfig:
    """Settings shared by the lifters."""

    min_pixels: int = 12  # masks with fewer pixels are not lifted in that frame
    trim_percent: float = 0.0  # per-axis percentile trimmed from each end of the point cloud; 0 for exact depth (trimming
    # cuts off apexes and true extents), about 0.5 for noisy monocular depth
    snap_to_floor: float = 0.3  # a box whose lowest point is below this fraction of its height rests on the floor
    cap_fraction: float = 0.05  # depth lifting: the top this fraction of the height is the object's "top"
    flat_top_ratio: float = 0.35  # a top covering less of the footprint than this marks a rounded object
    max_contact_slope: float = 2.5  # ground-plane lifting: steeper silhouette ends (rows per column) are sides, not contact
    square_ratio: float = 0.5  # ground-plane lifting: a footprint thinner than this is completed to a square
    size_percentile: float = 50.0  # per-axis percentile of an object's per-frame sizes that becomes its size
    hidden_bottom_fraction: float = 0.5  # depth lifting: a mask whose lower edge is covered along this fraction rests on the floor
    floor_majority: float = 0.5  # an object resting on the floor in at least this fraction of its frames rests in all
    erode_pixels: int = 0  # depth lifting: mask erosion keeping boundary pixels (blurred depth) out; 1 for monocular depth

    def __post_init__(self) -> None:
        if not 0 <= self.trim_percent < 25:
            raise ConfigError(f"LiftingConfig.trim_percent: expected a percentage in [0, 25), got {self.trim_percent}")


class _FrameLifter:
    """What both lifters share: a clip is lifted frame by frame, then stabilised over time."""

    config: LiftingConfig

    def lift_frame(self, masks: Tensor, camera: Camera, depth: Tensor | None = None) -> Tensor:
        """Boxes of one frame's masks; see the lifter's own docstring."""
        raise NotImplementedError

    def lift(self, tracks: Tracks, cameras: list[Camera], depth: Tensor | None = None) -> LiftedBoxes:
        """Lift every track in every frame (:meth:`lift_frame`), then :func:`stabilise` over the clip.

        Args:
            tracks: N tracks over T frames.
            cameras: T cameras in a world frame whose floor is z = 0.
            depth: (T, H, W) float camera-frame depth in metres, or None.

        Returns:
            :class:`LiftedBoxes` for the N tracks.
        """
        T, H, W = tracks.masks.shape[1:]
        if len(cameras) != T:
            raise ValidationError(f"lifting: {len(cameras)} cameras for {T} frames")
        if depth is not None and tuple(depth.shape) != (T, H, W):
            raise ValidationError(f"lifting: depth has shape {tuple(depth.shape)}, expected {(T, H, W)}")
        raw = torch.stack([self.lift_frame(tracks.masks[:, t], cameras[t], None if depth is None else depth[t])
                           for t in range(T)], 1) if len(tracks) else torch.zeros(0, T, 7)
        return stabilise(raw, self.config)


class DepthLifter(_FrameLifter):
    """Masks + depth → 3D boxes (see the module docstring)."""

    def __init__(self, config: LiftingConfig | None = None) -> None:
        self.config = config or LiftingConfig()

    def lift_frame(self, masks: Tensor, camera: Camera, depth: Tensor | None = None) -> Tensor:
        """Per-frame boxes of the K masks of one frame.

        Args:
            masks: (K, H, W) bool, the objects of the frame (each one's neighbours decide
                whether its lower edge is hidden).
            camera: the frame's camera, world floor at z = 0.
            depth: (H, W) float camera-frame depth in metres.

        Returns:
            (K, 7) float: footprint centre x, y and bottom z, extents x, y, z (metres) and yaw
            (radians); NaN rows where a mask could not be lifted.
        """
        if depth is None:
            raise ValidationError("DepthLifter.lift: needs a depth map; use GroundPlaneLifter without depth")
        cfg = self.config
        out = torch.full((masks.shape[0], 7), float("nan"))
        bottom = _lowest_rows(masks).long().numpy()  # (K, W)
        everything, masks_np, depth_np = any_along(masks, 0).numpy(), masks.numpy(), depth.numpy()
        for k in range(masks.shape[0]):
            hidden = _bottom_hidden(bottom[k], everything & ~masks_np[k], depth_np) >= cfg.hidden_bottom_fraction
            mask = _erode(masks[k], cfg.erode_pixels)
            ys, xs = mask.nonzero(as_tuple=True)
            z = depth[ys, xs]
            ok = torch.isfinite(z) & (z > 0)
            if int(ok.sum()) < cfg.min_pixels:
                continue
            uv = torch.stack([xs[ok], ys[ok]], -1).float() + 0.5
            points = geometry.unproject_points(uv, z[ok], camera.K, camera.R, camera.t).numpy()
            box = _box_from_points(points, camera.center[:2].numpy(), hidden, cfg)
            if _usable(box):
                out[k] = box
        return out


class GroundPlaneLifter(_FrameLifter):
    """Masks + cameras (no depth) → 3D boxes resting on the floor (see the module docstring)."""

    def __init__(self, config: LiftingConfig | None = None) -> None:
        self.config = config or LiftingConfig()

    def lift_frame(self, masks: Tensor, camera: Camera, depth: Tensor | None = None) -> Tensor:
        """Per-frame boxes of the K masks of one frame; ``depth`` is ignored. See :meth:`DepthLifter.lift_frame`."""
        cfg = self.config
        K, H, W = masks.shape
        out = torch.full((K, 7), float("nan"))
        area = masks.flatten(1).sum(1)
        if K == 0:
            return out
        bottom = _lowest_rows(masks).long().numpy()  # (K, W)
        everything, masks_np = any_along(masks, 0).numpy(), masks.numpy()
        top_row = torch.where(any_along(masks, 2), torch.arange(H), H).amin(1).clamp(max=H - 1)  # (K,)
        # u of the mask's top: the mean column of its top row
        top_cols = masks[torch.arange(K), top_row].float()  # (K, W)
        u_top = (top_cols * (torch.arange(W) + 0.5)).sum(1) / top_cols.sum(1).clamp(min=1)
        origin, top_dirs = geometry.pixel_rays(torch.stack([u_top, top_row.float()], -1), camera.K, camera.R, camera.t)
        origin, top_dirs = origin.numpy(), top_dirs.numpy()
        for k in (area >= cfg.min_pixels).nonzero().flatten().tolist():
            box = _box_from_ground_contact(bottom[k], everything & ~masks_np[k], camera, origin, top_dirs[k], cfg)
            if _usable(box):
                out[k] = box
        return out


# --------------------------------------------------------------------------------------
# Per-frame boxes
# --------------------------------------------------------------------------------------

def _lowest_rows(masks: Tensor) -> Tensor:
    """(..., H, W) bool masks → (..., W) int16 lowest mask row of each column, -1 where the column is empty."""
    rows = torch.arange(masks.shape[-2], dtype=torch.int16)
    return torch.where(masks, rows[:, None], -1).amax(-2)


def _bottom_hidden(bottom: np.ndarray, others: np.ndarray, depth: np.ndarray) -> float:
    """Fraction of a mask's columns whose lowest pixel lies on the image's last row or just above a nearer object.

    Args:
        bottom: (W,) int lowest mask row per column, -1 where empty (see :func:`_lowest_rows`).
        others: (H, W) bool pixels of the other objects.
        depth: (H, W) float depth of the frame.
    """
    H = others.shape[0]
    cols = np.flatnonzero(bottom >= 0)
    if len(cols) == 0:
        return 0.0
    rows = bottom[cols]
    below = np.minimum(rows + 1, H - 1)
    hidden = (rows == H - 1) | (others[below, cols] & (depth[below, cols] < depth[rows, cols]))
    return float(hidden.mean())


def _erode(mask: Tensor, pixels: int) -> Tensor:
    if pixels <= 0:
        return mask
    eroded = cv2.erode(mask.numpy().astype(np.uint8), np.ones((2 * pixels + 1,) * 2, np.uint8))
    # tiny masks would vanish: keep them whole
    return torch.from_numpy(eroded.astype(bool)) if eroded.sum() >= 0.3 * mask.sum() else mask


def _footprint(xy: np.ndarray) -> tuple[float, float, float, float, float]:
    """Minimum-area rectangle of (P, 2) floor points → (cx, cy, size_x, size_y, yaw)."""
    rect = cv2.minAreaRect(xy.astype(np.float32))
    p = cv2.boxPoints(rect)
    e1, e2 = p[1] - p[0], p[2] - p[1]
    return (float(rect[0][0]), float(rect[0][1]), float(np.linalg.norm(e1)), float(np.linalg.norm(e2)),
            math.atan2(float(e1[1]), float(e1[0])))


def _box_from_points(points: np.ndarray, camera_xy: np.ndarray, bottom_hidden: bool, cfg: LiftingConfig) -> Tensor | None:
    """(P, 3) world points of one object seen from ``camera_xy`` (2,) → per-frame box (see :func:`_pack`), or None.

    ``bottom_hidden``: the object's lower edge is covered (by a nearer object or the image
    edge), so its lowest visible point says nothing about where it stands: it is put on the floor.
    """
    if cfg.trim_percent > 0:
        lo, hi = np.percentile(points, [cfg.trim_percent, 100 - cfg.trim_percent], axis=0)
        points = points[((points >= lo) & (points <= hi)).all(axis=1)]
    if len(points) < 3:
        return None
    bottom, top = float(points[:, 2].min()), float(points[:, 2].max())
    if top <= 0:
        return None
    if bottom_hidden or bottom < cfg.snap_to_floor * (top - bottom):
        bottom = 0.0
    cx, cy, sx, sy, yaw = _footprint(points[:, :2])
    cap = points[points[:, 2] >= top - cfg.cap_fraction * (top - bottom), :2]
    flat_top = len(cap) >= 3 and _rect_area(cap) >= cfg.flat_top_ratio * sx * sy
    if not flat_top:
        # A rounded object's far side is hidden and its top does not show the footprint: take it to be
        # as deep (along the line of sight) as it is wide, and extend it away from the camera.
        away = np.array([cx, cy]) - camera_xy
        away = away / max(float(np.linalg.norm(away)), 1e-9)
        across = np.array([-away[1], away[0]])
        along_d, across_d = points[:, :2] @ away, points[:, :2] @ across
        near, width = float(along_d.min()), float(across_d.max() - across_d.min())
        depth = max(float(along_d.max()) - near, width)
        middle = (near + depth / 2) * away + (float(across_d.max() + across_d.min()) / 2) * across
        cx, cy, sx, sy, yaw = float(middle[0]), float(middle[1]), depth, width, math.atan2(away[1], away[0])
    return _pack(cx, cy, bottom, sx, sy, top - bottom, yaw)


def _rect_area(xy: np.ndarray) -> float:
    w, h = cv2.minAreaRect(xy.astype(np.float32))[1]
    return float(w * h)


def _box_from_ground_contact(bottom: np.ndarray, others: np.ndarray, camera: Camera, origin: np.ndarray,
                             top_direction: np.ndarray, cfg: LiftingConfig) -> Tensor | None:
    """One mask with no depth → per-frame box (see :func:`_pack`), or None when no contact point is usable.

    Args:
        bottom: (W,) int lowest mask row of each column, -1 where the column is empty.
        others: (H, W) bool pixels of the other objects.
        camera: the frame's camera (world floor at z = 0).
        origin: (3,) camera centre; top_direction: (3,) unit ray through the mask's top.
        cfg: thresholds.
    """
    H, W = others.shape
    cols = np.flatnonzero(bottom >= 0)
    rows_used = bottom[cols]
    below = np.minimum(rows_used + 1, H - 1)
    # a contact point hidden behind another object, or cut by the image edge, is not on the floor
    usable = (rows_used < H - 1) & ~others[below, cols]
    # at the ends, columns where the silhouette climbs steeply are vertical sides, not floor contact
    steep = np.abs(np.diff(rows_used)) > cfg.max_contact_slope
    first, last = 0, len(cols)
    while first < last - 1 and steep[first]:
        first += 1
    while last - 1 > first and steep[last - 2]:
        last -= 1
    usable[:first] = False
    usable[last:] = False
    cols, rows_used = cols[usable], rows_used[usable]
    # the floor point under the bottom edge of each contact pixel
    uv = torch.from_numpy(np.stack([cols + 0.5, rows_used + 1.0], -1)).float()
    floor, hit = geometry.ground_intersection(uv, camera.K, camera.R, camera.t)
    points = floor.numpy()[hit.numpy()]
    if len(points) < 2:
        return None
    cx, cy, sx, sy, yaw = _footprint(points[:, :2])
    long_side = max(sx, sy)
    if min(sx, sy) < cfg.square_ratio * long_side:
        # only the near side touched the floor in view: assume a square footprint behind it
        short_axis = np.array([-math.sin(yaw), math.cos(yaw)]) if sx >= sy else np.array([math.cos(yaw), math.sin(yaw)])
        away = np.array([cx, cy]) - origin[:2]
        push = (long_side - min(sx, sy)) / 2 * (1.0 if float(short_axis @ away) >= 0 else -1.0)
        cx, cy = cx + push * short_axis[0], cy + push * short_axis[1]
        sx = sy = long_side
    # height: the ray through the mask's top meets the vertical plane through the footprint centre
    centre = np.array([cx, cy, 0.0])
    normal = centre - origin
    normal[2] = 0
    denom = float(top_direction @ normal)
    if denom <= 1e-9:
        return None
    s = float((centre - origin) @ normal) / denom
    height = float(origin[2] + s * top_direction[2])
    if height <= 0:
        return None
    return _pack(cx, cy, 0.0, sx, sy, height, yaw)


def _pack(cx: float, cy: float, bottom: float, sx: float, sy: float, sz: float, yaw: float) -> Tensor:
    """A per-frame box as (7,): footprint centre x, y, bottom height, extents x, y, z (metres), yaw (radians)."""
    return torch.tensor([cx, cy, bottom, sx, sy, sz, yaw])


# --------------------------------------------------------------------------------------
# Over time
# --------------------------------------------------------------------------------------

def _usable(box: Tensor | None) -> bool:
    """A per-frame box that exists, is finite and has positive extents."""
    return box is not None and bool(torch.isfinite(box).all()) and bool((box[3:6] > 0).all())


def stabilise(raw: Tensor, cfg: LiftingConfig | None = None) -> LiftedBoxes:
    """(N, T, 7) per-frame boxes (:meth:`DepthLifter.lift_frame`) with NaN rows where unmeasured → :class:`LiftedBoxes`.

    Sizes become a per-object percentile (``cfg.size_percentile``: occlusion and trimming only
    ever shrink what is seen, so a high percentile is nearer the true size than the median);
    an object that rests on the floor in most measured frames rests on it in all of them
    (a lifted bottom is then an occluded bottom, not a jump); yaw is made continuous by choosing, frame by
    frame, the equivalent box (turned by a multiple of 90° with sides swapped) nearest the
    previous yaw; unmeasured frames get the interpolated centre and yaw of their neighbours.
    An object never measured keeps zero centres and unit sizes with ``measured`` all False.
    """
    cfg = cfg or LiftingConfig()
    N, T, _ = raw.shape
    measured = torch.isfinite(raw[..., 0])
    centers, sizes = torch.zeros(N, T, 3), torch.ones(N, T, 3)
    yaws = torch.zeros(N, T)
    for n in range(N):
        frames = measured[n].nonzero().flatten().tolist()
        if not frames:
            continue
        boxes = raw[n, frames].double().numpy().copy()
        if boxes[0, 3] < boxes[0, 4]:  # start with x along the longer side
            boxes[0, 3:5] = boxes[0, [4, 3]]
            boxes[0, 6] += math.pi / 2
        for i in range(1, len(boxes)):
            k = round((boxes[i - 1, 6] - boxes[i, 6]) / (math.pi / 2))
            boxes[i, 6] += k * math.pi / 2
            if k % 2:
                boxes[i, 3:5] = boxes[i, [4, 3]]
        size = np.percentile(boxes[:, 3:6], cfg.size_percentile, axis=0)
        if np.mean(boxes[:, 2] == 0) >= cfg.floor_majority:
            boxes[:, 2] = 0.0
        grid = np.arange(T)
        cx, cy, bottom, yaw = (np.interp(grid, frames, boxes[:, j]) for j in (0, 1, 2, 6))
        centers[n] = torch.from_numpy(np.stack([cx, cy, bottom + size[2] / 2], -1)).float()
        sizes[n] = torch.from_numpy(size).float()
        yaws[n] = torch.from_numpy(np.arctan2(np.sin(yaw), np.cos(yaw))).float()
    rotations = geometry.euler_to_matrix(yaws, torch.zeros_like(yaws), torch.zeros_like(yaws))
    return LiftedBoxes(centers, sizes, rotations, measured)


# --------------------------------------------------------------------------------------
# The floor
# --------------------------------------------------------------------------------------

REFINEMENTS = 3  # least-squares fits of fit_floor, each to the inliers of the one before (the first to RANSAC's)


def fit_floor(points: Tensor, threshold: float | Tensor = 0.02, iterations: int = 200, seed: int = 0
              ) -> tuple[Tensor, float, Tensor]:
    """RANSAC plane through the largest set of points, refined by least squares on its inliers (:data:`REFINEMENTS` times).

    Args:
        points: (P, 3) float camera-frame points in metres (e.g. unprojected background pixels).
        threshold: inlier distance in metres (scale it with the depth's units), one for all
            points or (P,) one per point: a depth map's error grows with depth, so a far point
            needs a wider margin than a near one to count as on the plane.
        iterations: random three-point hypotheses tried.
        seed: integer seed of the hypothesis sampler.

    Returns:
        normal: (3,) unit normal pointing towards the camera (the origin).
        offset: ``d`` in ``normal · x + d = 0``: the camera's height above the plane (> 0).
        inliers: (P,) bool.
    """
    P = points.shape[0]
    if P < 3:
        raise ValidationError(f"fit_floor: needs at least 3 points, got {P}")
    pts = points.double()
    threshold = torch.as_tensor(threshold, dtype=torch.float64)
    if threshold.dim() and threshold.shape != (P,):
        raise ValidationError(f"fit_floor: {tuple(threshold.shape)} thresholds for {P} points")
    g = torch.Generator().manual_seed(seed)
    triples = torch.randint(0, P, (iterations, 3), generator=g)
    a, b, c = pts[triples[:, 0]], pts[triples[:, 1]], pts[triples[:, 2]]
    normals = torch.linalg.cross(b - a, c - a)
    norm = normals.norm(dim=-1, keepdim=True)
    good = norm[:, 0] > 1e-12
    if not bool(good.any()):
        raise ValidationError("fit_floor: the points are collinear; no plane fits")
    normals = normals[good] / norm[good]
    offsets = -(normals * a[good]).sum(-1)
    counts = ((pts @ normals.T + offsets).abs() < threshold.reshape(-1, 1)).sum(0)
    best = int(counts.argmax())
    normal, offset = normals[best], float(offsets[best])
    inliers = (pts @ normal + offset).abs() < threshold
    for _ in range(REFINEMENTS):
        if int(inliers.sum()) < 3:
            break
        # least squares on the inliers: the plane through their mean normal to their least principal axis
        sel = pts[inliers]
        mean = sel.mean(0)
        normal = torch.linalg.svd(sel - mean, full_matrices=False).Vh[-1]
        offset = -float(normal @ mean)
        inliers = (pts @ normal + offset).abs() < threshold
    if offset < 0:
        normal, offset = -normal, -offset
    return normal.float(), offset, inliers


def camera_from_floor(normal: Tensor, offset: float, K: Tensor, width: int, height: int) -> Camera:
    """The camera's pose in a world frame built on a floor plane seen in its own frame.

    The world z axis is the floor normal, the origin is the point of the floor under the
    camera, and the world x axis is the camera's x axis (image right) laid flat on the floor.

    Args:
        normal: (3,) unit floor normal in camera coordinates, pointing towards the camera.
        offset: camera height above the floor in metres (``normal · x + offset = 0`` on the floor).
        K: (3, 3) intrinsics in pixels.
        width, height: image size in pixels.

    Returns:
        A :class:`Camera` whose world frame has the floor at z = 0.
    """
    n = normal.float() / normal.norm()
    x = torch.tensor([1.0, 0.0, 0.0]) - n[0] * n
    if float(x.norm()) < 1e-6:
        raise ValidationError("camera_from_floor: the camera's x axis is perpendicular to the floor")
    x = x / x.norm()
    y = torch.linalg.cross(n, x)
    R = torch.stack([x, y, n], dim=1)  # columns: world axes in camera coordinates
    t = -offset * n  # world origin (the floor under the camera) in camera coordinates
    return Camera(K, R, t, width, height)


__all__ = ["DepthLifter", "GroundPlaneLifter", "LiftedBoxes", "LiftingConfig", "camera_from_floor", "fit_floor", "stabilise"]

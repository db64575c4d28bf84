"""The motion cue: what moves on its own once the camera's motion is taken out, frame by frame.

Dense optical flow (OpenCV's DIS) runs from each frame back to the previous one (and
forwards, to drop pixels where the two disagree: what a mover uncovers or covers). The
camera's motion is the homography that best explains that flow (RANSAC over a grid of flow
vectors: the floor, walls and backdrop, the largest surfaces, dominate it); what the
homography does not explain is the *residual* flow. Pixels whose residual exceeds both
``min_residual`` pixels and ``noise_factor`` times the frame's typical residual are moving;
their connected components, opened and with small ones dropped, are the moving regions.

A frame where the homography explains too little of the flow (a cut, a whip pan) or where
most of the frame would be moving gives no motion cue: nothing there can be trusted.

Limit: a homography models a flat world, so objects standing well off the dominant plane,
filmed by a camera that moves sideways, leave a residual too (parallax); ``min_residual``
keeps the slow parallax of a hand-held camera out, a fast dolly past near objects does not.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
from torch import Tensor

from ..errors import ConfigError
from ..image_ops import to_uint8


@dataclass
class MotionConfig:
    """Settings of :class:`MotionCue`."""

    gap: int = 3  # frames between the two frames compared: slow movers move further, noise does not grow
    flow_side: int = 320  # frames with a longer side are shrunk to it for the flow (pixel figures below are at that size)
    min_residual: float = 0.4  # pixels a frame: slower residual motion is noise or parallax
    noise_factor: float = 4.0  # a moving pixel's residual exceeds this many times the frame's median residual
    grid_step: int = 4  # pixels between the flow vectors the homography is fitted to
    ransac_pixels: float = 1.0  # homography inlier distance
    consistency_pixels: float = 1.0  # forward and backward flow must agree this well for a pixel to count as moving
    min_inliers: float = 0.3  # share of flow vectors the homography must explain, else no motion cue in that frame
    max_moving: float = 0.5  # share of the frame that may move; more is a cut or a whip pan: no motion cue
    open_radius: int = 1  # opening of the moving mask (pixels): speckle of flow noise goes
    min_area: float = 0.0015  # moving regions smaller than this fraction of the frame are dropped

    def __post_init__(self) -> None:
        if self.min_residual < 0 or self.noise_factor < 0 or self.grid_step < 1 or self.gap < 1:
            raise ConfigError("MotionConfig: min_residual >= 0, noise_factor >= 0, grid_step >= 1 and gap >= 1 are required")


@dataclass
class Motion:
    """The motion cue of one frame.

    Attributes:
        residual: (H, W, 2) float residual flow in pixels a frame (x, y): where each pixel
            came from in the previous frame, less where the camera's motion alone takes it.
        moving: (H, W) bool pixels that move on their own.
        regions: (H, W) int32 connected moving regions 1..R, 0 elsewhere.
    """

    residual: np.ndarray
    moving: np.ndarray
    regions: np.ndarray


def gray_for_flow(frame: Tensor, scale: float) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (round(H * scale), round(W * scale)) uint8 grey, the input of OpenCV's optical flow
    (shrunk by area averaging, enlarged bilinearly)."""
    gray = to_uint8(frame.float().mean(0)).numpy()
    if scale == 1:
        return gray
    H, W = gray.shape
    return cv2.resize(gray, (round(W * scale), round(H * scale)), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


class MotionCue:
    """Residual flow of each frame against the previous one (see the module docstring).

    Args:
        config: see :class:`MotionConfig`.
    """

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frames: the next one starts a clip."""
        self._previous: deque[np.ndarray] = deque(maxlen=self.config.gap)

    def __call__(self, frame: Tensor) -> Motion | None:
        """The motion of ``frame`` (3, H, W) float in [0, 1] since ``gap`` frames before, in pixels a frame; None for the
        first frame of a clip, a frame of another size, or a frame the camera's motion does not explain (see the
        module docstring)."""
        cfg = self.config
        size = tuple(frame.shape[-2:])
        # flow on a smaller copy: outlines come from colour, the motion cue only has to find movers
        scale = min(1.0, cfg.flow_side / max(size))
        gray = gray_for_flow(frame, scale)
        if self._previous and self._previous[-1].shape != gray.shape:
            self._previous.clear()
        gap = len(self._previous)
        previous = self._previous[0] if gap else None
        self._previous.append(gray)
        if previous is None:
            return None
        H, W = gray.shape
        flow = self._flow.calc(gray, previous, None)  # (H, W, 2): current pixel -> where it was
        forward = self._flow.calc(previous, gray, None)
        ys, xs = np.mgrid[cfg.grid_step // 2:H:cfg.grid_step, cfg.grid_step // 2:W:cfg.grid_step]
        here = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32)
        there = here + flow[ys.ravel(), xs.ravel()]
        if len(here) < 8:
            return None
        homography, inliers = cv2.findHomography(here, there, cv2.RANSAC, cfg.ransac_pixels * gap)
        if homography is None or inliers.mean() < cfg.min_inliers:
            return None
        grid = np.stack(np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32)), -1)
        camera = cv2.perspectiveTransform(grid.reshape(-1, 1, 2), homography).reshape(H, W, 2) - grid
        residual = (flow - camera) / gap
        speed = np.linalg.norm(residual, axis=-1)
        moving = speed > max(cfg.min_residual, cfg.noise_factor * float(np.median(speed)))
        # where the previous frame's flow does not lead back (what a mover uncovers or covers), the flow is a guess
        back = cv2.remap(forward, grid[..., 0] + flow[..., 0], grid[..., 1] + flow[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        moving &= np.linalg.norm(flow + back, axis=-1) <= cfg.consistency_pixels * gap
        # pixels that were outside the previous frame (a pan brings them in) have no flow to speak of
        source = grid + flow
        moving &= (source[..., 0] >= 0) & (source[..., 0] <= W - 1) & (source[..., 1] >= 0) & (source[..., 1] <= H - 1)
        if moving.mean() > cfg.max_moving:
            return None
        mask = moving.astype(np.uint8)
        if cfg.open_radius:
            disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * cfg.open_radius + 1,) * 2)
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, disk)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < max(4, cfg.min_area * H * W))
        labels[np.isin(labels, small)] = 0
        kept = np.unique(labels[labels > 0])
        regions = np.zeros_like(labels)
        for i, k in enumerate(kept):
            regions[labels == k] = i + 1
        if scale < 1:
            residual = cv2.resize(residual, size[::-1], interpolation=cv2.INTER_LINEAR) / scale
            regions = cv2.resize(regions, size[::-1], interpolation=cv2.INTER_NEAREST)
        return Motion(residual, regions > 0, regions)


__all__ = ["Motion", "MotionConfig", "MotionCue", "gray_for_flow"]

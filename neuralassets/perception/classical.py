"""A segmenter that needs no weights: colour against the border, optional motion, connected components.

Two cues find objects:

* **Colour outliers** (always): each frame is searched for pixels whose colour is unlike
  every dominant colour of that frame's border (the border is assumed to show floor or
  backdrop, not objects). This finds moving and static objects alike.
* **Motion** (``ClassicalConfig.motion``): pixels far in colour from the clip's background
  (the per-pixel median, or OpenCV's MOG2 mixture; with a moving camera, the median of
  neighbouring frames warped onto each frame by floor homographies). Off by default: on the
  synthetic orbiting-camera videos it added floor-texture residue and no accuracy; with a
  still camera it also finds moving objects coloured like the border.

Both distances are shadow tolerant (:func:`_shadowless_distance`). The foreground is cleaned
with an optional morphological opening and a closing, its holes are filled, and it is split
into connected components; components smaller than ``min_area`` are dropped. Optionally a
component is split further where two colour clusters inside it are far apart.

Limits (see docs/PERCEPTION.md): objects coloured like the floor or border are missed
(grey, white or black objects on a neutral floor above all); objects that overlap in the
image merge; shadows darker than ``shadow_min_brightness`` of the floor count as object.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from .detections import FrameDetections


@dataclass
class ClassicalConfig:
    """Settings of :class:`ClassicalSegmenter` (tuned on the synthetic generator's validation videos)."""

    colour_threshold: float = 0.05  # RGB distance (colours in [0, 1]) to every border colour that marks an object
    border_colours: int = 6  # k-means clusters summarising each frame's border colours
    border_width: float = 0.04  # fraction of the image side taken as border
    shadow_min_brightness: float = 0.5  # a pixel this bright or brighter relative to a reference colour, same hue, is shadow
    min_area: float = 0.0015  # components smaller than this fraction of the image are noise
    open_radius: int = 0  # opening removes specks and one-pixel bridges (pixels); it also eats thin objects
    close_radius: int = 1  # closing fills pinholes (pixels)
    fill_holes: bool = True  # fill regions of a component's mask that do not reach the image border
    split_threshold: float | None = None  # colour distance between two clusters inside a component that splits it;
    # None never splits (textured objects would be cut into pieces)
    motion: bool = False  # add the motion cue (see the module docstring)
    background: str = "median"  # motion cue: "median" of the clip, or "mog2" (OpenCV's adaptive mixture, for long clips)
    motion_threshold: float = 0.1  # motion cue: RGB distance to the background that counts as motion
    min_frames_for_motion: int = 3  # motion cue: shorter clips use the colour cue only
    align: bool = True  # motion cue: compensate camera motion (floor homographies)
    window: int = 12  # motion cue: frames either side of a frame whose median is its background when the camera moves
    window_stride: int = 2  # motion cue: every this many frames of the window are used
    moving_pixels: float = 0.5  # motion cue: largest image-corner motion over the clip (pixels) below which the camera is still

    def __post_init__(self) -> None:
        if self.background not in ("median", "mog2"):
            raise ConfigError(f"ClassicalConfig.background: expected 'median' or 'mog2', got {self.background!r}")
        if not 0 < self.min_area < 1:
            raise ConfigError(f"ClassicalConfig.min_area: expected a fraction in (0, 1), got {self.min_area}")
        if not 0 <= self.shadow_min_brightness <= 1:
            raise ConfigError(f"ClassicalConfig.shadow_min_brightness: expected a fraction in [0, 1], "
                              f"got {self.shadow_min_brightness}")


class ClassicalSegmenter:
    """Default segmenter for real or synthetic video when no model weights are available.

    Args:
        config: thresholds and morphology; see :class:`ClassicalConfig`.
    """

    def __init__(self, config: ClassicalConfig | None = None) -> None:
        self.config = config or ClassicalConfig()

    def segment(self, frames: Tensor) -> list[FrameDetections]:
        """Segment ``frames`` (T, 3, H, W) float in [0, 1] into per-frame detections.

        Scores are the mean colour distance of a component over twice the threshold that
        found it, clipped to [0, 1].
        """
        cfg = self.config
        video = frames.permute(0, 2, 3, 1).float().contiguous().numpy()  # (T, H, W, 3)
        T, H, W, _ = video.shape
        min_pixels = max(4, int(cfg.min_area * H * W))
        strength = self._colour_outliers(video) / cfg.colour_threshold  # (T, H, W)
        if cfg.motion and T >= cfg.min_frames_for_motion:
            background = self._backgrounds(video)  # (T, H, W, 3), or (1, H, W, 3) for a still camera
            motion = _shadowless_distance(video, background, cfg.shadow_min_brightness)  # (T, H, W)
            strength = np.maximum(strength, motion / cfg.motion_threshold)
        fg = (strength > 1).astype(np.uint8)
        out = []
        for t in range(T):
            mask = fg[t]
            if cfg.open_radius:
                mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disk(cfg.open_radius))
            if cfg.close_radius:
                mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disk(cfg.close_radius))
            if cfg.fill_holes:
                mask = _fill_holes(mask)
            masks = _components(mask, min_pixels)
            if cfg.split_threshold is not None:
                masks = [m for comp in masks for m in self._split_by_colour(comp, video[t], min_pixels)]
            if not masks:
                out.append(FrameDetections.empty(H, W))
                continue
            stack = np.stack(masks)  # (K, H, W)
            area = stack.reshape(len(masks), -1).sum(1)
            scores = np.minimum(1.0, (stack.reshape(len(masks), -1) @ strength[t].reshape(-1)) / area / 2)
            out.append(FrameDetections.from_masks(torch.from_numpy(stack), torch.from_numpy(scores).float()))
        return out

    # -- cues -------------------------------------------------------------------------
    def _backgrounds(self, video: np.ndarray) -> np.ndarray:
        """Background image(s) of the clip: (1, H, W, 3) for a still camera, else (T, H, W, 3), one per frame."""
        cfg = self.config
        T, H, W, _ = video.shape
        homographies = _homographies_to_first(video) if cfg.align else None
        corners = np.float32([[0, 0], [W, 0], [0, H], [W, H]]).reshape(-1, 1, 2)
        if homographies is None or max(
                float(np.abs(cv2.perspectiveTransform(corners, h) - corners).max()) for h in homographies) < cfg.moving_pixels:
            if cfg.background == "median":
                return np.median(video, axis=0)[None]
            mog = cv2.createBackgroundSubtractorMOG2(history=T, detectShadows=False)
            for frame in video:
                mog.apply((frame * 255).astype(np.uint8))
            return (mog.getBackgroundImage().astype(np.float32) / 255.0)[None]
        # a moving camera: each frame's background is the median of its neighbours warped onto it
        out = np.empty_like(video)
        inverse = [np.linalg.inv(h) for h in homographies]
        for t in range(T):
            neighbours = range(max(0, t - cfg.window), min(T, t + cfg.window + 1), cfg.window_stride)
            stack = np.stack([cv2.warpPerspective(video[s], inverse[t] @ homographies[s], (W, H), flags=cv2.INTER_LINEAR,
                                                  borderValue=(np.nan,) * 3) for s in neighbours])  # frame s → 0 → t
            # pixels a neighbour does not cover vote for the frame's own colour (no motion there)
            out[t] = np.median(np.where(np.isnan(stack), video[t][None], stack), axis=0)
        return out

    def _colour_outliers(self, video: np.ndarray) -> np.ndarray:
        """(T, H, W) shadow-tolerant RGB distance of each pixel to the nearest dominant colour of its frame's border."""
        cfg = self.config
        T, H, W, _ = video.shape
        b = max(1, int(round(cfg.border_width * min(H, W))))
        rings = np.concatenate([video[:, :b].reshape(T, -1, 3), video[:, -b:].reshape(T, -1, 3),
                                video[:, :, :b].reshape(T, -1, 3), video[:, :, -b:].reshape(T, -1, 3)], axis=1)
        k = min(cfg.border_colours, rings.shape[1])
        palettes = np.stack([_kmeans(ring, k) for ring in rings])  # (T, k, 3)
        return _distance_to_palette(video, palettes, cfg.shadow_min_brightness)

    def _split_by_colour(self, component: np.ndarray, image: np.ndarray, min_pixels: int) -> list[np.ndarray]:
        """Split a component into colour clusters when two of them differ by more than ``split_threshold``."""
        pixels = image[component]
        if len(pixels) < 2 * min_pixels:
            return [component]
        centres, labels = _kmeans(pixels, 2, return_labels=True)
        if np.linalg.norm(centres[0] - centres[1]) < self.config.split_threshold:
            return [component]
        parts = []
        for c in range(2):
            part = np.zeros_like(component)
            part[component] = labels == c
            part = cv2.morphologyEx(part.astype(np.uint8), cv2.MORPH_OPEN, _disk(1))
            parts.extend(_components(part, min_pixels))
        return parts or [component]


def _shadowless_distance(pixels: np.ndarray, reference: np.ndarray, min_brightness: float) -> np.ndarray:
    """RGB distance from ``pixels`` to the nearest dimmed copy ``a * reference``, ``a`` in [min_brightness, 1.1].

    A shadow (or a lighting change) scales a surface's colour without changing its hue, so
    it stays near its dimmed background colour and is not mistaken for an object. Arrays
    broadcast over leading axes; the last axis is RGB.
    """
    return _shadowless_from_dots((pixels * pixels).sum(-1), (pixels * reference).sum(-1), (reference * reference).sum(-1),
                                 min_brightness)


def _distance_to_palette(video: np.ndarray, palettes: np.ndarray, min_brightness: float) -> np.ndarray:
    """(T, H, W, 3) pixels, (T, k, 3) colours per frame → (T, H, W) :func:`_shadowless_distance` to the nearest colour.

    Works on dot products (one matrix product per frame) instead of (T, H, W, k, 3) differences.
    """
    T, H, W, _ = video.shape
    flat = video.reshape(T, H * W, 3)
    distance = _shadowless_from_dots((flat * flat).sum(-1)[..., None], flat @ palettes.transpose(0, 2, 1),
                                     (palettes * palettes).sum(-1)[:, None, :], min_brightness)  # (T, H*W, k)
    return distance.min(-1).reshape(T, H, W)


def _shadowless_from_dots(pp: np.ndarray, pr: np.ndarray, rr: np.ndarray, min_brightness: float) -> np.ndarray:
    """``|p - a r|`` from the dot products p·p, p·r and r·r, with ``a = clip(p·r / r·r, min_brightness, 1.1)``."""
    a = np.clip(pr / np.maximum(rr, 1e-6), min_brightness, 1.1)
    return np.sqrt(np.maximum(pp - 2 * a * pr + a * a * rr, 0.0))


def _homographies_to_first(video: np.ndarray) -> list[np.ndarray] | None:
    """Per frame, the homography taking its pixels to frame 0 (chained frame to frame).

    Corners of frame t - 1 are followed into frame t with pyramidal Lucas-Kanade optical flow
    (local search, so repetitive floor textures such as tiles do not confuse it the way
    descriptor matching does) and a homography is fitted with RANSAC; the floor, the largest
    plane in view, dominates it. A pair with too few tracked corners, mostly outliers or a
    jump of more than a tenth of the image counts as no motion. Returns None when the video
    has too little texture to align at all.
    """
    T, H, W, _ = video.shape
    gray = [(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) * 255).astype(np.uint8) for f in video]
    corners = np.float32([[0, 0], [W, 0], [0, H], [W, H]]).reshape(-1, 1, 2)
    chain = [np.eye(3)]
    found_any = False
    for t in range(1, T):
        h = None
        points = cv2.goodFeaturesToTrack(gray[t - 1], maxCorners=300, qualityLevel=0.01, minDistance=3, blockSize=5)
        if points is not None and len(points) >= 8:
            moved, status, _ = cv2.calcOpticalFlowPyrLK(gray[t - 1], gray[t], points, None, winSize=(15, 15), maxLevel=2)
            ok = status.ravel() == 1
            if ok.sum() >= 8:
                found_any = True
                # h maps frame t onto frame t - 1
                h, inliers = cv2.findHomography(moved[ok], points[ok], cv2.RANSAC, 1.0)
                if h is not None and (inliers.mean() < 0.3 or np.abs(cv2.perspectiveTransform(corners, h) - corners).max()
                                      > 0.1 * max(H, W)):
                    h = None
        chain.append(chain[-1] @ (h if h is not None else np.eye(3)))  # frame t → t-1 → ... → 0
    return chain if found_any else None


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _components(mask: np.ndarray, min_pixels: int) -> list[np.ndarray]:
    """Connected components (8-connected) of a uint8 mask with at least ``min_pixels`` pixels, as bool masks."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [labels == i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_pixels]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """(H, W) uint8 mask with every background region that does not reach the image border set."""
    H, W = mask.shape
    padded = np.zeros((H + 2, W + 2), np.uint8)
    padded[1:-1, 1:-1] = mask > 0
    outside = padded.copy()
    cv2.floodFill(outside, None, (0, 0), 1)  # reaches all background connected to the (padded) border
    return ((padded | (outside == 0))[1:-1, 1:-1]).astype(np.uint8)


def _kmeans(points: np.ndarray, k: int, return_labels: bool = False):
    """Deterministic k-means (k-means++ seeding from a fixed seed) of (P, 3) colours."""
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1e-3)
    _, labels, centres = cv2.kmeans(points.astype(np.float32), k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    return (centres, labels.ravel()) if return_labels else centres


__all__ = ["ClassicalConfig", "ClassicalSegmenter"]

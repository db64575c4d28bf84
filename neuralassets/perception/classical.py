"""A segmenter that needs no weights: background modelling, colour distance and connected components.

Two cues find objects:

* **Motion**: the background is the per-pixel median of the clip (or OpenCV's MOG2
  mixture); pixels far from it in colour belong to something that moved.
* **Colour outliers**: objects that never move are part of that median, so the
  background image itself is searched for pixels whose colour is unlike every colour on the
  image border (the border is assumed to show floor or backdrop, not objects).

The union is cleaned with a morphological opening and closing, split into connected
components, and components smaller than ``min_area`` are dropped. A component is split
further where colour clusters inside it are far apart, so two touching objects of
different colours become two masks.

Limits (see docs/PERCEPTION.md): the camera must be (nearly) static for the motion cue;
objects coloured like the floor or border are missed; touching objects of similar colour
merge; shadows that move are counted as object.
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

    background: str = "median"  # "median" of the clip, or "mog2" (OpenCV's adaptive mixture, for long clips)
    motion_threshold: float = 0.1  # RGB distance (colours in [0, 1]) to the background that counts as motion
    colour_threshold: float = 0.1  # RGB distance to every border colour that marks a static object
    border_colours: int = 6  # k-means clusters summarising the border's colours
    border_width: float = 0.04  # fraction of the image side taken as border
    min_area: float = 0.0015  # components smaller than this fraction of the image are noise
    open_radius: int = 1  # opening removes specks and one-pixel bridges (pixels)
    close_radius: int = 1  # closing fills pinholes (pixels)
    split_threshold: float = 0.3  # colour distance between clusters inside a component that splits it
    shadow_min_brightness: float = 0.3  # a pixel this dark or brighter relative to a background colour, same hue, is shadow
    min_frames_for_motion: int = 3  # shorter clips use the colour cue only
    align: bool = True  # compensate camera motion: warp neighbouring frames onto each frame (floor homography)
    window: int = 12  # frames either side of a frame whose median is its background when the camera moves
    window_stride: int = 2  # every this many frames of the window are used
    moving_pixels: float = 0.5  # largest image-corner motion over the clip (pixels) below which the camera is still

    def __post_init__(self) -> None:
        if self.background not in ("median", "mog2"):
            raise ConfigError(f"ClassicalConfig.background: expected 'median' or 'mog2', got {self.background!r}")
        if not 0 < self.min_area < 1:
            raise ConfigError(f"ClassicalConfig.min_area: expected a fraction in (0, 1), got {self.min_area}")


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
        if T >= cfg.min_frames_for_motion:
            background = self._backgrounds(video)  # (T, H, W, 3), or (1, H, W, 3) for a still camera
            motion = _shadowless_distance(video, background, cfg.shadow_min_brightness)  # (T, H, W)
            static = np.stack([self._colour_outliers(b) for b in background])
            fg = (motion > cfg.motion_threshold) | (static > cfg.colour_threshold)
            strength = np.maximum(motion / cfg.motion_threshold, static / cfg.colour_threshold)
        else:
            static = np.stack([self._colour_outliers(v) for v in video])
            fg = static > cfg.colour_threshold
            strength = static / cfg.colour_threshold
        opener = _disk(cfg.open_radius)
        closer = _disk(cfg.close_radius)
        out = []
        for t in range(T):
            mask = fg[t].astype(np.uint8)
            if cfg.open_radius:
                mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, opener)
            if cfg.close_radius:
                mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, closer)
            masks = [m for comp in _components(mask, min_pixels) for m in self._split_by_colour(comp, video[t], min_pixels)]
            if not masks:
                out.append(FrameDetections.empty(H, W))
                continue
            stack = np.stack(masks)
            scores = [min(1.0, float(strength[min(t, len(strength) - 1)][m].mean()) / 2) for m in masks]
            out.append(FrameDetections.from_masks(torch.from_numpy(stack), torch.tensor(scores)))
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

    def _colour_outliers(self, image: np.ndarray) -> np.ndarray:
        """(H, W) RGB distance of each pixel to the nearest of the border's dominant colours."""
        cfg = self.config
        H, W, _ = image.shape
        b = max(1, int(round(cfg.border_width * min(H, W))))
        ring = np.concatenate([image[:b].reshape(-1, 3), image[-b:].reshape(-1, 3),
                               image[:, :b].reshape(-1, 3), image[:, -b:].reshape(-1, 3)])
        k = min(cfg.border_colours, len(ring))
        centres = _kmeans(ring, k)
        return _shadowless_distance(image[:, :, None, :], centres[None, None], cfg.shadow_min_brightness).min(axis=-1)

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
    a = (pixels * reference).sum(-1, keepdims=True) / np.maximum((reference * reference).sum(-1, keepdims=True), 1e-6)
    a = np.clip(a, min_brightness, 1.1)
    return np.linalg.norm(pixels - a * reference, axis=-1)


def _homographies_to_first(video: np.ndarray) -> list[np.ndarray] | None:
    """Per frame, the homography taking its pixels to frame 0 (chained frame to frame; ORB + RANSAC).

    A frame pair whose homography is unreliable (few or ambiguous matches, as on repetitive
    texture, or a jump of more than a tenth of the image) counts as no motion. Returns None
    when the video has too little texture to align at all.
    """
    T, H, W, _ = video.shape
    gray = [(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) * 255).astype(np.uint8) for f in video]
    orb = cv2.ORB_create(nfeatures=500, edgeThreshold=8, patchSize=15, fastThreshold=10)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    features = [orb.detectAndCompute(g, None) for g in gray]
    if all(d is None or len(d) < 8 for _, d in features):
        return None
    corners = np.float32([[0, 0], [W, 0], [0, H], [W, H]]).reshape(-1, 1, 2)
    chain = [np.eye(3)]
    for t in range(1, T):
        (kp0, d0), (kp1, d1) = features[t - 1], features[t]
        h = None
        if d0 is not None and d1 is not None:
            matches = matcher.match(d1, d0)
            if len(matches) >= 8:
                src = np.float32([kp1[m.queryIdx].pt for m in matches])
                dst = np.float32([kp0[m.trainIdx].pt for m in matches])
                h, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 1.5)
                if h is not None and (inliers.mean() < 0.5 or np.abs(cv2.perspectiveTransform(corners, h) - corners).max()
                                      > 0.1 * max(H, W)):
                    h = None
        chain.append(chain[-1] @ (h if h is not None else np.eye(3)))  # frame t → t-1 → ... → 0
    return chain


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _components(mask: np.ndarray, min_pixels: int) -> list[np.ndarray]:
    """Connected components (8-connected) of a uint8 mask with at least ``min_pixels`` pixels, as bool masks."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [labels == i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_pixels]


def _kmeans(points: np.ndarray, k: int, return_labels: bool = False):
    """Deterministic k-means (k-means++ seeding from a fixed seed) of (P, 3) colours."""
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1e-3)
    _, labels, centres = cv2.kmeans(points.astype(np.float32), k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    return (centres, labels.ravel()) if return_labels else centres


__all__ = ["ClassicalConfig", "ClassicalSegmenter"]

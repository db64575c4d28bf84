"""A segmenter that needs no weights: colour against the border, motion against the camera, components split by colour.

Two cues find objects, one frame at a time:

* **Colour outliers**: each frame is searched for pixels whose colour is unlike every
  dominant colour of that frame's border at the same height (the border is assumed to show
  floor or backdrop, not objects; comparing by horizontal band keeps a white object on the
  floor from matching a white sky). The bar a pixel must clear follows the border's own
  scatter about its palette, so compression noise and fine floor texture do not count.
  This finds moving and static objects alike. The distance is shadow tolerant
  (:func:`_shadowless_distance`). The foreground is cleaned with an optional opening and a
  closing, its holes are filled, and it is split into connected components; components
  smaller than ``min_area`` are dropped. Objects that overlap in the image form one
  component, so each component is split into its differently coloured parts
  (:meth:`ClassicalSegmenter._split_by_colour`), keeping shaded, striped, checkered and
  spotted objects whole.
* **Motion** (:class:`~neuralassets.perception.motion.MotionCue`): optical flow against the
  previous frame, less the camera's motion (a homography fitted to the flow). Colour parts
  lying mostly inside one moving region that move alike are one object (a person's shirt,
  trousers and face; a multi-coloured toy pushed by a hand); a moving region colour does
  not explain (an object coloured like the floor, a grayscale clip) becomes an object of its
  own.

Limits (see docs/PERCEPTION.md): static objects coloured like the floor or border are
missed (grey, white or black objects on a neutral floor above all, and objects touching the
image border); overlapping static objects of the same colour stay merged while two-tone
static objects are cut in two; shadows darker than ``shadow_min_brightness`` of the floor
count as object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from scipy import ndimage
from scipy.sparse.csgraph import connected_components
from torch import Tensor

from ..errors import ConfigError
from .detections import FrameDetections
from .motion import Motion, MotionConfig, MotionCue


@dataclass
class ClassicalConfig:
    """Settings of :class:`ClassicalSegmenter` (tuned on the synthetic generator's validation videos)."""

    colour_threshold: float = 0.02  # RGB distance (colours in [0, 1]) to every border colour that marks an object
    noise_quantile: float = 0.9  # quantile of the border pixels' distances to their palette taken as its noise
    noise_margin: float = 1.5  # an object's distance must exceed the border's noise times this
    border_colours: int = 6  # k-means clusters summarising each frame's border colours
    border_width: float = 0.04  # fraction of the image side taken as border
    border_bands: int = 4  # horizontal bands, each compared with the border at its own height (1: the whole border)
    shadow_min_brightness: float = 0.4  # a pixel this bright or brighter relative to a reference colour, same hue, is shadow
    min_area: float = 0.0015  # components smaller than this fraction of the image are noise
    open_radius: int = 1  # opening removes specks, compression halos and thin bridges (pixels); it also rounds corners
    # (a rectangle loses its four corner pixels) and eats objects thinner than 3 pixels
    close_radius: int = 1  # closing fills pinholes (pixels)
    fill_holes: bool = True  # fill regions of a component's mask that do not reach the image border
    split_threshold: float | None = 0.05  # shading-tolerant colour distance between two colour groups of a component
    # that splits it into objects; None never splits
    split_clusters: int = 10  # k-means clusters of a component's colours considered for splitting
    split_min_brightness: float = 0.4  # colours this much dimmer than another, same hue, are one surface in light and shade
    split_interleave: float = 6.0  # boundary between two colour groups, over the square root of the smaller one's area,
    # above which they are one textured object (stripes, checks) rather than two objects
    motion: MotionConfig | None = field(default_factory=MotionConfig)  # the motion cue's settings; None: colour only
    motion_parts: float = 0.5  # a colour part whose pixels lie this much inside a moving region moves with it
    motion_alike: float = 0.5  # parts of a moving region whose residual flows differ by less than this fraction
    # (or by less than MotionConfig.min_residual pixels) move alike: one object
    motion_fill: float = 0.25  # colour covering less of a moving region than this: its moving pixels join its objects
    motion_min_area: float = 0.02  # a moving region colour does not explain at all is an object from this fraction of
    # the frame up (smaller ones are mostly moving shadows and flow noise)

    def __post_init__(self) -> None:
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
        self._motion = MotionCue(self.config.motion) if self.config.motion is not None else None

    def reset(self) -> None:
        """Start a new clip: the motion cue forgets the previous frame."""
        if self._motion is not None:
            self._motion.reset()

    def segment(self, frames: Tensor) -> list[FrameDetections]:
        """Segment ``frames`` (T, 3, H, W) float in [0, 1] into per-frame detections.

        Frames are taken to follow the previous call's (the motion cue compares each with the
        one before); call :meth:`reset` before another clip. Scores are the mean cue strength
        of a mask (distance over the bar it had to clear) over two, clipped to [0, 1].
        """
        cfg = self.config
        video = frames.permute(0, 2, 3, 1).float().contiguous().numpy()  # (T, H, W, 3)
        T, H, W, _ = video.shape
        min_pixels = max(4, int(cfg.min_area * H * W))
        strength = self._colour_outliers(video)  # (T, H, W)
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
            # what runs from the left edge to the right one is the scene's structure (horizon, backdrop, a wall), not an object
            masks = [m for m in _components(mask, min_pixels) if not (m[:, 0].any() and m[:, -1].any())]
            if cfg.split_threshold is not None:
                masks = [m for comp in masks for m in self._split_by_colour(comp, video[t], min_pixels)]
            motion = self._motion(frames[t]) if self._motion is not None else None
            evidence = strength[t]
            if motion is not None and motion.regions.any():
                masks = self._with_motion(masks, motion, min_pixels)
                moved = np.linalg.norm(motion.residual, axis=-1) / max(self._motion.config.min_residual, 1e-6)
                evidence = np.maximum(evidence, np.where(motion.moving, moved, 0))
            if not masks:
                out.append(FrameDetections.empty(H, W))
                continue
            stack = np.stack(masks)  # (K, H, W)
            area = stack.reshape(len(masks), -1).sum(1)
            scores = np.minimum(1.0, (stack.reshape(len(masks), -1) @ evidence.reshape(-1)) / area / 2)
            out.append(FrameDetections.from_masks(torch.from_numpy(stack), torch.from_numpy(scores).float()))
        return out

    # -- cues -------------------------------------------------------------------------
    def _with_motion(self, parts: list[np.ndarray], motion: Motion, min_pixels: int) -> list[np.ndarray]:
        """Colour parts (H, W) bool merged by the moving regions they lie in (see the module docstring).

        Parts lying mostly (``motion_parts``) inside one moving region are grouped when they
        touch and their median residual flows are alike (``motion_alike``); each group becomes
        one object.
        A region's pixels join its objects only where colour covers less than ``motion_fill``
        of it (flow blurs outlines and smears into what a mover uncovers, colour keeps them
        sharp); a region with no part becomes an object by itself. Parts outside every moving region are kept as they are.
        """
        cfg = self.config
        regions = motion.regions
        count = int(regions.max())
        inside: dict[int, list[np.ndarray]] = {r: [] for r in range(1, count + 1)}
        out = []
        for part in parts:
            overlap = np.bincount(regions[part], minlength=count + 1)
            best = int(overlap[1:].argmax()) + 1
            if overlap[best] > cfg.motion_parts * part.sum():
                inside[best].append(part)
            else:
                out.append(part)
        floor = self._motion.config.min_residual
        for r, members in inside.items():
            region = regions == r
            if not members:
                if region.sum() >= cfg.motion_min_area * region.size:
                    out.append(region)
                continue
            flows = np.array([np.median(motion.residual[m], axis=0) for m in members])  # (P, 2)
            speed = np.linalg.norm(flows, axis=1)
            gap = np.linalg.norm(flows[:, None] - flows[None], axis=-1)
            alike = gap <= np.maximum(floor, cfg.motion_alike * np.maximum(speed[:, None], speed[None]))
            grown = [cv2.dilate(m.astype(np.uint8), _disk(1)).astype(bool) for m in members]
            touching = np.array([[bool((a & b).any()) for b in members] for a in grown])
            groups = connected_components(alike & touching, directed=False)[1]
            objects = [np.any([m for m, g in zip(members, groups) if g == k], axis=0) for k in range(groups.max() + 1)]
            covered = np.any(objects, axis=0)
            if (covered & region).sum() < cfg.motion_fill * region.sum():
                # colour misses most of the region: its moving pixels join the nearest object
                seeds = np.zeros(region.shape, np.int32)
                for k, o in enumerate(objects):
                    seeds[o] = k + 1
                _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
                nearest = np.where(region & ~covered, seeds[iy, ix], 0)
                objects = [o | (nearest == k + 1) for k, o in enumerate(objects)]
            out.extend(o for o in objects if o.sum() >= min_pixels)
        return out

    def _colour_outliers(self, video: np.ndarray) -> np.ndarray:
        """(T, H, W) shadow-tolerant RGB distance of each pixel to the nearest dominant colour of its frame's border,
        over the bar an object must clear: ``colour_threshold``, or ``noise_margin`` times the ``noise_quantile``
        of the border pixels' own distances when that is higher (compressed video, fine floor texture).

        With ``border_bands`` > 1 the image is cut into horizontal bands and each band is
        compared with the border pixels at its own height (its rows and one band-height
        either side): floor pixels are then not matched against the backdrop (a white object
        on the floor is not "sky"), nor floor colours of a far band against a near one.
        """
        cfg = self.config
        T, H, W, _ = video.shape
        b = max(1, int(round(cfg.border_width * min(H, W))))
        ring = np.zeros((H, W), bool)
        ring[:b], ring[-b:], ring[:, :b], ring[:, -b:] = True, True, True, True
        edges = np.linspace(0, H, cfg.border_bands + 1).round().astype(int)
        out = np.empty((T, H, W), np.float32)
        for r0, r1 in zip(edges[:-1], edges[1:]):
            reach = max(r1 - r0, b) if cfg.border_bands > 1 else H
            near = ring & ((np.arange(H) >= r0 - reach) & (np.arange(H) < r1 + reach))[:, None]
            refs = video[:, near]  # (T, P, 3)
            k = min(cfg.border_colours, refs.shape[1])
            palettes = np.stack([_kmeans(ref, k) for ref in refs])  # (T, k, 3)
            # the border's own scatter about its palette (compression noise, fine texture) sets the bar
            noise = np.quantile(_distance_to_palette(refs[:, None], palettes, cfg.shadow_min_brightness)[:, 0],
                                cfg.noise_quantile, axis=1)  # (T,)
            bar = np.maximum(cfg.colour_threshold, cfg.noise_margin * noise)[:, None, None]
            out[:, r0:r1] = _distance_to_palette(video[:, r0:r1], palettes, cfg.shadow_min_brightness) / bar
        return out

    def _split_by_colour(self, component: np.ndarray, image: np.ndarray, min_pixels: int) -> list[np.ndarray]:
        """Split a component (H, W) bool of ``image`` (H, W, 3) into differently coloured objects.

        The component's colours are clustered (k-means, ``split_clusters``) and clusters that
        differ only by shading (:func:`_shadowless_distance` below ``split_threshold``) are
        grouped. Groups that interleave (stripes, checks: a shared boundary long for their
        area) or are too small to be an object (specular spots, anti-aliased edges) are merged
        into the neighbour they share most boundary with. Each remaining group's largest
        connected piece seeds a part; every pixel of the component joins its nearest seed.
        """
        cfg = self.config
        ys, xs = np.nonzero(component)
        if len(ys) < 2 * min_pixels:
            return [component]
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        crop = component[y0:y1, x0:x1]
        k = min(cfg.split_clusters, len(ys))
        centres, labels = _kmeans(image[ys, xs], k, return_labels=True)
        groups = _shading_groups(centres, cfg.split_threshold, cfg.split_min_brightness)
        label = np.full(crop.shape, -1, np.int64)
        label[ys - y0, xs - x0] = groups[labels]
        label = _merge_interleaved(label, min_pixels, cfg.split_interleave)
        seeds = np.zeros(crop.shape, np.int32)
        for i, g in enumerate(np.unique(label[label >= 0])):
            pieces = _components(label == g, 1)
            seeds[max(pieces, key=np.sum)] = i + 1
        if seeds.max() < 2:
            return [component]
        # every pixel of the component joins its nearest seed
        _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
        nearest = np.where(crop, seeds[iy, ix], 0)
        parts = []
        for i in range(1, seeds.max() + 1):
            for piece in _components(nearest == i, min_pixels):
                part = np.zeros_like(component)
                part[y0:y1, x0:x1] = piece
                parts.append(part)
        return parts or [component]


def _shading_groups(centres: np.ndarray, threshold: float, min_brightness: float) -> np.ndarray:
    """(k,) group index of each of (k, 3) colours; colours within ``threshold`` of a dimmed copy of another share one."""
    distance = _shadowless_distance(centres[:, None], centres[None], min_brightness)  # (k, k) from i to dimmed j
    same = np.minimum(distance, distance.T) < threshold
    return connected_components(same, directed=False)[1]


def _merge_interleaved(label: np.ndarray, min_pixels: int, interleave: float) -> np.ndarray:
    """Merge label regions (-1 = outside) that are small, enclosed or interleave, into the neighbour they touch most.

    Two regions interleave when their shared boundary (4-neighbour pixel pairs) is longer
    than ``interleave`` times the square root of the smaller one's area: a straight cut
    between two objects is about as long as the smaller object is wide, stripes and checks
    are many times longer. A region that does not reach the outline (a spot of another
    colour on an object) is never an object of its own: in front of another object it would
    cut through its outline.
    """
    label = np.pad(label, 1, constant_values=-1)  # the outline also runs along the crop's edge
    while True:
        ids, area = np.unique(label[label >= 0], return_counts=True)
        if len(ids) < 2:
            return label[1:-1, 1:-1]
        n = int(ids.max()) + 2  # the last row and column count contacts with the outside (-1)
        touching = np.zeros((n, n))
        for a, b in ((label[:, 1:], label[:, :-1]), (label[1:], label[:-1])):
            pair = a != b
            np.add.at(touching, (a[pair], b[pair]), 1)
        touching = touching + touching.T
        enclosed = touching[:, -1] == 0
        touching = touching[:-1, :-1]
        size = np.zeros(n - 1)
        size[ids] = area
        smaller = np.sqrt(np.minimum(size[:, None], size[None]))
        ratio = np.where(touching > 0, touching / np.maximum(smaller, 1), 0)
        doomed = (size < min_pixels) | enclosed[:-1]
        # a doomed region (row) goes first, into the neighbour it touches most
        ratio[doomed] = np.where(touching[doomed] > 0, 1e9 + touching[doomed], 0)
        a, b = np.unravel_index(ratio.argmax(), ratio.shape)
        if ratio[a, b] <= interleave:
            return label[1:-1, 1:-1]
        if not doomed[a] and size[a] > size[b]:
            a, b = b, a
        label[label == a] = b


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

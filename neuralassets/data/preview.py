"""Contact sheets of generated scenes: frames with projected 3D boxes, instance masks and depth."""

from __future__ import annotations

import cv2
import numpy as np

from ..image_ops import draw_projected_box, projected_box, to_numpy_image, to_uint8, upscale
from ..scene import Scene

#: Distinct colours (RGB uint8) for asset ids 1, 2, ... (cycled).
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
                    [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [170, 110, 40]],
                   dtype=np.uint8)


def draw_boxes(scene: Scene, frame: int, scale: int = 1) -> np.ndarray:
    """Frame ``frame`` with every asset's projected 3D box drawn in its palette colour.

    Edges follow :data:`neuralassets.geometry.BOX_EDGES`; corner 0 gets a dot so the
    box's orientation can be read. Boxes with a corner behind the camera are skipped.

    Returns:
        (H * scale, W * scale, 3) uint8.
    """
    image = upscale(to_numpy_image(scene.frames[frame]), scale)
    for a in scene.assets:
        uv = projected_box(scene, a.id, frame, near=1e-3)
        if uv is None:
            continue
        colour = tuple(int(c) for c in PALETTE[(a.id - 1) % len(PALETTE)])
        draw_projected_box(image, uv, colour, scale=scale)
        corner = (uv[0].double() * scale - 0.5).round().long().tolist()
        cv2.circle(image, tuple(corner), max(1, scale), colour, -1, cv2.LINE_8)
    return image


def instance_overlay(scene: Scene, frame: int, scale: int = 1, alpha: float = 0.6) -> np.ndarray:
    """Frame ``frame`` with each asset's visible mask tinted in its palette colour; (H*s, W*s, 3) uint8."""
    image = to_numpy_image(scene.frames[frame]).astype(np.float32)
    ids = scene.instance_map(frame).numpy()
    colours = PALETTE[(ids - 1) % len(PALETTE)].astype(np.float32)
    tinted = np.where((ids > 0)[..., None], (1 - alpha) * image + alpha * colours, 0.35 * image)
    return upscale(tinted.round().astype(np.uint8), scale)


def depth_image(scene: Scene, frame: int, scale: int = 1) -> np.ndarray:
    """Depth of frame ``frame`` as a colour map (near = bright), normalised per frame; (H*s, W*s, 3) uint8."""
    if scene.depth is None:
        return np.zeros((scene.height * scale, scene.width * scale, 3), np.uint8)
    inverse = 1.0 / scene.depth[frame].clamp(min=1e-3)
    lo, hi = float(inverse.min()), float(inverse.max())
    grey = to_uint8((inverse - lo) / max(hi - lo, 1e-9)).numpy()
    return upscale(cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_MAGMA), cv2.COLOR_BGR2RGB), scale)


def contact_sheet(scenes: list[Scene], frames: list[int] | None = None, scale: int = 2, gap: int = 4) -> np.ndarray:
    """One row per scene: the chosen frames with 3D boxes, then masks and depth of the first chosen frame.

    Args:
        scenes: scenes with frames (and depth, masks for the last two columns).
        frames: frame indices to show (default: first, middle, last).
        scale: pixel upscaling factor.
        gap: white pixels between tiles.

    Returns:
        (rows, columns, 3) uint8 image.
    """
    rows = []
    for scene in scenes:
        chosen = frames if frames is not None else sorted({0, scene.num_frames // 2, scene.num_frames - 1})
        tiles = [draw_boxes(scene, f, scale) for f in chosen]
        tiles += [instance_overlay(scene, chosen[0], scale), depth_image(scene, chosen[0], scale)]
        spacer = np.full((tiles[0].shape[0], gap, 3), 255, np.uint8)
        row = [t for tile in tiles for t in (tile, spacer)][:-1]
        rows.append(np.concatenate(row, axis=1))
    width = max(r.shape[1] for r in rows)
    padded = []
    for r in rows:
        r = np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255)
        padded.append(r)
    return np.concatenate(padded, axis=0)[:-gap]

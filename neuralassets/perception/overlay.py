"""Drawing what extraction found: masks, ids and projected 3D boxes over the frames."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np
from torch import Tensor

from ..image_ops import draw_projected_box, from_numpy_image, projected_box, to_numpy_image
from ..scene import Scene


def asset_colour(index: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB uint8 colour for the ``index``-th asset (golden-ratio hues)."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_overlay(scene: Scene, frames: list[int] | None = None, mask_alpha: float = 0.45) -> Tensor:
    """Frames with each asset's mask tinted, its projected 3D box drawn and its id written.

    Args:
        scene: a Scene with per-frame poses (masks are optional).
        frames: which frames to draw; all by default.
        mask_alpha: opacity of the mask tint in [0, 1].

    Returns:
        (F, 3, H, W) float in [0, 1].
    """
    frames = list(range(scene.num_frames)) if frames is None else frames
    images = to_numpy_image(scene.frames[frames])
    H, W = scene.height, scene.width
    thickness = max(1, round(max(H, W) / 256))
    font = 0.3 * max(1.0, max(H, W) / 256)
    for out, t in zip(images, frames):
        for i, a in enumerate(scene.assets):
            colour = np.array(asset_colour(i), np.float32)
            if a.masks is not None:
                m = a.masks[t].numpy()
                out[m] = ((1 - mask_alpha) * out[m] + mask_alpha * colour).astype(np.uint8)
            if float(a.visibility[t]) <= 0:
                continue
            uv = projected_box(scene, a.id, t)
            if uv is None:
                continue
            draw_projected_box(out, uv, colour.tolist(), thickness)
            x0, y0 = a.boxes_2d[t, :2].tolist()
            cv2.putText(out, str(a.id), (int(x0), max(int(y0) - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255),
                        thickness, cv2.LINE_AA)
    return from_numpy_image(images)


__all__ = ["asset_colour", "draw_overlay"]

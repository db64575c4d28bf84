"""Drawing a frame with its objects: mask tints, projected 3D boxes and id labels (OpenCV).

Images are enlarged by an integer factor (nearest neighbour, so pixels stay square and a
click maps back exactly) before lines are drawn, so boxes and labels stay legible on the
small frames the model works at.
"""

from __future__ import annotations

import cv2
import numpy as np
from torch import Tensor

from ..image_ops import draw_projected_box, projected_box, to_numpy_image, upscale
from ..scene import Scene

#: Longer side, in pixels, that shown images are enlarged to (by a whole factor, never shrunk).
DISPLAY_SIDE = 512
_SELECTED = (255, 225, 25)
# Per-id colours (RGB), cycled: distinct hues that stay readable on light and dark frames.
_PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
            (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40), (128, 0, 0))
_MASK_ALPHA = 0.35


def display_scale(height: int, width: int) -> int:
    """Whole enlargement factor for a ``height`` x ``width`` frame (at least 1)."""
    return max(1, DISPLAY_SIDE // max(height, width))


def colour_of(asset_id: int) -> tuple[int, int, int]:
    """The RGB colour objects with ``asset_id`` are drawn in."""
    return _PALETTE[(asset_id - 1) % len(_PALETTE)]


def enlarge(image: Tensor, scale: int) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H*scale, W*scale, 3) uint8, nearest neighbour."""
    return upscale(to_numpy_image(image), scale)


def draw_scene(image: Tensor, scene: Scene, frame: int, selected: int | None = None, masks: bool = True,
               marker: tuple[float, float] | None = None) -> np.ndarray:
    """The editor's main view.

    Args:
        image: (3, H, W) float in [0, 1], the picture to draw on (the observed frame or a render).
        scene: whose assets to draw; boxes use their poses at ``frame``.
        frame: frame index.
        selected: id drawn thicker and in yellow.
        masks: tint each asset's observed mask at ``frame`` (when it has masks).
        marker: (u, v) pixel to mark with a ring (the start of a floor drag).

    Returns:
        (H*s, W*s, 3) uint8 with s = :func:`display_scale`.
    """
    H, W = image.shape[-2:]
    s = display_scale(H, W)
    out = enlarge(image, s)
    if masks:
        for a in scene.assets:
            if a.masks is None:
                continue
            m = a.masks[frame].numpy().repeat(s, axis=0).repeat(s, axis=1)
            tint = np.array(_SELECTED if a.id == selected else colour_of(a.id), dtype=np.float32)
            out[m] = (out[m] * (1 - _MASK_ALPHA) + tint * _MASK_ALPHA).astype(np.uint8)
    # the selection goes last so its lines are on top
    for a in sorted(scene.assets, key=lambda a: a.id == selected):
        uv = projected_box(scene, a.id, frame)
        if uv is None:
            continue
        colour = _SELECTED if a.id == selected else colour_of(a.id)
        draw_projected_box(out, uv, colour, 2 if a.id == selected else 1, scale=s)
        x0, y0 = (uv.amin(0) * s).tolist()
        _label(out, str(a.id), int(x0), int(y0), colour)
    if marker is not None:
        cv2.circle(out, (round(marker[0] * s), round(marker[1] * s)), max(4, s * 2), _SELECTED, 2, cv2.LINE_AA)
    return out


def _label(image: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
    """Write ``text`` on a dark patch with its top-left near (x, y), kept inside the image."""
    font, size, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    (w, h), base = cv2.getTextSize(text, font, size, thick)
    x = min(max(x, 0), image.shape[1] - w - 4)
    y = min(max(y - h - base - 2, 0), image.shape[0] - h - base - 4)
    cv2.rectangle(image, (x, y), (x + w + 4, y + h + base + 4), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 2, y + h + 2), font, size, colour, thick, cv2.LINE_AA)

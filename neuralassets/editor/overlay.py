"""Drawing a frame with its objects: mask tints, projected 3D boxes and id labels (OpenCV).

Images are enlarged by an integer factor (nearest neighbour, so pixels stay square and a
click maps back exactly) before lines are drawn, so boxes and labels stay legible on the
small frames the model works at.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import torch
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
#: RGB tints of the kept-pixels map: kept from the photo, drawn by the model.
KEPT_COLOUR = (40, 200, 90)
DRAWN_COLOUR = (230, 40, 200)
#: Rows of the kept map's legend strip: large enough to read when the map is shown small.
LEGEND_HEIGHT = 48


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
        masks: tint the observed mask at ``frame`` of each asset that still stands where the
            photo shows it (so only over the photo itself, not over a render of an edit).
        marker: (u, v) pixel to mark with a ring (the start of a floor drag).

    Returns:
        (H*s, W*s, 3) uint8 with s = :func:`display_scale`.
    """
    H, W = image.shape[-2:]
    s = display_scale(H, W)
    out = enlarge(image, s)
    if masks:
        for a in scene.assets:
            if a.masks is None or not stands_as_photographed(scene, a.id, frame):
                continue
            m = a.masks[frame].numpy().repeat(s, axis=0).repeat(s, axis=1)
            tint = np.array(_SELECTED if a.id == selected else colour_of(a.id), dtype=np.float32)
            out[m] = (out[m] * (1 - _MASK_ALPHA) + tint * _MASK_ALPHA).astype(np.uint8)
    # the selection goes last so its lines are on top
    labels = []
    for a in sorted(scene.assets, key=lambda a: a.id == selected):
        uv = projected_box(scene, a.id, frame)
        if uv is None:
            continue
        colour = _SELECTED if a.id == selected else colour_of(a.id)
        draw_projected_box(out, uv, colour, 2 if a.id == selected else 1, scale=s)
        labels.append((str(a.id), (uv.amin(0) * s).tolist(), (uv.amax(0) * s).tolist(), colour))
    taken: list[tuple[int, int, int, int]] = []
    for text, low, high, colour in labels:
        taken.append(_label(out, text, low, high, colour, taken))
    if marker is not None:
        cv2.circle(out, (round(marker[0] * s), round(marker[1] * s)), max(4, s * 2), _SELECTED, 2, cv2.LINE_AA)
    return out


def stands_as_photographed(scene: Scene, asset_id: int, frame: int) -> bool:
    """Whether the asset's box at ``frame`` is where that frame's photo shows it (so its observed mask still covers it)."""
    a = scene.asset(asset_id)
    if a.observed_poses is None:
        return True
    return bool(torch.allclose(a.observed_poses[frame], a.pose_features(frame, scene.cameras[frame]), atol=1e-4))


def kept_map(render: Tensor, kept: Tensor) -> np.ndarray:
    """Which pixels of a render were kept from the photo and which were drawn.

    Args:
        render: (3, H, W) float in [0, 1].
        kept: (H, W) float in [0, 1], the share of each pixel kept from the photo.

    Returns:
        (H*s + LEGEND_HEIGHT, W*s, 3) uint8: the render in grey, tinted green where kept and magenta where
        drawn (s = :func:`display_scale`), over a legend that gives the shares.
    """
    grey = render.mean(0, keepdim=True).expand(3, -1, -1)
    tint = kept[None] * torch.tensor(KEPT_COLOUR)[:, None, None] + (1 - kept[None]) * torch.tensor(DRAWN_COLOUR)[:, None, None]
    picture = enlarge(0.5 * grey + 0.5 * tint / 255, display_scale(*render.shape[-2:]))
    legend = np.full((LEGEND_HEIGHT, picture.shape[1], 3), 255, np.uint8)
    share = round(100 * float(kept.mean()))
    font, size, thick, swatch = cv2.FONT_HERSHEY_SIMPLEX, 1.1, 2, LEGEND_HEIGHT - 20
    x = 8
    for text, colour in ((f"kept {share}%", KEPT_COLOUR), (f"drawn {100 - share}%", DRAWN_COLOUR)):
        cv2.rectangle(legend, (x, 10), (x + swatch, 10 + swatch), colour, -1)
        cv2.putText(legend, text, (x + swatch + 8, LEGEND_HEIGHT - 12), font, size, (0, 0, 0), thick, cv2.LINE_AA)
        x += swatch + 8 + cv2.getTextSize(text, font, size, thick)[0][0] + 24
    return np.concatenate([picture, legend])


def _label(image: np.ndarray, text: str, low: list[float], high: list[float], colour: tuple[int, int, int],
           taken: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """Write ``text`` on a dark patch beside the box spanning ``low``..``high`` (pixels).

    The patch goes to the first corner of the box (above left, above right, below left, below
    right) where it stays inside the image and overlaps no patch in ``taken``; failing those,
    to the free place nearest the first corner; else above left.

    Returns:
        The patch as (x0, y0, x1, y1).
    """
    font, size, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1
    (w, h), base = cv2.getTextSize(text, font, size, thick)
    pw, ph = w + 4, h + base + 4
    H, W = image.shape[:2]

    def inside(x: float, y: float) -> tuple[int, int]:
        return int(min(max(x, 0), W - pw)), int(min(max(y, 0), H - ph))

    def free(place: tuple[int, int]) -> bool:
        x, y = place
        return not any(x < b[2] and b[0] < x + pw and y < b[3] and b[1] < y + ph for b in taken)

    corners = [inside(x, y) for x, y in
               ((low[0], low[1] - ph), (high[0] - pw, low[1] - ph), (low[0], high[1]), (high[0] - pw, high[1]))]
    def nearest_first():  # only searched when every corner is taken
        x0, y0 = corners[0]
        grid = ((x, y) for x in range(0, W - pw + 1, max(pw // 2, 1)) for y in range(0, H - ph + 1, max(ph // 2, 1)))
        yield from sorted(grid, key=lambda p: (p[0] - x0) ** 2 + (p[1] - y0) ** 2)

    x, y = next(filter(free, itertools.chain(corners, nearest_first())), corners[0])
    cv2.rectangle(image, (x, y), (x + pw, y + ph), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 2, y + h + 2), font, size, colour, thick, cv2.LINE_AA)
    return x, y, x + pw, y + ph

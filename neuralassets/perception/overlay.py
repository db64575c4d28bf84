"""Drawing what extraction found: masks, ids and projected 3D boxes over the frames."""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from torch import Tensor

from .. import geometry
from ..image_ops import draw_projected_box, from_numpy_image, to_numpy_image
from ..scene import Asset, Camera, Scene


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
    for out, t in zip(images, frames):
        masks = [None if a.masks is None else a.masks[t].numpy() for a in scene.assets]
        draw_assets(out, scene.cameras[t], scene.assets, t, masks, mask_alpha)
    return from_numpy_image(images)


def draw_assets(image: np.ndarray, camera: Camera, assets: list[Asset], frame: int, masks: list[np.ndarray | None],
                mask_alpha: float = 0.45) -> np.ndarray:
    """Draw assets over one frame, in place: masks tinted, projected 3D boxes, ids.

    Args:
        image: (H, W, 3) uint8 frame ``frame`` of the assets' clip (drawn on).
        camera: that frame's camera.
        assets: the assets; the i-th gets :func:`asset_colour` (i).
        frame: the frame index into the assets' poses.
        masks: per asset, its (H, W) bool mask in that frame, or None.
        mask_alpha: opacity of the mask tint in [0, 1].

    Returns:
        ``image``.
    """
    H, W = image.shape[:2]
    thickness = max(1, round(max(H, W) / 256))
    font = 0.3 * max(1.0, max(H, W) / 256)
    for i, (a, m) in enumerate(zip(assets, masks)):
        colour = np.array(asset_colour(i), np.float32)
        if m is not None:
            image[m] = ((1 - mask_alpha) * image[m] + mask_alpha * colour).astype(np.uint8)
        if float(a.visibility[frame]) <= 0:
            continue
        uv, depth = geometry.project_box(a.centers[frame], a.sizes[frame], a.rotations[frame], camera.K, camera.R, camera.t)
        if bool((depth <= 0).any()):
            continue
        draw_projected_box(image, uv, colour.tolist(), thickness)
        x0, y0 = a.boxes_2d[frame, :2].tolist()
        cv2.putText(image, str(a.id), (int(x0), max(int(y0) - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255),
                    thickness, cv2.LINE_AA)
    return image


def write_overlay(folder: Path, kind: str, fps: float, assets: list[Asset], cameras: list[Camera],
                  frame: Callable[[int], np.ndarray], masks: Callable[[int], list[np.ndarray | None]]) -> None:
    """Write a Scene folder's overlay, fetching one frame (and its masks) at a time.

    Args:
        folder: the Scene folder.
        kind: ``"png"`` (``overlay.png`` of the source frame of the asset seen longest),
            ``"gif"`` (``overlay.gif`` of every frame) or ``"none"``.
        fps: the clip's frame rate (for the GIF).
        assets, cameras: the scene's assets and cameras (one per frame).
        frame: frame index -> (H, W, 3) uint8 frame.
        masks: frame index -> per asset, its (H, W) bool mask in that frame or None.
    """
    from PIL import Image

    if kind == "png":
        source = max(assets, key=lambda a: float(a.visibility.sum())).source_frame if assets else 0
        Image.fromarray(draw_assets(frame(source), cameras[source], assets, source, masks(source))).save(folder / "overlay.png")
    elif kind == "gif":
        # palette images: one byte a pixel, so a long clip's overlay stays small until it is written
        images = [Image.fromarray(draw_assets(frame(t), cameras[t], assets, t, masks(t))).quantize(256)
                  for t in range(len(cameras))]
        images[0].save(folder / "overlay.gif", save_all=True, append_images=images[1:], duration=1000.0 / fps, loop=0)


__all__ = ["asset_colour", "draw_assets", "draw_overlay", "write_overlay"]

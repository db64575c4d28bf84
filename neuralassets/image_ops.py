"""Image operations every part of the package shares: resizing, float <-> uint8, box masks, mask boxes, drawing 3D boxes.

Inside the library images are ``(..., 3, H, W)`` float in [0, 1]; at the edges (files,
OpenCV, Gradio) they are ``(H, W, 3)`` uint8 arrays. Pixel ``(column i, row j)`` has its
centre at ``(i + 0.5, j + 0.5)``; boxes are ``(x0, y0, x1, y1)`` in pixels.

Example:
    >>> import torch
    >>> box_mask(torch.tensor([[0.0, 0.0, 2.0, 1.0]]), 2, 3).int().tolist()  # the centres of two pixels lie inside
    [[1, 1, 0], [0, 0, 0]]
    >>> masks_to_boxes(box_mask(torch.tensor([[0.0, 0.0, 2.0, 1.0]]), 2, 3)).tolist()
    [0.0, 0.0, 2.0, 1.0]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import geometry

if TYPE_CHECKING:
    from .scene import Scene

#: How :func:`box_mask` decides that a box covers a pixel.
BOX_COVER = ("centre", "touch")


# --------------------------------------------------------------------------------------
# Resizing
# --------------------------------------------------------------------------------------

def resize_images(images: Tensor, size_hw: tuple[int, int]) -> Tensor:
    """(B, C, h, w) -> (B, C, H, W) float, antialiased bilinear; the input itself when the size already matches."""
    if tuple(images.shape[-2:]) == tuple(size_hw):
        return images
    return F.interpolate(images, size=tuple(size_hw), mode="bilinear", align_corners=False, antialias=True)


def resize_maps(maps: Tensor, size_hw: tuple[int, int]) -> Tensor:
    """(..., h, w) -> (..., H, W), nearest pixel (depths and slot indices must not blend); the input itself when the size matches."""
    if tuple(maps.shape[-2:]) == tuple(size_hw):
        return maps
    resized = F.interpolate(maps.reshape(1, -1, *maps.shape[-2:]).double(), size=tuple(size_hw), mode="nearest-exact")
    return resized.reshape(*maps.shape[:-2], *size_hw).to(maps.dtype)


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, ...) array -> (H * scale, W * scale, ...), nearest neighbour: pixels stay square and a click maps back exactly."""
    return np.ascontiguousarray(image.repeat(scale, axis=0).repeat(scale, axis=1))


# --------------------------------------------------------------------------------------
# float <-> uint8
# --------------------------------------------------------------------------------------

def to_uint8(images: Tensor) -> Tensor:
    """(...) float in [0, 1] -> the same shape uint8 in 0..255 (clamped, rounded to nearest)."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


def from_uint8(images: Tensor) -> Tensor:
    """(...) uint8 in 0..255 -> the same shape float32 in [0, 1]."""
    return images.float() / 255.0


def quantize(images: Tensor) -> Tensor:
    """Round float images in [0, 1] to multiples of 1/255, so they survive a PNG round-trip exactly.

    Args:
        images: (..., 3, H, W) float.

    Returns:
        The same shape, float32.
    """
    return from_uint8(to_uint8(images))


def to_numpy_image(images: Tensor) -> np.ndarray:
    """(..., 3, H, W) float in [0, 1] -> (..., H, W, 3) uint8 array (contiguous, on the CPU)."""
    return np.ascontiguousarray(to_uint8(images).movedim(-3, -1).cpu().numpy())


def from_numpy_image(array: np.ndarray) -> Tensor:
    """(..., H, W, 3) uint8 array -> (..., 3, H, W) float32 in [0, 1] (a copy)."""
    return from_uint8(torch.from_numpy(np.array(array, dtype=np.uint8)).movedim(-1, -3))


# --------------------------------------------------------------------------------------
# Boxes and masks
# --------------------------------------------------------------------------------------

def box_mask(boxes: Tensor, height: int, width: int, cover: str = "centre") -> Tensor:
    """(H, W) bool: the pixels any of ``boxes`` covers.

    Args:
        boxes: (M, 4) pixel boxes ``(x0, y0, x1, y1)``.
        height, width: the mask's size.
        cover: ``"centre"``: pixels whose centre lies in a box (edges included), so a box
            from :func:`masks_to_boxes` gives back its mask's bounds exactly; ``"touch"``:
            every pixel whose inside a box reaches at all, an edge on a pixel border not
            reaching past it (a hole that must take in a blurred box's rim).

    Returns:
        (H, W) bool.
    """
    if cover not in BOX_COVER:
        raise ValueError(f"cover: {cover!r} is not one of {', '.join(BOX_COVER)}")
    mask = torch.zeros(height, width, dtype=torch.bool)
    # A slice per box costs far less than comparing every pixel with every box (this runs per training item).
    # Pixel i's centre i + 0.5 lies in [lo, hi] exactly when ceil(lo - 0.5) <= i <= floor(hi - 0.5);
    # [lo, hi] reaches into the open pixel (i, i + 1) exactly when floor(lo) <= i < ceil(hi).
    for x0, y0, x1, y1 in boxes.double().tolist():
        if cover == "centre":
            columns = slice(max(0, math.ceil(x0 - 0.5)), max(0, math.floor(x1 - 0.5) + 1))
            rows = slice(max(0, math.ceil(y0 - 0.5)), max(0, math.floor(y1 - 0.5) + 1))
        else:
            columns = slice(max(0, math.floor(x0)), max(0, math.ceil(x1)))
            rows = slice(max(0, math.floor(y0)), max(0, math.ceil(y1)))
        mask[rows, columns] = True
    return mask


def any_along(masks: Tensor, dim: int | tuple[int, ...]) -> Tensor:
    """``masks.any(dim)`` for bool tensors, via a uint8 max (several times faster on CPU)."""
    if masks.numel() == 0:
        return masks.bool().any(dim=dim)
    return masks.bool().view(torch.uint8).amax(dim=dim).bool()


def masks_to_boxes(masks: Tensor) -> Tensor:
    """Tight pixel boxes around masks.

    Args:
        masks: (..., H, W) bool.

    Returns:
        (..., 4) float ``(x0, y0, x1, y1)`` at pixel edges, so a single pixel at column c, row r
        gives ``(c, r, c + 1, r + 1)``; all zeros for an empty mask.

    Example:
        >>> m = torch.zeros(1, 4, 5, dtype=torch.bool); m[0, 1:3, 2] = True
        >>> masks_to_boxes(m).tolist()
        [[2.0, 1.0, 3.0, 3.0]]
    """
    masks = masks.bool()
    H, W = masks.shape[-2:]
    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4)
    cols, rows = any_along(masks, -2), any_along(masks, -1)  # (..., W), (..., H)
    xs = torch.arange(W, dtype=torch.float32, device=masks.device)
    ys = torch.arange(H, dtype=torch.float32, device=masks.device)
    big = float(max(H, W) + 1)
    boxes = torch.stack([torch.where(cols, xs, big).amin(-1), torch.where(rows, ys, big).amin(-1),
                         torch.where(cols, xs + 1, -1.0).amax(-1), torch.where(rows, ys + 1, -1.0).amax(-1)], dim=-1)
    return torch.where(any_along(cols, -1).unsqueeze(-1), boxes, torch.zeros_like(boxes))


# --------------------------------------------------------------------------------------
# Projected 3D boxes
# --------------------------------------------------------------------------------------

def projected_box(scene: Scene, asset_id: int, frame: int, near: float = 0.0) -> Tensor | None:
    """(8, 2) pixel corners of an asset's 3D box seen by ``frame``'s camera, or None when a corner is not beyond ``near`` metres."""
    asset, cam = scene.asset(asset_id), scene.cameras[frame]
    uv, depth = geometry.project_box(asset.centers[frame], asset.sizes[frame], asset.rotations[frame], cam.K, cam.R, cam.t)
    return None if bool((depth <= near).any()) else uv


def draw_projected_box(image: np.ndarray, corners: Tensor, colour: tuple[int, int, int], thickness: int = 1,
                       scale: float = 1.0) -> None:
    """Draw a projected 3D box's 12 edges (:data:`~neuralassets.geometry.BOX_EDGES`) on ``image`` in place, anti-aliased.

    Args:
        image: (H', W', 3) uint8 array, the frame enlarged ``scale`` times.
        corners: (8, 2) pixel corners in the frame's own pixels (:func:`projected_box`).
        colour: RGB.
        thickness: line width in pixels of ``image``.
        scale: how much ``image`` is enlarged relative to the frame the corners are in.
    """
    # OpenCV draws at integer pixel indices; the library's pixel centres are at +0.5. Corners far
    # outside the image (a box nearly level with the camera) are pulled in so OpenCV's ints hold them.
    reach = 4 * max(image.shape[:2])
    points = (corners.double() * scale - 0.5).round().clamp(-reach, reach).long().tolist()
    for i, j in geometry.BOX_EDGES:
        cv2.line(image, tuple(points[i]), tuple(points[j]), colour, thickness, cv2.LINE_AA)


__all__ = ["BOX_COVER", "any_along", "box_mask", "draw_projected_box", "from_numpy_image", "from_uint8", "masks_to_boxes",
           "projected_box", "quantize", "resize_images", "resize_maps", "to_numpy_image", "to_uint8", "upscale"]

"""The render path's one z-buffer: points with a depth land in pixels, and in each pixel the nearest counts.

Both splatting steps use it: the background photo's pixels seen from another camera
(:func:`~neuralassets.pipelines.reprojection.splat_depth`) and the objects' photo surfaces
drawn at their target poses (:func:`~neuralassets.pipelines.surface_splatting.splat_surfaces`).

Example:
    >>> import torch
    >>> x, y, z = torch.tensor([0.5, 0.7, 1.5]), torch.tensor([0.5, 0.2, 0.5]), torch.tensor([2.0, 1.0, 3.0])
    >>> splat = splat_points(x, y, z, (1, 2))  # two points land in pixel 0, one in pixel 1
    >>> splat.nearest.tolist(), splat.pixel.tolist()
    ([[[1.0, 3.0]]], [0, 0, 1])
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

#: Depth in metres a point must exceed to be drawn (in front of the camera).
NEAR = 1e-6


class Splat(NamedTuple):
    """Where points landed (:func:`splat_points`).

    Attributes:
        nearest: (B, H, W) float depth of the nearest point in each pixel, ``inf`` where none landed.
        pixel: (L,) long, the flat pixel index ``(b * H + row) * W + column`` of each landed point.
        landed: (K,) bool, which of the K points landed (in front of the camera, inside the image, kept).
    """

    nearest: Tensor
    pixel: Tensor
    landed: Tensor


def splat_points(x: Tensor, y: Tensor, z: Tensor, size: tuple[int, int], batch: Tensor | None = None,
                 batch_size: int = 1, keep: Tensor | None = None) -> Splat:
    """Land points in the pixels that contain them and keep each pixel's nearest depth.

    Args:
        x, y: (K,) float pixel coordinates (pixel ``(i, j)`` spans ``[i, i + 1) x [j, j + 1)``).
        z: (K,) float depth in metres.
        size: (H, W) of the image.
        batch: (K,) long, the image of a batch each point belongs to (None: all to image 0).
        batch_size: B, images in the batch.
        keep: (K,) bool, points allowed to land (None: all).

    Returns:
        :class:`Splat`.
    """
    H, W = size
    column, row = x.floor(), y.floor()
    landed = (z > NEAR) & (column >= 0) & (column < W) & (row >= 0) & (row < H)
    if keep is not None:
        landed &= keep
    image = torch.zeros_like(z, dtype=torch.long) if batch is None else batch
    pixel = ((image * H + row.clamp(0, H - 1).long()) * W + column.clamp(0, W - 1).long())[landed]
    nearest = torch.full((batch_size * H * W,), float("inf"), dtype=z.dtype, device=z.device)
    nearest = nearest.scatter_reduce(0, pixel, z[landed], "amin")
    return Splat(nearest.view(batch_size, H, W), pixel, landed)


__all__ = ["NEAR", "Splat", "splat_points"]

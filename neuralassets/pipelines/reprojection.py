"""See a photo from another camera: reproject it through its depth map.

Every pixel of the photo is lifted to 3D by its depth and splatted into the target camera,
nearest point first, which gives the target view's depth; each target pixel then looks
back into the photo at the point it sees (bilinear, so the warp stays sub-pixel exact) and
keeps it only where the photo's own depth there agrees, i.e. where the photo saw that
point and not something in front of it. Target pixels the photo never saw (uncovered
regions, outside its frame, pixels of unknown depth) are NaN.

Example:
    >>> import torch
    >>> from neuralassets.scene import Camera
    >>> cam = Camera.look_at([0.0, -5.0, 2.0], [0.0, 0.0, 0.0], 50.0, 16, 16)
    >>> photo, depth = torch.rand(3, 16, 16), torch.full((16, 16), 5.0)
    >>> torch.allclose(reproject_image(photo, depth, cam, cam), photo, atol=1e-5)  # same camera: the photo
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import geometry
from ..scene import Camera
from .thresholds import DEFAULT_THRESHOLDS
from .zbuffer import splat_points

#: Depth in metres given to background pixels whose ray misses the floor when the photo's depth is unknown.
FAR_DEPTH = 1000.0


def floor_depth(camera: Camera) -> Tensor:
    """(H, W) float camera-frame depth in metres of the floor plane ``z = 0``; :data:`FAR_DEPTH` where a ray misses it."""
    v, u = torch.meshgrid(torch.arange(camera.height) + 0.5, torch.arange(camera.width) + 0.5, indexing="ij")
    points, hit = geometry.ground_intersection(torch.stack([u, v], -1).reshape(-1, 2), camera.K, camera.R, camera.t)
    _, depth = camera.project(torch.where(hit[:, None], points, torch.zeros_like(points)))
    return torch.where(hit, depth, torch.full_like(depth, FAR_DEPTH)).view(camera.height, camera.width)


def _pixel_centres(height: int, width: int) -> Tensor:
    v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    return torch.stack([u, v], dim=-1).reshape(-1, 2)


def splat_depth(depth: Tensor, source: Camera, target: Camera) -> Tensor:
    """The target camera's depth of the surface a photo's depth map describes.

    Args:
        depth: (H, W) float camera-frame depth in metres of the photo taken by ``source``
            (pixels with non-finite or non-positive depth are left out).
        source, target: cameras.

    Returns:
        (target.height, target.width) float depth in metres, nearest surface point per pixel
        (one-pixel cracks closed by their nearest neighbour); inf where no point lands.
    """
    H, W = depth.shape
    world = geometry.unproject_points(_pixel_centres(H, W), depth.reshape(-1).float(), source.K, source.R, source.t)
    uv, z = geometry.project_points(world, target.K, target.R, target.t)
    known = (torch.isfinite(depth) & (depth > 0)).reshape(-1)
    splatted = splat_points(uv[:, 0], uv[:, 1], z, (target.height, target.width), keep=known).nearest[None]
    nearest = -F.max_pool2d(-splatted, 3, stride=1, padding=1)
    return torch.where(torch.isinf(splatted), nearest, splatted)[0, 0]


def reproject_image(image: Tensor, depth: Tensor, source: Camera, target: Camera,
                    tolerance: float = DEFAULT_THRESHOLDS.reprojection_depth_tolerance) -> Tensor:
    """A photo as the target camera would see it, NaN where the photo does not show the point.

    Args:
        image: (C, H, W) float, the photo taken by ``source``.
        depth: (H, W) float camera-frame depth in metres of every photo pixel (pixels whose
            depth is not a positive finite number count as unseen).
        source, target: cameras; the result has the target's size.
        tolerance: relative depth difference up to which a looked-up point counts as seen.

    Returns:
        (C, target.height, target.width) float; NaN at pixels the photo does not see.

    Raises:
        ValueError: the depth map's size is not the image's.
    """
    if depth.shape != image.shape[-2:]:
        raise ValueError(f"depth {tuple(depth.shape)}: expected the image's size {tuple(image.shape[-2:])}")
    H, W = depth.shape
    target_depth = splat_depth(depth, source, target)
    seen = torch.isfinite(target_depth)
    lifted = geometry.unproject_points(_pixel_centres(target.height, target.width),
                                       torch.where(seen, target_depth, 1.0).reshape(-1), target.K, target.R, target.t)
    uv, z = geometry.project_points(lifted, source.K, source.R, source.t)
    grid = torch.stack([uv[:, 0] / W * 2 - 1, uv[:, 1] / H * 2 - 1], dim=-1).view(1, target.height, target.width, 2)
    looked_up = F.grid_sample(image[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    photo_depth = F.grid_sample(depth[None, None].float(), grid, mode="nearest", padding_mode="border",
                                align_corners=False)[0, 0]
    inside = ((uv[:, 0] >= 0) & (uv[:, 0] <= W) & (uv[:, 1] >= 0) & (uv[:, 1] <= H)).view(target.height, target.width)
    agrees = (z.view(target.height, target.width) - photo_depth).abs() <= tolerance * photo_depth
    seen &= inside & torch.isfinite(photo_depth) & (photo_depth > 0) & agrees
    return torch.where(seen, looked_up, torch.full_like(looked_up, float("nan")))


def same_camera(a: Camera, b: Camera, atol: float = 1e-5) -> bool:
    """Whether two cameras see the same view: equal image size, intrinsics and pose (within ``atol``)."""
    return ((a.width, a.height) == (b.width, b.height) and torch.allclose(a.K, b.K, atol=atol * max(float(a.K.abs().max()), 1.0))
            and torch.allclose(a.R, b.R, atol=atol) and torch.allclose(a.t, b.t, atol=atol))


__all__ = ["FAR_DEPTH", "floor_depth", "reproject_image", "same_camera", "splat_depth"]

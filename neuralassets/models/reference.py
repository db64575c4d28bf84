"""The decoder's pixel reference: each object's photo reprojected through its 3D box into the target view.

A latent of 8×16×16 cannot hold the texture of a 20-pixel object, so every render through
the autoencoder is blurred to its ceiling, while the photo the object came from is sharp.
:func:`object_reference` lays that photo's pixels where the conditioning puts the objects,
using the 3D box as the object's stand-in surface: each target pixel's ray enters the
object's box at a surface point; the point's place on the box is the same in the photo
(``Conditioning.object_source_poses``), so it is projected there and the photo's pixel read.
A point the photo saw from behind the box (its own ray into the box enters elsewhere) has
no pixel to read and is left uncovered. Where boxes overlap the nearest entry wins.

For a box-shaped object this is the exact view of every face both views see, for one moved
across the floor, turned in place or seen from an orbiting camera alike; for a round one
it is close. A decoder built with ``reference_channels`` (see
:class:`~neuralassets.models.patch_autoencoder.PatchAutoencoder`) takes detail from it where
it agrees with the latent.

Only the 12 pose numbers of each view are needed (corners 0, 1, 2 and 4 as ``(u, v, depth)``):
``(u z, v z, z)`` is a linear image of the camera frame, in which rays are still lines
through the origin and the box still a parallelepiped, so no intrinsics enter.

Channels: the reprojected colour in [-1, 1] times the coverage, then the coverage. Where no
object is covered all channels are 0, exactly what a decoder sees when given no reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..conditioning import Conditioning

REFERENCE_CHANNELS = 4  # colour (3) and coverage (1)
MAX_VIEW_CHANGE = 15.0  # degrees; measured on validation: pasting every seen face cost rotation 1.4 dB
SAME_POINT = 1e-3  # box-frame distance (in box extents) within which the photo's ray enters at the same point
_PARALLEL = 1e-9


def pose_frame(poses: Tensor) -> tuple[Tensor, Tensor]:
    """Corner 0 and the three box edges from it, in the scaled camera frame ``(u z, v z, z)``.

    Args:
        poses: (..., 12) pose numbers (:func:`~neuralassets.geometry.pose_features`).

    Returns:
        origin (..., 3) and edges (..., 3, 3) with the edges as columns (box x, y, z).
    """
    corners = poses.unflatten(-1, (4, 3))
    depth = corners[..., 2:]
    scaled = torch.cat([corners[..., :2] * depth, depth], dim=-1)  # (..., 4, 3)
    origin = scaled[..., 0, :]
    return origin, (scaled[..., 1:, :] - origin.unsqueeze(-2)).transpose(-1, -2)


def ray_box_entry(rays: Tensor, origin: Tensor, edges: Tensor) -> tuple[Tensor, Tensor]:
    """Where rays from the camera first enter a box (slab test in the box's own frame).

    Args:
        rays: (..., P, 3) ray directions (any length; ``(u, v, 1)`` gives the entry's depth).
        origin, edges: (..., 3) and (..., 3, 3) the box as from :func:`pose_frame`.

    Returns:
        distance (..., P): ray parameter of the entry, ``inf`` for rays that miss the box or
        start inside it; point (..., P, 3): the entry in box coordinates, each in [0, 1].

    Example:
        >>> origin, edges = torch.tensor([-1.0, -1.0, 4.0]), 2 * torch.eye(3)  # a cube 4 to 6 m ahead
        >>> distance, point = ray_box_entry(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0]]), origin, edges)
        >>> distance.tolist(), point[0].tolist()
        ([4.0, inf], [0.5, 0.5, 0.0])
    """
    solid, edges = _solid(edges)
    inverse = torch.linalg.inv(edges)
    slope = torch.einsum("...ij,...pj->...pi", inverse, rays)  # box coordinates per unit of ray
    slope = torch.where(slope.abs() < _PARALLEL, torch.full_like(slope, _PARALLEL), slope)
    start = -(inverse @ origin.unsqueeze(-1)).squeeze(-1).unsqueeze(-2)  # box coordinates of the camera
    low, high = (0 - start) / slope, (1 - start) / slope
    near = torch.minimum(low, high).amax(dim=-1)
    far = torch.maximum(low, high).amin(dim=-1)
    hit = (near <= far) & (near > 0) & solid.unsqueeze(-1)
    distance = torch.where(hit, near, torch.full_like(near, float("inf")))
    point = (start + near.unsqueeze(-1) * slope).clamp(0, 1)
    return distance, point


def _solid(edges: Tensor) -> tuple[Tensor, Tensor]:
    """Whether each box has volume, and its edges with flat ones (unknown poses) replaced by the identity."""
    solid = torch.linalg.det(edges).abs() > _PARALLEL
    return solid, torch.where(solid[..., None, None], edges, torch.eye(3, dtype=edges.dtype, device=edges.device))


def view_change(target_poses: Tensor, source_poses: Tensor) -> Tensor:
    """How far an object turned relative to the camera between two views, from their pose numbers.

    In each view the camera sits at box coordinates ``-edges⁻¹ origin`` (:func:`pose_frame`);
    the angle between the two directions from the box's centre to it, each edge counting as one
    unit, is the turn: 0 for an object moved straight towards the camera, the turn itself for a
    cube turned in place.

    Args:
        target_poses, source_poses: (..., 12) pose numbers of the two views.

    Returns:
        (...) float degrees in [0, 180]; 180 where either box is flat (the all-zero pose of an unknown view).

    Example:
        >>> cube = torch.tensor([-1.0, -1.0, 4.0, 1.0, -1.0, 4.0, -1.0, 1.0, 4.0, -1.0, -1.0, 6.0])  # (u z, v z, z) = (u, v, 1) z
        >>> seen = torch.cat([cube.view(4, 3)[:, :2] / cube.view(4, 3)[:, 2:], cube.view(4, 3)[:, 2:]], -1).flatten()
        >>> turned = seen.view(4, 3)[[1, 3, 0, 2]].flatten()  # the same box, its x axis now along the line of sight
        >>> view_change(seen, seen).item(), round(view_change(turned, seen).item(), 1), view_change(seen, torch.zeros(12)).item()
        (0.0, 90.0, 180.0)
    """
    def direction(poses: Tensor) -> tuple[Tensor, Tensor]:
        origin, edges = pose_frame(poses)
        solid, edges = _solid(edges)
        camera = -torch.linalg.solve(edges, origin.unsqueeze(-1)).squeeze(-1) - 0.5
        return camera / camera.norm(dim=-1, keepdim=True).clamp(min=_PARALLEL), solid

    (a, solid_a), (b, solid_b) = direction(target_poses), direction(source_poses)
    angle = torch.rad2deg(torch.arccos((a * b).sum(dim=-1).clamp(-1.0, 1.0)))
    return torch.where(solid_a & solid_b, angle, torch.full_like(angle, 180.0))


def reproject_box_surface(target_poses: Tensor, source_poses: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """Follow each target pixel's ray onto a box's surface and find that point in the box's photo.

    Args:
        target_poses, source_poses: (..., 12) the box's pose numbers in the target view and in its photo.
        size: (H, W) of the target view.

    Returns:
        depth (..., H, W): the surface point's target depth in metres, ``inf`` where the ray misses;
        source_uv (..., H, W, 2): the point in the photo, normalised to [0, 1] inside it;
        seen (..., H, W) bool: the photo saw that point (hit, in front of the photo's camera, on
        a side of the box facing it).
    """
    H, W = size
    v, u = torch.meshgrid((torch.arange(H, dtype=target_poses.dtype, device=target_poses.device) + 0.5) / H,
                          (torch.arange(W, dtype=target_poses.dtype, device=target_poses.device) + 0.5) / W, indexing="ij")
    rays = torch.stack([u, v, torch.ones_like(u)], dim=-1).reshape(-1, 3)
    origin, edges = pose_frame(target_poses)
    depth, point = ray_box_entry(rays.expand(*target_poses.shape[:-1], -1, 3), origin, edges)
    source_origin, source_edges = pose_frame(source_poses)
    seen_at = source_origin.unsqueeze(-2) + torch.einsum("...ij,...pj->...pi", source_edges, point)  # (..., P, 3)
    ahead = seen_at[..., 2] > _PARALLEL
    source_uv = seen_at[..., :2] / seen_at[..., 2:].clamp(min=_PARALLEL)
    source_depth, source_point = ray_box_entry(seen_at, source_origin, source_edges)
    seen = torch.isfinite(depth) & ahead & torch.isfinite(source_depth) & ((source_point - point).abs().amax(dim=-1) < SAME_POINT)
    shape = (*target_poses.shape[:-1], H, W)
    return depth.view(shape), source_uv.view(*shape, 2), seen.view(shape)


def object_reference(cond: Conditioning, size: tuple[int, int], max_view_change: float = MAX_VIEW_CHANGE) -> Tensor:
    """Reproject every object with a known photo pose through its box into the target view, nearest surface first.

    Args:
        cond: batched conditioning (B examples, N slots); its images may be of any size.
        size: (H, W) of the reference, the decoder's output size.
        max_view_change: objects that turned relative to the camera by more than this many
            degrees (:func:`view_change`) are left out.

    Returns:
        (B, 4, H, W) float: colour in [-1, 1] times coverage, then coverage in {0, 1} (a pixel
        is covered when the nearest box its ray enters is a pasted object's, at a point its
        photo saw).
    """
    B, N = cond.object_mask.shape
    H, W = size
    dtype = torch.float32
    reference = torch.zeros(B, REFERENCE_CHANNELS, H, W, dtype=dtype, device=cond.object_mask.device)
    if N == 0:
        return reference
    depth, source_uv, seen = reproject_box_surface(cond.object_poses.to(dtype), cond.object_source_poses.to(dtype), size)
    # A box is larger than its object: where the point falls outside the object's box in its photo the ray
    # passed the object by, and a farther object may be what the pixel sees.
    box = cond.object_boxes.to(dtype)[..., None, None, :]
    inside = ((source_uv >= box[..., :2]) & (source_uv <= box[..., 2:])).all(dim=-1)
    depth = depth.masked_fill(~(inside & cond.object_mask[..., None, None]), float("inf"))  # (B, N, H, W)
    nearest = depth.argmin(dim=1, keepdim=True)  # (B, 1, H, W)
    pasted = cond.object_mask & (view_change(cond.object_poses.to(dtype), cond.object_source_poses.to(dtype)) <= max_view_change)
    covered = (seen & pasted[..., None, None]).gather(1, nearest) & torch.isfinite(depth.gather(1, nearest))
    images = cond.appearance_images.to(dtype)
    picked = images[torch.arange(B, device=images.device)[:, None], cond.object_image_index].flatten(0, 1)  # (B*N, 3, h, w)
    colour = F.grid_sample(picked * 2 - 1, source_uv.flatten(0, 1) * 2 - 1, mode="bilinear", padding_mode="border",
                           align_corners=False).view(B, N, 3, H, W)
    colour = colour.gather(1, nearest[:, :, None].expand(B, 1, 3, H, W))[:, 0]
    coverage = covered.to(dtype)
    reference[:, :3] = colour * coverage
    reference[:, 3:] = coverage
    return reference

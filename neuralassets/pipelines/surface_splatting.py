"""The decoder's pixel reference: each object's photo pixels laid where the target view sees the object.

A latent of 8×16×16 cannot hold the texture of a 20-pixel object, so every render through
the autoencoder is blurred to its ceiling, while the photo the object came from is sharp.
:func:`object_reference` lays that photo's pixels where the conditioning puts the objects.

Where the photo's depth and the object's pixels in it are known (``Conditioning.appearance_depths``
and ``appearance_slots``: a generated or extracted scene), each of the object's pixels is a
point of its surface; its place in the object's 3D box is the same in every view, so the
points are redrawn at the target pose (:func:`splat_surfaces`), nearest first, without the
points on a side that now faces away. That is the exact view of every part of the surface
both views see, for an object moved, turned by any angle, scaled, or seen from an orbiting
camera, and it covers only the object's own pixels. One exception: an object turned in place
whose turn left its visible surface where it was (its drawn points mostly land on its own photo
surface at the same pixel and depth, of nearly the same colour, the difference changing smoothly
from pixel to pixel as shading does rather than as a texture that turned with the object does)
keeps the photo's own pixels there, whose shading belongs to where they are
(:func:`turned_in_place`). The test reads only the drawn and the photo's pixels, never what
kind of object it is.

The depth and the boxes must describe one scene. A depth estimate is often right up to its
scale, and a scale off by 10 % puts an object 6 m away 60 cm from its box: each photo's depth
is first brought to the scale at which most of its objects' surface points lie inside their
boxes (:func:`depth_scale_to_boxes`; 1 when the depth already agrees), and an object whose
depth still disagrees with its box (most of its points outside, :func:`depth_agrees`: a box
or a mask from elsewhere) is not drawn through: the box stands in, as where no depth is known.

Otherwise the 3D box stands in for the surface (:func:`reproject_box_surface`): each target
pixel's ray enters the object's box at a surface point, projected into the photo
(``Conditioning.object_source_poses``) to read its pixel. A point the photo saw from behind
the box has no pixel to read and is left uncovered; objects that turned by more than
``RenderThresholds.max_view_change`` are left out (for a round or L-shaped object the box is far from
its surface once turned). Where surfaces or boxes overlap, the nearest wins.

A decoder built with ``reference_channels`` (see
:class:`~neuralassets.models.patch_autoencoder.PatchAutoencoder`) takes detail from the
reference where it agrees with the latent.

Only the 12 pose numbers of each view are needed (corners 0, 1, 2 and 4 as ``(u, v, depth)``):
``(u z, v z, z)`` is a linear image of the camera frame, in which rays are still lines
through the origin and the box still a parallelepiped, so no intrinsics enter.

Channels: the reprojected colour in [-1, 1] times the coverage, then the coverage. Where no
object is covered all channels are 0, exactly what a decoder sees when given no reference.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..conditioning import REFERENCE_CHANNELS, Conditioning
from ..image_ops import resize_images, resize_maps
from .thresholds import DEFAULT_THRESHOLDS, RenderThresholds
from .zbuffer import splat_points

_PARALLEL = 1e-9  # a determinant or slope below this is zero: a flat box (unknown pose) or a ray along a face
_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))  # a pixel and its right, lower and lower-right neighbours
_SAME_VOTE = 1e-6  # vote totals closer than this are equal (sums of fractions)
_IN_BOX = 1e-3  # box units a surface point may lie outside its box and still count as inside (rounding of depth and poses)


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


def reproject_box_surface(target_poses: Tensor, source_poses: Tensor, size: tuple[int, int],
                          same_point: float = DEFAULT_THRESHOLDS.same_point) -> tuple[Tensor, Tensor, Tensor]:
    """Follow each target pixel's ray onto a box's surface and find that point in the box's photo.

    Args:
        target_poses, source_poses: (..., 12) the box's pose numbers in the target view and in its photo.
        size: (H, W) of the target view.
        same_point: box-frame distance within which the photo's ray enters the box at the same point.

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
    seen = torch.isfinite(depth) & ahead & torch.isfinite(source_depth) & ((source_point - point).abs().amax(dim=-1) < same_point)
    shape = (*target_poses.shape[:-1], H, W)
    return depth.view(shape), source_uv.view(*shape, 2), seen.view(shape)


class Surfaces(NamedTuple):
    """Points on the objects' surfaces as their photos show them (:func:`photo_surfaces`), K in all.

    Attributes:
        points: (K, 3) box coordinates.
        tangents: (K, 2, 3) the surface's two tangents there, box units (0 where unknown).
        colours: (K, 3) float in [-1, 1].
        batch: (K,) long, the example.
        owner: (K,) long, the object slot.
    """

    points: Tensor
    tangents: Tensor
    colours: Tensor
    batch: Tensor
    owner: Tensor


def _drawable_pixels(cond: Conditioning) -> Tensor:
    """(B, S, h, w) bool: photo pixels that show a real slot's object at a known depth, in the photo that slot
    takes its appearance from, with a solid photo pose."""
    S = cond.appearance_slots.shape[1]
    slots = cond.appearance_slots.long()
    owner = slots.clamp(min=0)
    solid = _solid(pose_frame(cond.object_source_poses.float())[1])[0]
    photo = torch.arange(S, device=slots.device).view(1, S, 1, 1)
    return ((slots >= 0) & (cond.appearance_depths > _PARALLEL) & _per_pixel(cond.object_mask & solid, owner)
            & (_per_pixel(cond.object_image_index, owner) == photo))


def photo_surfaces(cond: Conditioning, density: int = DEFAULT_THRESHOLDS.surface_density) -> Surfaces:
    """Every photo pixel that shows an object, as points on that object's surface in its box's frame.

    A pixel that shows a real slot ``i``'s object (``cond.appearance_slots``) in the photo that
    slot takes its appearance from, at a known depth ``z`` (``cond.appearance_depths``), lies at
    ``(u z, v z, z)`` in the photo's scaled camera frame (:func:`pose_frame`); the box's pose in
    the photo (``cond.object_source_poses``) maps it into box coordinates, where it stays whatever the object's target pose. Between four
    neighbouring pixels of one object ``density``² points are interpolated (bilinearly, the first
    at the pixel itself), so an object drawn up to ``density`` times larger than its photo shows it
    leaves no gaps inside; its edge is not extrapolated (that drew it a pixel too large where it
    moved by a fraction of one, and cost validation 0.1–0.5 dB). The surface's two tangents
    (steps to the neighbouring pixels of the same object, on the side of the smaller depth step)
    come along, so a target view can tell which side of the surface faces it.

    Args:
        cond: batched conditioning (B examples, S photos of h×w pixels).
        density: points per pixel along each axis.

    Returns:
        :class:`Surfaces`: a point at each such pixel (of a slot whose photo pose is solid), then
        density² − 1 more where its right, lower and lower-right neighbours show the same object.
    """
    B, S, h, w = cond.appearance_slots.shape
    dtype = torch.float32
    depth, slots = cond.appearance_depths.to(dtype), cond.appearance_slots.long()
    v, u = torch.meshgrid((torch.arange(h, dtype=dtype, device=depth.device) + 0.5) / h,
                          (torch.arange(w, dtype=dtype, device=depth.device) + 0.5) / w, indexing="ij")
    scaled = torch.stack([u * depth, v * depth, depth], dim=-1)  # (B, S, h, w, 3)
    tangents = torch.stack([_tangent(scaled, slots, dim=3), _tangent(scaled, slots, dim=2)], dim=-2)
    colours = cond.appearance_images.to(dtype).permute(0, 1, 3, 4, 2) * 2 - 1
    drawable = _drawable_pixels(cond)
    # Sub-pixel points: bilinear between a pixel and its right, lower and lower-right neighbours on the same object.
    whole = drawable & (torch.arange(w, device=slots.device) < w - 1) & (torch.arange(h, device=slots.device) < h - 1)[:, None]
    for dy, dx in _CORNERS[1:]:
        whole &= (torch.roll(slots, (-dy, -dx), dims=(2, 3)) == slots) & torch.roll(drawable, (-dy, -dx), dims=(2, 3))
    index, sub_index = drawable.nonzero(as_tuple=True), whole.nonzero(as_tuple=True)
    parts = []
    for step in [(fy / density, fx / density) for fy in range(density) for fx in range(density)]:
        at = index if step == (0, 0) else sub_index
        parts.append((_blend(scaled, at, step), _blend(colours, at, step), tangents[at], at[0], slots[at]))
    scaled, colours, tangents, batch, owner = (torch.cat(column) for column in zip(*parts))
    origin, edges = pose_frame(cond.object_source_poses.to(dtype))
    inverse = torch.linalg.inv(_solid(edges)[1])[batch, owner]  # (K, 3, 3)
    points = torch.einsum("kij,kj->ki", inverse, scaled - origin[batch, owner])
    return Surfaces(points, torch.einsum("kij,kmj->kmi", inverse, tangents), colours, batch, owner)


def _blend(maps: Tensor, at: tuple[Tensor, ...], step: tuple[float, float]) -> Tensor:
    """``maps`` (B, S, h, w, C) bilinearly at ``step`` (down, right; fractions of a pixel) from pixels ``at``."""
    b, k, y, x = at
    fy, fx = step
    weights = [(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx]
    return sum(wt * maps[b, k, y + dy, x + dx] for wt, (dy, dx) in zip(weights, _CORNERS) if wt)


def _per_pixel(per_slot: Tensor, owner: Tensor) -> Tensor:
    """(B, N, ...) -> (B, ...): each pixel's owner's entry (``owner`` (B, ...) long)."""
    batch = torch.arange(owner.shape[0], device=owner.device).view(-1, *([1] * (owner.dim() - 1)))
    return per_slot[batch, owner]


def _tangent(scaled: Tensor, slots: Tensor, dim: int) -> Tensor:
    """Step to the next pixel along ``dim`` on the same object, or to the previous where that steps less in depth."""
    n = scaled.shape[dim]
    index = torch.arange(n, device=scaled.device).view([-1 if d == dim else 1 for d in range(slots.dim())])
    steps = []
    for step, inside in ((1, index < n - 1), (-1, index > 0)):
        difference = (torch.roll(scaled, -step, dims=dim) - scaled) * step
        steps.append((difference, (torch.roll(slots, -step, dims=dim) == slots) & inside))
    (ahead, ok_ahead), (behind, ok_behind) = steps
    use_ahead = ok_ahead & (~ok_behind | (ahead[..., 2].abs() <= behind[..., 2].abs()))
    return torch.where(use_ahead.unsqueeze(-1), ahead, torch.where(ok_behind.unsqueeze(-1), behind, torch.zeros_like(ahead)))


def splat_surfaces(cond: Conditioning, surfaces: Surfaces, size: tuple[int, int],
                   depth_tolerance: float = DEFAULT_THRESHOLDS.surface_depth_tolerance) -> tuple[Tensor, Tensor, Tensor]:
    """Draw the objects' photo surfaces (:func:`photo_surfaces`) at their target poses, nearest first.

    Each point lands in one target pixel. Of the points landing in a pixel, those within
    ``depth_tolerance`` (relative) of the nearest count, so a surface hides what lies behind
    it, and of those the one nearest the pixel's centre gives the colour (so a surface drawn
    where its photo showed it gives back each pixel exactly, and one drawn larger is
    interpolated). Points on a side that faces away from the target camera are dropped: the
    photo saw that side, and in the target the object's unseen side hides it.

    Args:
        cond: batched conditioning (B examples) whose target poses the surfaces are drawn at.
        surfaces: ``photo_surfaces(cond)``.
        size: (H, W) of the target view.

    Returns:
        colour (B, 3, H, W) in [-1, 1], 0 where nothing is drawn; depth (B, H, W) metres of the
        nearest surface drawn, ``inf`` where no point lands; owner (B, H, W) long, the object slot
        drawn there, -1 where none.
    """
    B = cond.object_mask.shape[0]
    H, W = size
    dtype = torch.float32
    points, tangents, colours, batch, owner = surfaces
    origin, edges = (x[batch, owner] for x in pose_frame(cond.object_poses.to(dtype)))
    photo_origin, photo_edges = (x[batch, owner] for x in pose_frame(cond.object_source_poses.to(dtype)))
    target = origin + torch.einsum("kij,kj->ki", edges, points)  # (K, 3) in the target's scaled camera frame
    # The side of its surface a point is seen from: the normal (the tangents' cross product) against the ray, in the
    # photo and in the target; a box map with a negative determinant flips the normal, hence the signs.
    side = [(torch.linalg.cross(*torch.einsum("kij,kmj->kmi", e, tangents).unbind(-2)) * at).sum(-1) * torch.sign(torch.linalg.det(e))
            for e, at in ((edges, target), (photo_edges, photo_origin + torch.einsum("kij,kj->ki", photo_edges, points)))]
    z = target[:, 2]
    x = target[:, 0] / z.clamp(min=_PARALLEL) * W
    y = target[:, 1] / z.clamp(min=_PARALLEL) * H
    nearest, pixel, landed = splat_points(x, y, z, size, batch, B, keep=side[0] * side[1] >= 0)
    nearest = nearest.flatten()
    depth, colour, slot = z[landed], colours[landed], owner[landed]
    off_centre = ((x - x.floor() - 0.5) ** 2 + (y - y.floor() - 0.5) ** 2)[landed]
    count = B * H * W
    front = depth <= nearest[pixel] * (1 + depth_tolerance)
    closest = torch.full((count,), float("inf"), dtype=dtype, device=z.device).scatter_reduce(
        0, pixel[front], off_centre[front], "amin")
    centred = front & (off_centre <= closest[pixel])
    votes = torch.zeros(count, dtype=dtype, device=z.device).index_add_(0, pixel[centred], torch.ones_like(depth[centred]))
    summed = torch.zeros(count, 3, dtype=dtype, device=z.device).index_add_(0, pixel[centred], colour[centred])
    colour_map = summed / votes.clamp(min=1).unsqueeze(-1)
    depth_map = torch.where(votes > 0, nearest, torch.full_like(nearest, float("inf")))
    owner_map = torch.full((count,), -1, dtype=torch.long, device=z.device).scatter_reduce(0, pixel[centred], slot[centred], "amax")
    return colour_map.view(B, H, W, 3).permute(0, 3, 1, 2), depth_map.view(B, H, W), owner_map.view(B, H, W)


def object_reference(cond: Conditioning, size: tuple[int, int], thresholds: RenderThresholds = DEFAULT_THRESHOLDS) -> Tensor:
    """Every object's photo pixels laid where the target view sees it, nearest surface first.

    An object whose photo pixels have known depth and slot is redrawn from them
    (:func:`splat_surfaces`) at any turn; one with only a photo pose is reprojected through
    its box (:func:`reproject_box_surface`) while it turned by at most ``thresholds.max_view_change``
    degrees relative to the camera (:func:`view_change`).

    Args:
        cond: batched conditioning (B examples, N slots); its images may be of any size.
        size: (H, W) of the reference, the decoder's output size.
        thresholds: the tolerances and limits of the drawing.

    Returns:
        (B, 4, H, W) float, the decoder's reference input: colour in [-1, 1] times coverage,
        then coverage in {0, 1} (a pixel is covered when the nearest surface its ray meets is a
        drawn one); :func:`reference_coverage` reads the coverage.
    """
    B, N = cond.object_mask.shape
    H, W = size
    dtype = torch.float32
    reference = torch.zeros(B, REFERENCE_CHANNELS, H, W, dtype=dtype, device=cond.object_mask.device)
    if N == 0:
        return reference
    scales = depth_scale_to_boxes(cond, thresholds.depth_scale_range)
    cond = replace(cond, appearance_depths=cond.appearance_depths * scales[..., None, None].to(cond.appearance_depths))
    surfaces = photo_surfaces(cond, thresholds.surface_density)
    agrees = depth_agrees(surfaces, B, N, thresholds.depth_in_box)
    surfaces = Surfaces(*(field[agrees[surfaces.batch, surfaces.owner]] for field in surfaces))
    drawn = torch.zeros(B, N, dtype=torch.bool, device=reference.device).index_put_((surfaces.batch, surfaces.owner),
                                                                                   torch.tensor(True, device=reference.device))
    colour, depth, owner = splat_surfaces(cond, surfaces, size, thresholds.surface_depth_tolerance)
    colour = _photo_where_unmoved(cond, colour, depth, owner, thresholds)
    boxed = cond.object_mask & ~drawn
    if boxed.any():
        box_colour, box_depth, covered = _box_reference(cond, boxed, size, thresholds)
        nearer = box_depth <= depth
        colour = torch.where((nearer & covered).unsqueeze(1), box_colour, colour)
        depth = torch.where(nearer, box_depth.masked_fill(~covered, float("inf")), depth)
    coverage = torch.isfinite(depth).to(dtype)
    reference[:, :3] = colour * coverage.unsqueeze(1)
    reference[:, 3] = coverage
    return reference


def depth_scale_to_boxes(cond: Conditioning, scale_range: tuple[float, float] = DEFAULT_THRESHOLDS.depth_scale_range
                         ) -> Tensor:
    """(B, S) factor for each photo's depth: the one that puts most of its objects' surface points inside their boxes.

    A point at depth ``z`` lies at ``s z (u, v, 1)`` when the depth is scaled by ``s``; in its
    box's coordinates that is ``s a - b``, inside the box for an interval of ``s``. Each point
    votes for its interval with one over its object's number of points (so a large object does
    not outvote a small one); the factor is the point of ``scale_range`` most votes cover,
    the one nearest 1 among equals, so a depth that already agrees with its boxes is kept as it
    is. A photo without drawable objects keeps factor 1.

    Args:
        cond: batched conditioning (B examples, S photos).
        scale_range: (lowest, highest) factor considered.

    Returns:
        (B, S) float factors.

    Example:
        >>> from neuralassets import geometry
        >>> from neuralassets.scene import Camera
        >>> cam = Camera.look_at([0.0, -5.0, 0.0], [0.0, 0.0, 0.0], 50.0, 16, 16)
        >>> pose = geometry.pose_features(torch.zeros(3), torch.full((3,), 2.0), torch.eye(3), cam.K, cam.R, cam.t, 16, 16)
        >>> depths, slots = torch.zeros(1, 1, 16, 16), torch.full((1, 1, 16, 16), -1, dtype=torch.int16)
        >>> depths[..., 6:10, 6:10], slots[..., 6:10, 6:10] = 4.4, 0  # the cube's front face 4 m away, depth 10 % too far
        >>> cond = Conditioning(torch.zeros(1, 1, 3, 16, 16), depths, slots, torch.zeros(1, 1, dtype=torch.long),
        ...     torch.tensor([[[0.0, 0.0, 1.0, 1.0]]]), pose[None, None], torch.zeros(1, 1, 4), pose[None, None],
        ...     torch.ones(1, 1, dtype=torch.bool), torch.zeros(1, 3, 16, 16), torch.zeros(1, 12))
        >>> round(depth_scale_to_boxes(cond).item(), 3)  # 4.4 m times 1 is inside the 2 m cube: kept
        1.0
        >>> depths[..., 6:10, 6:10] = 6.4  # behind the cube: brought back to its back face, the nearest factor
        >>> round(depth_scale_to_boxes(cond).item(), 3)
        0.938
    """
    B, S = cond.appearance_slots.shape[:2]
    N = cond.object_mask.shape[1]
    scales = torch.ones(B, S)
    if N == 0:
        return scales
    surfaces = photo_surfaces(cond, 1)
    if not len(surfaces.points):
        return scales
    origin, edges = pose_frame(cond.object_source_poses.float())
    start = torch.einsum("kij,kj->ki", torch.linalg.inv(_solid(edges)[1])[surfaces.batch, surfaces.owner],
                         origin[surfaces.batch, surfaces.owner])  # b: the box coordinates of the camera, negated
    slope = surfaces.points + start  # a: the box coordinates of the point per unit of scale
    # the box coordinate s * slope - start lies in [low, high] for s between two ends; along an axis where the point
    # does not move with s (slope 0) it is inside for every s or for none
    low, high = -_IN_BOX, 1 + _IN_BOX
    flat = slope.abs() < _PARALLEL
    safe = torch.where(flat, torch.ones_like(slope), slope)
    ends = torch.stack([(low + start) / safe, (high + start) / safe])
    always = (start >= -high) & (start <= -low)
    first = torch.where(flat, torch.where(always, -math.inf, math.inf), ends.amin(0)).amax(-1)
    last = torch.where(flat, torch.where(always, math.inf, -math.inf), ends.amax(0)).amin(-1)
    lowest, highest = scale_range
    first, last = first.clamp(lowest, highest), last.clamp(lowest, highest)
    votes = first < last
    photo = cond.object_image_index[surfaces.batch, surfaces.owner]
    group, count = _points_per_object(surfaces, B, N)
    weight = 1.0 / count[group]
    for b, s in {(int(b), int(s)) for b, s in zip(surfaces.batch[votes].tolist(), photo[votes].tolist())}:
        at = votes & (surfaces.batch == b) & (photo == s)
        scales[b, s] = _most_covered(first[at], last[at], weight[at])
    return scales


def _most_covered(first: Tensor, last: Tensor, weight: Tensor) -> float:
    """The point nearest 1 among those the intervals [first, last] cover with the most weight."""
    # openings before closings at one position, so that intervals which touch overlap there
    events = sorted([(a, 0, w) for a, w in zip(first.tolist(), weight.tolist())]
                    + [(b, 1, -w) for b, w in zip(last.tolist(), weight.tolist())])
    best, covered, segments = 0.0, 0.0, []
    for k, (at, _, change) in enumerate(events):
        covered += change
        if change > 0:
            segment = (at, events[k + 1][0])
            if covered > best + _SAME_VOTE:
                best, segments = covered, [segment]
            elif covered >= best - _SAME_VOTE:
                segments.append(segment)
    return min((min(max(1.0, a), b) for a, b in segments), key=lambda x: abs(x - 1.0))


def depth_agrees(surfaces: Surfaces, batch_size: int, num_slots: int, share: float = DEFAULT_THRESHOLDS.depth_in_box
                 ) -> Tensor:
    """(B, N) bool: objects whose photo surface (from the photo's depth) lies mostly inside their box in the photo.

    A surface point lies inside its object's box (box coordinates in [0, 1], up to rounding)
    wherever the depth and the box describe the same object; a depth map at another scale than
    the boxes (10 % too far puts an object 6 m away 60 cm behind its box) leaves few inside.

    Args:
        surfaces: :func:`photo_surfaces` of a batch of ``batch_size`` examples with ``num_slots`` slots.
        share: fraction of an object's points that must lie inside its box.

    Returns:
        (B, N) bool, False for slots without surface points.

    Example:
        >>> points = torch.tensor([[0.5, 0.5, 0.2], [0.4, 0.6, 0.1], [0.5, 0.5, 1.7], [0.5, 0.4, 1.9]])
        >>> surfaces = Surfaces(points, torch.zeros(4, 2, 3), torch.zeros(4, 3), torch.zeros(4, dtype=torch.long),
        ...                     torch.tensor([0, 0, 1, 1]))
        >>> depth_agrees(surfaces, 1, 2).tolist()
        [[True, False]]
    """
    inside = ((surfaces.points >= -_IN_BOX) & (surfaces.points <= 1 + _IN_BOX)).all(dim=-1)
    index, count = _points_per_object(surfaces, batch_size, num_slots)
    hits = torch.zeros_like(count).index_add_(0, index, inside.float())
    return ((count > 0) & (hits >= share * count)).view(batch_size, num_slots)


def _points_per_object(surfaces: Surfaces, batch_size: int, num_slots: int) -> tuple[Tensor, Tensor]:
    """Each point's object counted over the batch ((K,) long, ``batch * num_slots + slot``) and each object's number of
    points ((batch_size * num_slots,) float)."""
    index = surfaces.batch * num_slots + surfaces.owner
    count = torch.zeros(batch_size * num_slots, device=index.device).index_add_(0, index, torch.ones_like(index, dtype=torch.float32))
    return index, count


def reference_coverage(reference: Tensor) -> Tensor:
    """(B, H, W) bool: where an :func:`object_reference` ((B, 4, H, W)) drew an object's photo pixels."""
    return reference[:, REFERENCE_CHANNELS - 1] > 0


def turned_in_place(cond: Conditioning, thresholds: RenderThresholds = DEFAULT_THRESHOLDS) -> Tensor:
    """(B, N) bool: real objects whose target pose is their photo pose turned about the box's centre (or unchanged).

    The scaled camera frame is a linear map of the metric one, so a turn moves neither the box's
    centre nor the determinant of its edges there, while a move or a scale does.
    """
    origin, edges = pose_frame(cond.object_poses.float())
    photo_origin, photo_edges = pose_frame(cond.object_source_poses.float())
    shift = (origin + edges.sum(-1) / 2 - photo_origin - photo_edges.sum(-1) / 2).norm(dim=-1)
    volume = torch.linalg.det(edges).abs() / torch.linalg.det(photo_edges).abs().clamp(min=1e-12)
    t = thresholds
    return cond.object_mask & (shift <= t.in_place_shift * photo_edges.sum(-1).norm(dim=-1)) & ((volume - 1).abs() <= t.in_place_volume)


def _photo_where_unmoved(cond: Conditioning, colour: Tensor, depth: Tensor, owner: Tensor, thresholds: RenderThresholds
                         ) -> Tensor:
    """The drawn ``colour`` (B, 3, H, W), with the photo's own pixels where a turn left an object's surface where it was.

    For an object turned in place (:func:`turned_in_place`) each drawn pixel is compared with the
    photo's pixel at the same place: it stayed when the photo shows the same object there at the
    same depth (``thresholds.surface_depth_tolerance``). When most of the object's drawn pixels
    stayed (``unmoved_share``) with nearly the same colour on average (``unmoved_colour``), the
    turn did not change what the camera sees of it, only which point of the surface lies there.
    The photo's pixel is then the truth, shaded by the light where it is, while the drawn point
    carries the shading of where the photo saw it. Shading differs smoothly across a surface; a
    texture that turned with the object differs from pixel to pixel (``unmoved_roughness``), and
    then the object stays drawn. Only pixels are compared: nothing depends on the object's kind.
    """
    B, N = cond.object_mask.shape
    t = thresholds
    in_place = turned_in_place(cond, t)
    if N == 0 or not in_place.any():
        return colour
    size = tuple(colour.shape[-2:])
    slot = owner.clamp(min=0)
    batch = torch.arange(B, device=owner.device).view(B, 1, 1)
    photo = _per_pixel(cond.object_image_index, slot)  # (B, H, W): the photo each drawn pixel's object comes from
    y, x = torch.meshgrid(torch.arange(size[0], device=owner.device), torch.arange(size[1], device=owner.device), indexing="ij")
    photo_slot = resize_maps(cond.appearance_slots, size)[batch, photo, y, x].long()
    photo_depth = resize_maps(cond.appearance_depths, size)[batch, photo, y, x].to(depth.dtype)
    images = resize_images(cond.appearance_images.flatten(0, 1), size).unflatten(0, cond.appearance_images.shape[:2])
    photo_colour = images[batch, photo, :, y, x].permute(0, 3, 1, 2).to(colour.dtype) * 2 - 1
    drawn = owner >= 0
    stayed = (drawn & _per_pixel(in_place, slot) & (photo_slot == owner)
              & ((photo_depth - depth).abs() <= t.surface_depth_tolerance * photo_depth))
    index = batch * N + slot  # (B, H, W): each drawn pixel's object, counted over the batch

    def total(at: Tensor, values: Tensor) -> Tensor:
        return torch.zeros(B * N, dtype=colour.dtype, device=colour.device).index_add_(0, at, values).view(B, N)

    shown, kept = total(index[drawn], torch.ones_like(depth[drawn])), total(index[stayed], torch.ones_like(depth[stayed]))
    gap = photo_colour - colour
    difference = total(index[stayed], gap.abs().mean(1)[stayed])
    steps, step_sum = torch.zeros_like(shown), torch.zeros_like(shown)
    for dim in (-1, -2):  # neighbours to the right and below, both on the same object where it stayed
        pair = (stayed & (owner == owner.roll(-1, dim)) & stayed.roll(-1, dim)).narrow(dim, 0, owner.shape[dim] - 1)
        step = (gap - gap.roll(-1, dim)).abs().mean(1).narrow(dim, 0, owner.shape[dim] - 1)[pair]
        at = index.narrow(dim, 0, owner.shape[dim] - 1)[pair]
        steps, step_sum = steps + total(at, torch.ones_like(step)), step_sum + total(at, step)
    roughness = step_sum / steps.clamp(min=1)
    alike = ((kept > 0) & (kept >= t.unmoved_share * shown) & (difference <= t.unmoved_colour * kept)
             & (roughness <= t.unmoved_roughness))
    return torch.where((stayed & _per_pixel(alike, slot)).unsqueeze(1), photo_colour, colour)


def _box_reference(cond: Conditioning, boxed: Tensor, size: tuple[int, int], thresholds: RenderThresholds
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Objects ``boxed`` ((B, N) bool) reprojected through their boxes: colour (B, 3, H, W) in [-1, 1], depth (B, H, W)
    of the nearest box entry (``inf`` where none), and whether that entry is a pasted one the photo saw (B, H, W) bool."""
    H, W = size
    dtype = torch.float32
    # only the slots some example boxes are followed: the others never cover a pixel, and a full-size view of many
    # objects would cost a ray-box test per pixel for each of them
    slots = boxed.any(dim=0).nonzero().flatten()
    boxed = boxed[:, slots]
    B, N = boxed.shape
    poses, source_poses = cond.object_poses[:, slots].to(dtype), cond.object_source_poses[:, slots].to(dtype)
    depth, source_uv, seen = reproject_box_surface(poses, source_poses, size, thresholds.same_point)
    # A box is larger than its object: where the point falls outside the object's box in its photo the ray
    # passed the object by, and a farther object may be what the pixel sees.
    box = cond.object_boxes[:, slots].to(dtype)[..., None, None, :]
    inside = ((source_uv >= box[..., :2]) & (source_uv <= box[..., 2:])).all(dim=-1)
    depth = depth.masked_fill(~(inside & boxed[..., None, None]), float("inf"))  # (B, N, H, W)
    nearest = depth.argmin(dim=1, keepdim=True)  # (B, 1, H, W)
    pasted = boxed & (view_change(poses, source_poses) <= thresholds.max_view_change)
    nearest_depth = depth.gather(1, nearest)[:, 0]
    covered = (seen & pasted[..., None, None]).gather(1, nearest)[:, 0] & torch.isfinite(nearest_depth)
    images = cond.appearance_images.to(dtype)
    picked = images[torch.arange(B, device=images.device)[:, None], cond.object_image_index[:, slots]].flatten(0, 1)
    colour = F.grid_sample(picked * 2 - 1, source_uv.flatten(0, 1) * 2 - 1, mode="bilinear", padding_mode="border",
                           align_corners=False).view(B, N, 3, H, W)
    return colour.gather(1, nearest[:, :, None].expand(B, 1, 3, H, W))[:, 0], nearest_depth, covered

"""Batched, differentiable 3D geometry in torch.

Conventions (see docs/ARCHITECTURE.md):

* Units are metres, radians and pixels.
* The world frame is right-handed with z up and the floor at z = 0.
* Camera frames follow OpenCV: x right, y down, z forward. A camera is given by its
  intrinsics ``K`` (3, 3) in pixels and its world-to-camera extrinsics ``R`` (3, 3),
  ``t`` (3,): ``x_cam = R @ x_world + t``.
* Pixel coordinates put the centre of the top-left pixel at (0.5, 0.5), so an image of
  width W spans u in [0, W].
* Box corners are numbered by the bits of their index: bit 0 picks -x/+x, bit 1 picks
  -y/+y and bit 2 picks -z/+z in the box's own frame. Corner 0 is (-, -, -) and its
  three edge neighbours are corners 1 (+x), 2 (+y) and 4 (+z).

Every function accepts arbitrary leading batch dimensions and broadcasts them.

Rotation conversions (axis-angle, quaternion, matrix) and the relative camera motion are
kornia's (:mod:`kornia.geometry.conversions`, :func:`kornia.geometry.epipolar.relative_camera_motion`),
pinned to the values of the implementation they replaced (tests/test_geometry.py). Three
things stay here because kornia's convention is not ours, measured on the shipped model's
``--quick`` benchmark renders: its perspective division adds an epsilon to the depth
(pixels move by up to 1.5e-5, enough to cross pixel borders when splatting: renders change by
up to 1/255), its unprojection rounds differently (renders change by up to 1.3e-5), and its
Euler angles go through quaternions (rotations change by up to 4e-7, and the copy-paste
baseline's pixels by 1/255). Its pixel-coordinate warps (``remap``, ``warp_perspective``) put
pixel centres at whole numbers, ours at +0.5, so warping stays ``torch.nn.functional.grid_sample``.
"""

from __future__ import annotations

import math

import torch
from kornia.geometry import conversions, epipolar
from torch import Tensor

#: Indices of the corner and its three edge neighbours used by the pose tokens.
POSE_CORNERS = (0, 1, 2, 4)

#: The 12 edges of a box as pairs of corner indices (for drawing).
BOX_EDGES = (
    (0, 1), (2, 3), (4, 5), (6, 7),  # along x
    (0, 2), (1, 3), (4, 6), (5, 7),  # along y
    (0, 4), (1, 5), (2, 6), (3, 7),  # along z
)


def _corner_signs(dtype: torch.dtype, device: torch.device) -> Tensor:
    """(8, 3) corner offsets in units of the box's full size, each -0.5 or +0.5."""
    idx = torch.arange(8, device=device)
    bits = torch.stack([(idx >> k) & 1 for k in range(3)], dim=-1)
    return bits.to(dtype) - 0.5


def box_corners(center: Tensor, size: Tensor, rotation: Tensor) -> Tensor:
    """Corners of oriented 3D boxes in the fixed corner order.

    Args:
        center: (..., 3) box centres in metres.
        size: (..., 3) full extents along the box's own x, y, z axes in metres.
        rotation: (..., 3, 3) box-to-world rotation.

    Returns:
        (..., 8, 3) corners in metres; corner i has local offset
        ``((i & 1) - 0.5, ((i >> 1) & 1) - 0.5, ((i >> 2) & 1) - 0.5) * size``.

    Example:
        >>> c = box_corners(torch.zeros(3), torch.ones(3), torch.eye(3))
        >>> c[0].tolist(), c[7].tolist()
        ([-0.5, -0.5, -0.5], [0.5, 0.5, 0.5])
    """
    local = _corner_signs(size.dtype, size.device) * size.unsqueeze(-2)  # (..., 8, 3)
    return torch.einsum("...ij,...kj->...ki", rotation, local) + center.unsqueeze(-2)


def transform_points(points: Tensor, R: Tensor, t: Tensor) -> Tensor:
    """Apply a rigid transform ``R @ p + t``.

    Args:
        points: (..., P, 3).
        R: (..., 3, 3).
        t: (..., 3).

    Returns:
        (..., P, 3).
    """
    return torch.einsum("...ij,...pj->...pi", R, points) + t.unsqueeze(-2)


def project_points(points: Tensor, K: Tensor, R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Project world points into a pinhole camera.

    Args:
        points: (..., P, 3) world points in metres.
        K: (..., 3, 3) intrinsics in pixels.
        R: (..., 3, 3) world-to-camera rotation.
        t: (..., 3) world-to-camera translation in metres.

    Returns:
        uv: (..., P, 2) pixel coordinates (top-left pixel centre at (0.5, 0.5)).
        depth: (..., P) camera-frame z in metres; points behind the camera have depth <= 0
        and their uv is meaningless.

    Example:
        >>> K = torch.tensor([[100., 0, 64], [0, 100, 64], [0, 0, 1]])
        >>> uv, z = project_points(torch.tensor([[0.5, 0.0, 5.0]]), K, torch.eye(3), torch.zeros(3))
        >>> uv.tolist(), z.tolist()
        ([[74.0, 64.0]], [5.0])
    """
    cam = transform_points(points, R, t)
    depth = cam[..., 2]
    pix = torch.einsum("...ij,...pj->...pi", K, cam)
    # Clamp only the divisor's magnitude so points at depth 0 give finite (meaningless) uv.
    denom = torch.where(depth.abs() < 1e-9, torch.full_like(depth, 1e-9), depth)
    return pix[..., :2] / denom.unsqueeze(-1), depth


def unproject_points(uv: Tensor, depth: Tensor, K: Tensor, R: Tensor, t: Tensor) -> Tensor:
    """Lift pixels with known camera-frame depth back to world points.

    Inverse of :func:`project_points` for points in front of the camera.

    Args:
        uv: (..., P, 2) pixel coordinates.
        depth: (..., P) camera-frame z in metres.
        K: (..., 3, 3) intrinsics.
        R: (..., 3, 3) world-to-camera rotation.
        t: (..., 3) world-to-camera translation.

    Returns:
        (..., P, 3) world points in metres.
    """
    ones = torch.ones_like(uv[..., :1])
    rays = torch.einsum("...ij,...pj->...pi", torch.linalg.inv(K), torch.cat([uv, ones], dim=-1))
    cam = rays * depth.unsqueeze(-1)
    # world = R^T (cam - t)
    return torch.einsum("...ji,...pj->...pi", R, cam - t.unsqueeze(-2))


def camera_center(R: Tensor, t: Tensor) -> Tensor:
    """World position of a camera, ``-R^T t``.

    Args:
        R: (..., 3, 3) world-to-camera rotation.
        t: (..., 3) world-to-camera translation.

    Returns:
        (..., 3) in metres.
    """
    return -torch.einsum("...ji,...j->...i", R, t)


def pixel_rays(uv: Tensor, K: Tensor, R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """World-space rays through pixels.

    Args:
        uv: (..., P, 2) pixel coordinates.
        K, R, t: camera, as in :func:`project_points`.

    Returns:
        origins: (..., 3) camera centre.
        directions: (..., P, 3) unit ray directions in the world frame.
    """
    ones = torch.ones_like(uv[..., :1])
    cam_dirs = torch.einsum("...ij,...pj->...pi", torch.linalg.inv(K), torch.cat([uv, ones], dim=-1))
    world_dirs = torch.einsum("...ji,...pj->...pi", R, cam_dirs)
    return camera_center(R, t), world_dirs / world_dirs.norm(dim=-1, keepdim=True)


def ray_box_distance(origin: Tensor, direction: Tensor, center: Tensor, size: Tensor, rotation: Tensor) -> Tensor:
    """Distance along a ray to where it enters a 3D box (slab method), or ``inf`` where it misses.

    Args:
        origin: (..., 3) ray origins, world frame.
        direction: (..., 3) ray directions (unit length for a distance in metres).
        center, size, rotation: the box, (..., 3), (..., 3) full extents, (..., 3, 3) box-to-world.

    Returns:
        (...,) float, the ray parameter of the entry point; 0 for an origin inside the box.

    Example:
        >>> ray_box_distance(torch.zeros(3), torch.tensor([1.0, 0, 0]), torch.tensor([5.0, 0, 0]),
        ...                  torch.full((3,), 2.0), torch.eye(3))
        tensor(4.)
    """
    local_origin = torch.einsum("...ji,...j->...i", rotation, origin - center)
    local_direction = torch.einsum("...ji,...j->...i", rotation, direction)
    half = size / 2
    with torch.no_grad():
        parallel = local_direction.abs() < 1e-12
    safe = torch.where(parallel, torch.full_like(local_direction, 1e-12), local_direction)
    a, b = (-half - local_origin) / safe, (half - local_origin) / safe
    near = torch.minimum(a, b).amax(-1).clamp(min=0)
    far = torch.maximum(a, b).amin(-1)
    # a ray parallel to a slab misses unless its origin lies between the slab's faces
    outside = (parallel & (local_origin.abs() > half)).any(-1)
    return torch.where((near <= far) & ~outside, near, torch.full_like(near, math.inf))


def ground_intersection(uv: Tensor, K: Tensor, R: Tensor, t: Tensor, height: float = 0.0) -> tuple[Tensor, Tensor]:
    """Intersect pixel rays with the horizontal plane ``z = height``.

    Args:
        uv: (..., P, 2) pixel coordinates.
        K, R, t: camera, as in :func:`project_points`.
        height: plane height in metres (0 is the floor).

    Returns:
        points: (..., P, 3) world points on the plane (NaN where the ray misses it).
        hit: (..., P) bool, True where the ray meets the plane in front of the camera.
    """
    origin, dirs = pixel_rays(uv, K, R, t)
    dz = dirs[..., 2]
    s = (height - origin[..., 2:3]) / torch.where(dz.abs() < 1e-12, torch.full_like(dz, 1e-12), dz)
    hit = (s > 0) & (dz.abs() >= 1e-12)
    points = origin.unsqueeze(-2) + s.unsqueeze(-1) * dirs
    return torch.where(hit.unsqueeze(-1), points, torch.full_like(points, float("nan"))), hit


def look_at(eye: Tensor, target: Tensor, up: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """World-to-camera extrinsics of an OpenCV camera at ``eye`` looking at ``target``.

    Args:
        eye: (..., 3) camera position in metres.
        target: (..., 3) point the optical axis passes through.
        up: (3,) or (..., 3) world up direction; defaults to +z. Image rows run against it.

    Returns:
        R: (..., 3, 3) and t: (..., 3) with ``x_cam = R @ x_world + t``.

    Example:
        >>> R, t = look_at(torch.tensor([0., -5, 0]), torch.zeros(3))
        >>> R.round().tolist(), t.round().abs().tolist()
        ([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], [0.0, 0.0, 5.0])
    """
    if up is None:
        up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype, device=eye.device)
    forward = target - eye
    forward = forward / forward.norm(dim=-1, keepdim=True)
    right = torch.linalg.cross(forward, up.expand_as(forward))
    right = right / right.norm(dim=-1, keepdim=True)
    down = torch.linalg.cross(forward, right)
    R = torch.stack([right, down, forward], dim=-2)
    t = -torch.einsum("...ij,...j->...i", R, eye)
    return R, t


def intrinsics_from_fov(fov_degrees: float, width: int, height: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Pinhole intrinsics with square pixels and the principal point at the image centre.

    Args:
        fov_degrees: horizontal field of view in degrees.
        width, height: image size in pixels.

    Returns:
        (3, 3) K in pixels.
    """
    f = 0.5 * width / math.tan(math.radians(fov_degrees) / 2)
    return torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=dtype)


def relative_pose(R_a: Tensor, t_a: Tensor, R_b: Tensor, t_b: Tensor) -> tuple[Tensor, Tensor]:
    """Transform from camera a's frame to camera b's frame.

    ``x_b = R_ab @ x_a + t_ab`` for any world point seen by both cameras.

    Args:
        R_a, t_a: (..., 3, 3), (..., 3) world-to-camera extrinsics of camera a.
        R_b, t_b: the same for camera b.

    Returns:
        R_ab: (..., 3, 3), t_ab: (..., 3).
    """
    R_ab, t_ab = epipolar.relative_camera_motion(R_a, t_a.unsqueeze(-1), R_b, t_b.unsqueeze(-1))
    return R_ab, t_ab.squeeze(-1)


# --------------------------------------------------------------------------------------
# Rotations
# --------------------------------------------------------------------------------------

def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rotation matrices from axis-angle vectors (Rodrigues, kornia's).

    Args:
        axis_angle: (..., 3), direction = axis, norm = angle in radians.

    Returns:
        (..., 3, 3).

    Example:
        >>> axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2])).round().int().tolist()  # x -> y about z
        [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    """
    matrices = conversions.axis_angle_to_rotation_matrix(axis_angle.reshape(-1, 3))
    return matrices.reshape(*axis_angle.shape[:-1], 3, 3)


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """Unit quaternions (w, x, y, z) with w >= 0 from rotation matrices (kornia's, sign fixed).

    Args:
        R: (..., 3, 3).

    Returns:
        (..., 4).
    """
    q = conversions.rotation_matrix_to_quaternion(R.reshape(-1, 3, 3)).reshape(*R.shape[:-2], 4)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrices from quaternions (w, x, y, z); the input is normalised first (kornia's).

    Args:
        q: (..., 4).

    Returns:
        (..., 3, 3).
    """
    q = q / q.norm(dim=-1, keepdim=True)
    return conversions.quaternion_to_rotation_matrix(q.reshape(-1, 4)).reshape(*q.shape[:-1], 3, 3)


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """Axis-angle vectors (angle in [0, pi]) from rotation matrices (kornia's).

    Args:
        R: (..., 3, 3).

    Returns:
        (..., 3).
    """
    return conversions.rotation_matrix_to_axis_angle(R.reshape(-1, 3, 3)).reshape(*R.shape[:-2], 3)


def _rot_x(a: Tensor) -> Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([torch.stack([o, z, z], -1), torch.stack([z, c, -s], -1), torch.stack([z, s, c], -1)], -2)


def _rot_y(a: Tensor) -> Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([torch.stack([c, z, s], -1), torch.stack([z, o, z], -1), torch.stack([-s, z, c], -1)], -2)


def _rot_z(a: Tensor) -> Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2)


def euler_to_matrix(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """Rotation ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (intrinsic z-y'-x'').

    Yaw turns about the world up axis (z), which is how objects spin on the floor.

    Args:
        yaw, pitch, roll: (...) angles in radians.

    Returns:
        (..., 3, 3).

    Example:
        >>> R = euler_to_matrix(torch.tensor(math.pi / 2), torch.tensor(0.), torch.tensor(0.))
        >>> (R @ torch.tensor([1., 0, 0])).round().abs().tolist()
        [0.0, 1.0, 0.0]
    """
    return _rot_z(yaw) @ _rot_y(pitch) @ _rot_x(roll)


def matrix_to_euler(R: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Inverse of :func:`euler_to_matrix`, with pitch in [-pi/2, pi/2].

    Args:
        R: (..., 3, 3).

    Returns:
        yaw, pitch, roll: (...) radians.
    """
    pitch = torch.asin((-R[..., 2, 0]).clamp(-1.0, 1.0))
    yaw = torch.atan2(R[..., 1, 0], R[..., 0, 0])
    roll = torch.atan2(R[..., 2, 1], R[..., 2, 2])
    return yaw, pitch, roll


def yaw_of(R: Tensor) -> Tensor:
    """Heading about the world z axis of each rotation's x axis, in radians (-pi, pi].

    Args:
        R: (..., 3, 3).

    Returns:
        (...).
    """
    return torch.atan2(R[..., 1, 0], R[..., 0, 0])


def is_rotation(R: Tensor, atol: float = 1e-4) -> Tensor:
    """True where ``R`` is orthonormal with determinant +1.

    Args:
        R: (..., 3, 3).

    Returns:
        (...) bool.
    """
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    orth = (R @ R.transpose(-1, -2) - eye).abs().amax(dim=(-1, -2)) <= atol
    return orth & ((torch.linalg.det(R) - 1).abs() <= atol) & torch.isfinite(R).all(dim=-1).all(dim=-1)


# --------------------------------------------------------------------------------------
# Boxes in images
# --------------------------------------------------------------------------------------

def project_box(center: Tensor, size: Tensor, rotation: Tensor, K: Tensor, R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Project the 8 corners of 3D boxes.

    Args:
        center, size, rotation: boxes, as in :func:`box_corners`.
        K, R, t: camera, as in :func:`project_points`.

    Returns:
        uv: (..., 8, 2) pixels; depth: (..., 8) metres.
    """
    return project_points(box_corners(center, size, rotation), K, R, t)


def point_bounds(uv: Tensor) -> Tensor:
    """Axis-aligned box around points, unclipped.

    Args:
        uv: (..., P, 2) coordinates.

    Returns:
        (..., 4) ``(x0, y0, x1, y1)``.
    """
    return torch.cat([uv.amin(dim=-2), uv.amax(dim=-2)], dim=-1)


def bounding_box_2d(uv: Tensor, width: int, height: int) -> Tensor:
    """Axis-aligned pixel box around projected points (:func:`point_bounds`), clipped to the image.

    Args:
        uv: (..., P, 2) pixel coordinates.
        width, height: image size in pixels.

    Returns:
        (..., 4) ``(x0, y0, x1, y1)`` in pixels.
    """
    limits = torch.tensor([width, height, width, height], dtype=uv.dtype, device=uv.device)
    return torch.minimum(point_bounds(uv).clamp(min=0), limits)


def pose_features(center: Tensor, size: Tensor, rotation: Tensor, K: Tensor, R: Tensor, t: Tensor,
                  width: int, height: int) -> Tensor:
    """The paper's 12 pose numbers of 3D boxes seen by a camera.

    Corners 0, 1, 2 and 4 (a corner and its three edge neighbours) are projected; each
    gives (u / W, v / H, depth), so image coordinates are in [0, 1] inside the frame and
    depth is in metres.

    Args:
        center, size, rotation: boxes, as in :func:`box_corners`.
        K, R, t: camera, as in :func:`project_points`.
        width, height: image size in pixels.

    Returns:
        (..., 12) ordered corner by corner: ``u0, v0, z0, u1, v1, z1, ...``.
    """
    corners = box_corners(center, size, rotation)[..., list(POSE_CORNERS), :]
    uv, depth = project_points(corners, K, R, t)
    scale = torch.tensor([width, height], dtype=uv.dtype, device=uv.device)
    feats = torch.cat([uv / scale, depth.unsqueeze(-1)], dim=-1)
    return feats.flatten(-2)

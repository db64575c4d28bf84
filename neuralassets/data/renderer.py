"""Exact analytic ray casting of synthetic scenes, in pure torch and batched over frames.

Every object is a union of *parts*; each part is a box, ellipsoid, cylinder, cone, wedge or
torus fitted to an axis-aligned sub-box of the object's unit box ``[-0.5, 0.5]^3``. The
object's :class:`~neuralassets.scene.Box3D` scales, rotates and places that unit box, so
every shape lies exactly inside (and touches every face of) its 3D box, and a scale or
rotation edit changes the shape exactly as it changes the box.

All parts but the torus are the intersection of their sub-box with a quadric
``q^T A q + b . q + c <= 0`` written in part coordinates ``q in [-1, 1]^3``: a ray enters
one either through the box (where the quadric is already satisfied) or through the quadric
inside the box. That one formula, evaluated for all candidate (pixel, part) pairs at once,
renders every such part. The torus's quartic has its roots isolated exactly between those of
its derivatives (:func:`_enter_torus`).

The world has a floor at z = 0 and a backdrop: a vertical cylinder of radius
``room_radius`` around the origin on which the background style is painted, so every
camera ray inside the room hits something and **depth is finite everywhere**. Objects
and floor are lit by one directional light plus ambient light, with shadow rays cast
against every object; the backdrop is unlit.

Work is culled per object by its projected 3D box (primary rays) and by its box seen
from the light (shadow rays), so cost grows with the objects' screen area, not with
``pixels x objects``. Every per-pixel quantity is computed elementwise from that pixel's
own candidates, so re-rendering a scene with one object changed leaves every other
pixel bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import geometry
from ..errors import ValidationError
from ..image_ops import masks_to_boxes, quantize
from ..scene import Background, Camera, Scene

#: Quadric primitive name -> (A diagonal (3), b (3), c) of ``q^T diag(A) q + b . q + c <= 0`` in part
#: coordinates q in [-1, 1]^3.
QUADRICS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], float]] = {
    "box": ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), -1.0),  # the quadric always holds: the part is its box
    "ellipsoid": ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), -1.0),
    "cylinder": ((1.0, 1.0, 0.0), (0.0, 0.0, 0.0), -1.0),  # axis along the part's z
    "cone": ((1.0, 1.0, -0.25), (0.0, 0.0, 0.5), -0.25),  # x^2 + y^2 <= ((1 - z) / 2)^2: base at z = -1, apex at z = +1
    "wedge": ((0.0, 0.0, 0.0), (1.0, 0.0, 1.0), 0.0),  # x + z <= 0: the box cut along its diagonal through the y axis
}
#: Tube radius of the torus primitive, as a fraction of the part's half extent in x and y. Its axis is
#: the part's z; its centre circle has radius ``1 - TORUS_TUBE``, so it touches all six faces of the
#: part's box, and z is scaled so the tube spans z in [-1, 1].
TORUS_TUBE = 0.3
#: Every primitive a part can be: the quadrics, then the torus (a quartic, :func:`_enter_torus`).
PRIMITIVES: tuple[str, ...] = (*QUADRICS, "torus")
_PRIMITIVE_INDEX = {name: i for i, name in enumerate(PRIMITIVES)}
_TORUS = _PRIMITIVE_INDEX["torus"]

#: Shape name -> parts ``(primitive, centre (3), half extents (3))`` in the object's unit box.
#: The parts of every shape together touch all six faces of the unit box.
SHAPES: dict[str, tuple[tuple[str, tuple[float, float, float], tuple[float, float, float]], ...]] = {
    "cube": (("box", (0.0, 0.0, 0.0), (0.5, 0.5, 0.5)),),
    "sphere": (("ellipsoid", (0.0, 0.0, 0.0), (0.5, 0.5, 0.5)),),
    "cylinder": (("cylinder", (0.0, 0.0, 0.0), (0.5, 0.5, 0.5)),),
    "cone": (("cone", (0.0, 0.0, 0.0), (0.5, 0.5, 0.5)),),
    # An L seen along y: a full-width bottom slab and an upright on the -x half.
    "l_block": (("box", (0.0, 0.0, -0.25), (0.5, 0.5, 0.25)),
                ("box", (-0.25, 0.0, 0.25), (0.25, 0.5, 0.25))),
    # A cylinder body on the -x side (x in [-0.5, 0.25]) and a C-shaped handle on +x.
    "mug": (("cylinder", (-0.125, 0.0, 0.0), (0.375, 0.5, 0.5)),
            ("box", (0.325, 0.0, 0.275), (0.175, 0.07, 0.075)),
            ("box", (0.325, 0.0, -0.225), (0.175, 0.07, 0.075)),
            ("box", (0.44, 0.0, 0.025), (0.06, 0.07, 0.325))),
    # A ramp: full height at x = -0.5, falling to an edge on the floor at x = +0.5.
    "wedge": (("wedge", (0.0, 0.0, 0.0), (0.5, 0.5, 0.5)),),
    # A ring about the box's z axis.
    "torus": (("torus", (0.0, 0.0, 0.0), (0.5, 0.5, 0.5)),),
}

#: Object textures, evaluated in the object's unit-box coordinates so they turn with it.
TEXTURES = ("solid", "stripes", "checker", "noise", "two_tone")
#: Floor textures, evaluated in world metres on z = 0.
FLOOR_TEXTURES = ("solid", "checker", "grid", "noise")
#: Backdrop styles painted on the room's cylinder wall.
BACKDROPS = ("sky", "wall", "tiles", "stripes", "dots")

_NEAR = 1e-4  # metres: primary hits closer than this to the camera are ignored
_SHADOW_OFFSET = 1e-3  # metres: shadow rays start this far off the surface, along its normal
_SKY_HEIGHT = 6.0  # metres: height over which the sky gradient runs
_KIND_WALL, _KIND_FLOOR, _KIND_OBJECT = 0, 1, 2


@dataclass
class RenderOutput:
    """What one call of :func:`render` produces.

    Attributes:
        rgb: (F, 3, H, W) float in [0, 1], multiples of 1/255.
        instance: (F, H, W) long, 0 = floor or backdrop, else the asset id seen at the pixel centre.
        depth: (F, H, W) float, camera-frame z in metres of the surface at the pixel centre;
            finite everywhere (rays that miss every object hit the floor or the backdrop).
        visibility: (F, N) float in [0, 1], per asset (scene order): visible pixels divided by
            the pixels the asset covers when rendered alone, counted on the image plane
            extended by one image size on every side (so objects leaving the frame lose
            visibility).
        asset_ids: the N asset ids, in the order of ``visibility``'s columns.
    """

    rgb: Tensor
    instance: Tensor
    depth: Tensor
    visibility: Tensor
    asset_ids: list[int]

    def masks(self) -> Tensor:
        """(N, F, H, W) bool visible mask of each asset."""
        ids = torch.tensor(self.asset_ids, dtype=torch.long).view(-1, 1, 1, 1)
        return self.instance.unsqueeze(0) == ids

    def boxes_2d(self) -> Tensor:
        """(N, F, 4) float pixel boxes ``(x0, y0, x1, y1)`` of each asset's visible mask; zeros when unseen."""
        return masks_to_boxes(self.masks())


# --------------------------------------------------------------------------------------
# Scene parameters
# --------------------------------------------------------------------------------------

def renderer_parameters(scene: Scene) -> dict[str, Any]:
    """The scene-level renderer parameters in effect for ``scene``.

    ``scene.metadata["renderer"]`` gives room, light, floor and backdrop; when
    ``scene.background`` carries ``"backdrop"`` / ``"floor"`` entries in its attributes
    (a background swap), those replace the scene's own.

    Raises:
        ValidationError: the scene has no renderer parameters.
    """
    params = scene.metadata.get("renderer")
    if not isinstance(params, dict):
        raise ValidationError('scene.metadata["renderer"]: missing; only scenes made by the synthetic generator '
                              "(or carrying its renderer parameters) can be rendered")
    params = dict(params)
    if scene.background is not None:
        for key in ("backdrop", "floor"):
            if key in scene.background.attributes:
                params[key] = scene.background.attributes[key]
    return params


def _rgb(value: Any, where: str) -> list[float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
        raise ValidationError(f"{where}: expected three numbers in [0, 1], got {value!r}")
    return [float(v) for v in value]


def _choice(table: tuple[str, ...] | dict, value: Any, where: str) -> int:
    names = list(table)
    if value not in names:
        raise ValidationError(f"{where}: {value!r} is not one of {names}")
    return names.index(value)


@dataclass
class _Objects:
    """Per-frame object poses and per-object appearance, packed for the renderer."""

    ids: Tensor  # (O,) long
    centers: Tensor  # (F, O, 3)
    rotations: Tensor  # (F, O, 3, 3) box-to-world
    sizes: Tensor  # (F, O, 3)
    part_owner: Tensor  # (P,) long, object index of each part
    part_primitive: Tensor  # (P,) long
    part_center: Tensor  # (P, 3) in the unit box
    part_half: Tensor  # (P, 3) in the unit box
    part_start: Tensor  # (O,) long
    part_count: Tensor  # (O,) long
    rgb: Tensor  # (O, 3)
    rgb2: Tensor  # (O, 3)
    texture: Tensor  # (O,) long
    texture_scale: Tensor  # (O,)
    texture_seed: Tensor  # (O,) long
    specular: Tensor  # (O,)


def _pack_objects(scene: Scene, frames: list[int]) -> _Objects:
    parts, rgb, rgb2, texture, scale, seed, specular = [], [], [], [], [], [], []
    starts, counts = [], []
    for i, a in enumerate(scene.assets):
        where = f"assets[{i}] (id {a.id}, {a.name!r}).attributes"
        attrs = a.attributes
        shape = attrs.get("shape")
        if shape not in SHAPES:
            raise ValidationError(f"{where}['shape']: {shape!r} is not a renderable shape {list(SHAPES)}")
        starts.append(len(parts))
        counts.append(len(SHAPES[shape]))
        parts += [(i, _PRIMITIVE_INDEX[p], c, h) for p, c, h in SHAPES[shape]]
        rgb.append(_rgb(attrs.get("rgb"), f"{where}['rgb']"))
        rgb2.append(_rgb(attrs.get("rgb2", attrs.get("rgb")), f"{where}['rgb2']"))
        texture.append(_choice(TEXTURES, attrs.get("texture", "solid"), f"{where}['texture']"))
        scale.append(float(attrs.get("texture_scale", 3.0)))
        seed.append(int(attrs.get("texture_seed", 0)))
        specular.append(float(attrs.get("specular", 0.0)))
    O = len(scene.assets)
    idx = torch.tensor(frames, dtype=torch.long)

    def stack(name: str, shape: tuple[int, ...]) -> Tensor:
        if not O:
            return torch.zeros(len(frames), 0, *shape)
        return torch.stack([getattr(a, name)[idx] for a in scene.assets], dim=1)

    return _Objects(
        ids=torch.tensor([a.id for a in scene.assets], dtype=torch.long),
        centers=stack("centers", (3,)), rotations=stack("rotations", (3, 3)), sizes=stack("sizes", (3,)),
        part_owner=torch.tensor([p[0] for p in parts], dtype=torch.long),
        part_primitive=torch.tensor([p[1] for p in parts], dtype=torch.long),
        part_center=torch.tensor([p[2] for p in parts], dtype=torch.float32).reshape(-1, 3),
        part_half=torch.tensor([p[3] for p in parts], dtype=torch.float32).reshape(-1, 3),
        part_start=torch.tensor(starts, dtype=torch.long), part_count=torch.tensor(counts, dtype=torch.long),
        rgb=torch.tensor(rgb, dtype=torch.float32).reshape(-1, 3), rgb2=torch.tensor(rgb2, dtype=torch.float32).reshape(-1, 3),
        texture=torch.tensor(texture, dtype=torch.long), texture_scale=torch.tensor(scale, dtype=torch.float32),
        texture_seed=torch.tensor(seed, dtype=torch.long), specular=torch.tensor(specular, dtype=torch.float32),
    )


@dataclass
class _World:
    """Room, floor, backdrop and light, as plain numbers."""

    room_radius: float
    light_dir: Tensor  # (3,) unit vector towards the light
    light_intensity: float
    ambient: float
    floor_texture: int
    floor_rgb: Tensor
    floor_rgb2: Tensor
    floor_scale: float
    backdrop_style: int
    backdrop_rgb: Tensor
    backdrop_rgb2: Tensor
    backdrop_scale: float


def _pack_world(params: dict[str, Any]) -> _World:
    where = 'scene.metadata["renderer"]'
    try:
        light, floor, backdrop = params["light"], params["floor"], params["backdrop"]
        direction = torch.tensor(light["direction"], dtype=torch.float32)
        return _World(
            room_radius=float(params["room_radius"]),
            light_dir=direction / direction.norm(),
            light_intensity=float(light["intensity"]), ambient=float(light["ambient"]),
            floor_texture=_choice(FLOOR_TEXTURES, floor["texture"], f"{where}['floor']['texture']"),
            floor_rgb=torch.tensor(_rgb(floor["rgb"], f"{where}['floor']['rgb']")),
            floor_rgb2=torch.tensor(_rgb(floor["rgb2"], f"{where}['floor']['rgb2']")),
            floor_scale=float(floor["scale"]),
            backdrop_style=_choice(BACKDROPS, backdrop["style"], f"{where}['backdrop']['style']"),
            backdrop_rgb=torch.tensor(_rgb(backdrop["rgb"], f"{where}['backdrop']['rgb']")),
            backdrop_rgb2=torch.tensor(_rgb(backdrop["rgb2"], f"{where}['backdrop']['rgb2']")),
            backdrop_scale=float(backdrop["scale"]),
        )
    except (KeyError, TypeError) as e:
        raise ValidationError(f"{where}: missing or malformed entry {e}") from None


# --------------------------------------------------------------------------------------
# Small elementwise helpers (explicit sums keep results independent of batch size)
# --------------------------------------------------------------------------------------

def _dot(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _matvec(M: Tensor, v: Tensor) -> Tensor:
    """(..., 3, 3) @ (..., 3) written out elementwise."""
    return torch.stack([_dot(M[..., i, :], v) for i in range(3)], dim=-1)


def _matvec_t(M: Tensor, v: Tensor) -> Tensor:
    """(..., 3, 3)^T @ (..., 3) written out elementwise."""
    return torch.stack([_dot(M[..., :, i], v) for i in range(3)], dim=-1)


def _normalize(v: Tensor) -> Tensor:
    return v / torch.sqrt(_dot(v, v)).clamp(min=1e-12).unsqueeze(-1)


_NOISE_PERIOD = 64  # lattice cells before value noise repeats


def _noise_lattice() -> Tensor:
    """(_NOISE_PERIOD ** 3,) fixed random lattice values in [0, 1), built once from seed 0."""
    if not hasattr(_noise_lattice, "table"):
        generator = torch.Generator().manual_seed(0)
        _noise_lattice.table = torch.rand(_NOISE_PERIOD ** 3, generator=generator)
    return _noise_lattice.table


def value_noise(p: Tensor, seed: Tensor) -> Tensor:
    """Smooth 2D or 3D value noise (smoothstep-weighted lattice values of a periodic random table).

    Args:
        p: (N, D) float coordinates with D = 2 or 3 (one lattice cell per unit).
        seed: (N,) long, shifts the lattice so different seeds give different fields.

    Returns:
        (N,) float in [0, 1].
    """
    dims = p.shape[-1]
    base = torch.floor(p)
    frac = p - base
    w = frac * frac * (3 - 2 * frac)
    i = base.long() + seed.unsqueeze(-1) * torch.tensor([17, 31, 47][:dims])
    table = _noise_lattice()
    n = _NOISE_PERIOD
    out = torch.zeros_like(p[:, 0])
    for corner in range(2 ** dims):
        index = torch.zeros_like(i[:, 0])
        weight = torch.ones_like(out)
        for axis in range(dims):
            bit = (corner >> axis) & 1
            index = index * n + (i[:, axis] + bit) % n
            weight = weight * (w[:, axis] if bit else 1 - w[:, axis])
        out = out + weight * table[index]
    return out


# --------------------------------------------------------------------------------------
# Ray casting
# --------------------------------------------------------------------------------------

_QUADRICS = torch.tensor([[*a, *b, c] for a, b, c in QUADRICS.values()], dtype=torch.float32)  # (Q, 7)


def _intersect_parts(origin: Tensor, direction: Tensor, primitive: Tensor, near: float) -> tuple[Tensor, Tensor]:
    """First entry of rays into parts, in part coordinates.

    Args:
        origin: (E, 3) ray origins in part coordinates (the part is ``[-1, 1]^3`` clipped by its primitive).
        direction: (E, 3) ray directions in part coordinates (any length: ``t`` keeps the
            world units of the unscaled ray).
        primitive: (E,) long index into :data:`PRIMITIVES`.
        near: entries closer than this ``t`` are ignored.

    Returns:
        t: (E,) entry parameter, inf where the ray misses.
        face: (E,) long, the box face axis (0, 1, 2) the ray enters through, or -1 when
            it enters through the primitive's surface.
    """
    safe = torch.where(direction.abs() < 1e-12, torch.full_like(direction, 1e-12), direction)
    t1, t2 = (-1 - origin) / safe, (1 - origin) / safe
    t_lo, t_hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
    s0, axis = t_lo.max(dim=-1)
    s1 = t_hi.amin(dim=-1)
    s0 = s0.clamp(min=near)
    inside_box = s0 <= s1
    # Solve in the variable u = t - s0 from the box entry point: coefficients stay O(1).
    start = origin + s0.unsqueeze(-1) * direction
    span = s1 - s0
    torus = primitive == _TORUS
    if bool(torus.any()):
        u, enters_at_box = torch.empty_like(span), torch.empty_like(inside_box)
        quadric = ~torus
        u[quadric], enters_at_box[quadric] = _enter_quadric(start[quadric], direction[quadric], span[quadric],
                                                            primitive[quadric])
        u[torus], enters_at_box[torus] = _enter_torus(start[torus], direction[torus], span[torus])
    else:
        u, enters_at_box = _enter_quadric(start, direction, span, primitive)
    t = torch.where(inside_box, s0 + u, torch.full_like(u, math.inf))
    face = torch.where(enters_at_box, axis, torch.full_like(axis, -1))
    return t, face


def _enter_quadric(start: Tensor, direction: Tensor, span: Tensor, primitive: Tensor) -> tuple[Tensor, Tensor]:
    """Where rays from their box entry ``start`` (E, 3) enter a quadric part within ``span`` (E,).

    Returns:
        u: (E,) distance from the box entry (same units as ``t``), inf where the ray misses;
        enters_at_box: (E,) bool, the box entry already lies inside the quadric.
    """
    coef = _QUADRICS[primitive]
    A, linear, c0 = coef[:, :3], coef[:, 3:6], coef[:, 6]
    a = _dot(A, direction * direction)
    b = 2 * _dot(A, start * direction) + _dot(linear, direction)
    c = _dot(A, start * start) + _dot(linear, start) + c0
    enters_at_box = c <= 0
    disc = b * b - 4 * a * c
    sq = torch.sqrt(disc.clamp(min=0))
    q = -0.5 * (b + torch.where(b >= 0, sq, -sq))
    linear_in_u = a.abs() < 1e-12
    safe_a = torch.where(linear_in_u, torch.ones_like(a), a)
    safe_q = torch.where(q.abs() < 1e-30, torch.full_like(q, 1e-30), q)
    r1 = torch.where(linear_in_u, -c / torch.where(b.abs() < 1e-30, torch.full_like(b, 1e-30), b), q / safe_a)
    r2 = torch.where(linear_in_u, r1, c / safe_q)
    has_root = (disc >= 0) & ~(linear_in_u & (b.abs() < 1e-30))
    inf = torch.full_like(a, math.inf)

    def entering(r: Tensor) -> Tensor:  # a root where the quadric turns from > 0 to <= 0, inside the box
        return has_root & (r >= 0) & (r <= span) & (2 * a * r + b < 0)

    root = torch.minimum(torch.where(entering(r1), r1, inf), torch.where(entering(r2), r2, inf))
    return torch.where(enters_at_box, torch.zeros_like(root), root), enters_at_box


_BISECTIONS = 60  # halvings of a float64 bracket: well below float32 resolution on any part


def _enter_torus(start: Tensor, direction: Tensor, span: Tensor) -> tuple[Tensor, Tensor]:
    """Where rays from their box entry ``start`` (E, 3) enter the torus part within ``span`` (E,).

    Along the ray the torus's implicit function is a quartic ``f(u)`` (negative inside). Its
    roots are isolated exactly, in float64: ``f''`` is a quadratic, solved in closed form;
    between its roots ``f'`` is monotone, so each of its sign changes brackets one turning point
    of ``f``, found by bisection; between turning points ``f`` is monotone, so the first piece
    on which ``f`` falls to 0 holds the entry, found by bisection. No root is missed, however
    short the chord (only a ray exactly tangent to the surface counts as touching it).

    Returns:
        u: (E,) distance from the box entry (same units as ``t``), inf where the ray misses;
        enters_at_box: (E,) bool, the box entry already lies inside the torus.
    """
    squash = torch.tensor([1.0, 1.0, TORUS_TUBE], dtype=torch.float64)
    p, d = start.double() * squash, direction.double() * squash
    ring = (1 - TORUS_TUBE) ** 2  # squared radius of the tube's centre circle
    # f = (|x|^2 + ring - tube^2)^2 - 4 ring (x^2 + y^2) along x = p + u d, highest power first.
    a2, a1, a0 = _dot(d, d), 2 * _dot(p, d), _dot(p, p) + ring - TORUS_TUBE ** 2
    b2 = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]
    b1 = 2 * (p[:, 0] * d[:, 0] + p[:, 1] * d[:, 1])
    b0 = p[:, 0] * p[:, 0] + p[:, 1] * p[:, 1]
    f = torch.stack([a2 * a2, 2 * a2 * a1, a1 * a1 + 2 * a2 * a0 - 4 * ring * b2, 2 * a1 * a0 - 4 * ring * b1,
                     a0 * a0 - 4 * ring * b0], dim=-1)
    slope = f[:, :4] * torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    end = span.double().clamp(min=0)
    zero = torch.zeros_like(end)

    # f'' = 12 f4 u^2 + 6 f3 u + 2 f2 (f4 > 0): its roots, clipped to the chord, split it into three pieces.
    qa, qb, qc = 12 * f[:, 0], 6 * f[:, 1], 2 * f[:, 2]
    disc = qb * qb - 4 * qa * qc
    sq = torch.sqrt(disc.clamp(min=0))
    real = disc > 0
    bends = [torch.where(real, ((-qb + sign * sq) / (2 * qa)).clamp(min=0), zero).minimum(end) for sign in (-1, 1)]
    edges = [zero, *bends, end]
    turns = [_first_sign_change(slope, lo, hi, otherwise=lo) for lo, hi in zip(edges[:-1], edges[1:])]
    # Between consecutive turning points f is monotone: the entry lies in the first piece whose end is inside.
    points = torch.stack([zero, *turns, end], dim=-1)  # (E, 5), ascending
    inside = _polyval(f, points.flatten()).view_as(points) <= 0
    enters_at_box = inside[:, 0]
    piece = inside[:, 1:].int().argmax(dim=-1)  # the first True
    lo, hi = points.gather(1, piece[:, None])[:, 0], points.gather(1, piece[:, None] + 1)[:, 0]
    root = _first_sign_change(f, lo, hi, otherwise=torch.full_like(lo, math.inf))
    u = torch.where(enters_at_box, zero, torch.where(inside[:, 1:].any(-1), root, torch.full_like(root, math.inf)))
    return u.to(start.dtype), enters_at_box


def _polyval(coef: Tensor, u: Tensor) -> Tensor:
    """Horner: polynomials with coefficients ``coef`` (E, n), highest power first, at ``u`` (E,) or (E * k,)."""
    rows = u.shape[0] // coef.shape[0]
    coef = coef.repeat_interleave(rows, dim=0) if rows > 1 else coef
    out = coef[:, 0]
    for k in range(1, coef.shape[1]):
        out = out * u + coef[:, k]
    return out


def _first_sign_change(coef: Tensor, lo: Tensor, hi: Tensor, otherwise: Tensor) -> Tensor:
    """The root of the polynomial ``coef`` (E, n) in ``[lo, hi]`` (E,) where it is monotone and changes
    sign, by bisection; ``otherwise`` where it does not change sign."""
    positive_lo = _polyval(coef, lo) > 0
    changes = positive_lo != (_polyval(coef, hi) > 0)
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        same = (_polyval(coef, mid) > 0) == positive_lo
        lo, hi = torch.where(same, mid, lo), torch.where(same, hi, mid)
    return torch.where(changes, (lo + hi) / 2, otherwise)


def _part_normal(q: Tensor, direction: Tensor, primitive: Tensor, face: Tensor) -> Tensor:
    """(E, 3) unnormalised outward normals in part coordinates at entry points ``q``."""
    torus = primitive == _TORUS
    coef = _QUADRICS[primitive.masked_fill(torus, 0)]
    grad = 2 * coef[:, :3] * q + coef[:, 3:6]
    if bool(torus.any()):
        grad[torus] = _torus_gradient(q[torus])
    axis = face.clamp(min=0)
    box_normal = -torch.sign(direction.gather(1, axis[:, None])) * F.one_hot(axis, 3).float()
    return torch.where((face >= 0).unsqueeze(-1), box_normal, grad)


def _torus_gradient(q: Tensor) -> Tensor:
    """(E, 3) gradient of the torus's implicit function (:func:`_enter_torus`) at part coordinates ``q`` (E, 3)."""
    ring = (1 - TORUS_TUBE) ** 2
    z = q[:, 2] * TORUS_TUBE
    level = q[:, 0] * q[:, 0] + q[:, 1] * q[:, 1] + z * z + ring - TORUS_TUBE ** 2
    radial = 4 * (level - 2 * ring)
    return torch.stack([radial * q[:, 0], radial * q[:, 1], 4 * level * z * TORUS_TUBE], dim=-1)


def _candidate_pixels(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Enumerate integer pixel rectangles.

    Args:
        lo: (R, 2) long inclusive first column/row; hi: (R, 2) long inclusive last.

    Returns:
        owner (M,) rectangle index, px (M,), py (M,).
    """
    w = (hi[:, 0] - lo[:, 0] + 1).clamp(min=0)
    h = (hi[:, 1] - lo[:, 1] + 1).clamp(min=0)
    n = w * h
    owner = torch.repeat_interleave(torch.arange(len(n)), n)
    k = torch.arange(int(n.sum())) - (torch.cumsum(n, 0) - n)[owner]
    return owner, lo[owner, 0] + k % w[owner], lo[owner, 1] + k // w[owner]


def _expand_parts(objects: _Objects, owner_object: Tensor) -> tuple[Tensor, Tensor]:
    """Repeat each entry once per part of its object; returns (entry index, part index) per pair."""
    counts = objects.part_count[owner_object]
    entry = torch.repeat_interleave(torch.arange(len(owner_object)), counts)
    k = torch.arange(len(entry)) - (torch.cumsum(counts, 0) - counts)[entry]
    return entry, objects.part_start[owner_object[entry]] + k


def _cast_against_objects(objects: _Objects, frame: Tensor, obj: Tensor, origin: Tensor, direction: Tensor,
                          near: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Intersect rays with the parts of given objects.

    Args:
        frame, obj: (E,) long frame and object index of each (ray, object) candidate.
        origin, direction: (E, 3) world rays (unit directions).
        near: minimum ``t``.

    Returns:
        t: (E,) first hit in metres (inf: miss), and for the hit part: part (E,) long,
        q (E, 3) entry point in part coordinates, q_dir (E, 3) ray direction in part
        coordinates, face (E,) long (see :func:`_intersect_parts`).
    """
    R = objects.rotations[frame, obj]
    scale = objects.sizes[frame, obj]
    local_origin = _matvec_t(R, origin - objects.centers[frame, obj]) / scale
    local_dir = _matvec_t(R, direction) / scale
    entry, part = _expand_parts(objects, obj)
    if len(entry) == 0:
        empty = torch.zeros(len(obj), 3)
        none = torch.zeros(len(obj), dtype=torch.long)
        return torch.full((len(obj),), math.inf), none, empty, empty, none
    half, center = objects.part_half[part], objects.part_center[part]
    q_origin = (local_origin[entry] - center) / half
    q_dir = local_dir[entry] / half
    t_part, face = _intersect_parts(q_origin, q_dir, objects.part_primitive[part], near)
    t = torch.full((len(obj),), math.inf).scatter_reduce(0, entry, t_part, "amin")
    # The winning part of each entry: the lowest-numbered part reaching the entry's t.
    winner = torch.where(t_part == t[entry], torch.arange(len(entry)), len(entry))
    best = torch.full((len(obj),), len(entry), dtype=torch.long).scatter_reduce(0, entry, winner, "amin")
    best = best.clamp(max=len(entry) - 1)
    t_best = torch.where(torch.isfinite(t), t, torch.zeros_like(t))
    q = q_origin[best] + t_best.unsqueeze(-1) * q_dir[best]
    return t, part[best], q, q_dir[best], face[best]


def _camera_rays(K: Tensor, R: Tensor, t: Tensor, px: Tensor, py: Tensor, frame: Tensor | None) -> tuple[Tensor, Tensor]:
    """World origins and unit directions (E, 3) of the rays through pixel centres (px + .5, py + .5).

    With ``frame`` (E,) the pixels are arbitrary candidates; with ``frame=None`` px, py (P,)
    are taken in every frame (E = F * P) and the cameras are broadcast instead of gathered.
    Both paths do the same arithmetic, so a pixel's ray is bit-identical either way.
    """
    if frame is None:
        K, R, t = K[:, None], R[:, None], t[:, None]
    else:
        K, R, t = K[frame], R[frame], t[frame]
    x = (px.float() + 0.5 - K[..., 0, 2]) / K[..., 0, 0]
    y = (py.float() + 0.5 - K[..., 1, 2]) / K[..., 1, 1]
    cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    direction = _normalize(_matvec_t(R, cam))
    origin = -_matvec_t(R, t)
    return origin.expand_as(direction).reshape(-1, 3), direction.reshape(-1, 3)


@dataclass
class _Trace:
    frame: Tensor  # (F*H*W,) long frame index of each ray
    t: Tensor  # (F*H*W,) metres along the unit ray
    kind: Tensor  # (F*H*W,) long _KIND_*
    instance: Tensor  # (F*H*W,) long object index + 1 (0: none)
    origin: Tensor  # (F*H*W, 3)
    direction: Tensor  # (F*H*W, 3)
    hit_part: Tensor  # (M,) for object pixels
    hit_q: Tensor  # (M, 3)
    hit_q_dir: Tensor  # (M, 3)
    hit_face: Tensor  # (M,)
    silhouette: Tensor  # (F, O) long unoccluded pixel counts on the extended image plane


def _trace(objects: _Objects, world: _World, K: Tensor, R: Tensor, t: Tensor, height: int, width: int,
           count_silhouettes: bool) -> _Trace:
    """Primary rays through every pixel centre of F frames."""
    num_frames, num_objects = K.shape[0], len(objects.ids)
    HW = height * width
    frame = torch.arange(num_frames).repeat_interleave(HW)
    pix = torch.arange(HW)
    origin, direction = _camera_rays(K, R, t, pix % width, pix // width, None)

    # Floor (z = 0) and the room's cylinder wall (the camera is inside the room).
    dz = direction[:, 2]
    t_floor = torch.where(dz < -1e-9, -origin[:, 2] / torch.where(dz < -1e-9, dz, -torch.ones_like(dz)), math.inf)
    a = direction[:, 0] ** 2 + direction[:, 1] ** 2
    b = 2 * (origin[:, 0] * direction[:, 0] + origin[:, 1] * direction[:, 1])
    c = origin[:, 0] ** 2 + origin[:, 1] ** 2 - world.room_radius ** 2
    t_wall = (-b + torch.sqrt((b * b - 4 * a * c).clamp(min=0))) / (2 * a).clamp(min=1e-12)
    t_wall = torch.where(a > 1e-12, t_wall, math.inf)
    floor_first = t_floor <= t_wall
    t_bg = torch.where(floor_first, t_floor, t_wall)
    kind = torch.where(floor_first, _KIND_FLOOR, _KIND_WALL)
    instance = torch.zeros(num_frames * HW, dtype=torch.long)
    silhouette = torch.zeros(num_frames, num_objects, dtype=torch.long)
    empty3 = torch.zeros(0, 3)
    if num_objects == 0:
        return _Trace(frame, t_bg, kind, instance, origin, direction, torch.zeros(0, dtype=torch.long), empty3, empty3,
                      torch.zeros(0, dtype=torch.long), silhouette)

    # Cull: each object is tested only inside the pixel rectangle of its projected 3D box.
    uv, z = geometry.project_box(objects.centers, objects.sizes, objects.rotations,
                                 K[:, None], R[:, None], t[:, None])  # (F, O, 8, 2), (F, O, 8)
    margin = (width, height) if count_silhouettes else (0, 0)
    window_lo = torch.tensor([-margin[0], -margin[1]])
    window_hi = torch.tensor([width - 1 + margin[0], height - 1 + margin[1]])
    in_front = (z > _NEAR).all(-1, keepdim=True)
    lo = torch.where(in_front, torch.ceil(uv.amin(-2) - 0.5), window_lo.float())
    hi = torch.where(in_front, torch.floor(uv.amax(-2) - 0.5), window_hi.float())
    lo = torch.maximum(lo.clamp(-1e6, 1e6).long(), window_lo)
    hi = torch.minimum(hi.clamp(-1e6, 1e6).long(), window_hi)
    visible_any = (z > _NEAR).any(-1)
    hi = torch.where(visible_any.unsqueeze(-1), hi, lo - 1)
    rect, px, py = _candidate_pixels(lo.reshape(-1, 2), hi.reshape(-1, 2))
    cand_frame, cand_obj = rect // num_objects, rect % num_objects
    if count_silhouettes:
        cand_origin, cand_dir = _camera_rays(K, R, t, px, py, cand_frame)
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    ray = cand_frame * HW + py.clamp(0, height - 1) * width + px.clamp(0, width - 1)
    if not count_silhouettes:
        cand_origin, cand_dir = origin[ray], direction[ray]
    t_obj, part, q, q_dir, face = _cast_against_objects(objects, cand_frame, cand_obj, cand_origin, cand_dir, _NEAR)
    hit = torch.isfinite(t_obj)
    if count_silhouettes:
        silhouette = torch.bincount(rect[hit], minlength=num_frames * num_objects).view(num_frames, num_objects)

    # Resolve visibility per pixel: nearest object, ties to the lowest candidate index.
    use = hit & inside
    t_near = t_bg.clone().scatter_reduce(0, ray[use], t_obj[use], "amin")
    cand_index = torch.arange(len(ray))
    wins = use & (t_obj == t_near[ray]) & (t_obj < t_bg[ray])
    best = torch.full_like(t_near, len(ray), dtype=torch.long).scatter_reduce(
        0, ray[wins], cand_index[wins], "amin")
    is_object = best < len(ray)
    winners = best[is_object]
    kind = torch.where(is_object, _KIND_OBJECT, kind)
    instance[is_object] = cand_obj[winners] + 1
    return _Trace(frame, t_near, kind, instance, origin, direction, part[winners], q[winners], q_dir[winners],
                  face[winners], silhouette)


# --------------------------------------------------------------------------------------
# Shading
# --------------------------------------------------------------------------------------

def _object_albedo(objects: _Objects, obj: Tensor, unit: Tensor) -> Tensor:
    """(M, 3) colours of object surface points at unit-box coordinates ``unit`` (M, 3)."""
    c1, c2 = objects.rgb[obj], objects.rgb2[obj]
    scale = objects.texture_scale[obj].unsqueeze(-1)
    seed = objects.texture_seed[obj]
    p = unit * scale
    stripes = _fract(p[:, 0] + 0.5 * p[:, 2]) < 0.5
    checker = (torch.floor(p).long().sum(-1) % 2) == 0
    noise = value_noise(p * 1.7, seed)
    two_tone = unit[:, 2] > 0.0
    tex = objects.texture[obj]
    mix = torch.zeros_like(stripes, dtype=torch.float32)
    mix = torch.where(tex == TEXTURES.index("stripes"), stripes.float(), mix)
    mix = torch.where(tex == TEXTURES.index("checker"), checker.float(), mix)
    mix = torch.where(tex == TEXTURES.index("noise"), torch.clamp((noise - 0.3) * 2.5, 0, 1), mix)
    mix = torch.where(tex == TEXTURES.index("two_tone"), two_tone.float(), mix)
    return c1 + (c2 - c1) * mix.unsqueeze(-1)


def _floor_albedo(world: _World, xy: Tensor) -> Tensor:
    """(M, 3) floor colours at world points ``xy`` (M, 2) on z = 0."""
    s = world.floor_scale
    p = xy / s
    seed = torch.full_like(xy[:, 0], 7, dtype=torch.long)
    kind = FLOOR_TEXTURES[world.floor_texture]
    if kind == "solid":
        mix = 0.15 * value_noise(p * 4, seed)
    elif kind == "checker":
        mix = ((torch.floor(p).long().sum(-1) % 2) == 0).float()
    elif kind == "grid":
        f = _fract(p)
        mix = ((f < 0.06) | (f > 0.94)).any(-1).float()
    else:
        mix = 0.7 * value_noise(p * 2.5, seed + 1)
    return world.floor_rgb + (world.floor_rgb2 - world.floor_rgb) * mix.unsqueeze(-1)


def _backdrop_colour(world: _World, points: Tensor) -> Tensor:
    """(M, 3) unlit backdrop colours at points (M, 3) on the room's wall."""
    arc = torch.atan2(points[:, 1], points[:, 0]) * world.room_radius
    z = points[:, 2]
    circumference = 2 * math.pi * world.room_radius
    s = circumference / max(round(circumference / world.backdrop_scale), 1)  # a whole number of periods: no seam
    style = BACKDROPS[world.backdrop_style]
    if style == "sky":
        mix = (z / _SKY_HEIGHT).clamp(0, 1) ** 0.7
        clouds = value_noise(torch.stack([arc / 2.5, z / 1.2], -1), torch.full_like(z, 3).long())
        base = world.backdrop_rgb + (world.backdrop_rgb2 - world.backdrop_rgb) * mix.unsqueeze(-1)
        return base + (1 - base) * (0.35 * (clouds - 0.55).clamp(min=0) / 0.45 * (z > 1.5).float()).unsqueeze(-1)
    if style == "wall":
        mix = 1 - (z / 1.5).clamp(0, 1)  # a darker skirting band near the floor
    elif style == "tiles":
        f = _fract(torch.stack([arc / s, z / s + 0.5 * (torch.floor(arc / s) % 2)], -1))
        mix = ((f < 0.05) | (f > 0.95)).any(-1).float()
    elif style == "stripes":
        mix = (_fract(arc / s) < 0.5).float()
    else:  # dots
        f = _fract(torch.stack([arc / s, z / s], -1)) - 0.5
        mix = (_dot2(f) < 0.09).float()
    return world.backdrop_rgb + (world.backdrop_rgb2 - world.backdrop_rgb) * mix.unsqueeze(-1)


def _fract(x: Tensor) -> Tensor:
    """x - floor(x), in [0, 1) for negative x too (unlike ``torch.frac``)."""
    return x - torch.floor(x)


def _dot2(v: Tensor) -> Tensor:
    return v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1]


def _shadowed(objects: _Objects, world: _World, points: Tensor, receives: Tensor) -> Tensor:
    """Which points see no light.

    Args:
        points: (F * P, 3) world points, P per frame, frame-major.
        receives: (F * P,) bool, the points to test (others are returned False).

    Returns:
        (F * P,) bool, True where the ray from the point towards the light hits an object.
    """
    num_frames, num_objects = objects.centers.shape[:2]
    shadowed = torch.zeros(len(points), dtype=torch.bool)
    if num_objects == 0 or not bool(receives.any()):
        return shadowed
    L = world.light_dir
    helper = torch.tensor([1.0, 0.0, 0.0]) if abs(float(L[0])) < 0.9 else torch.tensor([0.0, 1.0, 0.0])
    u = _normalize(torch.linalg.cross(L, helper))
    basis = torch.stack([u, torch.linalg.cross(L, u), L])  # rows: light-space axes, the last along the light
    corners = geometry.box_corners(objects.centers, objects.sizes, objects.rotations)  # (F, O, 8, 3)
    light_corners = _matvec(basis, corners)
    lo, hi = light_corners.amin(-2)[:, None], light_corners.amax(-2)[:, None]  # (F, 1, O, 3)
    p = _matvec(basis, points).view(num_frames, -1, 1, 3)
    # A point can be shadowed by an object only inside the object's footprint seen from the
    # light, and only if it lies below the object's highest point along the light.
    candidate = ((p[..., 0] >= lo[..., 0]) & (p[..., 0] <= hi[..., 0]) & (p[..., 1] >= lo[..., 1])
                 & (p[..., 1] <= hi[..., 1]) & (p[..., 2] < hi[..., 2]) & receives.view(num_frames, -1, 1))
    point_index, obj = candidate.view(len(points), num_objects).nonzero(as_tuple=True)
    if len(point_index) == 0:
        return shadowed
    frame = torch.div(point_index, len(points) // num_frames, rounding_mode="floor")
    t, *_ = _cast_against_objects(objects, frame, obj, points[point_index], L.expand(len(point_index), 3), 0.0)
    return shadowed.index_fill(0, point_index[torch.isfinite(t)], True)


def _shade(objects: _Objects, world: _World, trace: _Trace, shadows: bool) -> Tensor:
    """(F*H*W, 3) linear colours of traced pixels."""
    t = torch.where(torch.isfinite(trace.t), trace.t, torch.zeros_like(trace.t))
    points = trace.origin + t.unsqueeze(-1) * trace.direction
    colour = torch.zeros_like(points)
    frame_of_ray = trace.frame

    wall = trace.kind == _KIND_WALL
    colour[wall] = _backdrop_colour(world, points[wall])

    floor = trace.kind == _KIND_FLOOR
    obj_pix = trace.kind == _KIND_OBJECT
    normal = torch.zeros_like(points)
    normal[floor] = torch.tensor([0.0, 0.0, 1.0])
    albedo = torch.zeros_like(points)
    albedo[floor] = _floor_albedo(world, points[floor, :2])
    specular = torch.zeros_like(t)
    if bool(obj_pix.any()):
        obj = trace.instance[obj_pix] - 1
        frames = frame_of_ray[obj_pix]
        part = trace.hit_part
        half, center = objects.part_half[part], objects.part_center[part]
        n_part = _part_normal(trace.hit_q, trace.hit_q_dir, objects.part_primitive[part], trace.hit_face)
        n_local = n_part / (half * objects.sizes[frames, obj])  # inverse-transpose of the diagonal scaling
        normal[obj_pix] = _normalize(_matvec(objects.rotations[frames, obj], n_local))
        albedo[obj_pix] = _object_albedo(objects, obj, trace.hit_q * half + center)
        specular[obj_pix] = objects.specular[obj]

    L = world.light_dir
    lit_side = _dot(normal, L.expand_as(normal)).clamp(min=0)
    receives = (floor | obj_pix) & (lit_side > 0)
    light = torch.zeros_like(t)
    light[receives] = 1.0
    if shadows:
        light[_shadowed(objects, world, points + _SHADOW_OFFSET * normal, receives)] = 0.0
    diffuse = world.ambient + world.light_intensity * lit_side * light
    half_vec = _normalize(L - trace.direction)
    highlight = specular * light * _dot(normal, half_vec).clamp(min=0) ** 40
    shaded = albedo * diffuse.unsqueeze(-1) + highlight.unsqueeze(-1)
    lit_surface = floor | obj_pix
    colour[lit_surface] = shaded[lit_surface]
    return colour


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------

def _camera_tensors(cameras: list[Camera], scale: int) -> tuple[Tensor, Tensor, Tensor]:
    K = torch.stack([c.K for c in cameras]).clone()
    K[:, :2] *= scale  # a camera with `scale` times the pixels over the same field of view
    return K, torch.stack([c.R for c in cameras]), torch.stack([c.t for c in cameras])


def render(scene: Scene, frames: list[int] | None = None, supersample: bool | None = None,
           shadows: bool = True) -> RenderOutput:
    """Render ``scene`` exactly, at the poses and cameras it stores.

    Works for any Scene whose assets carry renderer attributes (``shape``, ``rgb``, and
    optionally ``rgb2``, ``texture``, ``texture_scale``, ``texture_seed``, ``specular``)
    and whose ``metadata["renderer"]`` holds room, light, floor and backdrop parameters, so
    an edited scene renders its edit. A ``scene.background`` whose attributes hold
    ``"backdrop"`` / ``"floor"`` parameters replaces the scene's (background swap).
    ``scene.frames`` is not read.

    Args:
        scene: the scene.
        frames: frame indices to render (default: all).
        supersample: average 2x2 rays per pixel for ``rgb`` (default: the scene's
            ``metadata["renderer"]["supersample"]``, else False). Instance ids, depth and
            visibility always come from the ray through the pixel centre.
        shadows: cast shadow rays (turn off only to isolate effects in tests).

    Returns:
        A :class:`RenderOutput` with one entry per requested frame.

    Raises:
        ValidationError: an asset without renderer attributes, missing renderer parameters,
            or a frame index out of range.
    """
    params = renderer_parameters(scene)
    frames = list(range(scene.num_frames)) if frames is None else [int(f) for f in frames]
    if not frames:
        raise ValidationError("frames: empty; expected at least one frame index")
    for f in frames:
        if not 0 <= f < len(scene.cameras):
            raise ValidationError(f"frames: {f} is not a frame index in [0, {len(scene.cameras)})")
    if supersample is None:
        supersample = bool(params.get("supersample", False))
    cameras = [scene.cameras[f] for f in frames]
    H, W = cameras[0].height, cameras[0].width
    if any((c.height, c.width) != (H, W) for c in cameras):
        raise ValidationError("cameras: every rendered frame must have the same image size")
    objects, world = _pack_objects(scene, frames), _pack_world(params)

    K, R, t = _camera_tensors(cameras, 1)
    trace = _trace(objects, world, K, R, t, H, W, count_silhouettes=True)
    if supersample:
        K2, _, _ = _camera_tensors(cameras, 2)
        fine = _trace(objects, world, K2, R, t, 2 * H, 2 * W, count_silhouettes=False)
        colour = _shade(objects, world, fine, shadows).view(len(frames), 2 * H, 2 * W, 3)
        rgb = F.avg_pool2d(colour.permute(0, 3, 1, 2), 2)
    else:
        rgb = _shade(objects, world, trace, shadows).view(len(frames), H, W, 3).permute(0, 3, 1, 2)

    n = len(frames)
    instance_index = trace.instance.view(n, H, W)
    ids = torch.cat([torch.zeros(1, dtype=torch.long), objects.ids])
    instance = ids[instance_index]
    forward = R[:, 2, :]  # camera z axis in world coordinates, per frame
    cos = _dot(trace.direction.view(n, H * W, 3), forward[:, None, :]).view(n, H, W)
    depth = trace.t.view(n, H, W) * cos
    per_frame = instance_index.view(n, -1) + len(ids) * torch.arange(n).unsqueeze(-1)
    visible = torch.bincount(per_frame.flatten(), minlength=n * len(ids)).view(n, len(ids))[:, 1:]  # (F, O)
    visibility = visible.float() / trace.silhouette.clamp(min=1).float()
    return RenderOutput(quantize(rgb.contiguous()), instance, depth, visibility.clamp(max=1.0), objects.ids.tolist())


def render_scene(scene: Scene, supersample: bool | None = None) -> Scene:
    """A copy of ``scene`` whose frames, depth, masks, 2D boxes and visibility are an exact render.

    Use it after editing a synthetic scene to get the edit's ground truth. Assets keep
    their poses, attributes and appearance sources.
    """
    return fill_from_render(scene.copy(), render(scene, supersample=supersample))


def fill_from_render(scene: Scene, out: RenderOutput) -> Scene:
    """Write a render of all of ``scene``'s frames into it **in place**: frames, depth, asset masks,
    2D boxes and visibility. Returns ``scene``."""
    scene.frames, scene.depth = out.rgb, out.depth
    masks, boxes = out.masks(), out.boxes_2d()
    for i, a in enumerate(scene.assets):
        a.masks, a.boxes_2d, a.visibility = masks[i], boxes[i], out.visibility[:, i].clone()
    return scene


def render_background(scene: Scene, frame: int = 0, style: dict[str, Any] | None = None) -> Background:
    """An object-free render of the floor and backdrop, for use as ``scene.background``.

    Args:
        scene: a scene with renderer parameters.
        frame: whose camera takes the picture.
        style: ``{"backdrop": ..., "floor": ...}`` parameters to use instead of the scene's
            (e.g. ``other_scene.metadata["renderer"]`` to swap in another scene's background).

    Returns:
        A :class:`Background` with a (3, H, W) image quantised to multiples of 1/255, the
        frame's camera, no object boxes, and the backdrop/floor parameters as attributes, so
        rendering a scene with it as ``scene.background`` uses that backdrop.
    """
    params = renderer_parameters(scene)
    if style is not None:
        params.update({k: style[k] for k in ("backdrop", "floor") if k in style})
    empty = Scene(torch.zeros(1, 3, 1, 1), [scene.cameras[frame]], [], metadata={"renderer": params})
    out = render(empty)
    attributes = {"backdrop": params["backdrop"], "floor": params["floor"]}
    return Background(out.rgb[0], scene.cameras[frame], torch.zeros(0, 4), attributes)

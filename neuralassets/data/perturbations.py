"""Noise on a scene's geometry: the benchmark's robustness curves and the training pairs' geometry noise.

Each perturbation is a pure function ``(scene, level, generator) -> scene`` on a scene's own
depth, masks or 3D boxes (its frames and cameras stay). The benchmark applies it to a case's
source scene (and the donor video's) *before* the case's edit is applied to them
(``neuralassets bench --inputs perturbed``), so an edit starts from the wrong box as a user's
would and its target box carries the same error. Training applies it to a pair's scene, source
and target frames alike (:func:`perturb_geometry`, :class:`GeometryNoise`), and keeps the exact
target image, so the model learns to correct the geometry it is given rather than trust it.
Level 0 (1 for ``depth_scale``) changes nothing.

=============  ========  ====================================================================
kind           level     what it does
=============  ========  ====================================================================
depth_scale    factor    depth times ``level`` (a monocular estimate's scale error)
depth_blur     pixels    depth blurred by a Gaussian of standard deviation ``level``, so
                         objects' and background's depths bleed into each other at their edges
depth_noise    fraction  depth times ``1 + level * n``, ``n`` standard normal per pixel
mask           pixels    every object mask dilated (``level > 0``) or eroded (``level < 0``)
                         by ``|level|`` steps of a 3x3 square
box_center     fraction  every 3D box moved along the floor by ``level`` times its largest
                         extent, in a random direction
box_size       fraction  every 3D box scaled by ``1 + level`` or ``1 - level`` (random), its
                         lowest point kept on its height
box_yaw        degrees   every 3D box turned by ``+level`` or ``-level`` degrees (random) about
                         the vertical through its centre
=============  ========  ====================================================================

A box's error is drawn once per asset and applied to every frame, as one wrong lift would be.
The mask and box perturbations take ``assets``, the ids of the assets to change (default: every
asset).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, fields

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import geometry
from ..errors import ConfigError, ValidationError
from ..scene import Asset, Camera, Scene


def scale_depth(scene: Scene, level: float, generator: torch.Generator | None = None) -> Scene:
    """A copy whose depth maps are ``level`` times the scene's."""
    return _with_depth(scene, lambda depth: depth * level)


def blur_depth(scene: Scene, level: float, generator: torch.Generator | None = None) -> Scene:
    """A copy whose depth maps are blurred by a Gaussian of standard deviation ``level`` pixels."""
    if level <= 0:
        return scene.copy()
    size = 2 * math.ceil(3 * level) + 1
    return _with_depth(scene, lambda depth: kornia.filters.gaussian_blur2d(
        depth[:, None], (size, size), (level, level), border_type="replicate")[:, 0])


def noisy_depth(scene: Scene, level: float, generator: torch.Generator | None = None) -> Scene:
    """A copy whose depth maps are multiplied per pixel by ``1 + level * n``, ``n`` standard normal (from ``generator``)."""
    return _with_depth(scene, lambda depth: depth * (1 + level * torch.randn(depth.shape, generator=generator)))


def _with_depth(scene: Scene, change: Callable[[torch.Tensor], torch.Tensor]) -> Scene:
    out = scene.copy()
    if out.depth is not None:
        out.depth = change(out.depth.float()).clamp(min=0)
    return out


def grow_masks(scene: Scene, level: float, generator: torch.Generator | None = None,
               assets: Collection[int] | None = None) -> Scene:
    """A copy whose object masks (of ``assets``, default all) are dilated by ``level`` 3x3 steps (eroded for a negative level).

    Raises:
        ValidationError: ``level`` is not a whole number.
    """
    if level != round(level):
        raise ValidationError(f"mask: expected a whole number of pixels, got {level}")
    steps = int(round(level))
    out = scene.copy()
    for asset in _chosen(out, assets):
        if asset.masks is None or steps == 0:
            continue
        masks = asset.masks[:, None].float()
        for _ in range(abs(steps)):
            # Erosion is the dilation of the outside.
            masks = F.max_pool2d(masks if steps > 0 else 1 - masks, 3, stride=1, padding=1)
            masks = masks if steps > 0 else 1 - masks
        asset.masks = masks[:, 0] > 0.5
    return out


#: One asset's box error: (centers (T, 3), sizes (T, 3), rotations (T, 3, 3)) -> the same, changed.
BoxChange = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]


def move_boxes(scene: Scene, level: float, generator: torch.Generator | None = None,
               assets: Collection[int] | None = None) -> Scene:
    """A copy whose 3D boxes (of ``assets``, default all) are moved along the floor by ``level`` times their largest extent.

    Each box moves in a random direction.
    """
    def draw(asset: Asset) -> BoxChange:
        angle = float(torch.rand((), generator=generator)) * 2 * math.pi
        shift = torch.tensor([math.cos(angle), math.sin(angle), 0.0]) * (level * float(asset.sizes.max()))
        return lambda centers, sizes, rotations: (centers + shift, sizes, rotations)

    return _change_boxes(scene, assets, draw)


def scale_boxes(scene: Scene, level: float, generator: torch.Generator | None = None,
                assets: Collection[int] | None = None) -> Scene:
    """A copy whose 3D boxes (of ``assets``, default all) are scaled by ``1 + level`` or ``1 - level``, lowest points kept.

    The sign is drawn per asset.
    """
    def draw(asset: Asset) -> BoxChange:
        factor = 1 + level * _random_sign(generator)

        def change(centers: Tensor, sizes: Tensor, rotations: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            scaled = sizes * factor
            # The lowest corner sits 0.5 * sum_j |R[2, j]| * size_j below the centre (as edits.scale keeps it).
            lift = 0.5 * (rotations[:, 2, :].abs() * (scaled - sizes)).sum(-1)
            return centers + torch.stack([torch.zeros_like(lift), torch.zeros_like(lift), lift], -1), scaled, rotations

        return change

    return _change_boxes(scene, assets, draw)


def turn_boxes(scene: Scene, level: float, generator: torch.Generator | None = None,
               assets: Collection[int] | None = None) -> Scene:
    """A copy whose 3D boxes (of ``assets``, default all) are turned by ``level`` degrees about the vertical.

    Which way is drawn per asset.
    """
    def draw(asset: Asset) -> BoxChange:
        yaw = torch.tensor(math.radians(level) * _random_sign(generator))
        turn = geometry.euler_to_matrix(yaw, torch.tensor(0.0), torch.tensor(0.0))
        return lambda centers, sizes, rotations: (centers, sizes, turn @ rotations)

    return _change_boxes(scene, assets, draw)


def _change_boxes(scene: Scene, assets: Collection[int] | None, draw: Callable[[Asset], BoxChange]) -> Scene:
    """A copy with each chosen asset's error (``draw(asset)``, drawn in asset order) applied to its box in every frame.

    The boxes its photos show (``Asset.observed_poses``, kept by an edit that changed a pose or
    a camera) carry the same error, as what the wrong lift saw: each is lifted to the world
    through its frame's camera (the camera that took the photo unless an edit moved it),
    changed and seen again.
    """
    out = scene.copy()
    for asset in _chosen(out, assets):
        change = draw(asset)
        asset.centers, asset.sizes, asset.rotations = change(asset.centers, asset.sizes, asset.rotations)
        if asset.observed_poses is not None:
            asset.observed_poses = torch.stack([_changed_pose(pose, camera, change)
                                                for pose, camera in zip(asset.observed_poses, out.cameras)])
    return out


def _changed_pose(pose: Tensor, camera: Camera, change: BoxChange) -> Tensor:
    """(12,) pose numbers of the box ``pose`` shows to ``camera``, after ``change``."""
    box = geometry.box_from_pose_features(pose, camera.K, camera.R, camera.t, camera.width, camera.height)
    center, size, rotation = (x[0] for x in change(*(x[None] for x in box)))
    return geometry.pose_features(center, size, rotation, camera.K, camera.R, camera.t, camera.width, camera.height)


def _chosen(scene: Scene, assets: Collection[int] | None) -> list[Asset]:
    return scene.assets if assets is None else [a for a in scene.assets if a.id in assets]


def _random_sign(generator: torch.Generator | None) -> float:
    return 1.0 if float(torch.rand((), generator=generator)) < 0.5 else -1.0


@dataclass(frozen=True)
class Perturbation:
    """One kind of noise: its function, the unit of its level, the level that changes nothing and the levels a sweep uses."""

    apply: Callable[..., Scene]  # (scene, level, generator) -> scene; the mask and box kinds also take ``assets``
    unit: str
    clean: float
    levels: tuple[float, ...]


#: Every kind of noise by name (see the module docstring), with the levels of a robustness sweep.
PERTURBATIONS: dict[str, Perturbation] = {
    "depth_scale": Perturbation(scale_depth, "factor", 1.0, (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2)),
    "depth_blur": Perturbation(blur_depth, "pixels", 0.0, (0.0, 1.0, 2.0, 4.0)),
    "depth_noise": Perturbation(noisy_depth, "fraction", 0.0, (0.0, 0.02, 0.05, 0.1)),
    "mask": Perturbation(grow_masks, "pixels", 0.0, (-2.0, -1.0, 0.0, 1.0, 2.0)),
    "box_center": Perturbation(move_boxes, "fraction of extent", 0.0, (0.0, 0.1, 0.2, 0.4)),
    "box_size": Perturbation(scale_boxes, "fraction", 0.0, (0.0, 0.1, 0.2, 0.4)),
    "box_yaw": Perturbation(turn_boxes, "degrees", 0.0, (0.0, 10.0, 20.0, 40.0)),
}


@dataclass(frozen=True)
class GeometryNoise:
    """Noise on a training pair's input geometry (:func:`perturb_geometry`); the defaults change nothing.

    A pair is perturbed with ``probability``; a perturbed pair draws one level of every kind,
    uniformly from its range, and every kind whose level is not the clean one is applied, in
    the order of :data:`PERTURBATIONS`. Ranges are ``(low, high)``; a single number is the
    largest level of a kind whose function draws the direction or sign itself, its level
    drawn from ``[0, number]``.

    Raises:
        ConfigError: a range with low above high, a depth scale at or below 0, a negative
            level, a mask range that is not whole numbers or a probability outside [0, 1].
    """

    probability: float = 1.0  # share of pairs perturbed; the others keep the exact geometry
    depth_scale: tuple[float, float] = (1.0, 1.0)  # range of the factor the depth is multiplied by
    depth_blur: tuple[float, float] = (0.0, 0.0)  # range of the depth blur's standard deviation, pixels
    depth_noise: float = 0.0  # largest per-pixel relative depth noise (the standard deviation of 1 + level * n)
    mask: tuple[int, int] = (0, 0)  # range of whole 3x3 steps the object masks grow by (negative: they shrink)
    box_center: float = 0.0  # largest move of a 3D box along the floor, as a fraction of its largest extent
    box_size: float = 0.0  # largest relative change of a 3D box's size (larger or smaller, drawn per object)
    box_yaw: float = 0.0  # largest turn of a 3D box about the vertical, degrees (either way, drawn per object)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            numbers = value if isinstance(value, tuple) else (value,)
            if (isinstance(value, tuple) and len(value) != 2) or not all(_is_number(v) for v in numbers):
                shape = "a range [low, high] of numbers" if isinstance(f.default, tuple) else "a number"
                raise ConfigError(f"geometry_noise.{f.name}: expected {shape}, got {value!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise ConfigError(f"geometry_noise.probability: expected 0..1, got {self.probability}")
        for name in ("depth_scale", "depth_blur", "mask"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ConfigError(f"geometry_noise.{name}: expected a range (low, high) with low <= high, got {(low, high)}")
        if self.depth_scale[0] <= 0:
            raise ConfigError(f"geometry_noise.depth_scale: factors must be above 0, got {tuple(self.depth_scale)}")
        if any(low != int(low) for low in self.mask):
            raise ConfigError(f"geometry_noise.mask: expected whole numbers of pixels, got {tuple(self.mask)}")
        for name in ("depth_blur", "depth_noise", "box_center", "box_size", "box_yaw"):
            value = getattr(self, name)
            if (min(value) if isinstance(value, tuple) else value) < 0:
                raise ConfigError(f"geometry_noise.{name}: expected levels >= 0, got {value}")
        if self.box_size >= 1:
            raise ConfigError(f"geometry_noise.box_size: expected below 1 (a box cannot shrink to nothing), got {self.box_size}")

    def draw(self, generator: torch.Generator) -> dict[str, float]:
        """{kind: level} for one pair: empty when it stays exact, else every kind whose drawn level changes something."""
        # every number is drawn whatever the ranges, so one config's draws do not shift another's
        chosen = float(torch.rand((), generator=generator)) < self.probability
        u = torch.rand(6, generator=generator).tolist()
        steps = int(torch.randint(int(self.mask[0]), int(self.mask[1]) + 1, (), generator=generator))
        if not chosen:
            return {}
        levels = {
            "depth_scale": _between(self.depth_scale, u[0]),
            "depth_blur": _between(self.depth_blur, u[1]),
            "depth_noise": self.depth_noise * u[2],
            "mask": float(steps),
            "box_center": self.box_center * u[3],
            "box_size": self.box_size * u[4],
            "box_yaw": self.box_yaw * u[5],
        }
        return {kind: level for kind, level in levels.items() if level != PERTURBATIONS[kind].clean}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _between(bounds: tuple[float, float], u: float) -> float:
    low, high = bounds
    return low + (high - low) * u


def perturb_geometry(scene: Scene, noise: GeometryNoise, generator: torch.Generator) -> Scene:
    """``scene`` with the geometry noise :meth:`GeometryNoise.draw` gives it: a copy, or ``scene`` itself when it stays exact.

    Depth is changed in every frame. Masks and boxes change only for assets whose appearance is
    one of the scene's own frames: an asset that takes it from another photo (inserted,
    transferred, swapped: ``asset.appearance``) brings that photo's mask, depth and pose, and
    an error in its box here would show in no photo the model is given.

    Args:
        scene: a pair's scene (source and target frames).
        noise: the ranges.
        generator: the draws (levels, then each perturbation's own).
    """
    lifted = [a.id for a in scene.assets if a.appearance is None]
    for kind, level in noise.draw(generator).items():
        if kind.startswith("depth"):
            scene = PERTURBATIONS[kind].apply(scene, level, generator)
        else:
            scene = PERTURBATIONS[kind].apply(scene, level, generator, assets=lifted)
    return scene


def parse_perturbation(text: str) -> tuple[str, float]:
    """``"KIND=LEVEL"`` -> (kind, level).

    Raises:
        ValidationError: not of that form, an unknown kind or a level that is not a number.
    """
    kind, sep, value = text.partition("=")
    kind = kind.strip()
    if not sep or kind not in PERTURBATIONS:
        raise ValidationError(f"--perturb: expected KIND=LEVEL with KIND one of {', '.join(PERTURBATIONS)}, got {text!r}")
    try:
        level = float(value)
    except ValueError:
        raise ValidationError(f"--perturb {kind}: the level must be a number, got {value!r}") from None
    if not math.isfinite(level) or (kind == "depth_scale" and level <= 0):
        raise ValidationError(f"--perturb {kind}: expected a finite level{' above 0' if kind == 'depth_scale' else ''}, "
                              f"got {value!r}")
    return kind, level


__all__ = ["PERTURBATIONS", "GeometryNoise", "Perturbation", "blur_depth", "grow_masks", "move_boxes", "noisy_depth",
           "parse_perturbation", "perturb_geometry", "scale_boxes", "scale_depth", "turn_boxes"]

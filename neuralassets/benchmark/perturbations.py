"""Noise on a scene's geometry, for the benchmark's robustness curves (``neuralassets bench --inputs perturbed``).

Each perturbation is a pure function ``(scene, level, generator) -> scene`` on an unedited
scene's own depth, masks or 3D boxes (its frames and cameras stay). The benchmark applies it to
a case's source scene (and the donor video's) *before* the case's edit is applied to them
(:class:`~neuralassets.benchmark.inputs.PerturbedInputs`), so an edit starts from the wrong box
as a user's would and its target box carries the same error. Level 0 (1 for ``depth_scale``)
changes nothing.

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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F

from .. import geometry
from ..errors import ValidationError
from ..scene import Scene


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


def grow_masks(scene: Scene, level: float, generator: torch.Generator | None = None) -> Scene:
    """A copy whose object masks are dilated by ``level`` 3x3 steps (eroded for a negative level).

    Raises:
        ValidationError: ``level`` is not a whole number.
    """
    if level != round(level):
        raise ValidationError(f"mask: expected a whole number of pixels, got {level}")
    steps = int(round(level))
    out = scene.copy()
    for asset in out.assets:
        if asset.masks is None or steps == 0:
            continue
        masks = asset.masks[:, None].float()
        for _ in range(abs(steps)):
            # Erosion is the dilation of the outside.
            masks = F.max_pool2d(masks if steps > 0 else 1 - masks, 3, stride=1, padding=1)
            masks = masks if steps > 0 else 1 - masks
        asset.masks = masks[:, 0] > 0.5
    return out


def move_boxes(scene: Scene, level: float, generator: torch.Generator | None = None) -> Scene:
    """A copy whose 3D boxes are moved along the floor by ``level`` times their largest extent, each in a random direction."""
    out = scene.copy()
    for asset in out.assets:
        angle = float(torch.rand((), generator=generator)) * 2 * math.pi
        distance = level * float(asset.sizes.max())
        asset.centers = asset.centers + torch.tensor([math.cos(angle), math.sin(angle), 0.0]) * distance
    return out


def scale_boxes(scene: Scene, level: float, generator: torch.Generator | None = None) -> Scene:
    """A copy whose 3D boxes are scaled by ``1 + level`` or ``1 - level`` (random sign per asset), lowest points kept."""
    out = scene.copy()
    for asset in out.assets:
        factor = 1 + level * _random_sign(generator)
        sizes = asset.sizes * factor
        # The lowest corner sits 0.5 * sum_j |R[2, j]| * size_j below the centre (as edits.scale keeps it).
        lift = 0.5 * (asset.rotations[:, 2, :].abs() * (sizes - asset.sizes)).sum(-1)
        asset.centers = asset.centers + torch.stack([torch.zeros_like(lift), torch.zeros_like(lift), lift], -1)
        asset.sizes = sizes
    return out


def turn_boxes(scene: Scene, level: float, generator: torch.Generator | None = None) -> Scene:
    """A copy whose 3D boxes are turned by ``level`` degrees, one way or the other (random per asset), about the vertical."""
    out = scene.copy()
    for asset in out.assets:
        yaw = torch.tensor(math.radians(level) * _random_sign(generator))
        turn = geometry.euler_to_matrix(yaw, torch.tensor(0.0), torch.tensor(0.0))
        asset.rotations = turn @ asset.rotations
    return out


def _random_sign(generator: torch.Generator | None) -> float:
    return 1.0 if float(torch.rand((), generator=generator)) < 0.5 else -1.0


@dataclass(frozen=True)
class Perturbation:
    """One kind of noise: its function, the unit of its level, the level that changes nothing and the levels a sweep uses."""

    apply: Callable[[Scene, float, torch.Generator | None], Scene]
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


__all__ = ["PERTURBATIONS", "Perturbation", "blur_depth", "grow_masks", "move_boxes", "noisy_depth", "parse_perturbation",
           "scale_boxes", "scale_depth", "turn_boxes"]

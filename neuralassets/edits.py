"""Edits: pure functions from a :class:`~neuralassets.scene.Scene` to a new Scene.

Every edit returns a new scene and leaves its input untouched. Object edits (move,
rotate, scale) change 3D poses at a selection of frames; ``frames=None`` means every
frame, an int or a list of ints selects frames (negative indices count from the end).
Appearance edits (insert, transfer, swap) change where an asset's looks come from, and
background and camera edits change what the rest of the image is made from. The
observed ``frames``, 2D boxes, visibility and masks are never changed: they describe the
images appearance is taken from, not the edited scene.

Units follow the library: metres and radians in the Python API (the command line takes
degrees). Every edit appends an :class:`Edit` record (op name + JSON arguments) to
``scene.metadata["edits"]``, so an edit history can be saved with :func:`save_edits`,
loaded with :func:`load_edits` and replayed on a scene with :func:`apply_edits`. Edits
that take another scene record it by name; replay looks the name up in ``others``.

Example:
    >>> import torch
    >>> from neuralassets import Asset, Camera, Scene
    >>> cam = Camera.look_at([0.0, -4.0, 2.0], [0.0, 0.0, 0.25], 50.0, 32, 32)
    >>> cube = Asset(1, "cube", centers=torch.tensor([[0.0, 0.0, 0.25]]), sizes=torch.full((1, 3), 0.5),
    ...              rotations=torch.eye(3)[None], boxes_2d=torch.zeros(1, 4), visibility=torch.ones(1))
    >>> scene = Scene(torch.zeros(1, 3, 32, 32), [cam], [cube])
    >>> moved = move(scene, 1, (0.3, 0.0, 0.0))
    >>> moved.asset(1).centers[0].tolist(), scene.asset(1).centers[0].tolist()
    ([0.30000001192092896, 0.0, 0.25], [0.0, 0.0, 0.25])
    >>> [e.op for e in history(moved)]
    ['move']
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import numbers
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import geometry
from .errors import NeuralAssetsError, ValidationError
from .jsonio import read_json
from .scene import AppearanceSource, Asset, Background, Camera, Scene, describe_value

#: Version of the edit-list JSON file written by :func:`save_edits`.
EDITS_FORMAT_VERSION = 1

#: Asset attributes that describe what an object looks like: the synthetic renderer's
#: shape, colours, texture and shininess, and colour or material names. Appearance edits
#: move them with the appearance; sizes belong to the pose and stay.
APPEARANCE_ATTRIBUTES = ("shape", "rgb", "rgb2", "texture", "texture_scale", "texture_seed", "specular", "color", "material")

#: Frame selection: None (every frame), one index, or a sequence of indices.
FrameSelection = int | Sequence[int] | None

#: How a placement check reports an object moved behind the camera or out of view.
CHECK_MODES = ("error", "warn", "ignore")

# Two boxes must overlap by more than this (metres) to count as interpenetrating, so
# objects resting on each other or on the same spot of the floor edge do not warn.
_CONTACT_TOLERANCE = 1e-3
# Corners closer to the camera plane than this (metres) make the pose tokens meaningless.
_NEAR_PLANE = 1e-3


class EditWarning(UserWarning):
    """An edit produced a scene that is valid but probably not what was meant (overlap, off-screen)."""


class OutOfViewError(ValidationError):
    """An edit would leave an asset behind the camera or out of view.

    Attributes:
        problem: which asset and where, without the advice on allowing it (which depends on
            the caller: ``check_visibility='warn'`` here, a flag on the command line).
    """

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}; pass check_visibility='warn' to allow it")
        self.problem = problem


@dataclass
class Edit:
    """One step of an edit history.

    Attributes:
        op: name of the edit function in :data:`OPS`, e.g. ``"move"``.
        args: its keyword arguments as JSON values (lists for vectors, scene names for
            other scenes); the scene being edited is not part of it.
    """

    op: str
    args: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """``{"op": ..., "args": {...}}``, JSON-serialisable."""
        return {"op": self.op, "args": json.loads(json.dumps(self.args))}

    @classmethod
    def from_dict(cls, entry: Any, where: str = "edit") -> Edit:
        """Parse ``{"op": name, "args": {...}}``; raises :class:`ValidationError` naming ``where``."""
        if isinstance(entry, Edit):
            return entry
        if not isinstance(entry, Mapping) or not isinstance(entry.get("op"), str):
            raise ValidationError(f"{where}: expected an object with an 'op' name and 'args', got {entry!r}")
        if entry["op"] not in OPS:
            raise ValidationError(f"{where}: unknown op {entry['op']!r} (known: {', '.join(sorted(OPS))})")
        args = entry.get("args", {})
        if not isinstance(args, Mapping):
            raise ValidationError(f"{where} ({entry['op']}): 'args' must be an object, got {args!r}")
        return cls(entry["op"], dict(args))


# --------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------

def _frame_list(scene: Scene, frames: FrameSelection, name: str = "frames") -> list[int]:
    """Sorted distinct non-negative frame indices selected by ``frames``."""
    T = scene.num_frames
    if frames is None:
        return list(range(T))
    expected = f"expected None (every frame), a frame index or a list of frame indices (integers in [{-T}, {T}))"
    if hasattr(frames, "tolist"):  # tensors, numpy arrays and numpy integers
        frames = frames.tolist()
    if isinstance(frames, (str, bytes, Mapping)):  # iterable, but not a list of frames
        raise ValidationError(f"{name}: {expected}, got {describe_value(frames)}")
    items = [frames] if isinstance(frames, int) else frames
    try:
        items = list(items)
    except TypeError:
        raise ValidationError(f"{name}: {expected}, got {describe_value(frames)}") from None
    if not items:
        raise ValidationError(f"{name}: the selection is empty")
    out = set()
    for f in items:
        if isinstance(f, bool) or not isinstance(f, int):
            raise ValidationError(f"{name}: {describe_value(f)} is not a frame index; {expected}")
        if not -T <= f < T:
            raise ValidationError(f"{name}: {f} is not a frame index in [{-T}, {T})")
        out.add(f % T)
    return sorted(out)


def _single_frame(scene: Scene, frame: int, name: str = "frame") -> int:
    if isinstance(frame, bool) or not isinstance(frame, int):
        raise ValidationError(f"{name}: expected one frame index (an integer), got {describe_value(frame)}")
    return _frame_list(scene, frame, name)[0]


def _vector(value: Any, length: int, name: str) -> Tensor:
    """``value`` (a flat list of ``length`` numbers, a 1-D tensor or array, or one number when
    ``length`` is 1) as a (length,) float tensor of finite numbers.

    Nested lists (``[[0.1], [0], [0]]``) and booleans are refused rather than flattened or counted as 0 and 1.
    """
    expected = "one number" if length == 1 else f"{length} numbers"
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # tensors and numpy arrays
        kind = "bool" if "bool" in str(value.dtype) else "nested" if value.ndim > 1 else None
        if kind:
            raise ValidationError(f"{name}: expected {expected}, got a {kind} array {value.tolist()!r}")
        value = value.tolist()
    if length == 1 and _is_number(value):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValidationError(f"{name}: expected {expected}, got {describe_value(value)}")
    for x in value:
        if not _is_number(x):
            what = "a nested list" if isinstance(x, (list, tuple)) else describe_value(x)
            raise ValidationError(f"{name}: expected {expected}, got {value!r} (an entry is {what})")
    if len(value) != length:
        raise ValidationError(f"{name}: expected {expected}, got {len(value)} ({value!r})")
    v = torch.tensor([float(x) for x in value], dtype=torch.float32)
    if not bool(torch.isfinite(v).all()):
        raise ValidationError(f"{name}: expected finite numbers, got {v.tolist()}")
    return v


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _number(value: Any, name: str) -> float:
    return float(_vector(value, 1, name)[0])


def _check_mode(check_visibility: str) -> str:
    if check_visibility not in CHECK_MODES:
        raise ValidationError(f"check_visibility: expected one of {CHECK_MODES}, got {check_visibility!r}")
    return check_visibility


# --------------------------------------------------------------------------------------
# Placement checks
# --------------------------------------------------------------------------------------

def out_of_view(asset: Asset, scene: Scene, frames: list[int]) -> list[tuple[int, str]]:
    """(frame, reason) for each frame where the asset's box is behind the camera or wholly outside the image."""
    problems = []
    for f in frames:
        cam = scene.cameras[f]
        uv, depth = geometry.project_box(asset.centers[f], asset.sizes[f], asset.rotations[f], cam.K, cam.R, cam.t)
        if bool((depth <= _NEAR_PLANE).any()):
            problems.append((f, "behind the camera"))
            continue
        lo, hi = uv.amin(dim=0), uv.amax(dim=0)
        if hi[0] <= 0 or hi[1] <= 0 or lo[0] >= cam.width or lo[1] >= cam.height:
            problems.append((f, f"outside the {cam.width}x{cam.height} view"))
    return problems


def boxes_overlap(a: Asset, b: Asset, frames: list[int]) -> Tensor:
    """(F,) bool: do the oriented boxes of ``a`` and ``b`` interpenetrate at each frame (separating-axis test)."""
    idx = torch.tensor(frames)
    Ra, Rb = a.rotations[idx], b.rotations[idx]  # columns are the box axes in the world
    ha, hb = a.sizes[idx] / 2, b.sizes[idx] / 2
    d = b.centers[idx] - a.centers[idx]
    axes_a, axes_b = Ra.transpose(-1, -2), Rb.transpose(-1, -2)  # (F, 3, 3), one axis per row
    cross = torch.linalg.cross(axes_a[:, :, None, :].expand(-1, 3, 3, 3), axes_b[:, None, :, :].expand(-1, 3, 3, 3))
    axes = torch.cat([axes_a, axes_b, cross.reshape(-1, 9, 3)], dim=1)  # (F, 15, 3)
    norm = axes.norm(dim=-1, keepdim=True)
    usable = norm.squeeze(-1) > 1e-6  # parallel edges give no cross-product axis
    axes = axes / norm.clamp(min=1e-6)
    radius_a = (torch.einsum("fkj,fij->fki", axes, axes_a).abs() * ha[:, None, :]).sum(-1)
    radius_b = (torch.einsum("fkj,fij->fki", axes, axes_b).abs() * hb[:, None, :]).sum(-1)
    distance = torch.einsum("fkj,fj->fk", axes, d).abs()
    separated = usable & (distance >= radius_a + radius_b - _CONTACT_TOLERANCE)
    return ~separated.any(dim=-1)


def _warn(message: str) -> None:
    """Issue an :class:`EditWarning` attributed to the first caller outside this module."""
    level, frame = 1, inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        level, frame = level + 1, frame.f_back
    warnings.warn(message, EditWarning, stacklevel=level)


def _check_placement(before: Scene | None, after: Scene, asset_id: int, frames: list[int], check_visibility: str) -> None:
    """Report an asset newly out of view (error or warning) or newly interpenetrating another (warning).

    Frames where the asset was already out of view before the edit are not reported;
    with ``before=None`` (an inserted asset) every frame is checked.
    """
    asset = after.asset(asset_id)
    if check_visibility != "ignore":
        was_out = set() if before is None else {f for f, _ in out_of_view(before.asset(asset_id), before, frames)}
        problems = [(f, why) for f, why in out_of_view(asset, after, frames) if f not in was_out]
        if problems:
            listed = ", ".join(f"frame {f}: {why}" for f, why in problems[:5]) + (" ..." if len(problems) > 5 else "")
            message = f"asset {asset_id} ({asset.name}) would be out of view ({listed})"
            if check_visibility == "error":
                raise OutOfViewError(message)
            _warn(message)
    clashes = []
    for other in after.assets:
        if other.id == asset_id:
            continue
        now = boxes_overlap(asset, other, frames)
        if before is not None:
            now &= ~boxes_overlap(before.asset(asset_id), before.asset(other.id), frames)
        hit = [f for f, c in zip(frames, now.tolist()) if c]
        if hit:
            clashes.append(f"asset {other.id} ({other.name}) at frames {hit[:5]}{' ...' if len(hit) > 5 else ''}")
    if clashes:
        _warn(f"asset {asset_id} ({asset.name}) now interpenetrates " + "; ".join(clashes))


# --------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------

def _scene_name(scene: Scene, name: str | None) -> str:
    """The name an other-scene argument is recorded under: ``other_name``, else ``metadata["name"]``, else "other"."""
    if name is not None:
        return str(name)
    return str(scene.metadata.get("name") or "other")


def _to_json(value: Any) -> Any:
    if hasattr(value, "tolist"):  # tensors, numpy arrays and numpy scalars
        return value.tolist()
    if isinstance(value, Camera):
        return {"K": value.K.tolist(), "R": value.R.tolist(), "t": value.t.tolist(), "width": value.width, "height": value.height}
    if isinstance(value, (list, tuple, range)):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value


def _recorded(fn: Callable[..., Scene]) -> Callable[..., Scene]:
    """Make ``fn`` append an :class:`Edit` with its JSON arguments to the result's ``metadata["edits"]``.

    A Scene argument named ``other_scene`` is recorded by name (see :func:`_scene_name`)
    and the ``other_name`` argument folds into it.
    """
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(scene: Scene, *args: Any, **kwargs: Any) -> Scene:
        out = fn(scene, *args, **kwargs)
        bound = signature.bind(scene, *args, **kwargs)
        bound.apply_defaults()
        record = dict(list(bound.arguments.items())[1:])
        if "other_scene" in record:
            record["other_scene"] = _scene_name(record["other_scene"], record.pop("other_name"))
        edits = out.metadata.get("edits")
        out.metadata["edits"] = (list(edits) if isinstance(edits, list) else []) + [Edit(fn.__name__, _to_json(record)).to_dict()]
        return out

    return wrapper


def history(scene: Scene) -> list[Edit]:
    """The edits recorded in ``scene.metadata["edits"]``, oldest first."""
    return [Edit.from_dict(e, f"metadata.edits[{i}]") for i, e in enumerate(scene.metadata.get("edits") or [])]


# --------------------------------------------------------------------------------------
# Object poses
# --------------------------------------------------------------------------------------

def _floor_axes(camera: Camera) -> tuple[Tensor, Tensor]:
    """Unit floor directions (3,) for "right" and "away" as the camera sees them."""
    right = camera.R[0] * torch.tensor([1.0, 1.0, 0.0])
    # forward minus image-down points away from the camera even when it looks straight down
    away = (camera.R[2] - camera.R[1]) * torch.tensor([1.0, 1.0, 0.0])
    return right / right.norm().clamp(min=1e-9), away / away.norm().clamp(min=1e-9)


def _with_poses(scene: Scene, asset_id: int, frames: list[int], centers: Tensor | None = None,
                sizes: Tensor | None = None, rotations: Tensor | None = None) -> Scene:
    """A copy of ``scene`` whose asset has the given (F, ...) poses at ``frames``, the photos' poses kept (:meth:`Asset.observe`)."""
    out = scene.copy()
    asset = out.asset(asset_id)
    asset.observe(out.cameras)
    if centers is not None:
        asset.centers[frames] = centers
    if sizes is not None:
        asset.sizes[frames] = sizes
    if rotations is not None:
        asset.rotations[frames] = rotations
    return out


def _translate(scene: Scene, asset_id: int, deltas: Tensor, frames: list[int], check_visibility: str) -> Scene:
    out = _with_poses(scene, asset_id, frames, centers=scene.asset(asset_id).centers[frames] + deltas)
    _check_placement(scene, out, asset_id, frames, check_visibility)
    return out


@_recorded
def move(scene: Scene, asset_id: int, delta: Sequence[float] | Tensor, frames: FrameSelection = None,
         frame_of_reference: str = "world", check_visibility: str = "error") -> Scene:
    """Translate an asset.

    Args:
        scene: the scene; not modified.
        asset_id: the asset to move.
        delta: metres. ``"world"``: (dx, dy, dz) in world axes. ``"floor"``: (dx, dy) along
            the world floor axes, height kept. ``"camera"``: (right, away) along the floor as
            each edited frame's camera sees it, height kept.
        frames: frames to move it at (None = every frame).
        frame_of_reference: ``"world"``, ``"floor"`` or ``"camera"``.
        check_visibility: ``"error"`` (default) raises if the asset ends up behind the camera
            or wholly outside the image at an edited frame where it was in view; ``"warn"``
            warns instead; ``"ignore"`` skips the check.

    Returns:
        A new scene. Interpenetrating another asset only warns (:class:`EditWarning`).
    """
    scene.asset(asset_id)
    idx, mode = _frame_list(scene, frames), _check_mode(check_visibility)
    if frame_of_reference == "world":
        deltas = _vector(delta, 3, "delta").expand(len(idx), 3)
    elif frame_of_reference == "floor":
        deltas = torch.cat([_vector(delta, 2, "delta"), torch.zeros(1)]).expand(len(idx), 3)
    elif frame_of_reference == "camera":
        d = _vector(delta, 2, "delta")
        deltas = torch.stack([d[0] * r + d[1] * a for r, a in (_floor_axes(scene.cameras[f]) for f in idx)])
    else:
        raise ValidationError(f"frame_of_reference: expected 'world', 'floor' or 'camera', got {frame_of_reference!r}")
    return _translate(scene, asset_id, deltas, idx, mode)


@_recorded
def move_in_image(scene: Scene, asset_id: int, frame: int, from_uv: Sequence[float] | Tensor, to_uv: Sequence[float] | Tensor,
                  frames: FrameSelection = None, check_visibility: str = "error") -> Scene:
    """Move an asset along the floor by an image-plane drag seen in ``frame``.

    Both pixels are cast through ``frame``'s camera onto the horizontal plane at the
    asset's base height (its lowest corner at ``frame``); the asset moves by the
    difference of the two hits, so the point under ``from_uv`` ends under ``to_uv``.

    Args:
        scene: the scene; not modified.
        asset_id: the asset to drag.
        frame: frame whose camera the drag is seen in.
        from_uv, to_uv: (2,) pixel coordinates (u right, v down; top-left pixel centre 0.5, 0.5).
        frames: frames to move it at (None = every frame), all by the same world offset.
        check_visibility: as in :func:`move`.

    Raises:
        ValidationError: a pixel's ray does not meet the plane (at or above the horizon).
    """
    asset = scene.asset(asset_id)
    f = _single_frame(scene, frame)
    idx, mode = _frame_list(scene, frames), _check_mode(check_visibility)
    uv = torch.stack([_vector(from_uv, 2, "from_uv"), _vector(to_uv, 2, "to_uv")])
    base = float(asset.box(f).corners()[:, 2].min())
    cam = scene.cameras[f]
    points, hit = geometry.ground_intersection(uv, cam.K, cam.R, cam.t, height=base)
    for name, ok, p in zip(("from_uv", "to_uv"), hit.tolist(), uv.tolist()):
        if not ok:
            raise ValidationError(f"{name}: the ray through pixel {p} does not meet the plane z = {base:.3g} m "
                                  f"(the asset's base at frame {f}); pick a pixel below the horizon")
    delta = points[1] - points[0]
    delta[2] = 0.0  # both hits lie on the plane; drop rounding
    return _translate(scene, asset_id, delta.expand(len(idx), 3), idx, mode)


@_recorded
def rotate(scene: Scene, asset_id: int, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
           frames: FrameSelection = None, check_visibility: str = "error") -> Scene:
    """Rotate an asset about its box centre.

    The new rotation is ``Rz(yaw) Ry(pitch) Rx(roll) @ old``: the turn is applied in world
    axes after the current orientation, so ``yaw`` spins the object about the world up axis.

    Args:
        scene: the scene; not modified.
        asset_id: the asset to rotate.
        yaw, pitch, roll: radians.
        frames: frames to rotate it at (None = every frame).
        check_visibility: as in :func:`move`.
    """
    scene.asset(asset_id)
    idx, mode = _frame_list(scene, frames), _check_mode(check_visibility)
    turn = geometry.euler_to_matrix(*(torch.tensor(_number(v, n)) for v, n in ((yaw, "yaw"), (pitch, "pitch"), (roll, "roll"))))
    out = _with_poses(scene, asset_id, idx, rotations=turn @ scene.asset(asset_id).rotations[idx])
    _check_placement(scene, out, asset_id, idx, mode)
    return out


@_recorded
def scale(scene: Scene, asset_id: int, factor: float | Sequence[float], frames: FrameSelection = None,
          keep_on_floor: bool = True, check_visibility: str = "error") -> Scene:
    """Scale an asset's box about its centre.

    Args:
        scene: the scene; not modified.
        asset_id: the asset to scale.
        factor: one positive number, or three for the box's own x, y, z axes.
        frames: frames to scale it at (None = every frame).
        keep_on_floor: keep the height of the box's lowest point, so an object resting on
            the floor stays on it; otherwise the centre stays put.
        check_visibility: as in :func:`move`.
    """
    asset = scene.asset(asset_id)
    idx, mode = _frame_list(scene, frames), _check_mode(check_visibility)
    count = len(factor) if isinstance(factor, (list, tuple)) or getattr(factor, "ndim", 0) == 1 else 1
    f = _vector(factor, 1 if count == 1 else 3, "factor").expand(3)
    if bool((f <= 0).any()):
        raise ValidationError(f"factor: every scale factor must be positive, got {f.tolist()}")
    sizes = asset.sizes[idx] * f
    centers = asset.centers[idx].clone()
    if keep_on_floor:
        # The lowest corner sits 0.5 * sum_j |R[2, j]| * size_j below the centre.
        up_reach = asset.rotations[idx][:, 2, :].abs()
        centers[:, 2] += 0.5 * (up_reach * (sizes - asset.sizes[idx])).sum(-1)
    out = _with_poses(scene, asset_id, idx, centers=centers, sizes=sizes)
    _check_placement(scene, out, asset_id, idx, mode)
    return out


# --------------------------------------------------------------------------------------
# Objects in and out, appearance
# --------------------------------------------------------------------------------------

def photo_appearance(scene: Scene, asset: Asset) -> AppearanceSource:
    """Where ``asset`` takes its looks from, as an image, box and pose independent of ``scene``.

    That is a copy of its own :class:`~neuralassets.scene.AppearanceSource`, or else its
    source frame with its box, pose, mask and depth there.
    """
    if asset.appearance is not None:
        return copy.deepcopy(asset.appearance)
    f = asset.source_frame
    return AppearanceSource(scene.frames[f].clone(), asset.boxes_2d[f].clone(), asset.photo_pose(f, scene.cameras[f]),
                            None if asset.masks is None else asset.masks[f].clone(),
                            None if scene.depth is None else scene.depth[f].clone())


def _looks(asset: Asset) -> dict:
    return {k: v for k, v in asset.attributes.items() if k in APPEARANCE_ATTRIBUTES}


def _dress(target: Asset, appearance: AppearanceSource, donor: Asset) -> None:
    """Give ``target`` (in place; a copy owned by the caller) the appearance, name, category and looks of ``donor``."""
    target.appearance = appearance
    target.name, target.category = donor.name, donor.category
    kept = {k: v for k, v in target.attributes.items() if k not in APPEARANCE_ATTRIBUTES}
    target.attributes = {**kept, **copy.deepcopy(_looks(donor))}


@_recorded
def remove(scene: Scene, asset_id: int) -> Scene:
    """Remove an asset.

    Every frame's photo still shows it, so its box in every frame is kept in
    :attr:`Scene.removed_boxes` (NaN where it is not seen) and renders leave it out of their
    background photo, whichever frame that is; an explicit background that is its source frame
    gets that frame's box added.
    """
    asset = scene.asset(asset_id)
    out = scene.copy()
    out.assets = [a for a in out.assets if a.id != asset_id]
    seen = asset.visibility > 0
    if not bool(seen.any()):
        return out  # not seen in this scene's frames (e.g. inserted): nothing to hide
    boxes = torch.where(seen[:, None], asset.boxes_2d, torch.full_like(asset.boxes_2d, float("nan")))[None]
    out.removed_boxes = boxes if out.removed_boxes is None else torch.cat([out.removed_boxes, boxes])
    f = asset.source_frame
    if (out.background is not None and 0 <= f < scene.num_frames and out.background.image.shape == scene.frames[f].shape
            and torch.equal(out.background.image, scene.frames[f])):
        out.background.object_boxes = torch.cat([out.background.object_boxes, asset.boxes_2d[f][None]])
    return out


@_recorded
def insert(scene: Scene, other_scene: Scene, other_asset_id: int, floor_xy: Sequence[float] | None = None,
           yaw: float | None = None, new_id: int | None = None, other_name: str | None = None,
           check_visibility: str = "error") -> Scene:
    """Insert an asset of another scene.

    The asset keeps its trajectory when both scenes have the same number of frames, and
    otherwise holds its pose at its source frame still for every frame of ``scene``. Its
    appearance is carried as an :class:`AppearanceSource` (the other scene's source frame
    and its box there), and its name, category and attributes come with it.

    Args:
        scene: the scene to insert into; not modified.
        other_scene: the scene the asset comes from.
        other_asset_id: its id there.
        floor_xy: (2,) metres; moves the trajectory along the floor so the asset stands at
            this point at its source frame (default: where it was).
        yaw: radians; turns the trajectory about the source-frame centre so the asset's
            heading there (:func:`neuralassets.geometry.yaw_of`) becomes ``yaw``.
        new_id: id in ``scene`` (default :meth:`Scene.next_asset_id`).
        other_name: the name ``other_scene`` is recorded under in the edit history
            (default its ``metadata["name"]``, else ``"other"``); see :func:`apply_edits`.
        check_visibility: as in :func:`move`, checked at every frame.
    """
    donor = other_scene.asset(other_asset_id)
    mode = _check_mode(check_visibility)
    if new_id is None:
        new_id = scene.next_asset_id()
    if isinstance(new_id, bool) or not isinstance(new_id, int) or new_id < 1 or new_id in scene.asset_ids:
        raise ValidationError(f"new_id: expected an unused id >= 1, got {new_id!r} (ids in use: {scene.asset_ids})")
    T = scene.num_frames
    ref = min(max(donor.source_frame, 0), other_scene.num_frames - 1)
    if other_scene.num_frames == T:
        centers, sizes, rotations = donor.centers.clone(), donor.sizes.clone(), donor.rotations.clone()
    else:
        centers, sizes, rotations = (x[ref].expand(T, *x.shape[1:]).clone() for x in (donor.centers, donor.sizes, donor.rotations))
    pivot = donor.centers[ref]
    if yaw is not None:
        turn = geometry.euler_to_matrix(torch.tensor(_number(yaw, "yaw")) - geometry.yaw_of(donor.rotations[ref]),
                                        torch.tensor(0.0), torch.tensor(0.0))
        centers = (centers - pivot) @ turn.T + pivot
        rotations = turn @ rotations
    if floor_xy is not None:
        centers[:, :2] += _vector(floor_xy, 2, "floor_xy") - pivot[:2]
    asset = Asset(new_id, donor.name, centers, sizes, rotations, boxes_2d=torch.zeros(T, 4), visibility=torch.zeros(T),
                  category=donor.category, attributes=copy.deepcopy(donor.attributes))
    asset.appearance = photo_appearance(other_scene, donor)
    out = scene.copy()
    out += asset
    _check_placement(None, out, new_id, list(range(T)), mode)
    return out


@_recorded
def swap_appearance(scene: Scene, id_a: int, id_b: int) -> Scene:
    """Two assets trade appearance and keep their poses.

    Appearance is what an object looks like: its appearance source (image + box), name,
    category and the :data:`APPEARANCE_ATTRIBUTES` (shape, colour, texture). Sizes belong
    to the pose and stay, so each asset is rendered with the other's looks in its own box.
    """
    a, b = scene.asset(id_a), scene.asset(id_b)
    if id_a == id_b:
        raise ValidationError(f"id_b: swapping asset {id_a} with itself does nothing; give two different ids")
    out = scene.copy()
    _dress(out.asset(id_a), photo_appearance(scene, b), b)
    _dress(out.asset(id_b), photo_appearance(scene, a), a)
    return out


@_recorded
def transfer(scene: Scene, asset_id: int, other_scene: Scene, other_asset_id: int, other_name: str | None = None) -> Scene:
    """Give an asset the appearance of another scene's asset, keeping its own poses.

    Args:
        scene: the scene; not modified.
        asset_id: the asset whose looks change.
        other_scene, other_asset_id: where the looks come from (appearance source, name,
            category and :data:`APPEARANCE_ATTRIBUTES`, as in :func:`swap_appearance`).
        other_name: name recorded for ``other_scene`` in the edit history (see :func:`insert`).
    """
    scene.asset(asset_id)
    donor = other_scene.asset(other_asset_id)
    out = scene.copy()
    _dress(out.asset(asset_id), photo_appearance(other_scene, donor), donor)
    return out


@_recorded
def swap_background(scene: Scene, other_scene: Scene, frame: int = 0, other_name: str | None = None,
                    view_frame: int = 0) -> Scene:
    """Use another scene's frame as this scene's background.

    Sets ``scene.background`` to the other scene's frame image, with its objects' boxes
    greyed out, seen from this scene's camera at ``view_frame``, and its renderer parameters
    (``other_scene.metadata["renderer"]``) as attributes so the synthetic renderer can
    draw it. The other scene's own camera is not used: it lives in that video's world
    frame, so the motion from it to this scene's cameras would be meaningless (and far
    outside the camera motions a model is trained on). Rendering frame ``t`` then moves
    the new background by this scene's camera motion from ``view_frame`` to ``t``.

    Args:
        scene: the scene; not modified.
        other_scene: where the background comes from.
        frame: the frame of ``other_scene`` to take.
        other_name: name recorded for ``other_scene`` in the edit history (see :func:`insert`).
        view_frame: the frame of ``scene`` whose camera the new background is seen from
            (use the frame appearance comes from; 0 for a frame pair).
    """
    f = _single_frame(other_scene, frame)
    v = _single_frame(scene, view_frame, "view_frame")
    boxes = torch.stack([a.boxes_2d[f] for a in other_scene.assets]) if other_scene.assets else torch.zeros(0, 4)
    out = scene.copy()
    out.background = Background(other_scene.frames[f].clone(), copy.deepcopy(scene.cameras[v]), boxes.clone(),
                                copy.deepcopy(other_scene.metadata.get("renderer") or {}), shows_scene=False)
    return out


# --------------------------------------------------------------------------------------
# Cameras
# --------------------------------------------------------------------------------------

def _before_camera_change(scene: Scene) -> Scene:
    """A copy of ``scene`` whose assets keep their photos' poses (:meth:`Asset.observe`): a camera is about to change."""
    out = scene.copy()
    for asset in out.assets:
        asset.observe(out.cameras)
    return out


@_recorded
def set_camera(scene: Scene, frame: int, camera: Camera | Mapping) -> Scene:
    """Replace the camera of one frame.

    Args:
        scene: the scene; not modified.
        frame: frame index.
        camera: a :class:`Camera` of the scene's image size, or its fields as a mapping
            (``K``, ``R``, ``t``, ``width``, ``height``; how the edit history stores it).
    """
    f = _single_frame(scene, frame)
    if isinstance(camera, Mapping):
        try:
            camera = Camera(**camera)
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValidationError(f"camera: expected the fields K, R, t, width, height ({e})") from None
    if not isinstance(camera, Camera):
        raise ValidationError(f"camera: expected a Camera, got {type(camera).__name__}")
    camera.validate("camera")
    if (camera.width, camera.height) != (scene.width, scene.height):
        raise ValidationError(f"camera: image size {camera.width}x{camera.height} does not match the scene's {scene.width}x{scene.height}")
    out = _before_camera_change(scene)
    out.cameras[f] = copy.deepcopy(camera)
    return out


@_recorded
def move_camera(scene: Scene, frames: FrameSelection, eye: Sequence[float] | None = None,
                target: Sequence[float] | None = None) -> Scene:
    """Place the cameras of some frames at ``eye`` looking at ``target`` (world metres, z up).

    Leaving ``eye`` out keeps each camera's position; leaving ``target`` out keeps its
    viewing direction. Intrinsics are kept; the new cameras have no roll.

    Args:
        scene: the scene; not modified.
        frames: frames whose camera moves (None = every frame).
        eye: (3,) camera position in metres.
        target: (3,) point the optical axis passes through.
    """
    idx = _frame_list(scene, frames)
    if eye is None and target is None:
        raise ValidationError("move_camera: give eye, target or both")
    eye_v = None if eye is None else _vector(eye, 3, "eye")
    target_v = None if target is None else _vector(target, 3, "target")
    out = _before_camera_change(scene)
    for f in idx:
        cam = scene.cameras[f]
        e = cam.center if eye_v is None else eye_v
        look = e + cam.R[2] if target_v is None else target_v
        forward = look - e
        if float(forward.norm()) < 1e-6:
            raise ValidationError(f"target: the camera at frame {f} would look at its own position {e.tolist()}")
        if float(torch.linalg.cross(forward / forward.norm(), torch.tensor([0.0, 0.0, 1.0])).norm()) < 1e-6:
            raise ValidationError(f"target: the camera at frame {f} would look straight up or down, leaving its roll undefined")
        R, t = geometry.look_at(e, look)
        out.cameras[f] = Camera(cam.K.clone(), R, t, cam.width, cam.height)
    return out


# --------------------------------------------------------------------------------------
# Replay and files
# --------------------------------------------------------------------------------------

#: Every recorded edit, by the name an :class:`Edit` stores.
OPS: dict[str, Callable[..., Scene]] = {fn.__name__: fn for fn in (
    move, move_in_image, rotate, scale, remove, insert, swap_appearance, transfer, swap_background, set_camera, move_camera)}


def apply_edits(scene: Scene, edits: Iterable[Edit | Mapping], others: Mapping[str, Scene] | None = None) -> Scene:
    """Replay an edit list on ``scene``.

    Args:
        scene: the scene to edit; not modified.
        edits: :class:`Edit` records or their dicts (``{"op": ..., "args": {...}}``), e.g.
            from :func:`load_edits` or another scene's :func:`history`.
        others: scenes that edits refer to by name (the ``other_scene`` argument of
            insert, transfer and swap_background).

    Returns:
        The edited scene, whose history gains each replayed edit.

    Raises:
        ValidationError: an unknown op, missing or unexpected arguments, or an unknown
            other scene; the message names the entry index. Errors raised by an edit
            itself keep their type and gain the same prefix.
    """
    others = dict(others or {})
    for i, entry in enumerate(edits):
        where = f"edits[{i}]"
        edit = Edit.from_dict(entry, where)
        fn = OPS[edit.op]
        args = dict(edit.args)
        if "other_scene" in args:
            name = args["other_scene"]
            if not isinstance(name, str) or name not in others:
                raise ValidationError(f"{where} ({edit.op}): needs the scene named {name!r}; pass it in others= "
                                      f"(given: {sorted(others) or 'none'})")
            args["other_scene"], args["other_name"] = others[name], name
        try:
            inspect.signature(fn).bind(scene, **args)
        except TypeError as e:
            params = [p for p in inspect.signature(fn).parameters if p not in ("scene", "other_name")]
            raise ValidationError(f"{where} ({edit.op}): bad arguments ({e}); it takes {params}") from None
        try:
            scene = fn(scene, **args)
        except OutOfViewError as e:
            raise OutOfViewError(f"{where} ({edit.op}): {e.problem}") from e
        except NeuralAssetsError as e:
            raise type(e)(f"{where} ({edit.op}): {e}") from e
    return scene


def save_edits(path: str | os.PathLike, edits: Scene | Iterable[Edit | Mapping]) -> Path:
    """Write an edit list (or a scene's history) as JSON; returns the path.

    The file is ``{"format_version": 1, "edits": [{"op": ..., "args": {...}}, ...]}``.
    """
    items = history(edits) if isinstance(edits, Scene) else [Edit.from_dict(e, f"edits[{i}]") for i, e in enumerate(edits)]
    path = Path(path)
    path.write_text(json.dumps({"format_version": EDITS_FORMAT_VERSION, "edits": [e.to_dict() for e in items]}, indent=1))
    return path


def load_edits(path: str | os.PathLike) -> list[Edit]:
    """Read an edit list written by :func:`save_edits` (a bare JSON list of edits is accepted too).

    Raises:
        ValidationError: the file is missing or not JSON, its version is unknown, or an
            entry is malformed or names an unknown op (the message names the entry index).
    """
    path = Path(path)
    data = read_json(path, ValidationError, "edit list file not found")
    if isinstance(data, Mapping):
        version = data.get("format_version")
        if version != EDITS_FORMAT_VERSION:
            raise ValidationError(f"{path}: format_version {version!r} is not supported (expected {EDITS_FORMAT_VERSION})")
        data = data.get("edits")
    if not isinstance(data, list):
        raise ValidationError(f"{path}: expected a list of edits under 'edits'")
    return [Edit.from_dict(e, f"{path}: edits[{i}]") for i, e in enumerate(data)]


__all__ = [
    "APPEARANCE_ATTRIBUTES", "EDITS_FORMAT_VERSION", "OPS", "Edit", "EditWarning", "OutOfViewError", "apply_edits", "history",
    "insert", "load_edits", "move", "move_camera", "move_in_image", "remove", "rotate", "save_edits", "scale", "set_camera",
    "swap_appearance", "swap_background", "transfer",
]

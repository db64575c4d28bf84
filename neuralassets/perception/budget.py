"""Fitting a scene's objects into a model's object slots instead of refusing the scene.

A model renders at most ``max_objects`` objects; real footage often yields more. The edited
objects are always kept; the other slots go to the most salient objects (large on screen,
seen for long, near the camera) and the rest are *folded into the background*: they leave
the scene's asset list, so their pixels stay in the background photo (the source frame's
pixels outside the kept objects' boxes) and render as background rather than as objects
of their own.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ValidationError
from ..scene import Scene

#: Edit arguments that name the asset an edit changes.
_EDITED_ARGUMENTS = ("asset_id", "id_a", "id_b")


class SlotWarning(UserWarning):
    """Some objects of a scene were folded into the background to fit the model's object slots."""


@dataclass
class SlotFit:
    """What :func:`fit_to_slots` did.

    Attributes:
        scene: the scene with at most ``slots`` assets (the input itself when it fitted).
        kept: ids of the assets kept, in the scene's order.
        folded: ids of the assets folded into the background, most salient first.
        message: one sentence saying so ("" when nothing was folded).
    """

    scene: Scene
    kept: list[int]
    folded: list[int]
    message: str


def edited_asset_ids(scene: Scene) -> list[int]:
    """Ids of the scene's assets that its edit history names, or that carry an appearance from elsewhere
    (inserted, transferred, swapped), in the scene's order."""
    named = set()
    for edit in scene.metadata.get("edits") or []:
        args = edit.get("args", {}) if isinstance(edit, dict) else {}
        named.update(int(args[k]) for k in _EDITED_ARGUMENTS if isinstance(args.get(k), int))
    return [a.id for a in scene.assets if a.id in named or a.appearance is not None]


def salience(scene: Scene, frame: int) -> Tensor:
    """How much each asset matters to a viewer of ``frame``, from its size on screen, lifetime and nearness.

    Each cue is turned into a rank in [0, 1] over the scene's assets (so no cue's units
    dominate) and the three ranks are averaged: the mean area of its 2D box over the frames
    it is seen in, the share of frames it is seen in, and its closeness to ``frame``'s camera.

    Args:
        scene: a Scene with N assets.
        frame: the frame about to be rendered.

    Returns:
        (N,) float in [0, 1]; higher is more salient.
    """
    N = len(scene)
    if N == 0:
        return torch.zeros(0)
    seen = torch.stack([a.visibility > 0 for a in scene.assets]).float()  # (N, T)
    box_area = torch.stack([(a.boxes_2d[:, 2:] - a.boxes_2d[:, :2]).clamp(min=0).prod(-1) for a in scene.assets])
    area = (box_area * seen).sum(1) / seen.sum(1).clamp(min=1)
    lifetime = seen.mean(1)
    camera = scene.cameras[frame].center
    nearness = -torch.stack([(a.centers[frame] - camera).norm() for a in scene.assets])
    return (_rank(area) + _rank(lifetime) + _rank(nearness)) / 3


def _rank(values: Tensor) -> Tensor:
    """(N,) values → (N,) ranks in [0, 1], 1 for the largest; ties share their mean rank."""
    if len(values) == 1:
        return torch.ones(1)
    below = (values[None, :] < values[:, None]).sum(1).float()
    ties = (values[None, :] == values[:, None]).sum(1).float() - 1
    return (below + ties / 2) / (len(values) - 1)


def fit_to_slots(scene: Scene, slots: int, frame: int = 0, keep: list[int] | None = None) -> SlotFit:
    """Keep at most ``slots`` objects: the edited ones and the most salient others; fold the rest into the background.

    The input scene is not changed. When objects are folded, a :class:`SlotWarning` says
    which (once per call) and ``metadata["folded_into_background"]`` of the returned scene
    lists their ids.

    Args:
        scene: the scene about to be rendered.
        slots: the model's object slots (``max_objects``), >= 1.
        frame: the frame about to be rendered (nearness is measured from its camera).
        keep: ids that must stay (default: :func:`edited_asset_ids`).

    Returns:
        A :class:`SlotFit`.

    Raises:
        ValidationError: ``slots`` < 1, an id of ``keep`` is not in the scene, or more
            objects must stay than there are slots.
    """
    if slots < 1:
        raise ValidationError(f"fit_to_slots: slots must be >= 1, got {slots}")
    if not 0 <= frame < scene.num_frames:
        raise ValidationError(f"fit_to_slots: frame {frame} is not a frame index in [0, {scene.num_frames})")
    keep = edited_asset_ids(scene) if keep is None else [int(i) for i in keep]
    unknown = [i for i in keep if i not in scene.asset_ids]
    if unknown:
        raise ValidationError(f"fit_to_slots: asset ids {unknown} are not in the scene (ids: {scene.asset_ids})")
    if len(scene) <= slots:
        return SlotFit(scene, scene.asset_ids, [], "")
    if len(set(keep)) > slots:
        raise ValidationError(f"{len(set(keep))} objects are edited but the model has {slots} object slots; "
                              f"render the edits in groups of at most {slots}")
    score = salience(scene, frame)
    others = sorted((i for i, a in enumerate(scene.assets) if a.id not in keep), key=lambda i: (-float(score[i]), i))
    chosen = {scene.assets[i].id for i in others[:slots - len(set(keep))]} | set(keep)
    folded = [scene.assets[i].id for i in others[slots - len(set(keep)):]]
    out = scene.copy()
    out.assets = [a for a in out.assets if a.id in chosen]
    out.metadata["folded_into_background"] = folded
    edited = f"the {len(set(keep))} edited and " if keep else ""
    message = (f"the scene has {len(scene)} objects and the model {slots} object slots: kept {edited}the "
               f"{slots - len(set(keep))} most salient (large, long seen, near), and drew objects "
               f"{', '.join(map(str, folded))} as part of the background")
    warnings.warn(message, SlotWarning, stacklevel=2)
    return SlotFit(out, out.asset_ids, folded, message)


__all__ = ["SlotFit", "SlotWarning", "edited_asset_ids", "fit_to_slots", "salience"]

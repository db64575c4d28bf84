"""One benchmark case: an edited two-frame scene, its exact ground truth and its region.

Methods see only what an editing user has: the source frame, the scenes' poses and
cameras, and where each object's appearance comes from. :func:`blind_target` makes sure
frame 1 of every scene a method receives carries the target poses and camera but none of
the target's pixels, masks, depth or 2D boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from ..scene import Scene


@dataclass
class Case:
    """An edit to evaluate.

    Attributes:
        task: task name, e.g. ``"translation"``.
        index: position of the case in its task (cases are numbered per task from 0).
        seed: generator seed of the video the source frame comes from.
        scene: the edited scene, two frames: 0 = source (its pixels are the input),
            1 = target (poses, camera, appearance sources and background after the edit;
            its pixels, masks, depth, 2D boxes and visibility repeat frame 0's).
        original: the same two frames before the edit, blinded the same way.
        target: (3, H, W) float in [0, 1], frame 1 of ``scene`` rendered exactly.
        edited_ids: ids (in ``scene``, or in ``original`` for removed assets) of the assets the edit changed.
        region: (H, W) bool, union of the edited assets' projected 3D boxes in source and target.
        origins: for every asset id of ``scene``, the scene and asset id its appearance is
            taken from at that scene's frame 0 (``original`` for the scene's own objects, another
            video for inserted ones, the partner for an appearance swap).
        params: the edit's parameters (JSON-serialisable), for the report and for debugging.
        donor: the other video's still (frame 0 = its source frame, blinded) that an insertion,
            transfer or background swap takes from; None for the other tasks.
        exact: for a case whose inputs are not the generator's own (extracted or perturbed, see
            :mod:`~neuralassets.benchmark.inputs`), the exact case it was made from; None otherwise.
            Scoring reads ``target`` and ``region`` (copied from it) and :attr:`truth`.
        failed: why the edit could not be applied to these inputs (an edited object that
            extraction did not find, a target the estimated floor cannot hold), or None. Methods
            are not asked to render a failed case; its fallback, the source frame, is scored.
    """

    task: str
    index: int
    seed: int
    scene: Scene
    original: Scene
    target: Tensor
    edited_ids: list[int]
    region: Tensor
    origins: dict[int, tuple[Scene, int]]
    params: dict = field(default_factory=dict)
    donor: Scene | None = None
    exact: Case | None = None
    failed: str | None = None

    @property
    def source(self) -> Tensor:
        """(3, H, W) float in [0, 1], the source frame."""
        return self.original.frames[0]

    @property
    def truth(self) -> Case:
        """The case with the generator's exact inputs: :attr:`exact`, or this case itself."""
        return self.exact if self.exact is not None else self


def blind_target(scene: Scene) -> Scene:
    """A copy of a two-frame scene whose frame 1 observations repeat frame 0's.

    Poses, sizes, rotations and cameras of frame 1 are kept; frame 1's pixels, depth,
    masks, 2D boxes and visibility become copies of frame 0's, so nothing derived from the
    target image reaches a method.

    Args:
        scene: a scene with two frames (source, target).

    Returns:
        A new scene; ``scene`` is unchanged.
    """
    out = scene.copy()
    out.frames[1] = out.frames[0]
    if out.depth is not None:
        out.depth[1] = out.depth[0]
    for asset in out.assets:
        asset.boxes_2d[1] = asset.boxes_2d[0]
        asset.visibility[1] = asset.visibility[0]
        if asset.masks is not None:
            asset.masks[1] = asset.masks[0]
    return out

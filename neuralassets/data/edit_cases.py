"""Edit cases: edited two-frame scenes with their exact ground truth, built deterministically from generated videos.

The benchmark scores methods on them (test and validation seeds) and the edit-pair training
data learns from them (training seeds).

Case ``i`` of every task starts from the video of seed ``seeds[i]`` (and, for tasks that
bring something from another scene, the video of ``seeds[(i + 1) % n]``). A per-(task,
seed) random generator picks the source frame, the object(s) and the edit's size, so a
case depends only on its task, its seed and the generator config. Edits go through
:mod:`neuralassets.edits` exactly as a user's would; the ground truth is the generator's
exact re-render of the edited scene's target frame.

Methods see only what an editing user has: the source frame, the scenes' poses and
cameras, and where each object's appearance comes from. :func:`blind_target` makes sure
frame 1 of every scene a method receives carries the target poses and camera but none of
the target's pixels, masks, depth or 2D boxes.

Tasks (see :data:`TASKS`):

==============  =====================================================================
novel_pose      the same video, another frame (the paper's reconstruction protocol)
translation     one object moved along the floor by 1-3 times its footprint
rotation        one object turned: yaw 30-180 degrees; asymmetric shapes (L-block, mug)
                half the time pitched or rolled 30-90 degrees instead, kept on the floor
scale           one object scaled by 0.6-0.85 or 1.2-1.6, kept on the floor
removal         one object removed
insertion       an object of another video placed at a free spot of the floor
transfer        an object takes the appearance of an object of another video
swap            two objects trade appearance
background      the background (backdrop and floor) of another video
camera          the target camera orbits the scene by 10-40 degrees
multi_object    three objects each moved, rotated or scaled at once
compound        four edits of different kinds at once: one object moved, another turned,
                a third removed, and the moved one trading looks with a fourth (or with
                the turned one in a three-object scene)
==============  =====================================================================
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .. import edits, geometry
from ..errors import NeuralAssetsError, ValidationError
from ..metrics import region_mask
from ..scene import Scene
from .renderer import render
from .synthetic import GeneratorConfig, generate_scene, generator_config, select_frames

MIN_SOURCE_VISIBILITY = 0.3  # an edited object must be at least this visible in the source frame
MAX_TRIES = 30  # parameter draws per case before the case is given up as impossible
ASYMMETRIC_SHAPES = ("l_block", "mug")  # shapes whose pitch or roll changes how they look
MIN_VISIBLE_CHANGE = 0.05  # an edit must change at least this fraction of its region's pixels
CHANGE_THRESHOLD = 4 / 255  # by more than this, in some channel

#: Tasks that take something from another video (the case's ``donor``).
DONOR_TASKS = ("insertion", "transfer", "background")
TASKS = ("novel_pose", "translation", "rotation", "scale", "removal", "insertion", "transfer", "swap",
         "background", "camera", "multi_object", "compound")


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
            :mod:`neuralassets.benchmark.inputs`), the exact case it was made from; None otherwise.
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


@dataclass
class TaskConfig:
    """What cases are made of.

    Attributes:
        seeds: generator seeds of the source videos, in case order.
        generator_overrides: :class:`~neuralassets.data.GeneratorConfig` fields to change
            (e.g. ``{"num_objects": 6}``) for cases nobody tuned on.
    """

    seeds: Sequence[int]
    generator_overrides: dict = field(default_factory=dict)


class UnusableDraw(Exception):
    """This parameter draw gives an unusable edit; draw again."""


def visible_ids(scene: Scene, frame: int = 0) -> list[int]:
    """Ids of the assets at least :data:`MIN_SOURCE_VISIBILITY` visible at ``frame``: those an edit may pick."""
    return [a.id for a in scene.assets if float(a.visibility[frame]) >= MIN_SOURCE_VISIBILITY]


def _strict(edit: Callable[..., Scene], *args, **kwargs) -> Scene:
    """Apply an edit, turning "out of view" errors and interpenetration warnings into a redraw."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", edits.EditWarning)
        try:
            return edit(*args, **kwargs)
        except (ValidationError, edits.EditWarning) as e:
            raise UnusableDraw(str(e)) from None


def in_view(scene: Scene, asset_ids: Sequence[int], frame: int = 1, margin: float = 0.0) -> bool:
    """Whether the assets' projected boxes lie inside the image (shrunk by ``margin`` of its size) at ``frame``."""
    cam = scene.cameras[frame]
    for asset_id in asset_ids:
        a = scene.asset(asset_id)
        uv, depth = geometry.project_box(a.centers[frame], a.sizes[frame], a.rotations[frame], cam.K, cam.R, cam.t)
        lo, hi = uv.amin(0), uv.amax(0)
        mx, my = margin * cam.width, margin * cam.height
        if bool((depth <= 0).any()) or lo[0] < -mx or lo[1] < -my or hi[0] > cam.width + mx or hi[1] > cam.height + my:
            return False
    return True


def _floor_point(scene: Scene, rng: np.random.Generator, frame: int = 1) -> list[float]:
    """A random floor point seen in the lower three quarters of ``frame``'s image."""
    cam = scene.cameras[frame]
    uv = torch.tensor([[rng.uniform(0.15, 0.85) * cam.width, rng.uniform(0.25, 0.9) * cam.height]])
    point, hit = geometry.ground_intersection(uv, cam.K, cam.R, cam.t)
    if not bool(hit[0]):
        raise UnusableDraw("picked a pixel above the horizon")
    return point[0, :2].tolist()


# --------------------------------------------------------------------------------------
# Edits per task: (rng, original, donor) -> (edited, edited ids, region frames, origins, params)
# --------------------------------------------------------------------------------------

@dataclass
class _Edit:
    scene: Scene
    edited_ids: list[int]
    region_frames: tuple[int, ...]
    origins: dict[int, tuple[Scene, int]] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    region_scene: Scene | None = None  # the scene whose poses the region comes from (default: the edited one)


def pick_ids(rng: np.random.Generator, ids: Sequence[int], count: int = 1) -> list[int]:
    """``count`` distinct ids drawn from ``ids``; :class:`UnusableDraw` when there are fewer."""
    if len(ids) < count:
        raise UnusableDraw(f"needs {count} visible objects, has {len(ids)}")
    return [int(i) for i in rng.choice(np.asarray(ids), size=count, replace=False)]


def _translate(rng, scene: Scene, asset_id: int) -> tuple[Scene, dict]:
    footprint = float(scene.asset(asset_id).sizes[1, :2].max())
    distance, angle = rng.uniform(1.0, 3.0) * footprint, rng.uniform(0, 2 * math.pi)
    delta = [distance * math.cos(angle), distance * math.sin(angle)]
    return _strict(edits.move, scene, asset_id, delta, frames=1, frame_of_reference="floor"), {"delta_xy_m": delta}


def _rotate(rng, scene: Scene, asset_id: int) -> tuple[Scene, dict]:
    shape = scene.asset(asset_id).attributes.get("shape")
    if shape in ASYMMETRIC_SHAPES and rng.random() < 0.5:
        axis = "pitch" if rng.random() < 0.5 else "roll"
        angle = float(rng.choice([-1, 1]) * rng.uniform(math.radians(30), math.radians(90)))
        out = _strict(edits.rotate, scene, asset_id, **{axis: angle}, frames=1)
        # Turned about its centre, the box may dip into or float above the floor: rest it on the floor again.
        before = float(scene.asset(asset_id).box(1).corners()[:, 2].min())
        after = float(out.asset(asset_id).box(1).corners()[:, 2].min())
        out = _strict(edits.move, out, asset_id, [0.0, 0.0, before - after], frames=1)
        return out, {axis + "_deg": math.degrees(angle)}
    yaw = float(rng.choice([-1, 1]) * rng.uniform(math.radians(30), math.pi))
    return _strict(edits.rotate, scene, asset_id, yaw=yaw, frames=1), {"yaw_deg": math.degrees(yaw)}


def _scale(rng, scene: Scene, asset_id: int) -> tuple[Scene, dict]:
    factor = float(rng.uniform(0.6, 0.85) if rng.random() < 0.5 else rng.uniform(1.2, 1.6))
    return _strict(edits.scale, scene, asset_id, factor, frames=1), {"factor": factor}


def _single(edit_fn):
    def make(rng, original: Scene, donor: Scene) -> _Edit:
        asset_id = pick_ids(rng, visible_ids(original))[0]
        edited, params = edit_fn(rng, original, asset_id)
        if not in_view(edited, [asset_id]):
            raise UnusableDraw("edited object leaves the image")
        return _Edit(edited, [asset_id], (0, 1), params={"asset_id": asset_id, **params})
    return make


def _novel_pose(rng, original: Scene, donor: Scene) -> _Edit:
    ids = [a.id for a in original.assets if float(a.visibility[0]) > 0]
    return _Edit(original, ids, (0, 1))


def _removal(rng, original: Scene, donor: Scene) -> _Edit:
    asset_id = pick_ids(rng, visible_ids(original))[0]
    return _Edit(_strict(edits.remove, original, asset_id), [asset_id], (0,), params={"asset_id": asset_id},
                 region_scene=original)


def _insertion(rng, original: Scene, donor: Scene) -> _Edit:
    donor_id = pick_ids(rng, visible_ids(donor))[0]
    new_id = original.next_asset_id()
    floor_xy, yaw = _floor_point(original, rng), float(rng.uniform(-math.pi, math.pi))
    edited = _strict(edits.insert, original, donor, donor_id, floor_xy=floor_xy, yaw=yaw, new_id=new_id)
    if not in_view(edited, [new_id]):
        raise UnusableDraw("inserted object is cut by the image border")
    return _Edit(edited, [new_id], (1,), origins={new_id: (donor, donor_id)},
                 params={"donor_asset_id": donor_id, "floor_xy_m": floor_xy, "yaw_deg": math.degrees(yaw)})


def _transfer(rng, original: Scene, donor: Scene) -> _Edit:
    asset_id = pick_ids(rng, visible_ids(original))[0]
    donor_id = pick_ids(rng, visible_ids(donor))[0]
    edited = _strict(edits.transfer, original, asset_id, donor, donor_id)
    return _Edit(edited, [asset_id], (0, 1), origins={asset_id: (donor, donor_id)},
                 params={"asset_id": asset_id, "donor_asset_id": donor_id})


def _looks(scene: Scene, asset_id: int) -> dict:
    attributes = scene.asset(asset_id).attributes
    return {k: attributes.get(k) for k in edits.APPEARANCE_ATTRIBUTES if k in attributes}


def _swap(rng, original: Scene, donor: Scene) -> _Edit:
    a, b = pick_ids(rng, visible_ids(original), 2)
    if _looks(original, a) == _looks(original, b):
        raise UnusableDraw("the two objects look the same")
    edited = _strict(edits.swap_appearance, original, a, b)
    return _Edit(edited, [a, b], (0, 1), origins={a: (original, b), b: (original, a)}, params={"asset_ids": [a, b]})


def _background(rng, original: Scene, donor: Scene) -> _Edit:
    edited = _strict(edits.swap_background, original, donor, frame=0)
    ids = [a.id for a in original.assets if float(a.visibility[0]) > 0]
    return _Edit(edited, ids, (0, 1))


def _camera(rng, original: Scene, donor: Scene) -> _Edit:
    cam = original.cameras[1]
    centre = torch.tensor([[cam.width / 2, cam.height / 2]])
    look, hit = geometry.ground_intersection(centre, cam.K, cam.R, cam.t)
    if not bool(hit[0]):
        raise UnusableDraw("the camera does not look at the floor")
    look = look[0]
    angle = float(rng.choice([-1, 1]) * rng.uniform(math.radians(10), math.radians(40)))
    offset = cam.center - look
    turn = geometry.euler_to_matrix(torch.tensor(angle), torch.tensor(0.0), torch.tensor(0.0))
    eye = look + turn @ offset
    eye[2] = max(0.3, float(eye[2]) * float(rng.uniform(0.8, 1.25)))
    edited = _strict(edits.move_camera, original, 1, eye=eye.tolist(), target=look.tolist())
    ids = [a.id for a in original.assets if float(a.visibility[0]) > 0]
    return _Edit(edited, ids, (0, 1), params={"orbit_deg": math.degrees(angle), "eye_m": eye.tolist()})


def _multi_object(rng, original: Scene, donor: Scene) -> _Edit:
    ids = pick_ids(rng, visible_ids(original), 3)
    scene, params = original, {}
    for asset_id in ids:
        kind = ("translate", "rotate", "scale")[int(rng.integers(3))]
        scene, p = {"translate": _translate, "rotate": _rotate, "scale": _scale}[kind](rng, scene, asset_id)
        params[str(asset_id)] = {"edit": kind, **p}
    if not in_view(scene, ids):
        raise UnusableDraw("an edited object leaves the image")
    return _Edit(scene, ids, (0, 1), params=params)


def _compound(rng, original: Scene, donor: Scene) -> _Edit:
    ids = visible_ids(original)
    moved, turned, removed = pick_ids(rng, ids, 3)
    scene, moved_params = _translate(rng, original, moved)
    scene, turned_params = _rotate(rng, scene, turned)
    others = [i for i in ids if i not in (moved, turned, removed)]
    partner = pick_ids(rng, others)[0] if others else turned
    if _looks(original, moved) == _looks(original, partner):
        raise UnusableDraw("the two objects to swap look the same")
    scene = _strict(edits.swap_appearance, scene, moved, partner)
    if not in_view(scene, [moved, turned]):
        raise UnusableDraw("an edited object leaves the image")
    edited_ids = list(dict.fromkeys([moved, turned, removed, partner]))
    # the region comes from the scene before the removal, which still has the removed object's box
    return _Edit(_strict(edits.remove, scene, removed), edited_ids, (0, 1),
                 origins={moved: (original, partner), partner: (original, moved)},
                 params={"moved": {"asset_id": moved, **moved_params}, "turned": {"asset_id": turned, **turned_params},
                         "removed": removed, "swapped": [moved, partner]}, region_scene=scene)


_MAKERS: dict[str, Callable[[np.random.Generator, Scene, Scene], _Edit]] = {
    "novel_pose": _novel_pose,
    "translation": _single(_translate),
    "rotation": _single(_rotate),
    "scale": _single(_scale),
    "removal": _removal,
    "insertion": _insertion,
    "transfer": _transfer,
    "swap": _swap,
    "background": _background,
    "camera": _camera,
    "multi_object": _multi_object,
    "compound": _compound,
}


# --------------------------------------------------------------------------------------
# Case construction
# --------------------------------------------------------------------------------------

def frame_pair(seed: int, num_frames: int) -> tuple[int, int]:
    """The source frame of every case of ``seed`` and the target frame of its novel-pose case.

    Drawn from the seed alone, so all tasks of a seed share one rendered source frame.
    """
    rng = np.random.default_rng([len(TASKS), int(seed)])
    source = int(rng.integers(num_frames))
    target = int(rng.choice([f for f in range(num_frames) if f != source])) if num_frames > 1 else source
    return source, target


@dataclass
class Video:
    """The two rendered frames of a seed's video that its cases use.

    Attributes:
        still: frames (source, source), blinded: the starting point of every edit task.
        pair: frames (source, novel-pose target), blinded; None when loaded without the novel pose.
        novel_target: (3, H, W) the novel-pose target frame as rendered; None likewise.
        frames: the two frames' indices in the video.
    """

    still: Scene
    pair: Scene | None
    novel_target: Tensor | None
    frames: list[int]


class VideoCache:
    """Each seed's :class:`Video`, keeping the few most recent.

    Case ``i`` uses seed ``i``'s frames and seed ``i + 1``'s as donor, so consecutive cases reuse them.

    Args:
        generator_overrides: :class:`~neuralassets.data.synthetic.GeneratorConfig` fields to change.
        keep: how many videos to hold.
    """

    def __init__(self, generator_overrides: dict | None = None, keep: int = 3):
        self.config = generator_config(generator_overrides)
        self.keep, self._videos = keep, {}

    def __call__(self, seed: int) -> Video:
        if seed not in self._videos:
            self._videos[seed] = load_video(seed, self.config)
            while len(self._videos) > self.keep:
                self._videos.pop(next(iter(self._videos)))
        return self._videos[seed]


def load_video(seed: int, config: GeneratorConfig, novel_pose: bool = True) -> Video:
    """Render the two frames of ``seed``'s video that its cases use (:func:`frame_pair`).

    Args:
        novel_pose: also render the novel-pose target frame; without it only the source
            frame is rendered (half the work), enough for every task but ``novel_pose``.
    """
    frames = list(frame_pair(seed, config.num_frames))
    scene = generate_scene(seed, config, frames=frames if novel_pose else frames[:1])
    still = blind_target(select_frames(scene, [0, 0]))
    if not novel_pose:
        return Video(still, None, None, frames)
    return Video(still, blind_target(scene), scene.frames[1], frames)


def _visible_change(source: Tensor, truth: Tensor, region: Tensor) -> float:
    """Fraction of the region's pixels the edit changes by more than :data:`CHANGE_THRESHOLD`."""
    changed = ((source - truth).abs().amax(dim=0) > CHANGE_THRESHOLD) & region
    return float(changed.sum()) / max(1, int(region.sum()))


def make_case(task: str, index: int, seed: int, video: Video, donor_video: Video) -> Case | None:
    """Build case ``index`` of ``task`` from a video (and a donor video), or None if no draw works.

    Args:
        task: a name from :data:`TASKS`.
        index: the case's number within its task.
        seed: the video's generator seed (with the task, it seeds every random choice).
        video: the seed's frames (see :class:`VideoCache`).
        donor_video: another seed's, for insertion, transfer and background swaps (its source frame is used).

    Returns:
        A :class:`Case`, or None when :data:`MAX_TRIES` draws all gave an impossible or
        invisible edit (a swap in a scene with one visible object, a yaw of a plain sphere).
    """
    if task not in _MAKERS:
        raise ValidationError(f"task: {task!r} is not one of {', '.join(TASKS)}")
    if task == "novel_pose" and video.pair is None:
        raise ValidationError(f"seed {seed}: its video was loaded without the novel-pose frame "
                              "(load_video(..., novel_pose=False)); novel_pose cases need it")
    rng = np.random.default_rng([TASKS.index(task), int(seed)])
    original = video.pair if task == "novel_pose" else video.still
    for _ in range(MAX_TRIES):
        try:
            edit = _MAKERS[task](rng, original, donor_video.still)
        except UnusableDraw:
            continue
        origins = {a.id: (original, a.id) for a in edit.scene.assets}
        origins.update(edit.origins)
        region = region_mask(edit.region_scene or edit.scene, edit.edited_ids, edit.region_frames)
        if not edit.edited_ids or not region.any():
            continue
        if task == "novel_pose":
            truth = video.novel_target
        else:
            try:
                truth = render(edit.scene, frames=[1]).rgb[0]
            except NeuralAssetsError as e:
                raise ValidationError(f"{task} case {index} (seed {seed}): the edited scene cannot be rendered ({e})") from None
            if _visible_change(original.frames[0], truth, region) < MIN_VISIBLE_CHANGE:
                continue
        params = {"source_frame": video.frames[0], **edit.params}
        if task == "novel_pose":
            params["target_frame"] = video.frames[1]
        if task in DONOR_TASKS:
            params["donor_seed"] = int(donor_video.still.metadata["generator"]["seed"])
            params["donor_frame"] = donor_video.frames[0]
        donor = donor_video.still if task in DONOR_TASKS else None
        return Case(task, index, int(seed), edit.scene, original, truth, edit.edited_ids, region, origins, params, donor)
    return None


def iter_cases(config: TaskConfig, tasks: Sequence[str] = TASKS, cases_per_task: int | None = None
               ) -> Iterator[list[Case]]:
    """Cases seed by seed: for each seed, a list with one case per task that could be built.

    Args:
        config: seeds and generator overrides.
        tasks: which tasks.
        cases_per_task: how many seeds to use (default: all of ``config.seeds``).

    Yields:
        For each seed in order, the list of its cases (tasks where no draw worked are skipped).
    """
    unknown = [t for t in tasks if t not in _MAKERS]
    if unknown:
        raise ValidationError(f"tasks: {unknown} are not among {', '.join(TASKS)}")
    seeds = [int(s) for s in config.seeds]
    if not seeds:
        raise ValidationError("seeds: the seed range is empty")
    count = len(seeds) if cases_per_task is None else min(cases_per_task, len(seeds))
    videos = VideoCache(config.generator_overrides)
    for i in range(count):
        video, donor = videos(seeds[i]), videos(seeds[(i + 1) % len(seeds)])
        cases = [make_case(task, i, seeds[i], video, donor) for task in tasks]
        yield [c for c in cases if c is not None]

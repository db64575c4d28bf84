"""What the benchmark's methods are given: the generator's exact scene, an extracted one, or a perturbed one.

A case (:mod:`~neuralassets.data.edit_cases`) is made from the generator's own scene: exact
depth, masks, 2D and 3D boxes and cameras, which no user has. :class:`ExtractedInputs` gives
the methods what a user gets instead: the source frame (and a donor video's) goes through
:func:`~neuralassets.perception.extract`, the extracted assets are matched to the generator's
objects by mask IoU (:func:`match_masks`, Hungarian), and the task's edit is applied to the
matched assets of the extracted scene. :class:`PerturbedInputs` applies documented noise
(:mod:`~neuralassets.data.perturbations`) to the exact scenes and applies the edit the
same way. Either way the render is scored against the same exact re-render, in the same
region, as with exact inputs; every method gets the same inputs.

How an edit carries over (:func:`transfer_edit`)
-----------------------------------------------
The other scene's world frame is not the generator's: without depth, extraction puts the
floor at ``z = 0`` under an assumed camera height and tilt, its yaw and scale are its own, and
its boxes are off. An edit is therefore carried over as what the user asked for, seen in the
source photo, and applied to the matched asset's own box:

- **turn**: a turn about the floor's normal (a yaw, ``R_t R_sᵀ`` about ``z``) is the same turn
  about the other floor's normal, ``E_t = R_t R_sᵀ E_s``, as a user turns an object in its scene
  (carried relative to the camera instead, a yaw would tilt wherever the estimated camera's
  pitch differs from the truth's). Any other turn (a pitch or roll) keeps each object's rotation
  *relative to the camera*: with ``C`` the world-to-camera rotations, truth ``R_s`` (in its
  photo, taken by ``C_s``) -> ``R_t`` (seen by ``C_t``), the matched box ``E_s`` becomes
  ``E_t = C'_tᵀ (C_t R_t)(C_s R_s)ᵀ C'_s E_s``; so does an inserted object, which comes from
  another scene's world;
- **size**: the box's volume changes by the same factor (uniformly; the tasks scale uniformly,
  and the boxes' axes need not correspond);
- **place**: the point under the box's centre at its lowest height (its floor contact) is
  dragged in the source photo from where the truth's was to where the truth's goes, on the
  plane of the matched box's own lowest point (as :func:`~neuralassets.edits.move_in_image`
  drags, so a wrong depth scale moves it by the right number of pixels); an inserted object
  is put on the floor under the pixel where the truth's contact point goes. A height change
  is scaled by the ratio of the two cameras' heights above their floors. A target above
  the other camera's horizon cannot be placed: the case fails;
- **camera**: the target camera moves relative to the source camera as the truth's does,
  its translation scaled by that same ratio of camera heights (an orbit about the floor
  point at the image centre stays that orbit);
- **removal, transfer, swap, background**: the same edit on the matched assets (and the
  donor video's extracted scene); a **compound** edit is its swap and removal so, and its
  move and turn as above;
- **novel pose**: the source and target frames are extracted together; their estimated
  poses and cameras are the inputs (the paper's protocol with estimated boxes).

With the truth's own scene as the other scene, this gives back the exact case's target poses
and camera. An edited object (or a donor's) that extraction did not find (no extracted mask
with IoU of at least :data:`MIN_MATCH_IOU`) fails the case: it is scored with the source
frame as every method's render, and counted per task in the report, never dropped.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Protocol

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from .. import edits, geometry
from ..data.edit_cases import TASKS, Case, blind_target
from ..data.perturbations import PERTURBATIONS
from ..errors import NeuralAssetsError, ValidationError
from ..pipelines.reprojection import same_camera
from ..scene import Box3D, Camera, Scene

#: Mask IoU an extracted asset needs with a ground-truth object to count as that object (the
#: usual detection criterion).
MIN_MATCH_IOU = 0.5
#: How far below 1 a turn's ``R[2, 2]`` may be for it to count as a yaw (1 exactly for a turn about ``z``).
YAW_TOLERANCE = 1e-5


class InapplicableEditError(NeuralAssetsError):
    """A case's edit cannot be applied to other inputs (an edited object has no match, a target no place); the message says why."""


# --------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------

def match_masks(truth: Tensor, found: Tensor, min_iou: float = MIN_MATCH_IOU) -> dict[int, int]:
    """Pair ground-truth masks with found ones by IoU, one to one, maximising the summed IoU (Hungarian).

    Args:
        truth: (N, H, W) bool.
        found: (M, H, W) bool.
        min_iou: pairs with a lower IoU are dropped.

    Returns:
        {truth index: found index} for the kept pairs.
    """
    from ..perception import mask_iou

    if len(truth) == 0 or len(found) == 0:
        return {}
    iou = mask_iou(truth, found)
    rows, cols = linear_sum_assignment(-iou.numpy())
    return {int(r): int(c) for r, c in zip(rows, cols) if float(iou[r, c]) >= min_iou}


def match_assets(truth: Scene, found: Scene, frame: int = 0, min_iou: float = MIN_MATCH_IOU) -> dict[int, int]:
    """{truth asset id: found asset id} by :func:`match_masks` on the assets' masks at ``frame``.

    Assets without masks or not seen at ``frame`` are not matched.
    """
    a = [x for x in truth.assets if x.masks is not None and float(x.visibility[frame]) > 0]
    b = [x for x in found.assets if x.masks is not None]
    if not a or not b:
        return {}
    pairs = match_masks(torch.stack([x.masks[frame] for x in a]), torch.stack([x.masks[frame] for x in b]), min_iou)
    return {a[i].id: b[j].id for i, j in pairs.items()}


# --------------------------------------------------------------------------------------
# Carrying an edit over to another scene of the same photos
# --------------------------------------------------------------------------------------

def _reach(box: Box3D) -> float:
    """Height of a box's centre above its lowest corner."""
    return 0.5 * float((box.rotation[2].abs() * box.size).sum())


def _contact(box: Box3D) -> Tensor:
    """(3,) the point under a box's centre at its lowest corner's height."""
    return box.center - torch.tensor([0.0, 0.0, _reach(box)])


def _floor_hit(camera: Camera, point_uv: Tensor, height: float) -> Tensor:
    points, hit = geometry.ground_intersection(point_uv[None], camera.K, camera.R, camera.t, height=height)
    if not bool(hit[0]):
        raise InapplicableEditError(f"pixel {[round(v, 1) for v in point_uv.tolist()]} lies above the horizon of the inputs' camera")
    return points[0]


def _pixel(camera: Camera, point: Tensor) -> Tensor:
    uv, depth = camera.project(point[None])
    if float(depth[0]) <= 0:
        raise InapplicableEditError("the edit's target lies behind the camera")
    return uv[0]


@dataclasses.dataclass
class _World:
    """The two scenes' source cameras (truth, inputs) and the ratio of their heights above their floors."""

    truth: Camera
    inputs: Camera

    @property
    def scale(self) -> float:
        return float(self.inputs.center[2]) / max(float(self.truth.center[2]), 1e-6)


def _turned(box: Box3D, truth_before: Box3D, truth_after: Box3D, cams_before: tuple[Camera, Camera],
            cams_after: tuple[Camera, Camera]) -> tuple[Tensor, Tensor]:
    """Rotation and size of ``box`` after the truth's change of rotation relative to the camera and of volume.

    ``cams_before`` / ``cams_after``: (truth's, inputs') cameras that see the box before and after.
    """
    relative = (cams_after[0].R @ truth_after.rotation) @ (cams_before[0].R @ truth_before.rotation).T
    rotation = cams_after[1].R.T @ relative @ cams_before[1].R @ box.rotation
    volume = float(truth_after.size.prod() / truth_before.size.prod())
    return rotation, box.size * volume ** (1 / 3)


def _place(scene: Scene, asset_id: int, frames: list[int], box: Box3D) -> Scene:
    """A copy with an asset's box at ``frames`` set to ``box``, the photos' poses kept (:meth:`Asset.observe`)."""
    out = scene.copy()
    asset = out.asset(asset_id)
    asset.observe(out.cameras)
    for f in frames:
        asset.centers[f], asset.sizes[f], asset.rotations[f] = box.center, box.size, box.rotation
    return out


def transfer_edit(truth: Case, original: Scene, donor: Scene | None, matches: dict[int, int],
                  donor_matches: dict[int, int]) -> tuple[Scene, dict[int, tuple[Scene, int]], list[int]]:
    """Apply an exact case's edit to another scene of the same source photo (see the module docstring).

    Args:
        truth: the exact case.
        original: the other scene, two frames (source, target) like ``truth.original``.
        donor: the other scene of ``truth.donor``'s photo, for insertion, transfer and background swaps.
        matches: {truth asset id: ``original`` asset id}.
        donor_matches: {``truth.donor`` asset id: ``donor`` asset id}.

    Returns:
        The edited scene, the origin of each of its assets' appearance (as :attr:`Case.origins`)
        and the ids of the edited assets in it.

    Raises:
        InapplicableEditError: an edited object has no match, or its target cannot be placed.
    """
    def matched(asset_id: int, found: dict[int, int], where: str) -> int:
        if asset_id not in found:
            raise InapplicableEditError(f"{where} object {asset_id} was not found in the inputs")
        return found[asset_id]

    task, params = truth.task, truth.params
    scene = original
    origins: dict[int, tuple[Scene, int]] = {}
    edited = [matches[i] for i in truth.edited_ids if i in matches]
    world = _World(truth.original.cameras[0], original.cameras[0])
    if task == "novel_pose":
        return scene, {a.id: (scene, a.id) for a in scene.assets}, [a.id for a in scene.assets]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", edits.EditWarning)  # the truth's edit may touch another object; so may ours
        if not same_camera(truth.scene.cameras[1], truth.original.cameras[1]):
            scene = edits.set_camera(scene, 1, _camera_after(truth, world))
        if task == "removal":
            scene = edits.remove(scene, matched(params["asset_id"], matches, "removed"))
        elif task == "transfer":
            asset_id = matched(params["asset_id"], matches, "edited")
            donor_id = matched(params["donor_asset_id"], donor_matches, "donor")
            scene = edits.transfer(scene, asset_id, donor, donor_id)
            origins[asset_id] = (donor, donor_id)
        elif task == "swap":
            a, b = (matched(i, matches, "swapped") for i in params["asset_ids"])
            scene = edits.swap_appearance(scene, a, b)
            origins.update({a: (original, b), b: (original, a)})
        elif task == "background":
            scene = edits.swap_background(scene, donor, frame=0)
        elif task == "compound":  # the move and the turn are placed below, with every other changed box
            a, b = (matched(i, matches, "swapped") for i in params["swapped"])
            scene = edits.swap_appearance(scene, a, b)
            origins.update({a: (original, b), b: (original, a)})
            scene = edits.remove(scene, matched(params["removed"], matches, "removed"))
        elif task == "insertion":
            donor_id = matched(params["donor_asset_id"], donor_matches, "donor")
            new_id = scene.next_asset_id()
            edited = [new_id]
            scene = edits.insert(scene, donor, donor_id, new_id=new_id, check_visibility="ignore")
            scene = _place(scene, new_id, list(range(scene.num_frames)),
                           _inserted_box(truth, truth.edited_ids[0], donor, donor_id, scene, world))
            origins[new_id] = (donor, donor_id)
        for truth_asset in truth.scene.assets:
            if truth_asset.id not in truth.original.asset_ids:
                continue  # inserted
            before = truth.original.asset(truth_asset.id)
            if _same_box(before.box(1), truth_asset.box(1)):
                continue
            asset_id = matched(truth_asset.id, matches, "edited")
            scene = _place(scene, asset_id, [1], _moved_box(truth, truth_asset.id, scene, asset_id, world))
    return scene, {**{a.id: (original, a.id) for a in scene.assets}, **origins}, edited


def _same_box(a: Box3D, b: Box3D) -> bool:
    return bool(torch.allclose(a.center, b.center, atol=1e-6) and torch.allclose(a.size, b.size, atol=1e-6)
                and torch.allclose(a.rotation, b.rotation, atol=1e-6))


def _moved_box(truth: Case, truth_id: int, scene: Scene, asset_id: int, world: _World) -> Box3D:
    """The matched asset's box at frame 1 after the truth object's change from the source (frame 0) to frame 1."""
    before, after = truth.original.asset(truth_id).box(0), truth.scene.asset(truth_id).box(1)
    box = scene.asset(asset_id).box(0)
    cams = (truth.original.cameras[0], scene.cameras[0]), (truth.scene.cameras[1], scene.cameras[1])
    rotation, size = _turned(box, before, after, *cams)
    turn = after.rotation @ before.rotation.T
    if float(turn[2, 2]) > 1 - YAW_TOLERANCE:  # a turn about the vertical: the same turn about the other floor's normal
        rotation = turn @ box.rotation
    # The contact point is dragged in the source photo, on the plane of the asset's own lowest point.
    photo = truth.original.cameras[0]
    start, end = _contact(before), _contact(after)
    height = float(_contact(box)[2])
    shift = (_floor_hit(world.inputs, _pixel(photo, end), height + world.scale * float(end[2] - start[2]))
             - _floor_hit(world.inputs, _pixel(photo, start), height))
    return _standing(_contact(box) + shift, size, rotation)


def _standing(contact: Tensor, size: Tensor, rotation: Tensor) -> Box3D:
    """The box of that size and rotation whose lowest point is at the height of ``contact``, right above it."""
    return Box3D(contact + torch.tensor([0.0, 0.0, _reach(Box3D(contact, size, rotation))]), size, rotation)


def _inserted_box(truth: Case, truth_id: int, donor: Scene, donor_id: int, scene: Scene, world: _World) -> Box3D:
    """The box of a donor's asset inserted where the truth inserts its object, turned as the truth's relative to the camera."""
    truth_donor = truth.donor.asset(truth.params["donor_asset_id"])
    before, after = truth_donor.box(0), truth.scene.asset(truth_id).box(1)
    cams = (truth.donor.cameras[0], donor.cameras[0]), (truth.scene.cameras[1], scene.cameras[1])
    rotation, size = _turned(donor.asset(donor_id).box(0), before, after, *cams)
    end = _contact(after)
    return _standing(_floor_hit(world.inputs, _pixel(truth.original.cameras[0], end), world.scale * float(end[2])),
                     size, rotation)


def _camera_after(truth: Case, world: _World) -> Camera:
    """The inputs' target camera: moved from their source camera as the truth's target camera is from its source camera."""
    source, target = truth.original.cameras[0], truth.scene.cameras[1]
    R_rel, t_rel = geometry.relative_pose(source.R, source.t, target.R, target.t)
    ours = world.inputs
    return Camera(target.K.clone(), R_rel @ ours.R, R_rel @ ours.t + world.scale * t_rel, ours.width, ours.height)


# --------------------------------------------------------------------------------------
# Input modes
# --------------------------------------------------------------------------------------

class Inputs(Protocol):
    """An input mode: how a case's inputs are made (``prepare``), named and described for the report."""

    name: str

    def describe(self) -> str: ...

    def prepare(self, case: Case) -> Case: ...


class ExactInputs:
    """The generator's own scenes: exact depth, masks, boxes and cameras (the cases as they are)."""

    name = "exact"

    def describe(self) -> str:
        return "exact: the generator's depth, masks, 2D and 3D boxes and cameras"

    def prepare(self, case: Case) -> Case:
        return case


def _failed(case: Case, reason: str) -> Case:
    return dataclasses.replace(case, exact=case, failed=reason)


def _edited_inputs(case: Case, original: Scene, donor: Scene | None, matches: dict[int, int],
                   donor_matches: dict[int, int]) -> Case:
    """The case with ``original`` (and ``donor``) as its inputs and its edit carried over, or failed."""
    try:
        scene, origins, edited = transfer_edit(case, original, donor, matches, donor_matches)
    except NeuralAssetsError as e:  # InapplicableEditError, or an edit refusing the other scene
        return _failed(case, str(e))
    return dataclasses.replace(case, scene=scene, original=original, origins=origins, edited_ids=edited, donor=donor,
                               exact=case, failed=None)


class ExtractedInputs:
    """What a user gets: the case's photos through :func:`~neuralassets.perception.extract`.

    The source frame (and the donor video's frame) is extracted alone; a novel-pose case's
    source and target frames are extracted together. The camera given to extraction is the
    intrinsics (the default; its pose then comes from the floor fitted to depth, or from
    :class:`~neuralassets.perception.CameraConfig`'s assumed height and tilt), or with
    ``known_camera`` the generator's cameras themselves.

    Args:
        segmenter, tracker, depth_estimator: extraction's pieces (None: its defaults, the learned model of
            ``weights/perception`` when it is there).
        config: extraction's settings (:class:`~neuralassets.perception.ExtractionConfig`: camera
            assumptions, whether the learned model's depth is kept); None: its defaults.
        known_camera: give extraction the generator's cameras instead of their intrinsics.
        min_iou: see :func:`match_masks`.
        max_objects: keep at most this many extracted assets, the largest in the source frame
            (a model has a fixed number of object slots, and insertion adds one); None keeps all.
    """

    name = "extracted"

    def __init__(self, segmenter=None, tracker=None, depth_estimator=None, config=None, known_camera: bool = False,
                 min_iou: float = MIN_MATCH_IOU, max_objects: int | None = None):
        from ..perception import ExtractionConfig

        self.segmenter, self.tracker, self.depth_estimator = segmenter, tracker, depth_estimator
        self.config, self.known_camera = config or ExtractionConfig(), known_camera
        self.min_iou, self.max_objects = min_iou, max_objects

    def describe(self) -> str:
        from ..perception import default_perception

        pieces = [type(p).__name__ for p in (self.segmenter, self.tracker, self.depth_estimator) if p is not None]
        depth = "its depth kept" if self.config.keep_learned_depth else "its depth used for the camera and boxes only"
        default = (f"the default stack (the shipped learned perception model: masks, 3D boxes; {depth})"
                   if default_perception() is not None else "the weights-free classical stack")
        return (f"extracted: {', '.join(pieces) or default} "
                f"({'the generator cameras' if self.known_camera else 'intrinsics only'} given; "
                f"objects matched at mask IoU >= {self.min_iou:g})")

    def extract(self, frames: Tensor, cameras: list[Camera]) -> Scene:
        """Extract a clip: frames (T, 3, H, W) float in [0, 1] and the generator's T cameras (only their
        intrinsics are used unless ``known_camera``); the :attr:`max_objects` largest assets are kept."""
        from ..perception import extract

        camera = (cameras if len(cameras) > 1 else cameras[0]) if self.known_camera else cameras[0].K
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "no objects found": then nothing is matched and the case fails
            scene = extract(frames, self.segmenter, self.tracker, camera=camera, depth_estimator=self.depth_estimator,
                            config=self.config)
        if self.max_objects is not None and len(scene) > self.max_objects:
            area = {a.id: int(a.masks[0].sum()) for a in scene.assets}
            largest = set(sorted(area, key=area.get, reverse=True)[: self.max_objects])
            scene.assets = [a for a in scene.assets if a.id in largest]
        for asset in scene.assets:
            asset.source_frame = 0  # the frame every method takes appearance from
        return scene

    def still(self, photo: Scene) -> Scene:
        """The inputs of an edit of a still: frame 0 of ``photo`` extracted, as two blinded frames."""
        from ..data.synthetic import select_frames

        return blind_target(select_frames(self.extract(photo.frames[:1], photo.cameras[:1]), [0, 0]))

    def prepare(self, case: Case) -> Case:
        """The case with extracted inputs and its edit carried over (or failed)."""
        if case.task == "novel_pose":
            frames = torch.stack([case.source, case.target])
            return _edited_inputs(case, blind_target(self.extract(frames, case.original.cameras)), None, {}, {})
        original = self.still(case.original)
        donor = self.still(case.donor) if case.donor is not None else None
        matches = match_assets(case.original, original, 0, self.min_iou)
        donor_matches = match_assets(case.donor, donor, 0, self.min_iou) if donor is not None else {}
        return _edited_inputs(case, original, donor, matches, donor_matches)


class PerturbedInputs:
    """The generator's scenes with noise (:mod:`~neuralassets.data.perturbations`), applied in the order given.

    The noise of case ``(task, seed)`` is drawn from a generator seeded by both and ``seed``,
    so every method sees the same perturbed inputs and a run repeats exactly.

    Args:
        perturbations: {kind: level}, kinds of :data:`~neuralassets.data.perturbations.PERTURBATIONS`.
        seed: seed of the noise.
    """

    name = "perturbed"

    def __init__(self, perturbations: dict[str, float], seed: int = 0):
        unknown = [k for k in perturbations if k not in PERTURBATIONS]
        if unknown:
            raise ValidationError(f"perturbations: {unknown} are not among {', '.join(PERTURBATIONS)}")
        self.perturbations, self.seed = dict(perturbations), seed

    @property
    def label(self) -> str:
        """``kind=level`` pairs, comma-separated (``clean`` when there are none)."""
        return ", ".join(f"{k}={v:g}" for k, v in self.perturbations.items()) or "clean"

    def describe(self) -> str:
        units = ", ".join(f"{k} in {PERTURBATIONS[k].unit}" for k in self.perturbations)
        return f"perturbed: exact inputs with {self.label}" + (f" ({units})" if units else "")

    def perturb(self, scene: Scene, generator: torch.Generator) -> Scene:
        """``scene`` with every perturbation applied, in order."""
        for kind, level in self.perturbations.items():
            scene = PERTURBATIONS[kind].apply(scene, level, generator)
        return scene

    def prepare(self, case: Case) -> Case:
        """The case with perturbed inputs and its edit carried over."""
        key = np.random.SeedSequence([TASKS.index(case.task), int(case.seed), int(self.seed)]).generate_state(1, np.uint64)[0]
        generator = torch.Generator().manual_seed(int(key))
        original = self.perturb(case.original, generator)
        donor = self.perturb(case.donor, generator) if case.donor is not None else None
        same = {a.id: a.id for a in case.original.assets}
        return _edited_inputs(case, original, donor, same, {a.id: a.id for a in case.donor.assets} if donor else {})


__all__ = ["MIN_MATCH_IOU", "ExactInputs", "ExtractedInputs", "InapplicableEditError", "Inputs", "PerturbedInputs",
           "match_assets", "match_masks", "transfer_edit"]

"""The public video datasets as clips of square Scenes, and the paper's training pairs drawn from them.

:class:`DatasetClips` lists the clips of a MOVi-E folder (:mod:`.movi`, one TFRecord example
per clip) or an Objectron folder (:mod:`.objectron`, one video and annotation per clip) and
reads clip ``i`` as a Scene of square ``image_size`` frames: the centred square of the frame
(MOVi's frames are square; Objectron's portrait ones lose their top and bottom eighths),
resized, with the intrinsics, 2D boxes, masks and depth following (:func:`~neuralassets.framing.resized_scene`).

:class:`ClipPairDataset` draws the paper's (source, target) pairs from them exactly as
:class:`~neuralassets.data.pairs.FramePairDataset` draws them from generated videos
(:func:`~neuralassets.data.pairs.pair_frames`), ``ceil(length / clips)`` pairs per clip, and
fits each pair to the model's object slots (:func:`fit_to_slots`). Its items are what the
denoiser stage trains on; :func:`~neuralassets.data.pairs.write_pair_shards` caches them as
shards (``neuralassets data make --from movi-e|objectron PATH``).

:func:`novel_pose_case` makes the benchmark's novel-pose case of a held-out clip the same way
(``neuralassets bench --dataset movi-e|objectron PATH``).
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

from .. import geometry
from ..conditioning import Conditioning, conditioning_from_scene
from ..errors import ValidationError
from ..framing import centre_square_window, resized_scene, window_scene
from ..metrics import region_mask
from ..scene import Scene
from .edit_cases import Case, blind_target, frame_pair
from .movi import movi_records, read_movi_record
from .objectron import annotated_frames, objectron_clips, read_annotation, read_objectron
from .pairs import pair_frames
from .synthetic import select_frames

#: Dataset names ``--from`` and ``--dataset`` accept.
DATASETS = ("movi-e", "objectron")
#: Frames read per Objectron clip, spread evenly over it (MOVi clips have their own 24).
OBJECTRON_FRAMES = 24
_NEAR = 1e-3  # metres: a box with a corner nearer than this (or behind the camera) cannot be posed


class DatasetClips:
    """The clips of a dataset folder, each read as a square Scene.

    Args:
        dataset: one of :data:`DATASETS`.
        path: the dataset folder (or one TFRecord file / one Objectron clip folder).
        image_size: side of the square frames, pixels.
        split: MOVi only: the TFDS split (``train``, ``validation``, ``test``); None reads every file.
        num_frames: Objectron only: frames read per clip, evenly spaced over its annotated frames.

    Raises:
        ValidationError: an unknown dataset name.
        SceneFormatError: the folder holds no clip of that dataset.
    """

    def __init__(self, dataset: str, path: str | os.PathLike, image_size: int, split: str | None = None,
                 num_frames: int = OBJECTRON_FRAMES):
        if dataset not in DATASETS:
            raise ValidationError(f"dataset: {dataset!r} is not one of {', '.join(DATASETS)}")
        self.dataset, self.path, self.image_size, self.num_frames = dataset, Path(path), int(image_size), num_frames
        self._clips = movi_records(path, split) if dataset == "movi-e" else objectron_clips(path)
        self._last: tuple[int, Scene] | None = None  # consecutive pairs come from one clip: read it once

    def __len__(self) -> int:
        return len(self._clips)

    def describe(self, index: int) -> str:
        """Which clip ``index`` is, for messages: the file (and byte) it comes from."""
        clip = self._clips[index]
        if self.dataset == "movi-e":
            return f"{self.dataset} clip {index} ({clip.path.name}, record at byte {clip.offset - 12})"
        return f"{self.dataset} clip {index} ({clip[1].name})"

    def scene(self, index: int) -> Scene:
        """Clip ``index`` as a Scene of ``image_size`` x ``image_size`` frames (a copy: edit it freely)."""
        if self._last is None or self._last[0] != index:
            self._last = (index, self._read(index))
        return self._last[1].copy()

    def _read(self, index: int) -> Scene:
        if self.dataset == "movi-e":
            scene = read_movi_record(self._clips[index])
        else:
            video, annotation = self._clips[index]
            frames = annotated_frames(read_annotation(annotation), self.num_frames)
            # the square cut from an upright 3:4 frame must keep image_size pixels a side
            scene = read_objectron(video, annotation, frames, max_side=2 * self.image_size)
        return square_scene(scene, self.image_size)


def square_scene(scene: Scene, size: int) -> Scene:
    """The centred square of ``scene``'s frames (:func:`~neuralassets.framing.centre_square_window`), resized to ``size`` pixels."""
    if scene.height != scene.width:
        scene = window_scene(scene, centre_square_window(scene.height, scene.width))
        for asset in scene.assets:  # an object wholly outside the square is not seen in it
            gone = (asset.boxes_2d[:, 2] <= asset.boxes_2d[:, 0]) | (asset.boxes_2d[:, 3] <= asset.boxes_2d[:, 1])
            asset.visibility = asset.visibility.masked_fill(gone, 0.0)
    return resized_scene(scene, size, size)


def fit_to_slots(scene: Scene, source: int, target: int, max_objects: int) -> Scene:
    """The scene with only the assets a pair can condition on, at most ``max_objects`` of them.

    An asset keeps a slot when it is seen in the source frame (its appearance) and its whole
    box is in front of the target camera (its pose); of those, the ``max_objects`` largest in
    the source frame (2D box area) are kept in scene order. The others leave the asset list, so
    their pixels stay in the background photo as background.

    Args:
        scene: a scene; not modified.
        source, target: frame indices.
        max_objects: object slots.

    Returns:
        A new scene.
    """
    cam = scene.cameras[target]
    candidates = []
    for a in scene.assets:
        _, depth = geometry.project_box(a.centers[target], a.sizes[target], a.rotations[target], cam.K, cam.R, cam.t)
        if float(a.visibility[source]) > 0 and bool((depth > _NEAR).all()):
            box = a.boxes_2d[source]
            candidates.append((float((box[2] - box[0]).clamp(min=0) * (box[3] - box[1]).clamp(min=0)), a.id))
    kept = {asset_id for _, asset_id in sorted(candidates, key=lambda c: -c[0])[:max_objects]}
    return scene.replace(assets=[a for a in scene.assets if a.id in kept])


class ClipPairDataset(Dataset):
    """The paper's training pairs from a dataset's clips, ``ceil(length / clips)`` per clip in clip order.

    Item ``i`` comes from clip ``i // per_clip``; its frames are :func:`~neuralassets.data.pairs.pair_frames`
    of seed ``i`` over the clip's frames. Appearance and background come from the source frame,
    poses and camera from the target, which is the frame to reconstruct.

    Args:
        clips: the clips.
        length: number of pairs.
        max_objects: object slots N of the conditioning.

    Items are ``(Conditioning, target)``: a batch-of-one :class:`Conditioning` and the target frame
    ``(3, S, S)`` float in [0, 1].

    Raises:
        ValidationError: ``length`` or ``max_objects`` below 1.
    """

    def __init__(self, clips: DatasetClips, length: int, max_objects: int):
        if length < 1 or max_objects < 1:
            raise ValidationError(f"length and max_objects: expected >= 1, got {length} and {max_objects}")
        self.clips, self.length, self.max_objects = clips, int(length), int(max_objects)
        self.per_clip = -(-self.length // len(clips))

    def __len__(self) -> int:
        return self.length

    def describe(self, index: int) -> str:
        """Which pair ``index`` is, for messages."""
        return f"pair {index} ({self.clips.describe(index // self.per_clip)})"

    def input_pair(self, index: int) -> tuple[Scene, int, int]:
        """:meth:`pair` as the model is given it: a dataset's geometry as its files hold it (no geometry noise)."""
        return self.pair(index)

    def pair(self, index: int) -> tuple[Scene, int, int]:
        """Item ``index`` as a scene of its (one or two) frames, fitted to the slots, and its (source, target) indices in it."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} is out of range for a dataset of {self.length} items")
        scene = self.clips.scene(index // self.per_clip)
        source, target = pair_frames(index, scene.num_frames)
        frames = [source] if source == target else [source, target]
        scene = fit_to_slots(select_frames(scene, frames), 0, frames.index(target), self.max_objects)
        for asset in scene.assets:
            asset.source_frame = 0
        return scene, 0, frames.index(target)

    def __getitem__(self, index: int) -> tuple[Conditioning, Tensor]:
        scene, source, target = self.pair(index)
        return conditioning_from_scene(scene, target, self.max_objects, source_frame=source), scene.frames[target]


def novel_pose_case(clips: DatasetClips, index: int, max_objects: int) -> Case | None:
    """The benchmark's novel-pose case of clip ``index``: another frame of the same clip as the target.

    The source and target frames are :func:`~neuralassets.data.edit_cases.frame_pair` of seed
    ``index``; the objects are those the pair can condition on (:func:`fit_to_slots`), every
    one of them counts as edited (the in-box region is the union of their projected boxes in
    both frames), and the method sees the target's boxes and camera but none of its pixels
    (:func:`~neuralassets.data.edit_cases.blind_target`).

    Returns:
        The case (its ``seed`` is the clip index), or None when no object is left to pose.
    """
    scene = clips.scene(index)
    source, target = frame_pair(index, scene.num_frames)
    pair = fit_to_slots(select_frames(scene, [source, target]), 0, 1, max_objects)
    for asset in pair.assets:
        asset.source_frame = 0
    ids = [a.id for a in pair.assets]
    blinded = blind_target(pair)
    region = region_mask(blinded, ids, (0, 1))
    if not ids or not bool(region.any()):
        return None
    params = {"source_frame": source, "target_frame": target, "clip": clips.describe(index)}
    return Case("novel_pose", index, index, blinded, blinded, pair.frames[1], ids, region,
                {i: (blinded, i) for i in ids}, params)


def describe_source(clips: DatasetClips) -> dict:
    """What a shard folder made from ``clips`` depends on (its ``dataset.json`` entries)."""
    return {"dataset": clips.dataset, "path": str(clips.path), "clips": len(clips), "image_size": clips.image_size,
            **({"frames_per_clip": clips.num_frames} if clips.dataset == "objectron" else {})}


__all__ = ["DATASETS", "OBJECTRON_FRAMES", "ClipPairDataset", "DatasetClips", "describe_source", "fit_to_slots",
           "novel_pose_case", "square_scene"]

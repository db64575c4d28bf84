"""Training pairs from synthetic videos, generated on the fly or read from cached shards.

The paper's sampling: from a video of T frames pick a gap ``dt`` uniform in [0, T - 1],
a source frame uniform among those that leave room for it, the target ``dt`` frames
later, and swap source and target with probability 0.5. Appearance and background come
from the source frame, poses and camera from the target, and the target frame is what
the model must reconstruct. Only the (one or two) frames needed are rendered.

Item ``i`` depends only on ``(split, seed_offset + i)``: no random state lives in the
dataset, so DataLoader workers need no seeding and any worker count yields the same items.
With ``geometry_noise`` (:class:`~neuralassets.data.perturbations.GeometryNoise`) the pair's
depth, masks and 3D boxes are perturbed before its conditioning is built, by draws seeded by
its scene seed alone, and the target frame stays exact: the model learns to correct the
geometry a user's estimate gives it. The noise needs the pair's scene, so it is drawn where a
pair is made: rendered on the fly, or once per pair by ``data make --geometry-noise``.

Shard folder format (``SHARD_FORMAT_VERSION`` 5), written by :func:`write_shards` /
``neuralassets data make``::

    dataset.json                 split, length, seed_offset, max_objects, shard_size, generator config
                                 (and edit_tasks for folders of edit pairs, geometry_noise for noisy ones)
    shard_00000.safetensors ...  items [k * shard_size, (k + 1) * shard_size): the target frame and
                                 up to :data:`PHOTO_SLOTS` photos (uint8); how many of them the
                                 objects take appearance from, which one is the background and the
                                 pixel boxes greyed in it; the photos' depth and object slots
                                 (``Conditioning.appearance_depths`` / ``appearance_slots``); the
                                 Conditioning's box, pose, photo pose, mask and camera tensors

Version 5 added the photos' depth and slots, read as unknown (0, -1) from older folders.
Version 4 added each object's pose in its photo (``Conditioning.object_source_poses``), read
as unknown (all 0) from older folders (version 3's view changes and paste boxes are unused).
Version 1 folders (one source photo for appearance and background, greyed in the object
boxes) are still read.

A shard file appears only once complete (written under a temporary name, then renamed),
so an interrupted ``make`` resumes by skipping the shards that exist.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..conditioning import (
    GREY,
    Conditioning,
    appearance_photos,
    background_view,
    conditioning_from_scene,
    grey_inside,
    grey_outside,
    index_of_photo,
    slotted_assets,
)
from ..errors import ConfigError, SceneFormatError, ValidationError
from ..image_ops import from_uint8, to_uint8
from ..scene import Scene
from .edit_cases import load_video, make_case
from .perturbations import GeometryNoise, perturb_geometry
from .synthetic import SPLITS, GeneratorConfig, generate_scene

SHARD_FORMAT_VERSION = 5
READABLE_SHARD_VERSIONS = (1, 2, 3, 4, 5)
PHOTO_SLOTS = 2  # photos a record holds: the scene's frame and one from another scene (a donor object or background)
_PAIR_STREAM = 0x5A1E  # second seed word: pair choice never shares a stream with scene sampling
_NOISE_STREAM = 0x6E01  # second seed word of a pair's geometry noise
_CONDITIONING_TENSORS = ("object_image_index", "object_boxes", "object_poses", "object_target_boxes", "object_source_poses",
                         "object_mask", "camera_pose")


def pair_frames(seed: int, num_frames: int) -> tuple[int, int]:
    """The (source, target) frame indices of the pair drawn from scene ``seed``.

    ``dt`` is uniform in [0, num_frames - 1], the earlier frame uniform in
    [0, num_frames - 1 - dt], and the order is swapped with probability 0.5.
    """
    rng = np.random.default_rng([seed, _PAIR_STREAM])
    gap = int(rng.integers(num_frames))
    first = int(rng.integers(num_frames - gap))
    source, target = first, first + gap
    return (target, source) if rng.uniform() < 0.5 else (source, target)


class FramePairDataset(Dataset):
    """Training pairs rendered on the fly from the synthetic generator.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (see :data:`~neuralassets.data.synthetic.SPLITS`).
        length: number of items; item i uses scene seed ``SPLITS[split][seed_offset + i]``.
        max_objects: object slots N of the conditioning; scenes are sampled with at most
            this many objects (``config.max_objects`` is lowered to it when larger).
        config: generator settings (default :class:`GeneratorConfig`).
        seed_offset: first index into the split's seed range.
        geometry_noise: noise on each pair's input geometry (None: exact; see :meth:`input_pair`).

    Items are ``(Conditioning, target)``: a batch-of-one :class:`Conditioning` and the
    target frame ``(3, H, W)`` float in [0, 1].
    """

    def __init__(self, split: str, length: int, max_objects: int, config: GeneratorConfig | None = None,
                 seed_offset: int = 0, geometry_noise: GeometryNoise | None = None):
        if split not in SPLITS:
            raise ValidationError(f"split: {split!r} is not one of {list(SPLITS)}")
        if length < 0 or seed_offset < 0 or seed_offset + length > len(SPLITS[split]):
            raise ValidationError(f"length/seed_offset: items [{seed_offset}, {seed_offset + length}) do not fit in "
                                  f"split {split!r} of {len(SPLITS[split])} seeds")
        if max_objects < 1:
            raise ValidationError(f"max_objects: expected >= 1, got {max_objects}")
        config = config or GeneratorConfig()
        most = min(config.max_objects, max_objects)
        self.config = replace(config, max_objects=most, min_objects=min(config.min_objects, most)).validate()
        self.split, self.length, self.max_objects, self.seed_offset = split, length, max_objects, seed_offset
        self.geometry_noise = geometry_noise

    def __len__(self) -> int:
        return self.length

    def seed(self, index: int) -> int:
        """The scene seed of item ``index``."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} is out of range for a dataset of {self.length} items")
        return SPLITS[self.split][self.seed_offset + index]

    def describe(self, index: int) -> str:
        """Which pair ``index`` is, for messages."""
        return f"pair {index} (scene seed {self.seed(index)})"

    def pair(self, index: int) -> tuple[Scene, int, int]:
        """Item ``index`` as a rendered scene of one or two frames and its (source, target) indices in it."""
        seed = self.seed(index)
        source, target = pair_frames(seed, self.config.num_frames)
        frames = [source] if source == target else [source, target]
        return generate_scene(seed, self.config, frames), 0, frames.index(target)

    def input_pair(self, index: int) -> tuple[Scene, int, int]:
        """:meth:`pair` as the model is given it: its depth, masks and boxes perturbed by ``geometry_noise``.

        The draws are seeded by the scene seed of item ``index``; the frames (the target's
        too) are the exact pair's.
        """
        scene, source, target = self.pair(index)
        if self.geometry_noise is None:
            return scene, source, target
        key = np.random.SeedSequence([self.seed(index), _NOISE_STREAM]).generate_state(1, np.uint64)[0]
        return perturb_geometry(scene, self.geometry_noise, torch.Generator().manual_seed(int(key))), source, target

    def __getitem__(self, index: int) -> tuple[Conditioning, Tensor]:
        scene, source, target = self.input_pair(index)
        conditioning = conditioning_from_scene(scene, target, self.max_objects, source_frame=source)
        return conditioning, scene.frames[target]


EDIT_PAIR_TASKS = ("translation", "rotation", "scale", "camera", "multi_object",
                   "removal", "insertion", "transfer", "swap", "background")  # every benchmark edit of a still frame
DONOR_TASKS = ("insertion", "transfer", "background")  # edits that take an object or background from another video


class EditPairDataset(FramePairDataset):
    """Training pairs whose target is an edit of the source frame, rendered exactly.

    Item ``i`` takes the source frame the benchmark would take from scene
    ``SPLITS[split][seed_offset + i]`` and applies edit ``tasks[i % len(tasks)]`` to it as
    the benchmark builds its cases (:func:`neuralassets.data.edit_cases.make_case`: objects
    moved 1-3 footprints, turned, scaled 0.6-1.6x, several at once, removed, the camera
    orbited 10-40 degrees; an object inserted or re-dressed from another video, two objects'
    looks swapped, the background taken from another video). Videos rarely move an object
    that far or change its size, and never take appearance from elsewhere, so these pairs
    teach the tokens' full range. Edits that need another video (:data:`DONOR_TASKS`) take the
    next seed's (``seed_offset + i + 1``, wrapping within the split). When no draw of a task
    works for a scene (e.g. fewer than three visible objects for ``multi_object``, or an
    insertion into a scene that already fills every object slot), the next
    task is tried, and the video pair of :class:`FramePairDataset` is the last resort.

    Args:
        split, length, max_objects, config, seed_offset, geometry_noise: as for :class:`FramePairDataset`.
        tasks: edit names from :data:`EDIT_PAIR_TASKS`.

    Raises:
        ValidationError: an unknown task, or an empty ``tasks``.
    """

    def __init__(self, split: str, length: int, max_objects: int, config: GeneratorConfig | None = None,
                 seed_offset: int = 0, tasks: tuple[str, ...] = EDIT_PAIR_TASKS, geometry_noise: GeometryNoise | None = None):
        super().__init__(split, length, max_objects, config, seed_offset, geometry_noise)
        unsupported = [t for t in tasks if t not in EDIT_PAIR_TASKS]
        if unsupported or not tasks:
            raise ValidationError(f"tasks: {unsupported or 'none given'}; edit pairs support {', '.join(EDIT_PAIR_TASKS)}")
        self.tasks = tuple(tasks)

    def donor_seed(self, index: int) -> int:
        """The scene seed of the other video that item ``index``'s donor edits take from."""
        seeds = SPLITS[self.split]
        self.seed(index)  # range check
        return seeds[(self.seed_offset + index + 1) % len(seeds)]

    def pair(self, index: int) -> tuple[Scene, int, int]:
        """Item ``index`` as a two-frame scene (source, edited target) and its (source, target) indices, (0, 1)."""
        seed = self.seed(index)
        video = load_video(seed, self.config, novel_pose=False)  # edits start from the source frame alone
        donor = None
        for k in range(len(self.tasks)):
            task = self.tasks[(index + k) % len(self.tasks)]
            if task in DONOR_TASKS and donor is None:
                donor = load_video(self.donor_seed(index), self.config, novel_pose=False)
            case = make_case(task, index, seed, video, donor if task in DONOR_TASKS else video)
            if case is not None and len(slotted_assets(case.scene, 0)) <= self.max_objects:
                scene = case.scene.copy()
                scene.frames[1] = case.target
                return scene, 0, 1
        return super().pair(index)


def collate_pairs(items: list[tuple[Conditioning, Tensor]]) -> tuple[Conditioning, Tensor]:
    """Batch ``(Conditioning, target)`` items: a batched Conditioning and targets (B, 3, H, W)."""
    return Conditioning.collate([c for c, _ in items]), torch.stack([t for _, t in items])


# --------------------------------------------------------------------------------------
# Shards
# --------------------------------------------------------------------------------------

class _ShardRecords(Dataset):
    """Item i of a pair dataset (:func:`write_pair_shards`) as the flat tensors a shard stores."""

    def __init__(self, pairs: Dataset):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        scene, source, target = self.pairs.input_pair(index)
        where = self.pairs.describe(index)
        conditioning = conditioning_from_scene(scene, target, self.pairs.max_objects, source_frame=source)
        photos, _ = appearance_photos(scene, source)
        appearance_count = len(photos)
        view = background_view(scene, target, source)
        background = index_of_photo(photos, view.image)
        if background is None:
            background = len(photos)
            photos.append(view.image)
        if len(photos) > PHOTO_SLOTS or any(p.shape != scene.frames[0].shape for p in photos):
            raise ValidationError(f"{where}: needs {len(photos)} photos of sizes {[tuple(p.shape) for p in photos]}; "
                                  f"a shard record holds {PHOTO_SLOTS} of the scene's size {tuple(scene.frames[0].shape)}")
        greyed = len(view.object_boxes)
        if greyed > self.pairs.max_objects:
            raise ValidationError(f"{where}: its background photo has {greyed} object boxes; a shard record holds "
                                  f"max_objects = {self.pairs.max_objects}")
        record = {name: getattr(conditioning, name)[0] for name in _CONDITIONING_TENSORS}
        record["photos"] = torch.zeros(PHOTO_SLOTS, *scene.frames[0].shape, dtype=torch.uint8)
        record["photos"][:len(photos)] = to_uint8(torch.stack(photos))
        record["photo_depths"] = torch.zeros(PHOTO_SLOTS, *scene.frames[0].shape[-2:])
        record["photo_depths"][:appearance_count] = conditioning.appearance_depths[0, :appearance_count]
        record["photo_slots"] = torch.full((PHOTO_SLOTS, *scene.frames[0].shape[-2:]), -1, dtype=torch.int16)
        record["photo_slots"][:appearance_count] = conditioning.appearance_slots[0, :appearance_count]
        record["appearance_count"] = torch.tensor(appearance_count)
        record["background_photo"] = torch.tensor(background)
        record["background_boxes"] = torch.zeros(self.pairs.max_objects, 4)
        record["background_boxes"][:greyed] = view.object_boxes
        record["background_box_mask"] = torch.arange(self.pairs.max_objects) < greyed
        record["target"] = to_uint8(scene.frames[target])
        return record


def _conditioning_from_record(record: dict[str, Tensor]) -> tuple[Conditioning, Tensor]:
    """Rebuild the item :class:`FramePairDataset` yields from a stored record (exactly)."""
    photos = from_uint8(record["photos"] if "photos" in record else record["source"][None])
    H, W = photos.shape[-2:]
    boxes = record["object_boxes"] * torch.tensor([W, H, W, H], dtype=torch.float32)
    used = record["object_mask"]
    if "photos" in record:
        count, background = int(record["appearance_count"]), photos[int(record["background_photo"])]
        greyed = record["background_boxes"][record["background_box_mask"]]
    else:  # version 1: one source photo, its background greyed in the object boxes
        count, background, greyed = 1, photos[0], boxes[used]
    appearance = [grey_outside(photos[k], boxes[used & (record["object_image_index"] == k)])
                  for k in range(count)] or [torch.full((3, H, W), GREY)]
    shown = len(appearance)
    depths = record["photo_depths"][:shown] if "photo_depths" in record else torch.zeros(shown, H, W)  # before version 5
    slots = record["photo_slots"][:shown] if "photo_slots" in record else torch.full((shown, H, W), -1, dtype=torch.int16)
    record = {"object_source_poses": torch.zeros(*record["object_mask"].shape, 12), **record}  # not stored before version 4
    extra = {name: record[name].unsqueeze(0) for name in _CONDITIONING_TENSORS}
    conditioning = Conditioning(appearance_images=torch.stack(appearance)[None], appearance_depths=depths[None],
                                appearance_slots=slots[None],
                                background_image=grey_inside(background, greyed)[None], **extra)
    return conditioning, from_uint8(record["target"])


def _shard_name(k: int) -> str:
    return f"shard_{k:05d}.safetensors"


def write_shards(folder: str | os.PathLike, split: str, length: int, max_objects: int = 10,
                 config: GeneratorConfig | None = None, shard_size: int = 256, seed_offset: int = 0,
                 num_workers: int = 0, progress: bool = True, edit_tasks: tuple[str, ...] | None = None,
                 geometry_noise: GeometryNoise | None = None) -> Path:
    """Render ``length`` training pairs into safetensors shards under ``folder``.

    Resumable: shards already present are skipped. Refuses to add to a folder made with
    other settings.

    Args:
        folder: output folder (created if needed).
        split, length, max_objects, config, seed_offset: as for :class:`FramePairDataset`.
        shard_size: items per shard file.
        num_workers: DataLoader worker processes rendering in parallel (0: in this process).
        progress: show a progress bar.
        edit_tasks: render :class:`EditPairDataset` pairs with these edits instead of video pairs.
        geometry_noise: perturb each pair's input geometry (:meth:`FramePairDataset.input_pair`); targets stay exact.

    Returns:
        The folder path.

    Raises:
        ConfigError: ``folder`` holds a dataset with different settings, or ``shard_size`` < 1.
    """
    if edit_tasks is None:
        pairs = FramePairDataset(split, length, max_objects, config, seed_offset, geometry_noise)
    else:
        pairs = EditPairDataset(split, length, max_objects, config, seed_offset, tuple(edit_tasks), geometry_noise)
    description = {"split": split, "length": length, "seed_offset": seed_offset, "max_objects": max_objects,
                   "shard_size": shard_size, "config": json.loads(json.dumps(asdict(pairs.config)))}
    if edit_tasks is not None:
        description["edit_tasks"] = list(edit_tasks)
    if geometry_noise is not None:
        description["geometry_noise"] = json.loads(json.dumps(asdict(geometry_noise)))
    # a generator field added after a folder was written had its default (the old behaviour) there
    defaults = {"config": json.loads(json.dumps(asdict(GeneratorConfig())))}
    return write_pair_shards(folder, pairs, description, shard_size, num_workers, progress, split, defaults)


def write_pair_shards(folder: str | os.PathLike, pairs: Dataset, description: dict, shard_size: int = 256,
                      num_workers: int = 0, progress: bool = True, label: str = "", defaults: dict | None = None) -> Path:
    """Write the items of a pair dataset into safetensors shards under ``folder`` (resumable).

    Args:
        folder: output folder (created if needed).
        pairs: a dataset with ``input_pair(index) -> (Scene, source, target)`` (the scene as the model
            is given it, holding the frames the pair uses), ``describe(index) -> str`` and
            ``max_objects``; its ``len`` items are written.
        description: what the items depend on, stored in ``dataset.json`` (with the format
            version, ``length`` and ``shard_size``); a folder holding another description is refused.
        shard_size: items per shard file.
        num_workers: DataLoader worker processes making items in parallel (0: in this process).
        progress: show a progress bar (described by ``label``).
        defaults: entries laid under a stored description's before comparing (fields added since).

    Returns:
        The folder path.

    Raises:
        ConfigError: ``folder`` holds a dataset with different settings, or ``shard_size`` < 1.
    """
    from tqdm import tqdm

    if shard_size < 1:
        raise ConfigError(f"shard_size: expected >= 1, got {shard_size}")
    length = len(pairs)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    description = {"format_version": SHARD_FORMAT_VERSION, **description, "length": length, "shard_size": shard_size}
    meta_path = folder / "dataset.json"
    if meta_path.is_file():
        existing = json.loads(meta_path.read_text())
        for key, value in (defaults or {}).items():
            existing[key] = {**value, **existing.get(key, {})}
        if existing != description:
            changed = sorted(k for k in existing.keys() | description.keys() if existing.get(k) != description.get(k))
            raise ConfigError(f"{meta_path}: holds a dataset made with other settings ({', '.join(changed)} differ); "
                              "use another folder")
    else:
        meta_path.write_text(json.dumps(description, indent=1))
    num_shards = -(-length // shard_size)
    missing = [k for k in range(num_shards) if not (folder / _shard_name(k)).is_file()]
    batches = [list(range(k * shard_size, min((k + 1) * shard_size, length))) for k in missing]
    loader = DataLoader(_ShardRecords(pairs), batch_sampler=batches, num_workers=num_workers)
    done = length - sum(len(b) for b in batches)
    with tqdm(total=length, initial=done, unit="pair", disable=not progress, desc=f"{label} pairs".strip()) as bar:
        for k, batch in zip(missing, loader):
            tmp = folder / (_shard_name(k) + ".tmp")
            save_file({name: value.contiguous() for name, value in batch.items()}, str(tmp),
                      metadata={"first_index": str(k * shard_size)})
            os.replace(tmp, folder / _shard_name(k))
            bar.update(len(batch["target"]))
    return folder


class ShardedPairDataset(Dataset):
    """Training pairs read from a folder written by :func:`write_shards` (``neuralassets data make``).

    Items equal those of the :class:`FramePairDataset` that wrote them, bit for bit.

    Raises:
        SceneFormatError: ``dataset.json`` is missing or of an unknown version, or a shard is missing.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        meta_path = self.folder / "dataset.json"
        if not meta_path.is_file():
            raise SceneFormatError(f"{meta_path}: missing; not a folder written by `neuralassets data make`")
        try:
            meta = json.loads(meta_path.read_text())
            version, self.length, self.shard_size = meta["format_version"], int(meta["length"]), int(meta["shard_size"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise SceneFormatError(f"{meta_path}: malformed ({e})") from None
        if version not in READABLE_SHARD_VERSIONS:
            raise SceneFormatError(f"{meta_path}: format_version {version!r} is not supported "
                                   f"(expected one of {', '.join(map(str, READABLE_SHARD_VERSIONS))})")
        self.metadata = meta
        missing = [_shard_name(k) for k in range(-(-self.length // self.shard_size))
                   if not (self.folder / _shard_name(k)).is_file()]
        if missing:
            raise SceneFormatError(f"{self.folder}: {len(missing)} shard(s) missing (first: {missing[0]}); "
                                   "rerun `neuralassets data make` with the same arguments to finish it")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Conditioning, Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} is out of range for a dataset of {self.length} items")
        path = self.folder / _shard_name(index // self.shard_size)
        row = index % self.shard_size
        try:
            with safe_open(str(path), framework="pt") as f:
                record = {name: f.get_slice(name)[row:row + 1][0] for name in f.keys()}
        except (SafetensorError, OSError) as e:
            raise SceneFormatError(f"{path}: unreadable or truncated ({e})") from None
        return _conditioning_from_record(record)

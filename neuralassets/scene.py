"""The Scene model: cameras, 3D boxes, assets, background — and their folder format.

A :class:`Scene` is the one value that travels through the library: perception makes
it, edits return new ones, the pipeline renders it and the benchmark compares it with
ground truth. Everything in it is a plain dataclass holding torch tensors.

Folder format (``FORMAT_VERSION`` 2)::

    scene.json            format version, sizes, asset list, mask_frames_per_file, metadata (JSON)
    tensors.safetensors   cameras, per-frame asset poses, 2D boxes, visibility, depth (and the background's);
                          the photos' pose numbers once edited and appearance poses, masks and depth, when known;
                          removed objects' per-frame boxes (``removed_boxes``), after a removal
    frames/00000.png ...  one RGB PNG per frame
    masks/asset_0001/00000.png, 00032.png ...
                          the asset's masks in files of N = mask_frames_per_file frames each, named by
                          their first frame; a file stacks its masks vertically, (N*H, W) 1-bit greyscale (8-bit read too)
                          (the last file holds the frames left over)
    appearance/asset_0001.png  appearance image of an asset brought from another scene
    background.png        the background image, when the scene has an explicit one

N is ``max(1, MASK_FILE_PIXELS // (H * W))`` (32 at 960x540, 1024 at 128x128), so a mask file
stays far below Pillow's decompression-bomb limit however long the clip, and writing or reading
an asset's masks holds one file's worth at a time. Format 1, still read, stored each asset's T
masks as one PNG, ``masks/asset_0001.png`` of (T*H, W) pixels, which passes Pillow's limit at
about 345 frames of 960x540.

Frames are stored with 8 bits per channel, so they round-trip exactly when they are
multiples of 1/255 (as frames read from files or made by the generator are); every
other tensor round-trips bit for bit.
"""

from __future__ import annotations

import copy
import json
import operator
import os
import shutil
import struct
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, PngImagePlugin
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from . import geometry
from .errors import AssetNotFoundError, SceneFormatError, ValidationError
from .image_ops import from_numpy_image, to_numpy_image
from .jsonio import read_json
from .video import MAX_IMAGE_SIDE, image_size

FORMAT_VERSION = 2
_SCENE_FILE = "scene.json"
_TENSOR_FILE = "tensors.safetensors"
#: Largest total uncompressed size, in bytes, accepted from a Scene zip.
MAX_ZIP_BYTES = 1024**3
#: Most entries accepted in a Scene zip.
MAX_ZIP_ENTRIES = 20_000
#: Largest ratio of uncompressed size to archive size accepted from a Scene zip that unpacks to
#: more than :data:`ZIP_RATIO_FLOOR` bytes. A Scene's PNG frames do not compress further and its
#: tensors about 3:1; the zeros a zip bomb unpacks to compress about 1000:1.
MAX_ZIP_RATIO = 100
#: Uncompressed size, in bytes, above which :data:`MAX_ZIP_RATIO` applies.
ZIP_RATIO_FLOOR = 64 * 1024**2
#: Most pixels in one mask file (a file holds one frame when a frame has more): about 16.8
#: million, under a fifth of Pillow's decompression-bomb limit. Files of more are refused when read.
MASK_FILE_PIXELS = 1 << 24


def _f32(x: Any) -> Tensor:
    return torch.as_tensor(x, dtype=torch.float32)


# --------------------------------------------------------------------------------------
# Value objects
# --------------------------------------------------------------------------------------

@dataclass
class Camera:
    """A pinhole camera with OpenCV axes (x right, y down, z forward).

    Attributes:
        K: (3, 3) float intrinsics in pixels.
        R: (3, 3) float world-to-camera rotation.
        t: (3,) float world-to-camera translation in metres (``x_cam = R x_world + t``).
        width: image width in pixels.
        height: image height in pixels.
    """

    K: Tensor
    R: Tensor
    t: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        self.K, self.R, self.t = _f32(self.K), _f32(self.R), _f32(self.t)
        self.width, self.height = int(self.width), int(self.height)

    @classmethod
    def look_at(cls, eye, target, fov_degrees: float = 50.0, width: int = 128, height: int = 128) -> Camera:
        """A camera at ``eye`` (3,) metres looking at ``target`` (3,) with a horizontal field of view in degrees."""
        R, t = geometry.look_at(_f32(eye), _f32(target))
        return cls(geometry.intrinsics_from_fov(fov_degrees, width, height), R, t, width, height)

    @property
    def center(self) -> Tensor:
        """(3,) camera position in world metres."""
        return geometry.camera_center(self.R, self.t)

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Project (P, 3) world points; returns uv (P, 2) pixels and depth (P,) metres."""
        return geometry.project_points(points, self.K, self.R, self.t)

    def validate(self, where: str = "camera") -> None:
        """Raise :class:`ValidationError` naming ``where`` if any field is malformed."""
        _check_tensor(self.K, (3, 3), f"{where}.K")
        _check_tensor(self.R, (3, 3), f"{where}.R")
        _check_tensor(self.t, (3,), f"{where}.t")
        if not bool(geometry.is_rotation(self.R, atol=1e-3)):
            raise ValidationError(f"{where}.R: expected a rotation matrix (orthonormal, det +1)")
        if self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            raise ValidationError(f"{where}.K: focal lengths must be positive, got {self.K[0, 0]:.4g}, {self.K[1, 1]:.4g}")
        if self.width <= 0 or self.height <= 0:
            raise ValidationError(f"{where}: image size must be positive, got {self.width}x{self.height}")


@dataclass
class Box3D:
    """An oriented 3D box.

    Attributes:
        center: (3,) float, metres.
        size: (3,) float, full extents along the box's own x, y, z axes, metres.
        rotation: (3, 3) float, box-to-world rotation.

    Corner ``i`` has local offset ``((i & 1) - .5, ((i >> 1) & 1) - .5, ((i >> 2) & 1) - .5) * size``;
    see :func:`neuralassets.geometry.box_corners`.
    """

    center: Tensor
    size: Tensor
    rotation: Tensor

    def __post_init__(self) -> None:
        self.center, self.size, self.rotation = _f32(self.center), _f32(self.size), _f32(self.rotation)

    def corners(self) -> Tensor:
        """(8, 3) corners in metres, in the documented order."""
        return geometry.box_corners(self.center, self.size, self.rotation)

    def validate(self, where: str = "box") -> None:
        """Raise :class:`ValidationError` naming ``where`` if the box is not finite, positive and rigid."""
        _check_tensor(self.center, (3,), f"{where}.center")
        _check_tensor(self.size, (3,), f"{where}.size")
        _check_tensor(self.rotation, (3, 3), f"{where}.rotation")
        if bool((self.size <= 0).any()):
            raise ValidationError(f"{where}.size: every extent must be positive, got {self.size.tolist()}")
        if not bool(geometry.is_rotation(self.rotation, atol=1e-3)):
            raise ValidationError(f"{where}.rotation: expected a rotation matrix (orthonormal, det +1)")


@dataclass
class AppearanceSource:
    """An image region an asset takes its appearance from, when that is not a frame of its own scene.

    Attributes:
        image: (3, H, W) float in [0, 1].
        box_2d: (4,) float ``(x0, y0, x1, y1)`` pixel box of the asset in ``image``.
        pose: (12,) float pose numbers of the asset's 3D box as ``image`` shows it
            (:meth:`Asset.pose_features`, normalised by the image's size), or None when unknown;
            with it a render can reproject the image's pixels through the box
            (:func:`~neuralassets.pipelines.surface_splatting.object_reference`).
        mask: (H, W) bool pixels of ``image`` that show the asset, or None when unknown.
        depth: (H, W) float camera-frame depth of ``image`` in metres, or None when unknown; with
            ``mask`` and ``pose`` a render can redraw the asset's surface as ``image`` saw it.
    """

    image: Tensor
    box_2d: Tensor
    pose: Tensor | None = None
    mask: Tensor | None = None
    depth: Tensor | None = None

    def __post_init__(self) -> None:
        self.image, self.box_2d = _f32(self.image), _f32(self.box_2d)
        self.pose = None if self.pose is None else _f32(self.pose)
        self.mask = None if self.mask is None else torch.as_tensor(self.mask).bool()
        self.depth = None if self.depth is None else _f32(self.depth)


@dataclass
class Asset:
    """One object of a scene, with a keyframed pose for every frame.

    Attributes:
        id: stable integer id >= 1; also its value in instance-id maps (0 is background).
        name: human-readable name, e.g. ``"red cube"``.
        centers: (T, 3) float box centres per frame, metres.
        sizes: (T, 3) float box extents per frame, metres.
        rotations: (T, 3, 3) float box-to-world rotations per frame.
        boxes_2d: (T, 4) float pixel boxes ``(x0, y0, x1, y1)`` of the visible object per frame.
        visibility: (T,) float visible fraction per frame in [0, 1] (0 = not seen).
        source_frame: index of the frame its appearance is taken from.
        category: object class, e.g. ``"cube"`` or ``"mug"``.
        masks: (T, H, W) bool visible masks per frame, or None.
        appearance: where the appearance comes from when not ``source_frame`` of its scene.
        attributes: JSON-serialisable extras (the synthetic renderer keeps shape, colour, texture here).
        observed_poses: (T, 12) float pose numbers of the box as each frame's photo shows it
            (:meth:`pose_features` with the camera that took it), or None while the poses and
            cameras are still the photos' own. Edits that change a pose or a camera keep them
            first (:meth:`observe`), so a render can still reproject the photos through the box.
    """

    id: int
    name: str
    centers: Tensor
    sizes: Tensor
    rotations: Tensor
    boxes_2d: Tensor
    visibility: Tensor
    source_frame: int = 0
    category: str = "object"
    masks: Tensor | None = None
    appearance: AppearanceSource | None = None
    attributes: dict = field(default_factory=dict)
    observed_poses: Tensor | None = None

    def __post_init__(self) -> None:
        self.centers, self.sizes, self.rotations = _f32(self.centers), _f32(self.sizes), _f32(self.rotations)
        self.observed_poses = None if self.observed_poses is None else _f32(self.observed_poses)
        self.boxes_2d, self.visibility = _f32(self.boxes_2d), _f32(self.visibility)
        if self.masks is not None:
            self.masks = torch.as_tensor(self.masks).bool()
        self.id, self.source_frame = int(self.id), int(self.source_frame)

    @property
    def num_frames(self) -> int:
        return int(self.centers.shape[0])

    def box(self, frame: int) -> Box3D:
        """The 3D box at ``frame``."""
        return Box3D(self.centers[frame], self.sizes[frame], self.rotations[frame])

    def pose_features(self, frame: int, camera: Camera) -> Tensor:
        """(12,) float: the pose numbers of the box at ``frame`` as ``camera`` sees it (:func:`~neuralassets.geometry.pose_features`)."""
        return geometry.pose_features(self.centers[frame], self.sizes[frame], self.rotations[frame],
                                      camera.K, camera.R, camera.t, camera.width, camera.height)

    def photo_pose(self, frame: int, camera: Camera) -> Tensor:
        """(12,) float: the pose numbers of the box as frame ``frame``'s photo (taken by ``camera``) shows it."""
        return self.observed_poses[frame] if self.observed_poses is not None else self.pose_features(frame, camera)

    def observe(self, cameras: list[Camera]) -> None:
        """Keep the photos' pose numbers (in place) before a pose or one of ``cameras`` (the scene's, one per frame) changes."""
        if self.observed_poses is None:
            self.observed_poses = torch.stack([self.pose_features(f, cam) for f, cam in enumerate(cameras)])

    def with_box(self, frame: int, box: Box3D) -> Asset:
        """A copy whose pose at ``frame`` is ``box``; this asset is unchanged."""
        out = self.copy()
        out.centers[frame], out.sizes[frame], out.rotations[frame] = box.center, box.size, box.rotation
        return out

    def copy(self) -> Asset:
        """A deep copy: no tensor is shared with this asset."""
        return copy.deepcopy(self)

    def validate(self, num_frames: int, image_size: tuple[int, int], where: str) -> None:
        """Raise :class:`ValidationError` naming the first bad field (``where`` prefixes it)."""
        if self.id < 1:
            raise ValidationError(f"{where}.id: must be >= 1 (0 is the background), got {self.id}")
        T = num_frames
        _check_tensor(self.centers, (T, 3), f"{where}.centers")
        _check_tensor(self.sizes, (T, 3), f"{where}.sizes")
        _check_tensor(self.rotations, (T, 3, 3), f"{where}.rotations")
        _check_tensor(self.boxes_2d, (T, 4), f"{where}.boxes_2d")
        _check_tensor(self.visibility, (T,), f"{where}.visibility")
        bad = (self.sizes <= 0).any(dim=-1).nonzero()
        if len(bad):
            f = int(bad[0])
            raise ValidationError(f"{where}.sizes[{f}]: every extent must be positive, got {self.sizes[f].tolist()}")
        ok = geometry.is_rotation(self.rotations, atol=1e-3)
        if not bool(ok.all()):
            f = int((~ok).nonzero()[0])
            raise ValidationError(f"{where}.rotations[{f}]: expected a rotation matrix (orthonormal, det +1)")
        if not 0 <= self.source_frame < T and self.appearance is None:
            raise ValidationError(f"{where}.source_frame: {self.source_frame} is not a frame index in [0, {T})")
        if self.masks is not None and tuple(self.masks.shape) != (T, *image_size):
            raise ValidationError(f"{where}.masks: expected shape {(T, *image_size)}, got {tuple(self.masks.shape)}")
        if self.appearance is not None:
            _check_tensor(self.appearance.image, (3, None, None), f"{where}.appearance.image")
            _check_tensor(self.appearance.box_2d, (4,), f"{where}.appearance.box_2d")
            if self.appearance.pose is not None:
                _check_tensor(self.appearance.pose, (12,), f"{where}.appearance.pose")
            image_hw = tuple(self.appearance.image.shape[-2:])
            for name in ("mask", "depth"):
                value = getattr(self.appearance, name)
                if value is not None and tuple(value.shape) != image_hw:
                    raise ValidationError(f"{where}.appearance.{name}: expected the image's size {image_hw}, "
                                          f"got {tuple(value.shape)}")
        if self.observed_poses is not None:
            _check_tensor(self.observed_poses, (T, 12), f"{where}.observed_poses")


@dataclass
class Background:
    """What the scene's background token is made from.

    Attributes:
        image: (3, H, W) float in [0, 1]; object regions in it are greyed out before encoding.
        camera: the camera that took ``image`` (the background token carries the motion
            from this camera to the target camera).
        object_boxes: (M, 4) float pixel boxes of objects in ``image`` to grey out.
        attributes: JSON-serialisable extras (the synthetic renderer keeps its backdrop style here).
        depth: (H, W) float camera-frame depth in metres of ``image`` when known (it lets a
            render from another camera keep the image's unchanged pixels), else None.
        shows_scene: whether ``image`` is a photo of this scene's own world taken by
            ``camera``; False for another scene's photo standing in for it (a background
            swap), whose pixels a render must not keep.
    """

    image: Tensor
    camera: Camera
    object_boxes: Tensor = field(default_factory=lambda: torch.zeros(0, 4))
    attributes: dict = field(default_factory=dict)
    depth: Tensor | None = None
    shows_scene: bool = True

    def __post_init__(self) -> None:
        self.image, self.object_boxes = _f32(self.image), _f32(self.object_boxes).reshape(-1, 4)
        self.depth = None if self.depth is None else _f32(self.depth)


@dataclass
class Scene:
    """A video (or frame pair) and the neural assets found in it.

    Attributes:
        frames: (T, 3, H, W) float in [0, 1].
        cameras: T cameras, one per frame.
        assets: the objects; their order fixes the token order.
        background: an explicit background (e.g. after a background swap), or None to use
            the source frame of the render.
        depth: (T, H, W) float camera-frame depth in metres, when known.
        metadata: JSON-serialisable extras (generator seed, renderer parameters, edit history).
        removed_boxes: (R, T, 4) float pixel boxes ``(x0, y0, x1, y1)`` of the objects removed from
            the scene, in every frame (NaN where one is not seen), or None: each frame's own photo
            still shows them, so a render leaves them out of its background (:meth:`photo_boxes`).
    """

    frames: Tensor
    cameras: list[Camera]
    assets: list[Asset] = field(default_factory=list)
    background: Background | None = None
    depth: Tensor | None = None
    metadata: dict = field(default_factory=dict)
    removed_boxes: Tensor | None = None

    def __post_init__(self) -> None:
        self.frames = _f32(self.frames)
        if self.depth is not None:
            self.depth = _f32(self.depth)
        if self.removed_boxes is not None:
            self.removed_boxes = _f32(self.removed_boxes)
        self.cameras, self.assets = list(self.cameras), list(self.assets)

    # -- access -----------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[-2])

    @property
    def width(self) -> int:
        return int(self.frames.shape[-1])

    @property
    def asset_ids(self) -> list[int]:
        return [a.id for a in self.assets]

    def asset(self, asset_id: int) -> Asset:
        """The asset with ``asset_id``.

        Raises:
            ValidationError: ``asset_id`` is not an integer (``True``, ``1.0`` and ``"1"`` are refused, not matched).
            AssetNotFoundError: no asset has that id; the message lists the known ids.
        """
        asset_id = check_asset_id(asset_id)
        for a in self.assets:
            if a.id == asset_id:
                return a
        raise AssetNotFoundError(f"asset id {asset_id} is not in this scene (ids: {self.asset_ids})")

    def index_of(self, asset_id: int) -> int:
        """Position of ``asset_id`` in :attr:`assets`."""
        return self.assets.index(self.asset(asset_id))

    def next_asset_id(self) -> int:
        """The smallest id larger than every id in use."""
        return max(self.asset_ids, default=0) + 1

    def __iter__(self) -> Iterator[Asset]:
        return iter(self.assets)

    def __len__(self) -> int:
        return len(self.assets)

    def __iadd__(self, asset: Asset) -> Scene:
        """``scene += asset`` appends an asset in place (its id must be new)."""
        if asset.id in self.asset_ids:
            raise ValidationError(f"asset id {asset.id} is already in this scene (ids: {self.asset_ids})")
        self.assets.append(asset)
        return self

    def copy(self) -> Scene:
        """A deep copy: editing it never changes this scene."""
        return copy.deepcopy(self)

    def replace(self, **changes: Any) -> Scene:
        """A deep copy with some fields replaced (``dataclasses.replace`` semantics)."""
        return replace(self.copy(), **changes)

    def photo_boxes(self, frame: int) -> Tensor:
        """(M, 4) float pixel boxes of every object frame ``frame``'s photo shows: the assets' and the removed objects' seen there."""
        boxes = [a.boxes_2d[frame] for a in self.assets]
        if self.removed_boxes is not None:
            removed = self.removed_boxes[:, frame]
            boxes += list(removed[torch.isfinite(removed).all(-1)])
        return torch.stack(boxes) if boxes else torch.zeros(0, 4)

    def instance_map(self, frame: int) -> Tensor:
        """(H, W) long instance ids at ``frame`` from the assets' masks (0 = background, later assets on top)."""
        out = torch.zeros(self.height, self.width, dtype=torch.long)
        for a in self.assets:
            if a.masks is not None:
                out[a.masks[frame]] = a.id
        return out

    # -- validation ---------------------------------------------------------------------
    def validate(self) -> Scene:
        """Check every field; raise :class:`ValidationError` naming the first bad one. Returns self."""
        check_frames(self.frames)
        _validate_parts(self.num_frames, self.height, self.width, self.cameras, self.assets, self.background, self.depth,
                        self.removed_boxes)
        return self

    # -- files ------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, like: tuple[str | os.PathLike, Scene] | None = None) -> Path:
        """Write the scene to ``folder`` (created if needed); returns the folder path.

        ``scene.json`` goes last and a ``scene.json`` already in the folder is deleted before
        anything else is written, so an interrupted save leaves a folder that fails to load
        (:class:`SceneFormatError`: ``scene.json`` missing) instead of one that loads as a mix
        of the old and the new scene. Other files in the folder are left alone.

        Args:
            folder: where to write.
            like: ``(scene_folder, scene)``: another saved Scene folder and the Scene loaded from
                it, typically the one this scene was edited from. Frames equal to its frames and
                masks equal to its asset's of the same id are copied from its files rather than
                encoded again (an edit of a long clip then saves in file copies). Ignored where
                ``scene_folder`` is ``folder`` itself, not a folder of this format, or of another size.
        """
        self.validate()
        writer = SceneWriter(folder)
        reuse = _SavedFiles.of(like, folder, self)
        if reuse is not None and torch.equal(reuse.scene.frames, self.frames):
            writer.copy_frames(reuse.folder, self.num_frames, (self.height, self.width))
        else:
            for frame in self.frames:
                writer.add_frame(frame)
        for a in self.assets:
            if a.masks is None:
                continue
            files = reuse.mask_folder(a) if reuse is not None else None
            if files is not None:
                writer.copy_masks(a.id, files, reuse.masks_per_file)
            else:
                writer.add_masks(a.id, a.masks)
        return writer.finish(self.cameras, self.assets, self.background, self.depth, self.metadata, self.removed_boxes)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Scene:
        """Read a scene written by :meth:`save`, or a Scene zip written by :meth:`save_zip` (see :meth:`load_zip`).

        Images are checked from their headers (the size ``scene.json`` gives, at most
        :data:`~neuralassets.video.MAX_IMAGE_SIDE` a side) before any pixel is decoded, and
        masks are decoded one file at a time. Format-1 folders (each asset's masks in one PNG) load too.

        Raises:
            SceneFormatError: a file is missing or unreadable, the version is unknown, or a
                field is malformed; the message names the file or field.
        """
        folder = Path(folder)
        if folder.is_file():
            if not zipfile.is_zipfile(folder):
                raise SceneFormatError(f"{folder}: neither a saved Scene folder nor a Scene zip")
            return cls.load_zip(folder)
        meta_path = folder / _SCENE_FILE
        meta = read_json(meta_path, SceneFormatError, "missing; not a saved Scene folder")
        version = meta.get("format_version") if isinstance(meta, dict) else None
        if version is None:
            raise SceneFormatError(f"{meta_path}: no format_version field")
        if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
            raise SceneFormatError(
                f"{meta_path}: format_version {version!r} is not supported (this library reads 1..{FORMAT_VERSION}; "
                "a newer version needs a newer neuralassets)")
        try:
            T, H, W = int(meta["num_frames"]), int(meta["height"]), int(meta["width"])
            asset_entries = list(meta["assets"])
        except (KeyError, TypeError, ValueError) as e:
            raise SceneFormatError(f"{meta_path}: missing or malformed field {e}") from None
        if max(H, W) > MAX_IMAGE_SIDE:
            raise SceneFormatError(f"{meta_path}: frames of {W}x{H} pixels are over the {MAX_IMAGE_SIDE} pixel limit per side")
        if min(T, H, W) < 1:
            raise SceneFormatError(f"{meta_path}: num_frames, height and width must be positive, got {T}, {H}, {W}")
        masks_per_file = T  # format 1: one file of every frame
        if version > 1:
            masks_per_file = meta.get("mask_frames_per_file")
            if isinstance(masks_per_file, bool) or not isinstance(masks_per_file, int) or masks_per_file < 1:
                raise SceneFormatError(f"{meta_path}: mask_frames_per_file: expected a positive integer, got {masks_per_file!r}")
            file_pixels, limit = min(masks_per_file, T) * H * W, max(MASK_FILE_PIXELS, H * W)
            if file_pixels > limit:
                raise SceneFormatError(f"{meta_path}: mask_frames_per_file {masks_per_file} makes mask files of {file_pixels} "
                                       f"pixels, over the {limit} pixel limit for one file")
        tensor_path = folder / _TENSOR_FILE
        if not tensor_path.is_file():
            raise SceneFormatError(f"{tensor_path}: missing")
        try:
            tensors = load_file(str(tensor_path))
        except (SafetensorError, OSError, ValueError) as e:
            raise SceneFormatError(f"{tensor_path}: unreadable or truncated ({e})") from None

        def get(name: str) -> Tensor:
            if name not in tensors:
                raise SceneFormatError(f"{tensor_path}: tensor {name!r} is missing")
            return tensors[name]

        frames = torch.empty(T, 3, H, W)  # filled in place: a list of frames and its stack would hold the clip twice
        for i in range(T):
            frames[i] = _read_png(folder / "frames" / f"{i:05d}.png", (H, W))
        K, R, t = get("camera_K"), get("camera_R"), get("camera_t")
        if K.shape[0] != T or R.shape[0] != T or t.shape[0] != T:
            raise SceneFormatError(f"{tensor_path}: camera tensors do not have {T} frames")
        cameras = [Camera(K[i], R[i], t[i], W, H) for i in range(T)]
        assets = []
        for i, entry in enumerate(asset_entries):
            try:
                key = f"asset_{int(entry['id']):04d}"
                masks = None
                if entry.get("masks"):
                    masks = _read_masks(_inside(folder, entry["masks"]), T, (H, W), masks_per_file, single_file=version == 1)
                appearance = None
                if entry.get("appearance"):
                    img = _read_png(_inside(folder, entry["appearance"]), None)
                    appearance = AppearanceSource(img, get(f"{key}.appearance_box_2d"), tensors.get(f"{key}.appearance_pose"),
                                                  tensors.get(f"{key}.appearance_mask"), tensors.get(f"{key}.appearance_depth"))
                assets.append(Asset(
                    id=entry["id"], name=str(entry["name"]), category=str(entry.get("category", "object")),
                    centers=get(f"{key}.centers"), sizes=get(f"{key}.sizes"), rotations=get(f"{key}.rotations"),
                    boxes_2d=get(f"{key}.boxes_2d"), visibility=get(f"{key}.visibility"),
                    source_frame=entry["source_frame"], masks=masks, appearance=appearance,
                    attributes=dict(entry.get("attributes") or {}), observed_poses=tensors.get(f"{key}.observed_poses")))
            except (KeyError, TypeError, ValueError) as e:
                raise SceneFormatError(f"{meta_path}: assets[{i}] is malformed ({e})") from None
        background = None
        if meta.get("background"):
            bg = meta["background"]
            img = _read_png(_inside(folder, bg["image"]), None)
            camera = Camera(get("background.K"), get("background.R"), get("background.t"), bg["width"], bg["height"])
            background = Background(img, camera, get("background.object_boxes"), dict(bg.get("attributes") or {}),
                                    tensors.get("background.depth"), bool(bg.get("shows_scene", True)))
        scene = cls(frames, cameras, assets, background, tensors.get("depth"), dict(meta.get("metadata") or {}),
                    tensors.get("removed_boxes"))
        try:
            return scene.validate()
        except ValidationError as e:
            raise SceneFormatError(f"{folder}: {e}") from None

    def save_zip(self, path: str | os.PathLike) -> Path:
        """Write the scene folder format into one zip archive at ``path``; returns the path.

        The archive is written under a temporary name and renamed into place, so an archive
        already at ``path`` stays whole until the new one is complete.
        """
        path = Path(path)
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save(Path(tmp) / "scene")
            partial = path.with_name(path.name + ".tmp")
            try:
                with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
                    for f in sorted(folder.rglob("*")):
                        if f.is_file():
                            zf.write(f, f.relative_to(folder).as_posix())
            except BaseException:  # a failed or interrupted write leaves the previous archive and no partial one
                partial.unlink(missing_ok=True)
                raise
            os.replace(partial, path)
        return path

    @classmethod
    def load_zip(cls, path: str | os.PathLike, workdir: str | os.PathLike | None = None) -> Scene:
        """Read a scene from a zip written by :meth:`save_zip` (or a zipped Scene folder).

        The archive's listing is checked before anything is extracted: at most
        :data:`MAX_ZIP_ENTRIES` entries and :data:`MAX_ZIP_BYTES` uncompressed, no more than
        :data:`MAX_ZIP_RATIO` times its own size above :data:`ZIP_RATIO_FLOOR` (a zip bomb), and
        no link or entry landing outside the extraction folder (absolute paths, ``..``). Each
        entry is then streamed out with a cap at the size its listing declares, in case the
        listing lies. The files go into a fresh folder inside ``workdir``, removed before
        returning.

        Args:
            path: the archive.
            workdir: the caller's folder to extract into (created if needed); None uses the
                system's temporary folder.

        Raises:
            SceneFormatError: the archive is unreadable, over a limit or not a Scene; the message
                names it by its base name, and files inside it by their path in the archive.
        """
        path = Path(path)
        name = path.name
        if not path.is_file():
            raise SceneFormatError(f"{name}: no such file")
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise SceneFormatError(f"{name}: not a readable zip archive ({getattr(e, 'strerror', None) or e})") from None
        if workdir is not None:
            Path(workdir).mkdir(parents=True, exist_ok=True)
        with zf, tempfile.TemporaryDirectory(dir=workdir, prefix="scene-zip-") as tmp:
            root = Path(tmp).resolve()
            infos = _checked_zip_listing(zf, name, path.stat().st_size, root)
            _extract_capped(zf, infos, name, root)
            metas = sorted(root.rglob(_SCENE_FILE), key=lambda p: len(p.parts))
            if not metas:
                raise SceneFormatError(f"{name}: no {_SCENE_FILE} inside; not a Scene archive")
            try:
                return cls.load(metas[0].parent)
            except SceneFormatError as e:  # name the files by their place in the archive, not the extraction folder
                raise SceneFormatError(str(e).replace(str(root), name)) from None


@dataclass
class _SavedFiles:
    """A saved format-2 Scene folder and the Scene loaded from it, whose files a save may copy."""

    folder: Path
    scene: Scene
    masks_per_file: int
    mask_folders: dict[int, Path]  # asset id -> its masks' folder

    @classmethod
    def of(cls, like: tuple[str | os.PathLike, Scene] | None, target: str | os.PathLike, scene: Scene) -> _SavedFiles | None:
        """The files of ``like`` where a save of ``scene`` into ``target`` may copy them, else None."""
        if like is None:
            return None
        folder, source = Path(like[0]), like[1]
        if not folder.is_dir() or folder.resolve() == Path(target).resolve() or \
                (source.num_frames, source.height, source.width) != (scene.num_frames, scene.height, scene.width):
            return None
        try:
            meta = json.loads((folder / _SCENE_FILE).read_text())
        except (OSError, ValueError):
            return None
        if meta.get("format_version") != FORMAT_VERSION or not isinstance(meta.get("mask_frames_per_file"), int):
            return None
        entries = {e.get("id"): e.get("masks") for e in meta.get("assets", []) if isinstance(e, dict)}
        mask_folders = {i: folder / m for i, m in entries.items() if isinstance(i, int) and isinstance(m, str)}
        return cls(folder, source, meta["mask_frames_per_file"], mask_folders)

    def mask_folder(self, asset: Asset) -> Path | None:
        """The folder of ``asset``'s masks where the saved scene's asset of its id has the same masks, else None."""
        if asset.id not in self.mask_folders:
            return None
        saved = next((a for a in self.scene.assets if a.id == asset.id), None)
        if saved is None or saved.masks is None or not torch.equal(saved.masks, asset.masks):
            return None
        return self.mask_folders[asset.id]


class SceneWriter:
    """Writes a Scene folder piece by piece: frames as they come, then each asset's masks, then the rest.

    :meth:`Scene.save` writes through it; a long clip can use it directly so that neither
    its frames nor its masks are ever all in memory (each asset's masks are written frame
    by frame into files of :attr:`masks_per_file` frames, at most one file's worth held, compressed).
    The folder's old ``scene.json`` goes first and the new one last, as in :meth:`Scene.save`.

    Args:
        folder: the Scene folder (created if needed).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        (self.folder / _SCENE_FILE).unlink(missing_ok=True)
        (self.folder / "frames").mkdir(parents=True, exist_ok=True)
        self.num_frames = 0
        self.size: tuple[int, int] | None = None  # (H, W)
        self.masks_per_file = 0  # frames per mask file, set by the first frame's size
        self._masks: dict[int, str] = {}

    def add_frame(self, image: Tensor) -> None:
        """Append frame ``num_frames``: (3, H, W) float in [0, 1], the size of the first frame."""
        _check_tensor(image, (3, None, None), f"frames[{self.num_frames}]")
        if self.size is None:
            self._set_size(tuple(image.shape[1:]))
        elif tuple(image.shape[1:]) != self.size:
            raise ValidationError(f"frames[{self.num_frames}]: {image.shape[2]}x{image.shape[1]} pixels, "
                                  f"but the first frame is {self.size[1]}x{self.size[0]}")
        _write_png(self.folder / "frames" / f"{self.num_frames:05d}.png", image)
        self.num_frames += 1

    def copy_frames(self, source: Path, count: int, size: tuple[int, int]) -> None:
        """Take frames 0..count-1 as the PNG files of Scene folder ``source`` (frames of ``size`` (H, W)), unencoded.

        For a folder with no frames yet; the caller vouches that they are the frames to write.
        """
        if self.num_frames:
            raise ValidationError("SceneWriter.copy_frames: frames were already added")
        self._set_size(tuple(size))
        for t in range(count):
            shutil.copyfile(source / "frames" / f"{t:05d}.png", self.folder / "frames" / f"{t:05d}.png")
        self.num_frames = count

    def copy_masks(self, asset_id: int, source: Path, masks_per_file: int) -> None:
        """Take asset ``asset_id``'s masks as the mask files of folder ``source`` (written ``masks_per_file`` frames a file)."""
        if masks_per_file != self.masks_per_file:
            raise ValidationError(f"SceneWriter.copy_masks: {source.name} holds {masks_per_file} frames a file, "
                                  f"this folder {self.masks_per_file}")
        folder = self._empty_mask_folder(asset_id)
        for start in range(0, self.num_frames, self.masks_per_file):
            shutil.copyfile(source / f"{start:05d}.png", folder / f"{start:05d}.png")
        self._masks[int(asset_id)] = f"masks/{folder.name}"

    def add_masks(self, asset_id: int, masks: Tensor | Iterable[Tensor]) -> None:
        """Write asset ``asset_id``'s masks: (T, H, W) bool, or T (H, W) bool masks one at a time."""
        if self.size is None:
            raise ValidationError("SceneWriter.add_masks: add the frames first")
        folder = self._empty_mask_folder(asset_id)

        def checked() -> Iterator[Tensor]:
            for t, mask in enumerate(masks):
                mask = torch.as_tensor(mask)
                if tuple(mask.shape) != self.size:
                    raise ValidationError(f"asset {asset_id}: mask {t} is {tuple(mask.shape)}, expected {self.size}")
                yield mask

        stream, count = checked(), 0
        while written := _write_mask_png(folder / f"{count:05d}.png", islice(stream, self.masks_per_file), self.size):
            count += written
        if count != self.num_frames:
            raise ValidationError(f"asset {asset_id}: {count} masks for {self.num_frames} frames")
        self._masks[int(asset_id)] = f"masks/{folder.name}"

    def _set_size(self, size: tuple[int, int]) -> None:
        """Fix the frames' (H, W) and so the number of masks a mask file holds."""
        self.size = size
        self.masks_per_file = max(1, MASK_FILE_PIXELS // (size[0] * size[1]))

    def _empty_mask_folder(self, asset_id: int) -> Path:
        """Asset ``asset_id``'s mask folder, created and emptied (an earlier scene saved here may have had more frames)."""
        key = f"asset_{int(asset_id):04d}"
        folder = self.folder / "masks" / key
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.png"):
            stale.unlink()
        return folder

    def finish(self, cameras: list[Camera], assets: list[Asset], background: Background | None = None,
               depth: Tensor | None = None, metadata: dict | None = None, removed_boxes: Tensor | None = None) -> Path:
        """Write the tensors and ``scene.json``; returns the folder.

        ``assets`` whose masks were given to :meth:`add_masks` may carry ``masks=None``.
        Everything is checked as :meth:`Scene.validate` would before anything is written.
        """
        if self.size is None:
            raise ValidationError("SceneWriter.finish: a scene needs at least one frame")
        folder, T, (H, W) = self.folder, self.num_frames, self.size
        _validate_parts(T, H, W, cameras, assets, background, depth, removed_boxes)
        tensors: dict[str, Tensor] = {
            "camera_K": torch.stack([c.K for c in cameras]),
            "camera_R": torch.stack([c.R for c in cameras]),
            "camera_t": torch.stack([c.t for c in cameras]),
        }
        if depth is not None:
            tensors["depth"] = depth
        if removed_boxes is not None:
            tensors["removed_boxes"] = removed_boxes
        assets_json = []
        for a in assets:
            key = f"asset_{a.id:04d}"
            for name in ("centers", "sizes", "rotations", "boxes_2d", "visibility", "observed_poses"):
                if getattr(a, name) is not None:
                    tensors[f"{key}.{name}"] = getattr(a, name)
            entry = {"id": a.id, "name": a.name, "category": a.category, "source_frame": a.source_frame,
                     "attributes": a.attributes, "masks": self._masks.get(a.id), "appearance": None}
            if a.masks is not None and a.id not in self._masks:
                self.add_masks(a.id, a.masks)
                entry["masks"] = self._masks[a.id]
            if a.appearance is not None:
                (folder / "appearance").mkdir(exist_ok=True)
                entry["appearance"] = f"appearance/{key}.png"
                _write_png(folder / entry["appearance"], a.appearance.image)
                tensors[f"{key}.appearance_box_2d"] = a.appearance.box_2d
                for name in ("pose", "mask", "depth"):
                    if getattr(a.appearance, name) is not None:
                        tensors[f"{key}.appearance_{name}"] = getattr(a.appearance, name)
            assets_json.append(entry)
        background_json = None
        if background is not None:
            bg = background
            _write_png(folder / "background.png", bg.image)
            tensors.update({"background.K": bg.camera.K, "background.R": bg.camera.R, "background.t": bg.camera.t,
                            "background.object_boxes": bg.object_boxes})
            if bg.depth is not None:
                tensors["background.depth"] = bg.depth.clone()  # it may be a view of the frames' depth
            background_json = {"image": "background.png", "width": bg.camera.width, "height": bg.camera.height,
                               "attributes": bg.attributes, "shows_scene": bool(bg.shows_scene)}
        tmp = folder / (_TENSOR_FILE + ".tmp")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, folder / _TENSOR_FILE)
        meta = {
            "format_version": FORMAT_VERSION,
            "num_frames": T,
            "height": H,
            "width": W,
            "mask_frames_per_file": self.masks_per_file,
            "assets": assets_json,
            "background": background_json,
            "metadata": metadata or {},
        }
        tmp = folder / (_SCENE_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, folder / _SCENE_FILE)
        return folder


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

def _validate_parts(T: int, H: int, W: int, cameras: list[Camera], assets: list[Asset], background: Background | None,
                    depth: Tensor | None, removed_boxes: Tensor | None = None) -> None:
    """:meth:`Scene.validate` for everything but the frames, of a scene of T frames of H x W pixels."""
    if len(cameras) != T:
        raise ValidationError(f"cameras: expected one per frame ({T}), got {len(cameras)}")
    for i, cam in enumerate(cameras):
        cam.validate(f"cameras[{i}]")
        if (cam.width, cam.height) != (W, H):
            raise ValidationError(f"cameras[{i}]: image size {cam.width}x{cam.height} does not match frames {W}x{H}")
    seen: set[int] = set()
    for i, a in enumerate(assets):
        a.validate(T, (H, W), f"assets[{i}] (id {a.id})")
        if a.id in seen:
            raise ValidationError(f"assets[{i}].id: id {a.id} is used twice")
        seen.add(a.id)
    if depth is not None:
        _check_tensor(depth, (T, H, W), "depth", finite=False)
    if removed_boxes is not None:
        _check_tensor(removed_boxes, (None, T, 4), "removed_boxes", finite=False)
    if background is not None:
        _check_tensor(background.image, (3, None, None), "background.image")
        background.camera.validate("background.camera")
        if background.depth is not None:
            _check_tensor(background.depth, tuple(background.image.shape[1:]), "background.depth", finite=False)


def check_frames(frames: Tensor, where: str = "frames") -> None:
    """Raise :class:`ValidationError` naming ``where`` unless ``frames`` is (T >= 1, 3, H, W) float, finite, in [0, 1].

    uint8 frames (0..255) are refused rather than guessed at: divide them by 255 first.
    """
    _check_tensor(frames, (None, 3, None, None), where, finite=False)
    if frames.shape[0] < 1:
        raise ValidationError(f"{where}: a scene needs at least one frame")
    if not frames.is_floating_point():
        raise ValidationError(f"{where}: expected float values in [0, 1], got dtype {frames.dtype} (divide uint8 by 255)")
    # frame by frame: on a whole clip at once isfinite's temporaries are 1.7 times the clip's size
    if not all(bool(torch.isfinite(frame).all()) for frame in frames):
        raise ValidationError(f"{where}: expected finite values in [0, 1], got NaN or infinity")
    if frames.min() < 0 or frames.max() > 1:
        raise ValidationError(f"{where}: expected finite values in [0, 1], got [{float(frames.min()):.4g}, {float(frames.max()):.4g}]")


def check_asset_id(asset_id: Any, where: str = "asset id") -> int:
    """``asset_id`` as an int; raises :class:`ValidationError` naming ``where`` unless it is an integer.

    Python and numpy integers and one-element integer tensors pass; ``True``, ``1.0`` and ``"1"``
    are refused rather than matched to asset 1.
    """
    if not isinstance(asset_id, bool):
        try:
            return operator.index(asset_id)
        except TypeError:
            pass
    raise ValidationError(f"{where}: expected an integer, got {describe_value(asset_id)}")


def describe_value(value: Any) -> str:
    """``value`` with its kind, for messages: ``the string '1'``, ``the boolean True``, ``the float 1.0``."""
    kind = {str: "string", bool: "boolean", float: "float", list: "list", dict: "object"}.get(type(value))
    return f"the {kind} {value!r}" if kind else f"{value!r} ({type(value).__name__})"


def _mb(num_bytes: int) -> str:
    return f"{num_bytes / 1024**2:.1f} MB" if num_bytes >= 100 * 1024 else f"{num_bytes} bytes"


def _checked_zip_listing(zf: zipfile.ZipFile, name: str, archive_bytes: int, root: Path) -> list[zipfile.ZipInfo]:
    """The entries of a Scene zip, checked from its central directory alone (see :meth:`Scene.load_zip`)."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise SceneFormatError(f"{name}: {len(infos)} entries, over the {MAX_ZIP_ENTRIES} limit for a Scene zip; "
                               "refused before extracting")
    total = sum(i.file_size for i in infos)
    if total > MAX_ZIP_BYTES:
        raise SceneFormatError(f"{name}: unpacks to {_mb(total)}, over the {_mb(MAX_ZIP_BYTES)} limit for a Scene zip; "
                               "refused before extracting")
    if total > ZIP_RATIO_FLOOR and total > MAX_ZIP_RATIO * archive_bytes:
        raise SceneFormatError(
            f"{name}: unpacks to {_mb(total)} from {_mb(archive_bytes)} ({total / max(archive_bytes, 1):.0f}:1); a Scene's "
            f"PNG frames and tensors compress less than {MAX_ZIP_RATIO}:1, so it is refused as a zip bomb before extracting")
    for info in infos:
        target = (root / info.filename).resolve()
        is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
        if info.filename.startswith(("/", "\\")) or not target.is_relative_to(root) or is_link:
            raise SceneFormatError(f"{name}: entry {info.filename!r} points outside the archive's folder")
    return infos


def _extract_capped(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], name: str, root: Path) -> None:
    """Stream each entry into ``root``, refusing any that yields more bytes than its listing declares."""
    for info in infos:
        target = (root / info.filename).resolve()
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with zf.open(info) as src, open(target, "wb") as dst:
                left = info.file_size
                while chunk := src.read(1 << 20):
                    left -= len(chunk)
                    if left < 0:
                        raise SceneFormatError(f"{name}: entry {info.filename!r} unpacks to more than the "
                                               f"{info.file_size} bytes its listing declares")
                    dst.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
            raise SceneFormatError(f"{name}: entry {info.filename!r} is corrupt or unsupported ({e})") from None


def _check_tensor(x: Tensor, shape: tuple, where: str, finite: bool = True) -> None:
    if not isinstance(x, Tensor):
        raise ValidationError(f"{where}: expected a tensor, got {type(x).__name__}")
    if x.is_meta:
        raise ValidationError(f"{where}: tensor is on the 'meta' device and holds no data; move it to a real device")
    if x.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValidationError(f"{where}: expected shape {want}, got {tuple(x.shape)}")
    if finite and not bool(torch.isfinite(x).all()):
        idx = (~torch.isfinite(x)).nonzero()[0].tolist()
        raise ValidationError(f"{where}{idx}: expected a finite number, got {x[tuple(idx)].item()}")


def _inside(folder: Path, relative: str) -> Path:
    """Resolve a path named in scene.json, refusing anything that leaves the folder."""
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise SceneFormatError(f"{folder / _SCENE_FILE}: path {relative!r} points outside the scene folder")
    return path


def _write_png(path: Path, image: Tensor) -> None:
    """Write (3, H, W) float in [0, 1] as an 8-bit RGB PNG."""
    # zlib level 3: a 960x540 photo in 0.05 s instead of 0.12 s at the default 6, for 12 % more bytes; saving a
    # clip's frames is most of the time an edit of a person's clip takes
    Image.fromarray(to_numpy_image(image)).save(path, compress_level=3)


def _write_mask_png(path: Path, masks: Iterable[Tensor], size: tuple[int, int]) -> int:
    """Write N (H, W) bool masks one below the other as one 1-bit greyscale PNG of (N * H, W) pixels; returns N.

    The masks are compressed one at a time as they come (zlib scanlines), so only the
    compressed file is ever whole in memory; its first row is the first mask's top row.
    One bit a pixel makes the scanlines 8x shorter to compress and to inflate on reading.
    No file is written when ``masks`` is empty.
    """
    H, W = size
    compressor = zlib.compressobj(6)
    count = 0
    data = bytearray()
    for mask in masks:
        bits = np.packbits(mask.numpy().astype(bool), axis=1)  # (H, ceil(W / 8)), first pixel in the high bit
        rows = np.zeros((H, bits.shape[1] + 1), np.uint8)  # each scanline starts with its filter type, 0: none
        rows[:, 1:] = bits
        data += compressor.compress(rows.tobytes())
        count += 1
    if count == 0:
        return 0
    data += compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", W, H * count, 1, 0, 0, 0, 0)  # 1-bit greyscale, no interlace
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", bytes(data)) + chunk(b"IEND", b""))
    return count


def _open_image(path: Path, size: tuple[int, int] | None) -> Image.Image:
    """The decoded image at ``path``; its size, read from the header first, must be ``size`` (H, W) when given,
    and no side may exceed :data:`~neuralassets.video.MAX_IMAGE_SIDE`."""
    if not path.is_file():
        raise SceneFormatError(f"{path}: missing")
    width, height = image_size(path, MAX_IMAGE_SIDE, SceneFormatError, str(path))
    if size is not None and (height, width) != tuple(size):
        raise SceneFormatError(f"{path}: expected {size[1]}x{size[0]} pixels, got {width}x{height}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size was checked above
            img = Image.open(path)
            img.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise SceneFormatError(f"{path}: not a readable image ({e})") from None
    return img


def _read_png(path: Path, size: tuple[int, int] | None) -> Tensor:
    """(3, H, W) float in [0, 1]; ``size`` (H, W) is checked when given."""
    return from_numpy_image(np.asarray(_open_image(path, size).convert("RGB")))


def _read_masks(path: Path, T: int, size: tuple[int, int], per_file: int, single_file: bool) -> Tensor:
    """(T, H, W) bool masks of one asset from its folder ``path`` of files of ``per_file`` masks each
    (named by their first frame), or, with ``single_file`` (format 1), from the one PNG ``path``."""
    if single_file:
        return _read_mask_png(path, T, size)
    masks = torch.empty(T, *size, dtype=torch.bool)
    for start in range(0, T, per_file):
        count = min(per_file, T - start)
        masks[start:start + count] = _read_mask_png(path / f"{start:05d}.png", count, size)
    return masks


def _read_mask_png(path: Path, count: int, size: tuple[int, int]) -> Tensor:
    """(count, H, W) bool from a PNG of ``count`` (H, W) masks stacked vertically (:func:`_write_mask_png`).

    The PNG reader is used without Pillow's decompression-bomb check, which guards an image of
    unknown size: this one's size, read from its header before any pixel is decoded, must be
    exactly the masks' (a format-1 file holds a whole clip's masks and may be over Pillow's
    limit, yet is no larger than the frames already read).
    """
    H, W = size
    if not path.is_file():
        raise SceneFormatError(f"{path}: missing")
    try:
        with PngImagePlugin.PngImageFile(path) as img:
            if img.size != (W, count * H):
                raise SceneFormatError(f"{path}: expected {W}x{count * H} pixels, got {img.width}x{img.height} "
                                       f"({count} masks of {W}x{H} stacked)")
            arr = np.asarray(img) if img.mode == "1" else np.asarray(img.convert("L")) > 127  # 1-bit, or 8-bit (older)
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as e:
        raise SceneFormatError(f"{path}: not a readable PNG image ({e})") from None
    return torch.from_numpy(np.array(arr, dtype=bool)).reshape(count, H, W)


__all__ = ["FORMAT_VERSION", "MASK_FILE_PIXELS", "MAX_ZIP_BYTES", "MAX_ZIP_ENTRIES", "MAX_ZIP_RATIO", "ZIP_RATIO_FLOOR",
           "Camera", "Box3D", "AppearanceSource", "Asset", "Background", "Scene", "SceneWriter", "check_asset_id",
           "check_frames", "describe_value"]

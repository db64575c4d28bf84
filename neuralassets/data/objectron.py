"""Objectron clips (a phone video and its annotation protobuf) read as Scenes.

A clip of the Objectron dataset is ``videos/<class>/batch-<i>/<j>/video.MOV`` with its
annotation ``annotations/<class>/batch-<i>/<j>.pbdata`` (or, as one downloads a single clip,
``video.MOV`` and ``annotation.pbdata`` side by side). The annotation is a ``Sequence``
(``objectron/schema/annotation_data.proto``, ``object.proto`` and ``a_r_capture_metadata.proto``
of the Objectron repository), read here from the protobuf wire format (:mod:`.protowire`);
the fields used::

    Sequence         objects = 1 (Object), frame_annotations = 2 (FrameAnnotation)
    Object           id = 1, category = 2, rotation = 4 (3x3 row-major), translation = 5,
                     scale = 6 (full extents, metres): the box is rotation * (scale * unit box) + translation
                     in the AR session's world
    FrameAnnotation  frame_id = 1 (the video frame), annotations = 2 (ObjectAnnotation), camera = 3 (ARCamera),
                     timestamp = 4, plane_center = 5 and plane_normal = 6 (the support plane, camera frame)
    ObjectAnnotation object_id = 1 (an Object's id), keypoints = 2, visibility = 3
    ARCamera         transform = 3 (4x4 row-major camera to world), image_resolution_width = 5 and
                     _height = 6, intrinsics = 7 (3x3 row-major pixels), projection_matrix = 8, view_matrix = 9

Conventions converted here:

* ARKit's world has +y up (gravity); ours has +z up with the floor at z = 0. A world point
  ``(x, y, z)`` becomes ``(x, -z, y - h)``, where ``h`` is the height of the support plane the
  annotators' tool found (``plane_center`` of the first frame that has one, 0 if none does).
* An ARKit camera looks down its -z with +y up; ours (OpenCV) down +z with +y down, so the
  camera-to-world rotation is multiplied by ``diag(1, -1, -1)`` before inverting.
* The intrinsics describe the sensor's landscape image (``image_resolution_width`` x ``_height``,
  e.g. 1920 x 1440); the clip is seen upright, in portrait, turned 90 degrees clockwise, which
  is also the frame the keypoints' normalised ``point_2d`` refer to. A portrait pixel
  ``(x', y')`` is the landscape pixel ``(u, v) = (y', H_l - x')``, so the portrait camera has
  axes ``(-y, x, z)`` of the landscape one and ``K' = [[f_y, 0, H_l - c_y], [0, f_x, c_x], [0, 0, 1]]``.
  Decoders differ in whether they apply the file's rotation tag: frames that come out
  landscape are turned here, frames that come out portrait are taken as they are.
* Objectron objects do not move; each asset's box is the same in every frame. Its visibility
  in a frame is the annotation's ``visibility`` (0 where the frame does not annotate it), its
  2D box the projected box clipped to the image. There are no masks or depth.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .. import geometry
from ..errors import SceneFormatError, ValidationError, VideoError
from ..image_ops import from_numpy_image
from ..scene import Asset, Camera, Scene
from ..video import iter_video
from . import protowire

#: ARKit world (y up) to ours (z up): (x, y, z) -> (x, -z, y).
_Z_UP = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
_OPENCV_FROM_ARKIT = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
#: Landscape camera axes to portrait ones: the portrait x is the landscape -y, its y the landscape x.
_PORTRAIT = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


class ObjectronObject(NamedTuple):
    """One annotated object of a clip, in the AR session's world (y up)."""

    id: int
    category: str
    rotation: Tensor  # (3, 3) object to world
    translation: Tensor  # (3,) metres
    scale: Tensor  # (3,) full extents, metres


class ObjectronFrame(NamedTuple):
    """One annotated video frame: its camera and which objects it shows how much."""

    frame_id: int
    transform: Tensor  # (4, 4) camera to world, ARKit axes
    intrinsics: Tensor  # (3, 3) landscape pixels
    resolution: tuple[int, int]  # landscape (width, height) the intrinsics refer to
    visibility: dict[int, float]  # object id -> visibility
    timestamp: float
    plane_center: Tensor | None  # (3,) camera frame, metres


class ObjectronSequence(NamedTuple):
    """A parsed annotation file."""

    objects: list[ObjectronObject]
    frames: list[ObjectronFrame]  # in frame_id order


def parse_sequence(data: bytes, where: str = "annotation") -> ObjectronSequence:
    """Parse a serialised Objectron ``Sequence``.

    Raises:
        SceneFormatError: malformed bytes, or a field of the wrong size; the message starts with ``where``.
    """
    try:
        top = protowire.by_number(data)
        objects = [_object(o.value, f"objects[{k}]") for k, o in enumerate(top.get(1, []))]
        frames = [_frame(f.value, f"frame_annotations[{k}]") for k, f in enumerate(top.get(2, []))]
    except SceneFormatError as e:
        raise SceneFormatError(f"{where}: {e}") from None
    if not frames:
        raise SceneFormatError(f"{where}: no frame_annotations; not an Objectron annotation file")
    return ObjectronSequence(objects, sorted(frames, key=lambda f: f.frame_id))


def _sized(values: np.ndarray, count: int, name: str) -> Tensor:
    if values.size != count:
        raise SceneFormatError(f"{name}: expected {count} numbers, got {values.size}")
    return torch.from_numpy(values.astype(np.float32))


def _object(data: bytes, where: str) -> ObjectronObject:
    f = protowire.by_number(data)
    return ObjectronObject(protowire.scalar(f, 1, "int"), protowire.scalar(f, 2, "str", ""),
                           _sized(protowire.floats(f.get(4, [])), 9, f"{where}.rotation").reshape(3, 3),
                           _sized(protowire.floats(f.get(5, [])), 3, f"{where}.translation"),
                           _sized(protowire.floats(f.get(6, [])), 3, f"{where}.scale"))


def _frame(data: bytes, where: str) -> ObjectronFrame:
    f = protowire.by_number(data)
    camera = protowire.by_number(protowire.scalar(f, 3, "bytes", b""))
    if 3 in camera:
        transform = _sized(protowire.floats(camera[3]), 16, f"{where}.camera.transform").reshape(4, 4)
    elif 9 in camera:
        transform = torch.linalg.inv(_sized(protowire.floats(camera[9]), 16, f"{where}.camera.view_matrix").reshape(4, 4))
    else:
        raise SceneFormatError(f"{where}.camera: neither transform nor view_matrix is set")
    intrinsics = _sized(protowire.floats(camera.get(7, [])), 9, f"{where}.camera.intrinsics").reshape(3, 3)
    resolution = (protowire.scalar(camera, 5, "int"), protowire.scalar(camera, 6, "int"))
    if min(resolution) <= 0 or resolution[0] < resolution[1]:
        raise SceneFormatError(f"{where}.camera: image_resolution_width/height {resolution} is not the sensor's "
                               "landscape image size")
    visibility = {}
    for annotation in f.get(2, []):
        a = protowire.by_number(annotation.value)
        visibility[protowire.scalar(a, 1, "int")] = protowire.scalar(a, 3, "float", 0.0)
    plane = protowire.floats(f.get(5, []))
    return ObjectronFrame(protowire.scalar(f, 1, "int"), transform, intrinsics, resolution, visibility,
                          protowire.scalar(f, 4, "double", 0.0), torch.from_numpy(plane.copy()) if plane.size == 3 else None)


def read_annotation(path: str | os.PathLike) -> ObjectronSequence:
    """Parse an Objectron annotation file (``.pbdata``).

    Raises:
        SceneFormatError: missing, unreadable or malformed; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise SceneFormatError(f"{path}: no such annotation file")
    return parse_sequence(path.read_bytes(), str(path))


def objectron_clips(path: str | os.PathLike) -> list[tuple[Path, Path]]:
    """The (video, annotation) pairs of an Objectron folder, sorted.

    Args:
        path: a clip folder holding ``video.MOV`` and ``annotation.pbdata``, or a dataset root
            holding ``annotations/**/<clip>.pbdata`` and ``videos/**/<clip>/video.MOV``
            (clips with no video are left out).

    Raises:
        SceneFormatError: no clip is found.
    """
    path = Path(path)
    if (path / "annotation.pbdata").is_file():
        videos = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower() == "video.mov")
        if videos:
            return [(videos[0], path / "annotation.pbdata")]
    clips = []
    annotations = path / "annotations"
    if annotations.is_dir():
        for annotation in sorted(annotations.rglob("*.pbdata")):
            clip = path / "videos" / annotation.relative_to(annotations).with_suffix("")
            video = clip / "video.MOV"
            if video.is_file():
                clips.append((video, annotation))
    if not clips:
        raise SceneFormatError(f"{path}: no Objectron clip found (expected video.MOV with annotation.pbdata, "
                               "or annotations/**/*.pbdata with videos/**/video.MOV)")
    return clips


def annotated_frames(sequence: ObjectronSequence, count: int | None = None) -> list[int]:
    """Frame ids of ``count`` annotated frames spread evenly over the clip (all of them when None)."""
    ids = [f.frame_id for f in sequence.frames]
    if count is None or count >= len(ids):
        return ids
    return [ids[int(i)] for i in np.linspace(0, len(ids) - 1, count).round()]


def read_objectron(video: str | os.PathLike, annotation: str | os.PathLike, frames: Sequence[int] | None = None,
                   max_side: int | None = 512) -> Scene:
    """Read an Objectron clip as a Scene (conventions in the module docstring).

    Args:
        video: the clip's ``video.MOV``.
        annotation: its ``.pbdata`` annotation.
        frames: video frame ids to read, in increasing order (default: every annotated frame);
            each must be annotated.
        max_side: frames are shrunk (aspect kept) so that no side exceeds this many pixels; the
            intrinsics follow. None keeps the video's size.

    Returns:
        A validated Scene: frames (T, 3, H, W) upright; one OpenCV camera per frame in a z-up
        world whose floor is the support plane; one asset per annotated object (id = its
        position in the annotation + 1, name ``"<category> <objectron id>"``) with its box in
        every frame, 2D boxes and visibility; no depth or masks. ``metadata["objectron"]`` holds
        the frame ids, timestamps and the plane height removed.

    Raises:
        SceneFormatError: the annotation is malformed or lacks a frame asked for.
        VideoError: the video cannot be read, holds fewer frames than asked for, or its frames'
            shape does not match the annotation's camera.
    """
    video, annotation = Path(video), Path(annotation)
    sequence = read_annotation(annotation)
    by_id = {f.frame_id: f for f in sequence.frames}
    wanted = annotated_frames(sequence) if frames is None else [int(i) for i in frames]
    if not wanted:
        raise SceneFormatError(f"{annotation}: no frame asked for")
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise SceneFormatError(f"{annotation}: frames {missing[:8]} are not annotated (annotated: {len(by_id)} frames, "
                               f"ids {min(by_id)} to {max(by_id)})")
    if wanted != sorted(set(wanted)):
        raise SceneFormatError(f"{annotation}: frames must be asked for in increasing order without repeats, got {wanted[:8]}")
    annotated = [by_id[i] for i in wanted]
    images = _upright_frames(video, wanted, annotated[0].resolution, max_side)
    H, W = images.shape[-2:]
    floor = _floor_height(sequence)
    cameras = [_camera(f, W, H, floor) for f in annotated]
    assets = [_asset(k, obj, annotated, cameras, floor) for k, obj in enumerate(sequence.objects)]
    metadata = {"objectron": {"video": video.name, "annotation": annotation.name, "frame_ids": wanted,
                              "timestamps": [f.timestamp for f in annotated], "floor_height": floor}}
    scene = Scene(images, cameras, assets, metadata=metadata)
    try:
        return scene.validate()
    except ValidationError as e:
        raise SceneFormatError(f"{annotation}: {e}") from None


def _upright_frames(video: Path, wanted: list[int], resolution: tuple[int, int], max_side: int | None) -> Tensor:
    """(T, 3, H, W) the wanted frames, upright (portrait), decoded one at a time."""
    keep, out, count = set(wanted), [], 0
    frames, _ = iter_video(video, max_side=max_side, max_frames=wanted[-1] + 1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".* are shrunk to ")  # a dataset's frames are meant to be shrunk
        for index, frame in enumerate(frames):
            count = index + 1
            if index in keep:
                out.append(frame)
    if len(out) < len(wanted):
        raise VideoError(f"{video.name}: holds {count} frames, the annotation asks for frame {wanted[-1]}")
    array = np.stack(out)
    height, width = array.shape[1:3]
    if width > height:  # the sensor's landscape image, as stored: turned upright as the file's rotation says
        array = np.ascontiguousarray(np.rot90(array, k=-1, axes=(1, 2)))
        height, width = width, height
    if abs(width / height - resolution[1] / resolution[0]) > 0.02:
        raise VideoError(f"{video.name}: upright frames of {width}x{height} pixels do not have the shape of the "
                         f"camera's {resolution[0]}x{resolution[1]} image turned upright")
    return from_numpy_image(array)


def _floor_height(sequence: ObjectronSequence) -> float:
    """Height (ARKit y) of the support plane in the first frame that gives one, 0 if none does."""
    for frame in sequence.frames:
        if frame.plane_center is not None:
            return float((frame.transform[:3, :3] @ frame.plane_center + frame.transform[:3, 3])[1])
    return 0.0


def _world_point(point: Tensor, floor: float) -> Tensor:
    return _Z_UP @ point - torch.tensor([0.0, 0.0, floor])


def _camera(frame: ObjectronFrame, width: int, height: int, floor: float) -> Camera:
    """The portrait OpenCV camera of an annotated frame whose upright image is ``width`` x ``height`` pixels."""
    (fx, _, cx), (_, fy, cy) = frame.intrinsics[0].tolist(), frame.intrinsics[1].tolist()
    landscape_height = frame.resolution[1]
    K = torch.tensor([[fy * width / landscape_height, 0.0, (landscape_height - cy) * width / landscape_height],
                      [0.0, fx * height / frame.resolution[0], cx * height / frame.resolution[0]],
                      [0.0, 0.0, 1.0]])
    camera_to_world = _Z_UP @ frame.transform[:3, :3] @ _OPENCV_FROM_ARKIT
    R = _PORTRAIT @ _nearest_rotation(camera_to_world).T
    return Camera(K, R, -R @ _world_point(frame.transform[:3, 3], floor), width, height)


def _nearest_rotation(matrix: Tensor) -> Tensor:
    """The rotation nearest ``matrix`` (float32 annotations drift from orthonormal)."""
    U, _, Vh = torch.linalg.svd(matrix.double())
    fix = torch.diag(torch.tensor([1.0, 1.0, float(torch.sign(torch.det(U @ Vh)))], dtype=torch.float64))
    return (U @ fix @ Vh).float()


def _asset(k: int, obj: ObjectronObject, frames: list[ObjectronFrame], cameras: list[Camera], floor: float) -> Asset:
    T = len(frames)
    rotation = _nearest_rotation(_Z_UP @ obj.rotation)
    center = _world_point(obj.translation, floor)
    visibility = torch.tensor([f.visibility.get(obj.id, 0.0) for f in frames])
    boxes = torch.zeros(T, 4)
    for i, cam in enumerate(cameras):
        uv, depth = geometry.project_box(center, obj.scale, rotation, cam.K, cam.R, cam.t)
        if visibility[i] > 0 and bool((depth > 0).all()):
            boxes[i] = geometry.bounding_box_2d(uv, cam.width, cam.height)
    seen = torch.nonzero(visibility > 0)
    return Asset(id=k + 1, name=f"{obj.category or 'object'} {obj.id}", category=obj.category or "object",
                 centers=center.expand(T, 3).clone(), sizes=obj.scale.expand(T, 3).clone(),
                 rotations=rotation.expand(T, 3, 3).clone(), boxes_2d=boxes, visibility=visibility,
                 source_frame=int(seen[0]) if len(seen) else 0, attributes={"objectron_id": obj.id})


__all__ = ["ObjectronFrame", "ObjectronObject", "ObjectronSequence", "annotated_frames", "objectron_clips",
           "parse_sequence", "read_annotation", "read_objectron"]

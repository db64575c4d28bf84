"""MOVi (Kubric) TFDS datasets: their TFRecord files read as Scenes, without TensorFlow.

The MOVi datasets (``movi_e/256x256/1.0.0/movi_e-train.tfrecord-00000-of-00512`` ...) are TFDS
datasets of one ``tf.train.Example`` per 24-frame video (:mod:`.tfrecord` reads them). TFDS
flattens the nested features with ``/``; a sequence of instances stores each instance field
stacked over the instances (``instances/bboxes_3d``: ``num_instances * T * 8 * 3`` floats), a
sequence of images one encoded PNG per frame. The fields read here (``challenges/movi`` of the
Kubric repository; MOVi-E's names, shared by MOVi-A to MOVi-D where they have them):

=========================  ===================================================================
``video``                  T PNG frames, (H, W, 3) uint8
``segmentations``          T PNG frames, (H, W, 1) uint8: instance index + 1 (0 = background)
``depth``                  T PNG frames, (H, W, 1) uint16: distance from the camera centre along
                           the ray, ``v / 65535 * (max - min) + min`` with ``metadata/depth_range``
``metadata/...``           ``num_frames``, ``width``, ``height``, ``num_instances``, ``depth_range``
                           (2,), ``video_name``
``camera/...``             ``focal_length``, ``sensor_width`` (mm), ``positions`` (T, 3),
                           ``quaternions`` (T, 4) (w, x, y, z; Blender camera to world)
``instances/...``          ``bboxes_3d`` (n, T, 8, 3) world corners in ``itertools.product``
                           order, ``quaternions`` (n, T, 4), ``asset_id`` (text), ``category``
                           (MOVi-E: a class index into :data:`MOVI_E_CATEGORIES`), and any
                           other one-number-per-instance field (``scale``, ``mass``, ``is_dynamic``
                           ...), kept in the asset's attributes
=========================  ===================================================================

Each record becomes the Scene :func:`neuralassets.data.kubric.scene_from_kubric` makes of the same
content in a Kubric folder: OpenCV cameras, our box corner order, camera-frame depth, one
asset per instance with id = instance index + 1 (the segmentation's value, so ids are the
same in every frame), masks from the segmentation and 2D boxes from the masks.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import SceneFormatError
from ..image_ops import from_numpy_image
from ..scene import Scene
from .kubric import scene_from_kubric, uint16_to_range
from .tfrecord import Example, Record, index_records, parse_example, read_record

#: MOVi-E's ``instances/category`` class names, in class-index order.
MOVI_E_CATEGORIES = ("Action Figures", "Bag", "Board Games", "Bottles and Cans and Cups", "Camera", "Car Seat",
                     "Consumer Goods", "Hat", "Headphones", "Keyboard", "Legos", "Media Cases", "Mouse", "None", "Shoe",
                     "Stuffed Toys", "Toys")
_INSTANCE_ARRAYS = ("bboxes_3d", "quaternions", "positions", "velocities", "angular_velocities", "image_positions",
                    "visibility", "bboxes", "bbox_frames")  # per-frame instance fields, not attributes


def movi_files(path: str | os.PathLike, split: str | None = None) -> list[Path]:
    """The TFRecord files of a MOVi dataset, in name order.

    Args:
        path: one TFRecord file, or a folder holding them (a TFDS version folder such as
            ``movi_e/256x256/1.0.0``), searched recursively for names containing ``.tfrecord``.
        split: keep only the files of this split (``train``, ``validation``, ``test``: names
            containing ``-{split}.tfrecord``).

    Raises:
        SceneFormatError: nothing matches; the message names the path.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SceneFormatError(f"{path}: no such TFRecord file or folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and ".tfrecord" in p.name
                   and (split is None or f"-{split}.tfrecord" in p.name))
    if not files:
        which = f" of split {split!r}" if split else ""
        raise SceneFormatError(f"{path}: holds no TFRecord files{which} (names containing '.tfrecord')")
    return files


def movi_records(path: str | os.PathLike, split: str | None = None) -> list[Record]:
    """Every video of a MOVi dataset (:func:`movi_files`), as the record to read it from, in file order."""
    return [r for f in movi_files(path, split) for r in index_records(f)]


def read_movi(path: str | os.PathLike, index: int = 0, split: str | None = None,
              categories: tuple[str, ...] = MOVI_E_CATEGORIES) -> Scene:
    """Read video ``index`` of a MOVi dataset (:func:`movi_files`) as a Scene; see :func:`read_movi_record`."""
    records = movi_records(path, split)
    if not 0 <= index < len(records):
        raise SceneFormatError(f"{path}: video {index} asked for, the dataset holds {len(records)}")
    return read_movi_record(records[index], categories)


def read_movi_record(record: Record, categories: tuple[str, ...] = MOVI_E_CATEGORIES) -> Scene:
    """One MOVi video as a Scene.

    Args:
        record: where the video's ``tf.train.Example`` lies (:func:`movi_records`).
        categories: the class names of ``instances/category`` (MOVi-E's by default).

    Returns:
        A validated Scene: frames (T, 3, H, W) float in [0, 1]; one OpenCV camera per frame;
        one asset per instance (id = instance index + 1, name = its ``asset_id``, category
        its class name) with per-frame 3D boxes, masks, 2D boxes and visibility; depth (T, H, W)
        camera-frame z in metres; ``metadata["kubric"]`` the record's ``metadata/`` fields.

    Raises:
        SceneFormatError: the record is corrupt or a field is missing or malformed; the message
            names the file, the record and the field.
    """
    where = f"{record.path.name}: record at byte {record.offset - 12}"
    try:
        return _scene(parse_example(read_record(record)), where, categories)
    except SceneFormatError as e:
        message = str(e)
        raise SceneFormatError(message if message.startswith(str(record.path)) else f"{where}: {message}") from None


def _scene(example: Example, where: str, categories: tuple[str, ...]) -> Scene:
    T = _int(example, "metadata/num_frames")
    W, H = _int(example, "metadata/width"), _int(example, "metadata/height")
    frames = from_numpy_image(_images(example, "video", T, (H, W, 3), np.uint8))
    segmentation = torch.from_numpy(_images(example, "segmentations", T, (H, W), np.uint8).astype(np.int64))
    distance = None
    if "depth" in example:
        lo, hi = _floats(example, "metadata/depth_range", (2,))
        distance = uint16_to_range(torch.from_numpy(_images(example, "depth", T, (H, W), np.uint16).astype(np.float32)),
                                   float(lo), float(hi))
    meta = {
        "metadata": {"num_frames": T, "resolution": [W, H], **_metadata(example)},
        "camera": {"focal_length": float(_floats(example, "camera/focal_length", (1,))[0]),
                   "sensor_width": float(_floats(example, "camera/sensor_width", (1,))[0]),
                   "positions": _floats(example, "camera/positions", (T, 3)).tolist(),
                   "quaternions": _floats(example, "camera/quaternions", (T, 4)).tolist()},
        "instances": _instances(example, T, categories),
    }
    return scene_from_kubric(meta, frames, segmentation, distance, where)


def _int(example: Example, name: str) -> int:
    values = example.ints(name)
    if len(values) != 1:
        raise SceneFormatError(f"feature {name!r}: expected one integer, got {len(values)}")
    return int(values[0])


def _floats(example: Example, name: str, shape: tuple[int, ...]) -> np.ndarray:
    values = example.floats(name)
    if values.size != int(np.prod(shape)):
        raise SceneFormatError(f"feature {name!r}: expected {int(np.prod(shape))} numbers for shape {shape}, got {values.size}")
    return values.reshape(shape)


def _images(example: Example, name: str, count: int, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """(count, *shape) array of the feature's PNG frames, each checked against ``shape`` and ``dtype``."""
    encoded = example.bytes_list(name)
    if len(encoded) != count:
        raise SceneFormatError(f"feature {name!r}: expected {count} encoded frames, got {len(encoded)}")
    out = np.empty((count, *shape), dtype)
    for f, data in enumerate(encoded):
        try:
            with Image.open(io.BytesIO(data)) as img:
                array = np.array(img)
        except (OSError, SyntaxError, ValueError) as e:
            raise SceneFormatError(f"feature {name!r}: frame {f} is not a readable PNG ({e})") from None
        if array.ndim == len(shape) + 1 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim == len(shape) and len(shape) == 3 and shape[2] == 3 and array.shape[2] == 4:
            array = array[..., :3]
        if array.shape != shape or (np.issubdtype(dtype, np.integer) and array.max(initial=0) > np.iinfo(dtype).max):
            raise SceneFormatError(f"feature {name!r}: frame {f} is {array.shape} {array.dtype}, expected {shape} {np.dtype(dtype)}")
        out[f] = array
    return out


def _metadata(example: Example) -> dict:
    out = {}
    for name in example.names:
        key = name.removeprefix("metadata/")
        if key == name or key in ("num_frames", "width", "height"):
            continue
        try:
            out[key] = example.texts(name)[0] if key == "video_name" else _numbers(example, name)
        except (SceneFormatError, IndexError):
            continue  # a metadata field of another kind is not needed
    if "background" in example:
        out["background"] = " ".join(example.texts("background"))
    return out


def _numbers(example: Example, name: str) -> float | int | list:
    """A numeric feature as a number (one value) or a list, whichever list kind it is."""
    try:
        values = example.floats(name).tolist()
    except SceneFormatError:
        values = example.ints(name).tolist()
    return values[0] if len(values) == 1 else values


def _instances(example: Example, T: int, categories: tuple[str, ...]) -> list[dict]:
    n = _int(example, "metadata/num_instances")
    corners = _floats(example, "instances/bboxes_3d", (n, T, 8, 3))
    quaternions = _floats(example, "instances/quaternions", (n, T, 4))
    names = example.texts("instances/asset_id") if "instances/asset_id" in example else [f"object {k + 1}" for k in range(n)]
    if len(names) != n:
        raise SceneFormatError(f"feature 'instances/asset_id': expected {n} names, got {len(names)}")
    instances = [{"bboxes_3d": corners[k].tolist(), "quaternions": quaternions[k].tolist(), "asset_id": names[k]}
                 for k in range(n)]
    for name in example.names:
        key = name.removeprefix("instances/")
        if key == name or "/" in key or key in _INSTANCE_ARRAYS or key == "asset_id":
            continue
        try:
            values = _numbers(example, name)
        except SceneFormatError:
            continue  # text fields other than asset_id carry nothing a Scene keeps
        values = values if isinstance(values, list) else [values]
        if len(values) != n:
            continue  # not one number per instance
        for inst, value in zip(instances, values):
            inst[key] = value
    for inst in instances:
        if isinstance(inst.get("category"), int) and 0 <= inst["category"] < len(categories):
            inst["category"] = categories[inst["category"]]
    return instances


__all__ = ["MOVI_E_CATEGORIES", "movi_files", "movi_records", "read_movi", "read_movi_record"]

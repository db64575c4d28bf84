"""Kubric MOVi scene folders: read them as Scenes, write generator Scenes in their layout.

A Kubric worker writes one folder per video::

    metadata.json          {"metadata": {num_frames, resolution [W, H], ...},
                            "camera": {focal_length, sensor_width, field_of_view, positions (T, 3), quaternions (T, 4)},
                            "instances": [{positions, quaternions, bboxes_3d (T, 8, 3), visibility, ...}, ...]}
    rgba_00000.png         RGBA frames
    segmentation_00000.png instance index + 1 per pixel (0 = background)
    depth_00000.tiff       float distance from the camera centre along the ray (or a 16-bit PNG
                           scaled by data_ranges.json's depth min/max)
    data_ranges.json, events.json

Conventions converted here:

* Kubric cameras follow Blender: they look down their -z axis with +y up, and
  ``quaternions`` (w, x, y, z) rotate camera to world. Our cameras are OpenCV (x right,
  y down, z forward) world-to-camera, so ``R = (R_blender @ diag(1, -1, -1))^T`` and
  ``t = -R @ position``. Intrinsics have square pixels, the principal point at the image
  centre and ``f_px = focal_length / sensor_width * width``.
* Kubric depth is the distance along the ray; ours is camera-frame z.
* ``bboxes_3d`` corners come in ``itertools.product(x, y, z)`` order (index ``4x + 2y + z``);
  ours use index ``x + 2y + 4z``. Box centres are the corners' mean, sizes the edge lengths,
  rotations the instance quaternions.
* Segmentation values are positions in ``instances`` plus one, not our asset ids.

Folders written by :func:`write_kubric` also carry a ``"neuralassets"`` entry (asset ids,
names, renderer attributes, visible fractions, scene metadata), so they read back into the
same Scene and can be re-rendered. For folders without it, an asset's visibility is its
pixel count divided by its largest pixel count over the video (an approximation: Kubric
does not store the unoccluded area).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .. import geometry
from ..errors import SceneFormatError, ValidationError
from ..image_ops import from_numpy_image, masks_to_boxes, to_numpy_image
from ..jsonio import read_json
from ..scene import Asset, Camera, Scene

_BLENDER_FROM_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
#: _KUBRIC_CORNERS[i] is the Kubric corner index of our corner i.
_KUBRIC_CORNERS = [4 * (i & 1) + 2 * ((i >> 1) & 1) + ((i >> 2) & 1) for i in range(8)]
_SENSOR_WIDTH_MM = 32.0
_FRAME_RATE = 12


def _camera_from_kubric(focal_length: float, sensor_width: float, position: Tensor, quaternion: Tensor,
                        width: int, height: int) -> Camera:
    f = focal_length / sensor_width * width
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    R = (geometry.quaternion_to_matrix(quaternion) @ _BLENDER_FROM_OPENCV).T
    return Camera(K, R, -R @ position, width, height)


def _ray_z_per_distance(camera: Camera) -> Tensor:
    """(H, W) camera-frame z of a unit-length ray through each pixel centre."""
    v, u = torch.meshgrid(torch.arange(camera.height) + 0.5, torch.arange(camera.width) + 0.5, indexing="ij")
    K = camera.K
    x, y = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    return 1.0 / torch.sqrt(x * x + y * y + 1.0)


def _read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise SceneFormatError(f"{path}: missing")
    try:
        with Image.open(path) as img:
            img.load()
            return np.array(img)
    except (OSError, SyntaxError, ValueError) as e:
        raise SceneFormatError(f"{path}: not a readable image ({e})") from None


def _field(entry: dict, key: str, where: str) -> Any:
    if key not in entry:
        raise SceneFormatError(f"{where}: field {key!r} is missing")
    return entry[key]


def read_kubric(folder: str | os.PathLike) -> Scene:
    """Read a Kubric MOVi scene folder as a Scene.

    Args:
        folder: folder with ``metadata.json`` and per-frame ``rgba_*.png``,
            ``segmentation_*.png`` and (optionally) ``depth_*.tiff`` / ``depth_*.png``.

    Returns:
        A validated Scene: frames (T, 3, H, W), one asset per instance with 3D boxes,
        masks, 2D boxes and visibility, depth (T, H, W) camera-frame z in metres when depth
        files exist, ``metadata["kubric"]`` with the folder's scene metadata.

    Raises:
        SceneFormatError: a file or field is missing or malformed; the message names it.
    """
    folder = Path(folder)
    meta_path = folder / "metadata.json"
    meta = read_json(meta_path, SceneFormatError, "missing; not a Kubric scene folder")
    T, (W, H) = _frame_count_and_size(meta, str(meta_path))
    frames = from_numpy_image(np.stack([_rgb(_read_image(folder / f"rgba_{f:05d}.png"), (H, W), folder / f"rgba_{f:05d}.png")
                                        for f in range(T)]))
    segmentation = torch.stack([torch.from_numpy(_read_image(folder / f"segmentation_{f:05d}.png").astype(np.int64))
                                for f in range(T)])
    if segmentation.dim() == 4:  # a segmentation saved with a channel axis
        segmentation = segmentation[..., 0]
    return scene_from_kubric(meta, frames, segmentation, _read_distance(folder, T, H), str(folder))


def _frame_count_and_size(meta: dict, where: str) -> tuple[int, tuple[int, int]]:
    scene_meta = _field(meta, "metadata", where)
    T = int(_field(scene_meta, "num_frames", f"{where}: metadata"))
    W, H = (int(v) for v in _field(scene_meta, "resolution", f"{where}: metadata"))
    return T, (W, H)


def scene_from_kubric(meta: dict, frames: Tensor, segmentation: Tensor, distance: Tensor | None, where: str) -> Scene:
    """A Scene from a Kubric scene's metadata and its decoded layers, converted to this library's conventions.

    Args:
        meta: the ``metadata.json`` mapping (``metadata`` with ``num_frames`` and ``resolution``
            [W, H], ``camera``, ``instances``; see the module docstring).
        frames: (T, 3, H, W) float in [0, 1].
        segmentation: (T, H, W) int, instance index + 1 per pixel (0 = background).
        distance: (T, H, W) float distance from the camera centre along each pixel's ray, metres, or None.
        where: how errors name the source (a folder, a record).

    Returns:
        The validated Scene (see :func:`read_kubric`).

    Raises:
        SceneFormatError: a field is missing or malformed; the message names it.
    """
    T, (W, H) = _frame_count_and_size(meta, where)
    scene_meta = meta["metadata"]
    if tuple(frames.shape) != (T, 3, H, W) or tuple(segmentation.shape) != (T, H, W):
        raise SceneFormatError(f"{where}: frames {tuple(frames.shape)} and segmentation {tuple(segmentation.shape)} "
                               f"do not match {T} frames of {W}x{H} pixels")
    cam_meta = _field(meta, "camera", where)
    positions = torch.tensor(_field(cam_meta, "positions", f"{where}: camera"), dtype=torch.float32)
    quaternions = torch.tensor(_field(cam_meta, "quaternions", f"{where}: camera"), dtype=torch.float32)
    if positions.shape != (T, 3) or quaternions.shape != (T, 4):
        raise SceneFormatError(f"{where}: camera positions/quaternions must have shapes ({T}, 3)/({T}, 4), "
                               f"got {tuple(positions.shape)}/{tuple(quaternions.shape)}")
    focal, sensor = float(_field(cam_meta, "focal_length", f"{where}: camera")), float(cam_meta.get("sensor_width", _SENSOR_WIDTH_MM))
    cameras = [_camera_from_kubric(focal, sensor, positions[f], quaternions[f], W, H) for f in range(T)]
    depth = None if distance is None else distance * torch.stack([_ray_z_per_distance(c) for c in cameras])

    assets = []
    for k, inst in enumerate(_field(meta, "instances", where)):
        assets.append(_asset_from_instance(inst, k, segmentation, T, f"{where}: instances[{k}]"))
    metadata = dict(meta.get("neuralassets", {}).get("scene_metadata", {}))
    metadata["kubric"] = {key: value for key, value in scene_meta.items() if isinstance(value, (str, int, float, bool, list))}
    scene = Scene(frames, cameras, assets, depth=depth, metadata=metadata)
    try:
        return scene.validate()
    except ValidationError as e:
        raise SceneFormatError(f"{where}: {e}") from None


def _rgb(array: np.ndarray, size: tuple[int, int], path: Path) -> np.ndarray:
    if array.ndim != 3 or array.shape[:2] != size or array.shape[2] not in (3, 4):
        raise SceneFormatError(f"{path}: expected a {size[1]}x{size[0]} RGB(A) image, got shape {array.shape}")
    return np.ascontiguousarray(array[..., :3])


def _read_distance(folder: Path, T: int, H: int) -> Tensor | None:
    """(T, H, W) ray distance in metres from Kubric's depth files, or None when there are none."""
    tiffs = [folder / f"depth_{f:05d}.tiff" for f in range(T)]
    pngs = [folder / f"depth_{f:05d}.png" for f in range(T)]
    if all(p.is_file() for p in tiffs):
        return torch.stack([torch.from_numpy(_read_image(p).astype(np.float32)).reshape(H, -1) for p in tiffs])
    if all(p.is_file() for p in pngs):
        ranges_path = folder / "data_ranges.json"
        try:
            ranges = json.loads(ranges_path.read_text())["depth"]
            lo, hi = float(ranges["min"]), float(ranges["max"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise SceneFormatError(f"{ranges_path}: needed to scale 16-bit depth PNGs ({e})") from None
        return uint16_to_range(torch.stack([torch.from_numpy(_read_image(p).astype(np.float32)) for p in pngs]), lo, hi)
    return None


def uint16_to_range(values: Tensor, lo: float, hi: float) -> Tensor:
    """Kubric's 16-bit quantisation undone: ``values`` in 0..65535 mapped linearly onto ``[lo, hi]`` (float32)."""
    return values.float() / 65535 * (hi - lo) + lo


def _asset_from_instance(inst: dict, k: int, segmentation: Tensor, T: int, where: str) -> Asset:
    corners = torch.tensor(_field(inst, "bboxes_3d", where), dtype=torch.float32)
    quats = torch.tensor(_field(inst, "quaternions", where), dtype=torch.float32)
    if corners.shape != (T, 8, 3) or quats.shape != (T, 4):
        raise SceneFormatError(f"{where}: bboxes_3d/quaternions must have shapes ({T}, 8, 3)/({T}, 4), "
                               f"got {tuple(corners.shape)}/{tuple(quats.shape)}")
    corners = corners[:, _KUBRIC_CORNERS]
    sizes = torch.stack([(corners[:, 1] - corners[:, 0]).norm(dim=-1), (corners[:, 2] - corners[:, 0]).norm(dim=-1),
                         (corners[:, 4] - corners[:, 0]).norm(dim=-1)], dim=-1)
    masks = segmentation == k + 1
    ours = inst.get("neuralassets", {})
    if "visibility" in ours:
        visibility = torch.tensor(ours["visibility"], dtype=torch.float32)
    else:
        counts = masks.flatten(1).sum(1).float()
        visibility = counts / counts.max().clamp(min=1)
    attributes = ours.get("attributes") or {key: value for key, value in inst.items()
                                            if isinstance(value, (str, int, float, bool)) and key != "asset_id"}
    name = ours.get("name") or str(inst.get("asset_id", f"object {k + 1}"))
    return Asset(id=int(ours.get("id", k + 1)), name=name, category=str(inst.get("category", inst.get("shape", "object"))),
                 centers=corners.mean(1), sizes=sizes, rotations=geometry.quaternion_to_matrix(quats),
                 boxes_2d=masks_to_boxes(masks), visibility=visibility, source_frame=int(ours.get("source_frame", 0)),
                 masks=masks, attributes=attributes)


def write_kubric(scene: Scene, folder: str | os.PathLike) -> Path:
    """Write ``scene`` as a Kubric MOVi scene folder that :func:`read_kubric` reads back.

    Frames, segmentation, depth (as ray distance, float32 TIFF), cameras and instance
    poses, 3D box corners, 2D boxes and pixel visibility follow Kubric's fields; the
    ``"neuralassets"`` entries keep what Kubric has no field for.

    Args:
        scene: a scene with depth and asset masks (e.g. from :func:`~neuralassets.data.generate_scene`).
        folder: output folder (created if needed).

    Raises:
        ValidationError: the scene lacks depth or masks, or a camera has non-square pixels
            or an off-centre principal point (Kubric cameras cannot express those).
    """
    scene.validate()
    if scene.depth is None or any(a.masks is None for a in scene.assets):
        raise ValidationError("scene: writing a Kubric folder needs scene.depth and every asset's masks")
    T, H, W = scene.num_frames, scene.height, scene.width
    for i, c in enumerate(scene.cameras):
        K = c.K
        if abs(K[0, 0] - K[1, 1]) > 1e-4 * K[0, 0] or abs(K[0, 2] - W / 2) > 1e-3 or abs(K[1, 2] - H / 2) > 1e-3:
            raise ValidationError(f"cameras[{i}].K: Kubric cameras need square pixels and a centred principal point")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fx = float(scene.cameras[0].K[0, 0])
    focal_length = fx * _SENSOR_WIDTH_MM / W

    segmentation = torch.zeros(T, H, W, dtype=torch.long)
    for k, a in enumerate(scene.assets):
        segmentation[a.masks] = k + 1
    seg_dtype = np.uint8 if len(scene.assets) < 256 else np.uint16
    distances = []
    for f in range(T):
        rgb = to_numpy_image(scene.frames[f])
        rgba = np.concatenate([rgb, np.full((H, W, 1), 255, np.uint8)], axis=-1)
        Image.fromarray(rgba).save(folder / f"rgba_{f:05d}.png")
        Image.fromarray(segmentation[f].numpy().astype(seg_dtype)).save(folder / f"segmentation_{f:05d}.png")
        distance = (scene.depth[f] / _ray_z_per_distance(scene.cameras[f])).numpy().astype(np.float32)
        Image.fromarray(distance, mode="F").save(folder / f"depth_{f:05d}.tiff")
        distances.append(distance)

    centers = torch.stack([c.center for c in scene.cameras])
    blender = torch.stack([c.R.T @ _BLENDER_FROM_OPENCV for c in scene.cameras])
    camera = {"focal_length": focal_length, "sensor_width": _SENSOR_WIDTH_MM,
              "field_of_view": 2 * math.atan(_SENSOR_WIDTH_MM / (2 * focal_length)),
              "positions": centers.tolist(), "quaternions": geometry.matrix_to_quaternion(blender).tolist()}
    instances = [_instance_entry(scene, a, k) for k, a in enumerate(scene.assets)]
    depth_all = np.stack(distances)
    meta = {
        "flags": {},
        "metadata": {"num_frames": T, "resolution": [W, H], "num_instances": len(scene.assets), "frame_rate": _FRAME_RATE,
                     "background": str(scene.metadata.get("renderer", {}).get("backdrop", {}).get("style", "")),
                     "depth_range": [float(depth_all.min()), float(depth_all.max())]},
        "camera": camera,
        "instances": instances,
        "neuralassets": {"scene_metadata": scene.metadata},
    }
    (folder / "metadata.json").write_text(json.dumps(meta))
    (folder / "data_ranges.json").write_text(json.dumps({"depth": {"min": float(depth_all.min()), "max": float(depth_all.max())}}))
    (folder / "events.json").write_text(json.dumps({"collisions": []}))
    return folder


def _instance_entry(scene: Scene, a: Asset, k: int) -> dict[str, Any]:
    T, H, W = scene.num_frames, scene.height, scene.width
    corners = geometry.box_corners(a.centers, a.sizes, a.rotations)  # (T, 8, 3), our order
    kubric_corners = torch.empty_like(corners)
    kubric_corners[:, _KUBRIC_CORNERS] = corners
    rate = float(_FRAME_RATE)
    velocities = torch.zeros(T, 3)
    angular = torch.zeros(T, 3)
    if T > 1:
        velocities[:-1] = (a.centers[1:] - a.centers[:-1]) * rate
        angular[:-1] = geometry.matrix_to_axis_angle(a.rotations[1:] @ a.rotations[:-1].transpose(-1, -2)) * rate
        velocities[-1], angular[-1] = velocities[-2], angular[-2]
    uv = torch.stack([scene.cameras[f].project(a.centers[f][None])[0][0] for f in range(T)])
    seen = [f for f in range(T) if a.masks[f].any()]
    scale = torch.tensor([H, W, H, W], dtype=torch.float32)
    return {
        "asset_id": a.name, "category": a.category,
        "positions": a.centers.tolist(), "quaternions": geometry.matrix_to_quaternion(a.rotations).tolist(),
        "velocities": velocities.tolist(), "angular_velocities": angular.tolist(),
        "bboxes_3d": kubric_corners.tolist(), "size": a.sizes[0].tolist(),
        "image_positions": (uv / torch.tensor([W, H])).tolist(),
        "bboxes": [(a.boxes_2d[f][[1, 0, 3, 2]] / scale).tolist() for f in seen], "bbox_frames": seen,
        "visibility": a.masks.flatten(1).sum(1).tolist(),
        "neuralassets": {"id": a.id, "name": a.name, "source_frame": a.source_frame, "attributes": a.attributes,
                         "visibility": a.visibility.tolist()},
    }

"""Tiny MOVi (TFDS TFRecord) and Objectron (video + annotation protobuf) datasets, written byte by byte.

The encoders here are written from the public format descriptions (protobuf wire format,
TFRecord framing, tf.train.Example, TFDS's feature flattening, Objectron's protos) and share
no code with the readers they test.
"""
from __future__ import annotations

import io
import itertools
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


# ----------------------------------------------------------------------------------- wire format
def crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data: bytes) -> int:
    crc = crc32c_bitwise(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def length_delimited(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def int_field(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def float_field(field: int, value: float) -> bytes:
    return varint(field << 3 | 5) + struct.pack("<f", value)


def packed_floats(field: int, values) -> bytes:
    return length_delimited(field, np.asarray(values, "<f4").ravel().tobytes())


def write_tfrecord(path: Path, records: list[bytes]) -> Path:
    with open(path, "wb") as f:
        for data in records:
            length = struct.pack("<Q", len(data))
            f.write(length + struct.pack("<I", masked(length)) + data + struct.pack("<I", masked(data)))
    return path


# ----------------------------------------------------------------------------------- tf.train.Example
def bytes_feature(values: list[bytes]) -> bytes:
    return length_delimited(1, b"".join(length_delimited(1, v) for v in values))


def float_feature(values) -> bytes:
    return length_delimited(2, packed_floats(1, values))


def int_feature(values) -> bytes:
    return length_delimited(3, length_delimited(1, b"".join(varint(int(v)) for v in np.asarray(values).ravel())))


def example(features: dict[str, bytes]) -> bytes:
    entries = b"".join(length_delimited(1, length_delimited(1, name.encode()) + length_delimited(2, feature))
                       for name, feature in features.items())
    return length_delimited(1, entries)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def png16(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", array.astype(np.uint16))
    assert ok
    return data.tobytes()


# ----------------------------------------------------------------------------------- MOVi
def blender_quaternion(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(w, x, y, z) of a Blender camera (looking down its -z, +y up) at ``eye`` looking at ``target``, world z up."""
    back = (eye - target) / np.linalg.norm(eye - target)  # the camera's +z
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    R = np.stack([right, up, back], axis=1)  # camera-to-world, columns are the camera axes
    w = math.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    return np.array([w, (R[2, 1] - R[1, 2]) / (4 * w), (R[0, 2] - R[2, 0]) / (4 * w), (R[1, 0] - R[0, 1]) / (4 * w)])


def quaternion_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def blender_pixel(point, position, quaternion, focal_mm, sensor_mm, width, height) -> np.ndarray:
    """Where a Blender camera draws a world point: (u, v) pixels, v down, from Blender's own convention."""
    local = quaternion_matrix(np.asarray(quaternion)).T @ (np.asarray(point) - position)
    f = focal_mm / sensor_mm * width
    return np.array([width / 2 + f * local[0] / -local[2], height / 2 - f * local[1] / -local[2]])


def product_corners(center, size, rotation) -> np.ndarray:
    """(8, 3) world corners in ``itertools.product`` order over (x, y, z) signs, as Kubric writes them."""
    signs = np.array(list(itertools.product((-0.5, 0.5), repeat=3)))
    return center + (signs * size) @ rotation.T


@dataclass
class MoviTruth:
    """What a fixture MOVi record holds, for checking a reader against."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    segmentation: np.ndarray  # (T, H, W) uint8
    distance: np.ndarray  # (T, H, W) float metres, as quantised to 16 bits
    positions: np.ndarray  # (T, 3) camera centres
    quaternions: np.ndarray  # (T, 4) Blender camera-to-world
    centers: np.ndarray  # (n, T, 3)
    sizes: np.ndarray  # (n, 3)
    rotations: np.ndarray  # (n, T, 3, 3)
    names: list
    focal_mm: float = 35.0
    sensor_mm: float = 32.0


def movi_example(T: int = 3, size: int = 24, seed: int = 0, drop: tuple[str, ...] = ()) -> tuple[bytes, MoviTruth]:
    """One MOVi-E-style ``tf.train.Example`` with TFDS's feature names and encodings, and what it holds.

    Two instances: a box that slides along x and turns about z, and one that is hidden in the
    middle frame (no pixels there). The camera moves between frames.
    """
    rng = np.random.default_rng(seed)
    H = W = size
    positions = np.array([[0.0, -8.0 - f, 3.0 + 0.5 * f] for f in range(T)])
    quaternions = np.stack([blender_quaternion(p, np.zeros(3)) for p in positions])
    sizes = np.array([[1.0, 2.0, 0.5], [0.6, 0.6, 1.2]])
    centers = np.stack([[[0.3 * f - 1, 0.2, 0.25] for f in range(T)], [[1.5, 0.5, 0.6]] * T])
    angles = [[0.3 * f for f in range(T)], [1.0] * T]
    rotations = np.stack([[[[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]] for a in row]
                          for row in angles])
    object_quaternions = np.stack([[[math.cos(a / 2), 0, 0, math.sin(a / 2)] for a in row] for row in angles])
    corners = np.stack([[product_corners(centers[k, f], sizes[k], rotations[k, f]) for f in range(T)] for k in range(2)])

    frames = np.zeros((T, H, W, 3), np.uint8)
    segmentation = np.zeros((T, H, W), np.uint8)
    for f in range(T):
        frames[f] = rng.integers(0, 256, (H, W, 3))
        frames[f, 0, 0] = (10 * (f + 1), 0, 0)  # frame order
        segmentation[f, 2:8, 3:10] = 1
        if f != 1:
            segmentation[f, 10 + f:16 + f, 12:20] = 2
    depth_range = (2.0, 12.0)
    quantised = rng.integers(0, 65536, (T, H, W)).astype(np.uint16)
    distance = quantised.astype(np.float64) / 65535 * (depth_range[1] - depth_range[0]) + depth_range[0]
    names = ["Toy_Car", "Shoe_7"]
    flow = rng.integers(0, 65536, (T, H, W, 2))
    features = {
        "metadata/video_name": bytes_feature([b"42"]),
        "metadata/width": int_feature([W]), "metadata/height": int_feature([H]),
        "metadata/num_frames": int_feature([T]), "metadata/num_instances": int_feature([2]),
        "metadata/depth_range": float_feature(depth_range),
        "metadata/forward_flow_range": float_feature([-3.0, 4.0]),
        "background": bytes_feature([b"sky_dome"]),
        "camera/focal_length": float_feature([35.0]), "camera/sensor_width": float_feature([32.0]),
        "camera/field_of_view": float_feature([2 * math.atan(16 / 35)]),
        "camera/positions": float_feature(positions), "camera/quaternions": float_feature(quaternions),
        "instances/bboxes_3d": float_feature(corners), "instances/quaternions": float_feature(object_quaternions),
        "instances/positions": float_feature(centers), "instances/asset_id": bytes_feature([n.encode() for n in names]),
        "instances/category": int_feature([16, 14]), "instances/scale": float_feature([1.5, 0.75]),
        "instances/is_dynamic": int_feature([1, 0]), "instances/mass": float_feature([2.0, 0.5]),
        "instances/visibility": int_feature((segmentation[None] == np.arange(1, 3)[:, None, None, None]).sum((2, 3))),
        "instances/bboxes/ragged_flat_values": float_feature(np.zeros((5, 4))),
        "instances/bboxes/ragged_row_lengths_0": int_feature([3, 2]),
        "instances/bbox_frames/ragged_flat_values": int_feature([0, 1, 2, 0, 2]),
        "instances/bbox_frames/ragged_row_lengths_0": int_feature([3, 2]),
        "video": bytes_feature([png(frame) for frame in frames]),
        "segmentations": bytes_feature([png(s) for s in segmentation]),
        "depth": bytes_feature([png16(d) for d in quantised]),
        "forward_flow": int_feature(flow),
        "events/collisions/frame": int_feature([1]),
    }
    truth = MoviTruth(frames, segmentation, distance, positions, quaternions, centers, sizes, rotations, names)
    return example({k: v for k, v in features.items() if k not in drop}), truth


# ----------------------------------------------------------------------------------- Objectron
def arkit_transform(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4x4 camera-to-world of a phone held upright (portrait) at ``eye`` looking at ``target``, world y up.

    The ARKit camera (x right, y up, looking down -z) is the sensor's landscape one: held in
    portrait its x points down the world and its y to the viewer's right.
    """
    back = (eye - target) / np.linalg.norm(eye - target)
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    out = np.eye(4)
    out[:3, :3] = np.stack([-up, right, back], axis=1)
    out[:3, 3] = eye
    return out


def gl_projection(fx, fy, cx, cy, width, height, near=0.05, far=100.0) -> np.ndarray:
    """The OpenGL projection matrix of landscape intrinsics (pixel v down, camera y up, looking down -z)."""
    return np.array([[2 * fx / width, 0, 1 - 2 * cx / width, 0],
                     [0, 2 * fy / height, 2 * cy / height - 1, 0],
                     [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
                     [0, 0, -1, 0]])


def objectron_portrait_point(point, projection, view):
    """Normalised (x, y) in the portrait frame of a world point, the way Objectron's tutorials project it."""
    clip = projection @ view @ np.append(point, 1.0)
    ndc = clip[:3] / clip[3]
    return np.array([(1 + ndc[1]) / 2, (1 + ndc[0]) / 2])  # portrait x from NDC y, portrait y from NDC x


@dataclass
class ObjectronTruth:
    landscape_frames: np.ndarray  # (T, H_l, W_l, 3) uint8 as the video stream stores them
    transforms: np.ndarray  # (T, 4, 4) camera-to-world
    views: np.ndarray
    projections: np.ndarray
    intrinsics: np.ndarray  # (3, 3) landscape pixels
    centers: np.ndarray  # (n, 3) ARKit world
    scales: np.ndarray  # (n, 3)
    rotations: np.ndarray  # (n, 3, 3)
    categories: list
    object_ids: list
    keypoints_2d: np.ndarray  # (T, n, 9, 3) portrait normalised x, y and depth
    visibility: np.ndarray  # (T, n)
    plane_height: float


def objectron_sequence(T: int = 4, width: int = 32, height: int = 24) -> tuple[bytes, ObjectronTruth]:
    """An Objectron ``Sequence`` (annotation_data.proto) of two boxes seen by a moving phone, and what it holds.

    The second object is not annotated in frame 2 (frame 0 of a 2-frame clip), so its visibility there is 0.
    """
    fx, fy, cx, cy = 30.0, 31.0, 15.0, 11.0
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    table = -0.8  # the support plane's height in ARKit's world (y up)
    centers = np.array([[0.0, table + 0.15, 0.0], [0.4, table + 0.1, -0.2]])
    scales = np.array([[0.3, 0.3, 0.2], [0.15, 0.2, 0.25]])
    angle = 0.4
    rotations = np.stack([np.array([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]]),
                          np.eye(3)])
    unit = np.array([[0, 0, 0]] + list(itertools.product((-0.5, 0.5), repeat=3)), float)
    objects = []
    categories, ids = ["cup", "book"], [0, 7]
    for k in range(2):
        keypoints = b"".join(length_delimited(7, float_field(1, p[0]) + float_field(2, p[1]) + float_field(3, p[2])) for p in unit)
        objects.append(length_delimited(1, int_field(1, ids[k]) + length_delimited(2, categories[k].encode()) + int_field(3, 1)
                                        + packed_floats(4, rotations[k]) + packed_floats(5, centers[k])
                                        + packed_floats(6, scales[k]) + keypoints))
    transforms, views, projections, keypoints_2d = [], [], [], np.zeros((T, 2, 9, 3))
    visibility = np.array([[0.9, 0.8]] * T)
    visibility[2 % T, 1] = 0.0
    frames = []
    projection = gl_projection(fx, fy, cx, cy, width, height)
    rng = np.random.default_rng(3)
    for f in range(T):
        eye = np.array([0.2 * f - 0.3, 0.1 * f, 1.2 + 0.1 * f])
        transform = arkit_transform(eye, np.array([0.1, table, -0.1]))
        view = np.linalg.inv(transform)
        transforms.append(transform)
        views.append(view)
        projections.append(projection)
        annotations = b""
        for k in range(2):
            if visibility[f, k] == 0:
                continue
            keypoints = b""
            for i, p in enumerate(unit):
                world = rotations[k] @ (p * scales[k]) + centers[k]
                camera_point = (view @ np.append(world, 1))[:3]
                xy = objectron_portrait_point(world, projection, view)
                keypoints_2d[f, k, i] = (*xy, -camera_point[2])
                point_3d = b"".join(float_field(j + 1, camera_point[j]) for j in range(3))
                point_2d = float_field(1, xy[0]) + float_field(2, xy[1]) + float_field(3, -camera_point[2])
                keypoints += length_delimited(2, int_field(1, i) + length_delimited(2, point_3d) + length_delimited(3, point_2d))
            annotations += length_delimited(2, int_field(1, ids[k]) + keypoints + float_field(3, visibility[f, k]))
        camera = (int_field(1, 3) + packed_floats(3, transform) + int_field(5, width) + int_field(6, height)
                  + packed_floats(7, K) + packed_floats(8, projection) + packed_floats(9, view))
        plane_center = (view @ np.array([0.0, table, 0.0, 1.0]))[:3]
        plane_normal = view[:3, :3] @ np.array([0.0, 1.0, 0.0])
        frame_annotation = (int_field(1, f) + annotations + length_delimited(3, camera)
                            + varint(4 << 3 | 1) + struct.pack("<d", f / 30) + packed_floats(5, plane_center)
                            + packed_floats(6, plane_normal))
        objects.append(length_delimited(2, frame_annotation))
        frame = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
        frame[:4, :4] = (200, 30 * f, 0)  # top-left of the landscape stream: frame order and orientation
        frames.append(frame)
    truth = ObjectronTruth(np.stack(frames), np.stack(transforms), np.stack(views), np.stack(projections), K, centers,
                           scales, rotations, categories, ids, keypoints_2d, visibility, table)
    return b"".join(objects), truth


def write_video(path: Path, frames_rgb: np.ndarray, fps: float = 30.0) -> Path:
    """A lossless (PNG-coded) video written with OpenCV, frames (T, H, W, 3) RGB uint8."""
    T, H, W, _ = frames_rgb.shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"png "), fps, (W, H))
    assert writer.isOpened()
    for frame in frames_rgb:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_objectron(folder: Path, T: int = 4, portrait_video: bool = False) -> ObjectronTruth:
    """An Objectron-style clip: ``folder/video.MOV`` and ``folder/annotation.pbdata``.

    The video holds the frames as the phone's sensor stores them (landscape), or already turned
    upright (``portrait_video``), as a decoder that applies the file's rotation gives them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    sequence, truth = objectron_sequence(T)
    (folder / "annotation.pbdata").write_bytes(sequence)
    frames = truth.landscape_frames
    if portrait_video:
        frames = np.stack([np.rot90(f, k=-1) for f in frames])  # 90 degrees clockwise
    write_video(folder / "video.MOV", np.ascontiguousarray(frames))
    return truth


def movi_example_from_kubric(folder: Path) -> bytes:
    """The TFDS example Kubric's MOVi builder makes of a Kubric scene folder (``load_scene_directory``, full size).

    Depth is the float TIFF quantised to 16 bits over its own min and max, frames and
    segmentations are PNGs, camera and instance fields are stacked as TFDS stacks them.
    """
    import json

    meta = json.loads((folder / "metadata.json").read_text())
    T = meta["metadata"]["num_frames"]
    W, H = meta["metadata"]["resolution"]
    frames = [np.array(Image.open(folder / f"rgba_{f:05d}.png"))[..., :3] for f in range(T)]
    segmentations = [np.array(Image.open(folder / f"segmentation_{f:05d}.png")) for f in range(T)]
    depth = np.stack([np.array(Image.open(folder / f"depth_{f:05d}.tiff"), np.float32) for f in range(T)])
    lo, hi = float(depth.min()), float(depth.max())
    quantised = np.round((depth - lo) / (hi - lo) * 65535).astype(np.uint16)
    instances = meta["instances"]
    camera = meta["camera"]
    features = {
        "metadata/video_name": bytes_feature([folder.name.encode()]),
        "metadata/width": int_feature([W]), "metadata/height": int_feature([H]),
        "metadata/num_frames": int_feature([T]), "metadata/num_instances": int_feature([len(instances)]),
        "metadata/depth_range": float_feature([lo, hi]),
        "camera/focal_length": float_feature([camera["focal_length"]]),
        "camera/sensor_width": float_feature([camera["sensor_width"]]),
        "camera/field_of_view": float_feature([camera["field_of_view"]]),
        "camera/positions": float_feature(camera["positions"]), "camera/quaternions": float_feature(camera["quaternions"]),
        "instances/bboxes_3d": float_feature([i["bboxes_3d"] for i in instances]),
        "instances/quaternions": float_feature([i["quaternions"] for i in instances]),
        "instances/positions": float_feature([i["positions"] for i in instances]),
        "instances/asset_id": bytes_feature([i["asset_id"].encode() for i in instances]),
        "instances/visibility": int_feature([i["visibility"] for i in instances]),
        "video": bytes_feature([png(f) for f in frames]),
        "segmentations": bytes_feature([png(s) for s in segmentations]),
        "depth": bytes_feature([png16(d) for d in quantised]),
    }
    return example(features)

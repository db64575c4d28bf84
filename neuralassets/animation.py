"""Keyframed animation of a Scene's assets and camera (kubric style).

A :class:`Keyframes` value holds, per asset, poses at a few frames (:class:`Keyframe`:
offset or position, yaw / pitch / roll and scale, all relative to the asset's pose in the
source frame) and optionally camera keyframes (:class:`CameraKeyframe`: eye and target).
:func:`animate` turns a scene and keyframes into a new Scene of ``num_frames`` frames whose
poses and cameras follow them; every frame takes its appearance and background from the
source frame, so the result renders as a temporally consistent video with
:meth:`~neuralassets.pipelines.NeuralAssetsPipeline.render_video`.

Between keyframes positions, scales and camera eye/target points are interpolated
linearly or smoothly (a C1 cubic through the keys: Catmull-Rom velocities, zero velocity at
the first and last key); rotations are always slerped. Before the first and after the last
key the pose is held.

Example:
    >>> import math
    >>> keys = Keyframes(assets={1: {0: Keyframe(), 10: Keyframe(offset=(1.0, 0.0, 0.0), yaw=math.pi / 2)}})
    >>> keys.asset_track(1, 11)[0][5].tolist()   # offset half way
    [0.5, 0.0, 0.0]
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from . import geometry
from .errors import ValidationError
from .scene import Background, Camera, Scene

#: How positions, scales and camera points move between keyframes.
INTERPOLATIONS = ("linear", "smooth")
#: Version of the JSON written by :meth:`Keyframes.to_dict`.
KEYFRAMES_FORMAT_VERSION = 1


def _triple(value, where: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: expected three numbers, got {value!r}") from None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise ValidationError(f"{where}: expected three finite numbers, got {value!r}")
    return out  # type: ignore[return-value]


def _finite(value, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValidationError(f"{where}: expected a finite number, got {value!r}")
    return out


@dataclass(frozen=True)
class Keyframe:
    """An asset's pose at one frame, relative to its pose in the source frame.

    Attributes:
        offset: (3,) metres added to the source-frame box centre, world axes (z up).
        position: (3,) absolute box centre in world metres; replaces ``offset`` when given.
        yaw, pitch, roll: radians; the box turns about its centre by ``Rz(yaw) Ry(pitch) Rx(roll)``
            applied after its source rotation, in world axes (as :func:`neuralassets.edits.rotate`).
        scale: factor (> 0) on the source-frame box size; the box's lowest point keeps its
            height, so an object on the floor stays on it (as :func:`neuralassets.edits.scale`).
    """

    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    position: tuple[float, float, float] | None = None
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    scale: float = 1.0

    def validate(self, where: str = "keyframe") -> Keyframe:
        """Raise :class:`ValidationError` naming ``where`` and the bad field; returns self."""
        _triple(self.offset, f"{where}.offset")
        if self.position is not None:
            _triple(self.position, f"{where}.position")
        for name in ("yaw", "pitch", "roll"):
            _finite(getattr(self, name), f"{where}.{name}")
        if _finite(self.scale, f"{where}.scale") <= 0:
            raise ValidationError(f"{where}.scale: expected a positive factor, got {self.scale!r}")
        return self


@dataclass(frozen=True)
class CameraKeyframe:
    """The camera at one frame: at ``eye`` looking at ``target`` (world metres, z up), no roll.

    Intrinsics and image size stay those of the source frame's camera.
    """

    eye: tuple[float, float, float]
    target: tuple[float, float, float]

    def validate(self, where: str = "camera keyframe") -> CameraKeyframe:
        """Raise :class:`ValidationError` naming ``where`` if the camera would be undefined; returns self."""
        eye, target = torch.tensor(_triple(self.eye, f"{where}.eye")), torch.tensor(_triple(self.target, f"{where}.target"))
        forward = target - eye
        if float(forward.norm()) < 1e-6:
            raise ValidationError(f"{where}: eye and target coincide at {list(self.eye)}")
        if float(torch.linalg.cross(forward / forward.norm(), torch.tensor([0.0, 0.0, 1.0])).norm()) < 1e-6:
            raise ValidationError(f"{where}: the camera would look straight up or down, leaving its roll undefined")
        return self


@dataclass
class Keyframes:
    """Keyframed poses of some assets and, optionally, of the camera.

    Attributes:
        assets: asset id -> {frame index (>= 0) -> :class:`Keyframe`}. Assets not listed hold
            their source-frame pose throughout.
        camera: frame index -> :class:`CameraKeyframe`; empty keeps the source frame's camera.
        interpolation: ``"linear"`` or ``"smooth"`` for positions, scales and camera points
            (rotations are always slerped, taking the shorter way between consecutive keys).
    """

    assets: dict[int, dict[int, Keyframe]] = field(default_factory=dict)
    camera: dict[int, CameraKeyframe] = field(default_factory=dict)
    interpolation: str = "linear"

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def spin(cls, asset_id: int, num_frames: int, turns: float = 1.0) -> Keyframes:
        """Turn ``asset_id`` about the vertical by ``turns`` full turns over ``num_frames`` frames, looping.

        Frame k has yaw ``2 pi turns k / num_frames``, so the frame after the last would repeat
        the first: the video loops without a repeated frame.
        """
        _count(num_frames)
        return cls(assets={asset_id: {k: Keyframe(yaw=2 * math.pi * turns * k / num_frames) for k in range(num_frames)}})

    @classmethod
    def slide(cls, asset_id: int, delta: Sequence[float], num_frames: int, interpolation: str = "linear") -> Keyframes:
        """Move ``asset_id`` by ``delta`` (3,) metres (world axes) from the first to the last of ``num_frames`` frames."""
        if _count(num_frames) < 2:
            raise ValidationError(f"num_frames: a slide needs at least 2 frames, got {num_frames}")
        end = Keyframe(offset=_triple(delta, "delta"))
        return cls(assets={asset_id: {0: Keyframe(), num_frames - 1: end}}, interpolation=interpolation)

    def merged(self, other: Keyframes) -> Keyframes:
        """Keys of both (``other`` wins where both key the same asset or the camera); ``other``'s interpolation."""
        assets = {**copy.deepcopy(self.assets), **copy.deepcopy(other.assets)}
        camera = copy.deepcopy(other.camera) if other.camera else copy.deepcopy(self.camera)
        return Keyframes(assets, camera, other.interpolation)

    # -- checks ----------------------------------------------------------------------------
    def validate(self, scene: Scene | None = None) -> Keyframes:
        """Check every key; with ``scene``, also that every keyed asset is in it. Returns self.

        Raises:
            ValidationError: naming the bad keyframe, e.g. ``keyframes.assets[3][12].scale``.
        """
        if self.interpolation not in INTERPOLATIONS:
            raise ValidationError(f"keyframes.interpolation: {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
        for asset_id, keys in self.assets.items():
            where = f"keyframes.assets[{asset_id}]"
            if scene is not None and asset_id not in scene.asset_ids:
                raise ValidationError(f"{where}: there is no asset {asset_id} in the scene (ids: {scene.asset_ids})")
            _check_frames(keys, where)
            for frame, key in keys.items():
                if not isinstance(key, Keyframe):
                    raise ValidationError(f"{where}[{frame}]: expected a Keyframe, got {type(key).__name__}")
                key.validate(f"{where}[{frame}]")
            _check_turns(keys, where)
        _check_frames(self.camera, "keyframes.camera")
        for frame, key in self.camera.items():
            if not isinstance(key, CameraKeyframe):
                raise ValidationError(f"keyframes.camera[{frame}]: expected a CameraKeyframe, got {type(key).__name__}")
            key.validate(f"keyframes.camera[{frame}]")
        return self

    # -- sampling --------------------------------------------------------------------------
    def asset_track(self, asset_id: int, num_frames: int) -> tuple[Tensor, Tensor, Tensor]:
        """The keyed motion of one asset, relative to its source pose, at frames 0..num_frames-1.

        Returns:
            offsets: (T, 3) float metres (only for keys without ``position``; see :func:`animate`).
            turns: (T, 3, 3) float rotations applied after the source rotation.
            scales: (T,) float size factors.
        """
        keys = self.assets[asset_id]
        frames = sorted(keys)
        values = torch.tensor([[*keys[f].offset, keys[f].scale] for f in frames], dtype=torch.float32)
        sampled = interpolate(frames, values, num_frames, self.interpolation)
        turns = slerp_keys(frames, torch.stack([_turn(keys[f]) for f in frames]), num_frames)
        return sampled[:, :3], turns, sampled[:, 3]

    # -- files -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-serialisable form (frame and asset keys become strings)."""
        return {"format_version": KEYFRAMES_FORMAT_VERSION, "interpolation": self.interpolation,
                "assets": {str(a): {str(f): _key_json(k) for f, k in sorted(keys.items())} for a, keys in sorted(self.assets.items())},
                "camera": {str(f): {"eye": list(k.eye), "target": list(k.target)} for f, k in sorted(self.camera.items())}}

    @classmethod
    def from_dict(cls, data: Mapping) -> Keyframes:
        """Inverse of :meth:`to_dict`; raises :class:`ValidationError` naming the bad entry."""
        if not isinstance(data, Mapping):
            raise ValidationError(f"keyframes: expected an object, got {type(data).__name__}")
        version = data.get("format_version", KEYFRAMES_FORMAT_VERSION)
        if version != KEYFRAMES_FORMAT_VERSION:
            raise ValidationError(f"keyframes.format_version: {version!r} is not supported (expected {KEYFRAMES_FORMAT_VERSION})")
        try:
            assets = {int(a): {int(f): Keyframe(**_key_args(k)) for f, k in keys.items()}
                      for a, keys in (data.get("assets") or {}).items()}
            camera = {int(f): CameraKeyframe(tuple(k["eye"]), tuple(k["target"])) for f, k in (data.get("camera") or {}).items()}
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise ValidationError(f"keyframes: malformed entry ({e})") from None
        return cls(assets, camera, str(data.get("interpolation", "linear"))).validate()


def _count(num_frames: int) -> int:
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValidationError(f"num_frames: expected an integer >= 1, got {num_frames!r}")
    return num_frames


def _check_frames(keys: Mapping, where: str) -> None:
    if not isinstance(keys, Mapping):
        raise ValidationError(f"{where}: expected a mapping frame -> keyframe, got {type(keys).__name__}")
    if where != "keyframes.camera" and not keys:
        raise ValidationError(f"{where}: no keyframes")
    for frame in keys:
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
            raise ValidationError(f"{where}[{frame!r}]: keyframe frames must be integers >= 0")


def _check_turns(keys: Mapping[int, Keyframe], where: str) -> None:
    """Slerp takes the shorter way, so a turn of 180 degrees or more between keys with frames between them is ambiguous."""
    frames = sorted(keys)
    for a, b in zip(frames, frames[1:]):
        turn = sum(abs(getattr(keys[b], n) - getattr(keys[a], n)) for n in ("yaw", "pitch", "roll"))
        if b - a > 1 and turn >= math.pi - 1e-6:
            raise ValidationError(
                f"{where}[{b}]: turns by {math.degrees(turn):.0f} degrees since the key at frame {a}; rotations between keys "
                "must stay under 180 degrees (add keys in between)")


def _turn(key: Keyframe) -> Tensor:
    return geometry.euler_to_matrix(*(torch.tensor(float(v)) for v in (key.yaw, key.pitch, key.roll)))


def _key_json(key: Keyframe) -> dict:
    out = asdict(key)
    out["offset"] = list(key.offset)
    out["position"] = None if key.position is None else list(key.position)
    return out


def _key_args(entry: Mapping) -> dict:
    args = dict(entry)
    args["offset"] = tuple(args.get("offset", (0.0, 0.0, 0.0)))
    if args.get("position") is not None:
        args["position"] = tuple(args["position"])
    return args


# --------------------------------------------------------------------------------------
# Interpolation
# --------------------------------------------------------------------------------------

def _segments(frames: Sequence[int], num_frames: int) -> tuple[Tensor, Tensor]:
    """For each output frame t: the key index i starting its segment and the fraction s in [0, 1] to key i + 1."""
    keys = torch.tensor(frames, dtype=torch.float32)
    t = torch.arange(num_frames, dtype=torch.float32).clamp(float(frames[0]), float(frames[-1]))
    i = (torch.searchsorted(keys, t, right=True) - 1).clamp(0, max(len(frames) - 2, 0))
    if len(frames) == 1:
        return i, torch.zeros(num_frames)
    s = (t - keys[i]) / (keys[i + 1] - keys[i])
    return i, s


def interpolate(frames: Sequence[int], values: Tensor, num_frames: int, mode: str = "linear") -> Tensor:
    """Sample keyed values at frames 0..num_frames-1.

    Args:
        frames: K sorted distinct key frames.
        values: (K, D) float values at the keys.
        num_frames: frames to sample.
        mode: ``"linear"``, or ``"smooth"``: a cubic Hermite curve through the keys whose
            velocity at an inner key is the Catmull-Rom slope ``(v[i+1] - v[i-1]) / (f[i+1] - f[i-1])``
            and zero at the first and last key (two keys give a smoothstep ease in and out).

    Returns:
        (num_frames, D) float; values are held before the first and after the last key.
    """
    if mode not in INTERPOLATIONS:
        raise ValidationError(f"interpolation: {mode!r} is not one of {', '.join(INTERPOLATIONS)}")
    i, s = _segments(frames, num_frames)
    if len(frames) == 1:
        return values[:1].expand(num_frames, -1).clone()
    s = s[:, None]
    a, b = values[i], values[i + 1]
    if mode == "linear":
        return a + s * (b - a)
    f = torch.tensor(frames, dtype=torch.float32)
    velocity = torch.zeros_like(values)
    velocity[1:-1] = (values[2:] - values[:-2]) / (f[2:] - f[:-2])[:, None]
    h = (f[i + 1] - f[i])[:, None]
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    return h00 * a + h10 * h * velocity[i] + h01 * b + h11 * h * velocity[i + 1]


def slerp(a: Tensor, b: Tensor, s: Tensor) -> Tensor:
    """Spherical interpolation of rotations: ``a`` at s = 0, ``b`` at s = 1, constant angular speed.

    Args:
        a, b: (..., 3, 3) rotation matrices.
        s: (...) float fractions.

    Returns:
        (..., 3, 3) ``a @ exp(s log(a^T b))``, turning the shorter way (at most 180 degrees).
    """
    relative = geometry.matrix_to_axis_angle(a.transpose(-1, -2) @ b)
    return a @ geometry.axis_angle_to_matrix(relative * s[..., None])


def slerp_keys(frames: Sequence[int], rotations: Tensor, num_frames: int) -> Tensor:
    """Sample keyed rotations (K, 3, 3) at frames 0..num_frames-1 by slerp; (num_frames, 3, 3), held outside the keys."""
    i, s = _segments(frames, num_frames)
    if len(frames) == 1:
        return rotations[:1].expand(num_frames, 3, 3).clone()
    return slerp(rotations[i], rotations[i + 1], s)


# --------------------------------------------------------------------------------------
# Animating a scene
# --------------------------------------------------------------------------------------

def animate(scene: Scene, keyframes: Keyframes, num_frames: int, source_frame: int = 0) -> Scene:
    """A new scene of ``num_frames`` frames whose poses and cameras follow ``keyframes``.

    Every asset starts from its pose at ``source_frame``: keyed assets move as their keys
    say (see :class:`Keyframe`), the others stand still. Without camera keys every frame
    has the source frame's camera.

    Appearance and background come from the source frame throughout, so the new scene's
    frames are placeholders that all hold the source image (the library's convention: a
    scene's frames are the images appearance is taken from), its assets' 2D boxes,
    visibility, masks and depth are the source frame's at every frame, and an asset with
    its own :class:`~neuralassets.scene.AppearanceSource` keeps it. A scene without an
    explicit background gets one (the source image and camera with every asset's box), so
    camera keys move the view relative to the source camera. An asset that leaves the view
    and comes back looks the same, since its looks come from the source frame;
    :meth:`~neuralassets.pipelines.NeuralAssetsPipeline.render_video` leaves out assets out of view at a frame.

    Args:
        scene: the scene; not modified.
        keyframes: what moves.
        num_frames: frames of the result (>= 1); keys beyond it are used for interpolation only.
        source_frame: frame of ``scene`` whose poses, camera, image and boxes the animation starts from.

    Returns:
        A validated Scene; ``metadata["animation"]`` records the source frame and the keyframes.

    Raises:
        ValidationError: a bad frame count or source frame, or a bad keyframe (named).
    """
    _count(num_frames)
    if isinstance(source_frame, bool) or not isinstance(source_frame, int) or not -scene.num_frames <= source_frame < scene.num_frames:
        raise ValidationError(f"source_frame: {source_frame!r} is not a frame index of a {scene.num_frames}-frame scene")
    src = source_frame % scene.num_frames
    keyframes.validate(scene)
    T = num_frames

    def repeat(x: Tensor) -> Tensor:
        return x[src].unsqueeze(0).repeat(T, *([1] * (x.dim() - 1)))

    background = copy.deepcopy(scene.background)
    if background is None:
        background = Background(scene.frames[src].clone(), copy.deepcopy(scene.cameras[src]), scene.photo_boxes(src),
                                depth=None if scene.depth is None else scene.depth[src].clone())
    out = Scene(repeat(scene.frames), _cameras(scene.cameras[src], keyframes, T), [], background,
                None if scene.depth is None else repeat(scene.depth), copy.deepcopy(scene.metadata))
    for asset in scene.assets:
        a = copy.copy(asset)
        a.centers, a.sizes, a.rotations = repeat(asset.centers), repeat(asset.sizes), repeat(asset.rotations)
        a.boxes_2d, a.visibility = repeat(asset.boxes_2d), repeat(asset.visibility)
        a.masks = None if asset.masks is None else repeat(asset.masks)
        a.appearance, a.attributes = copy.deepcopy(asset.appearance), copy.deepcopy(asset.attributes)
        a.source_frame = 0
        a.observed_poses = asset.photo_pose(src, scene.cameras[src]).expand(T, 12).clone()  # every frame shows photo src
        if asset.id in keyframes.assets:
            _apply_track(a, keyframes, T)
        out.assets.append(a)
    out.metadata.pop("frames", None)  # the generator's frame list no longer describes these frames
    out.metadata["animation"] = {"source_frame": src, "num_frames": T, "keyframes": keyframes.to_dict()}
    return out.validate()


def _apply_track(asset, keyframes: Keyframes, num_frames: int) -> None:
    """Move ``asset`` (a fresh copy holding its source pose at every frame) along its keys, in place."""
    offsets, turns, scales = keyframes.asset_track(asset.id, num_frames)
    keys = keyframes.assets[asset.id]
    if any(k.position is not None for k in keys.values()):
        # absolute and relative keys mix: every key becomes an absolute centre, then those are interpolated
        frames = sorted(keys)
        centres = torch.stack([torch.tensor(keys[f].position) if keys[f].position is not None
                               else asset.centers[0] + torch.tensor(keys[f].offset) for f in frames]).float()
        offsets = interpolate(frames, centres, num_frames, keyframes.interpolation) - asset.centers
    rotations = turns @ asset.rotations
    sizes = asset.sizes * scales[:, None]
    # keep the lowest point's height: it sits 0.5 * sum_j |R[2, j]| * size_j below the centre
    lift = 0.5 * (rotations[:, 2, :].abs() * (sizes - asset.sizes)).sum(-1)
    asset.centers = asset.centers + offsets + torch.stack([torch.zeros_like(lift), torch.zeros_like(lift), lift], -1)
    asset.sizes, asset.rotations = sizes, rotations


def _cameras(source: Camera, keyframes: Keyframes, num_frames: int) -> list[Camera]:
    if not keyframes.camera:
        return [copy.deepcopy(source) for _ in range(num_frames)]
    frames = sorted(keyframes.camera)
    points = torch.tensor([[*keyframes.camera[f].eye, *keyframes.camera[f].target] for f in frames], dtype=torch.float32)
    sampled = interpolate(frames, points, num_frames, keyframes.interpolation)
    R, t = geometry.look_at(sampled[:, :3], sampled[:, 3:])
    return [Camera(source.K.clone(), R[k], t[k], source.width, source.height) for k in range(num_frames)]


__all__ = ["INTERPOLATIONS", "CameraKeyframe", "Keyframe", "Keyframes", "animate", "interpolate", "slerp", "slerp_keys"]

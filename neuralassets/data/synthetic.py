"""The synthetic multi-object video generator: scenes sampled from one integer seed.

:func:`sample_scene_spec` samples everything (objects, their rigid motion, camera path,
light, floor and backdrop) without rendering; :func:`generate_scene` renders it with
:mod:`neuralassets.data.renderer` and fills in every ground truth. Because the renderer
can re-render any edited Scene, the generator is also the exact oracle of every edit.

Objects stand on the floor (z = 0) and never interpenetrate: their floor footprints
(circles around their 3D boxes) are kept apart at every frame. They slide and spin about
the vertical, spheres, lying cylinders and rings standing on their rim roll without
slipping, and now and then a cube or L-block tips over an edge. The camera orbits slightly
on a sphere around the scene, always looking at its centre.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import torch

from .. import geometry
from ..config import from_dict
from ..errors import ConfigError, ValidationError
from ..scene import Asset, Camera, Scene
from .renderer import BACKDROPS, FLOOR_TEXTURES, SHAPES, TEXTURES, TORUS_TUBE, fill_from_render, render

#: Disjoint seed ranges; the test range is reserved for benchmarks.
SPLITS: dict[str, range] = {
    "train": range(0, 10**6),
    "val": range(10**6, 10**6 + 10**4),
    "test": range(2 * 10**6, 2 * 10**6 + 10**4),
}

#: Named object colours (linear RGB in [0, 1]); an object's name starts with its colour.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.14, 0.12), "orange": (0.93, 0.50, 0.10), "yellow": (0.93, 0.80, 0.16),
    "green": (0.22, 0.62, 0.22), "teal": (0.08, 0.58, 0.56), "blue": (0.16, 0.32, 0.82),
    "purple": (0.50, 0.22, 0.68), "pink": (0.93, 0.50, 0.66), "brown": (0.50, 0.31, 0.17),
    "white": (0.90, 0.90, 0.87), "grey": (0.50, 0.50, 0.52), "black": (0.13, 0.13, 0.14),
}

#: Display names of shapes (the category is the shape key).
SHAPE_NAMES = {"cube": "cube", "sphere": "sphere", "cylinder": "cylinder", "cone": "cone", "l_block": "L-block", "mug": "mug",
               "wedge": "wedge", "torus": "torus"}
#: The shapes of every scene by default: all the training data, the benchmark and the figures.
TRAINING_SHAPES = ("cube", "sphere", "cylinder", "cone", "l_block", "mug")
#: Shapes no default scene holds, so no model has seen them: ``GeneratorConfig(shapes=HELD_OUT_SHAPES)``
#: (``--gen shapes='["wedge","torus"]'``) tests whatever is done by hand on objects never drawn before.
HELD_OUT_SHAPES = ("wedge", "torus")

_ROOM_RADIUS = 10.0  # metres; cameras stay well inside it
_RESIZE_STREAM = 0x512E  # second seed word: resizing draws never shift the scene's own random stream
_FOOTPRINT_GAP = 0.03  # metres kept between object footprints


@dataclass
class GeneratorConfig:
    """What the generator samples. Distances in metres, angles in degrees."""

    image_size: int = 128  # square frames of image_size x image_size pixels (64-256 intended)
    num_frames: int = 24  # frames per video
    min_objects: int = 3  # fewest objects per scene
    max_objects: int = 10  # most objects per scene
    supersample: bool = False  # average 2x2 rays per pixel for RGB (ground truth always from pixel centres)
    fov_degrees: float = 50.0  # horizontal field of view
    placement_radius: float = 2.2  # objects' centres stay within this distance of the scene centre
    camera_distance: tuple[float, float] = (5.3, 6.5)  # range of the camera's distance to its target (at 50 degrees)
    camera_elevation: tuple[float, float] = (22.0, 40.0)  # range of the camera's elevation above the floor
    camera_orbit_degrees: float = 15.0  # largest azimuth change of the camera over a video
    max_speed: float = 0.05  # largest object speed, metres per frame
    static_probability: float = 0.25  # chance that an object does not move at all
    tumble_probability: float = 0.2  # chance that a cube or L-block tips over an edge once
    resize_probability: float = 0.0  # chance that an object grows or shrinks steadily over a video (0: scenes as before)
    resize_range: tuple[float, float] = (0.6, 1.6)  # range of the size factor a resized object reaches at the last frame
    shapes: tuple[str, ...] = TRAINING_SHAPES  # shapes to draw from (HELD_OUT_SHAPES are never drawn by default)

    def validate(self) -> GeneratorConfig:
        """Raise :class:`ConfigError` naming the first bad field; returns self."""
        if not 8 <= self.image_size <= 1024:
            raise ConfigError(f"GeneratorConfig.image_size: expected 8..1024 pixels, got {self.image_size}")
        if self.num_frames < 1:
            raise ConfigError(f"GeneratorConfig.num_frames: expected >= 1, got {self.num_frames}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ConfigError(f"GeneratorConfig.min_objects/max_objects: expected 1 <= min <= max, got "
                              f"{self.min_objects}, {self.max_objects}")
        if not 10 <= self.fov_degrees <= 120:
            raise ConfigError(f"GeneratorConfig.fov_degrees: expected 10..120, got {self.fov_degrees}")
        if not 0 <= self.resize_probability <= 1:
            raise ConfigError(f"GeneratorConfig.resize_probability: expected 0..1, got {self.resize_probability}")
        if not 0 < self.resize_range[0] <= self.resize_range[1]:
            raise ConfigError(f"GeneratorConfig.resize_range: expected 0 < low <= high, got {tuple(self.resize_range)}")
        unknown = [s for s in self.shapes if s not in SHAPES]
        if unknown or not self.shapes:
            raise ConfigError(f"GeneratorConfig.shapes: {unknown or 'empty'}; expected a non-empty subset of {list(SHAPES)}")
        return self


def split_seed(split: str, index: int) -> int:
    """The scene seed of item ``index`` of ``split`` (see :data:`SPLITS`)."""
    if split not in SPLITS:
        raise ValidationError(f"split: {split!r} is not one of {list(SPLITS)}")
    seeds = SPLITS[split]
    if not 0 <= index < len(seeds):
        raise ValidationError(f"index: {index} is outside split {split!r} (size {len(seeds)})")
    return seeds[index]


# --------------------------------------------------------------------------------------
# Rotations in float64 numpy (sampling happens before anything becomes a tensor)
# --------------------------------------------------------------------------------------

def _rot_z(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _rot_axis(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations about the unit ``axis`` (3,) by ``angle`` (T,) radians (Rodrigues)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = angle[:, None, None]
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


# --------------------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------------------

def _sample_size(rng: np.random.Generator, shape: str) -> np.ndarray:
    u = rng.uniform
    if shape == "cube":
        return u(0.45, 0.75) * u(0.88, 1.12, size=3)
    if shape == "sphere":
        return np.full(3, u(0.45, 0.8))
    if shape in ("cylinder", "cone"):
        d = u(0.42, 0.75)
        return np.array([d, d, u(0.45, 0.9)])
    if shape == "l_block":
        return np.array([u(0.55, 0.85), u(0.32, 0.5), u(0.5, 0.8)])
    if shape == "wedge":
        return np.array([u(0.6, 0.9), u(0.4, 0.65), u(0.4, 0.7)])
    if shape == "torus":  # a ring of outer diameter d whose tube is about round
        d = u(0.6, 0.9)
        return np.array([d, d, d * TORUS_TUBE * u(0.9, 1.2)])
    d = u(0.4, 0.58)  # mug: the body is a circle of diameter d; the handle adds a third of it
    return np.array([d / 0.75, d, u(0.45, 0.7)])


def _sample_attributes(rng: np.random.Generator, shape: str) -> dict[str, Any]:
    names = list(COLOURS)
    colour = names[rng.integers(len(names))]
    texture = TEXTURES[rng.choice(len(TEXTURES), p=[0.3, 0.2, 0.15, 0.15, 0.2])]
    rgb = np.array(COLOURS[colour])
    if texture == "noise":
        rgb2 = rgb * 0.55
    elif texture == "solid":
        rgb2 = rgb
    else:
        others = [n for n in names if n != colour]
        rgb2 = np.array(COLOURS[others[rng.integers(len(others))]])
    return {
        "shape": shape, "color": colour, "rgb": [round(float(v), 4) for v in rgb],
        "rgb2": [round(float(v), 4) for v in rgb2], "texture": texture,
        "texture_scale": round(float(rng.uniform(2.0, 4.5)), 3), "texture_seed": int(rng.integers(1 << 20)),
        "specular": round(float(rng.choice([0.0, 0.25, 0.5])), 3),
    }


@dataclass
class _Track:
    """One object's sampled trajectory (float64)."""

    shape: str
    size: np.ndarray  # (3,) at frame 0
    centers: np.ndarray  # (T, 3)
    rotations: np.ndarray  # (T, 3, 3)
    motion: str
    growth: np.ndarray | None = None  # (T,) size factor per frame; None: the size stays

    @property
    def sizes(self) -> np.ndarray:
        """(T, 3) box extents per frame."""
        growth = np.ones(len(self.centers)) if self.growth is None else self.growth
        return self.size[None] * growth[:, None]

    @cached_property
    def footprint(self) -> tuple[np.ndarray, np.ndarray]:
        """Floor circles enclosing the box at every frame: centres (T, 2) and radii (T,)."""
        signs = np.array([[(i & 1) - 0.5, ((i >> 1) & 1) - 0.5, ((i >> 2) & 1) - 0.5] for i in range(8)])
        corners = np.einsum("tij,kj->tki", self.rotations, signs * self.size)  # (T, 8, 3) relative to the centre
        radii = np.linalg.norm(corners[..., :2], axis=-1).max(-1)
        return self.centers[:, :2], radii if self.growth is None else radii * self.growth


def _sample_track(rng: np.random.Generator, shape: str, config: GeneratorConfig, T: int) -> _Track:
    size = _sample_size(rng, shape)
    radius = config.placement_radius * math.sqrt(rng.uniform())
    angle = rng.uniform(0, 2 * math.pi)
    start = np.array([radius * math.cos(angle), radius * math.sin(angle)])
    moving = rng.uniform() >= config.static_probability
    speed = rng.uniform(0.3, 1.0) * config.max_speed if moving else 0.0
    heading = rng.uniform(0, 2 * math.pi)
    direction = np.array([math.cos(heading), math.sin(heading), 0.0])
    steps = np.arange(T, dtype=np.float64)
    yaw0 = rng.uniform(0, 2 * math.pi)

    lying = shape in ("cylinder", "torus") and rng.uniform() < 0.4  # a cylinder on its side, a ring on its rim
    if shape == "sphere" or lying:  # rolling without slipping: spin axis = z x velocity
        base = _rot_z(np.array(yaw0))
        if lying:  # axis horizontal, rolling across it
            base = base @ np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # local z onto the heading's normal
            axis_world = base[:, 2]
            direction = np.cross([0.0, 0.0, 1.0], axis_world)
        roll_radius = size[0] / 2
        height = size[0] / 2
        centers = np.concatenate([start, [height]])[None] + steps[:, None] * speed * direction[None]
        spin_axis = np.cross([0.0, 0.0, 1.0], direction)
        rotations = _rot_axis(spin_axis / np.linalg.norm(spin_axis), steps * speed / roll_radius) @ base
        return _Track(shape, size, centers, rotations, "roll" if moving else "static")

    if shape in ("cube", "l_block") and moving and rng.uniform() < config.tumble_probability:
        # Tip over the bottom edge on one side of the box, once, over a few frames.
        base = _rot_z(np.array(yaw0))
        side = int(rng.integers(4))
        local_axis = side % 2
        sign = 1.0 if side < 2 else -1.0
        m = sign * base[:, local_axis]  # horizontal direction of the tipping edge
        center0 = np.array([*start, size[2] / 2])
        pivot = center0 + size[local_axis] / 2 * m - np.array([0, 0, size[2] / 2])
        first, length = int(rng.integers(0, max(T - 6, 1))), int(rng.integers(4, 9))
        progress = np.clip((steps - first) / length, 0, 1)
        theta = (math.pi / 2) * progress * progress * (3 - 2 * progress)
        turn = _rot_axis(np.cross([0.0, 0.0, 1.0], m), theta)
        centers = pivot[None] + np.einsum("tij,j->ti", turn, center0 - pivot)
        return _Track(shape, size, centers, turn @ base, "tumble")

    spin = rng.uniform(-0.1, 0.1) if moving else 0.0
    centers = np.concatenate([start, [size[2] / 2]])[None] + steps[:, None] * speed * direction[None]
    return _Track(shape, size, centers, _rot_z(yaw0 + spin * steps), "slide" if moving else "static")


def _fits(track: _Track, placed: list[_Track], config: GeneratorConfig) -> bool:
    centres, radii = track.footprint
    if (np.linalg.norm(centres, axis=-1) + radii > config.placement_radius + 0.6).any():
        return False
    for other in placed:
        c2, r2 = other.footprint
        if (np.linalg.norm(centres - c2, axis=-1) < radii + r2 + _FOOTPRINT_GAP).any():
            return False
    return True


def generator_config(overrides: dict | None, where: str = "generator") -> GeneratorConfig:
    """The default :class:`GeneratorConfig` with ``overrides`` applied, validated.

    Args:
        overrides: field values to change.
        where: the overrides' name in error messages (e.g. ``"data.generator_config"``).

    Raises:
        ConfigError: an override names no field (the valid ones are listed), or a value is
            out of range (naming the field).
    """
    return from_dict(GeneratorConfig, overrides, where).validate()


def _resize_some(tracks: list[_Track], config: GeneratorConfig, rng: np.random.Generator) -> list[_Track]:
    """Let each object grow or shrink steadily with ``config.resize_probability``.

    The size factor goes linearly from 1 at frame 0 to a draw from ``config.resize_range``
    at the last frame, and the centre's height with it, so the object stays on the floor.
    Tumbling objects keep their size (their pivot is an edge of the frame-0 box), and so
    does an object whose resized footprint would overlap another's or leave the floor.
    """
    out = list(tracks)
    for i, track in enumerate(tracks):
        chosen = rng.uniform() < config.resize_probability
        factor = rng.uniform(*config.resize_range)
        if not chosen or track.motion == "tumble":
            continue
        growth = 1 + (factor - 1) * np.linspace(0.0, 1.0, len(track.centers))
        centers = track.centers.copy()
        centers[:, 2] *= growth  # every other motion rests on the floor with its centre at half its height
        resized = replace(track, centers=centers, growth=growth)
        if _fits(resized, out[:i] + out[i + 1:], config):
            out[i] = resized
    return out


def _sample_objects(rng: np.random.Generator, config: GeneratorConfig) -> list[_Track]:
    """Place objects one by one without overlap.

    An object that keeps colliding is retried standing still and finally dropped, unless
    the scene would have fewer than ``min_objects``; then the whole placement is redone
    with every object standing still (moving objects sweep much more floor).
    """
    T = config.num_frames
    wanted = int(rng.integers(config.min_objects, config.max_objects + 1))
    still = replace(config, static_probability=1.0)
    for round_config in (config, still, still, still):
        placed: list[_Track] = []
        tries = 0
        while len(placed) < wanted and tries < 100 and not (tries > 30 and len(placed) >= config.min_objects):
            tries += 1
            shape = config.shapes[rng.integers(len(config.shapes))]
            track = _sample_track(rng, shape, round_config if tries <= 12 else still, T)
            if _fits(track, placed, config):
                placed.append(track)
                tries = 0
        if len(placed) >= config.min_objects:
            return placed
    raise ConfigError(f"GeneratorConfig: could not place {config.min_objects} objects without overlap within "
                      f"placement_radius {config.placement_radius} m; raise it or lower min_objects")


# --------------------------------------------------------------------------------------
# Camera, light, floor and backdrop
# --------------------------------------------------------------------------------------

def _sample_cameras(rng: np.random.Generator, config: GeneratorConfig) -> list[Camera]:
    T, size = config.num_frames, config.image_size
    u = rng.uniform
    zoom = math.tan(math.radians(25.0)) / math.tan(math.radians(config.fov_degrees) / 2)
    distance = u(*config.camera_distance) * zoom
    elevation = math.radians(u(*config.camera_elevation))
    azimuth = u(0, 2 * math.pi)
    d_azimuth = math.radians(u(-1, 1) * config.camera_orbit_degrees)
    d_elevation = math.radians(u(-4, 4))
    d_distance = u(-0.3, 0.3) * zoom
    target = np.array([u(-0.3, 0.3), u(-0.3, 0.3), 0.3])
    s = np.arange(T) / max(T - 1, 1)
    az, el, dist = azimuth + s * d_azimuth, elevation + s * d_elevation, distance + s * d_distance
    eyes = target + dist[:, None] * np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
    R, t = geometry.look_at(torch.from_numpy(eyes).float(), torch.from_numpy(target).float().expand(T, 3))
    K = geometry.intrinsics_from_fov(config.fov_degrees, size, size)
    return [Camera(K, R[k], t[k], size, size) for k in range(T)]


def _hsv(h: float, s: float, v: float) -> list[float]:
    i, f = int(h * 6) % 6, h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return [round(float(c), 4) for c in rgb]


def sample_background_style(rng: np.random.Generator) -> dict[str, Any]:
    """Floor and backdrop parameters (the part of ``metadata["renderer"]`` a background swap replaces).

    Returns:
        ``{"floor": {"texture", "rgb", "rgb2", "scale"}, "backdrop": {"style", "rgb", "rgb2", "scale"}}``.
    """
    u = rng.uniform
    hue = u()
    floor_texture = FLOOR_TEXTURES[rng.integers(len(FLOOR_TEXTURES))]
    base_v = u(0.45, 0.8)
    floor = {"texture": floor_texture, "rgb": _hsv(hue, u(0.05, 0.35), base_v),
             "rgb2": _hsv((hue + u(-0.08, 0.08)) % 1, u(0.05, 0.4), base_v * u(0.55, 0.8)),
             "scale": round(float(u(0.5, 1.0)), 3)}
    style = BACKDROPS[rng.integers(len(BACKDROPS))]
    if style == "sky":
        rgb, rgb2 = _hsv(u(0.52, 0.62), u(0.05, 0.2), u(0.85, 0.97)), _hsv(u(0.55, 0.65), u(0.35, 0.65), u(0.65, 0.9))
    else:
        wall_hue = u()
        rgb = _hsv(wall_hue, u(0.1, 0.5), u(0.55, 0.9))
        rgb2 = _hsv((wall_hue + u(0.3, 0.7)) % 1, u(0.1, 0.5), u(0.35, 0.75))
    backdrop = {"style": style, "rgb": rgb, "rgb2": rgb2, "scale": round(float(u(0.6, 1.4)), 3)}
    return {"floor": floor, "backdrop": backdrop}


def _sample_renderer_parameters(rng: np.random.Generator, config: GeneratorConfig) -> dict[str, Any]:
    u = rng.uniform
    elevation, azimuth = math.radians(u(35, 65)), u(0, 2 * math.pi)
    direction = [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    return {
        "format_version": 1,
        "room_radius": _ROOM_RADIUS,
        "light": {"direction": [round(v, 5) for v in direction], "intensity": round(float(u(0.6, 0.8)), 3),
                  "ambient": round(float(u(0.3, 0.42)), 3)},
        **sample_background_style(rng),
        "supersample": bool(config.supersample),
    }


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------

def sample_scene_spec(seed: int, config: GeneratorConfig | None = None) -> Scene:
    """Sample a scene without rendering it.

    Everything (objects, motion, camera path, light, floor, backdrop) comes from ``seed``.
    The result is a Scene with all ``config.num_frames`` frames whose **frames are black
    placeholders**, whose assets have no masks and zero ``boxes_2d`` / ``visibility``, and
    whose ``depth`` is None; poses, cameras, asset attributes and
    ``metadata["renderer"]`` are final. Pass it to
    :func:`neuralassets.data.renderer.render_scene` (or :func:`generate_scene`) to render.

    Args:
        seed: any non-negative integer (see :data:`SPLITS` for the dataset ranges).
        config: what to sample (default :class:`GeneratorConfig`).
    """
    config = (config or GeneratorConfig()).validate()
    if seed < 0:
        raise ValidationError(f"seed: expected a non-negative integer, got {seed}")
    rng = np.random.default_rng(seed)
    tracks = _sample_objects(rng, config)
    if config.resize_probability > 0:
        tracks = _resize_some(tracks, config, np.random.default_rng([seed, _RESIZE_STREAM]))
    attributes = [_sample_attributes(rng, t.shape) for t in tracks]
    cameras = _sample_cameras(rng, config)
    renderer = _sample_renderer_parameters(rng, config)
    T, S = config.num_frames, config.image_size
    assets = []
    for k, (track, attrs) in enumerate(zip(tracks, attributes)):
        attrs = {**attrs, "motion": track.motion}
        if track.growth is not None:
            attrs["size_factor"] = round(float(track.growth[-1]), 4)
        assets.append(Asset(
            id=k + 1, name=f"{attrs['color']} {SHAPE_NAMES[track.shape]}", category=track.shape,
            centers=torch.from_numpy(track.centers).float(),
            sizes=torch.from_numpy(track.sizes).float(),
            rotations=torch.from_numpy(track.rotations).float(),
            boxes_2d=torch.zeros(T, 4), visibility=torch.zeros(T), source_frame=0, attributes=attrs))
    metadata = {"generator": {"seed": int(seed), "config": _jsonable(asdict(config))}, "renderer": renderer}
    return Scene(torch.zeros(T, 3, S, S), cameras, assets, metadata=metadata)


def select_frames(scene: Scene, frames: list[int]) -> Scene:
    """A copy of ``scene`` with only ``frames`` (cameras, poses, masks, depth sliced to match).

    Assets whose ``source_frame`` is not kept get the first kept frame as source.
    ``metadata["frames"]`` records which original frames were kept.
    """
    T = scene.num_frames
    bad = [f for f in frames if not 0 <= f < T]
    if bad or not frames:
        raise ValidationError(f"frames: {bad or 'empty'}; expected frame indices in [0, {T})")
    idx = torch.tensor(frames, dtype=torch.long)
    # Slice before copying: the full video is never duplicated.
    out = Scene(scene.frames[idx], [copy.deepcopy(scene.cameras[f]) for f in frames], [],
                copy.deepcopy(scene.background), None if scene.depth is None else scene.depth[idx],
                copy.deepcopy(scene.metadata), None if scene.removed_boxes is None else scene.removed_boxes[:, idx])
    for asset in scene.assets:
        a = copy.copy(asset)
        a.centers, a.sizes, a.rotations = asset.centers[idx], asset.sizes[idx], asset.rotations[idx]
        a.boxes_2d, a.visibility = asset.boxes_2d[idx], asset.visibility[idx]
        a.masks = None if asset.masks is None else asset.masks[idx]
        a.observed_poses = None if asset.observed_poses is None else asset.observed_poses[idx]
        a.appearance, a.attributes = copy.deepcopy(asset.appearance), copy.deepcopy(asset.attributes)
        a.source_frame = frames.index(asset.source_frame) if asset.source_frame in frames else 0
        out.assets.append(a)
    previous = scene.metadata.get("frames", list(range(T)))
    out.metadata["frames"] = [previous[f] for f in frames]
    return out


def generate_scene(seed: int, config: GeneratorConfig | None = None, frames: list[int] | None = None) -> Scene:
    """Sample and render a scene with exact ground truth.

    Args:
        seed: the scene's integer seed.
        config: generator settings (default :class:`GeneratorConfig`).
        frames: render only these frame indices (the Scene then holds just them, with
            cameras and poses sliced to match; ``metadata["frames"]`` lists them).

    Returns:
        A validated Scene: ``frames`` (T, 3, S, S) quantised to 1/255, ``depth`` (T, S, S)
        camera-frame z in metres (finite everywhere: floor or backdrop behind objects),
        one asset per object with masks, visible 2D boxes, visibility fractions,
        ``source_frame`` 0, names like ``"red cube"`` and renderer attributes, and
        ``metadata["renderer"]`` so any edit of it can be re-rendered with
        :func:`neuralassets.data.renderer.render`.
    """
    config = config or GeneratorConfig()
    spec = sample_scene_spec(seed, config)
    if frames is not None:
        spec = select_frames(spec, list(frames))
    # The spec is ours alone, so the render fills it in place instead of copying it.
    return fill_from_render(spec, render(spec, supersample=config.supersample)).validate()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value

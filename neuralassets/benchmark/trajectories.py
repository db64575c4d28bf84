"""The animation benchmark: keyframed videos of held-out scenes against their exact re-render.

Case ``i`` takes frame 0 of the generator's video of seed ``seeds[i]`` as the source (the
appearance of every frame) and animates it with :func:`neuralassets.animation.animate` along
a trajectory of :data:`TRAJECTORIES` over ``num_frames`` frames (smooth keys, source pose at
frame 0, full motion at the last frame). A per-(trajectory, seed) random generator draws the
objects, the move and the turn, so a case depends only on its trajectory, its seed and the
generator config; draws that leave the image or push through another object are redrawn.
The ground truth of every frame is the generator's exact re-render of the animated scene.

Frame ``t`` of an animation is also a pose-edit :class:`~neuralassets.data.edit_cases.Case`
(:meth:`Animation.frame_cases`: a two-frame scene, source frame 0, target frame ``t``, region
the union of the animated objects' projected 3D boxes at frames 0 and ``t``), so the
pose-edit baselines and :func:`~neuralassets.benchmark.harness.score` apply frame by frame.
:func:`run_animation_benchmark` scores, per frame:

- the model's video: :meth:`~neuralassets.pipelines.NeuralAssetsPipeline.render_video`, every frame from the same
  noise (seed ``config.seed + i * num_frames``);
- the model's single edits: each frame rendered on its own from the source, as the pose-edit
  benchmark renders an edit (:class:`~neuralassets.benchmark.baselines.PipelineMethod`, fresh
  noise per frame: seed ``config.seed + i * num_frames + t``);
- baselines such as copy-paste.

Trajectories (see :data:`TRAJECTORIES`):

============  =====================================================================
move_turn     one object slides 1-3 footprints across the floor and turns 45-150 degrees
two_objects   two objects, each its own slide and turn
orbit         one object's slide and turn while the camera orbits the scene by 10-30 degrees
============  =====================================================================
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor

from .. import geometry
from ..animation import CameraKeyframe, Keyframe, Keyframes, animate
from ..data.edit_cases import MAX_TRIES, Case, UnusableDraw, in_view, pick_ids, visible_ids
from ..data.synthetic import generator_config
from ..edits import boxes_overlap
from ..errors import ValidationError
from ..image_ops import to_uint8
from ..metrics import mean_ci, region_mask
from ..scene import Scene
from .baselines import Method, PipelineMethod
from .harness import score

NUM_FRAMES = 24  # frames per animation (the generator's video length)
MOVE_FOOTPRINTS = (1.0, 3.0)  # slide distance in footprints (the object's larger floor extent), as the translation task
TURN_DEGREES = (45.0, 150.0)  # yaw turn over the animation, either direction (under 180: slerp turns the short way)
ORBIT_DEGREES = (10.0, 30.0)  # camera orbit about the floor point at the image centre, either direction
FILMSTRIP_FRAMES = 6  # frames of the first case of each trajectory kept for the report's filmstrip
#: Reported per-frame metrics: key -> (title, higher is better).
FRAME_METRICS: dict[str, tuple[str, bool]] = {
    "psnr": ("PSNR (dB)", True),
    "psnr_box": ("PSNR in box (dB)", True),
    "ssim": ("SSIM", True),
    "ssim_box": ("SSIM in box", True),
    "identity": ("identity sim.", True),
}
#: Figures :meth:`AnimationResult.summary` averages over the edited frames of each case.
SUMMARY_AVERAGES = ("psnr_box", "psnr", "ssim", "ssim_box", "identity", "ms_per_frame")


@dataclass(frozen=True)
class Trajectory:
    """A kind of animation.

    Attributes:
        description: one line for the report.
        num_objects: objects that slide and turn (each its own draw).
        orbit: whether the camera orbits the scene as well.
    """

    description: str
    num_objects: int = 1
    orbit: bool = False


TRAJECTORIES: dict[str, Trajectory] = {
    "move_turn": Trajectory("one object slides 1-3 footprints across the floor and turns 45-150 degrees"),
    "two_objects": Trajectory("two objects, each its own slide and turn", num_objects=2),
    "orbit": Trajectory("one object slides and turns while the camera orbits the scene by 10-30 degrees", orbit=True),
}


@dataclass
class Animation:
    """One animated held-out scene and its exact ground truth.

    Attributes:
        trajectory: a name from :data:`TRAJECTORIES`.
        index: the case's number within its trajectory.
        seed: generator seed of the source video.
        video: the animated scene (:func:`~neuralassets.animation.animate`), ``T`` frames; its
            pixels, masks and 2D boxes are the source frame's at every frame.
        truth: (T, 3, H, W) float in [0, 1], every frame of ``video`` rendered exactly.
        animated_ids: the assets that move.
        keyframes: the keys ``video`` was animated with.
        params: the draw (per asset: slide in metres, turn in degrees; the orbit), JSON-serialisable.
    """

    trajectory: str
    index: int
    seed: int
    video: Scene
    truth: Tensor
    animated_ids: list[int]
    keyframes: Keyframes
    params: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """Frames T of the animation."""
        return self.video.num_frames

    def frame_cases(self) -> list[Case]:
        """Frame ``t`` as a single edit of the source: T :class:`Case` s, in frame order.

        Case ``t`` holds the two-frame scene (frame 0, frame t) of :attr:`video`, its exact
        target ``truth[t]``, the region of the animated objects' projected 3D boxes at frames 0
        and ``t`` (as the pose-edit benchmark's), index ``index * T + t`` (so
        :class:`~neuralassets.benchmark.baselines.PipelineMethod` draws fresh noise per frame)
        and ``params["frame"] = t``.
        """
        from ..data.synthetic import select_frames

        T = self.num_frames
        original = select_frames(self.video, [0, 0])
        origins = {a.id: (original, a.id) for a in original.assets}
        cases = []
        for t in range(T):
            scene = select_frames(self.video, [0, t])
            region = region_mask(scene, self.animated_ids, (0, 1))
            cases.append(Case(self.trajectory, self.index * T + t, self.seed, scene, original, self.truth[t],
                              list(self.animated_ids), region, origins, {"frame": t}))
        return cases


def _clashes(video: Scene, moving: Sequence[int]) -> bool:
    """Whether a moving asset interpenetrates another asset at some frame where it did not at frame 0."""
    frames = list(range(video.num_frames))
    for asset_id in moving:
        asset = video.asset(asset_id)
        for other in video.assets:
            if other.id == asset_id:
                continue
            overlap = boxes_overlap(asset, other, frames)
            if bool((overlap & ~overlap[0]).any()):
                return True
    return False


def _orbit(rng: np.random.Generator, still: Scene, num_frames: int) -> tuple[dict[int, CameraKeyframe], dict]:
    """Camera keys orbiting the floor point at the image centre of ``still``'s camera, eased in and out.

    A key at every frame puts every camera on the circle (interpolated eyes would cut the chord).
    """
    cam = still.cameras[0]
    look, hit = geometry.ground_intersection(torch.tensor([[cam.width / 2, cam.height / 2]]), cam.K, cam.R, cam.t)
    if not bool(hit[0]):
        raise UnusableDraw("the camera does not look at the floor")
    look, eye = look[0], cam.center
    angle = float(rng.choice([-1, 1]) * math.radians(rng.uniform(*ORBIT_DEGREES)))
    keys = {}
    for k in range(num_frames):
        s = k / max(num_frames - 1, 1)
        turn = geometry.euler_to_matrix(torch.tensor(angle * (3 * s**2 - 2 * s**3)), torch.tensor(0.0), torch.tensor(0.0))
        keys[k] = CameraKeyframe(tuple((look + turn @ (eye - look)).tolist()), tuple(look.tolist()))
    return keys, {"orbit_deg": math.degrees(angle)}


def make_animation(trajectory: str, index: int, seed: int, still: Scene, num_frames: int = NUM_FRAMES) -> Animation | None:
    """Draw and render case ``index`` of ``trajectory`` from a one-frame scene, or None if no draw works.

    Args:
        trajectory: a name from :data:`TRAJECTORIES`.
        index: the case's number within its trajectory.
        seed: the scene's generator seed (with the trajectory, it seeds every random choice).
        still: frame 0 of the seed's video (one frame, with masks and renderer attributes).
        num_frames: frames of the animation (>= 2).

    Returns:
        An :class:`Animation`, or None when the scene has too few visible objects or
        :data:`~neuralassets.data.edit_cases.MAX_TRIES` draws all left the image or hit another object.

    Raises:
        ValidationError: an unknown trajectory or fewer than 2 frames.
    """
    from ..data.renderer import render

    if trajectory not in TRAJECTORIES:
        raise ValidationError(f"trajectory: {trajectory!r} is not one of {', '.join(TRAJECTORIES)}")
    if num_frames < 2:
        raise ValidationError(f"num_frames: an animation needs at least 2 frames, got {num_frames}")
    spec = TRAJECTORIES[trajectory]
    rng = np.random.default_rng([list(TRAJECTORIES).index(trajectory), int(seed)])
    last = num_frames - 1
    for _ in range(MAX_TRIES):
        try:
            moving = pick_ids(rng, visible_ids(still), spec.num_objects)
        except UnusableDraw:
            return None  # too few visible objects: no draw can change that
        keys, params = {}, {}
        for asset_id in moving:
            footprint = float(still.asset(asset_id).sizes[0, :2].max())
            distance, direction = rng.uniform(*MOVE_FOOTPRINTS) * footprint, rng.uniform(0, 2 * math.pi)
            delta = (distance * math.cos(direction), distance * math.sin(direction), 0.0)
            yaw = float(rng.choice([-1, 1]) * math.radians(rng.uniform(*TURN_DEGREES)))
            keys[asset_id] = {0: Keyframe(), last: Keyframe(offset=delta, yaw=yaw)}
            params[str(asset_id)] = {"move_xy_m": list(delta[:2]), "yaw_deg": math.degrees(yaw)}
        camera = {}
        if spec.orbit:
            try:
                camera, orbit = _orbit(rng, still, num_frames)
            except UnusableDraw:
                return None  # the camera is the scene's: another draw sees the same
            params["camera"] = orbit
        keyframes = Keyframes(keys, camera, interpolation="smooth")
        video = animate(still, keyframes, num_frames)
        if not all(in_view(video, moving, frame=f) for f in range(num_frames)) or _clashes(video, moving):
            continue
        video.metadata["name"] = f"{trajectory} {index} (seed {seed})"
        truth = render(video).rgb
        return Animation(trajectory, index, int(seed), video, truth, moving, keyframes, params)
    return None


# --------------------------------------------------------------------------------------
# Running and scoring
# --------------------------------------------------------------------------------------

@dataclass
class AnimationConfig:
    """What to run.

    Attributes:
        seeds: generator seeds of the source videos (case ``i`` uses ``seeds[i]``).
        cases: cases per trajectory (at most ``len(seeds)``; seeds whose draw fails are skipped).
        trajectories: names from :data:`TRAJECTORIES`.
        num_frames: frames per animation.
        generator_overrides: :class:`~neuralassets.data.synthetic.GeneratorConfig` fields to change.
        seed: base seed of the model's sampling noise.
        split: the split the seeds came from, for the report.
    """

    seeds: Sequence[int]
    cases: int = 30
    trajectories: Sequence[str] = tuple(TRAJECTORIES)
    num_frames: int = NUM_FRAMES
    generator_overrides: dict = field(default_factory=dict)
    seed: int = 0
    split: str = "test"

    def validate(self) -> AnimationConfig:
        """Raise :class:`ValidationError` naming the first bad field; returns self."""
        unknown = [t for t in self.trajectories if t not in TRAJECTORIES]
        if unknown or not self.trajectories:
            raise ValidationError(f"trajectories: {unknown or 'empty'}; expected names among {', '.join(TRAJECTORIES)}")
        if not list(self.seeds):
            raise ValidationError("seeds: the seed range is empty")
        if self.cases < 1:
            raise ValidationError(f"cases: expected >= 1, got {self.cases}")
        if self.num_frames < 2:
            raise ValidationError(f"num_frames: an animation needs at least 2 frames, got {self.num_frames}")
        return self

    def to_json(self) -> dict:
        """The settings as JSON (a contiguous seed range becomes ``"A:B"``)."""
        out = asdict(self)
        seeds = [int(s) for s in self.seeds][: self.cases]
        out["seeds"] = f"{seeds[0]}:{seeds[-1] + 1}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else seeds
        out["trajectories"] = list(self.trajectories)
        return out


@dataclass
class Filmstrip:
    """A few frames of one case for the report.

    Attributes:
        trajectory, index, seed: which case.
        frames: the frame indices shown.
        truth: (F, 3, H, W) float in [0, 1].
        regions: (F, H, W) bool, each frame's in-box region.
        predictions: method name -> (F, 3, H, W) float in [0, 1].
    """

    trajectory: str
    index: int
    seed: int
    frames: list[int]
    truth: Tensor
    regions: Tensor
    predictions: dict[str, Tensor] = field(default_factory=dict)


def _stats(values) -> dict[str, float]:
    mean, half, n = mean_ci(values)
    return {"mean": mean, "ci95": half, "n": n}


@dataclass
class AnimationResult:
    """Everything a report needs.

    Attributes:
        config: the run's settings (JSON-serialisable).
        methods: method names in column order.
        trajectories: trajectory names in row order.
        rows: one dict per (case, frame, method): trajectory, index, seed, frame, method, each
            of :data:`FRAME_METRICS` (NaN where undefined) and ``ms_per_frame``.
        filmstrips: trajectory -> frames of its first case.
        video_method, single_method: names of the model's video and single-edit methods (None without a model).
        skipped: trajectory -> seeds where no draw worked.
    """

    config: dict
    methods: list[str]
    trajectories: list[str]
    rows: list[dict] = field(default_factory=list)
    filmstrips: dict[str, Filmstrip] = field(default_factory=dict)
    video_method: str | None = None
    single_method: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """Frames T of every animation of the run."""
        return int(self.config["num_frames"])

    def _values(self, trajectory: str, method: str, key: str) -> dict[int, list[float]]:
        """case index -> per-frame values (frame order) of one metric."""
        out: dict[int, list[float]] = {}
        for row in sorted((r for r in self.rows if r["trajectory"] == trajectory and r["method"] == method),
                          key=lambda r: (r["index"], r["frame"])):
            out.setdefault(row["index"], []).append(row[key])
        return out

    def per_frame(self, trajectory: str, method: str, key: str) -> list[dict[str, float]]:
        """Per frame index, ``{"mean", "ci95", "n"}`` of metric ``key`` over the trajectory's cases."""
        values = self._values(trajectory, method, key)
        return [_stats(v[t] for v in values.values()) for t in range(self.num_frames)]

    def summary(self) -> dict:
        """trajectory -> method -> figure -> ``{"mean", "ci95", "n"}`` over cases.

        Figures: ``first`` and ``last`` (in-box PSNR at frames 0 and T-1), ``drift`` (their
        per-case difference, last minus first), ``psnr_box`` (in-box PSNR averaged over the
        edited frames 1..T-1 of each case; frame 0 is the unedited source), ``psnr``, ``ssim``,
        ``ssim_box``, ``identity`` (the same per-case averages) and ``ms_per_frame``. With a
        model and its single edits, ``trajectory -> "video_minus_single"`` holds the per-case
        difference of ``psnr_box`` between the video and the single edits.
        """
        out: dict = {}
        for trajectory in self.trajectories:
            out[trajectory] = {}
            for method in self.methods:
                box = self._values(trajectory, method, "psnr_box")
                figures = {"first": _stats(v[0] for v in box.values()), "last": _stats(v[-1] for v in box.values()),
                           "drift": _stats(v[-1] - v[0] for v in box.values())}
                for key in SUMMARY_AVERAGES:
                    figures[key] = _stats(_nanmean(v[1:]) for v in self._values(trajectory, method, key).values())
                out[trajectory][method] = figures
            if self.video_method is not None and self.single_method is not None:
                video = self._values(trajectory, self.video_method, "psnr_box")
                single = self._values(trajectory, self.single_method, "psnr_box")
                out[trajectory]["video_minus_single"] = _stats(_nanmean(video[i][1:]) - _nanmean(single[i][1:]) for i in video)
        return out


def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else float("nan")


def run_animation_benchmark(config: AnimationConfig, pipeline=None, model_name: str = "model",
                            baselines: Sequence[Method] = (), single_edits: bool = True,
                            num_inference_steps: int | None = None, guidance_scale: float | None = None,
                            batch_size: int = 8, progress: Callable[[str], None] | None = None,
                            keep_unchanged: bool = True) -> AnimationResult:
    """Animate held-out scenes, render them with the model and the baselines, and score every frame.

    Args:
        config: seeds, trajectories and sizes.
        pipeline: a :class:`~neuralassets.pipelines.NeuralAssetsPipeline`, or None for the baselines alone.
        model_name: the model's name in reports; its methods are ``"{model_name} video"`` and
            ``"{model_name} single edits"``.
        baselines: frame-by-frame methods (e.g. :class:`~neuralassets.benchmark.baselines.CopyPasteMethod`).
        single_edits: also render every frame as a single edit with its own noise (doubles the model's time).
        num_inference_steps, guidance_scale: sampling settings (None: the model's own).
        batch_size: frames per denoising batch.
        progress: called with a line of text after each case.
        keep_unchanged: the pipeline's default output, which keeps the source photo's pixels
            where a frame's render leaves the scene unchanged; False scores the render alone.
            (With it, frame 0, the source pose, is close to the photo itself, so drift
            measured from frame 0 grows by what frame 0 gains.)

    Returns:
        An :class:`AnimationResult`.
    """
    from ..data.synthetic import generate_scene

    config.validate()
    generator = generator_config(config.generator_overrides)
    video_name = single_name = None
    if pipeline is not None:
        video_name, single_name = f"{model_name} video", f"{model_name} single edits"
    single = PipelineMethod(pipeline, single_name, num_inference_steps, guidance_scale, config.seed,
                            keep_unchanged=keep_unchanged) if pipeline is not None and single_edits else None
    names = [n for n in (video_name, single.name if single else None) if n] + [m.name for m in baselines]
    if len(set(names)) != len(names):
        raise ValidationError(f"methods: names must differ, got {names}")
    result = AnimationResult(config.to_json(), names, list(config.trajectories), video_method=video_name,
                             single_method=single.name if single else None, skipped=dict.fromkeys(config.trajectories, 0))
    T = config.num_frames
    shown = np.linspace(0, T - 1, min(FILMSTRIP_FRAMES, T)).round().astype(int).tolist()
    elapsed = dict.fromkeys(names, 0.0)
    frames_done = 0
    truth_digest = hashlib.sha256()  # two reports are comparable only if their ground truth matches
    start = time.perf_counter()
    seeds = [int(s) for s in config.seeds][: config.cases]
    for i, seed in enumerate(seeds):
        still = generate_scene(seed, generator, frames=[0])
        for trajectory in config.trajectories:
            animation = make_animation(trajectory, i, seed, still, T)
            if animation is None:
                result.skipped[trajectory] += 1
                continue
            truth_digest.update(to_uint8(animation.truth).numpy().tobytes())
            cases = animation.frame_cases()
            predictions: dict[str, Tensor] = {}
            seconds: dict[str, float] = {}
            if pipeline is not None:
                t0 = time.perf_counter()
                predictions[video_name] = pipeline.render_video(
                    animation.video, seed=config.seed + i * T, source_frame=0, num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale, batch_size=batch_size, progress=False, keep_unchanged=keep_unchanged)
                seconds[video_name] = time.perf_counter() - t0
            for method in ([single] if single else []) + list(baselines):
                t0 = time.perf_counter()
                predictions[method.name] = torch.cat([method.predict(cases[k:k + batch_size]) for k in range(0, T, batch_size)])
                seconds[method.name] = time.perf_counter() - t0
            for name, images in predictions.items():
                elapsed[name] += seconds[name]
                for case, values in zip(cases, score(cases, images)):
                    values.pop("lpips")
                    result.rows.append({"trajectory": trajectory, "index": i, "seed": seed, "frame": case.params["frame"],
                                        "method": name, **values, "ms_per_frame": 1000 * seconds[name] / T})
            if trajectory not in result.filmstrips:
                result.filmstrips[trajectory] = Filmstrip(trajectory, i, seed, shown, animation.truth[shown],
                                                          torch.stack([cases[t].region for t in shown]),
                                                          {n: p[shown] for n, p in predictions.items()})
            frames_done += T
        if progress is not None:
            timing = ", ".join(f"{n} {1000 * elapsed[n] / max(1, frames_done):.0f} ms" for n in names)
            progress(f"{i + 1}/{len(seeds)} seeds, {time.perf_counter() - start:.0f} s ({timing} per frame)")
    result.config["seconds"] = round(time.perf_counter() - start, 1)
    result.config["truth_sha256"] = truth_digest.hexdigest()
    return result


__all__ = ["FRAME_METRICS", "NUM_FRAMES", "SUMMARY_AVERAGES", "TRAJECTORIES", "Animation", "AnimationConfig",
           "AnimationResult", "Filmstrip", "Trajectory", "make_animation", "run_animation_benchmark"]

"""Run methods on benchmark cases and score them.

:func:`run_benchmark` walks the cases seed by seed (so each generated video is rendered
once for all tasks), gives every method the same inputs for each case (the exact scene, or
extracted or perturbed ones: :mod:`~neuralassets.benchmark.inputs`), times it, and scores its
images against the exact ground truth with :mod:`neuralassets.metrics`. It returns a
:class:`BenchmarkResult` holding one row of numbers per (case, method), the per-task
summaries with 95% confidence intervals, and a few example images per task for the report.
A case whose edit could not be applied to its inputs (``Case.failed``) is scored with the
source frame for every method and counted. :func:`run_sweep` does the same for several
inputs at once (a robustness sweep), rendering each case's ground truth once.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from .. import geometry
from ..data.edit_cases import TASKS, Case, TaskConfig, iter_cases
from ..data.synthetic import generator_config
from ..errors import ValidationError
from ..image_ops import to_uint8
from ..metrics import LPIPS, appearance_similarity, mean_ci, psnr, region_mean, ssim_map, untouched_kept
from ..pipelines.reprojection import same_camera
from .baselines import Method
from .inputs import ExactInputs, Inputs

#: Reported metrics: key -> (column title, higher is better).
METRICS: dict[str, tuple[str, bool]] = {
    "psnr": ("PSNR (dB)", True),
    "ssim": ("SSIM", True),
    "psnr_box": ("PSNR in box (dB)", True),
    "ssim_box": ("SSIM in box", True),
    "lpips": ("LPIPS", False),
    "identity": ("identity sim.", True),
    "untouched_kept": ("untouched kept %", True),
    "ms_per_edit": ("ms / edit", False),
}


@dataclass
class Example:
    """Images of one case for the report's example grids.

    Attributes:
        task, index, seed: which case.
        source: (3, H, W) float in [0, 1].
        target: (3, H, W) float in [0, 1], the ground truth.
        region: (H, W) bool.
        predictions: method name -> (3, H, W) float in [0, 1].
    """

    task: str
    index: int
    seed: int
    source: Tensor
    target: Tensor
    region: Tensor
    predictions: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class BenchmarkResult:
    """Everything a report needs.

    Attributes:
        config: the run's settings (JSON-serialisable).
        methods: method names in column order.
        tasks: task names in row order.
        rows: one dict per (case, method): task, index, seed, method and each metric (NaN where undefined).
        examples: a few cases per task with every method's image.
        lpips_available: whether LPIPS weights were found (otherwise its column is "n/a").
        identity_available: whether the identity similarity was computed (otherwise its column is "n/a").
        descriptor: what the identity similarity is computed with.
        inputs: what the methods were given (the input mode's description).
    """

    config: dict
    methods: list[str]
    tasks: list[str]
    rows: list[dict] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    lpips_available: bool = False
    identity_available: bool = True
    descriptor: str = "classical (colour histogram + HOG)"
    inputs: str = "exact: the generator's depth, masks, 2D and 3D boxes and cameras"

    def summary(self) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """task -> method -> metric -> {"mean", "ci95", "n", "worst"} over the task's cases (NaN where undefined)."""
        out: dict = {}
        for task in self.tasks:
            out[task] = {}
            for method in self.methods:
                rows = [r for r in self.rows if r["task"] == task and r["method"] == method]
                out[task][method] = {}
                for key, (_, higher) in METRICS.items():
                    values = [r.get(key, math.nan) for r in rows]  # rows of older reports lack newer metrics
                    mean, half, n = mean_ci(values)
                    defined = [v for v in values if not math.isnan(v)]
                    worst = (min if higher else max)(defined) if defined else math.nan
                    out[task][method][key] = {"mean": mean, "ci95": half, "n": n, "worst": worst}
        return out

    def failures(self) -> dict[str, tuple[int, int]]:
        """task -> (cases whose edit could not be applied to the inputs, cases)."""
        first = self.methods[0] if self.methods else None
        out = {}
        for task in self.tasks:
            rows = [r for r in self.rows if r["task"] == task and r["method"] == first]
            out[task] = (sum(int(r.get("failed", 0)) for r in rows), len(rows))
        return out

    def margin(self, method: str, baseline: str, key: str = "psnr_box", applied_only: bool = False
               ) -> dict[str, dict[str, float]]:
        """task -> {"mean", "ci95", "n"} of ``method`` minus ``baseline`` per case (paired), for one metric.

        ``applied_only`` leaves out the cases whose edit could not be applied to the inputs (where
        every method shows the source frame, so the margin is 0).
        """
        out = {}
        for task in self.tasks:
            rows = [r for r in self.rows if r["task"] == task and not (applied_only and r.get("failed"))]
            theirs = {r["index"]: r[key] for r in rows if r["method"] == baseline}
            mean, half, n = mean_ci(r[key] - theirs[r["index"]] for r in rows if r["method"] == method and r["index"] in theirs)
            out[task] = {"mean": mean, "ci95": half, "n": n}
        return out


@dataclass
class BenchmarkConfig:
    """What to run.

    Attributes:
        seeds: generator seeds of the source videos (case ``i`` uses ``seeds[i]``).
        cases_per_task: cases per task (at most ``len(seeds)``).
        tasks: task names, a subset of :data:`~neuralassets.data.edit_cases.TASKS`.
        generator_overrides: generator config fields to change (hidden-case variants).
        examples_per_task: cases per task kept as images for the example grids.
        seeds_per_batch: seeds whose cases go to a method in one call (batching for models).
        split: the split the seeds came from, for the report.
        dataset: for cases made from a public dataset's clips (``"movi-e"``, ``"objectron"``), its
            name; ``seeds`` are then clip indices. None for the generator's scenes.
    """

    seeds: Sequence[int]
    cases_per_task: int = 200
    tasks: Sequence[str] = TASKS
    generator_overrides: dict = field(default_factory=dict)
    examples_per_task: int = 3
    seeds_per_batch: int = 4
    split: str = "test"
    dataset: str | None = None

    def to_json(self) -> dict:
        out = asdict(self)
        seeds = [int(s) for s in self.seeds][: self.cases_per_task]
        out["seeds"] = f"{seeds[0]}:{seeds[-1] + 1}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else seeds
        out["tasks"] = list(self.tasks)
        return out


def target_boxes(case: Case) -> Tensor:
    """(N, 4) float pixel boxes of the case's edited assets that are present in the target frame (of its exact truth)."""
    case = case.truth
    boxes = []
    for asset_id in case.edited_ids:
        if asset_id not in case.scene.asset_ids:
            continue  # removed
        a, cam = case.scene.asset(asset_id), case.scene.cameras[1]
        uv, depth = geometry.project_box(a.centers[1], a.sizes[1], a.rotations[1], cam.K, cam.R, cam.t)
        box = geometry.bounding_box_2d(uv, case.scene.width, case.scene.height)
        if bool((depth > 0).all()) and box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
            boxes.append(box)
    return torch.stack(boxes) if boxes else torch.zeros(0, 4)


def score(cases: Sequence[Case], predictions: Tensor, lpips: LPIPS | None = None,
          describe: Callable[[Tensor, Tensor], Tensor] | None = None, identity: bool = True) -> list[dict[str, float]]:
    """Metrics of predictions against the cases' ground truth.

    Args:
        cases: B cases.
        predictions: (B, 3, H, W) float in [0, 1].
        lpips: an LPIPS module, or None (the ``lpips`` value is then NaN).
        describe: descriptor for :func:`~neuralassets.metrics.appearance_similarity` (None = classical).
        identity: whether to compute the identity similarity (NaN when not).

    Returns:
        B dicts with ``psnr``, ``ssim``, ``psnr_box``, ``ssim_box``, ``lpips``, ``identity``
        (mean similarity over the edited objects present in the target; NaN for removal) and
        ``untouched_kept`` (:func:`~neuralassets.metrics.untouched_kept` against the source
        frame; NaN where the camera moved, which touches every pixel).
    """
    if predictions.shape[0] != len(cases):
        raise ValidationError(f"predictions: expected {len(cases)} images, got {predictions.shape[0]}")
    targets = torch.stack([c.target for c in cases])
    regions = torch.stack([c.region for c in cases])
    preds = predictions.float().clamp(0, 1)
    similarity = ssim_map(preds, targets)
    values = {
        "psnr": psnr(preds, targets), "ssim": region_mean(similarity),
        "psnr_box": psnr(preds, targets, regions), "ssim_box": region_mean(similarity, regions),
        "lpips": lpips(preds, targets) if lpips is not None else torch.full((len(cases),), float("nan")),
    }
    still = torch.tensor([same_camera(*c.truth.scene.cameras[:2]) for c in cases])
    kept = untouched_kept(preds, torch.stack([c.source for c in cases]).float(), targets)
    values["untouched_kept"] = torch.where(still, kept, torch.full_like(kept, float("nan")))
    identities = []
    for i, case in enumerate(cases):
        boxes = target_boxes(case) if identity else torch.zeros(0, 4)
        if len(boxes) == 0:
            identities.append(float("nan"))
            continue
        n = len(boxes)
        sims = appearance_similarity(preds[i:i + 1].expand(n, -1, -1, -1), targets[i:i + 1].expand(n, -1, -1, -1),
                                     boxes, describe)
        identities.append(float(sims.mean()))
    return [{**{k: float(v[i]) for k, v in values.items()}, "identity": identities[i]} for i in range(len(cases))]


def check_object_slots(methods: Sequence[Method], config: BenchmarkConfig) -> None:
    """Refuse, before any case runs, a model with fewer object slots than a case can have objects.

    Scenes have up to the generator's ``max_objects`` objects, and insertion adds one.

    Raises:
        ValidationError: naming the model, its slots, the most objects a case can have and the fix;
            or an override that names no generator field.
        ConfigError: an override value out of range.
    """
    most = generator_config(config.generator_overrides).max_objects
    inserting = "insertion" in config.tasks
    for method in methods:
        pipeline = getattr(method, "pipeline", None)
        if pipeline is not None and pipeline.config.max_objects < most + inserting:
            fix = f"max_objects={pipeline.config.max_objects - inserting}"
            raise ValidationError(
                f"model {method.name!r} has {pipeline.config.max_objects} object slots but a case can have "
                f"{most + inserting} objects (generator max_objects {most}" + (" plus the inserted one" if inserting else "")
                + f"); limit the scenes with generator override {fix} (`--gen {fix}`)")


def run_benchmark(methods: Sequence[Method], config: BenchmarkConfig, lpips: LPIPS | None = None,
                  describe: Callable[[Tensor, Tensor], Tensor] | None = None, descriptor: str | None = None,
                  progress: Callable[[str], None] | None = None, inputs: Inputs | None = None,
                  cases: Iterable[list[Case]] | None = None, identity: bool = True) -> BenchmarkResult:
    """Run every method on every case and score it.

    Args:
        methods: the methods (their ``name`` s must differ).
        config: seeds, tasks and sizes.
        lpips: LPIPS module when its weights are available.
        describe: identity descriptor (None = the classical one); ``descriptor`` names it in the report.
        progress: called with a line of text after each batch of seeds.
        inputs: what the methods are given (:mod:`~neuralassets.benchmark.inputs`; default the exact scenes).
        cases: the cases, one list per video (e.g. a public dataset's clips,
            :func:`~neuralassets.data.datasets.novel_pose_case`), fitted to the models' object
            slots; default: made from ``config.seeds`` by the generator.
        identity: whether to compute the identity similarity ("n/a" in the report when not).

    Returns:
        A :class:`BenchmarkResult`.
    """
    return run_sweep(methods, config, [inputs or ExactInputs()], lpips, describe, descriptor, progress, cases, identity)[0]


def run_sweep(methods: Sequence[Method], config: BenchmarkConfig, inputs: Sequence[Inputs], lpips: LPIPS | None = None,
              describe: Callable[[Tensor, Tensor], Tensor] | None = None, descriptor: str | None = None,
              progress: Callable[[str], None] | None = None, cases: Iterable[list[Case]] | None = None,
              identity: bool = True) -> list[BenchmarkResult]:
    """:func:`run_benchmark` for several inputs of the same cases (each case's ground truth rendered once).

    Returns:
        One :class:`BenchmarkResult` per entry of ``inputs``, in order.
    """
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValidationError(f"methods: names must differ, got {names}")
    if cases is None:
        check_object_slots(methods, config)
        cases = iter_cases(TaskConfig(config.seeds, config.generator_overrides), config.tasks, config.cases_per_task)
    results = []
    for mode in inputs:
        result = BenchmarkResult(config.to_json(), names, list(config.tasks), lpips_available=lpips is not None,
                                 identity_available=identity, inputs=mode.describe())
        if descriptor is not None:
            result.descriptor = descriptor
        results.append(result)
    elapsed = dict.fromkeys(names, 0.0)
    preparing = 0.0
    start, done = time.perf_counter(), 0
    batch: list[Case] = []
    seeds_in_batch = 0
    total = min(config.cases_per_task, len(config.seeds))

    def flush() -> None:
        nonlocal preparing
        for mode, result in zip(inputs, results):
            for task in config.tasks:
                t0 = time.perf_counter()
                cases = [mode.prepare(c) for c in batch if c.task == task]
                preparing += time.perf_counter() - t0
                if not cases:
                    continue
                runnable = [c for c in cases if c.failed is None]
                examples = [Example(c.task, c.index, c.seed, c.source, c.target, c.region) for c in cases
                            if c.index < config.examples_per_task]
                for method in methods:
                    todo = runnable if method.uses_inputs else cases
                    t0 = time.perf_counter()
                    preds = dict(zip((c.index for c in todo), method.predict(todo))) if todo else {}
                    seconds = time.perf_counter() - t0
                    elapsed[method.name] += seconds
                    images = torch.stack([preds.get(c.index, c.source) for c in cases])
                    for case, values in zip(cases, score(cases, images, lpips, describe, identity)):
                        result.rows.append({"task": task, "index": case.index, "seed": case.seed, "method": method.name,
                                            **values, "ms_per_edit": 1000 * seconds / max(1, len(todo)),
                                            "failed": int(case.failed is not None)})
                    for example in examples:
                        example.predictions[method.name] = images[[c.index for c in cases].index(example.index)]
                result.examples.extend(examples)
        batch.clear()

    # A digest of every ground-truth image: two reports are comparable only if it matches
    # (a change to the generator or the renderer changes it).
    truth_digest = hashlib.sha256()
    for video_cases in cases:
        for case in video_cases:
            truth_digest.update(to_uint8(case.target).numpy().tobytes())
        batch.extend(video_cases)
        seeds_in_batch += 1
        done += 1
        if seeds_in_batch >= config.seeds_per_batch or done == total:
            flush()
            seeds_in_batch = 0
            if progress is not None:
                edits_done = max(1, done * len(config.tasks) * len(inputs))
                timing = ", ".join(f"{n} {1000 * elapsed[n] / edits_done:.0f} ms" for n in names)
                unit = "clips" if config.dataset else "seeds"
                progress(f"{done}/{total} {unit}, {time.perf_counter() - start:.0f} s ({timing} per edit; "
                         f"inputs {1000 * preparing / edits_done:.0f} ms per case)")
    for result in results:
        result.config["seconds"] = round(time.perf_counter() - start, 1)
        result.config["inputs_seconds"] = round(preparing, 1)
        result.config["truth_sha256"] = truth_digest.hexdigest()
    return results

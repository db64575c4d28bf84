"""``neuralassets bench``: the pose-edit benchmark (the same as ``python benchmarks/pose_edit.py``).

``--dataset movi-e|objectron PATH`` scores the same methods on a public dataset's held-out clips
instead (novel pose: another frame of the same clip as the target; files ``pose_edit-<dataset>*``).

``--inputs`` picks what every method is given (:mod:`neuralassets.benchmark.inputs`): the
generator's exact scenes (``exact``, files ``pose_edit*``), the scenes extraction makes of the
same photos (``extracted``, files ``pose_edit-extracted*``), or exact scenes with noise
(``perturbed``: ``--perturb KIND=LEVEL`` for one run, files ``pose_edit-perturbed*``, or
``--sweep`` for in-box PSNR against every level of each kind, files ``pose_edit-robustness*``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from .extract import add_perception_arguments

QUICK_CASES = 3  # cases per task in --quick mode
FULL_CASES = 200  # cases per task in full mode
DEFAULT_OUT = Path("benchmarks") / "results"
INPUTS = ("exact", "extracted", "perturbed")
#: Options of ``neuralassets extract`` that load models; they only make sense with ``--inputs extracted``.
_MODEL_OPTIONS = ("sam_checkpoint", "sam_model", "prompt", "detector", "sam2_video", "depth_model")


def add_case_arguments(p: argparse.ArgumentParser, unit: str, quick_cases: int, full_cases: int) -> None:
    """--quick, --cases, --split, --seeds and --gen: which held-out cases a benchmark runs (``unit``: "task", ...)."""
    p.add_argument("--quick", action="store_true",
                   help=f"smoke test: {quick_cases} cases per {unit}, files named *-quick* (git-ignored)")
    p.add_argument("--cases", type=int, default=None, metavar="N",
                   help=f"cases per {unit} (default {full_cases}, or {quick_cases} with --quick)")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="seed range the cases come from: test (reporting) or val (model iteration)")
    p.add_argument("--seeds", default=None, metavar="A:B",
                   help="use generator seeds A..B-1 instead of the split's first seeds (hidden cases)")
    p.add_argument("--gen", action="append", default=[], metavar="KEY=VALUE",
                   help="generator config override, e.g. --gen min_objects=6 --gen max_objects=8 (JSON values)")


def case_selection(args: argparse.Namespace, quick_cases: int, full_cases: int) -> tuple[int, range]:
    """(cases per unit, seeds) from the options of :func:`add_case_arguments`.

    Raises:
        ValidationError: --cases below 1 or a bad --seeds.
    """
    from ..data.synthetic import SPLITS
    from ..errors import ValidationError

    if args.cases is not None and args.cases < 1:
        raise ValidationError(f"--cases: expected >= 1, got {args.cases}")
    cases = args.cases or (quick_cases if args.quick else full_cases)
    return cases, (_parse_seeds(args.seeds) if args.seeds else SPLITS[args.split][: cases])


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options, shared by the subcommand and the script."""
    add_case_arguments(p, "task", QUICK_CASES, FULL_CASES)
    p.add_argument("--tasks", default=None, metavar="T1,T2", help="comma-separated subset of the tasks")
    p.add_argument("--model", action="append", default=[], metavar="PATH",
                   help="a neural assets pipeline folder or hub id to evaluate (repeatable)")
    p.add_argument("--vae-ceiling", default=None, metavar="PATH",
                   help="pipeline whose autoencoder gives the VAE ceiling (default: the first --model)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps for --model (default: each model's own)")
    p.add_argument("--raw", action="store_true",
                   help="also score each --model's render alone, without keeping the source's unchanged pixels "
                        "(reported as NAME-raw)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale for --model (default: each model's own)")
    p.add_argument("--threshold", action="append", default=[], metavar="KEY=VALUE",
                   help="a RenderThresholds field for every --model (repeatable), e.g. --threshold unmoved_share=1.01 "
                        "switches the turned-in-place rule off; the model is then reported as NAME[KEY=VALUE,...]")
    p.add_argument("--lpips-weights", default=None, metavar="DIR",
                   help="folder with LPIPS weights (alexnet-owt-7be5be79.pth and alex.pth); without them LPIPS is n/a")
    p.add_argument("--dino", default=None, metavar="DIR",
                   help="a DINO ViT (e.g. ViT-B/8) or DINOv2 transformers folder: the identity similarity is then the cosine "
                        "similarity of its features RoIAligned in each object's target box; without it the synthetic "
                        "benchmark uses the first model's backbone (or a classical descriptor) and --dataset reports n/a")
    p.add_argument("--dataset", nargs=2, default=None, metavar=("DATASET", "PATH"),
                   help="score novel-pose cases of a public dataset's held-out clips instead of synthetic scenes: movi-e "
                        "(a folder of its TFDS TFRecord files; --split picks the files, val: validation) or objectron "
                        "(a folder with annotations/ and videos/, or one clip's folder); one case per clip, the source "
                        "frame posed as another frame of the same clip, whose boxes and camera are given")
    p.add_argument("--image-size", type=int, default=None, metavar="PIXELS",
                   help="with --dataset: side of the square the clips are cut and resized to (default: the first "
                        "model's size, else 128)")
    p.add_argument("--examples", type=int, default=3, metavar="N", help="example cases per task in the image grids")
    p.add_argument("--out", default=str(DEFAULT_OUT), metavar="DIR", help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--name", default=None,
                   help="file name stem (default pose_edit, pose_edit-extracted, pose_edit-perturbed or pose_edit-robustness "
                        "for the inputs, -val appended for --split val; -quick is appended with --quick)")
    g = p.add_argument_group("inputs", "what every method is given (see neuralassets/benchmark/inputs.py)")
    g.add_argument("--inputs", choices=INPUTS, default="exact",
                   help="exact: the generator's depth, masks, boxes and cameras; extracted: what `neuralassets extract` "
                        "finds in the same photos (objects matched by mask IoU, unmatched edited objects count as failed); "
                        "perturbed: exact inputs with --perturb noise or a --sweep")
    g.add_argument("--perturb", action="append", default=[], metavar="KIND=LEVEL",
                   help="with --inputs perturbed: noise to apply (repeatable); KIND one of "
                        "depth_scale, depth_blur, depth_noise, mask, box_center, box_size, box_yaw")
    g.add_argument("--sweep", nargs="?", const="all", default=None, metavar="KINDS",
                   help="with --inputs perturbed: run every level of each kind (comma-separated, default all) and "
                        "plot in-box PSNR against the level")
    g.add_argument("--known-camera", action="store_true",
                   help="with --inputs extracted: give extraction the generator's cameras, not only their intrinsics")
    g.add_argument("--match-iou", type=float, default=None, metavar="IOU",
                   help="with --inputs extracted: mask IoU an extracted object needs to count as a ground-truth object "
                        "(default 0.5)")
    add_perception_arguments(g)


def input_modes(args: argparse.Namespace) -> tuple[str, list]:
    """(file name base, input modes) from the options: one mode, or one per level of a ``--sweep``.

    Raises:
        ValidationError: an option that does not go with ``--inputs``, or a bad perturbation.
    """
    from ..benchmark.inputs import MIN_MATCH_IOU, ExactInputs, ExtractedInputs, PerturbedInputs
    from ..data.perturbations import PERTURBATIONS, parse_perturbation
    from ..errors import ValidationError

    if args.inputs != "perturbed" and (args.perturb or args.sweep):
        raise ValidationError("--perturb and --sweep go with --inputs perturbed")
    extraction_options = [f"--{o.replace('_', '-')}" for o in _MODEL_OPTIONS if getattr(args, o)]
    if args.known_camera or args.match_iou is not None:
        extraction_options.append("--known-camera" if args.known_camera else "--match-iou")
    if args.inputs != "extracted" and extraction_options:
        raise ValidationError(f"{', '.join(extraction_options)}: extraction options go with --inputs extracted")
    if args.inputs == "exact":
        return "pose_edit", [ExactInputs()]
    if args.inputs == "extracted":
        from .extract import extraction_config, perception_pieces

        iou = MIN_MATCH_IOU if args.match_iou is None else args.match_iou
        if not 0 < iou <= 1:
            raise ValidationError(f"--match-iou: expected a value in (0, 1], got {iou}")
        mode = ExtractedInputs(**perception_pieces(args), config=extraction_config(args),
                               known_camera=args.known_camera, min_iou=iou)
        return "pose_edit-extracted", [mode]
    if args.sweep is not None:
        if args.perturb:
            raise ValidationError("--sweep runs each kind of noise alone; leave out --perturb")
        kinds = list(PERTURBATIONS) if args.sweep == "all" else [k.strip() for k in args.sweep.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in PERTURBATIONS]
        if unknown or not kinds:
            raise ValidationError(f"--sweep: {unknown or 'no kinds'}; expected kinds among {', '.join(PERTURBATIONS)}")
        return "pose_edit-robustness", [PerturbedInputs({k: v}) for k in kinds for v in PERTURBATIONS[k].levels]
    if not args.perturb:
        raise ValidationError("--inputs perturbed: give the noise with --perturb KIND=LEVEL, or --sweep")
    return "pose_edit-perturbed", [PerturbedInputs(dict(parse_perturbation(p) for p in args.perturb))]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run the pose-edit benchmark (baselines and models) and write its report",
                       description="Score edits (novel pose, move, rotate, scale, remove, insert, transfer, swap, "
                                   "background, camera, multi-object) against exact re-renders of held-out "
                                   "synthetic scenes; writes markdown, JSON, bar charts and example grids.")
    add_arguments(p)
    p.set_defaults(run=run)


def _parse_seeds(text: str) -> range:
    from ..errors import ValidationError

    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError:
        raise ValidationError(f"--seeds: expected A:B with integers A < B, got {text!r}") from None
    if not 0 <= a < b:
        raise ValidationError(f"--seeds: expected 0 <= A < B, got {text!r}")
    return range(a, b)


def parse_generator_overrides(items: list[str]) -> dict:
    """``--gen KEY=VALUE`` items -> {field: value} (see :func:`parse_overrides`)."""
    return parse_overrides(items, "--gen")


def parse_overrides(items: list[str], option: str) -> dict:
    """``KEY=VALUE`` items of ``option`` -> {field: value} (JSON values; JSON lists become tuples; bare words stay text)."""
    from ..errors import ValidationError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationError(f"{option}: expected KEY=VALUE, got {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value  # a bare word, e.g. --gen shapes is not JSON; keep it as text
        out[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def threshold_overrides(items: list[str]) -> dict:
    """``--threshold KEY=VALUE`` items -> {``RenderThresholds`` field: number, or None where the field takes it}, checked.

    Raises:
        ConfigError: a key that is no field (the fields are listed) or a value that is not a number.
        ValidationError: values that contradict each other (``RenderThresholds``'s own check).
    """
    from ..config import from_dict
    from ..errors import ConfigError, ValidationError
    from ..pipelines.thresholds import RenderThresholds

    overrides = parse_overrides(items, "--threshold")
    optional = {f.name for f in dataclasses.fields(RenderThresholds) if "None" in str(f.type)}
    for key, value in overrides.items():
        if value is None and key in optional:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"--threshold {key}: expected a number{' or null' if key in optional else ''}, got {value!r}")
    try:
        from_dict(RenderThresholds, overrides, "--threshold")  # names unknown keys; RenderThresholds checks the values
    except ConfigError:
        raise
    except ValueError as e:
        raise ValidationError(f"--threshold: {e}") from None
    return overrides


def build_methods(args: argparse.Namespace, geometric: bool = True) -> tuple[list, list]:
    """(every method, the models among them) the options ask for: the baselines, the VAE ceiling and each ``--model``."""
    from dataclasses import replace

    from ..benchmark.baselines import CopyPasteMethod, GeometricMethod, IdentityMethod, PipelineMethod, VAECeilingMethod

    thresholds = threshold_overrides(args.threshold)
    methods = [IdentityMethod(), CopyPasteMethod(), *([GeometricMethod()] if geometric else [])]
    models = [PipelineMethod.from_pretrained(path, num_inference_steps=args.steps, guidance_scale=args.guidance)
              for path in args.model]
    if thresholds:
        for model in models:
            model.pipeline.thresholds = replace(model.pipeline.thresholds, **thresholds)
            model.name = f"{model.name}[{','.join(args.threshold)}]"
    if args.raw:
        models = [m for model in models for m in (model, PipelineMethod(
            model.pipeline, f"{model.name}-raw", args.steps, args.guidance, keep_unchanged=False))]
    ceiling_source = args.vae_ceiling or (args.model[0] if args.model else None)
    if ceiling_source is not None:
        from ..pipelines import NeuralAssetsPipeline

        pipeline = models[0].pipeline if not args.vae_ceiling else NeuralAssetsPipeline.from_pretrained(args.vae_ceiling)
        methods.append(VAECeilingMethod(pipeline))
    return methods + models, models


def dino_descriptor(path: str):
    """(describe, its name in reports) of a DINO folder's frozen features RoIAligned 2x2 in each box."""
    from ..metrics import backbone_descriptor
    from ..models.backbones import load_frozen_vit

    return backbone_descriptor(load_frozen_vit(path)), f"DINO ({Path(path).name}, RoIAlign 2x2)"


def run(args: argparse.Namespace) -> int:
    import torch

    from ..benchmark.harness import BenchmarkConfig, run_sweep
    from ..benchmark.report import publish, write_report, write_sweep_report
    from ..data.edit_cases import TASKS
    from ..metrics import backbone_descriptor, load_lpips

    if args.dataset is not None:
        return run_on_dataset(args)
    if args.image_size is not None:
        from ..errors import ValidationError

        raise ValidationError("--image-size: goes with --dataset (synthetic cases have the generator's size)")
    torch.manual_seed(0)
    cases, seeds = case_selection(args, QUICK_CASES, FULL_CASES)
    tasks = TASKS if args.tasks is None else tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    config = BenchmarkConfig(seeds=seeds, cases_per_task=cases, tasks=tasks, generator_overrides=parse_generator_overrides(args.gen),
                             examples_per_task=args.examples, split=args.split if not args.seeds else "custom")

    base, modes = input_modes(args)
    methods, models = build_methods(args)
    describe, descriptor = None, None
    if args.dino:
        describe, descriptor = dino_descriptor(args.dino)
    elif models:
        describe = backbone_descriptor(models[0].pipeline.asset_encoder.backbone)
        descriptor = f"{models[0].name} appearance-backbone (RoIAlign 2x2)"
    lpips = load_lpips(args.lpips_weights)

    if models and args.inputs == "extracted":
        # Insertion adds an object to an extracted scene, so a model with N slots takes N - 1 extracted ones.
        modes[0].max_objects = min(m.pipeline.config.max_objects for m in models) - 1
    inputs = modes[0].describe() if len(modes) == 1 else f"{len(modes)} noise levels"
    print(f"pose-edit benchmark: {len(tasks)} tasks x {min(cases, len(seeds))} cases, seeds {seeds.start}:{seeds.stop}, "
          f"methods {', '.join(m.name for m in methods)}; inputs {inputs}; LPIPS {'on' if lpips is not None else 'n/a (no weights)'}")
    results = run_sweep(methods, config, modes, lpips=lpips, describe=describe, descriptor=descriptor, progress=print)
    if args.sweep is not None:
        runs = [(kind, level, result) for mode, result in zip(modes, results) for kind, level in mode.perturbations.items()]
        publish(write_sweep_report, runs, args.out, args.name, base, args.split, args.quick)
    else:
        publish(write_report, results[0], args.out, args.name, base, args.split, args.quick)
    return 0


def run_on_dataset(args: argparse.Namespace) -> int:
    """``bench --dataset DATASET PATH``: novel-pose cases of a public dataset's clips, scored as the synthetic ones."""
    import torch

    from ..benchmark.harness import BenchmarkConfig, run_benchmark
    from ..benchmark.report import publish, write_report
    from ..data.datasets import DATASETS, DatasetClips, novel_pose_case
    from ..errors import ValidationError
    from ..metrics import load_lpips
    from ..models.build import ModelConfig

    name, path = args.dataset
    if name not in DATASETS:
        raise ValidationError(f"--dataset: {name!r} is not one of {', '.join(DATASETS)}")
    synthetic_only = [flag for flag, used in (("--inputs", args.inputs != "exact"), ("--gen", bool(args.gen)),
                                              ("--seeds", args.seeds is not None), ("--sweep", args.sweep is not None),
                                              ("--perturb", bool(args.perturb)))
                      if used]
    if args.tasks is not None and [t.strip() for t in args.tasks.split(",") if t.strip()] != ["novel_pose"]:
        synthetic_only.append("--tasks")
    if synthetic_only:
        raise ValidationError(f"{', '.join(synthetic_only)}: options of the synthetic benchmark; --dataset scores "
                              "novel-pose cases of the dataset's clips with their own inputs")
    torch.manual_seed(0)
    # the geometric baseline reprojects the photo through its depth; Objectron clips have none
    methods, models = build_methods(args, geometric=name == "movi-e")
    slots = min((m.pipeline.config.max_objects for m in models), default=ModelConfig().max_objects)
    size = args.image_size or (models[0].pipeline.config.image_size if models else ModelConfig().image_size)
    split = {"val": "validation"}.get(args.split, args.split) if name == "movi-e" else None
    clips = DatasetClips(name, path, size, split)
    count = min(args.cases or (QUICK_CASES if args.quick else FULL_CASES), len(clips))
    describe, descriptor = dino_descriptor(args.dino) if args.dino else (None, None)
    lpips = load_lpips(args.lpips_weights)
    config = BenchmarkConfig(seeds=range(count), cases_per_task=count, tasks=("novel_pose",), examples_per_task=args.examples,
                             split=split or "clips", dataset=name)

    def cases():
        for index in range(count):
            case = novel_pose_case(clips, index, slots)
            yield [case] if case is not None else []

    print(f"pose-edit benchmark on {name}: {count} of {len(clips)} clips at {size}x{size}, up to {slots} objects each, "
          f"methods {', '.join(m.name for m in methods)}; LPIPS {'on' if lpips is not None else 'n/a (no weights)'}, "
          f"identity {'DINO' if describe else 'n/a (no DINO weights)'}")
    result = run_benchmark(methods, config, lpips=lpips, describe=describe, descriptor=descriptor, progress=print,
                           cases=cases(), identity=describe is not None)
    result.inputs = f"the dataset's own: its 3D boxes and cameras{', depth and masks' if name == 'movi-e' else ''}"
    publish(write_report, result, args.out, args.name, f"pose_edit-{name}", args.split, args.quick)
    return 0

"""``neuralassets data``: synthetic scenes, training-pair shards (synthetic or from MOVi-E / Objectron) and preview sheets.

Rendering a 24-frame scene takes seconds, so ``preview`` and ``scene`` report each scene on
stderr as they go, with the split its seed belongs to.
"""

from __future__ import annotations

import argparse
import sys
import time

_SIZE_HELP = "width and height of the square frames, pixels (default 128, the shipped model's size)"


def register(sub: argparse._SubParsersAction) -> None:
    from ..data.synthetic import SPLITS

    seeds = "any integer >= 0; " + ", ".join(f"{r.start}-{r.stop - 1} are the {name} split" for name, r in SPLITS.items()) \
        + " (test: held out for benchmarks)"
    p = sub.add_parser("data", help="generate synthetic scenes, training pairs and previews",
                       description="Generate synthetic multi-object videos with exact ground truth.")
    s = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    preview = s.add_parser("preview", help="contact sheet of generated scenes with 3D boxes, masks and depth")
    preview.add_argument("--seed", type=int, default=0, help=f"seed of the first scene; {seeds}")
    preview.add_argument("--scenes", type=int, default=1, help="number of scenes (consecutive seeds)")
    preview.add_argument("--frames", type=int, nargs="*", default=None, help="frame indices to show (default: first, middle, last)")
    preview.add_argument("--image-size", type=int, default=128, metavar="PIXELS", help=_SIZE_HELP)
    preview.add_argument("--supersample", action="store_true", help="2x2 rays per pixel")
    preview.add_argument("--scale", type=int, default=2, help="pixel upscaling of the sheet")
    preview.add_argument("--out", required=True, help="PNG file to write")
    preview.set_defaults(run=_preview)

    scene = s.add_parser("scene", help="generate one scene and save it as a Scene folder or a Kubric MOVi folder")
    scene.add_argument("--seed", type=int, required=True, help=f"the scene's seed; {seeds}")
    scene.add_argument("--image-size", type=int, default=128, metavar="PIXELS", help=_SIZE_HELP)
    scene.add_argument("--frames", type=int, default=24, help="frames in the video")
    scene.add_argument("--supersample", action="store_true", help="2x2 rays per pixel")
    scene.add_argument("--format", choices=["scene", "kubric"], default="scene")
    scene.add_argument("--out", required=True, help="output folder")
    scene.set_defaults(run=_scene)

    make = s.add_parser("make", help="render training pairs into resumable safetensors shards",
                        description="Render synthetic training pairs, or draw them from a public dataset's clips "
                                    "(--from movi-e|objectron PATH), into shards the denoiser stage trains on.")
    make.add_argument("--split", choices=["train", "val", "test"], default="train",
                      help="seed range of synthetic pairs; with --from movi-e, the TFDS split (val: validation)")
    make.add_argument("--from", dest="dataset", nargs=2, default=None, metavar=("DATASET", "PATH"),
                      help="draw the pairs from a dataset's clips instead: movi-e (a folder of its TFDS TFRecord files) "
                           "or objectron (a folder with annotations/ and videos/, or one clip's folder)")
    make.add_argument("--n", type=int, required=True, help="number of pairs")
    make.add_argument("--out", required=True, help="output folder (rerun with the same arguments to resume)")
    make.add_argument("--max-objects", type=int, default=10, help="object slots per pair")
    make.add_argument("--image-size", type=int, default=128, metavar="PIXELS", help=_SIZE_HELP)
    make.add_argument("--supersample", action="store_true", help="2x2 rays per pixel")
    make.add_argument("--shard-size", type=int, default=256, help="pairs per shard file")
    make.add_argument("--seed-offset", type=int, default=0, help="first index into the split's seeds")
    make.add_argument("--workers", type=int, default=0, help="worker processes rendering in parallel")
    make.add_argument("--edits", default=None, metavar="TASKS",
                      help="render edit pairs instead of video frame pairs: the target is the source frame after one of "
                           "these comma-separated benchmark edits (translation,rotation,scale,camera,multi_object,"
                           "removal,insertion,transfer,swap,background)")
    make.add_argument("--geometry-noise", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                      help="perturb each pair's input depth, masks and 3D boxes, the target kept exact: GeometryNoise "
                           "fields (neuralassets/data/perturbations.py), e.g. --geometry-noise depth_scale=[0.85,1.15] "
                           "box_yaw=15 probability=0.7 (JSON values)")
    make.set_defaults(run=_make)
    for action in (preview, scene, make):
        action.add_argument("--gen", action="append", default=[], metavar="KEY=VALUE",
                            help="generator config override, e.g. --gen resize_probability=0.3 (JSON values)")


def _config(args: argparse.Namespace, **extra):
    from ..data.synthetic import GeneratorConfig, generator_config
    from .bench import parse_generator_overrides

    fields = {"image_size": args.image_size, "supersample": args.supersample, **extra}
    if not args.gen:  # plain fields need no override parsing, whose module loads every network (seconds)
        return GeneratorConfig(**fields).validate()
    return generator_config({**fields, **parse_generator_overrides(args.gen)})


def seed_split(seed: int) -> str:
    """Which dataset split ``seed`` belongs to, e.g. ``"train split, scene 4"``, or that it is in none."""
    from ..data.synthetic import SPLITS

    for name, seeds in SPLITS.items():
        if seed in seeds:
            return f"{name} split, scene {seed - seeds.start}"
    return "in no split"


def _generate(seed: int, config, what: str):
    """Generate one scene, reporting on stderr before and after (it takes seconds)."""
    from ..data import generate_scene

    print(f"{what}: seed {seed} ({seed_split(seed)}), {config.num_frames} frames of {config.image_size}x{config.image_size}...",
          file=sys.stderr, flush=True)
    start = time.perf_counter()
    scene = generate_scene(seed, config)
    print(f"{what}: {len(scene)} objects rendered in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return scene


def _preview(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..data.preview import contact_sheet

    config = _config(args)
    scenes = [_generate(args.seed + k, config, f"scene {k + 1}/{args.scenes}") for k in range(args.scenes)]
    sheet = contact_sheet(scenes, args.frames, scale=args.scale)
    Image.fromarray(sheet).save(args.out)
    print(f"wrote {args.out}: {len(scenes)} scene(s), {sheet.shape[1]}x{sheet.shape[0]} pixels")
    return 0


def _scene(args: argparse.Namespace) -> int:
    from ..data.kubric import write_kubric

    scene = _generate(args.seed, _config(args, num_frames=args.frames), "scene")
    folder = scene.save(args.out) if args.format == "scene" else write_kubric(scene, args.out)
    print(f"wrote {folder}: {scene.num_frames} frames, {len(scene)} assets ({', '.join(a.name for a in scene.assets)}); "
          f"seed {args.seed}, {seed_split(args.seed)}")
    return 0


def _make(args: argparse.Namespace) -> int:
    if args.dataset is not None:
        return _make_from_dataset(args)
    from ..config import from_dict
    from ..data.pairs import write_shards
    from ..data.perturbations import GeometryNoise
    from .bench import parse_overrides

    tasks = None if args.edits is None else tuple(t.strip() for t in args.edits.split(",") if t.strip())
    noise = None
    if args.geometry_noise:
        noise = from_dict(GeometryNoise, parse_overrides(args.geometry_noise, "--geometry-noise"), "--geometry-noise")
    folder = write_shards(args.out, args.split, args.n, args.max_objects, _config(args), args.shard_size,
                          args.seed_offset, args.workers, edit_tasks=tasks, geometry_noise=noise)
    noisy = "" if noise is None else " with geometry noise"
    print(f"wrote {args.n} {args.split} {'edit' if tasks else 'video'} pairs{noisy} to {folder}")
    return 0


def _make_from_dataset(args: argparse.Namespace) -> int:
    from ..data.datasets import DATASETS, ClipPairDataset, DatasetClips, describe_source
    from ..data.pairs import write_pair_shards
    from ..errors import ValidationError

    name, path = args.dataset
    if name not in DATASETS:
        raise ValidationError(f"--from: {name!r} is not one of {', '.join(DATASETS)}")
    synthetic_only = [flag for flag, used in (("--edits", args.edits is not None), ("--gen", bool(args.gen)),
                                              ("--supersample", args.supersample), ("--seed-offset", args.seed_offset != 0),
                                              ("--geometry-noise", bool(args.geometry_noise)))
                      if used]
    if synthetic_only:
        raise ValidationError(f"{', '.join(synthetic_only)}: options of synthetic pairs; --from draws pairs from a dataset's clips")
    split = {"val": "validation"}.get(args.split, args.split) if name == "movi-e" else None
    clips = DatasetClips(name, path, args.image_size, split)
    pairs = ClipPairDataset(clips, args.n, args.max_objects)
    description = {**describe_source(clips), "split": split, "max_objects": args.max_objects}
    print(f"{name}: {len(clips)} clips in {path}, {pairs.per_clip} pair(s) from each of the first "
          f"{-(-args.n // pairs.per_clip)}", file=sys.stderr, flush=True)
    folder = write_pair_shards(args.out, pairs, description, args.shard_size, args.workers, label=name)
    print(f"wrote {args.n} {name} pairs to {folder}")
    return 0

"""The animation benchmark: temporal consistency of keyframed videos against exact re-renders of held-out scenes.

Each case animates frame 0 of a held-out synthetic video (the appearance and background
source of every frame) over 24 frames: an object slides across the floor and turns, two
objects do, or one does while the camera orbits. The model renders the video with
``render_video`` (one noise for every frame) and, for reference, every frame as a single
edit with its own noise; the copy-paste baseline warps the source frame by frame. Every
frame is scored against the generator's exact re-render: PSNR, SSIM and in-box PSNR per
frame, the drift (in-box PSNR of the last frame minus the first) and the video against the
single edits.

Usage::

    python benchmarks/animation.py --quick                    # smoke test: 2 cases per trajectory, *-quick* files
    python benchmarks/animation.py --model runs/denoiser/pipeline --bf16   # full run: 30 cases per trajectory, test split
    python benchmarks/animation.py --split val --cases 10     # for model iteration (shipped weights/ when present)
    python benchmarks/animation.py --trajectories move_turn --no-single-edits   # half the model's time

Writes benchmarks/results/animation.{md,json}, animation_psnr.png (PSNR per frame) and
animation_filmstrip_<trajectory>.png (ground truth and each method for a few frames).
Without ``--model`` the shipped default in weights/ is used when it exists, else only the
baseline runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neuralassets.errors import NeuralAssetsError, ValidationError

QUICK_CASES = 2  # cases per trajectory in --quick mode
FULL_CASES = 30  # cases per trajectory in full mode
DEFAULT_OUT = Path("benchmarks") / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from neuralassets.benchmark.trajectories import NUM_FRAMES, TRAJECTORIES
    from neuralassets.commands.bench import add_case_arguments

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_case_arguments(p, "trajectory", QUICK_CASES, FULL_CASES)
    p.add_argument("--trajectories", default=",".join(TRAJECTORIES), metavar="T1,T2",
                   help=f"comma-separated subset of {', '.join(TRAJECTORIES)}")
    p.add_argument("--frames", type=int, default=NUM_FRAMES, help=f"frames per animation (default {NUM_FRAMES})")
    p.add_argument("--model", default=None, metavar="PATH",
                   help="neural assets pipeline folder or hub id (default: the shipped weights/ when present)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's own)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's own)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the sampling noise")
    p.add_argument("--bf16", action="store_true", help="run the model under bfloat16 autocast")
    p.add_argument("--no-single-edits", action="store_true",
                   help="skip rendering every frame as a separate single edit (halves the model's time)")
    p.add_argument("--batch-size", type=int, default=8, help="frames per denoising batch")
    p.add_argument("--raw", action="store_true",
                   help="score the model's render alone, without keeping the source's unchanged pixels "
                        "(the model is reported as NAME-raw)")
    p.add_argument("--out", default=str(DEFAULT_OUT), metavar="DIR", help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--name", default=None,
                   help="file name stem (default animation, animation-val for --split val; -quick is appended with --quick)")
    return p.parse_args(argv)


def load_model(path: str | None):
    """(pipeline, name) of ``path``, of the shipped default when None and it exists, else (None, None)."""
    from neuralassets.pipelines import NeuralAssetsPipeline
    from neuralassets.pipelines.neural_assets import DEFAULT_WEIGHTS

    if path is None:
        if not (DEFAULT_WEIGHTS / "model_index.json").is_file():
            return None, None
        return NeuralAssetsPipeline.from_pretrained(), DEFAULT_WEIGHTS.name
    return NeuralAssetsPipeline.from_pretrained(path), Path(str(path).rstrip("/")).name or str(path)


def main(argv: list[str] | None = None) -> int:
    import torch

    from neuralassets.benchmark.baselines import CopyPasteMethod
    from neuralassets.benchmark.report import publish
    from neuralassets.benchmark.trajectories import AnimationConfig, run_animation_benchmark
    from neuralassets.benchmark.trajectories_report import write_report
    from neuralassets.commands.bench import case_selection, parse_generator_overrides

    args = parse_args(argv)
    try:
        cases, seeds = case_selection(args, QUICK_CASES, FULL_CASES)
        if args.batch_size < 1:
            raise ValidationError(f"--batch-size: expected >= 1, got {args.batch_size}")
        trajectories = tuple(t.strip() for t in args.trajectories.split(",") if t.strip())
        config = AnimationConfig(seeds, cases, trajectories, args.frames, parse_generator_overrides(args.gen), args.seed,
                                 args.split if not args.seeds else "custom").validate()
        pipeline, name = load_model(args.model)
        if pipeline is not None and args.bf16:
            pipeline.autocast_dtype = torch.bfloat16
        print(f"animation benchmark: {len(trajectories)} trajectories x {min(cases, len(seeds))} cases of {args.frames} "
              f"frames, seeds {seeds.start}:{seeds.stop}, model {name or 'none (no weights/; baseline only)'}")
        model_name = (name or "model") + ("-raw" if args.raw else "")
        result = run_animation_benchmark(config, pipeline, model_name, [CopyPasteMethod()],
                                         single_edits=not args.no_single_edits, num_inference_steps=args.steps,
                                         guidance_scale=args.guidance, batch_size=args.batch_size, progress=print,
                                         keep_unchanged=not args.raw)
    except NeuralAssetsError as e:
        print(f"animation: error: {e}", file=sys.stderr)
        return 2
    result.config.update({"model": args.model or name, "steps": args.steps, "guidance": args.guidance,
                          "bf16": bool(args.bf16 and pipeline is not None), "raw": bool(args.raw)})
    publish(write_report, result, args.out, args.name, "animation", args.split, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``neuralassets demo``: extract a sample video, edit it, and compare the model with the exact re-render."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="extract a sample video, edit it, and write model renders next to the exact ground truth",
        description="Generate a held-out sample video, extract its objects (ground-truth segmenter, depth lifting, known "
                    "cameras), apply a showcase of edits (move, rotate, remove, swap appearance, background swap, a short "
                    "animation) and write a before | ground truth | model grid (PNG) and the animation (GIF and MP4).")
    p.add_argument("--model", default=None, metavar="PATH",
                   help="pipeline folder or hub id (default: the shipped weights/ folder)")
    p.add_argument("--out", default="demo", metavar="DIR", help="folder to write the results to (default: ./demo)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="noise seed shared by every render")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from ..demo import run_demo
    from ..pipelines import NeuralAssetsPipeline

    pipe = NeuralAssetsPipeline.from_pretrained(args.model)
    print(f"model: {args.model or 'the shipped weights/'} ({pipe.config.image_size}x{pipe.config.image_size}, "
          f"{pipe.config.max_objects} object slots)")
    result = run_demo(pipe, args.out, num_inference_steps=args.steps, guidance_scale=args.guidance, seed=args.seed)
    print(f"wrote {result.grid} (before | ground truth | model for each edit)")
    print(f"wrote {result.gif} and {result.mp4} (the animation: ground truth | model)")
    print(f"wrote {result.scene} (the extracted scene; open it in `neuralassets editor`)")
    print(f"done in {result.seconds:.1f} s")
    return 0

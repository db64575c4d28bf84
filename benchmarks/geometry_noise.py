"""Where geometry noise costs the render: the model alone on edit pairs with exact and with noisy inputs.

    python benchmarks/geometry_noise.py [--model PATH ...] [--pairs 128] [--split val] [--seed-offset K]
        [--geometry-noise KEY=VALUE ...] [--out FILE.md]

Each pair (``EditPairDataset``: every edit in turn, from the split's seeds) is made twice, with
the generator's exact depth, masks and boxes and with geometry noise (by default that of the
pairs of ``configs/experiments/geometry_noise.yaml``, on every pair), and rendered by each model
alone. Its latents are sampled from either inputs and decoded with the object reference drawn
from either, from none, or from the same inputs with their depth unknown (the box as the
stand-in surface), so the table tells what the noise costs the denoiser (it reads the boxes)
from what it costs the decoder's reference (depth, masks and boxes). Scored: PSNR inside the
exact objects' target boxes, and over the whole image, with the same seeds in every row.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

#: The geometry noise of stage 11's pairs, on every pair.
STAGE_11_NOISE = ("probability=1", "depth_scale=[0.85,1.15]", "depth_blur=[0,2]", "depth_noise=0.05", "mask=[-2,2]",
                  "box_center=0.1", "box_size=0.1", "box_yaw=15")
ROWS = (("exact", "exact"), ("exact", "noisy"), ("noisy", "exact"), ("noisy", "noisy"), ("exact", "none"),
        ("noisy", "none"), ("exact", "exact, depth unknown"), ("noisy", "noisy, depth unknown"))
BATCH = 16


def scores(pipe, exact, noisy) -> dict[tuple[str, str], tuple[float, float]]:
    """{(latents from, reference from): (mean in-box PSNR, mean whole-image PSNR)} over the pairs."""
    from neuralassets.data.pairs import collate_pairs
    from neuralassets.image_ops import box_mask
    from neuralassets.metrics import psnr

    found: dict[tuple[str, str], list[tuple[float, float]]] = {row: [] for row in ROWS}
    size = pipe.config.image_size
    with torch.no_grad():
        for start in range(0, len(exact), BATCH):
            items = range(start, min(start + BATCH, len(exact)))
            inputs = {"exact": collate_pairs([exact[i] for i in items]), "noisy": collate_pairs([noisy[i] for i in items])}
            cond, targets = inputs["exact"]
            boxes = torch.stack([box_mask(cond.object_target_boxes[k][cond.object_mask[k]] * size, size, size)
                                 for k in range(len(targets))])
            latents = {name: pipe.sample_latents(c, generator=torch.Generator().manual_seed(start)) for name, (c, _) in inputs.items()}
            for sampled, drawn in ROWS:
                source = drawn.split(",")[0]
                reference = None if drawn == "none" else inputs[source][0]
                if drawn.endswith("depth unknown"):
                    reference = dataclasses.replace(reference, appearance_depths=torch.zeros_like(reference.appearance_depths))
                render = pipe.decode_latents(latents[sampled], reference)
                found[(sampled, drawn)].extend(zip(psnr(render, targets, boxes).tolist(), psnr(render, targets).tolist()))
    return {row: tuple(sum(v) / len(v) for v in zip(*values)) for row, values in found.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=None, metavar="PATH",
                   help="pipeline folder, repeated for several (default: weights); all of one image size and slot count")
    p.add_argument("--pairs", type=int, default=128, help="edit pairs")
    p.add_argument("--split", default="val", help="split of the pairs' seeds (val: tune on it; test: once per model)")
    p.add_argument("--seed-offset", type=int, default=0, help="first index into the split's seeds")
    p.add_argument("--geometry-noise", nargs="+", default=list(STAGE_11_NOISE), metavar="KEY=VALUE",
                   help="GeometryNoise fields of the noisy inputs (default: stage 11's, on every pair)")
    p.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = p.parse_args()

    from neuralassets.commands.bench import parse_overrides
    from neuralassets.config import from_dict
    from neuralassets.data import GeneratorConfig
    from neuralassets.data.pairs import EditPairDataset
    from neuralassets.data.perturbations import GeometryNoise
    from neuralassets.pipelines import NeuralAssetsPipeline

    noise = from_dict(GeometryNoise, parse_overrides(args.geometry_noise, "--geometry-noise"), "--geometry-noise")
    models = args.model or ["weights"]
    pipes = [NeuralAssetsPipeline.from_pretrained(m) for m in models]
    config = pipes[0].config
    generator = GeneratorConfig(image_size=config.image_size)
    exact = EditPairDataset(args.split, args.pairs, config.max_objects, generator, args.seed_offset)
    noisy = EditPairDataset(args.split, args.pairs, config.max_objects, generator, args.seed_offset, geometry_noise=noise)
    results = [scores(pipe, exact, noisy) for pipe in pipes]
    lines = [f"{args.pairs} edit pairs of every edit, {args.split} split from seed index {args.seed_offset}; noisy inputs: "
             f"{', '.join(args.geometry_noise)}. The model's render alone, PSNR (dB) in the exact objects' target boxes "
             "(whole image in brackets).", "",
             "| latents sampled from | reference drawn from | " + " | ".join(models) + " |",
             "|---|---|" + "---|" * len(models)]
    for row in ROWS:
        lines.append(f"| {row[0]} | {row[1]} | " + " | ".join(f"{r[row][0]:.2f} ({r[row][1]:.2f})" for r in results) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()

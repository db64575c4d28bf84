"""Extraction benchmark: masks, identities and 3D boxes recovered from held-out synthetic videos.

For each video of the generator's test split it runs :func:`neuralassets.perception.extract`
with three set-ups and compares the result with the generator's ground truth:

* ``GT masks + GT depth``: the ground-truth masks and depth, lifted with DepthLifter.
* ``GT masks + ground plane``: the ground-truth masks, lifted without depth.
* ``classical + tracker``: ClassicalSegmenter + MaskTracker + GroundPlaneLifter; only the
  first camera is given, later cameras come from the estimated camera motion.

Metrics (objects are matched to tracks by summed mask IoU over the clip, Hungarian):

* mask mIoU over (object, frame) pairs where the object is visible, for all objects and
  for objects that move;
* id switches per 100 frames: how often the track that best covers an object (IoU > 0.5)
  changes between consecutive frames where one does;
* 3D centre error as a percentage of the object's largest extent (mean and median);
* yaw error (median, degrees) modulo the box's symmetry: 90° for a square footprint,
  180° otherwise; shapes round about the vertical (spheres, upright cylinders and cones)
  and frames where the object is tipped part-way are left out;
* frames per second of the whole extraction.

Run ``python benchmarks/extraction.py [--videos N] [--size 128]``; the table goes to
``benchmarks/results/extraction.md`` and the numbers to ``extraction.json``. Tune on the
validation split (``--split val --out DIR``) so that the test split stays held out;
``--overlays DIR`` writes each video's masks and boxes per set-up as PNG strips.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment

from neuralassets.data.synthetic import GeneratorConfig, generate_scene, split_seed
from neuralassets.image_ops import any_along
from neuralassets.perception import (
    ClassicalSegmenter,
    DepthLifter,
    GroundPlaneLifter,
    GroundTruthSegmenter,
    MaskTracker,
    extract,
    mask_iou,
)
from neuralassets.perception.overlay import draw_overlay
from neuralassets.scene import Scene
from neuralassets.video import to_uint8_frames

RESULTS = Path(__file__).resolve().parent / "results"
ROUND_ABOUT_Z = ("sphere", "cylinder", "cone")


def run_setup(name: str, scene: Scene) -> tuple[Scene, float]:
    """Extract ``scene.frames`` with set-up ``name``; returns the Scene and the wall time in seconds."""
    start = time.perf_counter()
    if name == "GT masks + GT depth":
        out = extract(scene.frames, GroundTruthSegmenter(scene), MaskTracker(), DepthLifter(), camera=scene.cameras,
                      depth=scene.depth)
    elif name == "GT masks + ground plane":
        out = extract(scene.frames, GroundTruthSegmenter(scene), MaskTracker(), GroundPlaneLifter(), camera=scene.cameras)
    else:
        out = extract(scene.frames, ClassicalSegmenter(), MaskTracker(), GroundPlaneLifter(), camera=scene.cameras[0])
    return out, time.perf_counter() - start


def match(gt: Scene, pred: Scene) -> dict[int, int]:
    """GT asset index → predicted asset index, by summed mask IoU (Hungarian)."""
    if not len(pred) or not len(gt):
        return {}
    T = gt.num_frames
    score = torch.zeros(len(gt), len(pred))
    for t in range(T):
        a = torch.stack([x.masks[t] for x in gt.assets])
        b = torch.stack([x.masks[t] for x in pred.assets])
        score += mask_iou(a, b)
    rows, cols = linear_sum_assignment(-score.numpy())
    return {int(r): int(c) for r, c in zip(rows, cols) if score[r, c] > 0}


def flat_yaw(R: torch.Tensor, size: torch.Tensor) -> tuple[float, float, float, bool]:
    """A box as a yaw-only box: (yaw of the longer horizontal side, long side, short side, upright?)."""
    up = int(R[2].abs().argmax())
    upright = float(R[2, up].abs()) > math.cos(math.radians(5))
    horizontal = [i for i in range(3) if i != up]
    a, b = horizontal if size[horizontal[0]] >= size[horizontal[1]] else horizontal[::-1]
    return math.atan2(float(R[1, a]), float(R[0, a])), float(size[a]), float(size[b]), upright


def yaw_error(gt_R, gt_size, pred_R, pred_size) -> float | None:
    """Degrees, modulo the box's symmetry; None where yaw is undefined (tipped part-way)."""
    g_yaw, g_long, g_short, upright = flat_yaw(gt_R, gt_size)
    if not upright:
        return None
    p_yaw, _, _, _ = flat_yaw(pred_R, pred_size)
    period = math.pi / 2 if g_short > 0.9 * g_long else math.pi
    d = (p_yaw - g_yaw) % period
    return math.degrees(min(d, period - d))


def evaluate(gt: Scene, pred: Scene) -> dict:
    T = gt.num_frames
    pairs = match(gt, pred)
    ious, moving_ious, centre, yaw = [], [], [], []
    for i, g in enumerate(gt.assets):
        visible = any_along(g.masks.flatten(1), 1)
        p = pred.assets[pairs[i]] if i in pairs else None
        moves = g.attributes.get("motion", "static") != "static"
        for t in visible.nonzero().flatten().tolist():
            iou = float(mask_iou(g.masks[t][None], p.masks[t][None])) if p is not None else 0.0
            ious.append(iou)
            if moves:
                moving_ious.append(iou)
            if p is None or not bool(p.masks[t].any()):
                continue
            extent = float(g.sizes[t].max())
            centre.append(100 * float((p.centers[t] - g.centers[t]).norm()) / extent)
            shape = g.attributes.get("shape")
            _, _, _, upright = flat_yaw(g.rotations[t], g.sizes[t])
            round_about_z = shape == "sphere" or (shape in ROUND_ABOUT_Z and g.rotations[t][2, 2].abs() > 0.99)
            if not round_about_z:
                err = yaw_error(g.rotations[t], g.sizes[t], p.rotations[t], p.sizes[t])
                if err is not None:
                    yaw.append(err)
    return {"ious": ious, "moving_ious": moving_ious, "centre": centre, "yaw": yaw,
            "switches": id_switches(gt, pred), "frames": T}


def id_switches(gt: Scene, pred: Scene) -> int:
    """Changes of the best-covering predicted asset (IoU > 0.5) of each GT object between frames it has one."""
    if not len(pred):
        return 0
    switches = 0
    for g in gt.assets:
        last = None
        for t in range(gt.num_frames):
            if not bool(g.masks[t].any()):
                continue
            iou = mask_iou(g.masks[t][None], torch.stack([p.masks[t] for p in pred.assets]))[0]
            best = int(iou.argmax())
            if float(iou[best]) <= 0.5:
                continue
            if last is not None and best != last:
                switches += 1
            last = best
    return switches


def summarise(rows: list[dict], seconds: float) -> dict:
    cat = {k: [x for r in rows for x in r[k]] for k in ("ious", "moving_ious", "centre", "yaw")}
    frames = sum(r["frames"] for r in rows)
    return {
        "mask_miou": float(np.mean(cat["ious"])) if cat["ious"] else float("nan"),
        "moving_miou": float(np.mean(cat["moving_ious"])) if cat["moving_ious"] else float("nan"),
        "id_switches_per_100_frames": 100.0 * sum(r["switches"] for r in rows) / frames,
        "centre_error_pct_mean": float(np.mean(cat["centre"])) if cat["centre"] else float("nan"),
        "centre_error_pct_median": float(np.median(cat["centre"])) if cat["centre"] else float("nan"),
        "yaw_error_deg_median": float(np.median(cat["yaw"])) if cat["yaw"] else float("nan"),
        "frames_per_second": frames / seconds,
        "frames": frames,
    }


SETUPS = ("GT masks + GT depth", "GT masks + ground plane", "classical + tracker")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=20, help="videos to evaluate")
    parser.add_argument("--split", choices=("val", "test"), default="test", help="generator split the videos come from")
    parser.add_argument("--setups", nargs="+", choices=SETUPS, default=list(SETUPS), help="set-ups to run")
    parser.add_argument("--overlays", type=Path, default=None, help="folder for overlay PNGs (every 4th frame per video)")
    parser.add_argument("--size", type=int, default=128, help="frame size in pixels")
    parser.add_argument("--frames", type=int, default=24, help="frames per video")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for extraction.md and extraction.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    config = GeneratorConfig(image_size=args.size, num_frames=args.frames)
    setups = [s for s in SETUPS if s in args.setups]
    per_setup: dict[str, list[dict]] = {s: [] for s in setups}
    seconds = dict.fromkeys(setups, 0.0)
    for i in range(args.videos):
        scene = generate_scene(split_seed(args.split, i), config)
        for name in setups:
            pred, dt = run_setup(name, scene)
            seconds[name] += dt
            per_setup[name].append(evaluate(scene, pred))
            if args.overlays is not None:
                write_overlay(args.overlays / f"{args.split}{i:03d}_{re.sub(r'[^a-z]+', '-', name.lower())}.png", scene, pred)
        print(f"video {i + 1}/{args.videos} done", flush=True)
    results = {name: summarise(per_setup[name], seconds[name]) for name in setups}
    header = ("| set-up | mask mIoU | mIoU (moving) | id switches / 100 frames | centre error % (mean / median) "
              "| yaw error ° (median) | frames/s |")
    lines = [f"# Extraction benchmark\n\n{args.videos} {args.split}-split videos, {args.frames} frames of {args.size}x{args.size}, "
             f"{torch.get_num_threads()} CPU threads.\n", header, "|" + "---|" * 7]
    for name, r in results.items():
        lines.append(f"| {name} | {r['mask_miou']:.3f} | {r['moving_miou']:.3f} | {r['id_switches_per_100_frames']:.2f} | "
                     f"{r['centre_error_pct_mean']:.1f} / {r['centre_error_pct_median']:.1f} | "
                     f"{r['yaw_error_deg_median']:.1f} | {r['frames_per_second']:.1f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "extraction.md").write_text(table)
    (args.out / "extraction.json").write_text(json.dumps({"videos": args.videos, "size": args.size, "frames": args.frames,
                                                          "results": results}, indent=1))
    return results


def write_overlay(path: Path, gt: Scene, pred: Scene) -> None:
    """Every 4th frame: ground truth (top row) over the prediction (bottom row), masks, ids and 3D boxes drawn."""
    frames = list(range(0, gt.num_frames, 4))
    rows = [torch.cat(list(draw_overlay(s, frames)), dim=2) for s in (gt, pred)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8_frames(torch.cat(rows, dim=1)[None])[0]).save(path)


if __name__ == "__main__":
    main()

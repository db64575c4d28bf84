"""Perception benchmark: the learned model frame by frame on held-out synthetic videos.

For each video of a generator split, the model (``--weights``, default ``weights/perception``)
sees every frame once; each frame is scored against the generator's ground truth on its own,
with no tracking and the true camera, so the figures measure the model alone
(``benchmarks/extraction.py`` measures the whole extraction):

* depth: abs-rel ``mean(|d - d*| / d*)`` over all pixels, and the share of pixels within 5 %;
* masks: per frame, predicted masks are matched to the visible ground-truth objects by IoU
  (Hungarian); mIoU over (object, frame) pairs, an unmatched object scoring 0;
* 3D boxes of matched objects, two ways: ``regressed`` (the model's box estimates through
  the true camera, :func:`~neuralassets.perception.learned.boxes_from_estimates`) and
  ``lifted`` (the predicted mask and depth through
  :class:`~neuralassets.perception.lifting.DepthLifter`): centre error as a percentage of the
  object's largest extent (mean and median), and median yaw error in degrees modulo the box's
  symmetry (90° for a square footprint, else 180°) over upright objects not round about the
  vertical;
* the spread of the model's estimates of an object's distance (root mean square error of the
  centre's height in metres and of its depth relative to the depth): what
  :class:`~neuralassets.perception.learned.EstimateNoise` holds for these weights;
* frames per second of the model (net, objects and estimates) at the frame size, on
  ``--threads`` CPU threads;
* the classical segmenter's per-frame mIoU on the same frames, for reference (``--classical``).

Run ``python benchmarks/perception.py --split val --videos 20``; the table goes to
``benchmarks/results/perception.md`` and the numbers to ``perception.json`` (``--out`` to
write elsewhere). Tune on the validation split; the test split is run once per shipped model.
``--save-noise`` (validation only) writes the measured spreads into the weights' ``config.json``,
where extraction reads them: run it once for newly trained weights.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from neuralassets.data.synthetic import GeneratorConfig, generate_scene, split_seed
from neuralassets.perception import ClassicalSegmenter, DepthLifter, Tracks, mask_iou
from neuralassets.perception.learned import (
    CONFIG_NAME,
    DEFAULT_PERCEPTION_WEIGHTS,
    EstimateNoise,
    LearnedPerception,
    box_estimates,
    boxes_from_estimates,
    flat_box,
)
from neuralassets.scene import Scene

RESULTS = Path(__file__).resolve().parent / "results"
ROUND_ABOUT_VERTICAL = ("sphere", "cylinder", "cone")


def match_frame(gt_masks: torch.Tensor, pred_masks: torch.Tensor) -> tuple[torch.Tensor, dict[int, int]]:
    """IoU of each ground-truth mask with its matched prediction (0 unmatched), and the matches gt -> pred."""
    ious = torch.zeros(len(gt_masks))
    if not len(gt_masks) or not len(pred_masks):
        return ious, {}
    iou = mask_iou(gt_masks, pred_masks)
    rows, cols = linear_sum_assignment(-iou.numpy())
    pairs = {int(r): int(c) for r, c in zip(rows, cols) if iou[r, c] > 0}
    for r, c in pairs.items():
        ious[r] = iou[r, c]
    return ious, pairs


def yaw_error(gt_rotation: torch.Tensor, gt_size: torch.Tensor, yaw: float) -> float:
    """Degrees between a predicted yaw of the long side and the ground truth's, modulo the box's symmetry."""
    g_yaw, sides, _, _ = flat_box(gt_rotation, gt_size)
    period = math.pi / 2 if sides[1] > 0.9 * sides[0] else math.pi
    d = (yaw - float(g_yaw)) % period
    return math.degrees(min(d, period - d))


def yaw_defined(asset, t: int) -> bool:
    """Whether asset's yaw at frame t is scored: upright and not round about the vertical."""
    _, _, upright, _ = flat_box(asset.rotations[t], asset.sizes[t])
    round_about = asset.category == "sphere" or (asset.category in ROUND_ABOUT_VERTICAL
                                                 and bool(asset.rotations[t][2, 2].abs() > 0.99))
    return bool(upright) and not round_about


def box_errors(asset, t: int, box: torch.Tensor) -> tuple[float, float | None]:
    """Centre error (% of the largest extent) and yaw error (degrees, None where undefined) of a (7,) lifter box."""
    if not bool(torch.isfinite(box).all()):
        return float("nan"), None
    centre = torch.stack([box[0], box[1], box[2] + box[5] / 2])
    error = 100 * float((centre - asset.centers[t]).norm()) / float(asset.sizes[t].max())
    return error, (yaw_error(asset.rotations[t], asset.sizes[t], float(box[6])) if yaw_defined(asset, t) else None)


def lifted_box(mask: torch.Tensor, others: torch.Tensor, camera, depth: torch.Tensor) -> torch.Tensor:
    """(7,) DepthLifter box of one mask (its neighbours ``others`` (K, H, W) decide a hidden lower edge); NaN if none."""
    masks = torch.cat([mask[None], others])
    tracks = Tracks(list(range(1, len(masks) + 1)), masks[:, None], torch.ones(len(masks), 1))
    boxes = DepthLifter().lift(tracks, [camera], depth[None])
    if not bool(boxes.measured[0, 0]):
        return torch.full((7,), float("nan"))
    yaw = math.atan2(float(boxes.rotations[0, 0, 1, 0]), float(boxes.rotations[0, 0, 0, 0]))
    c, s = boxes.centers[0, 0], boxes.sizes[0, 0]
    return torch.tensor([c[0], c[1], c[2] - s[2] / 2, s[0], s[1], s[2], yaw])


NOISE_FIELDS = tuple(f.name for f in fields(EstimateNoise))


def estimate_errors(estimate: torch.Tensor, asset, t: int, camera) -> dict[str, list[float]]:
    """Errors of one object's estimate (10,) in the units of :class:`EstimateNoise`, by field."""
    truth = box_estimates(asset.centers[t][None], asset.sizes[t][None], asset.rotations[t][None], camera)[0]
    return {"centre_height": [float(estimate[5] - truth[5])], "centre_depth": [float((estimate[4] - truth[4]) / truth[4])]}


def evaluate_video(scene: Scene, model: LearnedPerception, classical: bool) -> dict:
    start = time.perf_counter()
    found = model.perceive(scene.frames)
    seconds = time.perf_counter() - start
    classical_dets = ClassicalSegmenter().segment(scene.frames) if classical else None
    out = {k: [] for k in ("abs_rel", "within5", "ious", "classical_ious", "centre_regressed", "centre_lifted",
                           "yaw_regressed", "yaw_lifted", *NOISE_FIELDS)}
    for t, p in enumerate(found):
        truth = scene.depth[t]
        rel = (p.depth - truth).abs() / truth
        out["abs_rel"].append(float(rel.mean()))
        out["within5"].append(float((rel < 0.05).float().mean()))
        visible = [a for a in scene.assets if bool(a.masks[t].any())]
        if not visible:
            continue
        gt = torch.stack([a.masks[t] for a in visible])
        pred = p.detections().masks
        ious, pairs = match_frame(gt, pred)
        out["ious"].extend(ious.tolist())
        if classical_dets is not None:
            out["classical_ious"].extend(match_frame(gt, classical_dets[t].masks)[0].tolist())
        camera = scene.cameras[t]
        regressed = boxes_from_estimates(p.estimates, camera, model.estimate_noise)
        for g, k in pairs.items():
            asset = visible[g]
            for name, error in estimate_errors(p.estimates[k], asset, t, camera).items():
                out[name].extend(error)
            for name, box in (("regressed", regressed[k]),
                              ("lifted", lifted_box(pred[k], torch.cat([pred[:k], pred[k + 1:]]), camera, p.depth))):
                centre, yaw = box_errors(asset, t, box)
                if math.isfinite(centre):
                    out[f"centre_{name}"].append(centre)
                if yaw is not None:
                    out[f"yaw_{name}"].append(yaw)
    out["seconds"], out["frames"] = seconds, len(found)
    return out


def summarise(rows: list[dict]) -> dict:
    cat = {k: [x for r in rows for x in r[k]] for k in rows[0] if isinstance(rows[0][k], list)}
    mean = lambda k: float(np.mean(cat[k])) if cat[k] else float("nan")  # noqa: E731
    median = lambda k: float(np.median(cat[k])) if cat[k] else float("nan")  # noqa: E731
    return {
        "depth_abs_rel": mean("abs_rel"), "depth_within_5pct": mean("within5"),
        "mask_miou": mean("ious"), "classical_mask_miou": mean("classical_ious"),
        **{f"centre_error_pct_{how}_{name}": f(f"centre_{name}") for name in ("regressed", "lifted")
           for how, f in (("mean", mean), ("median", median))},
        **{f"yaw_error_deg_median_{name}": median(f"yaw_{name}") for name in ("regressed", "lifted")},
        "estimate_noise": {name: float(np.sqrt(np.mean(np.square(cat[name])))) for name in NOISE_FIELDS},
        "frames_per_second": sum(r["frames"] for r in rows) / sum(r["seconds"] for r in rows),
        "frames": sum(r["frames"] for r in rows),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=None, help="perception model folder (default weights/perception)")
    parser.add_argument("--split", choices=("val", "test"), default="val", help="generator split the videos come from")
    parser.add_argument("--videos", type=int, default=20, help="videos to evaluate")
    parser.add_argument("--size", type=int, default=128, help="frame size in pixels")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--classical", action="store_true", help="also score the classical segmenter's masks")
    parser.add_argument("--decode", action="append", default=[], metavar="NAME=VALUE",
                        help="override a decoding setting of the model's PerceptionConfig (e.g. centre_threshold=0.4)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for perception.md and perception.json")
    parser.add_argument("--save-noise", action="store_true",
                        help="write the measured spreads into the weights' config.json (estimate_noise; validation split only)")
    args = parser.parse_args(argv)
    if args.save_noise and args.split != "val":
        parser.error("--save-noise measures on the validation split only")
    torch.set_num_threads(args.threads)
    model = LearnedPerception.from_pretrained(args.weights, batch_size=1)
    for setting in args.decode:
        name, value = setting.split("=", 1)
        kind = type(getattr(model.config, name))
        setattr(model.config, name, value.lower() in ("1", "true", "yes") if kind is bool else kind(value))
    config = GeneratorConfig(image_size=args.size)
    rows = []
    for i in range(args.videos):
        rows.append(evaluate_video(generate_scene(split_seed(args.split, i), config), model, args.classical))
        print(f"video {i + 1}/{args.videos} done", flush=True)
    r = summarise(rows)
    lines = [
        f"# Perception benchmark\n\n{args.videos} {args.split}-split videos, {r['frames']} frames of {args.size}x{args.size}, "
        f"scored frame by frame with the true cameras; {args.threads} CPU threads.\n",
        "| depth abs-rel | depth within 5 % | mask mIoU | classical mask mIoU | centre error % regressed (mean / median) "
        "| centre error % lifted (mean / median) | yaw error ° regressed / lifted (median) | frames/s |",
        "|" + "---|" * 8,
        f"| {r['depth_abs_rel']:.4f} | {r['depth_within_5pct']:.3f} | {r['mask_miou']:.3f} | {r['classical_mask_miou']:.3f} | "
        f"{r['centre_error_pct_mean_regressed']:.1f} / {r['centre_error_pct_median_regressed']:.1f} | "
        f"{r['centre_error_pct_mean_lifted']:.1f} / {r['centre_error_pct_median_lifted']:.1f} | "
        f"{r['yaw_error_deg_median_regressed']:.1f} / {r['yaw_error_deg_median_lifted']:.1f} | {r['frames_per_second']:.1f} |",
    ]
    noise = r["estimate_noise"]
    lines += ["", "Spread of the distance estimates (root mean square error; `EstimateNoise`): "
              + ", ".join(f"{name} {noise[name]:.4f}" for name in NOISE_FIELDS) + "."]
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "perception.md").write_text(table)
    if args.save_noise:
        if not all(math.isfinite(v) for v in noise.values()):
            raise SystemExit("perception benchmark: no object was matched, so there are no spreads to save")
        config_path = Path(args.weights or DEFAULT_PERCEPTION_WEIGHTS) / CONFIG_NAME
        meta = json.loads(config_path.read_text())
        meta["estimate_noise"] = asdict(EstimateNoise(**noise))  # checked as extraction will read it
        config_path.write_text(json.dumps(meta, indent=1) + "\n")
    (args.out / "perception.json").write_text(json.dumps({"split": args.split, "videos": args.videos, "size": args.size,
                                                          "threads": args.threads, "decode": args.decode, "results": r},
                                                         indent=1))
    return r


if __name__ == "__main__":
    main()

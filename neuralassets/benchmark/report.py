"""Write a benchmark result as markdown, JSON, bar charts and example grids.

Files written for a name ``stem`` (``pose_edit`` or ``pose_edit-quick``) in a folder:

- ``{stem}.md``: one table per task, mean ± 95% confidence half-width per method and metric;
- ``{stem}.json``: the run's settings, the same summary, and every per-case row;
- ``{stem}_{metric}.png``: a grouped bar chart per metric (tasks × methods, CI error bars);
- ``{stem}_examples_{task}.png``: per task, rows of source | ground truth | each method,
  with the in-box region outlined.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..plotting import saved_figure
from .harness import METRICS, BenchmarkResult

FORMAT_VERSION = 1


def table_cell(stats: dict[str, float], key: str, lpips_available: bool) -> str:
    """A metric's summary (``{"mean", "ci95", "n"}``) as a markdown table cell: "mean ± ci95", "–" or "n/a"."""
    if key == "lpips" and not lpips_available:
        return "n/a"
    mean, half = stats["mean"], stats["ci95"]
    if stats["n"] == 0 or math.isnan(mean):
        return "–"
    if key == "ms_per_edit":
        return f"{mean:.0f}"  # measured per batch, so a per-case interval would be meaningless
    digits = 2 if key.startswith("psnr") else 3
    return f"{mean:.{digits}f}" if math.isnan(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"


def run_description(cfg: dict, cases: str) -> str:
    """A report's first sentence: split, seeds, ``cases``, generator overrides, run time and ground-truth digest."""
    return (f"Split `{cfg['split']}`, seeds `{cfg['seeds']}`, {cases}"
            + (f", generator overrides `{cfg['generator_overrides']}`" if cfg["generator_overrides"] else "")
            + (f"; {cfg['seconds']:.0f} s in all." if "seconds" in cfg else ".")
            + (f" Ground-truth digest `{cfg['truth_sha256'][:16]}` (a run is comparable with this one only if its digest matches)."
               if "truth_sha256" in cfg else ""))


def publish(write: Callable, result, out: str | os.PathLike, name: str | None, base: str, split: str, quick: bool) -> None:
    """Write a benchmark's report with ``write(result, out, stem)`` and print it and its files.

    The stem is ``name``, else ``base`` for the test split or ``base-<split>``; quick runs append
    ``-quick`` (git-ignored).
    """
    stem = name or (base if split == "test" else f"{base}-{split}")
    if quick:
        stem += "-quick"
    written = write(result, out, stem)
    print((Path(out) / f"{stem}.md").read_text())
    print("wrote " + ", ".join(str(p) for p in written))


def markdown(result: BenchmarkResult) -> str:
    """The result as a markdown document (one table per task)."""
    summary = result.summary()
    cfg = result.config
    lines = [
        "# Pose-edit benchmark",
        "",
        run_description(cfg, f"up to {cfg['cases_per_task']} cases per task"),
        "Mean ± 95% confidence half-width over the cases (Student's t). In-box metrics are taken over the union of",
        "the edited objects' projected 3D boxes in the source and target frames; identity similarity is the cosine",
        f"similarity of {result.descriptor} descriptors of each edited object's target box in the render and the ground truth.",
        "LPIPS: " + ("AlexNet, v0.1 calibration." if result.lpips_available else "n/a (no backbone weights on disk)."),
        "",
    ]
    header = "| method | " + " | ".join(title + (" ↑" if up else " ↓") for title, up in METRICS.values()) + " | cases |"
    rule = "|---|" + "---|" * (len(METRICS) + 1)
    for task in result.tasks:
        lines += [f"## {task}", "", header, rule]
        for method in result.methods:
            stats = summary[task][method]
            cells = [table_cell(stats[k], k, result.lpips_available) for k in METRICS]
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {stats['psnr']['n']} |")
        lines.append("")
    return "\n".join(lines)


def json_number(x: float) -> float | None:
    """``x``, or None for NaN and inf (which JSON cannot hold)."""
    return None if isinstance(x, float) and (math.isnan(x) or math.isinf(x)) else x


def to_json(result: BenchmarkResult) -> dict:
    """The result as a JSON-serialisable dict (NaN becomes null)."""
    summary = result.summary()
    for per_method in summary.values():
        for per_metric in per_method.values():
            for stats in per_metric.values():
                for k, v in stats.items():
                    stats[k] = json_number(round(v, 5) if isinstance(v, float) and math.isfinite(v) else v)
    rows = [{k: (json_number(round(v, 5)) if isinstance(v, float) else v) for k, v in row.items()} for row in result.rows]
    return {"format_version": FORMAT_VERSION, "config": result.config, "methods": result.methods, "tasks": result.tasks,
            "lpips_available": result.lpips_available, "descriptor": result.descriptor, "summary": summary, "cases": rows}


def bar_chart(result: BenchmarkResult, key: str, path: str | os.PathLike) -> Path:
    """A grouped bar chart of one metric: tasks along x, one bar per method, 95% CI error bars."""
    summary = result.summary()
    title, higher = METRICS[key]
    n_methods = len(result.methods)
    width = 0.8 / max(1, n_methods)
    x = np.arange(len(result.tasks))
    with saved_figure(path, figsize=(max(6.0, 1.1 * len(result.tasks) + 2), 3.6), dpi=110) as (_, ax):
        for j, method in enumerate(result.methods):
            means = [summary[t][method][key]["mean"] for t in result.tasks]
            errs = [summary[t][method][key]["ci95"] for t in result.tasks]
            errs = [0.0 if math.isnan(e) else e for e in errs]
            ax.bar(x + (j - (n_methods - 1) / 2) * width, means, width, yerr=errs, capsize=2, label=method)
        ax.set_xticks(x, result.tasks, rotation=30, ha="right")
        ax.set_ylabel(title)
        ax.set_title(f"{title} ({'higher' if higher else 'lower'} is better)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, ncol=min(4, n_methods))
    return Path(path)


def example_grid(result: BenchmarkResult, task: str, path: str | os.PathLike) -> Path | None:
    """Rows of source | ground truth | each method for a task's example cases, region outlined in the truth."""
    examples = [e for e in result.examples if e.task == task]
    if not examples:
        return None
    columns = ["source", "ground truth", *result.methods]
    with saved_figure(path, len(examples), len(columns), figsize=(1.9 * len(columns), 2.0 * len(examples)),
                      dpi=110, squeeze=False) as (fig, axes):
        for r, example in enumerate(examples):
            images = [example.source, example.target, *(example.predictions[m] for m in result.methods)]
            for c, (name, image) in enumerate(zip(columns, images)):
                ax = axes[r, c]
                ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
                if c == 1:
                    ax.contour(example.region.numpy().astype(float), levels=[0.5], colors="yellow", linewidths=0.7)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(name, fontsize=9)
                if c == 0:
                    ax.set_ylabel(f"seed {example.seed}", fontsize=8)
        fig.suptitle(task, fontsize=10)
    return Path(path)


def write_report(result: BenchmarkResult, folder: str | os.PathLike, stem: str = "pose_edit") -> list[Path]:
    """Write the markdown, JSON, charts and example grids; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    md = folder / f"{stem}.md"
    md.write_text(markdown(result) + "\n")
    js = folder / f"{stem}.json"
    js.write_text(json.dumps(to_json(result), indent=1) + "\n")
    written += [md, js]
    for key in METRICS:
        if key == "lpips" and not result.lpips_available:
            continue
        written.append(bar_chart(result, key, folder / f"{stem}_{key}.png"))
    for task in result.tasks:
        grid = example_grid(result, task, folder / f"{stem}_examples_{task}.png")
        if grid is not None:
            written.append(grid)
    return written

"""Write a benchmark result as markdown, JSON, bar charts and example grids.

Files written for a name ``stem`` (``pose_edit``, ``pose_edit-extracted``, ``pose_edit-quick``, ...) in a folder:

- ``{stem}.md``: which inputs the methods were given, the models' in-box PSNR margins over the
  geometric and copy-paste baselines per task (paired, with the cases whose edit could not be
  applied to the inputs), then one table per task, mean ± 95% confidence half-width per method
  and metric;
- ``{stem}.json``: the run's settings, the same summary, the margins, and every per-case row;
- ``{stem}_{metric}.png``: a grouped bar chart per metric (tasks × methods, CI error bars);
- ``{stem}_margins.png``: each model's in-box PSNR minus each baseline's, per task;
- ``{stem}_examples_{task}.png``: per task, rows of source | ground truth | each method,
  with the in-box region outlined.

A robustness sweep (:func:`write_sweep_report`) writes ``{stem}.md`` (in-box PSNR per noise
level, task and method), ``{stem}.json`` and ``{stem}.png`` (in-box PSNR against each noise level).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..metrics import mean_ci
from ..plotting import saved_figure
from .harness import METRICS, BenchmarkResult

FORMAT_VERSION = 2
#: The baselines every model is measured against, in the order their margins are reported.
MARGIN_BASELINES = ("geometric", "copy-paste")


def table_cell(stats: dict[str, float], key: str, lpips_available: bool, identity_available: bool = True) -> str:
    """A metric's summary (``{"mean", "ci95", "n", "worst"}``) as a markdown table cell: "mean ± ci95", "–" or "n/a"."""
    if (key == "lpips" and not lpips_available) or (key == "identity" and not identity_available):
        return "n/a"
    mean, half = stats["mean"], stats["ci95"]
    if stats["n"] == 0 or math.isnan(mean):
        return "–"
    if key == "ms_per_edit":
        return f"{mean:.0f}"  # measured per batch, so a per-case interval would be meaningless
    if key == "untouched_kept":  # a share that must hold in the worst case too
        return f"{mean:.1f}" + ("" if math.isnan(half) else f" ± {half:.1f}") + f" (worst {stats['worst']:.1f})"
    digits = 2 if key.startswith("psnr") else 3
    return f"{mean:.{digits}f}" if math.isnan(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"


def run_description(cfg: dict, cases: str) -> str:
    """A report's first sentence: dataset or split and seeds, ``cases``, generator overrides, run time and ground-truth digest."""
    source = (f"Dataset `{cfg['dataset']}`, split `{cfg['split']}`, clips `{cfg['seeds']}`" if cfg.get("dataset")
              else f"Split `{cfg['split']}`, seeds `{cfg['seeds']}`")
    return (f"{source}, {cases}"
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


def models(result: BenchmarkResult) -> list[str]:
    """The methods that are neither a baseline nor the VAE ceiling: the models."""
    return [m for m in result.methods if m not in ("identity", "copy-paste", "geometric", "vae-ceiling")]


def margins(result: BenchmarkResult, key: str = "psnr_box", applied_only: bool = False
            ) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """model -> baseline -> task -> paired margin (:meth:`BenchmarkResult.margin`) for the baselines present."""
    return {model: {b: result.margin(model, b, key, applied_only) for b in MARGIN_BASELINES if b in result.methods}
            for model in models(result)}


def _margin_table(result: BenchmarkResult, table: dict, applied_only: bool) -> list[str]:
    """Rows of the margins table: task, each model's in-box PSNR, its margins, the failed cases."""
    columns = [(model, b) for model, per in table.items() for b in per]
    lines = ["| task | " + " | ".join(f"{m} (dB)" for m in table) + " | "
             + " | ".join(f"{m} − {b}" for m, b in columns) + " | " + ("cases |" if applied_only else "failed |"),
             "|---|" + "---|" * (len(table) + len(columns) + 1)]
    failures = result.failures()
    for task in result.tasks:
        rows = [r for r in result.rows if r["task"] == task and not (applied_only and r.get("failed"))]
        scores = [table_cell(dict(zip(("mean", "ci95", "n"), mean_ci(r["psnr_box"] for r in rows if r["method"] == m))),
                        "psnr_box", True) for m in table]
        failed, n = failures[task]
        lines.append(f"| {task} | " + " | ".join(scores) + " | " + " | ".join(_margin_cell(table[m][b][task]) for m, b in columns)
                     + (f" | {n - failed} |" if applied_only else f" | {failed}/{n} |"))
    return lines


def _margin_cell(stats: dict[str, float]) -> str:
    if stats["n"] == 0 or math.isnan(stats["mean"]):
        return "–"
    half = "" if math.isnan(stats["ci95"]) else f" ± {stats['ci95']:.2f}"
    return f"{stats['mean']:+.2f}{half}"


def markdown(result: BenchmarkResult) -> str:
    """The result as a markdown document (the models' margins over the baselines, then one table per task)."""
    summary = result.summary()
    failures = result.failures()
    cfg = result.config
    lines = [
        "# Pose-edit benchmark",
        "",
        run_description(cfg, f"up to {cfg['cases_per_task']} cases per task"),
        f"Inputs: {result.inputs}."
        + (f" Preparing them took {cfg['inputs_seconds']:.0f} s." if cfg.get("inputs_seconds") else ""),
        "Mean ± 95% confidence half-width over the cases (Student's t). In-box metrics are taken over the union of",
        "the edited objects' projected 3D boxes in the source and target frames; identity similarity is the cosine",
        (f"similarity of {result.descriptor} descriptors of each edited object's target box in the render and the ground truth."
         if result.identity_available else "similarity of descriptors of each edited object's target box: n/a (no DINO weights given)."),
        "LPIPS: " + ("AlexNet, v0.1 calibration." if result.lpips_available else "n/a (no backbone weights on disk)."),
        "A case whose edit could not be applied to the inputs (an edited object extraction did not find, a target its",
        "floor cannot hold) is scored with the source frame for every method and counted under *failed*.",
        "",
    ]
    table = margins(result)
    if any(table.values()):
        lines += ["## In-box PSNR margins", "",
                  "Each model's in-box PSNR and its margin over each baseline, paired per case (mean ± 95% CI, dB).", "",
                  *_margin_table(result, table, False), ""]
        if any(failed for failed, _ in failures.values()):
            lines += ["The same over the cases whose edit was applied to the inputs:", "",
                      *_margin_table(result, margins(result, applied_only=True), True), ""]
    header = ("| method | " + " | ".join(title + (" ↑" if up else " ↓") for title, up in METRICS.values())
              + " | cases | failed |")
    rule = "|---|" + "---|" * (len(METRICS) + 2)
    for task in result.tasks:
        lines += [f"## {task}", "", header, rule]
        for method in result.methods:
            stats = summary[task][method]
            cells = [table_cell(stats[k], k, result.lpips_available, result.identity_available) for k in METRICS]
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {stats['psnr']['n']} | {failures[task][0]} |")
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
    gaps = {model: {b: {t: {k: json_number(round(v, 5) if isinstance(v, float) else v) for k, v in stats.items()}
                        for t, stats in per_task.items()} for b, per_task in per.items()} for model, per in margins(result).items()}
    return {"format_version": FORMAT_VERSION, "config": result.config, "inputs": result.inputs, "methods": result.methods,
            "tasks": result.tasks, "lpips_available": result.lpips_available,
            "identity_available": result.identity_available, "descriptor": result.descriptor,
            "summary": summary, "failed": result.failures(), "margins_psnr_box": gaps, "cases": rows}


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


def margin_chart(result: BenchmarkResult, path: str | os.PathLike) -> Path | None:
    """Bars of each model's in-box PSNR minus each baseline's per task (paired, 95% CI); None without a model."""
    table = margins(result)
    bars = [(f"{m} − {b}", per_task) for m, per in table.items() for b, per_task in per.items()]
    if not bars:
        return None
    width = 0.8 / len(bars)
    x = np.arange(len(result.tasks))
    with saved_figure(path, figsize=(max(6.0, 1.1 * len(result.tasks) + 2), 3.6), dpi=110) as (_, ax):
        for j, (label, per_task) in enumerate(bars):
            means = [per_task[t]["mean"] for t in result.tasks]
            errs = [0.0 if math.isnan(per_task[t]["ci95"]) else per_task[t]["ci95"] for t in result.tasks]
            ax.bar(x + (j - (len(bars) - 1) / 2) * width, means, width, yerr=errs, capsize=2, label=label)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(x, result.tasks, rotation=30, ha="right")
        ax.set_ylabel("in-box PSNR margin (dB)")
        ax.set_title(f"model minus baseline, in box ({result.inputs.split(':')[0]} inputs)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, ncol=min(4, len(bars)))
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
                    ax.set_ylabel(f"{'clip' if result.config.get('dataset') else 'seed'} {example.seed}", fontsize=8)
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
        if (key == "lpips" and not result.lpips_available) or (key == "identity" and not result.identity_available):
            continue
        written.append(bar_chart(result, key, folder / f"{stem}_{key}.png"))
    chart = margin_chart(result, folder / f"{stem}_margins.png")
    if chart is not None:
        written.append(chart)
    for task in result.tasks:
        grid = example_grid(result, task, folder / f"{stem}_examples_{task}.png")
        if grid is not None:
            written.append(grid)
    return written


def sweep_table(results: list[tuple[str, float, BenchmarkResult]], key: str = "psnr_box") -> dict:
    """kind -> {"levels": [...], "means": task -> method -> [mean per level], "failed": task -> [failed per level]}.

    Args:
        results: (kind, level, result) for every run of a sweep, levels of a kind in order.
    """
    out: dict = {}
    for kind, level, result in results:
        entry = out.setdefault(kind, {"levels": [], "means": {}, "failed": {}})
        entry["levels"].append(level)
        summary, failures = result.summary(), result.failures()
        for task in result.tasks:
            for method in result.methods:
                entry["means"].setdefault(task, {}).setdefault(method, []).append(summary[task][method][key]["mean"])
            entry["failed"].setdefault(task, []).append(failures[task][0])
    return out


def sweep_markdown(results: list[tuple[str, float, BenchmarkResult]]) -> str:
    """A robustness sweep as markdown: per kind of noise, in-box PSNR per level, task and method."""
    from ..data.perturbations import PERTURBATIONS

    first = results[0][2]
    table = sweep_table(results)
    lines = ["# Pose-edit benchmark: robustness to noisy inputs", "",
             run_description(first.config, f"up to {first.config['cases_per_task']} cases per task"),
             "Every method gets the generator's exact inputs with one kind of noise at a time "
             "(neuralassets/data/perturbations.py); the edit is applied to the noisy scene as a user's would be "
             "(neuralassets/benchmark/inputs.py). Mean in-box PSNR (dB) over the cases; *mean* averages the tasks.", ""]
    for kind, entry in table.items():
        levels = entry["levels"]
        lines += [f"## {kind} ({PERTURBATIONS[kind].unit})", "",
                  "| task | method | " + " | ".join(f"{v:g}" for v in levels) + " |", "|---|---|" + "---|" * len(levels)]
        for task, per_method in entry["means"].items():
            for method, means in per_method.items():
                lines.append(f"| {task} | {method} | " + " | ".join(f"{m:.2f}" for m in means) + " |")
        for method in first.methods:
            mean = np.nanmean([entry["means"][t][method] for t in entry["means"]], axis=0)
            lines.append(f"| mean | {method} | " + " | ".join(f"{m:.2f}" for m in mean) + " |")
        lines.append("")
    return "\n".join(lines)


def sweep_chart(results: list[tuple[str, float, BenchmarkResult]], path: str | os.PathLike) -> Path:
    """In-box PSNR against each noise level: a row of panels per kind, one per task and their mean, a line per method."""
    from ..data.perturbations import PERTURBATIONS

    table = sweep_table(results)
    methods = results[0][2].methods
    tasks = [*results[0][2].tasks, "mean"]
    with saved_figure(path, len(table), len(tasks), figsize=(2.3 * len(tasks), 2.1 * len(table)), dpi=100,
                      squeeze=False) as (fig, axes):
        for r, (kind, entry) in enumerate(table.items()):
            for c, task in enumerate(tasks):
                ax = axes[r, c]
                for method in methods:
                    if task == "mean":
                        values = np.nanmean([entry["means"][t][method] for t in entry["means"]], axis=0)
                    else:
                        values = entry["means"][task][method]
                    ax.plot(entry["levels"], values, marker="o", markersize=3, label=method)
                ax.axvline(PERTURBATIONS[kind].clean, color="grey", linewidth=0.6, linestyle=":")
                ax.grid(alpha=0.3)
                ax.tick_params(labelsize=7)
                if r == 0:
                    ax.set_title(task, fontsize=9)
                if c == 0:
                    ax.set_ylabel(f"{kind}\nin-box PSNR (dB)", fontsize=8)
                ax.set_xlabel(PERTURBATIONS[kind].unit, fontsize=7)
        axes[0, -1].legend(fontsize=7)
    return Path(path)


def write_sweep_report(results: list[tuple[str, float, BenchmarkResult]], folder: str | os.PathLike,
                       stem: str = "pose_edit-robustness") -> list[Path]:
    """Write a robustness sweep's markdown, JSON and chart; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, js, png = folder / f"{stem}.md", folder / f"{stem}.json", folder / f"{stem}.png"
    md.write_text(sweep_markdown(results) + "\n")
    runs = [{"kind": kind, "level": level, **to_json(result)} for kind, level, result in results]
    js.write_text(json.dumps({"format_version": FORMAT_VERSION, "runs": runs}, indent=1) + "\n")
    return [md, js, sweep_chart(results, png)]

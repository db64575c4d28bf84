"""Render time under CPU contention: torch's default thread count against the command line's choice.

    python benchmarks/threads.py [--repeats 7] [--competitors 0 1 2] [--out benchmarks/results/threads.md]

For each number of busy neighbours (processes spinning a pure Python loop, one core each),
one edit of a validation scene is rendered with the shipped weights at every thread count
from 1 to the usable cores; the table gives the median and the spread of ``--repeats`` renders
and marks torch's default and what :func:`neuralassets.cli.choose_threads` picks. The rule
reads the 1-minute load average, which lags a new neighbour by a minute, so it is given the
load the machine settles at: its load before the run plus the neighbours.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch


def render_once(pipe, scene) -> float:
    start = time.perf_counter()
    pipe(scene, target_frame=0, generator=torch.Generator().manual_seed(0), output_type="np")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="renders per setting (after one warm-up)")
    parser.add_argument("--competitors", type=int, nargs="*", default=[0, 1, 2], help="busy neighbours to run beside it")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)

    import neuralassets.cli as cli
    from neuralassets import edits
    from neuralassets.data import generate_scene, split_seed
    from neuralassets.pipelines import NeuralAssetsPipeline

    torch_default = cli._TORCH_DEFAULT_THREADS
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    pipe = NeuralAssetsPipeline.from_pretrained(None)
    scene = generate_scene(split_seed("val", 0), frames=[0])
    scene = edits.move(scene, scene.assets[0].id, (0.2, 0.0, 0.0), check_visibility="ignore")
    base_load = os.getloadavg()[0]
    lines = [f"{cores} usable cores, torch's default {torch_default} threads, load average {base_load:.2f} before the run; "
             f"median (min-max) of {args.repeats} renders of one 128x128 edit, ms", "",
             "| busy neighbours | threads | render ms | torch default | choose_threads |", "|---|---|---|---|---|"]
    for competitors in args.competitors:
        neighbours = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(competitors)]
        try:
            time.sleep(1.0)
            chosen = cli.choose_threads({}, cores=cores, load=base_load + competitors)
            for threads in range(1, cores + 1):
                torch.set_num_threads(threads)
                render_once(pipe, scene)
                times = [1000 * render_once(pipe, scene) for _ in range(args.repeats)]
                lines.append(f"| {competitors} | {threads} | {statistics.median(times):.0f} ({min(times):.0f}-{max(times):.0f}) | "
                             f"{'yes' if threads == torch_default else ''} | {'yes' if threads == chosen else ''} |")
                print(lines[-1], flush=True)
        finally:
            for p in neighbours:
                p.kill()
                p.wait()
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        Path(args.out).write_text("# Render time under CPU contention\n\n`python benchmarks/threads.py`\n\n" + table + "\n")


if __name__ == "__main__":
    main()

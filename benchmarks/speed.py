"""Speed benchmarks, one function per section; each returns table rows and ``main`` prints them.

    python benchmarks/speed.py                      # every section
    python benchmarks/speed.py --sections generator --threads 2

Cores are often shared: compare numbers taken in one run, and rerun when the machine is quiet.
"""

from __future__ import annotations

import argparse
import time

import torch


def _best_of(fn, repeats: int) -> float:
    """Fastest wall time in seconds of ``repeats`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def generator_section(quick: bool = False) -> list[dict]:
    """Synthetic generator throughput: frames/s of rendering with all ground truth, and pair sampling."""
    from torch.utils.data import DataLoader

    from neuralassets.data import GeneratorConfig, render_scene, sample_scene_spec
    from neuralassets.data.pairs import FramePairDataset, collate_pairs

    repeats = 1 if quick else 3
    seeds = range(2 if quick else 6)
    rows = []
    for size, objects, supersample in ((128, 6, False), (128, 10, False), (128, 6, True), (64, 6, False), (256, 6, False)):
        if quick and size != 128:
            continue
        config = GeneratorConfig(image_size=size, min_objects=objects, max_objects=objects, supersample=supersample)
        specs = [sample_scene_spec(seed, config) for seed in seeds]
        seconds = _best_of(lambda: [render_scene(s) for s in specs], repeats)  # noqa: B023
        frames = sum(s.num_frames for s in specs)
        rows.append({"what": f"render + ground truth, {size}x{size}, {objects} objects{', 2x2 supersampled' if supersample else ''}",
                     "frames/s": round(frames / seconds, 1)})
    config = GeneratorConfig(min_objects=6, max_objects=6)
    sample_seconds = _best_of(lambda: [sample_scene_spec(s, config) for s in seeds], repeats)
    rows.append({"what": "sample scene spec (24 frames, 6 objects), scenes/s", "frames/s": round(len(seeds) / sample_seconds, 1)})
    count = 16 if quick else 64
    pairs = FramePairDataset("train", count, max_objects=10)
    pair_seconds = _best_of(lambda: [pairs[i] for i in range(count)], 1)
    rows.append({"what": "training pairs (sample + render 2 frames + conditioning), pairs/s",
                 "frames/s": round(count / pair_seconds, 1)})
    loader = DataLoader(pairs, batch_size=8, num_workers=2, collate_fn=collate_pairs, persistent_workers=True)
    loader_seconds = _best_of(lambda: list(loader), 1)
    rows.append({"what": "training pairs through DataLoader, 2 workers x 1 thread, pairs/s",
                 "frames/s": round(count / loader_seconds, 1)})
    return rows


SECTIONS = {"generator": generator_section}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and configurations")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in args.sections:
        rows = SECTIONS[name](quick=args.quick)
        print(f"\n## {name} ({args.threads} threads)\n")
        keys = list(rows[0])
        print("| " + " | ".join(keys) + " |")
        print("|" + "---|" * len(keys))
        for row in rows:
            print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()

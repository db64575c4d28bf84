"""The pose-edit benchmark: baselines and neural assets models on exact re-renders of held-out scenes.

Usage::

    python benchmarks/pose_edit.py --quick                     # smoke test, a few cases per task
    python benchmarks/pose_edit.py                             # full run: 200 cases per task, test split
    python benchmarks/pose_edit.py --model weights --model runs/exp1/final
    python benchmarks/pose_edit.py --split val --cases 50      # for model iteration
    python benchmarks/pose_edit.py --seeds 3000000:3000100 --gen min_objects=8   # hidden cases
    python benchmarks/pose_edit.py --model weights --gen max_objects=9 --inputs extracted   # what a user gets
    python benchmarks/pose_edit.py --model weights --gen max_objects=9 --inputs perturbed --perturb depth_scale=1.1
    python benchmarks/pose_edit.py --model weights --gen max_objects=9 --inputs perturbed --sweep --cases 8

The same as ``neuralassets bench``; writes benchmarks/results/pose_edit.{md,json} (with
``--inputs extracted`` pose_edit-extracted.*, perturbed pose_edit-perturbed.*, a sweep
pose_edit-robustness.*) with bar charts and example grids.
"""

from __future__ import annotations

import argparse
import sys

from neuralassets.commands.bench import add_arguments, run
from neuralassets.errors import NeuralAssetsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except NeuralAssetsError as e:
        print(f"pose_edit: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

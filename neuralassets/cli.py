"""The ``neuralassets`` command line.

Each subcommand lives in :mod:`neuralassets.commands` as a module with a
``register(subparsers)`` function; heavy libraries are imported only when a command runs,
so ``neuralassets --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import NeuralAssetsError

#: Subcommand modules under neuralassets.commands, in the order --help lists them.
COMMANDS = ["demo", "scene", "extract", "edit", "editor", "train", "bench", "data"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuralassets",
        description="Object-centric image and video editing with neural assets.",
    )
    parser.add_argument("--version", action="version", version=f"neuralassets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"neuralassets.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except NeuralAssetsError as e:
        print(f"neuralassets {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

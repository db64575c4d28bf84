"""The ``neuralassets`` command line.

Each subcommand lives in :mod:`neuralassets.commands` as a module with a
``register(subparsers)`` function; heavy libraries are imported only when a command runs,
so ``neuralassets --help`` stays fast.

Before a command runs, torch gets the number of CPU threads :func:`choose_threads` picks, so
a render does not fight other busy processes for the same cores.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import warnings
from collections.abc import Mapping

import torch

from . import __version__
from .errors import ConfigError, NeuralAssetsError

#: Subcommand modules under neuralassets.commands, in the order --help lists them.
COMMANDS = ["demo", "scene", "extract", "edit", "editor", "train", "bench", "data"]
#: Environment variable giving the number of CPU threads torch uses in ``neuralassets`` commands.
THREADS_ENV = "NEURALASSETS_THREADS"
#: Exit status after the reader of our output went away (``| head``): 128 + SIGPIPE, as a shell reports it.
EXIT_BROKEN_PIPE = 141

_TORCH_DEFAULT_THREADS = torch.get_num_threads()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuralassets",
        description="Object-centric image and video editing with neural assets.",
        epilog=f"CPU threads: {THREADS_ENV}=N sets them; otherwise OMP_NUM_THREADS when set, else the cores this "
               "process may use less those other processes keep busy (1-minute load average), at least 1.",
    )
    parser.add_argument("--version", action="version", version=f"neuralassets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"neuralassets.commands.{name}").register(sub)
    return parser


def choose_threads(environ: Mapping[str, str] | None = None, cores: int | None = None, load: float | None = None) -> int:
    """How many CPU threads torch should use in this process.

    :data:`THREADS_ENV` when set; else ``OMP_NUM_THREADS`` when set (its first number); else
    the cores this process may run on (``os.sched_getaffinity``) less the cores other
    processes keep busy (the 1-minute load average, rounded), at least 1 and at most torch's
    own default (its count of physical cores). OpenMP threads that share a core with another
    busy process wait for each other at every parallel step: on 2 cores with one busy
    neighbour, 2 threads render about 3x slower than 1 (``benchmarks/threads.py``).

    Args:
        environ: the environment (default ``os.environ``).
        cores: usable CPU cores (default: ``os.sched_getaffinity``, else ``os.cpu_count()``).
        load: busy cores (default: ``os.getloadavg()[0]``, 0 where the system has none).

    Raises:
        ConfigError: :data:`THREADS_ENV` is not a positive integer.
    """
    environ = os.environ if environ is None else environ
    if environ.get(THREADS_ENV):
        text = environ[THREADS_ENV]
        if not text.strip().isdigit() or int(text) < 1:
            raise ConfigError(f"{THREADS_ENV}={text!r}: expected a positive integer (the number of CPU threads)")
        return int(text)
    omp = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if omp.isdigit() and int(omp) >= 1:
        return int(omp)
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    free = cores - math.floor(load + 0.5)
    return max(1, min(free, _TORCH_DEFAULT_THREADS))


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here rather than as a traceback when Python exits
    except BrokenPipeError:
        # The reader went away (`neuralassets scene info s1 | head -1`): stop quietly, as other tools do.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        torch.set_num_threads(choose_threads())
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(args.command)
            return int(args.run(args) or 0)
    except NeuralAssetsError as e:
        print(f"neuralassets {args.command}: error: {e}", file=sys.stderr)
        return 2


def _warning_printer(command: str):
    """A ``warnings.showwarning`` that says a warning as the command's own line, without the source file and line
    that Python's default format puts first (a path inside the installed package tells a user nothing)."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"neuralassets {command}: warning: {message}", file=file or sys.stderr)
    return show


if __name__ == "__main__":
    sys.exit(main())

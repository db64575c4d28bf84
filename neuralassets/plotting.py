"""One way to make a chart file: matplotlib's non-interactive back end, saved and closed even on error."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def saved_figure(path: str | os.PathLike, nrows: int = 1, ncols: int = 1, **subplots_kwargs: Any) -> Iterator[tuple[Any, Any]]:
    """Yield ``(fig, axes)`` from ``plt.subplots``; on exit lay the figure out, write it to ``path`` and close it.

    The Agg back end is selected first, so charts render on machines without a display. The
    figure is closed even when the body raises (then nothing is written), so a failed chart
    does not leak memory across a long benchmark.

    Args:
        path: the image file to write (format from its suffix).
        nrows, ncols: the subplot grid.
        **subplots_kwargs: passed to ``plt.subplots`` (``figsize``, ``dpi``, ``squeeze``, ...).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, **subplots_kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)

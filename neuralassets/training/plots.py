"""Training plots: the loss curve and image grids (PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from ..image_ops import to_numpy_image
from ..plotting import saved_figure


def save_image_grid(path: Path, columns: list[Tensor], pad: int = 2) -> None:
    """Write a PNG whose rows are examples and whose columns are the given image batches.

    Args:
        path: output file.
        columns: each (B, 3, H, W) float in [0, 1], all the same shape.
    """
    B, _, H, W = columns[0].shape
    grid = torch.ones(3, B * (H + pad) + pad, len(columns) * (W + pad) + pad)
    for j, images in enumerate(columns):
        for i in range(B):
            y, x = pad + i * (H + pad), pad + j * (W + pad)
            grid[:, y:y + H, x:x + W] = images[i].detach().float().cpu().clamp(0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_numpy_image(grid)).save(path)


def save_loss_curve(log_path: Path, out_path: Path) -> None:
    """Plot ``loss`` against ``step`` from a JSON-lines training log (log-scale y)."""
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    records = [r for r in records if "loss" in r]
    if not records:
        return
    with saved_figure(out_path, figsize=(6, 3.5), dpi=100) as (_, ax):
        ax.plot([r["step"] for r in records], [r["loss"] for r in records])
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)

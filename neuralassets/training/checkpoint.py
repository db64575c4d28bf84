"""Atomic, pickle-free training checkpoints.

A checkpoint is one safetensors file ``step_XXXXXXXX.safetensors``: every tensor (model,
EMA, optimiser state, RNG states) is a named tensor, and everything else (step, data
position, optimiser hyper-parameters, the run's config) is JSON in the file's metadata.
It is written to a temporary file, fsynced and moved into place with ``os.replace``, so a
crash never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import WeightsError

FORMAT = "neuralassets-checkpoint"
VERSION = 1
_NAME = re.compile(r"^step_(\d{8})\.safetensors$")


def flatten_optimizer_state(state_dict: dict) -> tuple[dict[str, Tensor], dict]:
    """Split ``optimizer.state_dict()`` into named tensors and a JSON-ready rest.

    Returns:
        tensors ``"optimizer.state.<param>.<key>"``, and ``{"param_groups": ..., "scalars": ...}``.
    """
    tensors, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.state.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, Tensor], meta: dict) -> dict:
    """Inverse of :func:`flatten_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer.state."):
            index, key = name[len("optimizer.state."):].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder: Path, step: int, tensors: dict[str, Tensor], meta: dict, keep: int) -> Path:
    """Write ``folder/step_<step>.safetensors`` atomically and delete all but the newest ``keep``.

    Args:
        folder: checkpoint folder (created if needed).
        step: the optimiser step the checkpoint is taken after.
        tensors: named tensors (copied to contiguous CPU tensors).
        meta: JSON-ready metadata.
        keep: how many checkpoints to keep.

    Returns:
        the checkpoint's path.

    Raises:
        OSError: the write failed (e.g. the disk is full); the message names the checkpoint,
            the partial temporary file is removed and earlier checkpoints are untouched.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:08d}.safetensors"
    tmp = folder / f".{path.name}.tmp"
    header = {"format": FORMAT, "version": str(VERSION), "meta": json.dumps({**meta, "step": step})}
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=header)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    except (OSError, SafetensorError) as e:  # e.g. a full disk; safetensors reports I/O errors as SafetensorError
        tmp.unlink(missing_ok=True)
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise OSError(f"{path}: checkpoint not written ({reason}); earlier checkpoints are kept") from e
    os.replace(tmp, path)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest first (empty when the folder does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def load_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict]:
    """Read a checkpoint: its tensors and its metadata (with ``"step"``).

    Raises:
        WeightsError: missing, unreadable or not a checkpoint of this format version.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint file is missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for truncated or corrupt files
        raise WeightsError(f"{path}: cannot read checkpoint: {e}") from e
    if header.get("format") != FORMAT or header.get("version") != str(VERSION):
        raise WeightsError(f"{path}: not a {FORMAT} version {VERSION} file "
                           f"(format {header.get('format')!r}, version {header.get('version')!r})")
    return tensors, json.loads(header["meta"])


def prefixed(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries under ``prefix`` with the prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


class ExponentialMovingAverage:
    """Float32 shadow copy of a module's parameters, updated as ``ema += (1 - decay) * (param - ema)``.

    The effective decay warms up as ``min(decay, (1 + n) / (10 + n))`` over the first updates
    so early weights are not averaged with the random initialisation for long.
    """

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: v.detach().float().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        self.num_updates += 1
        decay = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        averaged: list[tuple[torch.Tensor, torch.Tensor]] = []
        for name, value in module.state_dict().items():
            shadow = self.shadow[name]
            if shadow.device != value.device:  # the module was moved (to the accelerator) after the copy was made
                shadow = self.shadow[name] = shadow.to(value.device)
            if value.is_floating_point():
                averaged.append((shadow, value.float()))
            else:
                shadow.copy_(value)
        if averaged:  # one fused kernel per device instead of one per tensor: this runs every step
            shadows, values = zip(*averaged)
            torch._foreach_lerp_(list(shadows), list(values), 1.0 - decay)

    def copy_to(self, module: torch.nn.Module) -> None:
        """Load the averaged weights into ``module`` (same architecture)."""
        module.load_state_dict(self.shadow)

"""Weight files: safetensors read into modules, written in shards, int8 recognised.

A weights file is one safetensors file, or shards named
``<stem>-00001-of-0000N.safetensors`` beside it that ``<file>.index.json`` lists
(``{"weight_map": {tensor name: shard file}}``). Int8 tensors
(:mod:`~neuralassets.models.quantization`) are dequantised on reading. Nothing is ever
unpickled: a pickle-based file where weights should be is named in the error and left closed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError
from ..jsonio import read_json, write_json
from .quantization import SCALE_SUFFIX, dequantize_state

#: Weight files that would have to be unpickled; they are refused, never opened.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def weight_files(path: Path) -> list[Path]:
    """The files that hold the weights of ``path``: itself, or the shards its ``<path>.index.json`` lists.

    Raises:
        WeightsError: neither exists (a pickle-based file in its place is named), the index
            names a shard outside its folder or none at all, or a listed shard is missing.
    """
    index = path.with_name(path.name + ".index.json")
    if path.is_file():
        return [path]
    if not index.is_file():
        pickled = sorted(p.name for p in path.parent.glob("*") if p.suffix in PICKLE_SUFFIXES)
        hint = f" ({', '.join(pickled)} there is pickle-based and is never loaded: convert it to safetensors)" if pickled else ""
        raise WeightsError(f"{path}: weights file is missing{hint}")
    weight_map = read_json(index, WeightsError, "file is missing").get("weight_map", {})
    names = sorted(set(weight_map.values()))
    if not names or any(Path(n).name != n for n in names):
        raise WeightsError(f"{index}: weight_map must name shard files in its own folder")
    for name in names:
        if not (path.parent / name).is_file():
            raise WeightsError(f"{path.parent / name}: weights shard is missing (listed in {index.name})")
    return [path.parent / n for n in names]


def is_quantized(path: Path) -> bool:
    """Whether the weights of ``path`` (:func:`weight_files`) hold int8 scales.

    Only the tensor names are read; missing or unreadable weights count as not quantised
    (the loader that follows names the problem).
    """
    from safetensors import safe_open

    try:
        for f in weight_files(path):
            with safe_open(str(f), framework="pt") as opened:
                if any(name.endswith(SCALE_SUFFIX) for name in opened.keys()):
                    return True
    except Exception:  # WeightsError or safetensors' own error types
        return False
    return False


def load_weights(module: nn.Module, path: Path, allow_missing: tuple[str, ...] = ()) -> None:
    """Load a safetensors file (or its shards) into ``module``, upcasting to the module's dtypes.

    Args:
        module: receives the weights.
        path: the safetensors file (or the first name of its shards).
        allow_missing: prefixes of tensors that may be absent from the file; they keep the
            module's own values (used to add zero-initialised parts to trained weights).

    Raises:
        WeightsError: the file is missing or unreadable, or a tensor is missing, unexpected
            or of the wrong shape (named with the file). Only safetensors is read: a pickle-based
            file (:data:`PICKLE_SUFFIXES`) in its place is named in the message and never opened.
    """
    stored = read_weights(path)
    expected = module.state_dict()
    missing = sorted(k for k in set(expected) - set(stored) if not k.startswith(allow_missing))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise WeightsError(f"{path}: weights do not match the config: missing tensor(s) {missing[:5]}, "
                           f"unexpected tensor(s) {unexpected[:5]}")
    for name, value in stored.items():
        if value.shape != expected[name].shape:
            raise WeightsError(f"{path}: tensor {name!r} has shape {tuple(value.shape)}, "
                               f"the config expects {tuple(expected[name].shape)}")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in stored.items()}, strict=not allow_missing)


def save_weights(state: dict[str, torch.Tensor], path: Path, max_shard_bytes: int | None = None) -> None:
    """Write ``state`` to the safetensors file ``path``, or to shards of at most ``max_shard_bytes``.

    Shards are named ``<stem>-00001-of-0000N.safetensors`` beside ``path`` and listed in
    ``<path>.index.json`` (``{"weight_map": {tensor name: shard file}}``); a tensor larger
    than the limit gets a shard of its own.
    """
    from safetensors.torch import save_file

    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, value in state.items():
        nbytes = value.numel() * value.element_size()
        if max_shard_bytes is not None and shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = value
        size += nbytes
    if len(shards) == 1:
        save_file(state, str(path), metadata={"format": "pt"})
        return
    stem = path.name.removesuffix(".safetensors")
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"{stem}-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path.with_name(name)), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(v.numel() * v.element_size() for v in state.values())
    write_json(path.with_name(path.name + ".index.json"), {"metadata": {"total_size": total}, "weight_map": weight_map})


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read the safetensors file ``path``, or the shards its ``<path>.index.json`` lists (int8 tensors dequantised).

    Raises:
        WeightsError: neither exists (a pickle-based file in its place is named, never opened),
            a shard is missing, named outside the folder, truncated or corrupt.
    """
    from safetensors.torch import load_file

    stored: dict[str, torch.Tensor] = {}
    for f in weight_files(path):
        try:
            stored.update(load_file(str(f)))
        except Exception as e:  # safetensors raises its own error types for truncated or corrupt files
            raise WeightsError(f"{f}: cannot read safetensors weights: {e}") from e
    try:
        return dequantize_state(stored)
    except KeyError as e:
        raise WeightsError(f"{path}: int8 scales for tensor {e.args[0]!r}, which is not stored") from None

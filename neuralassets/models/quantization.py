"""Int8 weight storage: a quarter of float32 on disk, dequantised to float on load.

Matrices and convolution kernels (2 or more dimensions, at least :data:`MIN_NUMEL` numbers)
are stored as int8 with one float32 scale per output row (symmetric, max-abs:
``w ≈ q * scale``, ``|error| <= scale / 2``); everything else (biases, norms, embeddings
of one dimension) is stored as bfloat16. Compute stays in float: this is a storage format,
for a shipped model that must stay small.

Example:
    >>> import torch
    >>> w = torch.tensor([[1.0, -0.5] * 1024, [0.25, 0.0] * 1024])
    >>> state = quantize_state({"w": w})
    >>> state["w"].dtype, state["w"][:, :2].tolist()
    (torch.int8, [[127, -64], [127, 0]])
    >>> bool((dequantize_state(state)["w"] - w).abs().max() <= 0.5 / 127)
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

SCALE_SUFFIX = ".int8_scale"  # key of a quantised tensor's per-row scales: "<tensor name>.int8_scale"
MIN_NUMEL = 1024  # smaller tensors are not worth a scale vector


def quantize_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Float state dict -> int8 matrices with per-row scales, other floats in bfloat16.

    Args:
        state: name -> tensor; non-float tensors pass through unchanged.

    Returns:
        name -> int8 tensor (same shape) plus ``name + SCALE_SUFFIX`` -> (rows,) float32 for
        each quantised tensor; other floats as bfloat16.
    """
    out: dict[str, Tensor] = {}
    for name, value in state.items():
        if not value.is_floating_point():
            out[name] = value
        elif value.ndim >= 2 and value.numel() >= MIN_NUMEL:
            rows = value.float().flatten(1)
            scale = rows.abs().amax(dim=1).clamp(min=1e-12) / 127
            out[name] = (rows / scale[:, None]).round().clamp(-127, 127).to(torch.int8).view(value.shape).contiguous()
            out[name + SCALE_SUFFIX] = scale.contiguous()
        else:
            out[name] = value.to(torch.bfloat16).contiguous()
    return out


def dequantize_state(stored: dict[str, Tensor]) -> dict[str, Tensor]:
    """Undo :func:`quantize_state`: int8 tensors with a scale entry become float32 (others unchanged).

    Raises:
        KeyError: a scale entry names a tensor that is not stored (a damaged file).
    """
    out = {k: v for k, v in stored.items() if not k.endswith(SCALE_SUFFIX)}
    for key, scale in stored.items():
        if key.endswith(SCALE_SUFFIX):
            name = key[: -len(SCALE_SUFFIX)]
            q = out[name]
            out[name] = (q.float().flatten(1) * scale.float()[:, None]).view(q.shape)
    return out


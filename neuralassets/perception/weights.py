"""Loading transformers checkpoints for perception, with one error for every way it can fail."""

from __future__ import annotations

import os

from ..errors import WeightsError


def load_model_and_processor(model_class, processor_class, name_or_path: str | os.PathLike, what: str):
    """``model_class.from_pretrained`` and ``processor_class.from_pretrained`` on one folder or cached hub id.

    Raises:
        WeightsError: naming the folder and ``what`` was expected (e.g. "a SAM 2 video checkpoint").
    """
    from safetensors import SafetensorError

    try:
        return model_class.from_pretrained(name_or_path), processor_class.from_pretrained(name_or_path)
    # missing or unreadable files, a config of another model, truncated or mismatched weights
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
        raise WeightsError(f"{name_or_path}: cannot load {what} ({type(e).__name__}: {e})") from None

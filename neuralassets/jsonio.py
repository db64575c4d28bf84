"""JSON metadata files: read with errors that name the file, written in one stable layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import NeuralAssetsError


def read_json(path: Path, error: type[NeuralAssetsError], missing: str) -> Any:
    """Parse the JSON file ``path``.

    Args:
        path: the file.
        error: the exception class to raise (e.g. ``SceneFormatError``).
        missing: what to say after the path when the file does not exist.

    Raises:
        error: the file is missing (``"<path>: <missing>"``) or not valid JSON.
    """
    if not path.is_file():
        raise error(f"{path}: {missing}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e})") from None


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` as JSON with sorted keys, indented, so saved configs diff cleanly."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

"""JSON metadata files: read with errors that name the file, written in one stable layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import NeuralAssetsError

#: Deepest nesting of arrays and objects accepted in a JSON file. The files this library writes
#: nest fewer than 10 levels; deeper values would overflow the recursion of copying and saving them.
MAX_JSON_DEPTH = 100


def read_json(path: Path, error: type[NeuralAssetsError], missing: str) -> Any:
    """Parse the JSON file ``path``.

    Args:
        path: the file.
        error: the exception class to raise (e.g. ``SceneFormatError``).
        missing: what to say after the path when the file does not exist.

    Raises:
        error: the file is missing (``"<path>: <missing>"``), not valid JSON, or nested more
            than :data:`MAX_JSON_DEPTH` levels deep.
    """
    if not path.is_file():
        raise error(f"{path}: {missing}")
    too_deep = f"{path}: JSON nested more than {MAX_JSON_DEPTH} levels deep; not a file this library writes"
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e})") from None
    except RecursionError:  # the parser gives up thousands of levels down
        raise error(too_deep) from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise error(too_deep)
    return data


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` as JSON with sorted keys, indented, so saved configs diff cleanly."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

"""What the editor shows of a state: images, the object table, choices and the edit history.

:func:`view` is a pure function of an :class:`~neuralassets.editor.state.EditorState`;
the UI calls it after every callback, so what a user sees can be tested without a browser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import edits, geometry
from .overlay import display_scale, draw_scene, enlarge
from .state import EditorState

#: Columns of the object table.
OBJECT_COLUMNS = ["id", "name", "x (m)", "y (m)", "z (m)", "yaw (°)", "size (m)"]


@dataclass
class EditorView:
    """Everything the UI displays.

    Attributes:
        scene_image: (H*s, W*s, 3) uint8 shown frame with masks, projected boxes and ids, or None.
        before: (H*s, W*s, 3) uint8 the loaded scene's frame, or None.
        after: (H*s, W*s, 3) uint8 the latest render of the current scene, or None.
        scale: s, display pixels per scene pixel (clicks are divided by it).
        objects: rows of :data:`OBJECT_COLUMNS`, one per asset at the shown frame.
        choices: ``(label, id)`` per asset, for the object pickers.
        selected: selected asset id or None.
        num_frames: frames in the scene (0 when nothing is loaded).
        frame: the shown frame.
        history: the edit history, one numbered line per edit.
        title: what is loaded.
    """

    scene_image: np.ndarray | None
    before: np.ndarray | None
    after: np.ndarray | None
    scale: int
    objects: list[list]
    choices: list[tuple[str, int]]
    selected: int | None
    num_frames: int
    frame: int
    history: str
    title: str


def view(state: EditorState) -> EditorView:
    """The view of ``state``."""
    if not state.loaded:
        return EditorView(None, None, None, 1, [], [], None, 0, 0, "", "nothing loaded")
    scene, t = state.scene, state.frame
    rows = []
    for a in scene.assets:
        c = a.centers[t].tolist()
        yaw = math.degrees(float(geometry.yaw_of(a.rotations[t])))
        size = " × ".join(f"{s:.2f}" for s in a.sizes[t].tolist())
        rows.append([a.id, a.name, round(c[0], 2), round(c[1], 2), round(c[2], 2), round(yaw, 1), size])
    scale = display_scale(scene.height, scene.width)
    steps = edits.history(scene)
    history = "\n".join(f"{i + 1}. {e.op} {_short(e.args)}" for i, e in enumerate(steps)) or "no edits yet"
    return EditorView(
        scene_image=draw_scene(scene.frames[t], scene, t, state.selected, marker=state.drag_from),
        before=enlarge(state.original.frames[t], scale),
        after=enlarge(state.rendered, scale) if state.render_is_current else None,
        scale=scale, objects=rows, choices=[(f"{a.id}: {a.name}", a.id) for a in scene.assets],
        selected=state.selected, num_frames=scene.num_frames, frame=t, history=history,
        title=f"{state.source_name}, frame {t}")


def _short(args: dict) -> str:
    """Edit arguments in one short line (vectors rounded, long values cut)."""
    parts = []
    for key, value in args.items():
        if key in ("check_visibility", "frames") or value is None:
            continue
        if isinstance(value, float):
            value = round(value, 3)
        elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            value = [round(v, 3) for v in value]
        text = str(value)
        parts.append(f"{key}={text if len(text) <= 40 else text[:37] + '...'}")
    return ", ".join(parts)

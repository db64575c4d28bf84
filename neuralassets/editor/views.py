"""What the editor shows of a state: images, the object table, choices and the edit history.

:func:`view` is a pure function of an :class:`~neuralassets.editor.state.EditorState`;
the UI calls it after every callback, so what a user sees can be tested without a browser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import edits, geometry
from .overlay import display_scale, draw_scene, enlarge, kept_map
from .state import EditorState

#: Columns of the object table.
OBJECT_COLUMNS = ["id", "name", "x (m)", "y (m)", "z (m)", "yaw (°)", "size (m)"]


@dataclass
class EditorView:
    """Everything the UI displays.

    Attributes:
        scene_image: (H*s, W*s, 3) uint8, the edited scene at the shown frame (see
            :func:`scene_picture`) with projected boxes and ids, or None.
        shows: what ``scene_image`` is a picture of, in words.
        before: (H*s, W*s, 3) uint8 the loaded scene's frame, or None.
        after: (H*s, W*s, 3) uint8 the latest render of the current scene, or None.
        kept: (H*s + LEGEND_HEIGHT, W*s, 3) uint8 map of the pixels ``after`` kept from the photo and
            those the model drew, with a legend (:func:`~neuralassets.editor.overlay.kept_map`), or None.
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
    shows: str
    before: np.ndarray | None
    after: np.ndarray | None
    kept: np.ndarray | None
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
        return EditorView(None, "", None, None, None, 1, [], [], None, 0, 0, "", "nothing loaded")
    scene, t = state.scene, state.frame
    rows = []
    for a in scene.assets:
        c = a.centers[t].tolist()
        yaw = math.degrees(float(geometry.yaw_of(a.rotations[t])))
        size = " × ".join(f"{s:.2f}" for s in a.sizes[t].tolist())
        rows.append([a.id, a.name, round(c[0], 2), round(c[1], 2), round(c[2], 2), round(yaw, 1), size])
    scale = display_scale(scene.height, scene.width)
    history = "\n".join(f"{i + 1}. {describe(e)}" for i, e in enumerate(edits.history(scene))) or "no edits yet"
    picture, shows = scene_picture(state)
    current = state.render_is_current
    return EditorView(
        scene_image=draw_scene(picture, scene, t, state.selected, marker=state.drag_from), shows=shows,
        before=enlarge(state.original.frames[t], scale),
        after=enlarge(state.rendered, scale) if current else None,
        kept=kept_map(state.rendered, state.kept) if current and state.kept is not None else None,
        scale=scale, objects=rows, choices=[(f"{a.id}: {a.name}", a.id) for a in scene.assets],
        selected=state.selected, num_frames=scene.num_frames, frame=t, history=history,
        title=f"{state.source_name}, frame {t}")


def scene_picture(state: EditorState) -> tuple:
    """The picture the scene view shows of the current scene at the shown frame, and what it is in words.

    The latest render when it is of the current scene and frame; else the re-render of the
    edited scene (``state.preview``: exact for a synthetic scene, geometric for others); else
    the photo, which shows an edited scene as it was before its edits (the boxes show where
    objects are now).

    Returns:
        ((3, H, W) float in [0, 1], description).
    """
    if state.render_is_current:
        return state.rendered, f"{state.rendered_backend} render of the edited scene"
    if state.preview_is_current:
        return state.preview[2], state.preview[3]
    if edits.history(state.scene):
        return state.scene.frames[state.frame], "the photo before the edits (boxes show the edits); press Render to see them"
    return state.scene.frames[state.frame], "the photo"


def _metres(values) -> str:
    return "(" + ", ".join(f"{float(v):.2f}" for v in values) + ") m"


def _degrees(radians: float) -> str:
    return f"{math.degrees(float(radians)):g}°"


def describe(edit: edits.Edit) -> str:
    """One line for an edit of the history, in the units the editor's controls use (metres, degrees, pixels)."""
    a = edit.args
    frames = "" if a.get("frames") is None else f" at frames {a['frames']}"
    if edit.op == "move":
        axes = "camera" if a.get("frame_of_reference") == "camera" else "world"
        text = f"move object {a['asset_id']} by {_metres(a['delta'])} ({axes} axes)"
    elif edit.op == "move_in_image":
        (u0, v0), (u1, v1) = a["from_uv"], a["to_uv"]
        text = f"drag object {a['asset_id']} along the floor from pixel ({u0:.0f}, {v0:.0f}) to ({u1:.0f}, {v1:.0f})"
    elif edit.op == "rotate":
        text = (f"rotate object {a['asset_id']} by yaw {_degrees(a['yaw'])}, pitch {_degrees(a['pitch'])}, "
                f"roll {_degrees(a['roll'])}")
    elif edit.op == "scale":
        factor = a["factor"]
        text = f"scale object {a['asset_id']} by ×{'/'.join(f'{f:g}' for f in factor) if isinstance(factor, list) else f'{factor:g}'}"
    elif edit.op == "remove":
        text = f"remove object {a['asset_id']}"
    elif edit.op == "swap_appearance":
        text = f"swap the looks of objects {a['id_a']} and {a['id_b']}"
    elif edit.op == "insert":
        text = f"insert object {a['other_asset_id']} of {a['other_scene']}"
        if a.get("floor_xy") is not None:
            text += f" at {_metres(a['floor_xy'])}"
        if a.get("yaw") is not None:
            text += f", yaw {_degrees(a['yaw'])}"
    elif edit.op == "transfer":
        text = f"give object {a['asset_id']} the looks of object {a['other_asset_id']} of {a['other_scene']}"
    elif edit.op == "swap_background":
        text = f"background from frame {a['frame']} of {a['other_scene']}"
    elif edit.op == "move_camera":
        parts = [f"{key} {_metres(a[key])}" for key in ("eye", "target") if a.get(key) is not None]
        text = "move the camera: " + ", ".join(parts)
    else:
        text = f"{edit.op} {_short(a)}"
    return text + frames


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

"""Editor callbacks: pure functions from (state, inputs) to (new state, message).

Nothing here knows about Gradio or a browser: every user action of the editor is one
function that takes an :class:`~neuralassets.editor.state.EditorState` and plain values
(ids, metres, degrees, pixel coordinates, file paths) and returns a new state with a
one-line message for the status bar (exports also return the written file). Failures
never raise: they come back as the message and the unchanged state, so a bad click or
upload cannot break a session. What the UI shows of a state is in
:mod:`neuralassets.editor.views`.

Object edits apply at every frame (the whole trajectory moves), placement problems are
reported as warnings in the message rather than refused, and each edit is one undo step.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from .. import edits, geometry
from ..animation import Keyframes, animate
from ..errors import NeuralAssetsError, ValidationError
from ..scene import Scene
from ..video import write_video
from . import inputs
from .backends import Progress, Renderers
from .overlay import enlarge, stands_as_photographed
from .state import EditorState, RenderSettings

#: What a click in the image does: select the object under it, or drag an object along the floor (two clicks).
CLICK_MODES = ("select", "drag on floor")
#: Animations the editor exports.
ANIMATIONS = ("yaw spin", "move")
#: Animation file formats.
ANIMATION_FORMATS = (".gif", ".mp4")
#: Most frames in an exported animation.
MAX_ANIMATION_FRAMES = 48
#: Frames per second of exported animations.
ANIMATION_FPS = 12.0
#: Gap, in metres, between a duplicate and the object it copies.
DUPLICATE_GAP = 0.1

#: What the scene view's re-render of an edited scene is, in words: of a synthetic scene, of any other.
PREVIEW_EXACT = "exact re-render of the edited scene"
PREVIEW_GEOMETRIC = "geometric re-render of the edited scene (the photo's pixels moved by depth and boxes)"

Result = tuple[EditorState, str]
NOTHING_LOADED = "Load a sample, a video, two images or a Scene zip first."
NOTHING_SELECTED = "Select an object first: click it in the image or pick it in the list."


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------

def load_sample(state: EditorState, index: int) -> Result:
    """Open bundled sample ``index`` (0-based, see :func:`neuralassets.editor.inputs.sample_names`)."""
    try:
        scene = inputs.sample_scene(int(index))
    except NeuralAssetsError as e:
        return state, f"Could not load the sample: {e}"
    name = scene.metadata["name"]
    return state.loaded_with(scene, name), f"Loaded {name}: {_describe(scene)}."


def load_upload(state: EditorState, paths: Sequence[str | Path] | None, progress: Progress | None = None,
                workdir: str | Path | None = None) -> Result:
    """Open an upload: one video, two images (a frame pair) or one Scene zip.

    Videos and frame pairs go through :func:`neuralassets.perception.extract` (the default,
    weight-free segmenter, tracker and lifter). Size, duration and resolution limits are in
    :mod:`neuralassets.editor.inputs`. A zip is unpacked inside ``workdir`` (default: the
    system's temporary folder) and the unpacked files removed once read.
    """
    progress = progress or _no_progress
    paths = [Path(p) for p in paths or []]
    try:
        kind = inputs.upload_kind(paths)
        if kind == "zip":
            progress(0.2, desc="reading the Scene zip")
            scene = Scene.load_zip(paths[0], workdir=workdir)
        else:
            from ..perception import extract

            progress(0.05, desc="reading frames")
            frames = inputs.read_upload_frames(paths)
            progress(0.3, desc=f"finding objects in {frames.shape[0]} frames (segment, track, lift to 3D)")
            scene = extract(frames)
    except NeuralAssetsError as e:
        return state, f"Could not open the upload: {e}"
    progress(1.0, desc="done")
    name = " + ".join(p.name for p in paths)
    scene = scene.replace(metadata={**scene.metadata, "name": name})
    found = "" if len(scene) else " No objects were found; try a clip where objects stand out from the floor."
    return state.loaded_with(scene, name), f"Loaded {name}: {_describe(scene)}.{found}"


def _describe(scene: Scene) -> str:
    return f"{scene.num_frames} frames of {scene.width}x{scene.height}, {len(scene)} objects"


# --------------------------------------------------------------------------------------
# Selection and navigation
# --------------------------------------------------------------------------------------

def select(state: EditorState, asset_id: int | None) -> Result:
    """Select an asset by id (None clears the selection)."""
    if not state.loaded:
        return state, NOTHING_LOADED
    if asset_id is None:
        return replace(state, selected=None, drag_from=None), "Selection cleared."
    asset_id = int(asset_id)
    if asset_id not in state.scene.asset_ids:
        return state, f"There is no object {asset_id} (objects: {state.scene.asset_ids})."
    return replace(state, selected=asset_id, drag_from=None), f"Selected {_name(state.scene, asset_id)}."


def set_frame(state: EditorState, frame: int) -> Result:
    """Show, edit and render ``frame``."""
    if not state.loaded:
        return state, NOTHING_LOADED
    frame = int(frame)
    if not 0 <= frame < state.scene.num_frames:
        return state, f"Frame {frame} is not in [0, {state.scene.num_frames})."
    return replace(state, frame=frame, drag_from=None), f"Showing frame {frame}."


def pick(scene: Scene, frame: int, u: float, v: float) -> int | None:
    """The asset under pixel (u, v) at ``frame``, or None.

    An asset that still stands where the frame's photo shows it is under the pixel when its
    observed mask covers it; any other asset (moved, inserted, or without masks) when the
    pixel's ray enters its 3D box at its current pose. Of several, the one whose box the ray
    enters first wins, so an object moved in front of another is picked.
    """
    col, row = int(math.floor(u)), int(math.floor(v))
    inside = 0 <= col < scene.width and 0 <= row < scene.height
    cam = scene.cameras[frame]
    origin, direction = geometry.pixel_rays(torch.tensor([[u, v]], dtype=torch.float32), cam.K, cam.R, cam.t)
    best, nearest = None, math.inf
    for a in scene.assets:
        distance = float(geometry.ray_box_distance(origin, direction[0], a.centers[frame], a.sizes[frame], a.rotations[frame]))
        if a.masks is not None and stands_as_photographed(scene, a.id, frame):
            if not (inside and bool(a.masks[frame, row, col])):
                continue
            if math.isinf(distance):  # the mask reaches past the box: rank it by its centre
                distance = float((a.centers[frame] - origin).norm())
        if distance < nearest:
            best, nearest = a.id, distance
    return best


def click(state: EditorState, u: float, v: float, mode: str = "select") -> Result:
    """A click at pixel (u, v) of the shown frame (pixel units of the scene, not of the enlarged view).

    ``"select"`` selects the object under the click (or clears the selection). ``"drag on
    floor"`` takes two clicks: the first on the object (it is selected), the second where it
    should go; the object slides along the floor so the first point lands under the second
    (:func:`neuralassets.edits.move_in_image`).
    """
    if not state.loaded:
        return state, NOTHING_LOADED
    if mode not in CLICK_MODES:
        return state, f"Unknown click mode {mode!r}; expected one of {', '.join(CLICK_MODES)}."
    hit = pick(state.scene, state.frame, u, v)
    if mode == "select":
        if hit is None:
            return replace(state, selected=None, drag_from=None), f"No object at ({u:.0f}, {v:.0f}); selection cleared."
        return select(state, hit)
    if state.drag_from is None:
        target = hit if hit is not None else state.selected
        if target is None:
            return state, "Click on the object to drag first, then where it should go."
        return (replace(state, selected=target, drag_from=(float(u), float(v))),
                f"Dragging {_name(state.scene, target)}: now click where it should go on the floor.")
    start = state.drag_from
    new, message = _edit(replace(state, drag_from=None), f"Dragged {_name(state.scene, state.selected)} along the floor",
                         edits.move_in_image, state.selected, state.frame, start, (float(u), float(v)), check_visibility="warn")
    return new, message


# --------------------------------------------------------------------------------------
# Edits
# --------------------------------------------------------------------------------------

def _edit(state: EditorState, done: str, fn: Callable[..., Scene], *args, **kwargs) -> Result:
    """Apply ``fn(state.scene, *args, **kwargs)`` as one undo step; edit warnings join the message."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", edits.EditWarning)
        try:
            scene = fn(state.scene, *args, **kwargs)
        except NeuralAssetsError as e:
            return state, f"Edit failed: {e}"
    notes = "".join(f" Warning: {w.message}." for w in caught if issubclass(w.category, edits.EditWarning))
    return state.with_scene(scene), f"{done}.{notes}"


def _needs_selection(state: EditorState) -> str | None:
    if not state.loaded:
        return NOTHING_LOADED
    if state.selected is None:
        return NOTHING_SELECTED
    return None


def _name(scene: Scene, asset_id: int) -> str:
    return f"{asset_id} ({scene.asset(asset_id).name})"


def move_selected(state: EditorState, dx: float, dy: float, dz: float) -> Result:
    """Move the selection by (dx, dy, dz) metres along the world axes (x, y on the floor, z up)."""
    if problem := _needs_selection(state):
        return state, problem
    return _edit(state, f"Moved {_name(state.scene, state.selected)} by ({dx:.2f}, {dy:.2f}, {dz:.2f}) m",
                 edits.move, state.selected, (float(dx), float(dy), float(dz)), check_visibility="warn")


def rotate_selected(state: EditorState, yaw: float, pitch: float = 0.0, roll: float = 0.0) -> Result:
    """Rotate the selection about its centre by yaw (about up), pitch and roll, in degrees."""
    if problem := _needs_selection(state):
        return state, problem
    return _edit(state, f"Rotated {_name(state.scene, state.selected)} by yaw {yaw:g}°, pitch {pitch:g}°, roll {roll:g}°",
                 edits.rotate, state.selected, math.radians(yaw), math.radians(pitch), math.radians(roll),
                 check_visibility="warn")


def scale_selected(state: EditorState, factor: float) -> Result:
    """Scale the selection by ``factor`` (> 0), keeping it on the floor."""
    if problem := _needs_selection(state):
        return state, problem
    return _edit(state, f"Scaled {_name(state.scene, state.selected)} by {factor:g}", edits.scale, state.selected,
                 float(factor), check_visibility="warn")


def remove_selected(state: EditorState) -> Result:
    """Remove the selection from the scene."""
    if problem := _needs_selection(state):
        return state, problem
    return _edit(state, f"Removed {_name(state.scene, state.selected)}", edits.remove, state.selected)


def duplicate_selected(state: EditorState) -> Result:
    """Insert a copy of the selection beside it (to its right as the shown frame's camera sees it) and select the copy."""
    if problem := _needs_selection(state):
        return state, problem
    scene, original = state.scene, state.scene.asset(state.selected)

    def duplicate(scene: Scene) -> Scene:
        copy = edits.insert(scene, scene, original.id, other_name="itself", check_visibility="ignore")
        width = float(original.sizes[state.frame, :2].norm()) + DUPLICATE_GAP
        return edits.move(copy, copy.assets[-1].id, (width, 0.0), frame_of_reference="camera", check_visibility="warn")

    new, message = _edit(state, f"Duplicated {_name(scene, original.id)}", duplicate)
    if new.scene is not scene:
        new = replace(new, selected=new.scene.assets[-1].id)
    return new, message


def insert_asset(state: EditorState, other: Scene, other_id: int) -> Result:
    """Insert asset ``other_id`` of scene ``other`` where it stands there, and select it."""
    if not state.loaded:
        return state, NOTHING_LOADED
    name = str(other.metadata.get("name") or "other scene")
    try:
        label = _name(other, int(other_id))
    except NeuralAssetsError as e:
        return state, f"Insert failed: {e}"
    new, message = _edit(state, f"Inserted {label} from {name}", edits.insert, other, int(other_id), other_name=name,
                         check_visibility="warn")
    if new.scene is not state.scene:
        new = replace(new, selected=new.scene.assets[-1].id)
    return new, message


def swap_selected_with(state: EditorState, other_id: int | None) -> Result:
    """The selection and asset ``other_id`` trade appearance, each keeping its pose."""
    if problem := _needs_selection(state):
        return state, problem
    if other_id is None:
        return state, "Choose the object to swap appearance with."
    return _edit(state, f"Swapped the looks of {_name(state.scene, state.selected)} and object {int(other_id)}",
                 edits.swap_appearance, state.selected, int(other_id))


def replace_background(state: EditorState, other: Scene) -> Result:
    """Use the first frame of scene ``other`` as the background."""
    if not state.loaded:
        return state, NOTHING_LOADED
    name = str(other.metadata.get("name") or "other scene")
    return _edit(state, f"Background taken from {name}", edits.swap_background, other, 0, other_name=name)


def undo(state: EditorState) -> Result:
    """Step back one edit."""
    if not state.undo:
        return state, "Nothing to undo."
    return state.undone(), f"Undone ({len(state.undo) - 1} more to undo)."


def redo(state: EditorState) -> Result:
    """Step forward one undone edit."""
    if not state.redo:
        return state, "Nothing to redo."
    return state.redone(), f"Redone ({len(state.redo) - 1} more to redo)."


# --------------------------------------------------------------------------------------
# Rendering and export
# --------------------------------------------------------------------------------------

def render(state: EditorState, renderers: Renderers, settings: RenderSettings, progress: Progress | None = None) -> Result:
    """Render the current scene at the shown frame with ``settings`` (the "after" image)."""
    if not state.loaded:
        return state, NOTHING_LOADED
    from ..perception import SlotWarning

    state = replace(state, settings=settings)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", SlotWarning)
        try:
            out = renderers.render(state.scene, state.frame, settings, progress)
        except NeuralAssetsError as e:
            return state, f"Render failed: {e}"
    message = f"Rendered frame {state.frame} with the {settings.backend} back end."
    message += "".join(f" Note: {w.message}." for w in said if issubclass(w.category, SlotWarning))
    if out.kept is not None:
        share = round(100 * float(out.kept.mean()))
        message += f" {share} % of the pixels kept from the photo, {100 - share} % drawn by the model."
    return (replace(state, rendered=out.image, rendered_scene=state.scene, rendered_frame=state.frame,
                    rendered_backend=settings.backend, kept=out.kept), message)


def with_preview(state: EditorState) -> EditorState:
    """``state`` with a re-render of its edited scene at the shown frame, when the scene view needs one.

    A synthetic scene gets its exact re-render (:func:`neuralassets.data.render`); any other
    (extracted footage) the geometric one, its photo's own pixels moved by depth and 3D boxes
    (:class:`~neuralassets.pipelines.GeometricRenderer`). An unedited scene, and a scene whose
    render is current, come back as they are.
    """
    if (not state.loaded or state.render_is_current or state.preview_is_current or state.scene is state.original
            or not edits.history(state.scene)):
        return state
    from ..data import render as exact_render

    try:
        image, kind = exact_render(state.scene, frames=[state.frame]).rgb[0], PREVIEW_EXACT
    except ValidationError:  # not a synthetic scene
        from ..pipelines import GeometricRenderer

        image, kind = GeometricRenderer()(state.scene, state.frame, source_frame=state.frame), PREVIEW_GEOMETRIC
    return replace(state, preview=(state.scene, state.frame, image, kind))


def export_png(state: EditorState, folder: str | Path) -> tuple[EditorState, str, Path | None]:
    """Write the latest render of the current scene to ``folder/render.png``."""
    if not state.render_is_current:
        return state, "Render the current scene first; the PNG holds the latest render.", None
    path = Path(folder) / "render.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(enlarge(state.rendered, 1)).save(path)
    return state, f"Saved the render as {path.name}.", path


def export_scene(state: EditorState, folder: str | Path) -> tuple[EditorState, str, Path | None]:
    """Write the edited scene (with its edit history) to ``folder/scene.zip``."""
    if not state.loaded:
        return state, NOTHING_LOADED, None
    Path(folder).mkdir(parents=True, exist_ok=True)
    try:
        path = state.scene.save_zip(Path(folder) / "scene.zip")
    except NeuralAssetsError as e:
        return state, f"Export failed: {e}", None
    return state, f"Saved the edited scene as {path.name} ({len(edits.history(state.scene))} edits).", path


def animated_scene(scene: Scene, asset_id: int, frame: int, kind: str, num_frames: int,
                   delta: Sequence[float] = (0.0, 0.0, 0.0)) -> Scene:
    """A ``num_frames``-frame scene animating one asset from its pose at ``frame`` (:func:`neuralassets.animation.animate`).

    Args:
        scene: the scene; not modified.
        asset_id: the asset to animate.
        frame: the frame the animation starts from (its poses, camera and appearance).
        kind: ``"yaw spin"`` (a full turn about the vertical, looping) or ``"move"`` (from its
            pose to ``delta`` metres away, world axes, evenly spaced).
        num_frames: number of frames, 2..:data:`MAX_ANIMATION_FRAMES`.
        delta: (3,) metres, used by ``"move"``.

    Returns:
        The animated scene; frame k is keyframe k, and only the asset moves.
    """
    keys = Keyframes.spin(asset_id, num_frames) if kind == "yaw spin" else Keyframes.slide(asset_id, delta, num_frames)
    return animate(scene, keys, num_frames, source_frame=frame)


def export_animation(state: EditorState, renderers: Renderers, settings: RenderSettings, kind: str, num_frames: int,
                     suffix: str, folder: str | Path, delta: Sequence[float] = (0.0, 0.0, 0.0),
                     progress: Progress | None = None) -> tuple[EditorState, str, Path | None]:
    """Render an animation of the selection and write it to ``folder/animation{suffix}``.

    Every frame is rendered with the same settings and seed, so the neural back end keeps its
    noise fixed and only the animated object changes.
    """
    if problem := _needs_selection(state):
        return state, problem, None
    num_frames = int(num_frames)
    if kind not in ANIMATIONS:
        return state, f"Unknown animation {kind!r}; expected one of {', '.join(ANIMATIONS)}.", None
    if suffix not in ANIMATION_FORMATS:
        return state, f"Unknown format {suffix!r}; expected one of {', '.join(ANIMATION_FORMATS)}.", None
    if not 2 <= num_frames <= MAX_ANIMATION_FRAMES:
        return state, f"An animation needs 2..{MAX_ANIMATION_FRAMES} frames, got {num_frames}.", None
    if kind == "move" and not any(float(d) for d in delta):
        return state, "A move animation goes by the move sliders' x, y, z; set at least one.", None
    progress = progress or _no_progress
    images = []
    try:
        scene = animated_scene(state.scene, state.selected, state.frame, kind, num_frames, delta)
        for k in range(num_frames):
            progress(k / num_frames, desc=f"rendering frame {k + 1} of {num_frames}")
            images.append(renderers.render(scene, k, settings).image)
        path = write_video(Path(folder) / f"animation{suffix}", torch.stack(images), fps=ANIMATION_FPS)
    except NeuralAssetsError as e:
        return state, f"Animation failed: {e}", None
    return state, f"Saved a {num_frames}-frame {kind} of {_name(state.scene, state.selected)} as {path.name}.", path


def _no_progress(fraction: float, desc: str | None = None) -> None:
    """Progress reporting that goes nowhere (callbacks called outside the UI)."""

"""The Gradio editor: layout and wiring only (the callbacks live in :mod:`neuralassets.editor.callbacks`).

:func:`build_app` lays out the page and connects each widget to one callback;
:func:`launch` serves it on 127.0.0.1 (a public link only with ``share=True``), with one
model per process, renders queued under a concurrency limit, per-session state in
``gr.State`` and every file it writes or serves inside one temporary folder of the process.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from . import callbacks as cb
from . import inputs
from .backends import BACKENDS, GROUND_TRUTH, MAX_GUIDANCE, MAX_STEPS, Renderers
from .state import EditorState, RenderSettings
from .views import OBJECT_COLUMNS, view

#: Renders, animations and extractions running at once, over all sessions (the rest wait in the queue).
RENDER_CONCURRENCY = 2
#: Light events (selection, edits) running at once.
EDIT_CONCURRENCY = 4
#: Events that may wait in the queue before new ones are turned away.
MAX_QUEUE = 64
#: Seconds a session's state is kept after its last event.
STATE_TTL_SECONDS = 3600
#: (every, older than) seconds: how often served files are swept and how old they must be.
CACHE_SWEEP = (600, 3600)

#: Display heights in CSS pixels: the scene view, and the before / after / kept row.
_SCENE_HEIGHT = 400
_SMALL_HEIGHT = 170
# Tighter spacing so the page fits a 1366x768 laptop screen.
_CSS = ".gradio-container {padding-top: 6px !important} #status textarea {font-weight: 600}"
_log = logging.getLogger(__name__)

# Gradio recognises a progress parameter by its gr.Progress default and reports to the running event.
_PROGRESS = gr.Progress()
_SESSION_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def _session_folder(workdir: Path, request: gr.Request | None) -> Path:
    """This session's export folder; the session hash comes from the client, so it is reduced to safe characters."""
    name = _SESSION_CHARS.sub("", getattr(request, "session_hash", None) or "")[:64] or "anonymous"
    return workdir / "sessions" / name


class _ImageFiles:
    """Shown images as PNG files in one folder, named by their content.

    Gradio rewrites an array output's cache file in place, so two sessions showing the same
    picture at once (two users on one sample) could serve a half-written file. A file path
    output is instead copied into Gradio's cache atomically; each PNG here is also written
    under a temporary name and renamed into place. Files older than ``max_age`` seconds are
    swept now and then.
    """

    def __init__(self, folder: Path, max_age: float) -> None:
        self.folder, self.max_age, self._swept = folder, max_age, time.monotonic()
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, image: np.ndarray | None) -> str | None:
        if image is None:
            return None
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="png")
        data = buffer.getvalue()
        path = self.folder / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
        if not path.exists():
            fd, staging = tempfile.mkstemp(dir=self.folder, suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(staging, path)
        if time.monotonic() - self._swept > self.max_age:
            self._swept = time.monotonic()
            cutoff = time.time() - self.max_age
            for old in self.folder.glob("*.png"):
                if old.stat().st_mtime < cutoff:
                    old.unlink(missing_ok=True)
        return str(path)


def _slider_column(specs: list[tuple[str, str, float, float]], step: float) -> list[gr.Slider]:
    """Sliders starting at 0, one under the other, one per (label, elem_id, minimum, maximum)."""
    return [gr.Slider(lo, hi, value=0, step=step, label=label, elem_id=elem_id) for label, elem_id, lo, hi in specs]


def build_app(renderers: Renderers | None = None, workdir: str | os.PathLike | None = None) -> gr.Blocks:
    """Lay out the editor and wire its callbacks.

    The page fits a 1366x768 screen: loading, selection and the edit tabs on the left; the
    scene view (the edited scene with its objects' boxes), undo / redo / render, the status
    and the before, after and kept-pixels images on the right; the object table, edit
    history, render settings and exports in tabs below. Long work (renders, animations,
    uploads) shows its progress on the one panel it will fill, so the rest stays usable.

    Args:
        renderers: the process's render back ends (default: shipped weights, CPU).
        workdir: folder exports are written to, one subfolder per session (default: a new
            temporary folder).

    Returns:
        The ``gr.Blocks`` app, not yet queued or launched (see :func:`launch`).
    """
    renderers = renderers or Renderers()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="neuralassets-editor-"))
    samples = inputs.sample_names()
    image_file = _ImageFiles(workdir / "views", CACHE_SWEEP[1])

    with gr.Blocks(title="neuralassets editor", analytics_enabled=False, delete_cache=CACHE_SWEEP, fill_width=True) as app:
        state = gr.State(EditorState(), time_to_live=STATE_TTL_SECONDS)
        gr.Markdown("**neuralassets editor**: load a scene, click an object, edit it, render. "
                    "Edits apply to the whole clip; the shown frame is the one rendered.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=340):
                with gr.Tab("Sample"):
                    with gr.Row():
                        sample = gr.Dropdown(samples, value=samples[0], type="index", show_label=False, elem_id="sample",
                                             scale=3)
                        load_sample = gr.Button("Load sample", variant="primary", elem_id="load-sample", scale=2)
                with gr.Tab("Upload"):
                    upload = gr.File(file_count="multiple", label="One video, two images or a Scene zip", elem_id="upload",
                                     height=120, file_types=[*inputs.VIDEO_SUFFIXES, ".gif", *inputs.IMAGE_SUFFIXES,
                                                             inputs.ZIP_SUFFIX])
                    gr.Markdown(f"Limits: {inputs.MAX_UPLOAD_MB} MB per file, {inputs.MAX_VIDEO_SECONDS:g} s of video, "
                                f"{inputs.MIN_INPUT_SIDE}–{inputs.MAX_INPUT_SIDE} pixels per side. Frames are shrunk to "
                                f"{inputs.WORKING_SIDE} pixels; at most {inputs.MAX_FRAMES} frames are kept.")
                    load_upload = gr.Button("Open upload", variant="primary", elem_id="load-upload")
                with gr.Row():
                    selected = gr.Dropdown([], value=None, label="Selected object", elem_id="object", scale=3)
                    frame = gr.Slider(0, 1, value=0, step=1, label="Frame", elem_id="frame", scale=2)
                click_mode = gr.Radio(list(cb.CLICK_MODES), value=cb.CLICK_MODES[0], label="Click in the image to",
                                      elem_id="click-mode")
                with gr.Tabs():
                    with gr.Tab("Move"):
                        dx, dy, dz = _slider_column([("x (m)", "dx", -3, 3), ("y (m)", "dy", -3, 3), ("z, up (m)", "dz", -1, 2)],
                                                    0.05)
                        move = gr.Button("Move selected", elem_id="move")
                        gr.Markdown("Or choose *drag on floor* above and click the object, then where it should go.")
                    with gr.Tab("Rotate"):
                        yaw, pitch, roll = _slider_column([(f"{n} (°)", n, -180, 180) for n in ("yaw", "pitch", "roll")], 5)
                        rotate = gr.Button("Rotate selected", elem_id="rotate")
                    with gr.Tab("Scale"):
                        factor = gr.Slider(0.25, 3, value=1.5, step=0.05, label="factor (×)", elem_id="factor")
                        scale = gr.Button("Scale selected", elem_id="scale")
                    with gr.Tab("Remove"):
                        remove = gr.Button("Remove selected", variant="stop", elem_id="remove")
                        duplicate = gr.Button("Duplicate selected", elem_id="duplicate")
                    with gr.Tab("Swap / insert"):
                        with gr.Row():
                            swap_with = gr.Dropdown([], value=None, label="Swap appearance with", elem_id="swap-with", scale=3)
                            swap = gr.Button("Swap", elem_id="swap", scale=1)
                        donor_scene = gr.Dropdown(samples, value=samples[1 % len(samples)], type="index", label="From sample",
                                                  elem_id="donor-scene")
                        with gr.Row():
                            donor_object = gr.Dropdown([], value=None, label="Object", elem_id="donor-object", scale=2)
                            insert = gr.Button("Insert object", elem_id="insert", scale=1)
                        background = gr.Button("Use the sample's background", elem_id="background")
            with gr.Column(scale=3, min_width=480):
                title = gr.Markdown("nothing loaded", elem_id="title")
                scene_image = gr.Image(label="Scene (click an object)", type="filepath", format="png", interactive=False,
                                       height=_SCENE_HEIGHT, elem_id="scene-view")
                with gr.Row():
                    undo = gr.Button("Undo", elem_id="undo", size="sm")
                    redo = gr.Button("Redo", elem_id="redo", size="sm")
                    render = gr.Button("Render", variant="primary", elem_id="render", size="sm")
                status = gr.Textbox(show_label=False, interactive=False, elem_id="status", lines=1, max_lines=3)
                with gr.Row():
                    before = gr.Image(label="Before", type="filepath", format="png", interactive=False,
                                      height=_SMALL_HEIGHT, elem_id="before")
                    after = gr.Image(label="After (render)", type="filepath", format="png", interactive=False,
                                     height=_SMALL_HEIGHT, elem_id="after")
                    kept = gr.Image(label="Kept from the photo / drawn", type="filepath", format="png",
                                    interactive=False, height=_SMALL_HEIGHT, elem_id="kept")
        with gr.Tabs():
            with gr.Tab("Objects"):
                with gr.Row():
                    objects = gr.Dataframe(headers=OBJECT_COLUMNS, value=None, interactive=False, show_label=False, wrap=True,
                                           elem_id="objects", scale=3)
                    history = gr.Textbox(label="Edit history", lines=6, max_lines=12, interactive=False, elem_id="history",
                                         scale=2)
            with gr.Tab("Render settings"):
                backend = gr.Radio(list(BACKENDS), value=GROUND_TRUTH, label="Back end", elem_id="backend",
                                   info="ground truth: the generator's exact renderer (synthetic scenes only); "
                                        "geometric: the photo's own pixels moved by depth and 3D boxes, holes "
                                        "inpainted (any footage, full size); neural: the trained model")
                neural_status = gr.Markdown(renderers.neural_status(), elem_id="neural-status")
                with gr.Row():
                    steps = gr.Slider(1, MAX_STEPS, value=RenderSettings.steps, step=1, label="steps", elem_id="steps")
                    guidance = gr.Slider(0, MAX_GUIDANCE, value=RenderSettings.guidance, step=0.1, label="guidance",
                                         elem_id="guidance")
                    seed = gr.Number(RenderSettings.seed, precision=0, minimum=0, label="seed", elem_id="seed")
                keep = gr.Checkbox(value=RenderSettings.keep_unchanged, label="keep unchanged pixels", elem_id="keep-unchanged",
                                   info="neural: the model draws only what the edit touches; the frame's own pixels elsewhere")
            with gr.Tab("Export"):
                with gr.Row():
                    export_png = gr.Button("Render as PNG", elem_id="export-png")
                    export_zip = gr.Button("Edited scene (zip)", elem_id="export-zip")
                with gr.Row():
                    animation = gr.Radio(list(cb.ANIMATIONS), value=cb.ANIMATIONS[0], label="Animate the selected object",
                                         info="move: by the Move tab's x, y, z", elem_id="animation")
                    animation_frames = gr.Slider(2, cb.MAX_ANIMATION_FRAMES, value=12, step=1, label="frames",
                                                 elem_id="animation-frames")
                    animation_format = gr.Radio(list(cb.ANIMATION_FORMATS), value=cb.ANIMATION_FORMATS[0], label="format",
                                                elem_id="animation-format")
                    export_animation = gr.Button("Render animation", elem_id="export-animation")
                download = gr.File(label="Download", interactive=False, elem_id="download")

        shown = [state, status, scene_image, before, after, kept, objects, selected, swap_with, frame, history, title,
                 neural_status]

        def show(new: EditorState, message: str) -> list:
            new = cb.with_preview(new)
            v = view(new)
            others = [c for c in v.choices if c[1] != v.selected]
            heading = f"**{v.title}**" + (f": {v.shows}" if v.shows else "")
            return [new, message, image_file(v.scene_image), image_file(v.before), image_file(v.after), image_file(v.kept),
                    v.objects or None, gr.Dropdown(choices=v.choices, value=v.selected),
                    gr.Dropdown(choices=others, value=None), gr.Slider(maximum=max(v.num_frames - 1, 1), value=v.frame),
                    v.history, heading, renderers.neural_status()]

        def guarded(fn: Callable, action: str, extra_outputs: int) -> Callable:
            """``fn`` whose unexpected failures become a status message (details in the server log), the state kept."""

            @functools.wraps(fn)
            def run(s, *args, **kwargs):
                try:
                    return fn(s, *args, **kwargs)
                except Exception:
                    _log.exception("%s failed", action)
                    message = f"{action} failed with an internal error; nothing was changed. The server log has the details."
                    return [*show(s, message), *[None] * extra_outputs]
            return run

        def settings_of(backend_name, n_steps, guidance_scale, seed_value, keep_pixels) -> RenderSettings:
            return RenderSettings(str(backend_name), int(n_steps), float(guidance_scale), int(seed_value or 0),
                                  bool(keep_pixels))

        def listen(trigger, fn, extra_inputs, api_name: str, action: str, heavy: bool = False, outputs=None,
                   progress_on=None) -> None:
            outputs = outputs or shown
            trigger(guarded(fn, action, len(outputs) - len(shown)), inputs=[state, *extra_inputs], outputs=outputs, api_name=api_name,
                    concurrency_id="heavy" if heavy else "light",
                    concurrency_limit=RENDER_CONCURRENCY if heavy else EDIT_CONCURRENCY,
                    show_progress="full" if progress_on is not None else "minimal", show_progress_on=progress_on)

        def wire(trigger, fn, extra_inputs, api_name: str, action: str, heavy: bool = False) -> None:
            listen(trigger, lambda s, *a: show(*fn(s, *a)), extra_inputs, api_name, action, heavy)

        def on_upload(s, files, progress=_PROGRESS):
            return show(*cb.load_upload(s, files, progress, workdir=workdir / "unpacked"))

        def on_click(s, mode, evt: gr.SelectData):
            if not s.loaded:
                return show(s, cb.NOTHING_LOADED)
            k = view(s).scale
            x, y = evt.index
            return show(*cb.click(s, (x + 0.5) / k, (y + 0.5) / k, mode))

        def on_render(s, b, n, g, sd, k, progress=_PROGRESS):
            return show(*cb.render(s, renderers, settings_of(b, n, g, sd, k), progress))

        def on_export_png(s, request: gr.Request):
            new, message, path = cb.export_png(s, _session_folder(workdir, request))
            return [*show(new, message), _served(path)]

        def on_export_zip(s, request: gr.Request):
            new, message, path = cb.export_scene(s, _session_folder(workdir, request))
            return [*show(new, message), _served(path)]

        def on_export_animation(s, kind, n, suffix, b, st, g, sd, k, x, y, z, request: gr.Request, progress=_PROGRESS):
            new, message, path = cb.export_animation(s, renderers, settings_of(b, st, g, sd, k), kind, n, suffix,
                                                     _session_folder(workdir, request), (x, y, z), progress)
            return [*show(new, message), _served(path)]

        def donor_choices(index):
            scene = inputs.sample_scene(int(index))
            choices = [(f"{a.id}: {a.name}", a.id) for a in scene.assets]
            return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)

        render_settings = [backend, steps, guidance, seed, keep]
        wire(load_sample.click, cb.load_sample, [sample], "load_sample", "Loading the sample", heavy=True)
        listen(load_upload.click, on_upload, [upload], "load_upload", "Opening the upload", heavy=True,
               progress_on=[scene_image])
        listen(scene_image.select, on_click, [click_mode], "click", "The click")
        wire(selected.input, cb.select, [selected], "select", "Selecting")
        wire(frame.release, cb.set_frame, [frame], "set_frame", "Changing the frame")
        wire(move.click, cb.move_selected, [dx, dy, dz], "move", "The move")
        wire(rotate.click, cb.rotate_selected, [yaw, pitch, roll], "rotate", "The rotation")
        wire(scale.click, cb.scale_selected, [factor], "scale", "Scaling")
        wire(remove.click, cb.remove_selected, [], "remove", "Removing")
        wire(duplicate.click, cb.duplicate_selected, [], "duplicate", "Duplicating")
        wire(swap.click, cb.swap_selected_with, [swap_with], "swap", "The swap")
        wire(insert.click, lambda s, i, a: cb.insert_asset(s, inputs.sample_scene(int(i)), a), [donor_scene, donor_object],
             "insert", "Inserting", heavy=True)
        wire(background.click, lambda s, i: cb.replace_background(s, inputs.sample_scene(int(i))), [donor_scene],
             "background", "The background swap", heavy=True)
        wire(undo.click, cb.undo, [], "undo", "Undo")
        wire(redo.click, cb.redo, [], "redo", "Redo")
        listen(render.click, on_render, render_settings, "render", "The render", heavy=True, progress_on=[after])
        listen(export_png.click, on_export_png, [], "export_png", "The PNG export", outputs=[*shown, download])
        listen(export_zip.click, on_export_zip, [], "export_scene", "The scene export", outputs=[*shown, download])
        listen(export_animation.click, on_export_animation,
               [animation, animation_frames, animation_format, *render_settings, dx, dy, dz], "export_animation",
               "The animation", heavy=True, outputs=[*shown, download], progress_on=[download])
        donor_scene.change(donor_choices, inputs=[donor_scene], outputs=[donor_object], api_name="donor_objects",
                           concurrency_id="heavy", concurrency_limit=RENDER_CONCURRENCY)
        app.load(donor_choices, inputs=[donor_scene], outputs=[donor_object], api_visibility="private",
                 concurrency_id="heavy", concurrency_limit=RENDER_CONCURRENCY)
    return app


def _served(path: Path | None) -> str | None:
    """A written file as the ``gr.File`` output takes it (a string path; Gradio copies it into its cache and serves it)."""
    return None if path is None else str(path)


def launch(host: str = "127.0.0.1", port: int | None = None, share: bool = False, weights: str | os.PathLike | None = None,
           device: str = "cpu", block: bool = True) -> gr.Blocks:
    """Build the editor and serve it.

    Everything the server writes or serves (exports, uploads, Gradio's file cache) lives in
    one temporary folder of this process, removed when it exits; no other path is served.

    Args:
        host: interface to bind; the default 127.0.0.1 is reachable from this machine only.
        port: TCP port (None: Gradio picks a free one from 7860 up).
        share: also open a public Gradio link (off by default).
        weights: pipeline folder or hub id of the neural back end (None: the shipped weights).
        device: torch device of the neural back end.
        block: serve until interrupted; False returns once the server is up (for tests).

    Returns:
        The launched app.
    """
    workdir = Path(tempfile.mkdtemp(prefix="neuralassets-editor-"))
    atexit.register(shutil.rmtree, workdir, True)
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")  # uploads and served files stay inside workdir
    app = build_app(Renderers(weights, device), workdir)
    app.queue(max_size=MAX_QUEUE, default_concurrency_limit=EDIT_CONCURRENCY)
    # show_error stays off: a failure the callbacks did not catch would show the server's paths in its
    # message; theirs come back as the status line. Gradio's own banner names launch(share=True), not
    # the command line's flags, so it stays quiet (`neuralassets editor` prints its own).
    app.launch(server_name=host, server_port=port, share=share, max_file_size=f"{inputs.MAX_UPLOAD_MB}mb",
               prevent_thread_lock=True, show_error=False, quiet=True, css=_CSS)
    if block:
        app.block_thread()
    return app

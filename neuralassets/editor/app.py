"""The Gradio editor: layout and wiring only (the callbacks live in :mod:`neuralassets.editor.callbacks`).

:func:`build_app` lays out the page and connects each widget to one callback;
:func:`launch` serves it on 127.0.0.1 (a public link only with ``share=True``), with one
model per process, renders queued under a concurrency limit, per-session state in
``gr.State`` and every file it writes or serves inside one temporary folder of the process.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import os
import re
import shutil
import tempfile
import time
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


def _slider_row(specs: list[tuple[str, str, float, float]], step: float) -> list[gr.Slider]:
    """A row of sliders starting at 0, one per (label, elem_id, minimum, maximum)."""
    with gr.Row():
        return [gr.Slider(lo, hi, value=0, step=step, label=label, elem_id=elem_id) for label, elem_id, lo, hi in specs]


def build_app(renderers: Renderers | None = None, workdir: str | os.PathLike | None = None) -> gr.Blocks:
    """Lay out the editor and wire its callbacks.

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

    with gr.Blocks(title="neuralassets editor", analytics_enabled=False, delete_cache=CACHE_SWEEP) as app:
        state = gr.State(EditorState(), time_to_live=STATE_TTL_SECONDS)
        gr.Markdown("## neuralassets editor\nLoad a scene, click an object, edit it, render. "
                    "Edits apply to the whole clip; the shown frame is the one rendered.")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                with gr.Tab("Sample"):
                    sample = gr.Dropdown(samples, value=samples[0], type="index", label="Sample scene", elem_id="sample")
                    load_sample = gr.Button("Load sample", variant="primary", elem_id="load-sample")
                with gr.Tab("Upload"):
                    upload = gr.File(file_count="multiple", label="One video, two images or a Scene zip", elem_id="upload",
                                     file_types=[*inputs.VIDEO_SUFFIXES, ".gif", *inputs.IMAGE_SUFFIXES, inputs.ZIP_SUFFIX])
                    gr.Markdown(f"Limits: {inputs.MAX_UPLOAD_MB} MB per file, {inputs.MAX_VIDEO_SECONDS:g} s of video, "
                                f"{inputs.MIN_INPUT_SIDE}–{inputs.MAX_INPUT_SIDE} pixels per side. Frames are shrunk to "
                                f"{inputs.WORKING_SIDE} pixels; at most {inputs.MAX_FRAMES} frames are kept.")
                    load_upload = gr.Button("Open upload", variant="primary", elem_id="load-upload")
                frame = gr.Slider(0, 1, value=0, step=1, label="Frame", elem_id="frame")
                selected = gr.Dropdown([], value=None, label="Selected object", elem_id="object")
                click_mode = gr.Radio(list(cb.CLICK_MODES), value=cb.CLICK_MODES[0], label="Click in the image to",
                                      elem_id="click-mode")
                objects = gr.Dataframe(headers=OBJECT_COLUMNS, value=None, interactive=False, label="Objects", elem_id="objects")
            with gr.Column(scale=2):
                title = gr.Markdown("nothing loaded", elem_id="title")
                scene_image = gr.Image(label="Scene (click an object)", type="numpy", format="png", interactive=False,
                                       elem_id="scene-view")
                with gr.Row():
                    before = gr.Image(label="Before", type="numpy", format="png", interactive=False, elem_id="before")
                    after = gr.Image(label="After (render)", type="numpy", format="png", interactive=False, elem_id="after")
                with gr.Row():
                    undo = gr.Button("Undo", elem_id="undo")
                    redo = gr.Button("Redo", elem_id="redo")
                    render = gr.Button("Render", variant="primary", elem_id="render")
                status = gr.Textbox(label="Status", interactive=False, elem_id="status")
        with gr.Tabs():
            with gr.Tab("Move"):
                dx, dy, dz = _slider_row([("x (m)", "dx", -3, 3), ("y (m)", "dy", -3, 3), ("z, up (m)", "dz", -1, 2)], 0.05)
                move = gr.Button("Move selected", elem_id="move")
                gr.Markdown("Or choose *drag on floor* above and click the object, then where it should go.")
            with gr.Tab("Rotate"):
                yaw, pitch, roll = _slider_row([(f"{n} (°)", n, -180, 180) for n in ("yaw", "pitch", "roll")], 5)
                rotate = gr.Button("Rotate selected", elem_id="rotate")
            with gr.Tab("Scale"):
                factor = gr.Slider(0.25, 3, value=1.5, step=0.05, label="factor", elem_id="factor")
                scale = gr.Button("Scale selected", elem_id="scale")
            with gr.Tab("Remove / duplicate"):
                with gr.Row():
                    remove = gr.Button("Remove selected", variant="stop", elem_id="remove")
                    duplicate = gr.Button("Duplicate selected", elem_id="duplicate")
            with gr.Tab("Swap / insert / background"):
                with gr.Row():
                    swap_with = gr.Dropdown([], value=None, label="Swap appearance with", elem_id="swap-with")
                    swap = gr.Button("Swap", elem_id="swap")
                with gr.Row():
                    donor_scene = gr.Dropdown(samples, value=samples[1 % len(samples)], type="index", label="From sample",
                                              elem_id="donor-scene")
                    donor_object = gr.Dropdown([], value=None, label="Object", elem_id="donor-object")
                    insert = gr.Button("Insert object", elem_id="insert")
                    background = gr.Button("Use its background", elem_id="background")
            with gr.Tab("Render settings"):
                backend = gr.Radio(list(BACKENDS), value=GROUND_TRUTH, label="Back end", elem_id="backend",
                                   info="ground truth: the generator's exact renderer (synthetic scenes only)")
                gr.Markdown(renderers.neural_status(), elem_id="neural-status")
                with gr.Row():
                    steps = gr.Slider(1, MAX_STEPS, value=RenderSettings.steps, step=1, label="steps", elem_id="steps")
                    guidance = gr.Slider(0, MAX_GUIDANCE, value=RenderSettings.guidance, step=0.1, label="guidance",
                                         elem_id="guidance")
                    seed = gr.Number(RenderSettings.seed, precision=0, minimum=0, label="seed", elem_id="seed")
                keep = gr.Checkbox(value=RenderSettings.keep_unchanged, label="keep unchanged pixels", elem_id="keep-unchanged",
                                   info="neural: the frame's own pixels wherever the render leaves the scene unchanged")
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
        history = gr.Textbox(label="Edit history", lines=4, interactive=False, elem_id="history")

        shown = [state, status, scene_image, before, after, objects, selected, swap_with, frame, history, title]

        def show(new: EditorState, message: str) -> list:
            v = view(new)
            others = [c for c in v.choices if c[1] != v.selected]
            return [new, message, image_file(v.scene_image), image_file(v.before), image_file(v.after), v.objects or None,
                    gr.Dropdown(choices=v.choices, value=v.selected), gr.Dropdown(choices=others, value=None),
                    gr.Slider(maximum=max(v.num_frames - 1, 1), value=v.frame), v.history, f"**{v.title}**"]

        def settings_of(backend_name, n_steps, guidance_scale, seed_value, keep_pixels) -> RenderSettings:
            return RenderSettings(str(backend_name), int(n_steps), float(guidance_scale), int(seed_value or 0),
                                  bool(keep_pixels))

        def wire(trigger, fn, extra_inputs, api_name: str, heavy: bool = False) -> None:
            trigger(lambda s, *a: show(*fn(s, *a)), inputs=[state, *extra_inputs], outputs=shown, api_name=api_name,
                    concurrency_id="heavy" if heavy else "light",
                    concurrency_limit=RENDER_CONCURRENCY if heavy else EDIT_CONCURRENCY)

        def on_upload(s, files, progress=_PROGRESS):
            return show(*cb.load_upload(s, files, progress))

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
            return [*show(new, message), path]

        def on_export_zip(s, request: gr.Request):
            new, message, path = cb.export_scene(s, _session_folder(workdir, request))
            return [*show(new, message), path]

        def on_export_animation(s, kind, n, suffix, b, st, g, sd, k, x, y, z, request: gr.Request, progress=_PROGRESS):
            new, message, path = cb.export_animation(s, renderers, settings_of(b, st, g, sd, k), kind, n, suffix,
                                                     _session_folder(workdir, request), (x, y, z), progress)
            return [*show(new, message), path]

        def donor_choices(index):
            scene = inputs.sample_scene(int(index))
            choices = [(f"{a.id}: {a.name}", a.id) for a in scene.assets]
            return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)

        render_settings = [backend, steps, guidance, seed, keep]
        wire(load_sample.click, cb.load_sample, [sample], "load_sample", heavy=True)
        load_upload.click(on_upload, inputs=[state, upload], outputs=shown, api_name="load_upload", concurrency_id="heavy",
                          concurrency_limit=RENDER_CONCURRENCY)
        scene_image.select(on_click, inputs=[state, click_mode], outputs=shown, api_name="click", concurrency_id="light",
                           concurrency_limit=EDIT_CONCURRENCY)
        wire(selected.input, cb.select, [selected], "select")
        wire(frame.release, cb.set_frame, [frame], "set_frame")
        wire(move.click, cb.move_selected, [dx, dy, dz], "move")
        wire(rotate.click, cb.rotate_selected, [yaw, pitch, roll], "rotate")
        wire(scale.click, cb.scale_selected, [factor], "scale")
        wire(remove.click, cb.remove_selected, [], "remove")
        wire(duplicate.click, cb.duplicate_selected, [], "duplicate")
        wire(swap.click, cb.swap_selected_with, [swap_with], "swap")
        wire(insert.click, lambda s, i, a: cb.insert_asset(s, inputs.sample_scene(int(i)), a), [donor_scene, donor_object],
             "insert", heavy=True)
        wire(background.click, lambda s, i: cb.replace_background(s, inputs.sample_scene(int(i))), [donor_scene],
             "background", heavy=True)
        wire(undo.click, cb.undo, [], "undo")
        wire(redo.click, cb.redo, [], "redo")
        render.click(on_render, inputs=[state, *render_settings], outputs=shown, api_name="render", concurrency_id="heavy",
                     concurrency_limit=RENDER_CONCURRENCY)
        export_png.click(on_export_png, inputs=[state], outputs=[*shown, download], api_name="export_png",
                         concurrency_id="light", concurrency_limit=EDIT_CONCURRENCY)
        export_zip.click(on_export_zip, inputs=[state], outputs=[*shown, download], api_name="export_scene",
                         concurrency_id="light", concurrency_limit=EDIT_CONCURRENCY)
        export_animation.click(on_export_animation, inputs=[state, animation, animation_frames, animation_format, *render_settings,
                                                            dx, dy, dz], outputs=[*shown, download], api_name="export_animation",
                               concurrency_id="heavy", concurrency_limit=RENDER_CONCURRENCY)
        donor_scene.change(donor_choices, inputs=[donor_scene], outputs=[donor_object], api_name="donor_objects",
                           concurrency_id="heavy", concurrency_limit=RENDER_CONCURRENCY)
        app.load(donor_choices, inputs=[donor_scene], outputs=[donor_object], api_visibility="private",
                 concurrency_id="heavy", concurrency_limit=RENDER_CONCURRENCY)
    return app


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
    app.launch(server_name=host, server_port=port, share=share, max_file_size=f"{inputs.MAX_UPLOAD_MB}mb",
               prevent_thread_lock=not block, show_error=True, quiet=not block)
    return app

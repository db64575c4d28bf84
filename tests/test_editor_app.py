"""The editor's Gradio layout and command line, without serving it."""
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from neuralassets.cli import build_parser
from neuralassets.editor.app import _ImageFiles, _session_folder, build_app
from neuralassets.editor.backends import Renderers


class FakeRequest:
    def __init__(self, session_hash):
        self.session_hash = session_hash


def test_command_line_binds_localhost_without_share():
    args = build_parser().parse_args(["editor"])
    assert (args.host, args.port, args.share, args.weights) == ("127.0.0.1", None, False, None)
    assert build_parser().parse_args(["editor", "--share", "--port", "8000"]).share is True


@pytest.mark.parametrize("session_hash, folder", [
    ("abc123_-x", "abc123_-x"), ("../../etc", "etc"), ("/abs/path", "abspath"), ("", "anonymous"), (None, "anonymous"),
    ("..", "anonymous")])
def test_session_folders_stay_inside_the_workdir(tmp_path, session_hash, folder):
    path = _session_folder(tmp_path, FakeRequest(session_hash))
    assert path == tmp_path / "sessions" / folder and path.resolve().is_relative_to(tmp_path.resolve())


def test_image_files_are_content_named_and_reused(tmp_path):
    files = _ImageFiles(tmp_path / "views", max_age=3600)
    a = np.zeros((4, 6, 3), np.uint8)
    first, again, other = files(a), files(a.copy()), files(a + 1)
    assert first == again != other and Path(first).parent == tmp_path / "views"
    assert sorted(p.suffix for p in (tmp_path / "views").iterdir()) == [".png", ".png"]  # no staging files left
    assert files(None) is None


def test_build_app_lays_out_the_editor(tmp_path):
    app = build_app(Renderers(weights=tmp_path), tmp_path)
    assert isinstance(app, gr.Blocks)
    ids = {b.elem_id for b in app.blocks.values() if getattr(b, "elem_id", None)}
    assert {"sample", "load-sample", "upload", "scene-view", "before", "after", "render", "undo", "redo", "move", "rotate",
            "scale", "remove", "duplicate", "swap", "insert", "background", "backend", "export-png", "export-zip",
            "export-animation", "status", "history"} <= ids
    notes = [b.value for b in app.blocks.values() if isinstance(b, gr.Markdown) and b.elem_id == "neural-status"]
    assert notes == [f"Neural back end unavailable: no trained weights in {tmp_path.name}/ "
                     "(use the ground-truth or geometric back end)."]
    states = [b for b in app.blocks.values() if isinstance(b, gr.State)]
    assert len(states) == 1 and states[0].time_to_live > 0

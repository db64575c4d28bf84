"""The example scripts run on a tiny random pipeline, and real_models.py exits cleanly without model paths."""
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_models import one_thread  # noqa: F401 (autouse fixture)

from neuralassets.video import read_video

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, *args, monkeypatch):
    """Run examples/<name>.py in this process (imports are paid once) with the given arguments."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", [name, *map(str, args)])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")


@pytest.mark.parametrize("name", ["extract_and_move.py", "swap_and_transfer.py", "background_swap.py"])
def test_image_examples(name, tiny_pipeline_dir, tmp_path, monkeypatch, capsys):
    run_example(name, "--model", tiny_pipeline_dir, "--out", tmp_path, "--steps", 2, monkeypatch=monkeypatch)
    output = tmp_path / name.replace(".py", ".png")
    assert f"wrote {output}" in capsys.readouterr().out
    assert np.asarray(Image.open(output)).shape == (22 + 256, 4 * 260 - 4, 3)  # four labelled 128x128 images, enlarged 2x


def test_extract_and_move_compares_with_the_exact_render(tiny_pipeline_dir, tmp_path, monkeypatch):
    run_example("extract_and_move.py", "--model", tiny_pipeline_dir, "--out", tmp_path, "--steps", 1, "--right", 0.0,
                monkeypatch=monkeypatch)
    row = np.asarray(Image.open(tmp_path / "extract_and_move.png")).astype(int)
    frame, exact = row[22:, :256], row[22:, 3 * 260:]
    assert np.array_equal(frame, exact)  # a move by nothing re-renders the frame exactly


def test_animate_example(tiny_pipeline_dir, tmp_path, monkeypatch):
    run_example("animate.py", "--model", tiny_pipeline_dir, "--out", tmp_path, "--steps", 1, "--frames", 4, monkeypatch=monkeypatch)
    video, _ = read_video(tmp_path / "animate.mp4", max_side=None)
    side_by_side, _ = read_video(tmp_path / "animate.gif", max_side=None)
    assert video.shape == (4, 3, 128, 128) and side_by_side.shape == (4, 3, 22 + 256, 2 * 256 + 4)
    exact = side_by_side[:, :, 22:, :256]
    assert (exact[0] - exact[-1]).abs().max() > 0.2  # object and camera moved


def test_finetune_example_trains_the_denoiser_and_keeps_the_autoencoder(tiny_pipeline_dir, tmp_path):
    import json

    from neuralassets.pipelines import NeuralAssetsPipeline

    # run as a user runs it: a process of its own, with its own accelerate state
    done = subprocess.run([sys.executable, str(EXAMPLES / "finetune.py"), "--model", str(tiny_pipeline_dir), "--out", str(tmp_path),
                           "--video-pairs", "6", "--edit-pairs", "6", "--edits", "translation,multi_object", "--workers", "0",
                           "--minutes", "0.01", "--batch-size", "4"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.splitlines()[-2])
    assert summary["pairs"] == 12 and 11 <= summary["steps"] < 1000  # the time limit ends the run (at least its timed steps)
    before, after = (NeuralAssetsPipeline.from_pretrained(f) for f in (tiny_pipeline_dir, tmp_path / "pipeline"))
    vae, vae_after = before.vae.state_dict(), after.vae.state_dict()
    assert all((vae[k] - vae_after[k]).abs().max() <= vae[k].abs().max() / 200 + 1e-6 for k in vae)  # int8 storage only
    assert not torch.equal(before.denoiser.state_dict()["model.proj_out.weight"], after.denoiser.state_dict()["model.proj_out.weight"])
    assert json.loads((tmp_path / "edit_pairs" / "dataset.json").read_text())["edit_tasks"] == ["translation", "multi_object"]


def test_examples_fail_with_a_message_not_a_traceback(tmp_path):
    def run(name, *args):
        done = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        return done.stderr

    err = run("real_models.py")
    assert "needs real pretrained models" in err and "--sam-checkpoint PTH" in err and "--dinov2 PATH" in err
    assert "sam.pth: SAM checkpoint not found" in run("real_models.py", "--sam-checkpoint", tmp_path / "sam.pth", "--pipeline", tmp_path)
    assert "model_index.json missing" in run("animate.py", "--model", tmp_path)

"""Faults: a training run killed mid-checkpoint, a full disk, an interrupted Scene save, an interrupted batch extraction.

Each test breaks a write on purpose and checks what is left on disk: the previous good
file still loads, the partial one is never taken for a good one, and the error says what failed.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_models import one_thread  # noqa: F401 (autouse fixture)

from neuralassets import Scene, SceneFormatError
from neuralassets.errors import WeightsError
from neuralassets.image_ops import quantize
from neuralassets.training import Trainer, load_config
from neuralassets.training.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# Runs ``neuralassets train`` with its Nth checkpoint write stalled after half the file is on
# disk: the test kills the process there, so the kill lands inside a write every time.
STALLING_TRAINER = '''
import os, sys, time
import safetensors.torch

stall_at, signal_file = int(sys.argv[1]), sys.argv[2]
real_save_file = safetensors.torch.save_file
checkpoint_writes = 0


def stalling_save_file(tensors, filename, metadata=None):
    global checkpoint_writes
    if os.path.basename(filename).startswith(".step_"):
        checkpoint_writes += 1
        if checkpoint_writes == stall_at:
            real_save_file(tensors, filename, metadata=metadata)
            with open(filename, "r+b") as f:
                f.truncate(os.path.getsize(filename) // 2)
            open(signal_file, "w").close()
            time.sleep(600)
    return real_save_file(tensors, filename, metadata=metadata)


safetensors.torch.save_file = stalling_save_file
from neuralassets.cli import main

sys.exit(main(sys.argv[3:]))
'''


def small_config(tmp_path: Path, max_steps: int) -> Path:
    """configs/tiny.yaml with 4 training pairs, a checkpoint and a log record every step."""
    data = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    data.update(output_dir=str(tmp_path / "run"), max_steps=max_steps, log_every=1, checkpoint_every=1, sample_every=0)
    data["data"].update(length=4, num_samples=1)
    data["optim"].update(batch_size=2)
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_sigkill_during_a_checkpoint_write_resumes_from_the_previous_checkpoint(tmp_path):
    config_path = small_config(tmp_path, max_steps=3)
    wrapper = tmp_path / "stalling_trainer.py"
    wrapper.write_text(STALLING_TRAINER)
    writing = tmp_path / "writing"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(wrapper), "2", str(writing), "train", "--config", str(config_path)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not writing.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the trainer never reached its second checkpoint write:\n{proc.communicate()[0][-3000:]}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    folder = tmp_path / "run" / "checkpoints"
    assert [p.name for p in list_checkpoints(folder)] == ["step_00000001.safetensors"]
    partial = folder / ".step_00000002.safetensors.tmp"
    with pytest.raises(WeightsError, match="cannot read checkpoint"):  # the half-written file really is broken...
        load_checkpoint(partial)
    saved, meta = load_checkpoint(folder / "step_00000001.safetensors")  # ...and the previous one is whole
    assert meta["step"] == 1
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    killed_run_loss = next(r["loss"] for r in logged if r.get("step") == 2 and "loss" in r)

    trainer = Trainer(load_config(config_path))  # auto-resume picks the newest complete checkpoint
    assert trainer.step == 1
    state = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    assert all(torch.equal(value, saved[f"model.{name}"]) for name, value in state.items())
    losses = trainer.train()
    assert len(losses) == 2 and losses[0] == pytest.approx(killed_run_loss, rel=1e-4)  # step 2 again, exactly resumed
    assert [p.name for p in list_checkpoints(folder)] == [f"step_0000000{i}.safetensors" for i in (1, 2, 3)]
    assert not list(folder.glob("*.tmp")) and load_checkpoint(folder / "step_00000003.safetensors")[1]["step"] == 3


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), "safetensors"])
def test_disk_full_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch, failure):
    import safetensors.torch
    from safetensors import SafetensorError

    real_save_file = safetensors.torch.save_file
    tensors = {"w": torch.arange(1000.0)}
    first = save_checkpoint(tmp_path, 1, tensors, {"note": "first"}, keep=1)

    def full_disk(data, filename, metadata=None):
        real_save_file(data, filename, metadata=metadata)
        with open(filename, "r+b") as f:
            f.truncate(100)  # part of the file made it to disk
        if failure == "safetensors":  # how safetensors itself reports an I/O error
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        raise failure

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OSError, match=r"step_00000002\.safetensors: checkpoint not written \(.*No space left on device.*\); "
                                      "earlier checkpoints are kept"):
        save_checkpoint(tmp_path, 2, {"w": torch.zeros(1000)}, {"note": "second"}, keep=1)
    assert list_checkpoints(tmp_path) == [first] and not list(tmp_path.glob(".*.tmp"))  # no partial file left behind
    loaded, meta = load_checkpoint(first)
    assert torch.equal(loaded["w"], tensors["w"]) and meta["note"] == "first"


def _changed_scene(scene: Scene) -> Scene:
    """The same scene with other frames and metadata (frames stay multiples of 1/255)."""
    other = scene.copy()
    other.frames = quantize(1 - other.frames)
    other.metadata = {"seed": 1}
    return other


def test_interrupted_scene_save_fails_loudly_instead_of_mixing_scenes(tmp_path, simple_scene, monkeypatch):
    import neuralassets.scene as scene_module

    folder = simple_scene.save(tmp_path / "s")
    newer = _changed_scene(simple_scene)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # stopped after the frames were rewritten, before tensors and scene.json
    monkeypatch.setattr(scene_module, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        newer.save(folder)
    with pytest.raises(SceneFormatError, match=r"scene\.json: missing; not a saved Scene folder"):
        Scene.load(folder)
    monkeypatch.undo()
    assert torch.equal(Scene.load(newer.save(folder)).frames, newer.frames)  # saving again repairs the folder

    def fails_on_scene_json(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Path, "write_text", fails_on_scene_json)  # everything but scene.json was written
    with pytest.raises(OSError, match="No space left"):
        simple_scene.save(folder)
    monkeypatch.undo()
    with pytest.raises(SceneFormatError, match=r"scene\.json: missing"):
        Scene.load(folder)


def test_interrupted_scene_zip_save_keeps_the_previous_archive(tmp_path, simple_scene, monkeypatch):
    import zipfile

    archive = simple_scene.save_zip(tmp_path / "s.zip")

    def interrupted(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(zipfile.ZipFile, "write", interrupted)
    with pytest.raises(OSError):
        _changed_scene(simple_scene).save_zip(archive)
    monkeypatch.undo()
    assert torch.equal(Scene.load_zip(archive).frames, simple_scene.frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zip"]  # and no partial archive is left


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from neuralassets.data import GeneratorConfig, generate_scene
    from neuralassets.video import write_video

    folder = tmp_path_factory.mktemp("videos")
    for i in range(2):
        scene = generate_scene(40 + i, GeneratorConfig(image_size=64, num_frames=3, max_objects=3))
        write_video(folder / f"clip{i}.gif", scene.frames, fps=5)
    return folder


def test_interrupted_batch_extraction_redoes_only_the_unfinished_video(videos, tmp_path, monkeypatch, capsys):
    """An extraction killed while saving its second Scene: the rerun skips the first and redoes the second."""
    import neuralassets.scene as scene_module
    from neuralassets.cli import main

    real_save_file = scene_module.save_file
    saves = []

    def killed_on_second_save(*args, **kwargs):
        saves.append(args[1])
        if len(saves) == 2:
            raise KeyboardInterrupt
        return real_save_file(*args, **kwargs)

    out = tmp_path / "scenes"
    monkeypatch.setattr(scene_module, "save_file", killed_on_second_save)
    with pytest.raises(KeyboardInterrupt):
        main(["extract", str(videos), "--batch", "--out", str(out), "--no-progress"])
    monkeypatch.undo()
    assert (out / "clip1" / "frames").is_dir() and not (out / "clip1" / "scene.json").exists()
    first = Scene.load(out / "clip0")
    capsys.readouterr()
    assert main(["extract", str(videos), "--batch", "--out", str(out), "--no-progress"]) == 0
    assert "2 videos, 1 already extracted, 1 to do" in capsys.readouterr().out
    assert torch.equal(Scene.load(out / "clip0").frames, first.frames)
    redone = Scene.load(out / "clip1")
    assert redone.num_frames == 3 and len(redone) >= 1

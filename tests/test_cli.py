"""The ``neuralassets`` command as a person uses it: which frame a render shows, what errors and banners
name, what a rerun leaves behind, Scene zips, closed pipes, progress on stderr and CPU threads."""
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neuralassets import Scene
from neuralassets import edits as E
from neuralassets.cli import EXIT_BROKEN_PIPE, build_parser, choose_threads, main
from neuralassets.commands.data import seed_split
from neuralassets.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A 3-frame generated scene (so --ground-truth works) saved as a folder."""
    from neuralassets.data import GeneratorConfig, generate_scene

    scene = generate_scene(2, GeneratorConfig(image_size=32, num_frames=3, min_objects=2, max_objects=3))
    return scene, scene.save(tmp_path_factory.mktemp("generated") / "scene")


def truth(scene: Scene, frame: int) -> np.ndarray:
    from neuralassets.data import render

    return (render(scene, frames=[frame]).rgb[0].permute(1, 2, 0) * 255).round().byte().numpy()


# --------------------------------------------------------------------------------------
# Which frame is rendered
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, frame, why", [
    ([], 0, "the source frame"),
    (["--frames", "2,1"], 1, "the first frame --frames edits"),
    (["--render-frame", "-1"], 2, "chosen with --render-frame"),
])
def test_render_frame_defaults_to_the_source_frame_and_is_printed(generated, tmp_path, capsys, flags, frame, why):
    scene, folder = generated
    out = tmp_path / "out"
    assert main(["edit", str(folder), "--out", str(out), "--move", "1:0.1,0,0", "--ground-truth", "--allow-offscreen",
                 *flags]) == 0
    assert f"ground_truth.png: frame {frame} ({why}) rendered by the synthetic renderer" in capsys.readouterr().out
    edited = Scene.load(out)
    assert np.array_equal(np.asarray(Image.open(out / "ground_truth.png")), truth(edited, frame))


def test_model_render_is_of_the_source_frame(tmp_path, simple_scene, tiny_pipeline_dir, capsys):
    from neuralassets.pipelines import NeuralAssetsPipeline

    scene = simple_scene.copy()
    scene.assets[0].source_frame = 1
    scene.save(tmp_path / "scene")
    assert main(["edit", str(tmp_path / "scene"), "--out", str(tmp_path / "out"), "--move", "2:0.1,0,0", "--render",
                 "--weights", str(tiny_pipeline_dir), "--steps", "2"]) == 0
    assert "render.png: frame 1 (the source frame), 32x24, rendered by the model" in capsys.readouterr().out
    expected = NeuralAssetsPipeline.from_pretrained(tiny_pipeline_dir)(
        Scene.load(tmp_path / "out"), target_frame=1, source_frame=1, num_inference_steps=2,
        generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "render.png")), expected)


# --------------------------------------------------------------------------------------
# Messages name the command's flags
# --------------------------------------------------------------------------------------

def test_an_offscreen_edit_names_the_allow_offscreen_flag(tmp_path, simple_scene, capsys):
    simple_scene.save(tmp_path / "scene")
    args = ["edit", str(tmp_path / "scene"), "--out", str(tmp_path / "out")]
    assert main([*args, "--move", "1:0,-9,0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuralassets edit: error: asset 1 (obj0) would be out of view (frame 0: outside the 32x24 view")
    assert err.rstrip().endswith("; pass --allow-offscreen to allow it") and "check_visibility" not in err
    # a replayed edit list too, and --allow-offscreen lets it through
    E.save_edits(tmp_path / "edits.json", E.history(E.move(simple_scene, 1, (0, -9, 0), check_visibility="ignore")))
    assert main([*args, "--edits", str(tmp_path / "edits.json")]) == 2
    err = capsys.readouterr().err
    assert "edits[0] (move): asset 1 (obj0) would be out of view" in err and err.rstrip().endswith("pass --allow-offscreen to allow it")
    assert main([*args, "--edits", str(tmp_path / "edits.json"), "--allow-offscreen"]) == 0
    assert "neuralassets edit: warning: asset 1 (obj0) would be out of view" in capsys.readouterr().err
    assert not (tmp_path / "scene" / "edits.json").exists()


def test_the_editor_banner_names_the_share_flag(monkeypatch, capsys):
    import gradio as gr

    launched = []
    monkeypatch.setenv("GRADIO_TEMP_DIR", "unset")  # launch() points it at its own folder; restored afterwards
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda app: launched.append(app))
    assert main(["editor", "--port", str(_free_port())]) == 0
    try:
        out = capsys.readouterr().out
        assert f"neuralassets editor: serving on {launched[0].local_url}" in out
        assert "pass --share for a public link" in out and "share=True" not in out
    finally:
        launched[0].close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------
# --ground-truth on a scene the generator did not make
# --------------------------------------------------------------------------------------

def test_ground_truth_of_an_extracted_scene_warns_and_the_model_render_goes_ahead(tmp_path, simple_scene, tiny_pipeline_dir,
                                                                                 capsys):
    simple_scene.save(tmp_path / "scene")
    assert main(["edit", str(tmp_path / "scene"), "--out", str(tmp_path / "out"), "--move", "2:0.1,0,0", "--render",
                 "--ground-truth", "--weights", str(tiny_pipeline_dir), "--steps", "1"]) == 0
    captured = capsys.readouterr()
    assert "neuralassets edit: warning: --ground-truth: this scene has no exact re-render, so ground_truth.png is not " \
           "written (scene.metadata[\"renderer\"]: missing" in captured.err
    assert "render.png: frame 0 (the source frame), 32x24, rendered by the model" in captured.out
    assert (tmp_path / "out" / "render.png").is_file() and not (tmp_path / "out" / "ground_truth.png").exists()


# --------------------------------------------------------------------------------------
# The output folder
# --------------------------------------------------------------------------------------

def test_a_rerun_replaces_every_output_of_the_previous_run(generated, tmp_path):
    scene, folder = generated
    out = tmp_path / "out"
    assert main(["edit", str(folder), "--out", str(out), "--remove", "1", "--ground-truth", "--allow-offscreen"]) == 0
    assert (out / "ground_truth.png").is_file() and (out / "masks" / "asset_0002" / "00000.png").is_file()
    assert main(["edit", str(folder), "--out", str(out), "--remove", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["edits.json", "frames", "masks", "scene.json",
                                                   "tensors.safetensors"]  # no ground_truth.png from the first run
    assert not (out / "masks" / "asset_0002").exists()  # the removed asset's masks are not left over either
    assert [e.op for e in E.load_edits(out / "edits.json")] == ["remove"] and 2 not in Scene.load(out).asset_ids


@pytest.mark.parametrize("where, message", [
    (lambda t: t / "scene", "is the input scene"),
    (lambda t: t / "scene" / "edited", "lies inside the input scene"),
    (lambda t: t, "contains the input scene"),
])
def test_out_on_the_input_scene_is_refused_unless_overwrite(tmp_path, simple_scene, capsys, where, message):
    folder = simple_scene.save(tmp_path / "scene")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    out = where(tmp_path)
    assert main(["edit", str(folder), "--out", str(out), "--remove", "1"]) == 2
    assert f"error: --out {out}: {message} {folder}; write the edit to another folder, or pass --overwrite" \
           in capsys.readouterr().err
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before  # nothing written
    if out == folder:
        assert main(["edit", str(folder), "--out", str(out), "--remove", "1", "--overwrite"]) == 0
        assert Scene.load(folder).asset_ids == [2]


def test_out_holding_other_files_is_refused_unless_overwrite_which_keeps_them(tmp_path, simple_scene, capsys):
    simple_scene.save_zip(tmp_path / "s.zip")
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    assert main(["edit", str(tmp_path / "s.zip"), "--out", str(out), "--remove", "1"]) == 2
    assert "--out " + str(out) + ": holds files this command did not write (holiday.jpg)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]
    assert main(["edit", str(tmp_path / "s.zip"), "--out", str(out), "--remove", "1", "--overwrite"]) == 0
    assert (out / "holiday.jpg").read_bytes() == b"jpeg" and Scene.load(out).asset_ids == [2]


# --------------------------------------------------------------------------------------
# Scene zips
# --------------------------------------------------------------------------------------

def test_every_scene_argument_takes_a_scene_zip(tmp_path, simple_scene, capsys):
    simple_scene.save_zip(tmp_path / "s.zip")
    other = simple_scene.replace(frames=simple_scene.frames.flip(-1))
    nested = tmp_path / "other.zip"  # a zipped Scene folder: entries under other/
    folder = other.save(tmp_path / "other")
    with zipfile.ZipFile(nested, "w") as zf:
        for f in folder.rglob("*"):
            zf.write(f, f.relative_to(tmp_path).as_posix())
    assert main(["scene", "info", str(tmp_path / "s.zip")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 's.zip'}: 3 frames of 32x24, 2 assets")
    assert main(["edit", str(tmp_path / "s.zip"), "--out", str(tmp_path / "out"), "--swap", "1:2",
                 "--background", str(nested)]) == 0
    edited = Scene.load(tmp_path / "out")
    assert torch.equal(edited.background.image, other.frames[0]) and edited.asset(1).name == "obj1"
    # the recorded background name is the zip, so the edit list replays without --other
    assert main(["edit", str(tmp_path / "s.zip"), "--out", str(tmp_path / "again"), "--edits",
                 str(tmp_path / "out" / "edits.json")]) == 0
    assert torch.equal(Scene.load(tmp_path / "again").background.image, other.frames[0])


def test_the_demos_scene_zip_opens_in_scene_info_and_edit(tmp_path, capsys):
    from neuralassets.demo import extract_sample, sample_scenes

    scene, _ = extract_sample(sample_scenes()[0])
    archive = scene.save_zip(tmp_path / "demo_scene.zip")  # as run_demo writes it
    assert main(["scene", "info", str(archive)]) == 0
    assert f"{archive}: 8 frames of 128x128, {len(scene)} assets" in capsys.readouterr().out
    assert main(["edit", str(archive), "--out", str(tmp_path / "out"), "--move", f"{scene.assets[0].id}:0.1,0,0"]) == 0
    assert Scene.load(tmp_path / "out").num_frames == 8


def test_a_file_that_is_neither_folder_nor_zip_is_named(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["scene", "info", str(tmp_path / "notes.txt")]) == 2
    assert f"{tmp_path / 'notes.txt'}: neither a saved Scene folder nor a Scene zip" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# A closed pipe
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["scene", "info", "SCENE"], ["--help"]])
def test_a_closed_pipe_ends_quietly(tmp_path, simple_scene, args):
    folder = simple_scene.save(tmp_path / "scene")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "neuralassets.cli", *[str(folder) if a == "SCENE" else a for a in args]]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader is gone before anything is written, as `| head -0` would be
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in ((0, EXIT_BROKEN_PIPE) if args == ["--help"] else (EXIT_BROKEN_PIPE,))
    assert err == ""
    # and through a shell pipeline, as a person types it
    shell = subprocess.run(["bash", "-c", shlex.join(command) + " | head -1"], capture_output=True, env=env, timeout=120)
    assert shell.returncode == 0 and shell.stderr == b"" and len(shell.stdout.decode().splitlines()) == 1


# --------------------------------------------------------------------------------------
# data: progress, help, splits
# --------------------------------------------------------------------------------------

def test_data_scene_and_preview_report_progress_and_the_seeds_split(tmp_path, capsys):
    assert main(["data", "scene", "--seed", "1000003", "--image-size", "32", "--frames", "2", "--out", str(tmp_path / "s")]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("scene: seed 1000003 (val split, scene 3), 2 frames of 32x32...\nscene: ")
    assert "objects rendered in" in captured.err and captured.out.rstrip().endswith("seed 1000003, val split, scene 3")
    assert main(["data", "preview", "--seed", "4", "--scenes", "2", "--image-size", "32", "--out", str(tmp_path / "p.png")]) == 0
    err = capsys.readouterr().err
    assert "scene 1/2: seed 4 (train split, scene 4)" in err and "scene 2/2: seed 5 (train split, scene 5)" in err


def test_seed_splits_and_help_texts():
    assert seed_split(0) == "train split, scene 0"
    assert seed_split(2_000_007) == "test split, scene 7"
    assert seed_split(1_500_000) == "in no split"
    parser = build_parser()
    data = next(a for a in parser._subparsers._group_actions[0].choices["data"]._actions if a.dest == "data_command")
    for name in ("preview", "scene", "make"):
        helps = {tuple(a.option_strings): a.help for a in data.choices[name]._actions}
        assert "width and height of the square frames" in helps[("--image-size",)]
        if name != "make":
            assert "1000000-1009999 are the val split" in helps[("--seed",)]


# --------------------------------------------------------------------------------------
# CPU threads
# --------------------------------------------------------------------------------------

def test_choose_threads(monkeypatch):
    import neuralassets.cli as cli

    monkeypatch.setattr(cli, "_TORCH_DEFAULT_THREADS", 8)  # torch's own count of physical cores
    assert choose_threads({"NEURALASSETS_THREADS": "3", "OMP_NUM_THREADS": "1"}, cores=2, load=0.0) == 3
    assert choose_threads({"OMP_NUM_THREADS": "1,1"}, cores=8, load=0.0) == 1
    assert choose_threads({}, cores=2, load=0.3) == 2  # an idle machine: every core
    assert choose_threads({}, cores=2, load=1.2) == 1  # one core is busy elsewhere
    assert choose_threads({}, cores=2, load=7.0) == 1  # never fewer than one
    assert choose_threads({}, cores=16, load=2.0) == 8  # no more than torch's physical cores
    with pytest.raises(ConfigError, match=r"NEURALASSETS_THREADS='two': expected a positive integer"):
        choose_threads({"NEURALASSETS_THREADS": "two"})


def test_the_command_applies_its_thread_setting(tmp_path, simple_scene, monkeypatch, capsys):
    folder = simple_scene.save(tmp_path / "scene")
    threads = torch.get_num_threads()
    try:
        monkeypatch.setenv("NEURALASSETS_THREADS", "1")
        torch.set_num_threads(2)
        assert main(["scene", "info", str(folder)]) == 0 and torch.get_num_threads() == 1
        monkeypatch.setenv("NEURALASSETS_THREADS", "0")
        assert main(["scene", "info", str(folder)]) == 2
        assert "error: NEURALASSETS_THREADS='0': expected a positive integer" in capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)


def test_geometric_render_of_a_footage_like_scene_is_full_size_and_keeps_unchanged_pixels(tmp_path, capsys):
    """A 128 x 96 scene with no generator metadata (as extracted footage): the object moves, nothing else changes."""
    from neuralassets.data import GeneratorConfig, generate_scene
    from neuralassets.data import render as exact_render
    from neuralassets.framing import window_scene
    from neuralassets.image_ops import projected_box

    generated = window_scene(generate_scene(7, GeneratorConfig(image_size=128, num_frames=2, min_objects=2, max_objects=2)),
                             (0, 16, 128, 112))
    target = max(generated.assets, key=lambda a: int(a.masks[0].sum()))
    truth = exact_render(E.move(generated, target.id, (0.3, 0.0, 0.0), check_visibility="warn"), frames=[0]).rgb[0]
    footage = generated.replace(metadata={"name": "clip"})  # no renderer parameters: only geometry can draw it
    footage.save(tmp_path / "clip")
    assert main(["edit", str(tmp_path / "clip"), "--out", str(tmp_path / "out"), "--move", f"{target.id}:0.3,0,0",
                 "--render", "--backend", "geometric"]) == 0
    assert "frame 0 (the source frame), 128x96, rendered by the geometric renderer" in capsys.readouterr().out
    image = torch.from_numpy(np.array(Image.open(tmp_path / "out" / "render.png"))).permute(2, 0, 1).float() / 255
    assert image.shape == (3, 96, 128)
    moved = Scene.load(tmp_path / "out")
    region = torch.zeros(96, 128, dtype=torch.bool)
    for scene in (footage, moved):  # where the object was and where it is now, with a margin for its rim
        (x0, y0), (x1, y1) = projected_box(scene, target.id, 0).amin(0).tolist(), projected_box(scene, target.id, 0).amax(0).tolist()
        region[max(int(y0) - 2, 0):int(y1) + 3, max(int(x0) - 2, 0):int(x1) + 3] = True
    photo = footage.frames[0]
    assert torch.equal(image[:, ~region], photo[:, ~region])  # every pixel the edit did not touch is the photo's own
    error = ((image - truth) ** 2)[:, region].mean()
    assert error < 0.5 * ((photo - truth) ** 2)[:, region].mean()  # the object moved towards where it now stands


def test_the_exact_back_end_refuses_footage_before_writing(tmp_path, simple_scene, capsys):
    simple_scene.save(tmp_path / "clip")
    assert main(["edit", str(tmp_path / "clip"), "--out", str(tmp_path / "out"), "--move", "1:0.1,0,0", "--render",
                 "--backend", "exact"]) == 2
    err = capsys.readouterr().err
    assert "--backend exact: this scene was not made by the synthetic generator" in err and "--backend geometric" in err
    assert not (tmp_path / "out").exists()

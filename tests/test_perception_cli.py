"""``neuralassets extract``: single video, overlay, batch mode with skipping and bad files."""
import pytest
import torch

from neuralassets import Scene
from neuralassets.cli import main
from neuralassets.video import write_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from neuralassets.data import GeneratorConfig, generate_scene

    folder = tmp_path_factory.mktemp("videos")
    for i in range(2):
        scene = generate_scene(40 + i, GeneratorConfig(image_size=64, num_frames=4, max_objects=3))
        write_video(folder / f"clip{i}.gif", scene.frames, fps=5)  # GIF stores 1/100 s delays: 5 fps is exact
    return folder


def test_extract_one_video_writes_a_scene_and_overlay(videos, tmp_path, capsys):
    assert main(["extract", str(videos / "clip0.gif"), "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    scene = Scene.load(tmp_path / "s")
    assert scene.num_frames == 4 and scene.metadata["source"] == {"video": "clip0.gif", "fps": pytest.approx(5.0)}
    assert scene.metadata["extraction"]["segmenter"] == "LearnedPerception"  # the shipped default
    assert (tmp_path / "s" / "overlay.png").is_file()
    assert main(["extract", str(videos / "clip1.gif"), "--out", str(tmp_path / "g"), "--overlay", "gif", "--no-progress",
                 "--max-frames", "2"]) == 0
    assert Scene.load(tmp_path / "g").num_frames == 2 and (tmp_path / "g" / "overlay.gif").is_file()


def test_batch_skips_finished_scenes_and_reports_bad_videos(videos, tmp_path, capsys):
    (videos / "broken.mp4").write_text("not a video")
    out = tmp_path / "out"
    assert main(["extract", str(videos), "--batch", "--out", str(out), "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert "3 videos, 0 already extracted, 3 to do" in text and "skipped" in text and "broken.mp4" in text
    first = Scene.load(out / "clip0")
    assert main(["extract", str(videos), "--batch", "--out", str(out), "--no-progress"]) == 1
    assert "2 already extracted, 1 to do" in capsys.readouterr().out
    assert torch.equal(Scene.load(out / "clip0").frames, first.frames)
    (videos / "broken.mp4").unlink()


def test_bad_options_are_reported(videos, tmp_path, capsys):
    assert main(["extract", str(videos / "clip0.gif"), "--out", str(tmp_path / "x"), "--prompt", "red mug"]) == 2
    assert "--prompt needs --detector" in capsys.readouterr().err
    assert main(["extract", str(videos / "missing.mp4"), "--out", str(tmp_path / "x")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["extract", str(videos / "clip0.gif"), "--batch", "--out", str(tmp_path / "x")]) == 2
    assert "expects a folder of videos" in capsys.readouterr().err


def test_warnings_are_said_as_the_commands_own_lines(videos, tmp_path, capsys):
    from neuralassets.data import GeneratorConfig, generate_scene

    grey = generate_scene(42, GeneratorConfig(image_size=64, num_frames=3, max_objects=3)).frames.mean(1, keepdim=True)
    write_video(tmp_path / "grey.gif", grey.expand(-1, 3, -1, -1), fps=5)
    assert main(["extract", str(tmp_path / "grey.gif"), "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "neuralassets extract: warning: extract: the clip is grayscale" in err
    assert ".py:" not in err and "Warning:" not in err  # no source file, line or class name before the message

"""``neuralassets demo`` end to end with a tiny random pipeline: grid, animation, scene, messages."""
import numpy as np
from PIL import Image
from test_models import one_thread  # noqa: F401 (autouse fixture)

from neuralassets import Scene
from neuralassets.cli import main
from neuralassets.demo import ANIMATION_FRAMES, SCALE
from neuralassets.pipelines import neural_assets
from neuralassets.video import read_video


def test_demo_writes_grid_animation_and_scene(tiny_pipeline_dir, tmp_path, capsys):
    assert main(["demo", "--model", str(tiny_pipeline_dir), "--out", str(tmp_path), "--steps", "2", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "extracted 4 objects with the ground-truth segmenter, depth lifting and the known cameras" in printed
    for name in ("demo_edits.png", "demo_animation.gif", "demo_animation.mp4", "demo_scene.zip"):
        assert f"{tmp_path / name}" in printed and (tmp_path / name).is_file()

    grid = np.asarray(Image.open(tmp_path / "demo_edits.png").convert("RGB"))
    side, gap, header, caption = 128 * SCALE, 4, 24, 20
    assert grid.shape == (header + 6 * (caption + side + gap), 3 * (side + gap) - gap, 3)

    def cell(row, column):
        y, x = header + row * (caption + side + gap) + caption, column * (side + gap)
        return grid[y:y + side, x:x + side].astype(int)

    assert np.array_equal(cell(0, 0), cell(0, 1))  # unedited: the exact re-render is the frame itself
    for row in range(1, 6):  # every edit changes the exact re-render
        assert np.abs(cell(row, 1) - cell(row, 0)).max() > 50
        assert np.array_equal(cell(row, 0), cell(0, 0))  # the "before" column is always frame 0
    assert cell(0, 2).std() > 0  # the model column is filled

    frames, _ = read_video(tmp_path / "demo_animation.gif", max_side=None)
    assert frames.shape == (ANIMATION_FRAMES, 3, 22 + side, 2 * side + gap)
    truth = frames[:, :, 22:, :side]
    assert (truth[0] - truth[-1]).abs().max() > 0.2  # the object moved in the exact video
    assert len(Scene.load_zip(tmp_path / "demo_scene.zip")) == 4


def test_demo_without_weights_says_how_to_get_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(neural_assets, "DEFAULT_WEIGHTS", tmp_path / "weights")
    assert main(["demo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuralassets demo: error: no default weights in weights/") and "neuralassets train" in err
    assert main(["demo", "--model", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "model_index.json missing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

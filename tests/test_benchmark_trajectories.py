import json
import math

import pytest
import torch
from benchmark_scripts import load_benchmark

from neuralassets import geometry
from neuralassets.benchmark.baselines import CopyPasteMethod
from neuralassets.benchmark.trajectories import (
    FRAME_METRICS,
    AnimationConfig,
    AnimationResult,
    make_animation,
    run_animation_benchmark,
)
from neuralassets.benchmark.trajectories_report import markdown, write_report
from neuralassets.data.synthetic import GeneratorConfig, generate_scene
from neuralassets.errors import ValidationError
from neuralassets.metrics import region_mask
from neuralassets.pipelines import NeuralAssetsPipeline

SMALL = {"image_size": 48, "min_objects": 4, "max_objects": 6}
SEEDS = range(1_000_000, 1_000_002)  # validation seeds
T = 24


@pytest.fixture(scope="module")
def still():
    return generate_scene(SEEDS[0], GeneratorConfig(**SMALL), frames=[0])


def _smoothstep(s: float) -> float:
    return 3 * s**2 - 2 * s**3


def test_move_turn_follows_its_keys_and_leaves_the_other_objects(still):
    anim = make_animation("move_turn", 0, SEEDS[0], still, T)
    assert anim.video.num_frames == T and anim.truth.shape == (T, 3, 48, 48)
    (moving,) = anim.animated_ids
    dx, dy = anim.params[str(moving)]["move_xy_m"]
    yaw = math.radians(anim.params[str(moving)]["yaw_deg"])
    source, a = still.asset(moving), anim.video.asset(moving)
    footprint = float(source.sizes[0, :2].max())
    assert 1.0 * footprint <= math.hypot(dx, dy) <= 3.0 * footprint and 45 <= abs(math.degrees(yaw)) <= 150
    for t in (0, 6, 17, T - 1):
        # positions ease in and out (smoothstep), the turn is slerped at constant speed
        s = t / (T - 1)
        expected = source.centers[0] + _smoothstep(s) * torch.tensor([dx, dy, 0.0])
        assert torch.allclose(a.centers[t], expected, atol=1e-5), t
        turn = geometry.euler_to_matrix(torch.tensor(yaw * s), torch.tensor(0.0), torch.tensor(0.0))
        assert torch.allclose(a.rotations[t], turn @ source.rotations[0], atol=1e-5), t
        assert torch.allclose(a.sizes[t], source.sizes[0])
    for other in anim.video.assets:
        if other.id != moving:
            assert torch.allclose(other.centers, still.asset(other.id).centers[0].expand(T, 3))
    # frame 0 is the unedited source, re-rendered exactly
    assert (anim.truth[0] - still.frames[0]).abs().max() < 1e-6
    assert not torch.allclose(anim.truth[-1], anim.truth[0])


def test_orbit_starts_at_the_source_camera_and_turns_about_the_vertical(still):
    anim = make_animation("orbit", 0, SEEDS[0], still, T)
    first, last, cam = anim.video.cameras[0], anim.video.cameras[-1], still.cameras[0]
    assert torch.allclose(first.R, cam.R, atol=1e-5) and torch.allclose(first.t, cam.t, atol=1e-4)
    look, _ = geometry.ground_intersection(torch.tensor([[24.0, 24.0]]), cam.K, cam.R, cam.t)
    before, after = cam.center - look[0], last.center - look[0]
    assert after[2] == pytest.approx(float(before[2]), abs=1e-4)  # same height
    assert after[:2].norm() == pytest.approx(float(before[:2].norm()), abs=1e-4)  # same distance
    turned = math.degrees(math.atan2(float(after[1]), float(after[0])) - math.atan2(float(before[1]), float(before[0])))
    turned = (turned + 180) % 360 - 180
    assert turned == pytest.approx(anim.params["camera"]["orbit_deg"], abs=1e-3)
    assert 10 <= abs(turned) <= 30


def test_two_objects_move_two_different_objects(still):
    anim = make_animation("two_objects", 0, SEEDS[0], still, T)
    assert len(set(anim.animated_ids)) == 2
    for asset_id in anim.animated_ids:
        a = anim.video.asset(asset_id)
        assert (a.centers[-1] - a.centers[0]).norm() > 0.1


def test_animations_are_deterministic_per_seed(still):
    a = make_animation("move_turn", 0, SEEDS[0], still, T)
    b = make_animation("move_turn", 0, SEEDS[0], still, T)
    assert a.params == b.params and a.animated_ids == b.animated_ids and torch.equal(a.truth, b.truth)
    other = generate_scene(SEEDS[1], GeneratorConfig(**SMALL), frames=[0])
    assert make_animation("move_turn", 1, SEEDS[1], other, T).params != a.params


def test_frame_cases_are_blind_single_edits_of_each_frame(still):
    anim = make_animation("move_turn", 3, SEEDS[0], still, T)
    cases = anim.frame_cases()
    assert len(cases) == T
    for t in (0, 11, T - 1):
        case = cases[t]
        assert case.index == 3 * T + t and case.params["frame"] == t
        assert torch.equal(case.target, anim.truth[t]) and torch.equal(case.scene.frames[1], still.frames[0])
        a = case.scene.asset(anim.animated_ids[0])
        assert torch.equal(a.centers[1], anim.video.asset(a.id).centers[t])
        assert torch.equal(case.region, region_mask(anim.video, anim.animated_ids, (0, t)))


def test_unknown_trajectories_and_short_animations_are_refused(still):
    with pytest.raises(ValidationError, match="teleport"):
        make_animation("teleport", 0, SEEDS[0], still)
    with pytest.raises(ValidationError, match="at least 2 frames"):
        make_animation("move_turn", 0, SEEDS[0], still, 1)
    with pytest.raises(ValidationError, match="teleport"):
        run_animation_benchmark(AnimationConfig(SEEDS, trajectories=("teleport",)))


# -- runner and report ----------------------------------------------------------------

FRAMES = 6


@pytest.fixture(scope="module")
def tiny_result(tiny_pipeline_dir):
    pipe = NeuralAssetsPipeline.from_pretrained(tiny_pipeline_dir)
    config = AnimationConfig(SEEDS, cases=2, trajectories=("move_turn",), num_frames=FRAMES, generator_overrides=SMALL)
    return run_animation_benchmark(config, pipe, "tiny", [CopyPasteMethod()])


def test_runner_scores_every_frame_of_every_method(tiny_result):
    result = tiny_result
    assert result.methods == ["tiny video", "tiny single edits", "copy-paste"]
    assert len(result.rows) == 2 * FRAMES * 3
    assert {(r["index"], r["frame"]) for r in result.rows} == {(i, t) for i in range(2) for t in range(FRAMES)}
    for row in result.rows:
        assert all(math.isfinite(row[k]) for k in ("psnr", "psnr_box", "ssim", "ssim_box", "ms_per_frame"))
    # the video's frame 0 and the single edit of frame 0 share their noise (seed + index * T)
    frame0 = {r["method"]: r["psnr"] for r in result.rows if r["index"] == 1 and r["frame"] == 0}
    assert frame0["tiny video"] == pytest.approx(frame0["tiny single edits"], abs=1e-3)
    strip = result.filmstrips["move_turn"]
    assert strip.truth.shape[0] == len(strip.frames) == FRAMES and set(strip.predictions) == set(result.methods)


def test_drift_is_last_minus_first_of_the_per_frame_table(tiny_result):
    summary = tiny_result.summary()["move_turn"]
    for method in tiny_result.methods:
        table = tiny_result.per_frame("move_turn", method, "psnr_box")
        assert summary[method]["first"]["mean"] == pytest.approx(table[0]["mean"])
        assert summary[method]["last"]["mean"] == pytest.approx(table[-1]["mean"])
        assert summary[method]["drift"]["mean"] == pytest.approx(table[-1]["mean"] - table[0]["mean"])
        edited = sum(t["mean"] for t in table[1:]) / (FRAMES - 1)
        assert summary[method]["psnr_box"]["mean"] == pytest.approx(edited)
    video = tiny_result.per_frame("move_turn", "tiny video", "psnr_box")
    single = tiny_result.per_frame("move_turn", "tiny single edits", "psnr_box")
    difference = sum(v["mean"] - s["mean"] for v, s in zip(video[1:], single[1:])) / (FRAMES - 1)
    assert summary["video_minus_single"]["mean"] == pytest.approx(difference)


def test_runner_is_deterministic(tiny_result, tiny_pipeline_dir):
    pipe = NeuralAssetsPipeline.from_pretrained(tiny_pipeline_dir)
    config = AnimationConfig(SEEDS, cases=1, trajectories=("move_turn",), num_frames=FRAMES, generator_overrides=SMALL)
    again = run_animation_benchmark(config, pipe, "tiny", [CopyPasteMethod()])
    first = [r for r in tiny_result.rows if r["index"] == 0]
    for a, b in zip(first, again.rows, strict=True):
        assert [a[k] for k in ("method", "seed", "frame")] == [b[k] for k in ("method", "seed", "frame")]
        assert [a[k] for k in FRAME_METRICS] == pytest.approx([b[k] for k in FRAME_METRICS], abs=1e-4)


def test_runner_scores_the_render_alone_when_asked(tiny_pipeline_dir):
    from neuralassets.pipelines.thresholds import RenderThresholds

    pipe = NeuralAssetsPipeline.from_pretrained(tiny_pipeline_dir)
    pipe.thresholds = RenderThresholds(unchanged_below=10.0, changed_above=11.0)  # keep the photo wherever it sees
    config = AnimationConfig(SEEDS, cases=1, trajectories=("move_turn",), num_frames=2, generator_overrides=SMALL)
    kept = run_animation_benchmark(config, pipe, "tiny", single_edits=False)
    raw = run_animation_benchmark(config, pipe, "tiny", single_edits=False, keep_unchanged=False)

    def frame0(result):  # the source pose: the photo itself
        return next(row["psnr"] for row in result.rows if row["frame"] == 0)

    assert frame0(kept) > frame0(raw) + 5


def test_report_writes_tables_chart_and_filmstrip(tiny_result, tmp_path):
    written = write_report(tiny_result, tmp_path, "animation-quick")
    assert {p.name for p in written} == {"animation-quick.md", "animation-quick.json", "animation-quick_psnr.png",
                                         "animation-quick_filmstrip_move_turn.png"}
    text = (tmp_path / "animation-quick.md").read_text()
    assert "| tiny video |" in text and "| copy-paste |" in text and "drift of the video" in text
    assert f"| {FRAMES - 1} |" in text  # the per-frame table reaches the last frame
    data = json.loads((tmp_path / "animation-quick.json").read_text())
    drift = data["summary"]["move_turn"]["tiny video"]["drift"]["mean"]
    table = data["per_frame"]["move_turn"]["tiny video"]["psnr_box"]
    assert drift == pytest.approx(table[-1]["mean"] - table[0]["mean"], abs=1e-4)
    assert len(data["frames"]) == len(tiny_result.rows) and data["config"]["seeds"] == f"{SEEDS[0]}:{SEEDS[1] + 1}"


def test_markdown_without_a_model_has_no_acceptance_lines():
    result = AnimationResult({"split": "val", "seeds": "0:1", "cases": 1, "num_frames": 2, "generator_overrides": {}},
                             ["copy-paste"], ["move_turn"])
    for t, value in enumerate([100.0, 20.0]):
        result.rows.append({"trajectory": "move_turn", "index": 0, "seed": 0, "frame": t, "method": "copy-paste", "psnr": value,
                            "psnr_box": value, "ssim": 1.0, "ssim_box": 1.0, "identity": 1.0, "ms_per_frame": 1.0})
    text = markdown(result)
    assert "| copy-paste | 100.00 | 20.00 | -80.00 | 20.00 |" in text and "drift of the video" not in text


def _script():
    return load_benchmark("animation")


def test_script_quick_run_writes_quick_files(tiny_pipeline_dir, tmp_path):
    gen = [arg for k, v in SMALL.items() for arg in ("--gen", f"{k}={v}")]
    code = _script().main(["--quick", "--split", "val", "--cases", "1", "--frames", "3", "--trajectories", "orbit",
                           "--model", str(tiny_pipeline_dir), "--no-single-edits", "--out", str(tmp_path), *gen])
    assert code == 0
    assert {p.name for p in tmp_path.iterdir()} == {"animation-val-quick.md", "animation-val-quick.json",
                                                   "animation-val-quick_psnr.png", "animation-val-quick_filmstrip_orbit.png"}
    assert "| pipeline video |" in (tmp_path / "animation-val-quick.md").read_text()
    code = _script().main(["--quick", "--split", "val", "--cases", "1", "--frames", "3", "--trajectories", "orbit",
                           "--model", str(tiny_pipeline_dir), "--no-single-edits", "--out", str(tmp_path), "--raw",
                           "--name", "raw", *gen])
    assert code == 0 and "| pipeline-raw video |" in (tmp_path / "raw-quick.md").read_text()
    assert json.loads((tmp_path / "raw-quick.json").read_text())["config"]["raw"] is True


def test_script_rejects_bad_arguments(capsys):
    assert _script().main(["--trajectories", "teleport"]) == 2
    assert "teleport" in capsys.readouterr().err
    assert _script().main(["--cases", "0"]) == 2
    assert "--cases" in capsys.readouterr().err

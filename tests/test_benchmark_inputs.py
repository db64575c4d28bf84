import argparse
import dataclasses
import json

import pytest
import torch
from test_benchmark import SEEDS, SMALL

from neuralassets import geometry
from neuralassets.benchmark.baselines import CopyPasteMethod, GeometricMethod, IdentityMethod
from neuralassets.benchmark.harness import BenchmarkConfig, BenchmarkResult, run_benchmark
from neuralassets.benchmark.inputs import ExtractedInputs, PerturbedInputs, match_masks, transfer_edit
from neuralassets.benchmark.report import markdown, write_report, write_sweep_report
from neuralassets.cli import main as cli_main
from neuralassets.commands.bench import add_arguments, input_modes
from neuralassets.conditioning import conditioning_from_scene
from neuralassets.data.edit_cases import TASKS, VideoCache, make_case
from neuralassets.data.perturbations import PERTURBATIONS
from neuralassets.data.synthetic import select_frames
from neuralassets.perception import GroundTruthSegmenter
from neuralassets.scene import Camera, Scene


@pytest.fixture(scope="module")
def videos():
    return tuple(VideoCache(SMALL)(seed) for seed in SEEDS[:2])


@pytest.fixture(scope="module")
def cases(videos):
    made = {task: make_case(task, 0, SEEDS[0], *videos) for task in TASKS}
    return {task: case for task, case in made.items() if case is not None}


# -- matching ---------------------------------------------------------------------------

def _strip(*spans: tuple[int, int]) -> torch.Tensor:
    """(N, 1, 30) bool masks, each the columns [a, b) of a one-row image."""
    masks = torch.zeros(len(spans), 1, 30, dtype=torch.bool)
    for i, (a, b) in enumerate(spans):
        masks[i, 0, a:b] = True
    return masks


def test_masks_are_matched_one_to_one_by_the_largest_total_iou_not_greedily():
    truth = _strip((0, 10), (0, 8), (20, 24))
    found = _strip((0, 9), (2, 10), (22, 26))
    # IoU: t0-f0 9/10, t0-f1 8/10, t1-f0 8/9, t1-f1 6/10, t2-f2 2/6. Greedy would take t0-f0 (the best pair) and
    # leave t1-f1 (0.9 + 0.6 = 1.5); the assignment t0-f1, t1-f0 sums to 0.8 + 0.889 = 1.689. t2-f2 is under 0.5.
    assert match_masks(truth, found) == {0: 1, 1: 0}
    assert match_masks(truth, found, min_iou=0.3) == {0: 1, 1: 0, 2: 2}
    assert match_masks(truth, found[:0]) == {}


# -- carrying an edit over --------------------------------------------------------------

def test_a_clean_perturbation_gives_back_every_task_exactly(cases):
    for task, case in cases.items():
        prepared = PerturbedInputs({}).prepare(case)
        assert prepared.failed is None and prepared.exact is case, task
        a = conditioning_from_scene(case.scene, 1, 8, source_frame=0)
        b = conditioning_from_scene(prepared.scene, 1, 8, source_frame=0)
        for f in dataclasses.fields(a):
            assert torch.allclose(getattr(a, f.name).float(), getattr(b, f.name).float(), atol=1e-5), (task, f.name)


def _similar(scene: Scene, turn: float, shift: list[float], scale: float) -> Scene:
    """The same photos in another world frame: x' = scale * Rz(turn) x + shift (shift along the floor)."""
    Q = geometry.euler_to_matrix(torch.tensor(turn), torch.tensor(0.0), torch.tensor(0.0))
    d = torch.tensor([*shift, 0.0])
    out = scene.copy()
    out.cameras = [Camera(c.K, c.R @ Q.T, scale * c.t - c.R @ Q.T @ d, c.width, c.height) for c in scene.cameras]
    for asset in out.assets:
        asset.centers = scale * asset.centers @ Q.T + d
        asset.sizes = scale * asset.sizes
        asset.rotations = Q @ asset.rotations
    out.depth = None if scene.depth is None else scale * scene.depth
    return out


@pytest.mark.parametrize("task", ["translation", "rotation", "scale", "insertion", "camera", "multi_object"])
def test_an_edit_carried_to_another_world_frame_is_the_same_edit_there(cases, task):
    if task not in cases:
        pytest.skip(f"no {task} case for this seed")
    case = cases[task]
    turn, shift, scale = 0.7, [1.5, -0.4], 1.3
    original = _similar(case.original, turn, shift, scale)
    donor = _similar(case.donor, -0.3, [0.2, 0.5], scale) if case.donor is not None else None
    ids = {a.id: a.id for a in case.original.assets}
    scene, _, edited = transfer_edit(case, original, donor, ids, {a.id: a.id for a in donor.assets} if donor else {})
    expected = _similar(case.scene, turn, shift, scale)
    for asset in expected.assets:
        got = scene.asset(asset.id)
        assert torch.allclose(got.centers[1], asset.centers[1], atol=1e-4), (task, asset.id)
        assert torch.allclose(got.sizes[1], asset.sizes[1], atol=1e-4), (task, asset.id)
        assert torch.allclose(got.rotations[1], asset.rotations[1], atol=1e-4), (task, asset.id)
    cam, want = scene.cameras[1], expected.cameras[1]
    assert torch.allclose(cam.R, want.R, atol=1e-5) and torch.allclose(cam.t, want.t, atol=1e-4)
    assert edited == case.edited_ids


def test_an_edited_object_extraction_does_not_find_fails_the_case(cases):
    case = cases["translation"]
    edited = case.params["asset_id"]
    photo = select_frames(case.original, [0])
    found_all = ExtractedInputs(segmenter=GroundTruthSegmenter(photo)).prepare(case)
    assert found_all.failed is None and found_all.exact is case and len(found_all.edited_ids) == 1
    assert torch.equal(found_all.original.asset(found_all.edited_ids[0]).masks[0], case.original.asset(edited).masks[0])
    missing = photo.replace(assets=[a for a in photo.assets if a.id != edited])
    failed = ExtractedInputs(segmenter=GroundTruthSegmenter(missing)).prepare(case)
    assert failed.failed == f"edited object {edited} was not found in the inputs"
    assert failed.target is case.target and torch.equal(failed.region, case.region)


class _FailingInputs:
    """Inputs that cannot carry any edit over: every case fails."""

    name = "failing"

    def describe(self) -> str:
        return "failing: nothing is found"

    def prepare(self, case):
        return dataclasses.replace(case, exact=case, failed="nothing is found")


def test_a_failed_case_is_scored_with_the_source_frame_for_every_method_and_counted():
    config = BenchmarkConfig(seeds=SEEDS, cases_per_task=1, tasks=("translation", "scale"), generator_overrides=SMALL,
                             examples_per_task=1)
    result = run_benchmark([IdentityMethod(), CopyPasteMethod(), GeometricMethod()], config, inputs=_FailingInputs())
    assert result.failures() == {"translation": (1, 1), "scale": (1, 1)}
    assert all(r["failed"] == 1 for r in result.rows)
    for task in result.tasks:
        scores = {r["method"]: r["psnr_box"] for r in result.rows if r["task"] == task}
        assert scores["copy-paste"] == scores["identity"] == scores["geometric"]
    text = markdown(result)
    assert "Inputs: failing: nothing is found." in text and "| copy-paste |" in text and "| 1 | 1 |" in text


# -- perturbations ----------------------------------------------------------------------

def test_perturbed_inputs_apply_the_noise_to_what_every_method_reads(cases):
    case = cases["translation"]
    prepared = PerturbedInputs({"depth_scale": 1.1}).prepare(case)
    a = conditioning_from_scene(case.scene, 1, 8, source_frame=0).appearance_depths
    b = conditioning_from_scene(prepared.scene, 1, 8, source_frame=0).appearance_depths
    assert torch.allclose(b, a * 1.1)
    again = PerturbedInputs({"box_yaw": 20.0}).prepare(case)
    assert torch.equal(again.scene.asset(case.params["asset_id"]).rotations,
                       PerturbedInputs({"box_yaw": 20.0}).prepare(case).scene.asset(case.params["asset_id"]).rotations)


# -- command line -----------------------------------------------------------------------

def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_bench_inputs_options_pick_the_modes_and_file_names():
    base, modes = input_modes(_args())
    assert base == "pose_edit" and [m.name for m in modes] == ["exact"]
    base, modes = input_modes(_args("--inputs", "extracted", "--known-camera", "--match-iou", "0.3"))
    assert base == "pose_edit-extracted" and modes[0].known_camera and modes[0].min_iou == 0.3
    assert modes[0].config.camera.fov_degrees == 50.0 and not modes[0].config.keep_learned_depth
    base, modes = input_modes(_args("--inputs", "perturbed", "--perturb", "depth_scale=1.1", "--perturb", "mask=-1"))
    assert base == "pose_edit-perturbed" and modes[0].perturbations == {"depth_scale": 1.1, "mask": -1.0}
    base, modes = input_modes(_args("--inputs", "perturbed", "--sweep"))
    assert base == "pose_edit-robustness" and len(modes) == sum(len(p.levels) for p in PERTURBATIONS.values())
    _, modes = input_modes(_args("--inputs", "perturbed", "--sweep", "depth_scale,box_yaw"))
    assert [m.perturbations for m in modes][:2] == [{"depth_scale": 0.8}, {"depth_scale": 0.9}]
    assert len(modes) == len(PERTURBATIONS["depth_scale"].levels) + len(PERTURBATIONS["box_yaw"].levels)


@pytest.mark.parametrize("argv, message", [
    (["--perturb", "depth_scale=1.1"], "--perturb and --sweep go with --inputs perturbed"),
    (["--inputs", "perturbed"], "give the noise with --perturb KIND=LEVEL, or --sweep"),
    (["--inputs", "perturbed", "--sweep", "depth"], "--sweep: ['depth']; expected kinds among"),
    (["--inputs", "perturbed", "--sweep", "--perturb", "mask=1"], "leave out --perturb"),
    (["--known-camera"], "--known-camera: extraction options go with --inputs extracted"),
    (["--inputs", "exact", "--depth-model", "x"], "--depth-model: extraction options go with --inputs extracted"),
    (["--inputs", "extracted", "--match-iou", "2"], "--match-iou: expected a value in (0, 1], got 2.0"),
])
def test_bench_refuses_options_that_do_not_go_together(capsys, argv, message):
    assert cli_main(["bench", "--quick", *argv]) == 2
    assert message in capsys.readouterr().err


# -- report -----------------------------------------------------------------------------

def _result(rows: list[tuple[str, int, str, float]], failed=()) -> BenchmarkResult:
    config = {"split": "val", "seeds": "0:2", "cases_per_task": 2, "generator_overrides": {}}
    result = BenchmarkResult(config, ["identity", "copy-paste", "geometric", "model"], ["translation"], inputs="exact: test")
    for task, index, method, value in rows:
        result.rows.append({"task": task, "index": index, "seed": index, "method": method, "psnr": value, "ssim": 0.5,
                            "psnr_box": value, "ssim_box": 0.5, "lpips": float("nan"), "identity": 0.9,
                            "ms_per_edit": 1.0, "failed": int(index in failed)})
    return result


def test_the_report_gives_each_model_its_paired_margin_over_the_geometric_and_copy_paste_baselines(tmp_path):
    values = {"identity": (10.0, 12.0), "copy-paste": (15.0, 14.0), "geometric": (18.0, 19.0), "model": (20.0, 22.0)}
    result = _result([("translation", i, m, v[i]) for m, v in values.items() for i in (0, 1)], failed={1})
    # model - geometric per case: +2, +3 -> mean 2.5, half-width t(0.975, 1) * 0.7071 / sqrt(2) = 6.35.
    margin = result.margin("model", "geometric")["translation"]
    assert margin["mean"] == pytest.approx(2.5) and margin["ci95"] == pytest.approx(12.706 * 0.5, rel=1e-3)
    assert result.margin("model", "copy-paste")["translation"]["mean"] == pytest.approx(6.5)
    text = markdown(result)
    assert "| model − geometric | model − copy-paste | failed |" in text
    assert "| translation | 21.00 ± 12.71 | +2.50 ± 6.35 | +6.50 ± 19.06 | 1/2 |" in text
    assert "| translation | 20.00 | +2.00 | +5.00 | 1 |" in text  # the case whose edit was applied
    names = {p.name for p in write_report(result, tmp_path, "r")}
    assert "r_margins.png" in names
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["margins_psnr_box"]["model"]["geometric"]["translation"]["mean"] == 2.5
    assert data["failed"] == {"translation": [1, 2]} and data["inputs"] == "exact: test"


def test_the_sweep_report_tabulates_and_plots_each_kind_by_level(tmp_path):
    runs = [(kind, level, _result([("translation", i, m, base + level + i) for m, base in
                                   (("identity", 10.0), ("copy-paste", 15.0), ("geometric", 18.0), ("model", 20.0))
                                   for i in (0, 1)]))
            for kind, levels in (("depth_scale", (0.9, 1.0)), ("box_yaw", (0.0, 20.0))) for level in levels]
    written = write_sweep_report(runs, tmp_path, "sweep")
    assert {p.name for p in written} == {"sweep.md", "sweep.json", "sweep.png"}
    text = (tmp_path / "sweep.md").read_text()
    assert "## depth_scale (factor)" in text and "| translation | model | 21.40 | 21.50 |" in text
    assert "| translation | geometric | 18.50 | 38.50 |" in text
    assert len(json.loads((tmp_path / "sweep.json").read_text())["runs"]) == 4


def test_a_turn_about_the_vertical_stays_one_under_a_camera_pitched_otherwise(cases):
    case = cases["rotation"]
    assert "yaw_deg" in case.params  # this seed's rotation is a yaw
    original = case.original.copy()  # the inputs' camera pitched 6 degrees more than the truth's, the boxes upright
    tilt = geometry.euler_to_matrix(torch.tensor(0.0), torch.tensor(0.1), torch.tensor(0.0))
    original.cameras = [Camera(c.K, tilt @ c.R, tilt @ c.t, c.width, c.height) for c in original.cameras]
    (asset_id,) = case.edited_ids
    scene, _, _ = transfer_edit(case, original, None, {a.id: a.id for a in original.assets}, {})
    before, after = case.original.asset(asset_id), case.scene.asset(asset_id)
    yaw = after.rotations[1] @ before.rotations[0].T
    got = scene.asset(asset_id)
    assert torch.allclose(got.rotations[1], yaw @ original.asset(asset_id).rotations[0], atol=1e-5)
    assert torch.allclose(got.rotations[1][2], torch.tensor([0.0, 0.0, 1.0]), atol=1e-5)  # still upright
    assert torch.allclose(got.centers[1], original.asset(asset_id).centers[0], atol=1e-5)  # turned in place

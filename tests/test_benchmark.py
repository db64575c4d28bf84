import dataclasses
import json
import math

import pytest
import torch
from test_scene import assert_scenes_equal

from neuralassets import Asset, Camera, Scene, edits
from neuralassets.benchmark.baselines import CopyPasteMethod, IdentityMethod, PipelineMethod, VAECeilingMethod
from neuralassets.benchmark.harness import BenchmarkConfig, run_benchmark, score
from neuralassets.benchmark.report import markdown, write_report
from neuralassets.cli import main as cli_main
from neuralassets.data.edit_cases import TASKS, Case, TaskConfig, VideoCache, blind_target, iter_cases, load_video, make_case
from neuralassets.errors import ValidationError
from neuralassets.metrics import psnr, region_mask
from neuralassets.pipelines.thresholds import RenderThresholds
from neuralassets.plotting import saved_figure

SMALL = {"image_size": 48, "num_frames": 4, "min_objects": 3, "max_objects": 5}
SEEDS = range(2_000_000, 2_000_002)


@pytest.fixture(scope="module")
def videos():
    cache = VideoCache(SMALL)
    return cache(SEEDS[0]), cache(SEEDS[1])


# -- a hand-made scene for the copy-paste baseline --------------------------------------

def _top_down_case(delta):
    """A 64x64 camera looking straight down at a 0.4 m cube on a grey floor; frame 0 paints it red."""
    W = H = 64
    K = torch.tensor([[64.0, 0, 32], [0, 64.0, 32], [0, 0, 1]])
    R = torch.tensor([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]])  # looking down -z, image up = world +y
    cam = Camera(K, R, torch.tensor([0.0, 0.0, 5.0]), W, H)
    centers = torch.tensor([[0.0, 0.0, 0.2], [0.0, 0.0, 0.2]])
    asset = Asset(id=1, name="red cube", centers=centers, sizes=torch.full((2, 3), 0.4),
                  rotations=torch.eye(3).repeat(2, 1, 1), boxes_2d=torch.zeros(2, 4), visibility=torch.ones(2))
    scene = Scene(torch.full((2, 3, H, W), 128 / 255), [cam, cam], [asset])  # 8-bit exact grey
    uv, _ = cam.project(asset.box(0).corners())
    x0, y0 = uv.amin(0).floor().int().tolist()
    x1, y1 = uv.amax(0).ceil().int().tolist()
    scene.frames[:, :, y0:y1, x0:x1] = torch.tensor([230.0, 26.0, 26.0]).view(3, 1, 1) / 255
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    masks[:, y0:y1, x0:x1] = True
    asset.masks, asset.boxes_2d[:] = masks, torch.tensor([x0, y0, x1, y1], dtype=torch.float32)
    original = blind_target(scene)
    edited = edits.move(original, 1, delta, frames=1)
    region = region_mask(edited, [1], (0, 1))
    case = Case("translation", 0, 0, edited, original, original.frames[0], [1], region, {1: (original, 1)})
    return case, (x0, y0, x1, y1)


def test_copy_paste_moves_the_object_to_its_target_box_and_inpaints_the_hole():
    case, (x0, y0, x1, y1) = _top_down_case([1.0, 0.0, 0.0])  # 1 m along +x: 64 * 1 / 4.6..4.8 px to the right
    out = CopyPasteMethod()(case)
    assert out.shape == (3, 64, 64)
    red = (out[0] > 0.8) & (out[1] < 0.2)
    cam = case.scene.cameras[1]
    uv, _ = cam.project(case.scene.asset(1).box(1).corners())
    tx0, ty0 = uv.amin(0).tolist()
    tx1, ty1 = uv.amax(0).tolist()
    ys, xs = red.nonzero(as_tuple=True)
    assert len(xs) > 0.8 * (x1 - x0) * (y1 - y0)
    assert xs.min() >= math.floor(tx0) - 1 and xs.max() <= math.ceil(tx1) and ys.min() >= math.floor(ty0) - 1
    assert ys.max() <= math.ceil(ty1)
    hole = out[:, y0:y1, x0:max(x0, math.floor(tx0) - 1)]
    assert (hole - 128 / 255).abs().max() < 0.05  # the old place is inpainted with the grey floor


def test_copy_paste_keeps_a_static_object_in_place():
    case, _ = _top_down_case([0.0, 0.0, 0.0])
    assert torch.equal(CopyPasteMethod()(case), case.source)


# -- tasks ---------------------------------------------------------------------------

def test_blind_target_hides_the_target_observations(videos):
    pair = videos[0].pair
    assert torch.equal(pair.frames[1], pair.frames[0])
    for a in pair.assets:
        assert torch.equal(a.masks[1], a.masks[0]) and torch.equal(a.boxes_2d[1], a.boxes_2d[0])
    assert not torch.equal(videos[0].novel_target, pair.frames[0])


def test_a_video_loaded_without_its_novel_pose_has_the_same_still_and_refuses_novel_pose(videos):
    config = VideoCache(SMALL).config
    source_only = load_video(SEEDS[0], config, novel_pose=False)
    assert_scenes_equal(source_only.still, videos[0].still)
    assert source_only.frames == videos[0].frames and source_only.pair is None
    case, same = make_case("translation", 0, SEEDS[0], source_only, source_only), make_case("translation", 0, SEEDS[0], *videos)
    assert torch.equal(case.target, same.target)
    with pytest.raises(ValidationError, match=f"seed {SEEDS[0]}: .*without the novel-pose frame"):
        make_case("novel_pose", 0, SEEDS[0], source_only, source_only)


def test_identity_of_an_unedited_still_frame_scores_at_least_50_db(videos):
    from neuralassets.data.renderer import render

    still = videos[0].still
    truth = render(still, frames=[1]).rgb[0]
    case = Case("still", 0, SEEDS[0], still, still, truth, [1], torch.ones(48, 48, dtype=torch.bool),
                {a.id: (still, a.id) for a in still.assets})
    pred = IdentityMethod()(case)
    assert psnr(pred[None], truth[None]).item() >= 50
    assert psnr(CopyPasteMethod()(case)[None], truth[None]).item() >= 50


def test_every_task_builds_a_deterministic_case_with_an_exact_region(videos):
    video, donor = videos
    for task in TASKS:
        case = make_case(task, 0, SEEDS[0], video, donor)
        if case is None:
            assert task in ("swap", "multi_object", "compound")  # too few distinct visible objects in a small scene
            continue
        again = make_case(task, 0, SEEDS[0], video, donor)
        assert torch.equal(case.target, again.target) and case.params == again.params, task
        assert case.target.shape == (3, 48, 48) and case.region.dtype == torch.bool and case.region.any()
        assert torch.equal(case.scene.frames[1], case.source)  # the answer is not in the input
        if task == "removal":
            assert case.edited_ids[0] not in case.scene.asset_ids
            assert torch.equal(case.region, region_mask(case.original, case.edited_ids, (0,)))
        elif task == "insertion":
            assert torch.equal(case.region, region_mask(case.scene, case.edited_ids, (1,)))
        elif task == "compound":
            moved, turned, removed = case.params["moved"]["asset_id"], case.params["turned"]["asset_id"], case.params["removed"]
            a, b = case.params["swapped"]
            assert len({moved, turned, removed}) == 3 and a == moved and b not in (moved, removed)
            assert removed not in case.scene.asset_ids and case.origins[a] == (case.original, b)
            assert case.scene.asset(a).attributes["rgb"] == case.original.asset(b).attributes["rgb"]
            moved_away = case.scene.asset(moved).centers[1] - case.original.asset(moved).centers[1]
            assert moved_away[:2].norm() > 0.1
            assert not torch.allclose(case.scene.asset(turned).rotations[1], case.original.asset(turned).rotations[1])
            # the region covers the removed object where it stood and the moved and turned ones before and after
            assert not (region_mask(case.original, [removed], (0,)) & ~case.region).any()
            assert not (region_mask(case.scene, [moved, turned], (0, 1)) & ~case.region).any()
        else:
            assert torch.equal(case.region, region_mask(case.scene, case.edited_ids, (0, 1)))


def test_edit_tasks_change_what_they_say(videos):
    video, donor = videos
    moved = make_case("translation", 0, SEEDS[0], video, donor)
    i = moved.edited_ids[0]
    shift = moved.scene.asset(i).centers[1] - moved.scene.asset(i).centers[0]
    assert shift[2].abs() < 1e-6 and shift[:2].norm() > 0.1
    background = make_case("background", 0, SEEDS[0], video, donor)
    assert background.scene.background is not None and background.params["donor_seed"] == SEEDS[1]
    camera = make_case("camera", 0, SEEDS[0], video, donor)
    assert not torch.equal(camera.scene.cameras[1].R, camera.scene.cameras[0].R)


def test_iter_cases_rejects_unknown_tasks_and_empty_seeds():
    with pytest.raises(ValidationError, match="teleport"):
        next(iter_cases(TaskConfig(SEEDS), tasks=("teleport",)))
    with pytest.raises(ValidationError, match="empty"):
        next(iter_cases(TaskConfig([])))


# -- harness and report --------------------------------------------------------------

@pytest.fixture(scope="module")
def baseline_result():
    config = BenchmarkConfig(seeds=SEEDS, cases_per_task=1, generator_overrides=SMALL, examples_per_task=1)
    return run_benchmark([IdentityMethod(), CopyPasteMethod()], config)


def test_harness_runs_one_case_per_task_with_the_baselines(baseline_result):
    result = baseline_result
    tasks = {r["task"] for r in result.rows}
    assert len(tasks) >= len(TASKS) - 2
    assert len(result.rows) == 2 * len({(r["task"], r["index"]) for r in result.rows})
    for row in result.rows:
        assert math.isnan(row["lpips"])  # no LPIPS weights: NaN, never 0
        assert all(math.isfinite(row[k]) for k in ("psnr", "ssim", "psnr_box", "ssim_box", "ms_per_edit"))
        assert math.isnan(row["identity"]) == (row["task"] == "removal")
    assert {e.task for e in result.examples} == tasks
    assert all(set(e.predictions) == {"identity", "copy-paste"} for e in result.examples)


def test_report_writes_tables_charts_and_grids(baseline_result, tmp_path):
    result = dataclasses.replace(baseline_result, tasks=["translation", "removal"])
    written = write_report(result, tmp_path, "pose_edit-quick")
    names = {p.name for p in written}
    assert names == {"pose_edit-quick.md", "pose_edit-quick.json", "pose_edit-quick_examples_translation.png",
                     "pose_edit-quick_examples_removal.png",
                     *(f"pose_edit-quick_{k}.png" for k in ("psnr", "ssim", "psnr_box", "ssim_box", "identity", "untouched_kept",
                                                             "ms_per_edit"))}
    text = (tmp_path / "pose_edit-quick.md").read_text()
    assert "| identity |" in text and "| copy-paste |" in text and "n/a" in text
    data = json.loads((tmp_path / "pose_edit-quick.json").read_text())
    assert data["summary"]["translation"]["copy-paste"]["psnr"]["n"] == 1
    assert data["summary"]["removal"]["identity"]["identity"]["mean"] is None  # NaN is written as null
    assert data["config"]["seeds"] == f"{SEEDS[0]}:{SEEDS[0] + 1}"
    assert len(data["config"]["truth_sha256"]) == 64 and data["config"]["truth_sha256"][:16] in text


def test_saved_figure_writes_the_image_and_closes_the_figure_even_on_error(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    with saved_figure(tmp_path / "ok.png", 1, 2, figsize=(4, 2), dpi=50) as (_, axes):
        axes[0].plot([0, 1], [1, 0])
    assert Image.open(tmp_path / "ok.png").size == (200, 100)  # figsize * dpi
    assert plt.get_fignums() == []
    with pytest.raises(RuntimeError, match="mid-plot"), saved_figure(tmp_path / "bad.png") as (_, ax):
        raise RuntimeError("mid-plot")
    assert not (tmp_path / "bad.png").exists() and plt.get_fignums() == []


def test_score_puts_identical_images_at_the_cap_and_checks_the_batch(videos):
    video, donor = videos
    case = make_case("translation", 0, SEEDS[0], video, donor)
    values = score([case], case.target[None])[0]
    assert values["psnr"] == values["psnr_box"] == 100.0
    assert values["ssim"] == pytest.approx(1.0) and values["identity"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValidationError, match="expected 1 images"):
        score([case], torch.stack([case.target] * 2))


def test_markdown_gives_mean_and_interval():
    from neuralassets.benchmark.harness import BenchmarkResult

    result = BenchmarkResult({"split": "test", "seeds": "0:3", "cases_per_task": 3, "generator_overrides": {}},
                             ["identity"], ["translation"])
    for i, v in enumerate([20.0, 22.0, 24.0]):
        result.rows.append({"task": "translation", "index": i, "seed": i, "method": "identity", "psnr": v, "ssim": 0.5,
                            "psnr_box": v, "ssim_box": 0.5, "lpips": float("nan"), "identity": 0.9,
                            "untouched_kept": 90.0 + 5 * i, "ms_per_edit": 1.0})
    text = markdown(result)
    # mean 22, sample std 2, t(0.975, 2) = 4.3027 -> 4.3027 * 2 / sqrt(3) = 4.97
    assert "| identity | 22.00 ± 4.97 | 0.500 ± 0.000 |" in text
    assert "n/a" in text
    # kept shares 90, 95, 100: mean 95, half-width 4.3027 * 5 / sqrt(3) = 12.42, worst 90
    assert "| 95.0 ± 12.4 (worst 90.0) |" in text
    assert result.summary()["translation"]["identity"]["ms_per_edit"]["worst"] == 1.0  # lower is better: the largest


# -- models --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model_folder(tmp_path_factory):
    from neuralassets.models import AutoencoderConfig, ModelConfig
    from neuralassets.pipelines import NeuralAssetsPipeline

    torch.manual_seed(0)
    config = ModelConfig(image_size=32, max_objects=8, num_inference_steps=2,
                         autoencoder=AutoencoderConfig(kind="kl", block_channels=(16, 32), latent_channels=4),
                         asset_encoder=dict(backbone_channels=(16, 32), hidden_dim=32, token_dim=32, num_null_tokens=2,
                                            spatial_channels=4, object_feature_map=False),
                         denoiser=dict(num_layers=1, num_heads=2, head_dim=16), guidance_scale=2.0)
    folder = tmp_path_factory.mktemp("models") / "tiny-model"
    NeuralAssetsPipeline.from_config(config).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_pipeline_and_vae_ceiling_methods_render_cases_deterministically(videos, tiny_model_folder):
    video, donor = videos
    cases = [make_case(t, 0, SEEDS[0], video, donor) for t in ("translation", "insertion")]
    model = PipelineMethod.from_pretrained(str(tiny_model_folder))
    assert model.name == "tiny-model"
    batch = model.predict(cases)
    assert batch.shape == (2, 3, 48, 48) and 0 <= batch.min() and batch.max() <= 1
    assert torch.allclose(model.predict(cases[1:])[0], batch[1], atol=1e-5)  # batching does not change a case
    ceiling = VAECeilingMethod(model.pipeline)(cases[0])
    assert ceiling.shape == (3, 48, 48)
    # the pipeline's default keeps the source's unchanged pixels (here: all of them, at the cases' 48x48 while the
    # model renders 32x32); keep_unchanged=False does not.
    model.pipeline.thresholds = RenderThresholds(unchanged_below=10.0, changed_above=11.0)
    kept = model.predict(cases[:1])[0]
    raw = PipelineMethod(model.pipeline, "raw", keep_unchanged=False).predict(cases[:1])[0]
    source = cases[0].source
    assert torch.allclose(kept, source, atol=1e-5) and (raw - source).abs().mean() > 0.05


@pytest.mark.slow
def test_bench_command_runs_a_model_with_its_vae_ceiling(tmp_path, tiny_model_folder):
    gen = [arg for k, v in SMALL.items() for arg in ("--gen", f"{k}={v}")]
    code = cli_main(["bench", "--quick", "--cases", "1", "--tasks", "translation", "--model", str(tiny_model_folder),
                     "--out", str(tmp_path), "--examples", "0", "--raw", *gen])
    assert code == 0
    text = (tmp_path / "pose_edit-quick.md").read_text()
    for method in ("identity", "copy-paste", "vae-ceiling", "tiny-model", "tiny-model-raw"):
        assert f"| {method} |" in text
    assert "tiny-model appearance-backbone" in text
    # Thresholds that keep every pixel of the photo: the model's output is the source frame, as identity's is.
    code = cli_main(["bench", "--quick", "--cases", "1", "--tasks", "translation", "--model", str(tiny_model_folder),
                     "--out", str(tmp_path), "--examples", "0", "--threshold", "unchanged_below=10",
                     "--threshold", "changed_above=11", *gen])
    assert code == 0
    rows = {line.split("|")[1].strip(): line.split("|")[2] for line in (tmp_path / "pose_edit-quick.md").read_text().splitlines()
            if line.startswith("| ")}
    assert rows["tiny-model[unchanged_below=10,changed_above=11]"] == rows["identity"]


def test_bench_command_rejects_bad_arguments(capsys):
    assert cli_main(["bench", "--seeds", "5:2"]) == 2
    assert "--seeds: expected 0 <= A < B" in capsys.readouterr().err
    assert cli_main(["bench", "--gen", "min_objects"]) == 2
    assert "--gen: expected KEY=VALUE" in capsys.readouterr().err
    assert cli_main(["bench", "--quick", "--gen", "colour_count=3"]) == 2
    assert "generator.colour_count; valid keys of generator: camera_distance" in capsys.readouterr().err
    assert cli_main(["bench", "--quick", "--threshold", "unmoved=1.01"]) == 2
    assert "--threshold.unmoved; valid keys of --threshold: changed_above" in capsys.readouterr().err
    assert cli_main(["bench", "--quick", "--threshold", "grow=wide"]) == 2
    assert "--threshold grow: expected a number, got 'wide'" in capsys.readouterr().err
    assert cli_main(["bench", "--quick", "--threshold", "grow=null"]) == 2
    assert "--threshold grow: expected a number, got None" in capsys.readouterr().err
    assert cli_main(["bench", "--quick", "--threshold", "edit_margin=-1"]) == 2
    assert "--threshold: expected edit_margin >= 0 or None, got -1" in capsys.readouterr().err
    assert cli_main(["bench", "--quick", "--threshold", "unchanged_below=0.5"]) == 2  # above changed_above
    assert "--threshold: expected 0 <= unchanged_below < changed_above, got 0.5, 0.12" in capsys.readouterr().err


def test_a_model_with_too_few_object_slots_is_refused_before_any_case_runs(tiny_model_folder, capsys):
    from neuralassets.benchmark.harness import check_object_slots

    model = PipelineMethod.from_pretrained(str(tiny_model_folder))  # 8 slots
    check_object_slots([model], BenchmarkConfig(seeds=SEEDS, tasks=("translation",), generator_overrides={"max_objects": 8}))
    with pytest.raises(ValidationError, match="'tiny-model' has 8 object slots but a case can have 9 objects "
                                              r"\(generator max_objects 8 plus the inserted one\).*--gen max_objects=7"):
        check_object_slots([model], BenchmarkConfig(seeds=SEEDS, tasks=("insertion",), generator_overrides={"max_objects": 8}))
    assert cli_main(["bench", "--quick", "--model", str(tiny_model_folder)]) == 2  # generator default: up to 10 objects
    assert "has 8 object slots but a case can have 11 objects" in capsys.readouterr().err

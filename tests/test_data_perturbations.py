"""Noise on a scene's geometry: each kind, the boxes its photos show, and the training pairs' geometry noise."""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_benchmark import SEEDS, SMALL

from neuralassets import edits, geometry
from neuralassets.config import from_dict
from neuralassets.data.edit_cases import VideoCache
from neuralassets.data.perturbations import (
    GeometryNoise,
    blur_depth,
    grow_masks,
    move_boxes,
    noisy_depth,
    parse_perturbation,
    perturb_geometry,
    scale_boxes,
    scale_depth,
    turn_boxes,
)
from neuralassets.errors import ConfigError, ValidationError

FULL = GeometryNoise(probability=0.7, depth_scale=(0.85, 1.15), depth_blur=(0.0, 2.0), depth_noise=0.05, mask=(-2, 2),
                     box_center=0.1, box_size=0.1, box_yaw=15.0)


@pytest.fixture(scope="module")
def videos():
    return tuple(VideoCache(SMALL)(seed) for seed in SEEDS[:2])


def _same_geometry(a, b) -> bool:
    same = [torch.equal(getattr(a, n), getattr(b, n)) for n in ("centers", "sizes", "rotations")]
    return all(same) and (a.masks is None or torch.equal(a.masks, b.masks))


def test_depth_perturbations(videos):
    scene = videos[0].still
    before = scene.depth.clone()
    assert torch.allclose(scale_depth(scene, 1.1).depth, before * 1.1)
    assert torch.equal(scene.depth, before)  # the input is not changed
    flat = scene.replace(depth=torch.full_like(scene.depth, 3.0))
    assert torch.allclose(blur_depth(flat, 2.0).depth, flat.depth)  # a blur keeps a constant
    spike = flat.copy()
    spike.depth[0, 20, 20] = 13.0
    blurred = blur_depth(spike, 1.0).depth
    assert float(blurred[0, 20, 20]) < 13.0 and float(blurred.sum()) == pytest.approx(float(spike.depth.sum()), rel=1e-5)
    assert torch.equal(blur_depth(spike, 0.0).depth, spike.depth)
    a = noisy_depth(flat, 0.05, torch.Generator().manual_seed(3)).depth
    assert torch.equal(a, noisy_depth(flat, 0.05, torch.Generator().manual_seed(3)).depth)
    assert float((a / 3.0 - 1).std()) == pytest.approx(0.05, rel=0.1)


def test_masks_grow_and_shrink_by_whole_3x3_steps(videos):
    scene = videos[0].still.copy()
    dot = torch.zeros(2, 48, 48, dtype=torch.bool)
    dot[:, 20, 20] = True
    scene.assets[0].masks = dot
    grown = grow_masks(scene, 2).assets[0].masks
    assert int(grown[0].sum()) == 25 and bool(grown[0, 18:23, 18:23].all())
    assert torch.equal(grow_masks(grow_masks(scene, 2), -1).assets[0].masks[0, 19:22, 19:22], torch.ones(3, 3, dtype=torch.bool))
    assert int(grow_masks(grow_masks(scene, 2), -1).assets[0].masks[0].sum()) == 9
    assert int(grow_masks(scene, -1).assets[0].masks[0].sum()) == 0
    with pytest.raises(ValidationError, match="whole number"):
        grow_masks(scene, 0.5)


def test_box_perturbations_move_scale_and_turn_every_frame_alike(videos):
    scene = videos[0].still
    g = torch.Generator().manual_seed(0)
    moved = move_boxes(scene, 0.2, g)
    for before, after in zip(scene.assets, moved.assets):
        offset = after.centers - before.centers
        assert torch.allclose(offset[0], offset[1]) and float(offset[0, 2]) == 0.0
        assert float(offset[0].norm()) == pytest.approx(0.2 * float(before.sizes.max()), rel=1e-5)
    scaled = scale_boxes(scene, 0.25, g)
    for before, after in zip(scene.assets, scaled.assets):
        ratio = float(after.sizes[0, 0] / before.sizes[0, 0])
        assert ratio == pytest.approx(1.25) or ratio == pytest.approx(0.75)
        assert torch.allclose(after.sizes, before.sizes * ratio)
        lowest = (before.box(0).corners()[:, 2].min(), after.box(0).corners()[:, 2].min())
        assert float(lowest[1]) == pytest.approx(float(lowest[0]), abs=1e-5)
    turned = turn_boxes(scene, 20.0, g)
    for before, after in zip(scene.assets, turned.assets):
        change = geometry.yaw_of(after.rotations) - geometry.yaw_of(before.rotations)
        change = torch.remainder(change + math.pi, 2 * math.pi) - math.pi
        assert torch.allclose(change.abs(), torch.full_like(change, math.radians(20)), atol=1e-4)
        assert torch.allclose(change[0], change[1]) and torch.allclose(after.centers, before.centers)


def test_parse_perturbation():
    assert parse_perturbation("depth_scale=1.1") == ("depth_scale", 1.1)
    assert parse_perturbation("mask=-2") == ("mask", -2.0)
    for text, message in (("depth=1", "KIND=LEVEL with KIND one of depth_scale"), ("box_yaw", "KIND=LEVEL"),
                          ("box_yaw=ten", "the level must be a number"), ("depth_scale=0", "above 0")):
        with pytest.raises(ValidationError, match=message):
            parse_perturbation(text)



def test_only_the_chosen_assets_change(videos):
    scene = videos[0].still
    first = scene.assets[0].id
    for perturb, level in ((move_boxes, 0.2), (scale_boxes, 0.2), (turn_boxes, 20.0), (grow_masks, 1)):
        out = perturb(scene, level, torch.Generator().manual_seed(0), assets=[first])
        assert [not _same_geometry(a, b) for a, b in zip(scene.assets, out.assets)] == [a.id == first for a in scene.assets]
        every = perturb(scene, level, torch.Generator().manual_seed(0), assets=scene.asset_ids)
        default = perturb(scene, level, torch.Generator().manual_seed(0))
        assert all(_same_geometry(a, b) for a, b in zip(every.assets, default.assets)), perturb.__name__


def test_box_errors_reach_the_boxes_the_photos_show(videos):
    still = videos[0].still
    moved_id = still.assets[0].id
    scene = edits.move(still, moved_id, [0.3, 0.0, 0.0], frames=1)  # keeps what the photos show (observed_poses)
    before = scene.asset(moved_id)
    assert before.observed_poses is not None
    assert torch.allclose(before.observed_poses[0], before.pose_features(0, scene.cameras[0]))
    for perturb, level in ((move_boxes, 0.2), (scale_boxes, 0.2), (turn_boxes, 20.0)):
        after = perturb(scene, level, torch.Generator().manual_seed(0)).asset(moved_id)
        # the photo's box carries the error its frame's box does: the source pose and the box stay one lift
        assert torch.allclose(after.observed_poses[0], after.pose_features(0, scene.cameras[0]), atol=1e-4), perturb.__name__
        assert not torch.allclose(after.observed_poses[0], before.observed_poses[0], atol=1e-3), perturb.__name__
    moved = move_boxes(scene, 0.2, torch.Generator().manual_seed(0)).asset(moved_id)
    shift = moved.centers - before.centers
    assert torch.allclose(shift[0], shift[1]) and float(shift[0].norm()) == pytest.approx(0.2 * float(before.sizes.max()))


def test_box_from_pose_features_inverts_pose_features(videos):
    camera = videos[0].still.cameras[0]
    center, size = torch.tensor([0.3, -0.2, 0.4]), torch.tensor([0.5, 0.7, 0.9])
    rotation = geometry.euler_to_matrix(torch.tensor(0.7), torch.tensor(0.2), torch.tensor(-0.3))
    numbers = geometry.pose_features(center, size, rotation, camera.K, camera.R, camera.t, camera.width, camera.height)
    found = geometry.box_from_pose_features(numbers, camera.K, camera.R, camera.t, camera.width, camera.height)
    for got, expected in zip(found, (center, size, rotation)):
        assert torch.allclose(got, expected, atol=1e-5)


# -- the training pairs' geometry noise ------------------------------------------------------

def test_geometry_noise_defaults_change_nothing(videos):
    scene = videos[0].still
    generator = torch.Generator().manual_seed(0)
    assert all(GeometryNoise().draw(generator) == {} for _ in range(20))
    assert perturb_geometry(scene, GeometryNoise(), generator) is scene
    assert perturb_geometry(scene, GeometryNoise(probability=0.0, depth_scale=(0.5, 2.0)), generator) is scene


def test_geometry_noise_draws_repeat_for_a_seed_and_stay_in_their_ranges():
    draws = [FULL.draw(g) for g in [torch.Generator().manual_seed(0)] for _ in range(600)]
    generator = torch.Generator().manual_seed(0)
    assert draws == [FULL.draw(generator) for _ in range(600)]
    perturbed = [d for d in draws if d]
    assert 0.64 < len(perturbed) / len(draws) < 0.76  # probability 0.7
    scales = [d["depth_scale"] for d in perturbed]
    assert 0.85 <= min(scales) < 0.87 and 1.13 < max(scales) <= 1.15  # uniform over the range, never outside
    assert sorted({d.get("mask", 0.0) for d in perturbed}) == [-2.0, -1.0, 0.0, 1.0, 2.0]
    for kind, largest in (("depth_blur", 2.0), ("depth_noise", 0.05), ("box_center", 0.1), ("box_size", 0.1), ("box_yaw", 15.0)):
        levels = [d[kind] for d in perturbed]
        assert 0.0 <= min(levels) < 0.05 * largest and 0.95 * largest < max(levels) <= largest, kind


def test_geometry_noise_errors_name_the_field():
    for bad, message in (({"depth_scale": [1.2, 1.1]}, r"depth_scale: expected a range \(low, high\) with low <= high"),
                         ({"depth_scale": [0.0, 1.1]}, "depth_scale: factors must be above 0"),
                         ({"mask": [-1.5, 2]}, "mask: expected whole numbers"),
                         ({"mask": [1, 2, 3]}, r"mask: expected a range \[low, high\] of numbers"),
                         ({"box_yaw": -5}, "box_yaw: expected levels >= 0"),
                         ({"depth_noise": "much"}, "depth_noise: expected a number"),
                         ({"box_size": 1.0}, "box_size: expected below 1"),
                         ({"probability": 1.5}, "probability: expected 0..1"),
                         ({"depth_sale": [1, 2]}, "depth_sale")):
        with pytest.raises(ConfigError, match=message):
            from_dict(GeometryNoise, bad, "geometry_noise")


def test_perturb_geometry_changes_depth_everywhere_and_the_lifted_assets_alone(videos):
    still = videos[0].still
    a, b = still.assets[0].id, still.assets[1].id
    swapped = edits.swap_appearance(still, a, b)  # a and b now take their looks from a photo's crop
    noise = GeometryNoise(depth_scale=(1.1, 1.1), mask=(1, 1), box_yaw=10.0)
    out = perturb_geometry(swapped, noise, torch.Generator().manual_seed(0))
    assert torch.allclose(out.depth, swapped.depth * 1.1) and torch.equal(out.frames, swapped.frames)
    assert [not _same_geometry(x, y) for x, y in zip(swapped.assets, out.assets)] == \
        [x.id not in (a, b) for x in swapped.assets]
    assert torch.equal(swapped.depth, still.depth)  # the input is not changed


def test_the_geometry_noise_benchmark_tells_exact_from_noisy_inputs(tiny_pipeline_dir, tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "geometry_noise.py"
    tables = {}
    for name, noise in (("noisy", []), ("clean", ["--geometry-noise", "probability=0", "depth_scale=[0.5,2]"])):
        out = tmp_path / f"{name}.md"
        done = subprocess.run([sys.executable, str(script), "--model", str(tiny_pipeline_dir), "--pairs", "2",
                               "--out", str(out), *noise], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| exact") or line.startswith("| noisy")]
        tables[name] = {(r[0].strip("| "), r[1]): r[2].strip(" |") for r in rows}
    assert len(tables["noisy"]) == 8
    clean = tables["clean"]  # noise that is never drawn: the noisy inputs are the exact ones, and so are their scores
    assert all(clean[("noisy", drawn.replace("exact", "noisy"))] == score for (sampled, drawn), score in clean.items()
               if sampled == "exact" and drawn != "none")
    assert tables["noisy"][("exact", "exact")] == clean[("exact", "exact")]

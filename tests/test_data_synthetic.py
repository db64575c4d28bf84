"""The scene sampler: determinism, frame subsets, physical plausibility, splits, round-trips."""
import hashlib
import json
from dataclasses import replace

import pytest
import torch

from neuralassets import ConfigError, Scene
from neuralassets.data import SPLITS, GeneratorConfig, generate_scene, render, sample_scene_spec, select_frames, split_seed
from neuralassets.data.renderer import SHAPES
from neuralassets.data.synthetic import HELD_OUT_SHAPES, TRAINING_SHAPES


@pytest.fixture(scope="module")
def scene():
    return generate_scene(3)


def _assert_same_scene(a: Scene, b: Scene):
    assert torch.equal(a.frames, b.frames) and torch.equal(a.depth, b.depth)
    assert a.metadata == b.metadata and len(a.assets) == len(b.assets)
    for x, y in zip(a.assets, b.assets):
        for name in ("centers", "sizes", "rotations", "boxes_2d", "visibility", "masks"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name
        assert (x.name, x.attributes) == (y.name, y.attributes)
    for c, d in zip(a.cameras, b.cameras):
        assert torch.equal(c.K, d.K) and torch.equal(c.R, d.R) and torch.equal(c.t, d.t)


def test_same_seed_gives_bit_identical_scenes(scene):
    _assert_same_scene(scene, generate_scene(3))
    assert not torch.equal(scene.frames[:1], generate_scene(4, frames=[0]).frames)


def test_frame_subset_matches_the_full_video(scene):
    part = generate_scene(3, frames=[17, 4])
    assert part.num_frames == 2 and part.metadata["frames"] == [17, 4]
    idx = [17, 4]
    assert torch.equal(part.frames, scene.frames[idx]) and torch.equal(part.depth, scene.depth[idx])
    for x, y in zip(part.assets, scene.assets):
        assert torch.equal(x.masks, y.masks[idx]) and torch.equal(x.boxes_2d, y.boxes_2d[idx])
        assert torch.equal(x.visibility, y.visibility[idx]) and torch.equal(x.centers, y.centers[idx])
        assert x.source_frame == 0


def test_select_frames_slices_a_copy(scene):
    part = select_frames(scene, [5, 2])
    assert torch.equal(part.depth, scene.depth[[5, 2]]) and part.metadata["frames"] == [5, 2]
    assert torch.equal(part.assets[0].masks, scene.assets[0].masks[[5, 2]])
    part.assets[0].centers += 1
    part.assets[0].attributes["color"] = "changed"
    part.metadata["renderer"]["room_radius"] = 1.0
    assert scene.assets[0].attributes["color"] != "changed" and scene.metadata["renderer"]["room_radius"] == 10.0
    assert torch.equal(select_frames(part, [1]).frames, scene.frames[[2]])
    assert select_frames(part, [1]).metadata["frames"] == [2]


def test_scene_contents_and_ground_truth(scene):
    cfg = GeneratorConfig()
    assert scene.frames.shape == (24, 3, 128, 128) and scene.depth.shape == (24, 128, 128)
    assert cfg.min_objects <= len(scene) <= cfg.max_objects
    assert torch.isfinite(scene.depth).all()
    json.dumps(scene.metadata)
    for a in scene.assets:
        json.dumps(a.attributes)
        colour, shape = a.name.split(" ")
        assert colour == a.attributes["color"] and a.category == a.attributes["shape"]
        assert a.source_frame == 0 and a.masks.shape == (24, 128, 128)
    instance = torch.stack([scene.instance_map(f) for f in (0, 23)])
    assert torch.equal(instance, render(scene, frames=[0, 23]).instance)


def _separated(a_c, a_R, a_s, b_c, b_R, b_s) -> torch.Tensor:
    """Separating-axis test of two oriented boxes per frame; True where they do not overlap."""
    axes = [a_R[..., :, i] for i in range(3)] + [b_R[..., :, i] for i in range(3)]
    axes += [torch.linalg.cross(a_R[..., :, i], b_R[..., :, j]) for i in range(3) for j in range(3)]
    d = b_c - a_c
    separated = torch.zeros(a_c.shape[0], dtype=torch.bool)
    for axis in axes:
        n = axis.norm(dim=-1, keepdim=True)
        axis = axis / n.clamp(min=1e-9)
        ra = ((a_R.transpose(-1, -2) @ axis.unsqueeze(-1)).squeeze(-1).abs() * a_s / 2).sum(-1)
        rb = ((b_R.transpose(-1, -2) @ axis.unsqueeze(-1)).squeeze(-1).abs() * b_s / 2).sum(-1)
        separated |= (n.squeeze(-1) > 1e-6) & ((d * axis).sum(-1).abs() > ra + rb)
    return separated


@pytest.mark.parametrize("shapes", [TRAINING_SHAPES, HELD_OUT_SHAPES], ids=["training", "held_out"])
@pytest.mark.parametrize("resize_probability", [0.0, 1.0])
def test_objects_never_overlap_and_stand_on_the_floor(resize_probability, shapes):
    cfg = GeneratorConfig(min_objects=10, max_objects=10, resize_probability=resize_probability,  # the most crowded scenes
                          shapes=shapes)
    motions = set()
    for seed in range(12):
        spec = sample_scene_spec(seed, cfg)
        assert len(spec) == 10
        for i, a in enumerate(spec.assets):
            motions.add(a.attributes["motion"])
            for b in spec.assets[i + 1:]:
                assert _separated(a.centers, a.rotations, a.sizes, b.centers, b.rotations, b.sizes).all(), (seed, a.name, b.name)
            lowest = a.box(0).corners()[:, 2].min()
            if a.category == "sphere" or a.attributes["motion"] == "roll" or (
                    a.category == "cylinder" and abs(float(a.rotations[0, 2, 2])) < 0.5):
                # Round things rest on their curved side: the centre is one radius above the floor.
                assert torch.allclose(a.centers[:, 2], a.sizes[:, 0] / 2, atol=1e-5), (seed, a.name)
            else:
                lows = torch.stack([a.box(f).corners()[:, 2].min() for f in range(spec.num_frames)])
                assert lows.abs().max() < 1e-5, (seed, a.name, float(lowest))
    assert {"slide", "static", "roll"} | ({"tumble"} if "cube" in shapes else set()) <= motions


def test_default_scenes_hold_only_the_training_shapes():
    """The held-out shapes stay out of every default scene, and the default scenes are what they were before
    those shapes existed (poses and attributes of five seeds, rounded to 0.1 mm / 1e-4)."""
    assert GeneratorConfig().shapes == TRAINING_SHAPES and set(TRAINING_SHAPES) | set(HELD_OUT_SHAPES) == set(SHAPES)
    assert not set(TRAINING_SHAPES) & set(HELD_OUT_SHAPES)
    digest = hashlib.sha256()
    for seed in (0, 1, 2, SPLITS["val"][0], SPLITS["test"][0]):
        for a in sample_scene_spec(seed).assets:
            assert a.category in TRAINING_SHAPES
            for x in (a.centers, a.sizes, a.rotations):
                digest.update((x.double() * 1e4).round().long().numpy().tobytes())
            digest.update(json.dumps([a.name, a.category, a.attributes], sort_keys=True).encode())
    assert digest.hexdigest()[:16] == "db08da2de965bf29"
    held_out = sample_scene_spec(0, GeneratorConfig(shapes=HELD_OUT_SHAPES))
    assert {a.category for a in held_out.assets} == set(HELD_OUT_SHAPES)
    assert all(a.name.endswith((" wedge", " torus")) for a in held_out.assets)


def test_resizing_changes_sizes_alone_and_leaves_the_scene_stream():
    base = GeneratorConfig(num_frames=6)
    growing = replace(base, resize_probability=1.0, resize_range=(1.5, 1.5))
    resized = 0
    for seed in range(4):
        plain, grown = sample_scene_spec(seed, base), sample_scene_spec(seed, growing)
        assert plain.metadata["renderer"] == grown.metadata["renderer"]
        assert all(torch.equal(x.t, y.t) for x, y in zip(plain.cameras, grown.cameras))
        assert all(torch.equal(a.sizes, a.sizes[:1].expand_as(a.sizes)) for a in plain.assets)
        for a, b in zip(plain.assets, grown.assets, strict=True):
            assert a.name == b.name and torch.equal(a.rotations, b.rotations) and torch.equal(a.centers[:, :2], b.centers[:, :2])
            if "size_factor" in b.attributes:  # linear from 1 at frame 0 to 1.5 at the last, the height with it
                resized += 1
                assert b.attributes["size_factor"] == 1.5 and b.attributes["motion"] != "tumble"
                assert torch.allclose(b.sizes[0], a.sizes[0]) and torch.allclose(b.sizes[-1], 1.5 * a.sizes[-1])
                assert torch.allclose(b.sizes[3], 1.3 * a.sizes[3]) and torch.allclose(b.centers[-1, 2], 1.5 * a.centers[-1, 2])
            else:  # tumbling, or no room to grow
                assert torch.equal(a.sizes, b.sizes) and torch.equal(a.centers, b.centers)
    assert resized > 0


def test_the_camera_sees_most_objects_most_of_the_time():
    seen, total = 0, 0
    for seed in range(4):
        s = generate_scene(SPLITS["val"][seed], frames=[0, 12, 23])
        vis = torch.stack([a.visibility for a in s.assets])
        seen, total = seen + int((vis > 0.3).sum()), total + vis.numel()
    assert seen / total > 0.8


def test_splits_are_disjoint_and_indexed():
    ranges = list(SPLITS.values())
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            assert a.stop <= b.start or b.stop <= a.start
    assert split_seed("val", 3) == SPLITS["val"][3]
    with pytest.raises(Exception, match="split"):
        split_seed("training", 0)


def test_saved_scene_round_trips_and_rerenders_identically(scene, tmp_path):
    small = generate_scene(8, GeneratorConfig(image_size=64, num_frames=3))
    loaded = Scene.load(small.save(tmp_path / "s"))
    _assert_same_scene(small, loaded)
    assert torch.equal(render(loaded).rgb, small.frames)


def test_config_is_validated():
    with pytest.raises(ConfigError, match="min_objects"):
        sample_scene_spec(0, GeneratorConfig(min_objects=5, max_objects=2))
    with pytest.raises(ConfigError, match="shapes"):
        sample_scene_spec(0, GeneratorConfig(shapes=("teapot",)))
    with pytest.raises(ConfigError, match="resize_probability"):
        sample_scene_spec(0, GeneratorConfig(resize_probability=1.5))
    with pytest.raises(ConfigError, match="resize_range"):
        sample_scene_spec(0, GeneratorConfig(resize_range=(0.0, 1.0)))

"""The learned perception model: shapes, determinism, weights round trip, adapters, box geometry, training steps."""

from __future__ import annotations

import json
import math

import pytest
import torch
from benchmark_scripts import load_benchmark

from neuralassets.data.synthetic import GeneratorConfig, generate_scene
from neuralassets.errors import ConfigError, WeightsError
from neuralassets.perception import learned
from neuralassets.perception.detections import FrameDetections
from neuralassets.perception.learned import (
    ESTIMATE_FIELDS,
    EstimateNoise,
    LearnedPerception,
    PerceptionConfig,
    PerceptionNet,
    assign_pixels,
    box_estimates,
    boxes_from_estimates,
    decode_estimates,
    encode_estimates,
    find_centres,
    flat_box,
)
from neuralassets.scene import Camera

TINY = PerceptionConfig(widths=(4, 8, 8), decoder_widths=(8, 4), working_size=32)


def tiny_model(seed: int = 0) -> LearnedPerception:
    torch.manual_seed(seed)
    net = PerceptionNet(TINY)
    with torch.no_grad():  # random BN statistics, so eval-mode outputs differ from a fresh net
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return LearnedPerception(net, batch_size=2)


def test_net_maps_have_documented_shapes():
    net = PerceptionNet(TINY).eval()
    maps = net(torch.rand(3, 3, 32, 48))
    assert maps.log_depth.shape == maps.foreground.shape == maps.heat.shape == (3, 32, 48)
    assert maps.offsets.shape == (3, 2, 32, 48)
    assert maps.box.shape == (3, len(learned.BOX_CHANNELS), 32, 48)


def test_coordinates_are_centred_in_half_heights():
    c = learned.coordinates(4, 6)
    assert c.shape == (2, 4, 6)
    assert c[0, 0].tolist() == pytest.approx([-1.25, -0.75, -0.25, 0.25, 0.75, 1.25])
    assert c[1, :, 0].tolist() == pytest.approx([-0.75, -0.25, 0.25, 0.75])


def test_config_refuses_mismatched_widths():
    with pytest.raises(Exception, match="decoder widths"):
        PerceptionConfig(widths=(4, 8, 8), decoder_widths=(8,))
    with pytest.raises(Exception, match="working_size"):
        PerceptionConfig(widths=(4, 8, 8), decoder_widths=(8, 4), working_size=30)


def test_perceive_is_deterministic_and_shaped():
    model = tiny_model()
    frames = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    a = model.perceive(frames)
    b = tiny_model().perceive(frames.clone())
    assert len(a) == 3
    for x, y in zip(a, b):
        assert torch.equal(x.labels, y.labels) and torch.equal(x.depth, y.depth)
        assert torch.equal(x.estimates, y.estimates)
        K = int(x.labels.max())
        assert x.labels.shape == (32, 32) and x.depth.shape == (32, 32)
        assert x.estimates.shape == (K, len(ESTIMATE_FIELDS)) and x.scores.shape == (K,)
        assert bool((x.depth > 0).all())


def test_adapters_give_detections_and_depth_at_the_frame_size():
    model = tiny_model()
    # not the working size and not square: resized for the net, maps back at 40 x 56
    frames = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(2))
    model.config.centre_threshold = -1e9  # every local maximum is an object: detections are not empty
    model.config.foreground_threshold = 1e-6
    model.config.min_pixels = 1
    detections = model.segment(frames)
    depth = model.estimate(frames)
    assert depth.shape == (2, 40, 56) and depth.dtype == torch.float32 and bool((depth > 0).all())
    assert len(detections) == 2
    for d in detections:
        assert isinstance(d, FrameDetections) and len(d) > 0
        K = len(d)
        assert d.masks.shape == (K, 40, 56) and d.masks.dtype == torch.bool
        assert d.boxes.shape == (K, 4) and d.estimates.shape == (K, len(ESTIMATE_FIELDS))
        assert bool(((d.scores >= 0) & (d.scores <= 1)).all())
        assert not bool((d.masks.sum(0) > 1).any())  # one object per pixel
        assert bool(d.masks.flatten(1).any(1).all())  # no empty masks


def test_segment_then_estimate_runs_the_net_once(monkeypatch):
    model = tiny_model()
    calls = []
    forward = model.net.forward
    monkeypatch.setattr(model.net, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    frames = torch.rand(1, 3, 32, 32)
    model.segment(frames)
    model.estimate(frames)
    assert len(calls) == 2  # the frame and its mirror image (PerceptionConfig.mirror_average)
    model.estimate(frames + 0.0 * frames)  # equal values: still cached
    model.estimate(frames.flip(-1))
    assert len(calls) == 4


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model()
    model.estimate_noise = EstimateNoise(centre_height=0.03, centre_depth=0.04)
    folder = model.save_pretrained(tmp_path / "perception", training={"steps": 3})
    loaded = LearnedPerception.from_pretrained(folder)
    assert loaded.config == model.config and loaded.estimate_noise == model.estimate_noise
    assert json.loads((folder / "config.json").read_text())["training"] == {"steps": 3}
    frames = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    for x, y in zip(model.perceive(frames), loaded.perceive(frames)):
        assert torch.equal(x.depth, y.depth) and torch.equal(x.labels, y.labels)


def test_loading_bad_folders_names_the_problem(tmp_path):
    with pytest.raises(WeightsError, match="not a perception model folder"):
        LearnedPerception.from_pretrained(tmp_path)
    folder = tiny_model().save_pretrained(tmp_path / "m")
    (folder / "config.json").write_text('{"format": "other", "version": 1}')
    with pytest.raises(WeightsError, match="config.json"):
        LearnedPerception.from_pretrained(folder)
    folder = tiny_model().save_pretrained(tmp_path / "n")
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(WeightsError, match="model.safetensors"):
        LearnedPerception.from_pretrained(folder)


def test_default_perception_follows_the_weights_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(learned, "DEFAULT_PERCEPTION_WEIGHTS", tmp_path / "absent")
    assert learned.default_perception() is None
    folder = tiny_model().save_pretrained(tmp_path / "present")
    monkeypatch.setattr(learned, "DEFAULT_PERCEPTION_WEIGHTS", folder)
    assert isinstance(learned.default_perception(), LearnedPerception)


# --------------------------------------------------------------------------------------
# Box geometry
# --------------------------------------------------------------------------------------

def test_flat_box_of_turned_and_lying_boxes():
    yaw = torch.tensor(0.3)
    Rz = torch.tensor([[math.cos(0.3), -math.sin(0.3), 0], [math.sin(0.3), math.cos(0.3), 0], [0, 0, 1]])
    y, sides, upright, up = flat_box(Rz, torch.tensor([0.4, 0.8, 0.5]))  # the long side is the box's y axis
    assert float(y) == pytest.approx(0.3 + math.pi / 2)
    assert sides.tolist() == pytest.approx([0.8, 0.4, 0.5]) and bool(upright) and int(up) == 2
    lying = torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # box z along world x: a cylinder on its side
    y, sides, upright, up = flat_box(lying, torch.tensor([0.5, 0.5, 0.9]))
    assert int(up) == 0 and bool(upright)
    assert sides.tolist() == pytest.approx([0.9, 0.5, 0.5]) and float(y) == pytest.approx(0.0, abs=1e-6)
    assert float(yaw) == pytest.approx(0.3)


def test_estimates_of_true_boxes_give_the_boxes_back():
    scene = generate_scene(5, GeneratorConfig(image_size=64, num_frames=2))
    for t, camera in enumerate(scene.cameras):
        centers = torch.stack([a.centers[t] for a in scene.assets])
        sizes = torch.stack([a.sizes[t] for a in scene.assets])
        rotations = torch.stack([a.rotations[t] for a in scene.assets])
        estimates = box_estimates(centers, sizes, rotations, camera)
        assert estimates.shape == (len(scene.assets), len(ESTIMATE_FIELDS))
        uv, z = camera.project(centers)
        assert estimates[:, 2:4] == pytest.approx(uv, abs=1e-3)
        assert estimates[:, 4] == pytest.approx(z, abs=1e-4)
        boxes = boxes_from_estimates(estimates, camera)
        upright = flat_box(rotations, sizes)[2]
        centre = torch.cat([boxes[:, :2], boxes[:, 2:3] + boxes[:, 5:6] / 2], -1)
        assert centre[upright] == pytest.approx(centers[upright], abs=1e-3)
        yaw, sides, _, _ = flat_box(rotations, sizes)
        assert boxes[:, 3:6] == pytest.approx(sides, abs=1e-5)
        turn = torch.remainder(boxes[:, 6] - yaw + 0.1, math.pi) - 0.1  # the same box modulo 180°
        assert turn == pytest.approx(torch.zeros_like(turn), abs=1e-4)


def level_camera(height: float) -> Camera:
    """A camera ``height`` m above the floor looking level along +y (focal 50 px, 64 x 64)."""
    return Camera(torch.tensor([[50.0, 0, 32], [0, 50, 32], [0, 0, 1]]), torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
                  torch.tensor([0.0, height, 0.0]), 64, 64)


def test_box_from_agreeing_estimates_is_their_box():
    camera = level_camera(1.0)
    # a box centred 0.5 m up, 2.5 m ahead: the centre projects 10 px below the middle, its footprint 20 px below
    estimates = torch.tensor([[32.0, 52.0, 32.0, 42.0, 2.5, 0.5, 0.6, 0.4, 0.5, 0.0]])
    box = boxes_from_estimates(estimates, camera)[0]
    assert box[:2].tolist() == pytest.approx([0.0, 2.5], abs=1e-5)
    assert float(box[2]) == pytest.approx(0.25, abs=1e-5)  # bottom = centre height - height / 2
    assert box[3:6].tolist() == pytest.approx([0.6, 0.4, 0.5])
    assert float(box[6]) == pytest.approx(math.pi / 2)  # relative yaw 0: the long side points along the ray


def test_box_weighs_height_against_depth_by_their_spreads():
    camera = level_camera(1.0)
    # on the centre ray (0.2 m drop per metre) the height 0.5 m says 2.5 m ahead, the depth says 3.0 m; a 0.03 m
    # height spread is 0.15 m along the ray, as much as 5 % of 3 m: equal weights, halfway
    estimates = torch.tensor([[32.0, 52.0, 32.0, 42.0, 3.0, 0.5, 0.6, 0.4, 0.5, 0.0]])
    noise = EstimateNoise(centre_height=0.03, centre_depth=0.05)
    box = boxes_from_estimates(estimates, camera, noise)[0]
    assert box[:2].tolist() == pytest.approx([0.0, 2.75], abs=1e-4)
    assert float(box[2]) == pytest.approx(1.0 - 0.2 * 2.75 - 0.25, abs=1e-4)  # the fitted centre's height on that ray
    # a sharper depth pulls the centre to it
    sharp = EstimateNoise(centre_height=0.03, centre_depth=0.005)
    assert float(boxes_from_estimates(estimates, camera, sharp)[0, 1]) == pytest.approx(3.0, abs=0.01)


def test_box_seen_along_a_level_ray_is_placed_by_its_depth():
    camera = level_camera(0.5)
    # the camera at the centre's height: the centre ray never drops, so the height cannot place the centre
    estimates = torch.tensor([[32.0, 38.25, 32.0, 32.0, 4.0, 0.5, 0.6, 0.4, 1.0, 0.0]])
    assert boxes_from_estimates(estimates, camera)[0, :2].tolist() == pytest.approx([0.0, 4.0], abs=1e-4)


def test_box_whose_height_puts_it_behind_the_camera_is_placed_by_its_depth():
    camera = level_camera(1.0)
    # the centre ray falls 0.2 m per metre, yet the centre is said to be 1.5 m up: only behind the camera
    estimates = torch.tensor([[32.0, 52.0, 32.0, 42.0, 3.0, 1.5, 0.6, 0.4, 0.5, 0.0]])
    box = boxes_from_estimates(estimates, camera, EstimateNoise(centre_height=0.001, centre_depth=0.05))[0]
    assert box[:2].tolist() == pytest.approx([0.0, 3.0], abs=1e-4)


def test_estimate_noise_refuses_non_positive_spreads():
    with pytest.raises(ConfigError, match="EstimateNoise.centre_depth"):
        EstimateNoise(centre_depth=0.0)


@pytest.mark.parametrize("yaw, square", [(0.2, False), (1.4, False), (-1.0, False), (0.2, True)])
def test_encoded_yaw_decodes_modulo_its_symmetry(yaw, square):
    estimates = torch.tensor([[10.0, 12.0, 11.0, 9.0, 5.0, 0.3, 0.7, 0.7 if square else 0.4, 0.6, yaw]])
    u, v = torch.tensor([3.5]), torch.tensor([4.5])
    encoded = encode_estimates(estimates, u, v, 16.0)
    if square:  # a square footprint's doubled angle is not trained: only the quadrupled one counts
        encoded[:, 9:11] = torch.tensor([1.0, 0.0])
    decoded = decode_estimates(encoded, u, v, 16.0)
    assert decoded[:, :9] == pytest.approx(estimates[:, :9], abs=1e-4)
    period = math.pi / 2 if square else math.pi
    d = (float(decoded[0, 9]) - yaw) % period
    assert min(d, period - d) == pytest.approx(0.0, abs=1e-4)


def test_pixels_join_the_centre_their_offsets_point_to():
    cfg = PerceptionConfig(widths=(4, 8, 8), decoder_widths=(8, 4), working_size=32, offset_scale=4.0, min_pixels=2)
    heat = torch.zeros(16, 16)
    heat[4, 4], heat[10, 12] = 0.9, 0.8
    centres, heights = find_centres(heat, cfg)
    assert centres.tolist() == [[4.5, 4.5], [12.5, 10.5]] and heights.tolist() == pytest.approx([0.9, 0.8])
    foreground = torch.full((16, 16), -5.0)
    foreground[2:7, 2:7] = 5.0  # object one
    foreground[9:12, 11:14] = 5.0  # object two
    foreground[0, 15] = 5.0  # a stray pixel voting for object two: too small alone, but it joins
    v, u = torch.meshgrid(torch.arange(16) + 0.5, torch.arange(16) + 0.5, indexing="ij")
    target = torch.where((v < 8)[None] & (u < 8)[None], torch.tensor([4.5, 4.5])[:, None, None],
                         torch.tensor([12.5, 10.5])[:, None, None])
    offsets = (target - torch.stack([u, v])) / cfg.offset_scale
    labels = assign_pixels(foreground, offsets, centres, cfg)
    assert bool((labels[2:7, 2:7] == 1).all()) and bool((labels[9:12, 11:14] == 2).all())
    assert int(labels[0, 15]) == 2 and int((labels == 0).sum()) == 256 - 25 - 9 - 1
    cfg.min_pixels = 10  # object two (10 pixels) survives, one more and it does not
    assert int((assign_pixels(foreground, offsets, centres, cfg) == 2).sum()) == 10
    cfg.min_pixels = 11
    assert int((assign_pixels(foreground, offsets, centres, cfg) == 2).sum()) == 0


def test_instance_estimates_average_their_pixels():
    cfg = PerceptionConfig(widths=(4, 8, 8), decoder_widths=(8, 4), working_size=32, offset_scale=2.0)
    labels = torch.zeros(4, 4, dtype=torch.long)
    labels[0, :2] = 1  # pixels (0.5, 0.5) and (1.5, 0.5)
    box = torch.zeros(len(learned.BOX_CHANNELS), 4, 4)
    box[0, 0, :2] = torch.tensor([1.0, 3.0])  # footprint du: 2 and 6 pixels -> mean u 1 + 4 = 5
    box[4:9] = math.log(2.0)
    box[9], box[11] = 1.0, 1.0  # yaw 0
    est = learned.instance_estimates(labels, box, cfg, pixel_scale=(2.0, 2.0))
    # maps at twice the working size: offsets count double
    assert est.shape == (1, len(ESTIMATE_FIELDS))
    assert float(est[0, 0]) == pytest.approx(1.0 + 4.0 * 2.0)
    assert est[0, 4:9].tolist() == pytest.approx([2.0] * 5) and float(est[0, 9]) == pytest.approx(0.0)


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------

def test_dense_targets_point_every_pixel_at_its_object():
    from neuralassets.training.perception import dense_targets, frame_records

    records = frame_records(7, GeneratorConfig(image_size=48, num_frames=3), [0, 2])
    assert records["images"].shape == (2, 3, 48, 48) and records["estimates"].shape[-1] == len(ESTIMATE_FIELDS)
    item = {k: torch.from_numpy(v[1]) for k, v in records.items()}
    cfg = PerceptionConfig(widths=(4, 8, 8), decoder_widths=(8, 4), working_size=48)
    t = dense_targets(item, cfg)
    ids = item["instances"].long()
    assert torch.equal(t["foreground"].bool(), ids > 0)
    assert torch.allclose(torch.exp(t["log_depth"]), item["depth"].float())
    v, u = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(48) + 0.5, indexing="ij")
    for k in ids.unique()[1:].tolist():
        mine = ids == k
        centroid = torch.stack([u[mine].mean(), v[mine].mean()])
        votes = torch.stack([u[mine], v[mine]]) + t["offsets"][:, mine] * cfg.offset_scale
        assert votes == pytest.approx(centroid[:, None].expand_as(votes), abs=1e-3)
        decoded = decode_estimates(t["box"][:, mine].T, u[mine], v[mine], cfg.offset_scale)
        assert decoded[:, :9] == pytest.approx(item["estimates"][k - 1, :9].expand(int(mine.sum()), 9), rel=1e-4, abs=1e-3)
    assert float(t["heat"].max()) <= 1.0
    assert not bool(t["offsets"][:, ids == 0].any()) and not bool(t["box"][:, ids == 0].any())


def test_flipping_the_targets_equals_the_targets_of_the_flipped_frame():
    from neuralassets.training.perception import dense_targets, flip_horizontally, frame_records

    records = frame_records(11, GeneratorConfig(image_size=32, num_frames=1), [0])
    item = {k: torch.from_numpy(v[0]) for k, v in records.items()}
    mirrored = dict(item, images=item["images"].flip(-1), depth=item["depth"].flip(-1), instances=item["instances"].flip(-1))
    estimates = item["estimates"].clone()
    estimates[:, [0, 2]] = 32 - estimates[:, [0, 2]]
    estimates[:, 9] = -estimates[:, 9]
    mirrored["estimates"] = estimates
    cfg = PerceptionConfig(widths=(4, 8, 8), decoder_widths=(8, 4), working_size=32)
    batch = {k: v[None] for k, v in dense_targets(item, cfg).items()}
    flipped = flip_horizontally(batch, torch.tensor([True]))
    expected = dense_targets(mirrored, cfg)
    for key, value in expected.items():
        assert torch.allclose(flipped[key][0], value, atol=1e-4), key
    again = flip_horizontally(flipped, torch.tensor([True]))
    assert all(torch.equal(again[k], batch[k]) for k in batch)


def test_mirror_average_makes_the_model_see_a_mirrored_frame_mirrored():
    frames = torch.rand(2, 3, 32, 32)
    for mirror_average in (True, False):
        model = tiny_model()
        model.config.mirror_average = mirror_average
        depth, mirrored_depth = model.estimate(frames), model.estimate(frames.flip(-1))
        # the mean of the two views of a frame is the same mean, mirrored, for its mirror image
        assert torch.equal(mirrored_depth, depth.flip(-1)) == mirror_average


def test_mirror_maps_negates_horizontal_offsets_and_turns_and_undoes_itself():
    torch.manual_seed(0)
    maps = learned.PerceptionMaps(*(torch.randn(1, *shape) for shape in [(4, 6), (4, 6), (4, 6), (2, 4, 6), (13, 4, 6)]))
    mirrored = learned.mirror_maps(maps)
    assert torch.equal(mirrored.offsets[0, 0], -maps.offsets[0, 0].flip(-1))
    assert torch.equal(mirrored.offsets[0, 1], maps.offsets[0, 1].flip(-1))
    for i, name in enumerate(learned.BOX_CHANNELS):
        sign = -1 if name in ("footprint_du", "centre_du", "sin2_yaw", "sin4_yaw") else 1
        assert torch.equal(mirrored.box[0, i], sign * maps.box[0, i].flip(-1)), name
    again = learned.mirror_maps(mirrored)
    assert all(torch.equal(getattr(again, k), getattr(maps, k)) for k in ("log_depth", "heat", "offsets", "box"))
    halfway = maps.mean_with(mirrored)
    assert torch.allclose(halfway.log_depth, (maps.log_depth + maps.log_depth.flip(-1)) / 2)


def test_training_resumes_and_exports(tmp_path):
    from neuralassets.training.checkpoint import list_checkpoints
    from neuralassets.training.perception import export, train, write_data

    data, checkpoints = tmp_path / "data", tmp_path / "ckpt"
    write_data(data, videos=2, frames_per_video=2, videos_per_shard=1, image_size=32)
    assert len(list(data.glob("shard_*.safetensors"))) == 2
    train(data, checkpoints, steps=2, batch_size=2, crop=16, every=1, config=TINY)
    assert [p.name for p in list_checkpoints(checkpoints)] == ["step_00000001.safetensors", "step_00000002.safetensors"]
    train(data, checkpoints, steps=3, batch_size=2, crop=16, every=1)  # resumes at step 2, config from the checkpoint
    assert list_checkpoints(checkpoints)[-1].name == "step_00000003.safetensors"
    folder = export(checkpoints, tmp_path / "weights")
    model = LearnedPerception.from_pretrained(folder)
    assert model.config == TINY
    assert json.loads((folder / "config.json").read_text())["training"]["step"] == 3
    assert model.estimate(torch.rand(1, 3, 32, 32)).shape == (1, 32, 32)


def test_instance_estimates_leave_out_the_outline_of_large_objects():
    cfg = PerceptionConfig(widths=(4, 8, 8), decoder_widths=(8, 4), working_size=32)
    labels = torch.zeros(8, 8, dtype=torch.long)
    labels[1:6, 1:6] = 1  # 25 pixels, 9 of them inside
    labels[6:8, 6:8] = 2  # 4 pixels, none inside: all of them count
    box = torch.zeros(len(learned.BOX_CHANNELS), 8, 8)
    box[4:9] = math.log(5.0)  # the outline says 5 m
    box[4:9, 2:5, 2:5] = math.log(2.0)  # the inside says 2 m
    box[4:9, 6:8, 6:8] = math.log(3.0)
    est = learned.instance_estimates(labels, box, cfg)
    assert est[0, 4:9].tolist() == pytest.approx([2.0] * 5)
    assert est[1, 4:9].tolist() == pytest.approx([3.0] * 5)


# --------------------------------------------------------------------------------------
# The default of extract
# --------------------------------------------------------------------------------------

def eager_model(folder, frames):
    """A tiny random model saved with decoding settings that make every local heatmap maximum an object and half
    the pixels of ``frames`` foreground (the rest is floor to fit)."""
    model = tiny_model()
    with torch.no_grad():
        foreground = torch.sigmoid(model.net(frames).foreground)
    model.config.centre_threshold, model.config.min_pixels = -1e9, 1
    model.config.foreground_threshold = float(foreground.median())
    return model.save_pretrained(folder)


@pytest.mark.filterwarnings("ignore")  # a random model finds implausible objects
def test_extract_uses_the_learned_model_when_its_weights_are_there(tmp_path, monkeypatch):
    from neuralassets.perception import ClassicalSegmenter, ExtractionConfig, extract

    frames = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(4)) * 0.5 + 0.25
    monkeypatch.setattr(learned, "DEFAULT_PERCEPTION_WEIGHTS", tmp_path / "absent")
    absent = extract(frames).metadata["extraction"]
    assert absent["segmenter"] == "ClassicalSegmenter" and absent["depth"] is None

    monkeypatch.setattr(learned, "DEFAULT_PERCEPTION_WEIGHTS", eager_model(tmp_path / "present", frames))
    scene = extract(frames)
    present = scene.metadata["extraction"]
    assert present["segmenter"] == "LearnedPerception" and present["depth"] == "LearnedPerception"
    assert present["lifter"] == "segmenter estimates"
    assert len(scene) > 0 and scene.depth is None and present["depth_stored"] is False  # it placed camera and boxes only
    kept = extract(frames, config=ExtractionConfig(keep_learned_depth=True))
    assert kept.depth.shape == (3, 32, 32) and kept.metadata["extraction"]["depth_stored"] is True
    assert torch.equal(kept.assets[0].centers, scene.assets[0].centers)  # the same boxes either way
    # given pieces take over: a segmenter (no depth then), or depth (the learned model still segments)
    classical = extract(frames, ClassicalSegmenter()).metadata["extraction"]
    assert classical["segmenter"] == "ClassicalSegmenter" and classical["depth"] is None
    given = extract(frames, depth=torch.full((3, 32, 32), 4.0)).metadata["extraction"]
    assert given["segmenter"] == "LearnedPerception" and given["depth"] == "given"


@pytest.mark.filterwarnings("ignore")
def test_learned_boxes_are_placed_through_the_camera(tmp_path, monkeypatch):
    from neuralassets.perception import extract, mask_iou

    scene = generate_scene(3, GeneratorConfig(image_size=32, num_frames=2))
    monkeypatch.setattr(learned, "DEFAULT_PERCEPTION_WEIGHTS", eager_model(tmp_path / "m", scene.frames))
    out = extract(scene.frames, camera=scene.cameras)
    assert len(out) > 0
    detections = LearnedPerception.from_pretrained(tmp_path / "m").segment(scene.frames[:1])[0]
    expected = boxes_from_estimates(detections.estimates, scene.cameras[0], EstimateNoise())
    for asset in out.assets:  # its frame-0 box centre is its detection's estimate placed by camera 0
        iou = mask_iou(asset.masks[0][None], detections.masks)[0]
        if float(iou.max()) < 1:
            continue  # not seen in frame 0
        k = int(iou.argmax())
        assert asset.centers[0, :2].tolist() == pytest.approx(expected[k, :2].tolist(), abs=1e-4)


def test_cli_options_pick_the_segmenter(tmp_path):
    from argparse import Namespace

    from neuralassets.commands.extract import perception_pieces
    from neuralassets.errors import ConfigError
    from neuralassets.perception import ClassicalSegmenter

    base = dict(sam_checkpoint=None, sam_model=None, prompt=None, detector=None, sam2_video=None, depth_model=None,
                classical=False, perception_model=None)
    assert perception_pieces(Namespace(**base))["segmenter"] is None  # the library default
    assert isinstance(perception_pieces(Namespace(**{**base, "classical": True}))["segmenter"], ClassicalSegmenter)
    folder = tiny_model().save_pretrained(tmp_path / "m")
    assert isinstance(perception_pieces(Namespace(**{**base, "perception_model": str(folder)}))["segmenter"],
                      LearnedPerception)
    with pytest.raises(WeightsError, match="--perception-model"):
        perception_pieces(Namespace(**{**base, "perception_model": str(tmp_path / "none")}))
    with pytest.raises(ConfigError, match="--classical and --perception-model"):
        perception_pieces(Namespace(**{**base, "classical": True, "perception_model": str(folder)}))


@pytest.mark.filterwarnings("ignore")
def test_perception_benchmark_saves_the_spreads_it_measures(tmp_path):
    bench = load_benchmark("perception")
    scene = generate_scene(bench.split_seed("val", 0), GeneratorConfig(image_size=32))
    folder = eager_model(tmp_path / "m", scene.frames)
    with pytest.raises(SystemExit):  # the spreads are measured on the validation split only
        bench.main(["--weights", str(folder), "--split", "test", "--save-noise", "--out", str(tmp_path)])
    result = bench.main(["--weights", str(folder), "--videos", "1", "--size", "32", "--threads", "1", "--save-noise",
                         "--out", str(tmp_path / "out")])
    measured = result["estimate_noise"]
    assert set(measured) == {"centre_height", "centre_depth"} and all(v > 0 for v in measured.values())
    assert LearnedPerception.from_pretrained(folder).estimate_noise == EstimateNoise(**measured)
    assert "centre_height" in (tmp_path / "out" / "perception.md").read_text()

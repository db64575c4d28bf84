"""Extraction frame by frame: bounded memory, streamed Scene folders, camera height / pitch / field of view, and the
warnings footage out of reach gets (each once)."""
import math
import tracemalloc
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from neuralassets import Scene
from neuralassets.cli import main
from neuralassets.errors import ValidationError
from neuralassets.perception import CameraConfig, ExtractionConfig, ExtractionWarning, GroundPlaneLifter, extract
from neuralassets.perception.camera import estimate_up, pitch_and_roll
from neuralassets.perception.classical import ClassicalSegmenter
from neuralassets.perception.extract import _Extraction
from neuralassets.scene import SceneWriter


def _clip(T=12, H=72, W=96, grey=False, top=44, side=12, speed=2):
    """A floor darkening towards the top with a red square sliding right (rows top..top+side, ``speed`` pixels a frame)
    and a still blue one."""
    rows = torch.linspace(0.35, 0.6, H)[:, None].expand(H, W)
    frames = torch.stack([rows * 0.9, rows * 0.8, rows * 0.6]).expand(T, 3, H, W).clone()
    for t in range(T):
        frames[t, :, top:top + side, 6 + speed * t:6 + speed * t + side] = torch.tensor([0.85, 0.15, 0.1])[:, None, None]
        frames[t, :, 56:68, 70:84] = torch.tensor([0.15, 0.25, 0.85])[:, None, None]
    if grey:
        frames = frames.mean(1, keepdim=True).expand(T, 3, H, W).clone()
    return (frames * 255).round() / 255


def _messages(caught, text):
    return [str(w.message) for w in caught if text in str(w.message)]


class _ShapeSpy(GroundPlaneLifter):
    seen: list

    def lift_frame(self, masks, camera, depth=None):
        self.seen.append(tuple(masks.shape))
        return super().lift_frame(masks, camera, depth)


def test_each_stage_sees_one_frame_and_what_is_kept_does_not_grow_with_objects_times_frames():
    frames = _clip(T=40, speed=1)
    T, _, H, W = frames.shape
    lifter = _ShapeSpy()
    lifter.seen = []
    run = _Extraction(H, W, ClassicalSegmenter(), None, lifter, None, None, None, ExtractionConfig())
    tracemalloc.start()
    for t in range(10):
        run.add(frames[t])
    after_10 = tracemalloc.get_traced_memory()[0]
    for t in range(10, T):
        run.add(frames[t])
    after_40 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    found = run.finish()
    assert len(found.keep) == 2 and len(lifter.seen) == T
    assert all(shape == (2, H, W) for shape in lifter.seen)  # one frame's masks at a time
    # per frame, the two objects' masks are kept as bits inside their boxes: 144 + 168 pixels -> 39 bytes
    kept = set(found.ids)
    assert sum(d.mask.bits.nbytes for frame in run.detections for d in frame if d.track in kept) == T * (18 + 21)
    # 30 more frames retain about 2 kB each (cropped masks, cameras, per-frame records): a quarter of what
    # one full-frame bool mask per object and frame would take (2 * 30 * 72 * 96 bytes = 414 kB)
    assert after_40 - after_10 < 0.25 * 2 * 30 * H * W


def test_scene_writer_takes_masks_one_frame_at_a_time(tmp_path):
    frames = _clip(T=5)
    scene = extract(frames)
    writer = SceneWriter(tmp_path / "streamed")
    for frame in frames:
        writer.add_frame(frame)
    for a in scene.assets:
        writer.add_masks(a.id, (m for m in a.masks))  # a generator: no (T, H, W) stack needed
    assets = [a.copy() for a in scene.assets]
    for a in assets:
        a.masks = None  # written above
    writer.finish(scene.cameras, assets, metadata=scene.metadata)
    loaded, saved = Scene.load(tmp_path / "streamed"), Scene.load(extract(frames).save(tmp_path / "saved"))
    assert len(loaded) == len(saved) == 2
    for a, b in zip(loaded.assets, saved.assets):
        assert torch.equal(a.masks, b.masks) and torch.equal(a.centers, b.centers)
    assert torch.equal(loaded.frames, frames)
    with pytest.raises(ValidationError, match="asset 9: 3 masks for 5 frames"):
        writer.add_masks(9, torch.zeros(3, 72, 96, dtype=torch.bool))


def test_camera_height_pitch_and_field_of_view_come_from_the_options(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(_clip(T=4)):
        Image.fromarray((frame.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / f"{t:03d}.png")
    assert main(["extract", str(folder), "--out", str(tmp_path / "s"), "--camera-height", "2", "--camera-pitch", "40",
                 "--fov", "60", "--no-progress"]) == 0
    assert "camera 2.00 m high (given), pitched 40° down (given)" in capsys.readouterr().out
    scene = Scene.load(tmp_path / "s")
    cam = scene.cameras[0]
    assert float(cam.center[2]) == pytest.approx(2.0, abs=1e-4)
    assert pitch_and_roll(cam.R[:, 2]) == pytest.approx((40.0, 0.0), abs=1e-3)
    assert float(cam.K[0, 0]) == pytest.approx(48 / math.tan(math.radians(30)), rel=1e-5)
    assert scene.metadata["extraction"]["camera"]["pitch_source"] == "given"
    assert main(["extract", str(folder), "--out", str(tmp_path / "x"), "--camera-pitch", "120"]) == 2
    assert "camera pitch: expected degrees below the horizon in (-90, 90], got 120.0" in capsys.readouterr().err


def test_the_pitch_is_read_from_vanishing_points():
    from neuralassets.data import GeneratorConfig, generate_scene, split_seed

    scene = generate_scene(split_seed("val", 1), GeneratorConfig(image_size=128, num_frames=8))
    truth, _ = pitch_and_roll(scene.cameras[0].R[:, 2])
    pitch, roll = pitch_and_roll(estimate_up(scene.frames, scene.cameras[0].K))
    assert abs(pitch - truth) < 2 and abs(roll) < 2
    found = extract(scene.frames, ClassicalSegmenter(), camera=scene.cameras[0].K)  # no depth: vanishing points
    note = found.metadata["extraction"]["camera"]
    assert note["pitch_source"] == "vanishing points" and abs(note["pitch_degrees"] - truth) < 2
    # the default learned model gives metric depth: height and pitch from the floor fitted to it
    note = extract(scene.frames, camera=scene.cameras[0].K).metadata["extraction"]["camera"]
    assert note["pitch_source"] == note["height_source"] == "depth" and abs(note["pitch_degrees"] - truth) < 2
    assert note["height"] == pytest.approx(float(scene.cameras[0].center[2]), rel=0.05)
    assert estimate_up(torch.full((2, 3, 32, 32), 0.5), scene.cameras[0].K) is None  # nothing to read: None


@pytest.mark.parametrize("pitch, clip, said", [
    (30, dict(grey=True), "the clip is grayscale"),
    (80, {}, "the camera looks down from above (pitch 80°)"),
    (-20, {}, "no floor found under most objects"),
    (5, dict(top=17), "far from the synthetic scenes the shipped renderer was trained on (camera pitch 5° against"),
])
def test_footage_out_of_reach_is_said_once_not_per_frame(pitch, clip, said):
    frames = _clip(T=12, **clip)
    config = ExtractionConfig(camera=CameraConfig(height=1.5, pitch_degrees=pitch))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scene = extract(frames, ClassicalSegmenter(), config=config)  # the flat-coloured clip is the classical cue's
    assert len(_messages(caught, said)) == 1, [str(w.message) for w in caught]
    assert all(issubclass(w.category, ExtractionWarning) for w in caught if said in str(w.message))
    assert any(said in m for m in scene.metadata["extraction"]["warnings"])


def test_a_box_near_the_horizon_is_marked_implausible_and_said_once():
    # pitch 5°: the horizon is row 27 of 72; the red square's lower edge (row 29) meets the floor about 80 m away,
    # and the rows of its rounded lower corners a good deal farther: a box far beyond the far plane and too wide
    frames = _clip(T=6, top=17)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scene = extract(frames, ClassicalSegmenter(), config=ExtractionConfig(camera=CameraConfig(height=1.5,
                                                                                                  pitch_degrees=5)))
    said = _messages(caught, "implausible")
    assert len(said) == 1 and said[0].startswith("extract: 1 of 2 3D boxes are implausible (object 1: ")
    marked = [a for a in scene.assets if "implausible" in a.attributes]
    assert len(marked) == 1 and float(marked[0].boxes_2d[0, 3]) == 29
    assert marked[0].attributes["implausible"] in said[0]
    assert float((marked[0].centers[0] - scene.cameras[0].center).norm()) > 60


def test_given_ids_survive_a_frame_without_detections():
    from neuralassets.data import GeneratorConfig, generate_scene
    from neuralassets.perception import GroundTruthSegmenter

    scene = generate_scene(7, GeneratorConfig(image_size=64, num_frames=4, min_objects=3, max_objects=3))
    for a in scene.assets:
        a.id += 10  # ids that renumbering would lose
        a.masks[2] = False  # nothing seen in frame 2
    found = extract(scene.frames, GroundTruthSegmenter(scene), camera=scene.cameras, depth=scene.depth)
    assert [a.attributes["track_id"] for a in found.assets] == [a.id for a in scene.assets]
    assert all(float(a.visibility[2]) == 0 for a in found.assets)

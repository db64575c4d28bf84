"""Keyframes and animate(): interpolation against hand-computed poses, scene shapes, errors."""
import json
import math

import pytest
import torch

from neuralassets import geometry as G
from neuralassets.animation import CameraKeyframe, Keyframe, Keyframes, animate, interpolate, slerp
from neuralassets.errors import ValidationError


def rz(angle):
    return G.euler_to_matrix(torch.tensor(float(angle)), torch.tensor(0.0), torch.tensor(0.0))


def test_linear_positions_and_held_ends():
    keys = Keyframes(assets={1: {2: Keyframe(), 6: Keyframe(offset=(2.0, -1.0, 0.5))}})
    offsets, turns, scales = keys.asset_track(1, 9)
    expected_x = [0, 0, 0, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0]  # held before frame 2 and after frame 6
    assert torch.allclose(offsets[:, 0], torch.tensor(expected_x))
    assert torch.allclose(offsets[4], torch.tensor([1.0, -0.5, 0.25]))
    assert torch.allclose(scales, torch.ones(9)) and torch.allclose(turns, torch.eye(3).expand(9, 3, 3))


def test_smooth_interpolation_hand_computed():
    two = interpolate([0, 4], torch.tensor([[0.0], [1.0]]), 5, "smooth")[:, 0]
    # two keys: smoothstep 3s^2 - 2s^3 at s = 1/4, 1/2, 3/4
    assert torch.allclose(two, torch.tensor([0.0, 0.15625, 0.5, 0.84375, 1.0]))
    three = interpolate([0, 2, 4], torch.tensor([[0.0], [1.0], [4.0]]), 5, "smooth")[:, 0]
    # Hermite on [0, 2], h = 2, s = 1/2: v0 = 0 (first key), v1 = (4 - 0) / 4 = 1
    # 0.5 * 0 + 0.125 * 2 * 0 + 0.5 * 1 - 0.125 * 2 * 1 = 0.25; on [2, 4]: 0.5 * 1 + 0.125 * 2 * 1 + 0.5 * 4 - 0 = 2.75
    assert torch.allclose(three, torch.tensor([0.0, 0.25, 1.0, 2.75, 4.0]))
    linear = interpolate([0, 2, 4], torch.tensor([[0.0], [1.0], [4.0]]), 5, "linear")[:, 0]
    assert torch.allclose(linear, torch.tensor([0.0, 0.5, 1.0, 2.5, 4.0]))


def test_slerp_midpoint():
    assert torch.allclose(slerp(rz(0.0), rz(math.pi / 2), torch.tensor(0.5)), rz(math.pi / 4), atol=1e-6)
    a = G.euler_to_matrix(torch.tensor(0.3), torch.tensor(-0.2), torch.tensor(1.0))
    b = G.euler_to_matrix(torch.tensor(-1.1), torch.tensor(0.4), torch.tensor(0.2))
    mid = slerp(a, b, torch.tensor(0.5))
    angle = G.matrix_to_axis_angle(a.T @ b).norm()
    assert torch.allclose(G.matrix_to_axis_angle(a.T @ mid).norm(), angle / 2, atol=1e-5)
    assert torch.allclose(G.matrix_to_axis_angle(mid.T @ b).norm(), angle / 2, atol=1e-5)
    assert torch.allclose(slerp(a, b, torch.tensor(0.0)), a, atol=1e-6) and torch.allclose(slerp(a, b, torch.tensor(1.0)), b, atol=1e-5)


def test_keyed_rotation_is_slerped_after_the_source_rotation(simple_scene):
    keys = Keyframes(assets={1: {0: Keyframe(), 2: Keyframe(yaw=math.pi / 2)}})
    out = animate(simple_scene, keys, 3, source_frame=1)
    source = simple_scene.asset(1).rotations[1]
    assert torch.allclose(out.asset(1).rotations[1], rz(math.pi / 4) @ source, atol=1e-6)
    assert torch.allclose(out.asset(1).rotations[2], rz(math.pi / 2) @ source, atol=1e-6)
    assert torch.allclose(out.asset(1).centers, simple_scene.asset(1).centers[1].expand(3, 3))  # turns about its centre


def test_scale_keeps_the_lowest_point_and_position_keys_are_absolute(simple_scene):
    keys = Keyframes(assets={2: {0: Keyframe(), 2: Keyframe(scale=2.0)}, 1: {0: Keyframe(position=(1.0, 2.0, 0.25)),
                                                                          2: Keyframe(offset=(0.0, 0.0, 0.0))}})
    out = animate(simple_scene, keys, 3, source_frame=0)
    lowest = [float(out.asset(2).box(f).corners()[:, 2].min()) for f in range(3)]
    assert lowest == pytest.approx([float(simple_scene.asset(2).box(0).corners()[:, 2].min())] * 3, abs=1e-5)
    assert torch.allclose(out.asset(2).sizes[1], simple_scene.asset(2).sizes[0] * 1.5)
    source = simple_scene.asset(1).centers[0]
    assert torch.allclose(out.asset(1).centers[0], torch.tensor([1.0, 2.0, 0.25]))
    assert torch.allclose(out.asset(1).centers[1], (torch.tensor([1.0, 2.0, 0.25]) + source) / 2)
    assert torch.allclose(out.asset(1).centers[2], source)


def test_animate_shapes_placeholders_and_background(simple_scene):
    before = simple_scene.copy()
    out = animate(simple_scene, Keyframes.spin(2, 5), 5, source_frame=2)
    assert out.num_frames == 5 and len(out.cameras) == 5 and out.asset_ids == [1, 2]
    assert torch.equal(out.frames, simple_scene.frames[2].expand(5, -1, -1, -1))
    assert torch.equal(out.depth, simple_scene.depth[2].expand(5, -1, -1))
    for a, b in zip(out.assets, simple_scene.assets):
        assert a.source_frame == 0 and a.masks.shape == (5, 24, 32)
        assert torch.equal(a.boxes_2d, b.boxes_2d[2].expand(5, 4)) and torch.equal(a.masks[4], b.masks[2])
    assert all(torch.equal(c.R, simple_scene.cameras[2].R) and torch.equal(c.t, simple_scene.cameras[2].t) for c in out.cameras)
    assert torch.equal(out.asset(1).centers, simple_scene.asset(1).centers[2].expand(5, 3))  # not keyed: stands still
    assert torch.allclose(out.asset(2).rotations[3], rz(2 * math.pi * 3 / 5) @ simple_scene.asset(2).rotations[2], atol=1e-5)
    # the background is the source frame, seen by the source camera, with every asset's box there
    assert torch.equal(out.background.image, simple_scene.frames[2])
    assert torch.equal(out.background.camera.t, simple_scene.cameras[2].t)
    assert torch.equal(out.background.object_boxes, torch.stack([a.boxes_2d[2] for a in simple_scene.assets]))
    assert torch.equal(out.background.depth, simple_scene.depth[2])  # so moved cameras can reproject it
    assert out.metadata["animation"]["source_frame"] == 2 and out.metadata["seed"] == 0
    assert Keyframes.from_dict(out.metadata["animation"]["keyframes"]) == Keyframes.spin(2, 5)
    for a, b in zip(simple_scene.assets, before.assets):  # the input is untouched
        assert torch.equal(a.centers, b.centers) and torch.equal(a.rotations, b.rotations)
    assert simple_scene.background is None and "animation" not in simple_scene.metadata


def test_camera_keys_follow_eye_and_target(simple_scene):
    keys = Keyframes(camera={0: CameraKeyframe((4.0, -4.0, 3.0), (0.0, 0.0, 0.3)), 4: CameraKeyframe((0.0, -6.0, 3.0), (0.0, 0.0, 0.3))})
    out = animate(simple_scene, keys, 5)
    assert torch.allclose(out.cameras[0].center, torch.tensor([4.0, -4.0, 3.0]), atol=1e-5)
    assert torch.allclose(out.cameras[2].center, torch.tensor([2.0, -5.0, 3.0]), atol=1e-5)
    assert torch.equal(out.cameras[3].K, simple_scene.cameras[0].K)
    forward = torch.tensor([0.0, 0.0, 0.3]) - torch.tensor([0.0, -6.0, 3.0])
    assert torch.allclose(out.cameras[4].R[2], forward / forward.norm(), atol=1e-6)
    assert torch.equal(out.background.camera.R, simple_scene.cameras[0].R)  # camera motion is relative to the source


def test_json_round_trip():
    keys = Keyframes(assets={3: {0: Keyframe(offset=(0.1, 0.2, 0.3), yaw=0.5), 7: Keyframe(position=(1.0, 1.0, 0.2), scale=1.5)}},
                     camera={2: CameraKeyframe((1.0, -5.0, 2.0), (0.0, 0.0, 0.0))}, interpolation="smooth")
    assert Keyframes.from_dict(json.loads(json.dumps(keys.to_dict()))) == keys


@pytest.mark.parametrize("keys, match", [
    (Keyframes(assets={9: {0: Keyframe()}}), r"keyframes.assets\[9\]: there is no asset 9 in the scene \(ids: \[1, 2\]\)"),
    (Keyframes(assets={1: {0: Keyframe(), 3: Keyframe(scale=-1.0)}}), r"keyframes.assets\[1\]\[3\].scale: expected a positive"),
    (Keyframes(assets={1: {-1: Keyframe()}}), r"keyframes.assets\[1\]\[-1\]: keyframe frames must be integers >= 0"),
    (Keyframes(assets={1: {}}), r"keyframes.assets\[1\]: no keyframes"),
    (Keyframes(assets={1: {0: Keyframe(offset=(0.0, float("nan"), 0.0))}}), r"keyframes.assets\[1\]\[0\].offset: expected three finite"),
    (Keyframes(assets={1: {0: Keyframe(), 4: Keyframe(yaw=math.pi)}}), r"assets\[1\]\[4\]: turns by 180 degrees since the key at frame 0"),
    (Keyframes(camera={1: CameraKeyframe((0.0, 0.0, 5.0), (0.0, 0.0, 0.0))}), r"keyframes.camera\[1\]: the camera would look straight"),
    (Keyframes(camera={1: CameraKeyframe((1.0, 1.0, 1.0), (1.0, 1.0, 1.0))}), r"keyframes.camera\[1\]: eye and target coincide"),
    (Keyframes(interpolation="cubic"), r"keyframes.interpolation: 'cubic' is not one of linear, smooth"),
])
def test_bad_keyframes_are_named(simple_scene, keys, match):
    with pytest.raises(ValidationError, match=match):
        animate(simple_scene, keys, 4)


def test_half_turns_between_adjacent_frames_are_allowed_and_bad_counts_rejected(simple_scene):
    out = animate(simple_scene, Keyframes.spin(1, 2), 2)  # yaw 0 then pi: no frame lies between the keys
    assert torch.allclose(out.asset(1).rotations[1], rz(math.pi) @ simple_scene.asset(1).rotations[0], atol=1e-6)
    with pytest.raises(ValidationError, match="num_frames: expected an integer >= 1, got 0"):
        animate(simple_scene, Keyframes(), 0)
    with pytest.raises(ValidationError, match="source_frame: 3 is not a frame index of a 3-frame scene"):
        animate(simple_scene, Keyframes(), 4, source_frame=3)
    with pytest.raises(ValidationError, match="a slide needs at least 2 frames"):
        Keyframes.slide(1, (1.0, 0.0, 0.0), 1)

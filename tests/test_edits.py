"""Edit operations: hand-computed poses, validation, appearance bookkeeping and the edit history."""
import json
import math
import warnings

import numpy as np
import pytest
import torch

from neuralassets import AssetNotFoundError, Camera, Scene, ValidationError
from neuralassets import edits as E
from neuralassets import geometry as G
from neuralassets.conditioning import GREY, background_view, conditioning_from_scene
from neuralassets.data.synthetic import select_frames
from neuralassets.framing import resized_scene, window_scene
from neuralassets.scene import Asset, Background


def poses(scene):
    return {a.id: (a.centers.clone(), a.sizes.clone(), a.rotations.clone()) for a in scene.assets}


def assert_same_poses(a, b, atol=0.0):
    pa, pb = poses(a), poses(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        for x, y in zip(pa[k], pb[k]):
            assert torch.allclose(x, y, atol=atol), k


@pytest.fixture
def front_scene():
    """One frame, 64x48, camera on -y looking along +y at a 0.5 m cube standing at the origin."""
    cam = Camera.look_at([0.0, -4.0, 1.5], [0.0, 0.0, 0.25], 50.0, 64, 48)
    cube = Asset(1, "red cube", centers=torch.tensor([[0.0, 0.0, 0.25]]), sizes=torch.full((1, 3), 0.5),
                 rotations=torch.eye(3)[None], boxes_2d=torch.tensor([[24.0, 20.0, 40.0, 36.0]]), visibility=torch.ones(1),
                 category="cube", attributes={"shape": "cube", "color": "red", "mass": 2.0})
    ball = Asset(2, "blue ball", centers=torch.tensor([[1.0, 0.5, 0.2]]), sizes=torch.full((1, 3), 0.4),
                 rotations=torch.eye(3)[None], boxes_2d=torch.tensor([[44.0, 24.0, 52.0, 32.0]]), visibility=torch.ones(1),
                 category="sphere", attributes={"shape": "sphere", "color": "blue", "mass": 1.0})
    frames = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    return Scene(frames, [cam], [cube, ball], metadata={"name": "front", "renderer": {"floor": "checker"}})


def test_move_world_changes_selected_frames_only(simple_scene):
    before = poses(simple_scene)
    out = E.move(simple_scene, 2, (0.1, -0.2, 0.05), frames=[0, -1])
    assert torch.allclose(out.asset(2).centers[[0, 2]], before[2][0][[0, 2]] + torch.tensor([0.1, -0.2, 0.05]))
    assert torch.equal(out.asset(2).centers[1], before[2][0][1])
    assert torch.equal(out.asset(1).centers, before[1][0])
    assert torch.equal(simple_scene.asset(2).centers, before[2][0])  # the input is untouched
    assert "edits" not in simple_scene.metadata
    assert out.metadata["edits"] == [{"op": "move", "args": {"asset_id": 2, "delta": [0.1, -0.2, 0.05], "frames": [0, -1],
                                                             "frame_of_reference": "world", "check_visibility": "error"}}]


def test_move_floor_and_camera_frames(front_scene):
    out = E.move(front_scene, 1, (0.2, 0.3), frame_of_reference="floor")
    assert torch.allclose(out.asset(1).centers[0], torch.tensor([0.2, 0.3, 0.25]))
    # The camera looks along +y: "right" is +x and "away" is +y.
    out = E.move(front_scene, 1, (0.2, 0.3), frame_of_reference="camera")
    assert torch.allclose(out.asset(1).centers[0], torch.tensor([0.2, 0.3, 0.25]), atol=1e-6)
    with pytest.raises(ValidationError, match="delta: expected 2 numbers"):
        E.move(front_scene, 1, (0.2, 0.3, 0.0), frame_of_reference="floor")
    with pytest.raises(ValidationError, match="frame_of_reference"):
        E.move(front_scene, 1, (0.2, 0.3), frame_of_reference="image")


def test_move_in_image_drags_base_point(front_scene):
    cam = front_scene.cameras[0]
    start, end = torch.tensor([[0.1, -0.1, 0.0]]), torch.tensor([[0.4, 0.2, 0.0]])  # on the cube's base plane z = 0
    (uv0,), _ = cam.project(start)
    (uv1,), _ = cam.project(end)
    out = E.move_in_image(front_scene, 1, 0, uv0, uv1)
    assert torch.allclose(out.asset(1).centers[0], torch.tensor([0.3, 0.3, 0.25]), atol=1e-4)
    assert out.metadata["edits"][0]["op"] == "move_in_image"
    with pytest.raises(ValidationError, match="to_uv: the ray through pixel"):
        E.move_in_image(front_scene, 1, 0, uv0, (32.0, 0.5))  # top row looks above the horizon


def test_rotate_composes_in_world_axes(simple_scene):
    old = simple_scene.asset(1).rotations
    out = E.rotate(simple_scene, 1, yaw=math.pi / 2, pitch=0.1, frames=1)
    turn = G.euler_to_matrix(torch.tensor(math.pi / 2), torch.tensor(0.1), torch.tensor(0.0))
    assert torch.allclose(out.asset(1).rotations[1], turn @ old[1], atol=1e-6)
    assert torch.equal(out.asset(1).rotations[0], old[0])
    assert torch.equal(out.asset(1).centers, simple_scene.asset(1).centers)


def test_scale_keeps_base_on_floor(front_scene):
    out = E.scale(front_scene, 1, 2.0)
    assert torch.allclose(out.asset(1).sizes[0], torch.full((3,), 1.0))
    assert torch.allclose(out.asset(1).centers[0], torch.tensor([0.0, 0.0, 0.5]))
    out = E.scale(front_scene, 1, (1.0, 1.0, 0.5), keep_on_floor=False)
    assert torch.allclose(out.asset(1).sizes[0], torch.tensor([0.5, 0.5, 0.25]))
    assert torch.allclose(out.asset(1).centers[0], torch.tensor([0.0, 0.0, 0.25]))
    # Turned 90 degrees about x, the box's own y axis is vertical: halving it lowers the centre by 1/8 m.
    tipped = E.rotate(front_scene, 1, roll=math.pi / 2)
    out = E.scale(tipped, 1, (1.0, 0.5, 1.0))
    assert torch.allclose(out.asset(1).centers[0], torch.tensor([0.0, 0.0, 0.125]), atol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda s: E.move(s, 1, (float("nan"), 0, 0)), "delta: expected finite numbers"),
    (lambda s: E.move(s, 1, "up"), "delta: expected 3 numbers"),
    (lambda s: E.scale(s, 1, -1.0), "factor: every scale factor must be positive"),
    (lambda s: E.scale(s, 1, (1.0, float("inf"), 1.0)), "factor: expected finite numbers"),
    (lambda s: E.rotate(s, 1, yaw=float("nan")), "yaw: expected finite numbers"),
    (lambda s: E.move(s, 1, (0, 0, 0), frames=[5]), r"frames: 5 is not a frame index in \[-1, 1\)"),
    (lambda s: E.move(s, 1, (0, 0, 0), check_visibility="maybe"), "check_visibility"),
    (lambda s: E.insert(s, s, 1, new_id=2), "new_id: expected an unused id"),
    (lambda s: E.swap_appearance(s, 1, 1), "id_b"),
    (lambda s: E.move_camera(s, None), "give eye, target or both"),
])
def test_bad_arguments_are_named(front_scene, call, message):
    with pytest.raises(ValidationError, match=message):
        call(front_scene)


def test_unknown_asset_lists_ids(front_scene):
    with pytest.raises(AssetNotFoundError, match=r"asset id 7 is not in this scene \(ids: \[1, 2\]\)"):
        E.move(front_scene, 7, (0, 0, 0))


def test_out_of_view_is_an_error_or_a_warning(front_scene):
    with pytest.raises(ValidationError, match=r"asset 1 \(red cube\) would be out of view \(frame 0: behind the camera\)"):
        E.move(front_scene, 1, (0.0, -6.0, 0.0))
    with pytest.raises(ValidationError, match="outside the 64x48 view"):
        E.move(front_scene, 1, (20.0, 0.0, 0.0))
    with pytest.warns(E.EditWarning, match="outside the 64x48 view"):
        out = E.move(front_scene, 1, (20.0, 0.0, 0.0), check_visibility="warn")
    # Already out of view: moving it further is not reported again.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        E.move(out, 1, (1.0, 0.0, 0.0))


def test_interpenetration_warns_once_new(front_scene):
    with pytest.warns(E.EditWarning, match=r"asset 1 \(red cube\) now interpenetrates asset 2 \(blue ball\) at frames \[0\]"):
        clash = E.move(front_scene, 1, (0.9, 0.4, 0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        E.move(front_scene, 1, (0.25, 0.0, 0.0))  # clear of the ball
        E.move(clash, 1, (0.01, 0.0, 0.0))  # they overlapped before already
        near = E.move(front_scene, 1, (0.5, 0.5, 0.0))  # 5 cm gap between the boxes
    # Turned 45 degrees, the cube's corner reaches into the ball's box.
    with pytest.warns(E.EditWarning, match="interpenetrates"):
        E.rotate(near, 1, yaw=math.pi / 4)


def test_remove_greys_the_object_in_the_background(front_scene):
    out = E.remove(front_scene, 1)
    assert out.asset_ids == [2] and front_scene.asset_ids == [1, 2] and front_scene.removed_boxes is None
    assert out.background is None and torch.equal(out.removed_boxes, front_scene.asset(1).boxes_2d[None])
    assert torch.equal(out.photo_boxes(0), torch.stack([front_scene.asset(2).boxes_2d[0], front_scene.asset(1).boxes_2d[0]]))
    bg = conditioning_from_scene(out, 0, max_objects=4).background_image[0]
    assert torch.all(bg[:, 21:35, 25:39] == GREY)  # inside the removed cube's box
    assert torch.equal(bg[:, :18], front_scene.frames[0][:, :18])
    both = E.remove(out, 2)  # a second removal is remembered too
    assert both.removed_boxes.shape == (2, 1, 4) and both.photo_boxes(0).shape == (2, 4)
    # an explicit background that is the removed object's photo gets its box added
    explicit = front_scene.replace(background=Background(front_scene.frames[0].clone(), front_scene.cameras[0],
                                                         front_scene.asset(2).boxes_2d[:1]))
    assert torch.equal(E.remove(explicit, 1).background.object_boxes[-1], front_scene.asset(1).boxes_2d[0])


def test_a_removed_object_is_left_out_of_every_frames_own_photo(simple_scene, tmp_path):
    moving = simple_scene.copy()
    moving.asset(1).boxes_2d = torch.tensor([[2.0, 3.0, 12.0, 15.0], [8.0, 4.0, 18.0, 16.0], [0.0, 0.0, 0.0, 0.0]])
    moving.asset(1).visibility = torch.tensor([1.0, 0.8, 0.0])  # gone from view at frame 2
    out = E.remove(moving, 1)
    for frame, expected in ((0, [2.0, 3.0, 12.0, 15.0]), (1, [8.0, 4.0, 18.0, 16.0])):
        view = background_view(out, frame, frame)  # each frame's own photo, not the removed object's source frame's
        assert torch.equal(view.image, moving.frames[frame]) and view.object_masks is None
        assert torch.equal(view.object_boxes[-1], torch.tensor(expected)) and len(view.object_boxes) == 2
    assert len(background_view(out, 2, 2).object_boxes) == 1  # not seen there: nothing to leave out
    # the boxes travel with the scene: saved and loaded, frames selected, windowed and resized
    assert torch.equal(Scene.load(out.save(tmp_path / "scene")).removed_boxes.nan_to_num(-1), out.removed_boxes.nan_to_num(-1))
    assert torch.equal(select_frames(out, [1]).removed_boxes, out.removed_boxes[:, 1:2])
    assert torch.equal(window_scene(out, (4, 2, 20, 18)).removed_boxes[0, 1], torch.tensor([4.0, 2.0, 14.0, 14.0]))
    assert torch.equal(resized_scene(out, 48, 64).removed_boxes[0, 0], torch.tensor([4.0, 6.0, 24.0, 30.0]))
    with pytest.raises(ValidationError, match="removed_boxes: expected shape"):
        out.replace(removed_boxes=torch.zeros(1, 2, 4)).validate()


def test_insert_places_and_turns_the_asset(front_scene, simple_scene):
    donor = simple_scene.asset(2)
    out = E.insert(front_scene, simple_scene, 2, floor_xy=(0.5, -0.5), yaw=0.3, check_visibility="warn")
    new = out.asset(3)
    assert out.asset_ids == [1, 2, 3] and new.name == donor.name and new.attributes == donor.attributes
    assert torch.allclose(new.centers[0], torch.tensor([0.5, -0.5, donor.centers[0, 2]]))
    assert torch.allclose(G.yaw_of(new.rotations[0]), torch.tensor(0.3), atol=1e-6)
    assert torch.allclose(new.sizes[0], donor.sizes[0])
    assert torch.equal(new.appearance.image, simple_scene.frames[donor.source_frame])
    assert torch.equal(new.appearance.box_2d, donor.boxes_2d[donor.source_frame])
    assert float(new.visibility.sum()) == 0 and new.masks is None
    cond = conditioning_from_scene(out, 0, max_objects=4)
    assert cond.object_mask[0].tolist() == [True, True, True, False]
    assert out.metadata["edits"][0]["args"]["other_scene"] == "other"  # the donor scene has no name
    # Same number of frames: the trajectory comes along unchanged.
    back = E.insert(E.remove(simple_scene, 2), simple_scene, 2, new_id=2)
    assert torch.equal(back.asset(2).centers, donor.centers) and torch.equal(back.asset(2).rotations, donor.rotations)


def test_swap_appearance_trades_looks_keeps_poses(front_scene):
    out = E.swap_appearance(front_scene, 1, 2)
    a, b = out.asset(1), out.asset(2)
    assert (a.name, a.category, a.attributes) == ("blue ball", "sphere", {"shape": "sphere", "color": "blue", "mass": 2.0})
    assert (b.name, b.attributes["color"], b.attributes["mass"]) == ("red cube", "red", 1.0)
    assert_same_poses(out, front_scene)
    cond = conditioning_from_scene(out, 0, max_objects=2)
    size = torch.tensor([64.0, 48.0, 64.0, 48.0])
    assert torch.allclose(cond.object_boxes[0, 0], front_scene.asset(2).boxes_2d[0] / size)
    assert torch.allclose(cond.object_boxes[0, 1], front_scene.asset(1).boxes_2d[0] / size)
    assert torch.equal(cond.object_poses, conditioning_from_scene(front_scene, 0, max_objects=2).object_poses)
    again = E.swap_appearance(out, 1, 2)
    assert again.asset(1).attributes == front_scene.asset(1).attributes


def test_transfer_and_swap_background(front_scene, simple_scene):
    out = E.transfer(front_scene, 2, simple_scene, 1, other_name="clip")
    # The donor has no colour, so the ball's own colour goes with its old looks; its mass stays.
    assert out.asset(2).attributes == {"shape": "cube", "mass": 1.0}
    assert torch.equal(out.asset(2).appearance.image, simple_scene.frames[0])
    assert out.metadata["edits"][-1]["args"]["other_scene"] == "clip"
    simple_scene.metadata["renderer"] = {"floor": "wood"}
    out = E.swap_background(front_scene, simple_scene, frame=2)
    assert torch.equal(out.background.image, simple_scene.frames[2])
    assert torch.equal(out.background.camera.R, front_scene.cameras[0].R)  # seen by this scene's camera, not the donor's
    seen_later = E.swap_background(simple_scene, front_scene, view_frame=2)
    assert torch.equal(seen_later.background.camera.t, simple_scene.cameras[2].t)
    with pytest.raises(ValidationError, match="view_frame"):
        E.swap_background(front_scene, simple_scene, view_frame=front_scene.num_frames)
    assert out.background.object_boxes.shape == (2, 4) and out.background.attributes == {"floor": "wood"}
    assert front_scene.background is None


def test_camera_edits(simple_scene):
    out = E.move_camera(simple_scene, [1, 2], eye=(0.0, -5.0, 2.0), target=(0.0, 0.0, 0.0))
    cam = out.cameras[2]
    assert torch.allclose(cam.center, torch.tensor([0.0, -5.0, 2.0]), atol=1e-5)
    (uv,), _ = cam.project(torch.zeros(1, 3))
    assert torch.allclose(uv, torch.tensor([16.0, 12.0]), atol=1e-4)  # the target lands on the image centre
    assert torch.equal(out.cameras[0].R, simple_scene.cameras[0].R)
    turned = E.move_camera(simple_scene, 0, target=(1.0, 1.0, 0.0))
    assert torch.allclose(turned.cameras[0].center, simple_scene.cameras[0].center, atol=1e-5)
    out = E.set_camera(simple_scene, 0, simple_scene.cameras[2])
    assert torch.equal(out.cameras[0].t, simple_scene.cameras[2].t)
    assert out.metadata["edits"][0]["args"]["camera"]["width"] == 32
    with pytest.raises(ValidationError, match="does not match the scene's 32x24"):
        E.set_camera(simple_scene, 0, Camera.look_at([0, -4, 1], [0, 0, 0], 50, 64, 64))


def test_history_replays_from_json(tmp_path, front_scene, simple_scene):
    direct = E.insert(E.rotate(E.move(front_scene, 2, (0.1, 0.0, 0.0)), 1, yaw=0.4), simple_scene, 1,
                      floor_xy=(-0.8, 0.3), other_name="clip", check_visibility="warn")
    direct = E.swap_background(E.set_camera(direct, 0, front_scene.cameras[0]), simple_scene, 1, other_name="clip")
    path = E.save_edits(tmp_path / "edits.json", direct)
    loaded = E.load_edits(path)
    assert [e.op for e in loaded] == ["move", "rotate", "insert", "set_camera", "swap_background"]
    replay = E.apply_edits(front_scene, loaded, others={"clip": simple_scene})
    assert_same_poses(replay, direct)
    assert replay.metadata == direct.metadata
    assert torch.equal(replay.background.image, direct.background.image)
    # The history survives a save/load of the scene.
    assert Scene.load(direct.save(tmp_path / "scene")).metadata["edits"] == direct.metadata["edits"]


@pytest.mark.parametrize("entries, message", [
    ([{"op": "move", "args": {"asset_id": 1, "delta": [0, 0, 0]}}, {"op": "teleport", "args": {}}],
     r"edits\[1\]: unknown op 'teleport'"),
    ([{"op": "move", "args": {"asset_id": 1, "delta": [0, 0, 0], "distance": 3}}], r"edits\[0\] \(move\): bad arguments .*'distance'"),
    ([{"op": "move", "args": {"asset_id": 1}}], r"edits\[0\] \(move\): bad arguments .*delta"),
    ([{"op": "scale", "args": {"asset_id": 1, "factor": -2}}], r"edits\[0\] \(scale\): factor: every scale factor"),
    ([{"op": "transfer", "args": {"asset_id": 1, "other_scene": "clip", "other_asset_id": 1}}],
     r"edits\[0\] \(transfer\): needs the scene named 'clip'"),
    (["move"], r"edits\[0\]: expected an object with an 'op'"),
])
def test_bad_edit_lists_name_the_entry(front_scene, entries, message):
    with pytest.raises(ValidationError, match=message):
        E.apply_edits(front_scene, entries)


def test_edit_files_are_checked(tmp_path, front_scene):
    path = tmp_path / "edits.json"
    path.write_text(json.dumps({"format_version": 1, "edits": [{"op": "move", "args": {}}, {"op": "fly"}]}))
    with pytest.raises(ValidationError, match=r"edits.json: edits\[1\]: unknown op 'fly'"):
        E.load_edits(path)
    path.write_text(json.dumps({"format_version": 2, "edits": []}))
    with pytest.raises(ValidationError, match="format_version 2 is not supported"):
        E.load_edits(path)
    path.write_text("{oops")
    with pytest.raises(ValidationError, match="not valid JSON"):
        E.load_edits(path)
    path.write_text(json.dumps([{"op": "remove", "args": {"asset_id": 9}}]))
    with pytest.raises(AssetNotFoundError, match=r"edits\[0\] \(remove\): asset id 9 is not in this scene"):
        E.apply_edits(front_scene, E.load_edits(path))


def test_numpy_and_tensor_arguments_are_recorded_as_json(front_scene):
    out = E.move(front_scene, np.int64(1), np.array([0.1, 0.0, 0.0]), frames=np.int64(0))
    out = E.scale(out, 1, np.float32(1.5), frames=torch.tensor([0]))
    assert json.loads(json.dumps(out.metadata)) == out.metadata
    assert [e.args["frames"] for e in E.history(out)] == [0, [0]]
    assert E.history(out)[0].args["asset_id"] == 1 and E.history(out)[1].args["factor"] == 1.5


def test_pose_and_camera_edits_keep_the_poses_the_photos_were_taken_at(front_scene, simple_scene):
    before = front_scene.asset(1).pose_features(0, front_scene.cameras[0])
    moved = E.move(front_scene, 1, (0.3, 0.0, 0.0), check_visibility="warn")
    assert torch.equal(moved.asset(1).observed_poses, before[None]) and moved.asset(1).appearance is None
    assert not torch.equal(moved.asset(1).pose_features(0, moved.cameras[0]), before)
    assert front_scene.asset(1).observed_poses is None and moved.asset(2).observed_poses is None  # the input, the other asset
    again = E.rotate(moved, 1, yaw=0.5, check_visibility="warn")
    assert torch.equal(again.asset(1).photo_pose(0, again.cameras[0]), before)  # still the photo's, not the moved one
    # a camera edit keeps every asset's
    orbit = E.move_camera(simple_scene, [1], eye=(4.5, -3.5, 3.0))
    for a, b in zip(orbit.assets, simple_scene.assets):
        assert torch.equal(a.photo_pose(1, orbit.cameras[1]), b.pose_features(1, simple_scene.cameras[1]))
        assert not torch.equal(a.pose_features(1, orbit.cameras[1]), b.pose_features(1, simple_scene.cameras[1]))
    # appearance taken from another scene brings the donor's pose in its photo
    out = E.transfer(front_scene, 2, simple_scene, 1)
    donor = simple_scene.asset(1)
    assert torch.equal(out.asset(2).appearance.pose, donor.pose_features(donor.source_frame, simple_scene.cameras[donor.source_frame]))

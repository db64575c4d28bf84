import pytest
import torch

from neuralassets import ValidationError
from neuralassets.conditioning import Conditioning, conditioning_from_scene, grey_inside, grey_outside


def test_shapes_and_padding(simple_scene):
    c = conditioning_from_scene(simple_scene, target_frame=2, max_objects=5, source_frame=0)
    assert c.appearance_images.shape == (1, 1, 3, 24, 32)
    assert c.object_poses.shape == (1, 5, 12) and c.object_mask.tolist() == [[True, True, False, False, False]]
    assert c.object_poses[0, 2:].abs().sum() == 0 and c.object_boxes[0, 2:].abs().sum() == 0
    # boxes normalised by image size
    assert torch.allclose(c.object_boxes[0, 0], torch.tensor([2 / 32, 3 / 24, 12 / 32, 15 / 24]))
    # outside the union of boxes the appearance image is grey; inside it is the frame
    img = c.appearance_images[0, 0]
    assert torch.all(img[:, 20:, :] == 0.5)
    assert torch.equal(img[:, 5, 5], simple_scene.frames[0][:, 5, 5])
    assert torch.all(c.background_image[0][:, 5, 5] == 0.5)
    # camera motion source frame 0 -> target frame 2
    assert c.camera_pose.shape == (1, 12)


def test_too_many_objects_is_a_clear_error(simple_scene):
    with pytest.raises(ValidationError, match="scene has 2 assets but the model has 1 object slots"):
        conditioning_from_scene(simple_scene, 0, max_objects=1)


def test_drop_select_and_collate(simple_scene):
    a = conditioning_from_scene(simple_scene, 0, 4)
    b = conditioning_from_scene(simple_scene, 1, 4)
    batch = Conditioning.collate([a, b])
    assert batch.batch_size == 2
    dropped = batch.drop_objects(torch.tensor([True, False]))
    assert not dropped.object_mask[0].any() and dropped.object_mask[1].equal(batch.object_mask[1])
    assert dropped.object_poses[0].abs().sum() == 0
    picked = batch.select(torch.tensor([1, 1, 0]))
    assert picked.batch_size == 3
    assert torch.equal(picked.object_poses, torch.stack([batch.object_poses[1], batch.object_poses[1], batch.object_poses[0]]))
    assert torch.equal(picked.appearance_images[2], batch.appearance_images[0])


def test_grey_helpers():
    img = torch.zeros(3, 4, 4)
    box = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    out = grey_outside(img, box)
    assert out[:, :2, :2].eq(0).all() and out[:, 2:, :].eq(0.5).all()
    inside = grey_inside(img, box)
    assert inside[:, :2, :2].eq(0.5).all() and inside[:, 3, 3].eq(0).all()


def test_collate_pads_on_the_items_device(simple_scene):
    from dataclasses import replace

    one = conditioning_from_scene(simple_scene, 0, 4)
    two = replace(one, appearance_images=torch.cat([one.appearance_images] * 2, dim=1))
    batch = Conditioning.collate([one.to("meta"), two.to("meta")])  # "meta" stands for an accelerator
    assert batch.appearance_images.shape == (2, 2, 3, 24, 32) and batch.appearance_images.is_meta


def test_a_photo_shared_by_several_appearances_is_encoded_once(simple_scene):
    from neuralassets import edits

    scene = simple_scene.copy()
    scene.asset(2).boxes_2d[:] = torch.tensor([16.0, 4.0, 30.0, 20.0])
    swapped = edits.swap_appearance(scene, 1, 2)
    assert all(a.appearance is not None for a in swapped.assets)
    c = conditioning_from_scene(swapped, 1, 3, source_frame=0)
    # both appearances are regions of frame 0: one image, each slot pointing at the other's box
    assert c.appearance_images.shape[1] == 1 and c.object_image_index[0, :2].tolist() == [0, 0]
    assert torch.equal(c.object_boxes[0, 0] * 32, torch.tensor([16.0, 4.0 * 32 / 24, 30.0, 20.0 * 32 / 24]))
    assert torch.equal(c.appearance_images, conditioning_from_scene(scene, 1, 3, source_frame=0).appearance_images)

    donor = simple_scene.copy()
    donor.frames = 1 - donor.frames
    transferred = edits.transfer(scene, 1, donor, 2)
    c = conditioning_from_scene(transferred, 1, 3, source_frame=0)
    # photos in first-use order: asset 1's donor frame, then frame 0 for asset 2
    assert c.appearance_images.shape[1] == 2 and c.object_image_index[0, :2].tolist() == [0, 1]
    assert torch.equal(c.appearance_images[0, 0, :, 5, 5], donor.frames[0][:, 5, 5])


def test_photo_poses_and_the_view_change_they_give(simple_scene):
    from neuralassets import Camera, edits
    from neuralassets.geometry import camera_center
    from neuralassets.pipelines.surface_splatting import view_change

    still = simple_scene.copy()
    still.cameras = [still.cameras[0]] * 3
    for a in still.assets:
        a.rotations[:], a.centers[:] = a.rotations[0], a.centers[0]
    c = conditioning_from_scene(still, 2, 4, source_frame=0)
    # nothing moved: each object's pose in its photo is its pose in the target
    assert torch.allclose(c.object_source_poses[0, :2], c.object_poses[0, :2], atol=1e-5)
    assert view_change(c.object_poses, c.object_source_poses)[0].tolist()[2:] == [180.0, 180.0]  # padding: unknown
    assert c.object_source_poses[0, 2:].abs().sum() == 0
    moved = still.copy()
    moved.cameras = [moved.cameras[0]] * 2 + [Camera.look_at([4.0, -4.0, 3.0], [0.3, 0.0, 0.3], 50.0, 32, 24)]
    m = conditioning_from_scene(moved, 2, 4, source_frame=0)
    # the camera moved: the target poses follow it, the poses in the photo stay
    assert torch.equal(m.object_source_poses, c.object_source_poses)
    assert (m.object_poses[0, :2] - c.object_poses[0, :2]).abs().amax() > 0.03
    turned = conditioning_from_scene(edits.rotate(still, 1, yaw=0.6, frames=[2], check_visibility="ignore"), 2, 4, source_frame=0)
    # a yaw turns the horizontal part of the direction to the camera by 0.6 rad and keeps its vertical part
    # (the objects are cubes, so box units are metres)
    v = camera_center(still.cameras[0].R, still.cameras[0].t) - still.assets[0].centers[0]
    v = v / v.norm()
    by_hand = torch.rad2deg(torch.arccos(v[2] ** 2 + (v[0] ** 2 + v[1] ** 2) * torch.cos(torch.tensor(0.6))))
    changes = view_change(turned.object_poses, turned.object_source_poses)[0]
    assert torch.isclose(changes[0], by_hand, atol=1e-2) and 20 < by_hand < 0.6 * 57.3 and changes[1] < 0.1
    # at the photo's own frame: the pose there is the photo's, and an edit there keeps it
    own = conditioning_from_scene(still, 0, 4, source_frame=0)
    assert torch.allclose(own.object_source_poses, own.object_poses)
    in_place = conditioning_from_scene(edits.rotate(still, 1, yaw=0.6, frames=[0], check_visibility="ignore"), 0, 4)
    assert torch.equal(in_place.object_source_poses, own.object_source_poses)
    assert torch.isclose(view_change(in_place.object_poses, in_place.object_source_poses)[0, 0], by_hand, atol=1e-2)
    transferred = edits.transfer(still, 1, simple_scene.copy(), 2)
    donor = simple_scene.asset(2)
    assert torch.equal(conditioning_from_scene(transferred, 2, 4, source_frame=0).object_source_poses[0, 0],
                       donor.pose_features(0, simple_scene.cameras[0]))


def test_photo_depths_and_slots_mark_each_objects_pixels_where_depth_is_known(simple_scene):
    from dataclasses import replace

    from neuralassets import edits

    c = conditioning_from_scene(simple_scene, 2, 4, source_frame=0)
    expected = torch.full((24, 32), -1, dtype=torch.int16)
    for slot, asset in enumerate(simple_scene.assets):
        expected[asset.masks[0]] = slot  # the fixture's random masks overlap: the later slot wins
    assert torch.equal(c.appearance_slots[0, 0], expected)
    assert torch.equal(c.appearance_depths[0, 0], torch.where(expected >= 0, simple_scene.depth[0], 0.0))
    # an object brought from another scene brings its mask and depth there
    donor = simple_scene.copy()
    donor.frames, donor.depth = 1 - donor.frames, donor.depth + 1
    moved = conditioning_from_scene(edits.transfer(simple_scene, 1, donor, 2), 2, 4, source_frame=0)
    donor_mask = donor.asset(2).masks[donor.asset(2).source_frame]
    assert torch.equal(moved.appearance_slots[0, 0] == 0, donor_mask)
    assert torch.equal(moved.appearance_depths[0, 0][donor_mask], donor.depth[donor.asset(2).source_frame][donor_mask])
    # no depth: no slots; batches pad extra photos as unknown
    unknown = conditioning_from_scene(replace(simple_scene, depth=None), 2, 4, source_frame=0)
    assert (unknown.appearance_slots == -1).all() and (unknown.appearance_depths == 0).all()
    batch = Conditioning.collate([c, moved])
    assert batch.appearance_slots.shape == (2, 2, 24, 32)
    assert (batch.appearance_slots[0, 1] == -1).all() and (batch.appearance_depths[0, 1] == 0).all()

"""The decoder's object reference: each object's photo surface drawn at its target pose, or its photo reprojected through its 3D box."""
import math
from dataclasses import replace

import torch

from neuralassets import geometry
from neuralassets.conditioning import Conditioning
from neuralassets.pipelines.surface_splatting import (
    REFERENCE_CHANNELS,
    depth_scale_to_boxes,
    object_reference,
    ray_box_entry,
    reference_coverage,
    reproject_box_surface,
    turned_in_place,
)
from neuralassets.pipelines.thresholds import DEFAULT_THRESHOLDS, RenderThresholds
from neuralassets.scene import Camera

UNMOVED_COLOUR, UNMOVED_ROUGHNESS = DEFAULT_THRESHOLDS.unmoved_colour, DEFAULT_THRESHOLDS.unmoved_roughness
ANY_TURN = RenderThresholds(max_view_change=180.0)

SIZE = 16
# Looking along +y at a 2 m cube 5 m away: only its front face (y = -1) is in view, 4 m from the camera,
# projected onto pixels 4..11 of 16 (half-width f * 1 / 4 = 4.29 px around the centre 8).
CAMERA = Camera.look_at([0.0, -5.0, 0.0], [0.0, 0.0, 0.0], 50.0, SIZE, SIZE)


def _pose(center=(0.0, 0.0, 0.0), size=2.0, rotation=None) -> torch.Tensor:
    rotation = torch.eye(3) if rotation is None else rotation
    return geometry.pose_features(torch.tensor(center), torch.full((3,), size), rotation, CAMERA.K, CAMERA.R, CAMERA.t, SIZE, SIZE)


def _conditioning(images, image_index, boxes, poses, source_poses, mask, depths=None, slots=None) -> Conditioning:
    """Photo depths and slots default to unknown (objects reprojected through their boxes)."""
    N = len(image_index)
    S, _, H, W = images.shape
    return Conditioning(appearance_images=images[None],
                        appearance_depths=(torch.zeros(S, H, W) if depths is None else depths)[None],
                        appearance_slots=(torch.full((S, H, W), -1, dtype=torch.int16) if slots is None else slots)[None],
                        object_image_index=torch.tensor([image_index]),
                        object_boxes=torch.tensor([boxes], dtype=torch.float32).view(1, N, 4),
                        object_poses=torch.stack(poses)[None] if N else torch.zeros(1, 0, 12),
                        object_target_boxes=torch.zeros(1, N, 4),
                        object_source_poses=torch.stack(source_poses)[None] if N else torch.zeros(1, 0, 12),
                        object_mask=torch.tensor([mask], dtype=torch.bool).view(1, N),
                        background_image=torch.full((1, 3, SIZE, SIZE), 0.5), camera_pose=torch.zeros(1, 12))


def _face() -> torch.Tensor:
    inside = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    inside[4:12, 4:12] = True
    return inside


def test_rays_enter_a_box_at_its_near_face_and_miss_it_from_inside_or_when_it_is_flat():
    origin, edges = torch.tensor([-1.0, -1.0, 4.0]), 2 * torch.eye(3)
    rays = torch.tensor([[0.0, 0.0, 1.0], [0.25, 0.0, 1.0], [0.3, 0.0, 1.0]])
    distance, point = ray_box_entry(rays, origin, edges)
    assert distance[:2].tolist() == [4.0, 4.0] and torch.isinf(distance[2])  # 0.3 * 4 = 1.2 m passes the face's edge at 1 m
    assert torch.allclose(point[1], torch.tensor([1.0, 0.5, 0.0]))  # (0.25 * 4 + 1) / 2 along x, centre in y, front in z
    assert torch.isinf(ray_box_entry(rays, torch.tensor([-1.0, -1.0, -1.0]), edges)[0]).all()  # camera inside the box
    assert torch.isinf(ray_box_entry(rays, origin, torch.zeros(3, 3))[0]).all()  # an unknown (all-zero) pose


def test_the_same_pose_in_both_views_gives_back_each_pixel():
    depth, source_uv, seen = reproject_box_surface(_pose(), _pose(), (SIZE, SIZE))
    face = _face()
    assert torch.equal(seen, face) and torch.equal(torch.isfinite(depth), face)
    assert torch.allclose(depth[face], torch.tensor(4.0), atol=1e-4)
    centres = (torch.arange(SIZE) + 0.5) / SIZE
    assert torch.allclose(source_uv[face][:, 0], centres.expand(SIZE, SIZE)[face], atol=1e-5)


def test_a_turn_about_the_line_of_sight_turns_the_pasted_photo_and_a_quarter_turn_shows_an_unseen_side():
    photo = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    half_turn = geometry.axis_angle_to_matrix(torch.tensor([0.0, math.pi, 0.0]))  # about +y, the line of sight
    cond = _conditioning(photo[None], [0], [[0, 0, 1, 1]], [_pose(rotation=half_turn)], [_pose()], [True])
    reference = object_reference(cond, (SIZE, SIZE))
    assert reference.shape == (1, REFERENCE_CHANNELS, SIZE, SIZE)
    face = _face()
    assert torch.equal(reference[0, 3].bool(), face)
    turned = (photo.flip(-1, -2) * 2 - 1)  # the front face seen upside down: each pixel's mirror through the centre
    assert torch.allclose(reference[0, :3][:, face], turned[:, face], atol=1e-4) and reference[0, :3][:, ~face].abs().sum() == 0
    quarter_turn = geometry.axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))  # about the vertical
    side = replace(cond, object_poses=_pose(rotation=quarter_turn)[None, None])
    assert object_reference(side, (SIZE, SIZE), ANY_TURN).abs().sum() == 0  # the side now in front faced away


def test_only_points_inside_the_objects_photo_box_are_pasted():
    cond = _conditioning(torch.ones(1, 3, SIZE, SIZE), [0], [[0, 0, 0.5, 1]], [_pose()], [_pose()], [True])
    coverage = object_reference(cond, (SIZE, SIZE))[0, 3]
    assert coverage.sum() == 32 and coverage[4:12, 4:8].sum() == 32


def test_the_nearer_surface_wins_padding_paints_nothing_and_turned_or_unknown_objects_are_left_out():
    images = torch.stack([torch.ones(3, SIZE, SIZE), torch.zeros(3, SIZE, SIZE)])  # white photo, black photo
    near, far = _pose(center=(0.5, -1.0, 0.0), size=1.0), _pose(center=(-0.5, 0.0, 0.0))
    whole = [0, 0, 1, 1]
    for near_first in (True, False):
        poses = [near, far] if near_first else [far, near]
        cond = _conditioning(images, [0, 1, 0], [whole] * 3, poses + [_pose(size=4.0)], poses + [_pose(size=4.0)],
                             [True, True, False])
        reference = object_reference(cond, (SIZE, SIZE))
        near_pixels = object_reference(replace(cond, object_mask=torch.tensor([[near_first, not near_first, False]])),
                                       (SIZE, SIZE))[0, 3].bool()
        colour = reference[0, 0]
        assert near_pixels.any() and (colour[near_pixels] == (1.0 if near_first else -1.0)).all()
        assert (colour[reference[0, 3].bool() & ~near_pixels] == (-1.0 if near_first else 1.0)).all()
        assert reference[0, 3, :, 14:].sum() == 0  # the padding slot's large box paints nothing
    alone = [object_reference(replace(cond, object_mask=torch.tensor([[k == 0, k == 1, False]])), (SIZE, SIZE))[0, 3].bool()
             for k in range(2)]
    # the far object (slot 0) turned by 20 degrees about the vertical: left out unless the limit allows it
    turn = geometry.axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.radians(20)]))
    poses = cond.object_poses.clone()
    poses[0, 0] = _pose(center=(-0.5, 0.0, 0.0), rotation=turn)
    turned = replace(cond, object_poses=poses, object_mask=torch.tensor([[True, False, False]]))
    assert object_reference(turned, (SIZE, SIZE)).abs().sum() == 0
    assert object_reference(turned, (SIZE, SIZE), RenderThresholds(max_view_change=25.0))[0, 3].any()
    # the near object's photo pose is unknown: it is not pasted, but still hides the far one behind it
    source_poses = cond.object_source_poses.clone()
    source_poses[0, 1] = 0
    hidden = object_reference(replace(cond, object_source_poses=source_poses), (SIZE, SIZE))
    assert torch.equal(hidden[0, 3].bool(), alone[0] & ~alone[1]) and (alone[0] & alone[1]).any()


def test_no_objects_give_an_empty_reference():
    cond = _conditioning(torch.rand(1, 3, SIZE, SIZE), [], [], [], [], [])
    assert torch.equal(object_reference(cond, (8, 8)), torch.zeros(1, REFERENCE_CHANNELS, 8, 8))


def _front_face_surface(photo_slots: int = 1, shape: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth and slots of the photo of :func:`_pose`'s cube: its front face 4 m away, showing slot 0 where ``shape``."""
    shown = _face() if shape is None else shape
    depths = torch.zeros(photo_slots, SIZE, SIZE)
    slots = torch.full((photo_slots, SIZE, SIZE), -1, dtype=torch.int16)
    depths[0][shown], slots[0][shown] = 4.0, 0
    return depths, slots


def test_a_drawn_surface_gives_back_its_pixels_in_place_and_moves_and_turns_with_its_box():
    photo = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    disc = ((torch.arange(SIZE) - 7.5)[:, None] ** 2 + (torch.arange(SIZE) - 7.5)[None] ** 2) < 9  # an object smaller than its box
    depths, slots = _front_face_surface(shape=disc)
    cond = _conditioning(photo[None], [0], [[0, 0, 1, 1]], [_pose()], [_pose()], [True], depths, slots)
    reference = object_reference(cond, (SIZE, SIZE))
    assert torch.equal(reference[0, 3].bool(), disc)  # the object's own pixels, not its box's
    assert torch.allclose(reference[0, :3][:, disc], photo[:, disc] * 2 - 1, atol=1e-5)
    # moved 2 pixels to the right at the same depth: the pixels move with it
    step = 2 * 4.0 / float(CAMERA.K[0, 0])
    moved = object_reference(replace(cond, object_poses=_pose(center=(step, 0.0, 0.0))[None, None]), (SIZE, SIZE))
    assert torch.equal(moved[0, 3].bool(), disc.roll(2, dims=1))
    assert torch.allclose(moved[0, :3][:, disc.roll(2, dims=1)], photo[:, disc] * 2 - 1, atol=1e-4)
    # turned half way about the line of sight: the face upside down, as the box method has it (a turn in place, but
    # the random texture turned with it is far from the photo's colours there, so it is drawn turned)
    assert ((photo.flip(-1, -2) - photo) * 2).abs().mean(0)[disc].mean() > UNMOVED_COLOUR
    half_turn = geometry.axis_angle_to_matrix(torch.tensor([0.0, math.pi, 0.0]))
    upside_down = object_reference(replace(cond, object_poses=_pose(rotation=half_turn)[None, None]), (SIZE, SIZE))
    assert torch.equal(upside_down[0, 3].bool(), disc.flip(0, 1))
    assert torch.allclose(upside_down[0, :3][:, disc.flip(0, 1)], (photo.flip(-1, -2) * 2 - 1)[:, disc.flip(0, 1)], atol=1e-4)
    # turned half way about the vertical: the face the photo saw is now at the back, and no box is pasted instead
    about_vertical = geometry.axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi]))
    back = replace(cond, object_poses=_pose(rotation=about_vertical)[None, None])
    assert object_reference(back, (SIZE, SIZE), ANY_TURN).abs().sum() == 0


def test_a_depth_that_disagrees_with_the_box_is_scaled_to_it_or_not_drawn_through():
    photo = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    disc = ((torch.arange(SIZE) - 7.5)[:, None] ** 2 + (torch.arange(SIZE) - 7.5)[None] ** 2) < 9
    depths, slots = _front_face_surface(shape=disc)
    moved = _pose(center=(0.3, 0.0, 0.0))
    cond = _conditioning(photo[None], [0], [[0, 0, 1, 1]], [moved], [_pose()], [True], depths, slots)
    unknown = object_reference(replace(cond, appearance_depths=torch.zeros_like(cond.appearance_depths)), (SIZE, SIZE))
    assert not torch.equal(object_reference(cond, (SIZE, SIZE)), unknown)  # the depth agrees: the disc is drawn
    # 60 % too far puts the face 4 m away behind the 2 m cube: scaled back to the cube's back face, the nearest agreeing
    # factor (one object gives the factor up to the cube's depth), it is drawn; not scaled, the cube stands in
    too_far = replace(cond, appearance_depths=depths[None] * 1.6)
    assert abs(depth_scale_to_boxes(too_far).item() - 6.0 / 6.4) < 1e-3
    drawn = reference_coverage(object_reference(cond, (SIZE, SIZE)))
    assert torch.equal(reference_coverage(object_reference(too_far, (SIZE, SIZE))), drawn)
    unscaled = RenderThresholds(depth_scale_range=(1.0, 1.0))
    assert torch.equal(object_reference(too_far, (SIZE, SIZE), unscaled), unknown)
    assert reference_coverage(unknown).sum() > disc.sum()  # the box's face, wider than the disc
    trusting = object_reference(too_far, (SIZE, SIZE), replace(unscaled, depth_in_box=0.0))
    assert not torch.equal(trusting, unknown)  # with both checks off the wrong depth is drawn through


def test_depth_scale_to_boxes_finds_a_depth_scale_error_from_objects_seen_from_above():
    size = 32
    camera = Camera.look_at([0.0, -6.0, 5.0], [0.0, 0.0, 0.0], 50.0, size, size)
    centres = [(-1.2, 0.0, 0.5), (1.2, 0.5, 0.4), (0.0, -1.5, 0.3)]
    poses = [geometry.pose_features(torch.tensor(c), torch.tensor([1.0, 0.8, 2 * c[2]]), torch.eye(3), camera.K, camera.R,
                                    camera.t, size, size) for c in centres]
    depth, _, seen = reproject_box_surface(torch.stack(poses), torch.stack(poses), (size, size))
    nearest = depth.masked_fill(~seen, float("inf")).min(dim=0)
    slots = torch.where(torch.isfinite(nearest.values), nearest.indices, -1).to(torch.int16)
    exact = torch.where(slots >= 0, nearest.values, 0.0)
    cond = Conditioning(appearance_images=torch.rand(1, 1, 3, size, size), appearance_depths=exact[None, None],
                        appearance_slots=slots[None, None], object_image_index=torch.zeros(1, 3, dtype=torch.long),
                        object_boxes=torch.tensor([[[0.0, 0.0, 1.0, 1.0]] * 3]), object_poses=torch.stack(poses)[None],
                        object_target_boxes=torch.zeros(1, 3, 4), object_source_poses=torch.stack(poses)[None],
                        object_mask=torch.ones(1, 3, dtype=torch.bool), background_image=torch.zeros(1, 3, size, size),
                        camera_pose=torch.zeros(1, 12))
    assert depth_scale_to_boxes(cond).tolist() == [[1.0]]  # the boxes' own surfaces: kept exactly
    for error in (0.8, 1.1, 1.25):
        scale = depth_scale_to_boxes(replace(cond, appearance_depths=cond.appearance_depths * error)).item()
        assert abs(scale * error - 1) < 0.01, (error, scale)


def test_a_drawn_surface_hides_the_one_behind_it():
    images = torch.stack([torch.ones(3, SIZE, SIZE), torch.zeros(3, SIZE, SIZE)])  # white photo, black photo
    depths, slots = _front_face_surface(photo_slots=2)
    depths[1], slots[1] = depths[0], slots[0].masked_fill(slots[0] == 0, 1)  # object 1: the same face in the black photo
    far = _pose(center=(0.0, 3.0, 0.0))  # 3 m farther: 7 m away, drawn smaller behind object 0
    cond = _conditioning(images, [0, 1], [[0, 0, 1, 1]] * 2, [_pose(), far], [_pose(), _pose()], [True, True], depths, slots)
    reference = object_reference(cond, (SIZE, SIZE))
    assert torch.equal(reference[0, 3].bool(), _face()) and (reference[0, :3][:, _face()] == 1.0).all()
    behind_only = object_reference(replace(cond, object_mask=torch.tensor([[False, True]])), (SIZE, SIZE))
    assert behind_only[0, 3].bool().any() and (behind_only[0, :3][:, behind_only[0, 3].bool()] == -1.0).all()


def test_an_object_turned_in_place_keeps_its_photo_pixels_where_its_surface_stays_and_its_colour_agrees():
    disc = ((torch.arange(SIZE) - 7.5)[:, None] ** 2 + (torch.arange(SIZE) - 7.5)[None] ** 2) < 9
    depths, slots = _front_face_surface(shape=disc)
    left = torch.arange(SIZE) < 8
    shaded = torch.where(left, 0.3, 0.4).expand(3, SIZE, SIZE)  # shading 0.2 apart in [-1, 1]: under UNMOVED_COLOUR
    cond = _conditioning(shaded[None], [0], [[0, 0, 1, 1]], [_pose()], [_pose()], [True], depths, slots)
    half_turn = geometry.axis_angle_to_matrix(torch.tensor([0.0, math.pi, 0.0]))  # about the line of sight
    turned = replace(cond, object_poses=_pose(rotation=half_turn)[None, None])
    assert turned_in_place(turned).tolist() == [[True]]
    # the disc covers the same pixels at the same depth: the photo's shading stays put (drawn, it would swap sides)
    reference = object_reference(turned, (SIZE, SIZE))
    assert torch.equal(reference_coverage(reference)[0], disc)
    assert torch.allclose(reference[0, :3][:, disc], shaded[:, disc] * 2 - 1)
    # the rule can be switched off: then the disc is drawn turned, its shading swapped from side to side
    never = object_reference(turned, (SIZE, SIZE), RenderThresholds(unmoved_share=2.0))
    assert torch.allclose(never[0, :3][:, disc], (shaded.flip(-1, -2) * 2 - 1)[:, disc])
    # a black and white texture turns with the object: 2 apart, drawn turned
    textured = torch.where(left, 0.0, 1.0).expand(3, SIZE, SIZE)
    drawn = object_reference(replace(turned, appearance_images=textured[None, None]), (SIZE, SIZE))
    assert torch.allclose(drawn[0, :3][:, disc], (textured.flip(-1, -2) * 2 - 1)[:, disc])
    # a faint texture of one-pixel columns: turned, it is near the photo's colours on average, but its difference
    # from them flips sign from column to column where shading would change smoothly: drawn turned
    columns = torch.where(torch.arange(SIZE) % 2 == 0, 0.45, 0.55).expand(3, SIZE, SIZE)
    gap = ((columns.flip(-1, -2) - columns) * 2).mean(0)
    steps = torch.cat([(gap[:, 1:] - gap[:, :-1])[disc[:, 1:] & disc[:, :-1]], (gap[1:] - gap[:-1])[disc[1:] & disc[:-1]]])
    assert gap[disc].abs().mean() <= UNMOVED_COLOUR and steps.abs().mean() > UNMOVED_ROUGHNESS
    faint = object_reference(replace(turned, appearance_images=columns[None, None]), (SIZE, SIZE))
    assert torch.allclose(faint[0, :3][:, disc], (columns.flip(-1, -2) * 2 - 1)[:, disc])
    # moved or scaled, it is not turned in place
    step = 2 * 4.0 / float(CAMERA.K[0, 0])
    moved = replace(turned, object_poses=_pose(center=(step, 0.0, 0.0), rotation=half_turn)[None, None])
    scaled = replace(turned, object_poses=_pose(size=2.4, rotation=half_turn)[None, None])
    assert turned_in_place(moved).tolist() == turned_in_place(scaled).tolist() == [[False]]

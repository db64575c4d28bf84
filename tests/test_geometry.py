import math

import kornia
import pytest
import torch

from neuralassets import geometry as G


def cam():
    K = torch.tensor([[100.0, 0, 64], [0, 100, 64], [0, 0, 1]])
    return K, torch.eye(3), torch.tensor([0.0, 0.0, 5.0])


def test_unit_cube_projects_to_hand_computed_pixels():
    K, R, t = cam()
    corners = G.box_corners(torch.zeros(3), torch.ones(3), torch.eye(3))
    uv, z = G.project_points(corners, K, R, t)
    # corner 0 = (-.5,-.5,-.5) at depth 4.5: u = 64 + 100 * -.5/4.5
    assert torch.allclose(uv[0], torch.tensor([64 - 50 / 4.5, 64 - 50 / 4.5]))
    # corner 7 = (.5,.5,.5) at depth 5.5
    assert torch.allclose(uv[7], torch.tensor([64 + 50 / 5.5, 64 + 50 / 5.5]))
    assert z.tolist() == [4.5, 4.5, 4.5, 4.5, 5.5, 5.5, 5.5, 5.5]


def test_corner_order_is_bitwise():
    c = G.box_corners(torch.tensor([1.0, 2, 3]), torch.tensor([2.0, 4, 6]), torch.eye(3))
    for i in range(8):
        signs = torch.tensor([(i & 1) - 0.5, ((i >> 1) & 1) - 0.5, ((i >> 2) & 1) - 0.5])
        expect = torch.tensor([1.0, 2, 3]) + signs * torch.tensor([2.0, 4, 6])
        assert torch.equal(c[i], expect)


def test_project_unproject_roundtrip():
    g = torch.Generator().manual_seed(1)
    R, t = G.look_at(torch.tensor([3.0, -4.0, 2.5]), torch.tensor([0.0, 0.0, 0.5]))
    K = G.intrinsics_from_fov(50, 128, 96)
    pts = torch.rand(100, 3, generator=g) * 2 - 1
    uv, z = G.project_points(pts, K, R, t)
    back = G.unproject_points(uv, z, K, R, t)
    assert (back - pts).abs().max() < 1e-5


def test_project_matches_kornia():
    g = torch.Generator().manual_seed(2)
    K = G.intrinsics_from_fov(60, 64, 64)
    R, t = G.look_at(torch.tensor([2.0, 2.0, 2.0]), torch.zeros(3))
    pts = torch.rand(20, 3, generator=g) - 0.5
    uv, _ = G.project_points(pts, K, R, t)
    cam_pts = pts @ R.T + t
    ref = kornia.geometry.camera.project_points(cam_pts, K[None].expand(20, 3, 3))
    assert torch.allclose(uv, ref, atol=1e-4)


# Values of the rotation conversions before they were delegated to kornia (our own Rodrigues formula, largest-
# component quaternion branch and quaternion -> axis-angle), computed on seeded axis-angles (torch.Generator seed 30,
# randn * 1.5, the last replaced by a tiny turn) and rounded to 7 decimals; kornia must give them back.
AXIS_ANGLES = [[0.7057488, 2.48450279, 0.77293384], [-0.41165304, -3.39084959, 1.84194624],
               [1.18922114, 0.93472213, -3.22805786], [3e-07, -2e-07, 1e-07]]
MATRICES = [[[-0.7719787, 0.3353587, 0.5399844], [0.5825043, 0.7132696, 0.3897887], [-0.2544354, 0.6154519, -0.7459768]],
            [[-0.7194803, 0.4809264, 0.5010568], [-0.1585568, 0.5886557, -0.7926817], [-0.6761715, -0.6497648, -0.347272]],
            [[-0.6989977, -0.2047241, -0.6851935], [0.5391637, -0.7803128, -0.3168818], [-0.469792, -0.5909312, 0.6558169]],
            [[1.0, -1e-07, -2e-07], [1e-07, 1.0, -3e-07], [2e-07, 3e-07, 1.0]]]
QUATERNIONS = [[0.2209716, 0.2553079, 0.8987805, 0.2796124], [0.3612144, 0.0989142, 0.8147711, -0.4425925],
               [0.2100632, -0.3261512, -0.2563533, 0.8853146], [1.0, 2e-07, -1e-07, 1e-07]]
# the second and third turns are longer than pi: back they come as the same rotation the short way round
AXIS_ANGLES_BACK = [[0.7057488, 2.4845028, 0.7729338], [0.2548429, 2.09918, -1.1402974],
                    [-0.906814, -0.7127515, 2.4614837], [3e-07, -2e-07, 1e-07]]


def test_rotation_conversions_keep_their_values_before_kornia():
    matrices = G.axis_angle_to_matrix(torch.tensor(AXIS_ANGLES))
    assert torch.allclose(matrices, torch.tensor(MATRICES), atol=1e-6)
    assert torch.allclose(G.matrix_to_quaternion(torch.tensor(MATRICES)), torch.tensor(QUATERNIONS), atol=1e-6)
    assert torch.allclose(G.quaternion_to_matrix(torch.tensor(QUATERNIONS)), torch.tensor(MATRICES), atol=1e-6)
    assert torch.allclose(G.matrix_to_axis_angle(torch.tensor(MATRICES)), torch.tensor(AXIS_ANGLES_BACK), atol=1e-6)
    # by hand: a quarter turn about z takes x to y; the quaternion (1, 1, 0, 0) / sqrt 2 is a quarter turn about x;
    # w is kept >= 0 and quaternions are normalised first
    assert G.axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2])).round().tolist() == [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    assert torch.allclose(G.quaternion_to_matrix(torch.tensor([2.0, 2.0, 0.0, 0.0])),
                          torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]), atol=1e-6)
    negated = -torch.tensor(QUATERNIONS)  # the same rotations: back with w >= 0
    assert torch.allclose(G.matrix_to_quaternion(G.quaternion_to_matrix(negated)), torch.tensor(QUATERNIONS), atol=1e-6)
    # leading dimensions broadcast, and the round trips close
    g = torch.Generator().manual_seed(3)
    aa = torch.randn(5, 10, 3, generator=g)
    Rm = G.axis_angle_to_matrix(aa)
    assert Rm.shape == (5, 10, 3, 3) and G.is_rotation(Rm).all()
    assert torch.allclose(G.quaternion_to_matrix(G.matrix_to_quaternion(Rm)), Rm, atol=1e-5)
    assert torch.allclose(G.axis_angle_to_matrix(G.matrix_to_axis_angle(Rm)), Rm, atol=1e-5)


def test_euler_roundtrip_and_yaw_about_up():
    yaw, pitch, roll = torch.tensor([0.3, -2.0]), torch.tensor([0.2, 1.0]), torch.tensor([-0.7, 2.5])
    R = G.euler_to_matrix(yaw, pitch, roll)
    y2, p2, r2 = G.matrix_to_euler(R)
    assert torch.allclose(torch.stack([y2, p2, r2]), torch.stack([yaw, pitch, roll]), atol=1e-5)
    Rz = G.euler_to_matrix(torch.tensor(math.pi / 2), torch.tensor(0.0), torch.tensor(0.0))
    assert torch.allclose(Rz @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]), atol=1e-6)
    assert torch.allclose(G.yaw_of(R), yaw, atol=1e-5)


def test_look_at_centres_target_and_keeps_up_up():
    eye, target = torch.tensor([3.0, -4.0, 2.5]), torch.tensor([0.5, 0.2, 0.3])
    R, t = G.look_at(eye, target)
    K = G.intrinsics_from_fov(50, 128, 128)
    uv, z = G.project_points(target[None], K, R, t)
    assert torch.allclose(uv[0], torch.tensor([64.0, 64.0]), atol=1e-4)
    assert torch.allclose(z, (target - eye).norm()[None])
    above, _ = G.project_points((target + torch.tensor([0, 0, 0.5]))[None], K, R, t)
    assert above[0, 1] < 64  # up in the world is up in the image
    assert torch.allclose(G.camera_center(R, t), eye, atol=1e-5)


def test_ground_intersection_hits_floor_under_pixel():
    R, t = G.look_at(torch.tensor([0.0, -5.0, 3.0]), torch.zeros(3))
    K = G.intrinsics_from_fov(50, 128, 128)
    floor_pts = torch.tensor([[0.3, 0.4, 0.0], [-1.0, 1.0, 0.0]])
    uv, _ = G.project_points(floor_pts, K, R, t)
    hit_pts, hit = G.ground_intersection(uv, K, R, t)
    assert hit.all() and torch.allclose(hit_pts, floor_pts, atol=1e-4)
    R_up, t_up = G.look_at(torch.tensor([0.0, -5, 0.5]), torch.tensor([0.0, 0, 2]))  # looking upwards
    sky, hit = G.ground_intersection(torch.tensor([[64.0, 0.0]]), K, R_up, t_up)
    assert not hit.any() and torch.isnan(sky).all()


def test_relative_pose_maps_points_between_cameras():
    g = torch.Generator().manual_seed(4)
    Ra, ta = G.look_at(torch.tensor([3.0, 0, 2]), torch.zeros(3))
    Rb, tb = G.look_at(torch.tensor([0.0, 3, 2]), torch.zeros(3))
    Rab, tab = G.relative_pose(Ra, ta, Rb, tb)
    pts = torch.randn(10, 3, generator=g)
    assert torch.allclose(G.transform_points(G.transform_points(pts, Ra, ta), Rab, tab),
                          G.transform_points(pts, Rb, tb), atol=1e-5)
    # by hand: from the world-aligned camera a to camera b, the motion is b's own extrinsics (kornia's, as before)
    R_b = G.axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    R_ab, t_ab = G.relative_pose(torch.eye(3), torch.zeros(3), R_b, torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(R_ab, R_b) and torch.equal(t_ab, torch.tensor([1.0, 2.0, 3.0]))


def test_pose_features_layout():
    K, R, t = cam()
    f = G.pose_features(torch.zeros(3), torch.ones(3), torch.eye(3), K, R, t, 128, 128)
    assert f.shape == (12,)
    # corner 0: u = (64 - 50/4.5)/128, depth 4.5 ; corner 4 (+z): depth 5.5
    assert f[0].item() == pytest.approx((64 - 50 / 4.5) / 128, abs=1e-6)
    assert f[2].item() == pytest.approx(4.5) and f[11].item() == pytest.approx(5.5)


def test_batched_and_differentiable():
    center = torch.zeros(4, 5, 3, requires_grad=True)
    K, R, t = cam()
    uv, _ = G.project_box(center, torch.ones(4, 5, 3), torch.eye(3).expand(4, 5, 3, 3), K, R, t)
    assert uv.shape == (4, 5, 8, 2)
    uv.sum().backward()
    assert center.grad is not None and torch.isfinite(center.grad).all()
    aa = torch.zeros(3, requires_grad=True)
    G.axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_ray_box_distance_by_hand():
    origin, ahead = torch.zeros(3), torch.tensor([1.0, 0.0, 0.0])
    cube = (torch.tensor([5.0, 0.0, 0.0]), torch.full((3,), 2.0))
    assert G.ray_box_distance(origin, ahead, *cube, torch.eye(3)).item() == pytest.approx(4.0)
    # turned 45 degrees about z, the cube meets the ray with an edge, sqrt(2) before its centre
    turned = G.euler_to_matrix(torch.tensor(math.pi / 4), torch.tensor(0.0), torch.tensor(0.0))
    assert G.ray_box_distance(origin, ahead, *cube, turned).item() == pytest.approx(5 - math.sqrt(2), abs=1e-5)
    assert math.isinf(G.ray_box_distance(origin, torch.tensor([0.0, 1.0, 0.0]), *cube, torch.eye(3)).item())
    assert math.isinf(G.ray_box_distance(origin, -ahead, *cube, torch.eye(3)).item())  # the box is behind
    assert G.ray_box_distance(torch.tensor([5.0, 0.5, 0.0]), ahead, *cube, torch.eye(3)).item() == 0.0  # starts inside
    # batched: a ray parallel to the y slabs enters only while its origin lies between them
    origins = torch.tensor([[0.0, 0.5, 0.0], [0.0, 1.5, 0.0]])
    out = G.ray_box_distance(origins, ahead.expand(2, 3), cube[0].expand(2, 3), cube[1].expand(2, 3), torch.eye(3).expand(2, 3, 3))
    assert out[0].item() == pytest.approx(4.0) and math.isinf(out[1].item())

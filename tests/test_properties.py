"""Property tests (hypothesis) for geometry and the Scene file format."""
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralassets import geometry as G

finite = st.floats(-3, 3, allow_nan=False, width=32)
vec3 = st.tuples(finite, finite, finite)


@settings(max_examples=60, deadline=None)
@given(aa=vec3)
def test_axis_angle_quaternion_roundtrip(aa):
    R = G.axis_angle_to_matrix(torch.tensor(aa, dtype=torch.float64))
    assert G.is_rotation(R, atol=1e-9)
    assert torch.allclose(G.quaternion_to_matrix(G.matrix_to_quaternion(R)), R, atol=1e-9)
    assert torch.allclose(G.axis_angle_to_matrix(G.matrix_to_axis_angle(R)), R, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(yaw=st.floats(-math.pi + 1e-3, math.pi - 1e-3), pitch=st.floats(-1.5, 1.5), roll=st.floats(-math.pi + 1e-3, math.pi - 1e-3))
def test_euler_roundtrip(yaw, pitch, roll):
    angles = torch.tensor([yaw, pitch, roll], dtype=torch.float64)
    back = torch.stack(G.matrix_to_euler(G.euler_to_matrix(*angles)))
    assert torch.allclose(back, angles, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(eye=st.tuples(st.floats(2, 6), st.floats(-6, -2), st.floats(1, 4)), pts=st.lists(vec3, min_size=1, max_size=8))
def test_project_unproject_roundtrip(eye, pts):
    R, t = G.look_at(torch.tensor(eye, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    K = G.intrinsics_from_fov(50, 128, 128, dtype=torch.float64)
    p = torch.tensor(pts, dtype=torch.float64) * 0.3
    uv, z = G.project_points(p, K, R, t)
    assert (z > 0).all()
    assert torch.allclose(G.unproject_points(uv, z, K, R, t), p, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_frames=st.integers(1, 3), n_assets=st.integers(0, 3))
def test_scene_save_load_roundtrip(tmp_path_factory, seed, n_frames, n_assets):
    from neuralassets import Asset, Camera, Scene
    from neuralassets.image_ops import quantize

    g = torch.Generator().manual_seed(seed)
    H, W = 8, 10
    cams = [Camera.look_at([3.0, -3.0, 2.0 + i], [0, 0, 0], 40.0, W, H) for i in range(n_frames)]
    assets = [Asset(id=k + 1, name=f"a{k}", centers=torch.randn(n_frames, 3, generator=g),
                    sizes=torch.rand(n_frames, 3, generator=g) + 0.1,
                    rotations=G.axis_angle_to_matrix(torch.randn(n_frames, 3, generator=g)),
                    boxes_2d=torch.rand(n_frames, 4, generator=g) * 8, visibility=torch.rand(n_frames, generator=g),
                    masks=torch.rand(n_frames, H, W, generator=g) > 0.5) for k in range(n_assets)]
    scene = Scene(quantize(torch.rand(n_frames, 3, H, W, generator=g)), cams, assets, metadata={"seed": seed})
    folder = tmp_path_factory.mktemp("scene")
    back = Scene.load(scene.save(folder))
    assert torch.equal(back.frames, scene.frames)
    for a, b in zip(scene.assets, back.assets):
        assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("centers", "sizes", "rotations", "boxes_2d",
                                                                        "visibility", "masks"))

"""reproject_image against hand-computed shifts of a fronto-parallel scene, occlusion and errors."""
import pytest
import torch

from neuralassets.pipelines.reprojection import reproject_image, splat_depth
from neuralassets.scene import Camera

H, W, F = 8, 16, 20.0


def camera(x: float) -> Camera:
    """Looking down +z from (x, 0, 0) with focal length F pixels (x_cam = x_world - x)."""
    K = torch.tensor([[F, 0.0, W / 2], [0.0, F, H / 2], [0.0, 0.0, 1.0]])
    return Camera(K, torch.eye(3), torch.tensor([-x, 0.0, 0.0]), W, H)


def test_a_sideways_move_shifts_a_plane_by_focal_times_baseline_over_depth():
    image = torch.rand(3, H, W, generator=torch.Generator().manual_seed(0))
    out = reproject_image(image, torch.full((H, W), 5.0), camera(0.0), camera(0.5))
    # 20 px * 0.5 m / 5 m = 2 px to the left: target column u shows source column u + 2
    assert torch.allclose(out[..., : W - 2], image[..., 2:], atol=1e-5)
    assert out[..., W - 2:].isnan().all()  # beyond the photo's right edge
    assert torch.allclose(splat_depth(torch.full((H, W), 5.0), camera(0.0), camera(0.5))[:, : W - 2], torch.tensor(5.0))


def test_background_uncovered_by_a_nearer_object_is_unseen():
    image = torch.rand(3, H, W, generator=torch.Generator().manual_seed(1))
    depth = torch.full((H, W), 5.0)
    depth[:, 6:10] = 2.5  # a nearer slab: it shifts 4 px where the background shifts 2
    out = reproject_image(image, depth, camera(0.0), camera(0.5))
    assert torch.allclose(out[..., 0:2], image[..., 2:4], atol=1e-5)  # background
    assert torch.allclose(out[..., 2:6], image[..., 6:10], atol=1e-5)  # the slab, in front of the background there
    assert out[..., 6:8].isnan().all()  # hidden behind the slab in the photo
    assert torch.allclose(out[..., 8:14], image[..., 10:16], atol=1e-5)
    assert out[..., 14:].isnan().all()


def test_pixels_of_unknown_depth_are_unseen_and_a_wrong_size_is_refused():
    image, depth = torch.rand(3, H, W), torch.full((H, W), 5.0)
    depth[:, 10] = float("inf")
    depth[:, 12] = float("nan")
    out = reproject_image(image, depth, camera(0.0), camera(0.5))
    assert out[..., [8, 10]].isnan().all()  # they would show source columns 10 and 12
    assert torch.allclose(out[..., 9], image[..., 11], atol=1e-5) and not out[..., :8].isnan().any()
    with pytest.raises(ValueError, match=r"depth \(8, 15\): expected the image's size \(8, 16\)"):
        reproject_image(image, torch.ones(H, W - 1), camera(0.0), camera(0.5))

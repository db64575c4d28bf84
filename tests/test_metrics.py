import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from neuralassets import Asset, Camera, Scene
from neuralassets.errors import ValidationError, WeightsError
from neuralassets.metrics import (
    LPIPS,
    PSNR_CAP_DB,
    appearance_similarity,
    classical_descriptor,
    crop_boxes,
    load_lpips,
    mean_ci,
    psnr,
    region_mask,
    ssim,
)


def _images(seed, B=2, H=24, W=20):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, 3, H, W, generator=g)


def _reference_ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SSIM map of one (H, W) channel: 11-tap Gaussian (sigma 1.5), mirror padding, Wang et al. constants."""
    taps = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()

    def blur(a):
        return ndimage.correlate1d(ndimage.correlate1d(a, taps, axis=0, mode="mirror"), taps, axis=1, mode="mirror")

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def test_psnr_of_constant_offset_is_hand_computed():
    x = _images(0) * 0.9
    # MSE = 0.05^2 everywhere -> 10 log10(1 / 0.0025) = 26.0206 dB
    assert torch.allclose(psnr(x + 0.05, x), torch.full((2,), 10 * math.log10(1 / 0.0025)), atol=1e-4)


def test_psnr_inside_a_mask_ignores_pixels_outside():
    x = _images(1)
    y = x.clone()
    y[:, :, :, 10:] += 0.3  # damage only the right half
    mask = torch.zeros(24, 20, dtype=torch.bool)
    mask[:, :10] = True
    assert (psnr(y, x, mask) == PSNR_CAP_DB).all()
    right = ~mask
    assert torch.allclose(psnr(y, x, right), torch.full((2,), 10 * math.log10(1 / 0.09)), atol=1e-4)


def test_psnr_of_identical_images_is_capped_and_finite():
    x = _images(2)
    assert (psnr(x, x) == PSNR_CAP_DB).all()


def test_empty_region_gives_nan_not_zero():
    x = _images(3)
    empty = torch.zeros(24, 20, dtype=torch.bool)
    assert psnr(x, x * 0.5, empty).isnan().all()
    assert ssim(x, x * 0.5, empty).isnan().all()


def test_ssim_of_identical_images_is_one():
    x = _images(4)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)


def test_ssim_matches_a_scipy_reference_over_image_and_region():
    x, y = _images(5, B=1), (_images(5, B=1) * 0.7 + _images(6, B=1) * 0.3)
    ref_map = np.stack([_reference_ssim_map(x[0, c].double().numpy(), y[0, c].double().numpy()) for c in range(3)])
    assert ssim(x, y).item() == pytest.approx(ref_map.mean(), abs=1e-5)
    mask = torch.zeros(24, 20, dtype=torch.bool)
    mask[3:9, 4:15] = True
    assert ssim(x, y, mask).item() == pytest.approx(ref_map[:, 3:9, 4:15].mean(), abs=1e-5)


def test_bad_shapes_raise_validation_errors():
    x = _images(7)
    with pytest.raises(ValidationError, match="images"):
        psnr(x, x[:, :, :10])
    with pytest.raises(ValidationError, match="mask"):
        ssim(x, x, torch.ones(5, 5, dtype=torch.bool))


def _single_box_scene():
    """A camera looking straight down the world +y axis at a unit cube 5 m away."""
    W = H = 40
    K = torch.tensor([[20.0, 0, 20], [0, 20.0, 20], [0, 0, 1]])
    # world-to-camera: x_cam = x, y_cam = -z, z_cam = y
    R = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    cams = [Camera(K, R, torch.zeros(3), W, H), Camera(K, R, torch.zeros(3), W, H)]
    centers = torch.tensor([[0.0, 5.0, 0.0], [1.0, 5.0, 0.0]])  # frame 1: moved 1 m to the right
    asset = Asset(id=3, name="cube", centers=centers, sizes=torch.ones(2, 3), rotations=torch.eye(3).repeat(2, 1, 1),
                  boxes_2d=torch.zeros(2, 4), visibility=torch.ones(2))
    other = Asset(id=4, name="far", centers=torch.tensor([[-3.0, 5.0, 0.0]] * 2), sizes=torch.ones(2, 3),
                  rotations=torch.eye(3).repeat(2, 1, 1), boxes_2d=torch.zeros(2, 4), visibility=torch.ones(2))
    return Scene(torch.zeros(2, 3, H, W), cams, [asset, other])


def test_region_mask_is_the_union_of_projected_boxes():
    scene = _single_box_scene()
    # Frame 0: the near face (depth 4.5) spans x in [-0.5, 0.5] -> u = 20 +- 20*0.5/4.5 = [17.78, 22.22]; same for v.
    # Pixel centres k + 0.5 inside [17.78, 22.22] are k = 18..21.
    expected = torch.zeros(40, 40, dtype=torch.bool)
    expected[18:22, 18:22] = True
    assert torch.equal(region_mask(scene, [3], [0]), expected)
    # Frame 1: x in [0.5, 1.5] -> u in [20 + 20*0.5/5.5, 20 + 20*1.5/4.5] = [21.82, 26.67] -> k = 22..26.
    expected_1 = torch.zeros(40, 40, dtype=torch.bool)
    expected_1[18:22, 22:27] = True
    assert torch.equal(region_mask(scene, [3], [1]), expected_1)
    assert torch.equal(region_mask(scene, [3], [0, 1]), expected | expected_1)
    assert not region_mask(scene, [3], [0, 1])[:, :17].any()  # asset 4 is not asked for
    assert region_mask(scene, [4], [0]).any()


def test_region_mask_leaves_out_boxes_behind_the_camera():
    scene = _single_box_scene()
    scene.assets[0].centers[0] = torch.tensor([0.0, -5.0, 0.0])
    assert not region_mask(scene, [3], [0]).any()


def _random_lpips_folder(tmp_path, net="alex"):
    import torchvision

    torch.manual_seed(0)
    backbone = torchvision.models.alexnet() if net == "alex" else torchvision.models.vgg16()
    torch.save(backbone.state_dict(), tmp_path / ("alexnet-owt-7be5be79.pth" if net == "alex" else "vgg16-397923af.pth"))
    widths = (64, 192, 384, 256, 256) if net == "alex" else (64, 128, 256, 512, 512)
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(widths)}, tmp_path / f"{net}.pth")
    return tmp_path


def test_lpips_loads_from_a_folder_and_behaves_like_a_distance(tmp_path):
    lpips = load_lpips(_random_lpips_folder(tmp_path))
    assert isinstance(lpips, LPIPS)
    x = _images(8, B=2, H=64, W=64)
    y = (x + 0.2 * _images(9, B=2, H=64, W=64)).clamp(0, 1)
    d_same, d_near, d_far = lpips(x, x), lpips(x, y), lpips(x, 1 - x)
    assert d_same.shape == (2,) and torch.allclose(d_same, torch.zeros(2), atol=1e-7)
    assert (d_near > 0).all() and (d_far > d_near).all()
    assert torch.allclose(d_near, lpips(y, x), atol=1e-6)


def test_lpips_is_none_without_weights_and_rejects_bad_files(tmp_path):
    assert load_lpips(tmp_path) is None
    (tmp_path / "alexnet-owt-7be5be79.pth").write_bytes(b"not weights")
    (tmp_path / "alex.pth").write_bytes(b"not weights")
    with pytest.raises(WeightsError, match="alexnet-owt-7be5be79.pth"):
        load_lpips(tmp_path)
    with pytest.raises(WeightsError, match="does not exist"):
        load_lpips(tmp_path / "missing")


def test_classical_descriptor_separates_colour_and_pattern():
    H = W = 32
    red = torch.zeros(1, 3, H, W)
    red[:, 0] = 0.9
    blue = red.flip(1)
    stripes = red.clone()
    stripes[:, :, :, ::4] = 0.1
    d = classical_descriptor(torch.cat([red, red * 0.98, blue, stripes]))
    assert d.shape == (4, 208) and torch.allclose(d.norm(dim=1), torch.ones(4))
    sim = d @ d.T
    assert sim[0, 1] > 0.99  # a slightly darker red is nearly the same
    assert sim[0, 2] < sim[0, 3] < sim[0, 1]  # another colour is further than another pattern of the same colour


def test_appearance_similarity_is_one_for_the_same_box_content():
    x = _images(10, B=2, H=40, W=40) * 0.3 + torch.tensor([0.6, 0.3, 0.1]).view(1, 3, 1, 1)  # orange-ish noise
    y = x.clone()
    y[:, :, 30:, 30:] = 0  # change outside the box only
    boxes = torch.tensor([[4.0, 5.0, 20.0, 25.0]] * 2)
    assert torch.allclose(appearance_similarity(y, x, boxes), torch.ones(2), atol=1e-5)
    assert crop_boxes(x, boxes).shape == (2, 3, 32, 32)
    assert (appearance_similarity(x[:, [2, 1, 0]], x, boxes) < 0.9).all()  # blue-ish instead


def test_mean_ci_matches_student_t_and_skips_nan():
    values = [1.0, 2.0, 3.0, 4.0, float("nan")]
    mean, half, n = mean_ci(values)
    # t_{0.975, 3} = 3.18245, sample std = 1.29099, sqrt(4) = 2
    assert (mean, n) == (2.5, 4)
    assert half == pytest.approx(3.18245 * 1.29099 / 2, rel=1e-4)
    assert math.isnan(mean_ci([5.0])[1]) and math.isnan(mean_ci([])[0])


def test_untouched_kept_counts_only_pixels_away_from_the_edit_and_is_undefined_without_any():
    from neuralassets.metrics import untouched_kept

    source = torch.zeros(2, 3, 10, 10)
    target = source.clone()
    target[0, :, 0, 0] = 1.0  # one touched pixel: with grow 1, the 2 x 2 corner is touched, 96 pixels are not
    target[1] = 0.5  # everything touched
    pred = source.clone()
    pred[0, 1, 9, 9] = 3 / 255  # over the tolerance: not kept
    pred[0, 2, 9, 0] = 1 / 255  # within it: kept
    kept = untouched_kept(pred, source, target, grow=1)
    assert kept[0].item() == pytest.approx(100 * 95 / 96) and torch.isnan(kept[1])
    assert untouched_kept(source, source, source).tolist() == [100.0, 100.0]

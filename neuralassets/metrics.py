"""Image-quality metrics over whole images and inside edited objects' boxes.

Every metric takes ``(B, 3, H, W)`` float images in [0, 1] and returns one number per
image, so the benchmark can average them per task and give confidence intervals:

- :func:`psnr` and :func:`ssim` (Gaussian window of 11 taps, sigma 1.5, via
  ``kornia.metrics.ssim``), each optionally restricted to a region mask;
- :func:`region_mask`, the union of the projected 3D boxes of some assets in some frames
  (the paper's "inside the edited objects' boxes");
- :class:`LPIPS`, available only when its backbone and calibration weights are on disk
  (:func:`load_lpips` returns None otherwise, and reports should print "n/a");
- :func:`appearance_similarity`, cosine similarity of descriptors of an object's box in
  two images (identity preservation under swap and transfer), with a documented classical
  descriptor (:func:`classical_descriptor`) unless a learned one is given;
- :func:`mean_ci`, mean and 95% confidence half-width of a list of per-case values.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from . import geometry
from .errors import ValidationError, WeightsError
from .image_ops import box_mask
from .scene import Scene

SSIM_WINDOW = 11  # taps of the Gaussian window (kornia fixes sigma = 1.5)
PSNR_CAP_DB = 100.0  # PSNR of identical images (an MSE of 1e-10 of the range squared)


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.dim() != 4 or pred.shape[1] != 3 or pred.shape != target.shape:
        raise ValidationError(f"images: expected two (B, 3, H, W) tensors of one shape, got {tuple(pred.shape)} "
                              f"and {tuple(target.shape)}")


def region_mean(values: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of per-pixel values over channels and a region.

    Args:
        values: (B, C, H, W) float, e.g. squared errors or an :func:`ssim_map`.
        mask: (H, W) or (B, H, W) bool, or None for the whole image.

    Returns:
        (B,) float; NaN where the mask is empty.
    """
    if mask is None:
        return values.flatten(1).mean(dim=1)
    B, _, H, W = values.shape
    mask = mask.bool()
    if tuple(mask.shape) == (H, W):
        mask = mask.expand(B, H, W)
    if tuple(mask.shape) != (B, H, W):
        raise ValidationError(f"mask: expected shape (H, W) or (B, H, W) = ({B}, {H}, {W}), got {tuple(mask.shape)}")
    weight = mask.unsqueeze(1).to(values.dtype).expand_as(values)
    count = weight.flatten(1).sum(dim=1)
    total = (values * weight).flatten(1).sum(dim=1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None, max_val: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio, ``10 log10(max_val^2 / MSE)``, capped at :data:`PSNR_CAP_DB`.

    Args:
        pred, target: (B, 3, H, W) float in [0, 1].
        mask: optional (H, W) or (B, H, W) bool; the MSE is taken over its pixels only.
        max_val: the images' dynamic range.

    Returns:
        (B,) float dB; NaN where the mask is empty.
    """
    _check_pair(pred, target)
    mse = region_mean((pred.double() - target.double()) ** 2, mask)
    # The cap keeps identical images (MSE 0) finite, so per-task means stay meaningful.
    floor = max_val**2 * 10 ** (-PSNR_CAP_DB / 10)
    return (10 * torch.log10(max_val**2 / mse.clamp(min=floor))).float()


def ssim_map(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pixel structural similarity with an 11-tap Gaussian window (sigma 1.5), reflect-padded.

    Args:
        pred, target: (B, 3, H, W) float in [0, 1].

    Returns:
        (B, 3, H, W) float32 in [-1, 1].
    """
    _check_pair(pred, target)
    return kornia.metrics.ssim(pred.float(), target.float(), SSIM_WINDOW, max_val=1.0, eps=0.0)


def ssim(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Structural similarity (:func:`ssim_map` averaged), over the image or inside a region.

    Inside a region it is the mean of the SSIM map over the region's pixels (the map
    itself looks at the 11x11 neighbourhood, so pixels just outside the region count).

    Args:
        pred, target: (B, 3, H, W) float in [0, 1].
        mask: optional (H, W) or (B, H, W) bool region.

    Returns:
        (B,) float in [-1, 1]; NaN where the mask is empty.
    """
    return region_mean(ssim_map(pred, target), mask)


def untouched_kept(pred: Tensor, source: Tensor, target: Tensor, grow: int = 2, tolerance: float = 2 / 255) -> Tensor:
    """Percentage of the pixels an edit left alone that a prediction shows as the source did.

    A pixel is left alone when the target shows it as the source does (within one 8-bit
    level in every channel) and so does every pixel within ``grow`` of it: a vacated spot, a
    moved shadow and their rims count as touched, the rest of the frame does not. It is kept
    when the prediction is within ``tolerance`` of the source in every channel.

    Args:
        pred, source, target: (B, 3, H, W) float in [0, 1].
        grow: pixels by which the touched region grows.
        tolerance: largest colour difference of a kept pixel.

    Returns:
        (B,) float in [0, 100]; NaN for an image the edit touched everywhere.

    Example:
        >>> source = torch.zeros(1, 3, 8, 8); target = source.clone(); target[..., 2:4, 2:4] = 1.0
        >>> pred = target.clone(); pred[..., 7, 7] = 0.5  # the edit drawn, one far pixel changed
        >>> round(untouched_kept(pred, source, target).item(), 2)  # 27 of the 28 pixels 2 away from the edit
        96.43
    """
    _check_pair(pred, target)
    _check_pair(source, target)
    touched = ((target - source).abs() > 1.5 / 255).any(dim=1, keepdim=True).float()
    if grow > 0:
        touched = F.max_pool2d(touched, 2 * grow + 1, stride=1, padding=grow)
    untouched = touched[:, 0] == 0
    kept = ((pred - source).abs() <= tolerance).all(dim=1) & untouched
    count = untouched.flatten(1).sum(1).float()
    share = 100 * kept.flatten(1).sum(1).float() / count.clamp(min=1)
    return torch.where(count > 0, share, torch.full_like(share, float("nan")))


def region_mask(scene: Scene, asset_ids: Iterable[int], frames: Sequence[int]) -> Tensor:
    """Pixels inside the projected 3D boxes of some assets in some frames of a scene.

    Each asset's box at frame ``f`` is projected with camera ``f``; its 2D bounds, clipped to
    the image, cover the pixels whose centres lie inside (edges included). A box with a
    corner behind the camera is left out (its projection is meaningless).

    Args:
        scene: the scene whose poses and cameras are used.
        asset_ids: the assets (e.g. the edited ones).
        frames: the frames (e.g. ``(0, 1)`` for source and target of a two-frame edit).

    Returns:
        (H, W) bool, True inside the union.
    """
    boxes = []
    for asset_id in asset_ids:
        asset = scene.asset(asset_id)
        for f in frames:
            cam = scene.cameras[f]
            uv, depth = geometry.project_box(asset.centers[f], asset.sizes[f], asset.rotations[f], cam.K, cam.R, cam.t)
            if bool((depth > 0).all()):
                boxes.append(geometry.bounding_box_2d(uv, scene.width, scene.height))
    if not boxes:
        return torch.zeros(scene.height, scene.width, dtype=torch.bool)
    return box_mask(torch.stack(boxes), scene.height, scene.width)


# --------------------------------------------------------------------------------------
# LPIPS
# --------------------------------------------------------------------------------------

# torchvision feature indices after which LPIPS taps the activations, and their widths.
_LPIPS_TAPS = {"alex": ((1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
               "vgg": ((3, 8, 15, 22, 29), (64, 128, 256, 512, 512))}
# Torch-hub file names of the ImageNet backbones LPIPS was calibrated on.
_LPIPS_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


class LPIPS(torch.nn.Module):
    """Learned perceptual image patch similarity (Zhang et al. 2018, v0.1).

    The backbone's activations at five layers are unit-normalised over channels, their
    squared differences weighted by a calibrated 1x1 layer per tap, averaged over space and
    summed over taps. Lower is more similar; identical images give 0.

    Args:
        net: ``"alex"`` or ``"vgg"``.
        backbone_state: a torchvision ``alexnet``/``vgg16`` state dict (``features.*`` keys are used).
        linear_state: the LPIPS calibration weights, keys ``lin{k}.model.1.weight`` of shape (1, C_k, 1, 1),
            as the reference ``lpips`` package ships them (``weights/v0.1/{net}.pth``).
    """

    def __init__(self, net: str, backbone_state: dict[str, Tensor], linear_state: dict[str, Tensor]):
        super().__init__()
        import torchvision

        if net not in _LPIPS_TAPS:
            raise ValidationError(f"LPIPS net: expected one of {sorted(_LPIPS_TAPS)}, got {net!r}")
        taps, widths = _LPIPS_TAPS[net]
        backbone = (torchvision.models.alexnet() if net == "alex" else torchvision.models.vgg16()).features
        features = {k.removeprefix("features."): v for k, v in backbone_state.items() if k.startswith("features.")}
        try:
            backbone.load_state_dict(features)
        except RuntimeError as e:
            raise WeightsError(f"LPIPS {net} backbone: state dict does not match torchvision's {net} ({e})") from None
        self.slices = torch.nn.ModuleList()
        start = 0
        for end in taps:
            self.slices.append(backbone[start:end + 1])
            start = end + 1
        self.lins = torch.nn.ModuleList()
        for k, width in enumerate(widths):
            key = f"lin{k}.model.1.weight"
            if key not in linear_state or tuple(linear_state[key].shape) != (1, width, 1, 1):
                raise WeightsError(f"LPIPS {net} calibration weights: expected {key} of shape (1, {width}, 1, 1)")
            lin = torch.nn.Conv2d(width, 1, 1, bias=False)
            lin.weight.data.copy_(linear_state[key])
            self.lins.append(lin)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def _taps(self, images: Tensor) -> list[Tensor]:
        x = (images * 2 - 1 - self.shift) / self.scale
        out = []
        for block in self.slices:
            x = block(x)
            out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    @torch.no_grad()
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """(B, 3, H, W) float in [0, 1] pair → (B,) float distance >= 0."""
        _check_pair(pred, target)
        total = torch.zeros(pred.shape[0])
        for lin, a, b in zip(self.lins, self._taps(pred.float()), self._taps(target.float())):
            total = total + lin((a - b) ** 2).mean(dim=(1, 2, 3))
        return total


def load_lpips(folder: str | os.PathLike | None = None, net: str = "alex") -> LPIPS | None:
    """LPIPS from weights already on disk, or None when they are not there.

    The backbone is looked up as ``{folder}/{hub file name}`` (e.g. ``alexnet-owt-7be5be79.pth``)
    and then in the torch-hub checkpoint cache; the calibration weights as ``{folder}/{net}.pth``
    and then inside an installed ``lpips`` package. Both are read with
    ``torch.load(weights_only=True)``. Nothing is downloaded.

    Args:
        folder: a folder holding the weight files, or None to look only in the caches.
        net: ``"alex"`` or ``"vgg"``.

    Returns:
        An :class:`LPIPS` module, or None when either file is missing.

    Raises:
        WeightsError: a file exists but does not hold the expected weights.
    """
    if net not in _LPIPS_TAPS:
        raise ValidationError(f"LPIPS net: expected one of {sorted(_LPIPS_TAPS)}, got {net!r}")
    backbone_candidates = [Path(torch.hub.get_dir()) / "checkpoints" / _LPIPS_BACKBONE_FILES[net]]
    linear_candidates = []
    try:
        import lpips as lpips_package  # the reference package ships the calibration weights

        linear_candidates.append(Path(lpips_package.__file__).parent / "weights" / "v0.1" / f"{net}.pth")
    except ImportError:
        pass
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise WeightsError(f"{folder}: LPIPS weights folder does not exist")
        backbone_candidates.insert(0, folder / _LPIPS_BACKBONE_FILES[net])
        linear_candidates.insert(0, folder / f"{net}.pth")
    backbone = next((p for p in backbone_candidates if p.is_file()), None)
    linear = next((p for p in linear_candidates if p.is_file()), None)
    if backbone is None or linear is None:
        return None
    states = []
    for path in (backbone, linear):
        try:
            states.append(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as e:  # noqa: BLE001 - any unreadable file is a weights problem
            raise WeightsError(f"{path}: not a readable torch weights file ({e})") from None
    return LPIPS(net, *states)


# --------------------------------------------------------------------------------------
# Identity preservation
# --------------------------------------------------------------------------------------

DESCRIPTOR_SIZE = 32  # box crops are resampled to this many pixels square before describing them
_HIST_BINS = 4  # colour histogram bins per RGB channel (4^3 = 64 joint bins)
_HOG_CELLS, _HOG_ORIENTATIONS = 4, 9  # 4x4 cells of 9 unsigned gradient orientations


def crop_boxes(images: Tensor, boxes: Tensor, size: int = DESCRIPTOR_SIZE) -> Tensor:
    """Resample box crops of images to a fixed square size (bilinear, ``kornia.geometry.transform.crop_and_resize``).

    Args:
        images: (B, 3, H, W) float.
        boxes: (B, 4) float pixel boxes ``(x0, y0, x1, y1)`` (pixel edges), at least one pixel wide.
        size: output side in pixels.

    Returns:
        (B, 3, size, size).
    """
    # kornia wants the first and last sample in pixel-index coordinates (pixel k's centre at k): the
    # centres half a pixel inside the box edges, i.e. edge - 0.5 + 0.5 at the start and edge - 0.5 - 0.5 at the end.
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = (boxes[:, 2] - 1).maximum(x0), (boxes[:, 3] - 1).maximum(y0)
    corners = torch.stack([torch.stack([x0, y0], -1), torch.stack([x1, y0], -1),
                           torch.stack([x1, y1], -1), torch.stack([x0, y1], -1)], dim=1)
    return kornia.geometry.transform.crop_and_resize(images.float(), corners.float(), (size, size), mode="bilinear",
                                                     padding_mode="border", align_corners=True)


def classical_descriptor(crops: Tensor) -> Tensor:
    """A fixed, training-free appearance descriptor of object crops.

    Two L2-normalised parts, concatenated and normalised again: a joint RGB colour
    histogram (4 bins per channel, soft-assigned by linear interpolation, 64 numbers) for
    colour identity, and a HOG-style descriptor (4x4 cells x 9 unsigned gradient
    orientations, gradient-magnitude weighted, 144 numbers) for texture and pattern. It
    tells a red striped object from a blue dotted one, not one plush toy from another.

    Args:
        crops: (B, 3, S, S) float in [0, 1] (see :func:`crop_boxes`).

    Returns:
        (B, 208) float, unit norm.
    """
    B = crops.shape[0]
    x = crops.clamp(0, 1) * (_HIST_BINS - 1)
    lo = x.floor().clamp(max=_HIST_BINS - 2)
    frac = x - lo
    hist = torch.zeros(B, _HIST_BINS**3)
    for corner in range(8):  # trilinear soft assignment to the 8 neighbouring bins
        bits = [(corner >> c) & 1 for c in range(3)]
        weight = torch.ones_like(frac[:, 0])
        index = torch.zeros_like(frac[:, 0], dtype=torch.long)
        for c, bit in enumerate(bits):
            weight = weight * (frac[:, c] if bit else 1 - frac[:, c])
            index = index * _HIST_BINS + (lo[:, c].long() + bit)
        hist.scatter_add_(1, index.flatten(1), weight.flatten(1))

    gray = crops.mean(dim=1, keepdim=True)
    gx = F.conv2d(F.pad(gray, (1, 1, 0, 0), mode="replicate"), torch.tensor([[[[-0.5, 0.0, 0.5]]]]))
    gy = F.conv2d(F.pad(gray, (0, 0, 1, 1), mode="replicate"), torch.tensor([[[[-0.5], [0.0], [0.5]]]]))
    magnitude = (gx**2 + gy**2).sqrt()
    angle = torch.atan2(gy, gx) % math.pi
    bins = (angle / math.pi * _HOG_ORIENTATIONS).long().clamp(max=_HOG_ORIENTATIONS - 1)
    per_orientation = F.one_hot(bins.squeeze(1), _HOG_ORIENTATIONS).permute(0, 3, 1, 2) * magnitude
    hog = F.adaptive_avg_pool2d(per_orientation, _HOG_CELLS).flatten(1)

    parts = [F.normalize(hist, dim=1), F.normalize(hog, dim=1)]
    return F.normalize(torch.cat(parts, dim=1), dim=1)


def backbone_descriptor(backbone: torch.nn.Module, grid: int = 2) -> Callable[[Tensor, Tensor], Tensor]:
    """A learned descriptor: a model's appearance backbone RoIAligned inside each box.

    Args:
        backbone: maps (B, 3, H, W) float in [0, 1] to a (B, C, h, w) feature grid covering
            the whole image (e.g. a pipeline's ``asset_encoder.backbone``).
        grid: RoIAlign output cells per side; the descriptor has ``C * grid**2`` numbers.

    Returns:
        ``describe(images (B, 3, H, W), boxes (B, 4) pixels) -> (B, C * grid**2)`` for
        :func:`appearance_similarity`.
    """
    import torchvision

    param = next(backbone.parameters())

    @torch.no_grad()
    def describe(images: Tensor, boxes: Tensor) -> Tensor:
        features = backbone(images.to(param)).float().cpu()
        rois = torch.cat([torch.arange(len(boxes), dtype=torch.float32).unsqueeze(1), boxes.float()], dim=1)
        pooled = torchvision.ops.roi_align(features, rois, (grid, grid), spatial_scale=features.shape[-1] / images.shape[-1],
                                           sampling_ratio=2, aligned=True)
        return pooled.flatten(1)

    return describe


def appearance_similarity(pred: Tensor, target: Tensor, boxes: Tensor,
                          describe: Callable[[Tensor, Tensor], Tensor] | None = None) -> Tensor:
    """Cosine similarity of an object's descriptors in two images (identity preservation).

    Args:
        pred, target: (B, 3, H, W) float in [0, 1].
        boxes: (B, 4) float pixel boxes of the object, the same in both images.
        describe: ``(images (B, 3, H, W), boxes (B, 4)) -> (B, D)`` descriptors, e.g. a model's
            appearance backbone pooled in the box; None uses :func:`classical_descriptor` of
            :func:`crop_boxes`.

    Returns:
        (B,) float in [-1, 1] (1 = the same descriptor).
    """
    _check_pair(pred, target)
    if describe is None:
        def describe(images: Tensor, b: Tensor) -> Tensor:
            return classical_descriptor(crop_boxes(images, b))
    return F.cosine_similarity(describe(pred, boxes), describe(target, boxes), dim=1)


# --------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------

def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, int]:
    """Mean and confidence half-width (Student's t) of per-case values, ignoring NaN.

    Args:
        values: per-case numbers; NaN entries (e.g. an empty region) are left out.
        confidence: two-sided confidence level.

    Returns:
        (mean, half_width, n): NaN mean for no values, NaN half-width for fewer than two.
    """
    from scipy import stats

    kept = torch.tensor([float(v) for v in values], dtype=torch.float64)
    kept = kept[~kept.isnan()]
    n = len(kept)
    if n == 0:
        return float("nan"), float("nan"), 0
    mean = float(kept.mean())
    if n < 2:
        return mean, float("nan"), n
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * kept.std(unbiased=True) / math.sqrt(n))
    return mean, half, n


__all__ = ["LPIPS", "appearance_similarity", "backbone_descriptor", "classical_descriptor", "crop_boxes", "load_lpips", "mean_ci",
           "psnr", "region_mask", "region_mean", "ssim", "ssim_map", "untouched_kept"]

"""The learned perception model: depth, instance masks and 3D boxes from one frame.

:class:`PerceptionNet` is a small U-Net trained on the synthetic generator (see
``neuralassets/training/perception.py`` and ``weights/perception/README.md``). From a
``(B, 3, H, W)`` frame it predicts, at full resolution:

* metric depth (log metres);
* a foreground probability, a centre heatmap (Gaussians at each object's visible-mask
  centroid) and each pixel's offset to its object's centroid: objects are found the
  Panoptic-DeepLab way, heatmap peaks become centres and every foreground pixel joins the
  centre its offset points to (:func:`find_centres`, :func:`assign_pixels`);
* per pixel, its object's 3D box in image terms (:data:`ESTIMATE_FIELDS`): where the box's
  footprint centre and centre project, the centre's depth and height above the floor, the
  box's long and short horizontal sides and height, and its yaw relative to the viewing
  ray. Averaged over an object's mask they give one estimate per object
  (:func:`instance_estimates`); a camera then turns it into a world box
  (:func:`boxes_from_estimates`: on the centre pixel's ray, as far along it as the centre's
  height and depth together say).

Yaw is predicted as the doubled and quadrupled angle (cos, sin): a box turned by 180° is
the same box, and a square footprint repeats every 90°; the doubled angle picks which of
the two 90°-apart candidates of the quadrupled one is the long side.

:class:`LearnedPerception` wraps a trained net as a segmenter (``segment``), whose
detections carry each object's box estimate
(:attr:`~neuralassets.perception.detections.FrameDetections.estimates`), and a metric
depth estimator (``estimate``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import geometry
from ..errors import ConfigError, ValidationError, WeightsError
from ..scene import Camera
from .detections import FrameDetections

#: Per-object box estimate in image terms, the rows of :func:`instance_estimates`.
ESTIMATE_FIELDS = (
    "footprint_u", "footprint_v",  # pixel where the box's footprint centre (centre x, y at floor height) projects
    "centre_u", "centre_v",  # pixel where the box centre projects
    "centre_depth",  # camera-frame z of the box centre, metres
    "centre_height",  # height of the box centre above the floor, metres
    "long_side", "short_side", "height",  # horizontal extents (longer first) and vertical extent, metres
    "relative_yaw",  # yaw of the long side minus the azimuth of the ray to the box, radians
)

#: Per-pixel box channels of :attr:`PerceptionMaps.box`.
BOX_CHANNELS = (
    "footprint_du", "footprint_dv", "centre_du", "centre_dv",  # offsets from the pixel, in units of offset_scale pixels
    "log_centre_depth", "log_centre_height", "log_long_side", "log_short_side", "log_height",
    "cos2_yaw", "sin2_yaw", "cos4_yaw", "sin4_yaw",  # of relative_yaw
)
#: Box channels that change sign when the frame is mirrored left to right (a mirror turns the other way).
MIRRORED_BOX_CHANNELS = ("footprint_du", "centre_du", "sin2_yaw", "sin4_yaw")


@dataclass
class PerceptionConfig:
    """Architecture and decoding settings of :class:`PerceptionNet` (saved with its weights)."""

    widths: tuple[int, ...] = (16, 32, 48, 64, 96)  # encoder channels per scale (full, 1/2, 1/4, ...)
    decoder_widths: tuple[int, ...] = (64, 48, 32, 16)  # decoder channels, coarsest first, back to full resolution
    object_width: int = 48  # channels of the object head's own layer (on the half-resolution features)
    offset_scale: float = 32.0  # pixel offsets are predicted in units of this many pixels
    working_size: int = 128  # frames are resized so their shorter side has this many pixels
    heat_sigma: float = 2.0  # centre heatmap Gaussian width, working pixels
    # decoding (tuned on the validation split)
    foreground_threshold: float = 0.5
    centre_threshold: float = 0.3  # a heatmap peak above this is an object
    centre_window: int = 5  # peaks are maxima over this window
    min_pixels: int = 6  # objects with fewer working pixels are dropped
    mirror_average: bool = True  # average the maps of each frame and of its mirror image (twice the compute)

    def __post_init__(self) -> None:
        self.widths, self.decoder_widths = tuple(self.widths), tuple(self.decoder_widths)
        if len(self.decoder_widths) != len(self.widths) - 1 or len(self.decoder_widths) < 2:
            raise ConfigError(f"PerceptionConfig: {len(self.decoder_widths)} decoder widths for {len(self.widths)} "
                              f"encoder scales; expected one fewer, and at least two")
        if self.working_size % 2 ** (len(self.widths) - 1):
            raise ConfigError(f"PerceptionConfig.working_size: {self.working_size} is not a multiple of "
                              f"{2 ** (len(self.widths) - 1)}")


@dataclass
class PerceptionMaps:
    """What :class:`PerceptionNet` predicts for B frames of H x W.

    Attributes:
        log_depth: (B, H, W) float log of camera-frame depth in metres.
        foreground: (B, H, W) float logits of "an object covers this pixel".
        heat: (B, H, W) float centre heatmap (peaks near 1 at object centroids).
        offsets: (B, 2, H, W) float (du, dv) to the pixel's object centroid, units of ``offset_scale`` pixels.
        box: (B, 13, H, W) float, :data:`BOX_CHANNELS`.
    """

    log_depth: Tensor
    foreground: Tensor
    heat: Tensor
    offsets: Tensor
    box: Tensor

    def mean_with(self, other: PerceptionMaps) -> PerceptionMaps:
        """The mean of these maps and ``other``'s, map by map."""
        return PerceptionMaps(*((getattr(self, f.name) + getattr(other, f.name)) / 2 for f in fields(self)))


def coordinates(height: int, width: int) -> Tensor:
    """(2, height, width) float pixel centres (x, y) in units of half the height, (0, 0) at the frame's centre."""
    ys = (torch.arange(height) + 0.5 - height / 2) / (height / 2)
    xs = (torch.arange(width) + 0.5 - width / 2) / (height / 2)
    return torch.stack([xs[None, :].expand(height, width), ys[:, None].expand(height, width)])


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PerceptionNet(nn.Module):
    """A small U-Net: stride-2 encoder, bilinear-upsampling decoder with skips, two heads.

    The pixel head (depth, foreground) reads the full-resolution decoder features, where
    object outlines are sharp. The object head (centre heatmap, offsets, box channels) reads
    the wider half-resolution features through its own 3x3 layer and is upsampled: what it
    predicts is constant over an object, and it needs more channels than a mask does.
    The input gets two coordinate channels (:func:`coordinates`) so the net can read metric
    depth from where a pixel is in the frame, as well as from what it shows.
    """

    num_pixel_outputs = 2
    num_object_outputs = 3 + len(BOX_CHANNELS)

    def __init__(self, config: PerceptionConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or PerceptionConfig()
        w = cfg.widths
        self.stem = _conv(5, w[0])
        self.down = nn.ModuleList(nn.Sequential(_conv(w[i], w[i + 1], 2), _conv(w[i + 1], w[i + 1]))
                                  for i in range(len(w) - 1))
        up, cin = [], w[-1]
        for i, width in enumerate(cfg.decoder_widths):
            up.append(_conv(cin + w[-2 - i], width))
            cin = width
        self.up = nn.ModuleList(up)
        self.pixel_head = nn.Conv2d(cin, self.num_pixel_outputs, 1)
        self.object_head = nn.Sequential(_conv(cfg.decoder_widths[-2], cfg.object_width),
                                         nn.Conv2d(cfg.object_width, self.num_object_outputs, 1))

    def forward(self, images: Tensor, coords: Tensor | None = None) -> PerceptionMaps:
        """Predict the maps of ``images``.

        Args:
            images: (B, 3, H, W) float in [0, 1], H and W multiples of 2^(scales - 1).
            coords: (B, 2, H, W) float pixel coordinates (:func:`coordinates`) of a crop of a
                larger frame; default: those of the whole ``images``.

        Returns:
            :class:`PerceptionMaps` at (H, W).
        """
        B, _, H, W = images.shape
        if coords is None:
            coords = coordinates(H, W).to(images)[None].expand(B, 2, H, W)
        feats = [self.stem(torch.cat([images * 2 - 1, coords], 1))]
        for down in self.down:
            feats.append(down(feats[-1]))
        y = feats[-1]
        for i, up in enumerate(self.up):
            if i == len(self.up) - 1:
                objects = F.interpolate(self.object_head(y), size=(H, W), mode="bilinear", align_corners=False)
            skip = feats[-2 - i]
            y = up(torch.cat([F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        pixels = self.pixel_head(y)
        return PerceptionMaps(pixels[:, 0], pixels[:, 1], objects[:, 0], objects[:, 1:3], objects[:, 3:])


def mirror_signs() -> tuple[Tensor, Tensor]:
    """(2,) and (13,) float: +1 or -1 per offset and box channel, what mirroring a frame left to right does to it."""
    offsets = torch.tensor([-1.0, 1.0])
    box = torch.tensor([-1.0 if name in MIRRORED_BOX_CHANNELS else 1.0 for name in BOX_CHANNELS])
    return offsets, box


def mirror_maps(maps: PerceptionMaps) -> PerceptionMaps:
    """The maps of a frame mirrored left to right, given those of the mirror image (and the other way round)."""
    offset_sign, box_sign = (s.to(maps.box)[:, None, None] for s in mirror_signs())
    return PerceptionMaps(maps.log_depth.flip(-1), maps.foreground.flip(-1), maps.heat.flip(-1),
                          maps.offsets.flip(-1) * offset_sign, maps.box.flip(-1) * box_sign)


# --------------------------------------------------------------------------------------
# Box targets and their decoding
# --------------------------------------------------------------------------------------

def flat_box(rotation: Tensor, size: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """3D boxes seen as boxes turned about the vertical only.

    Args:
        rotation: (..., 3, 3) box-to-world rotations.
        size: (..., 3) full extents, metres.

    Returns:
        yaw: (...) heading (radians) of the longer horizontal box axis;
        sides: (..., 3) its extent, the shorter horizontal extent and the vertical extent, metres;
        upright: (...) bool, True where a box axis is within 5° of vertical;
        up_axis: (...) long index of the box axis nearest the vertical.
    """
    up_axis = rotation[..., 2, :].abs().argmax(-1)
    upright = rotation[..., 2, :].abs().amax(-1) > math.cos(math.radians(5))
    # the two horizontal axes, in box-axis order
    first = torch.where(up_axis == 0, 1, 0)
    second = torch.where(up_axis == 2, 1, 2)
    size_first, size_second = size.gather(-1, first[..., None])[..., 0], size.gather(-1, second[..., None])[..., 0]
    long_axis = torch.where(size_first >= size_second, first, second)
    axis = rotation.gather(-1, long_axis[..., None, None].expand(*long_axis.shape, 3, 1))[..., 0]  # (..., 3)
    yaw = torch.atan2(axis[..., 1], axis[..., 0])
    sides = torch.stack([torch.maximum(size_first, size_second), torch.minimum(size_first, size_second),
                         size.gather(-1, up_axis[..., None])[..., 0]], -1)
    return yaw, sides, upright, up_axis


def box_estimates(centers: Tensor, sizes: Tensor, rotations: Tensor, camera: Camera) -> Tensor:
    """The :data:`ESTIMATE_FIELDS` of known 3D boxes seen by ``camera`` (training targets).

    Args:
        centers: (N, 3) world metres. sizes: (N, 3) metres. rotations: (N, 3, 3).
        camera: the frame's camera (world floor at z = 0).

    Returns:
        (N, 10) float.
    """
    footprint = torch.cat([centers[:, :2], torch.zeros_like(centers[:, :1])], -1)
    uv, z = camera.project(torch.cat([footprint, centers]))
    N = centers.shape[0]
    yaw, sides, _, _ = flat_box(rotations, sizes)
    to_box = centers[:, :2] - camera.center[:2]
    relative = _wrap(yaw - torch.atan2(to_box[:, 1], to_box[:, 0]))
    return torch.cat([uv[:N], uv[N:], z[N:, None], centers[:, 2:], sides, relative[:, None]], -1)


def _wrap(angle: Tensor) -> Tensor:
    return torch.atan2(torch.sin(angle), torch.cos(angle))


def encode_estimates(estimates: Tensor, u: Tensor, v: Tensor, offset_scale: float) -> Tensor:
    """Per-pixel box targets (:data:`BOX_CHANNELS`) of pixels at ``(u, v)`` showing objects with ``estimates``.

    Args:
        estimates: (..., 10) :data:`ESTIMATE_FIELDS`.
        u, v: (...) pixel centres.
        offset_scale: pixels per offset unit.

    Returns:
        (..., 13) float.
    """
    e = estimates
    a = e[..., 9]
    logs = torch.log(e[..., 4:9].clamp(min=1e-3))
    return torch.cat([torch.stack([(e[..., 0] - u), (e[..., 1] - v), (e[..., 2] - u), (e[..., 3] - v)], -1) / offset_scale,
                      logs, torch.stack([torch.cos(2 * a), torch.sin(2 * a), torch.cos(4 * a), torch.sin(4 * a)], -1)], -1)


def decode_estimates(box: Tensor, u: Tensor, v: Tensor, offset_scale: float) -> Tensor:
    """Inverse of :func:`encode_estimates` for averaged channels: (..., 13) → (..., 10).

    The yaw comes from the quadrupled angle; of its two candidates 90° apart, the one whose
    doubled angle agrees with the doubled-angle channels is kept.
    """
    offsets = box[..., :4] * offset_scale
    sizes = torch.exp(box[..., 4:9])
    quarter = torch.atan2(box[..., 12], box[..., 11]) / 4
    half = torch.atan2(box[..., 10], box[..., 9])
    turned = torch.cos(2 * quarter - half) < 0  # 2 * (quarter + pi / 2) agrees better
    yaw = _wrap(quarter + turned * (math.pi / 2))
    return torch.cat([torch.stack([offsets[..., 0] + u, offsets[..., 1] + v, offsets[..., 2] + u, offsets[..., 3] + v], -1),
                      sizes, yaw[..., None]], -1)


@dataclass
class EstimateNoise:
    """How far a model's estimates of an object's distance stray from the truth: standard deviations
    that weigh them against each other in :func:`boxes_from_estimates` (saved with the model's config).

    The defaults were measured for the shipped model on validation frames
    (``python benchmarks/perception.py --split val`` prints them for any weights, and with
    ``--save-noise`` writes them into the weights' ``config.json``).
    """

    centre_height: float = 0.0364  # root mean square error of the centre's height above the floor, metres
    centre_depth: float = 0.0489  # root mean square error of the centre's depth, as a fraction of the depth

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ConfigError(f"EstimateNoise.{f.name}: expected a positive standard deviation, got {getattr(self, f.name)}")


def boxes_from_estimates(estimates: Tensor, camera: Camera, noise: EstimateNoise | None = None) -> Tensor:
    """World boxes of per-object estimates seen by ``camera``.

    The box centre lies on the ray through the centre pixel, so the box stays where the
    object is seen. How far along it comes from two estimates, each weighed by how far such
    estimates stray (``noise``; a weighted least-squares fit, in closed form): the centre's
    height above the floor, which pins the distance where the ray drops steeply and barely
    where it is nearly level, and the centre's depth, whose error grows with the distance.
    On validation videos this cut the mean centre error from 15.0 to 14.4 % of the object's
    size against the height alone, and left the renders of extracted scenes as they were;
    pulling the centre off its ray towards the footprint pixel's ray as well moved the
    renders' objects off what the photo shows and cost up to 0.05 dB. Where the fit would put
    the centre behind the camera (a ray that falls towards a centre said to be above the
    camera), the depth alone places it. Yaw is the relative yaw plus the azimuth of the ray to
    the box.

    Args:
        estimates: (K, 10) :data:`ESTIMATE_FIELDS` in the camera's pixels.
        camera: a camera whose world frame has the floor at z = 0.
        noise: the estimates' spreads (default: the shipped model's).

    Returns:
        (K, 7) float: footprint centre x, y and bottom height, extents along the box's x
        (long side), y and z, yaw (radians); the per-frame format of the lifters.
    """
    if estimates.shape[0] == 0:
        return torch.zeros(0, 7)
    noise = noise or EstimateNoise()
    origin, directions = geometry.pixel_rays(estimates[:, 2:4], camera.K, camera.R, camera.t)
    height, depth = estimates[:, 5], estimates[:, 4]
    drop = directions[:, 2]  # height gained per unit along the ray
    ahead = directions @ camera.R[2]  # depth gained per unit along the ray
    height_weight = 1 / noise.centre_height ** 2
    depth_weight = 1 / (noise.centre_depth * depth) ** 2
    along = ((height_weight * drop * (height - origin[2]) + depth_weight * ahead * depth)
             / (height_weight * drop ** 2 + depth_weight * ahead ** 2))
    # the object is seen, so it is in front of the camera: where the height says otherwise (a ray that
    # falls towards a centre said to be above the camera), the depth alone places it
    along = torch.where(along * ahead > 0, along, depth / ahead)
    centre = origin + along[:, None] * directions
    to_box = centre[:, :2] - camera.center[:2]
    yaw = _wrap(estimates[:, 9] + torch.atan2(to_box[:, 1], to_box[:, 0]))
    bottom = (centre[:, 2] - estimates[:, 8] / 2).clamp(min=0)
    return torch.cat([centre[:, :2], bottom[:, None], estimates[:, 6:9], yaw[:, None]], -1)


# --------------------------------------------------------------------------------------
# From maps to objects
# --------------------------------------------------------------------------------------

def find_centres(heat: Tensor, config: PerceptionConfig) -> tuple[Tensor, Tensor]:
    """Object centres: local maxima of the heatmap above ``config.centre_threshold``.

    Args:
        heat: (H, W) float centre heatmap.
        config: thresholds.

    Returns:
        centres: (C, 2) float pixel (u, v), highest peak first; heights: (C,) float peak values.
    """
    r = config.centre_window // 2
    # only pixels above the threshold can be peaks: compare each with its window (cheaper than pooling the frame)
    rows, cols = (heat > config.centre_threshold).nonzero(as_tuple=True)
    padded = F.pad(heat, (r, r, r, r), value=-math.inf)
    dy, dx = torch.meshgrid(torch.arange(2 * r + 1), torch.arange(2 * r + 1), indexing="ij")
    window = padded[rows[:, None] + dy.flatten(), cols[:, None] + dx.flatten()]  # (P, window²)
    heights = heat[rows, cols]
    is_peak = heights >= window.amax(1)
    peaks, heights = torch.stack([rows, cols], -1)[is_peak], heights[is_peak]
    order = heights.argsort(descending=True)
    return peaks[order].flip(-1).float() + 0.5, heights[order]


def assign_pixels(foreground: Tensor, offsets: Tensor, centres: Tensor, config: PerceptionConfig,
                  pixel_scale: tuple[float, float] = (1.0, 1.0)) -> Tensor:
    """Instance labels: every foreground pixel joins the centre its offset points to.

    Args:
        foreground: (H, W) float logits.
        offsets: (2, H, W) float, units of ``config.offset_scale`` working pixels.
        centres: (C, 2) float (u, v) in these pixels.
        config: thresholds.
        pixel_scale: (sx, sy) pixels of this map per working pixel (1 at the working size).

    Returns:
        (H, W) long, 0 for background and c + 1 for pixels of centre c; labels of centres
        with fewer than ``config.min_pixels`` working pixels are set to 0.
    """
    H, W = foreground.shape
    labels = torch.zeros(H, W, dtype=torch.long)
    fg = foreground > math.log(config.foreground_threshold / (1 - config.foreground_threshold))
    if len(centres) == 0 or not bool(fg.any()):
        return labels
    ys, xs = fg.nonzero(as_tuple=True)
    sx, sy = pixel_scale
    votes = torch.stack([xs + 0.5 + offsets[0, ys, xs] * config.offset_scale * sx,
                         ys + 0.5 + offsets[1, ys, xs] * config.offset_scale * sy], -1)
    labels[ys, xs] = torch.cdist(votes, centres).argmin(1) + 1
    counts = torch.bincount(labels.flatten(), minlength=len(centres) + 1)
    small = counts < config.min_pixels * sx * sy
    small[0] = False
    return torch.where(small[labels], 0, labels)


MIN_INNER_PIXELS = 4  # objects with fewer inner pixels are averaged over all of theirs


def instance_estimates(labels: Tensor, box: Tensor, config: PerceptionConfig,
                       pixel_scale: tuple[float, float] = (1.0, 1.0)) -> Tensor:
    """One box estimate per label: the box channels averaged over its inner pixels, decoded.

    Pixels on an object's outline (within one working pixel of another label) are left
    out when at least ``MIN_INNER_PIXELS`` remain: there the upsampled object head mixes in
    its neighbours (on validation videos this cut the mean centre error by a fifth).

    Args:
        labels: (H, W) long, 0 = background (:func:`assign_pixels`).
        box: (13, H, W) float box channels at the same size.
        config: the net's settings (``offset_scale``).
        pixel_scale: (sx, sy) pixels of these maps per working pixel (1 at the working size).

    Returns:
        (L, 10) :data:`ESTIMATE_FIELDS` in these maps' pixels for labels 1..L = ``labels.max()``
        (rows of labels without pixels are NaN).
    """
    L = int(labels.max())
    if L == 0:
        return torch.zeros(0, len(ESTIMATE_FIELDS))
    H, W = labels.shape
    r = max(1, round(max(pixel_scale)))
    window = labels[None, None].float()
    highest = F.max_pool2d(window, 2 * r + 1, 1, r)[0, 0]
    lowest = -F.max_pool2d(-window, 2 * r + 1, 1, r)[0, 0]
    inner = torch.where(highest == lowest, labels, 0)
    enough = torch.bincount(inner.flatten(), minlength=L + 1) >= MIN_INNER_PIXELS
    labels = torch.where(enough[labels], inner, labels)
    flat = labels.flatten()
    count = torch.bincount(flat, minlength=L + 1)[1:].float()[:, None]
    mean = torch.zeros(L + 1, box.shape[0]).index_add_(0, flat, box.flatten(1).T)[1:] / count
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    uv = torch.zeros(L + 1, 2).index_add_(0, flat, torch.stack([u.flatten(), v.flatten()], -1))[1:] / count
    scale = torch.tensor(pixel_scale)
    estimates = decode_estimates(mean, uv[:, 0] / scale[0], uv[:, 1] / scale[1], config.offset_scale)
    estimates[:, 0:4] *= scale.repeat(2)
    return estimates


# --------------------------------------------------------------------------------------
# The trained model as segmenter, depth estimator and box estimator
# --------------------------------------------------------------------------------------

#: The shipped weights: ``weights/perception`` beside the package.
DEFAULT_PERCEPTION_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "perception"
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
FORMAT, VERSION = "neuralassets-perception", 1


@dataclass
class FramePerception:
    """What the net finds in one frame.

    Attributes:
        labels: (H, W) long object labels, 0 = background, 1..K objects.
        scores: (K,) float confidences in [0, 1] (peak height times mean foreground probability).
        estimates: (K, 10) float :data:`ESTIMATE_FIELDS` in the frame's pixels.
        depth: (H, W) float camera-frame depth, metres.
    """

    labels: Tensor
    scores: Tensor
    estimates: Tensor
    depth: Tensor

    def detections(self) -> FrameDetections:
        """The objects as :class:`FrameDetections` (masks, boxes, scores, estimates)."""
        K = int(self.scores.shape[0])
        masks = self.labels[None] == torch.arange(1, K + 1)[:, None, None]
        return FrameDetections.from_masks(masks, self.scores, estimates=self.estimates)


class LearnedPerception:
    """A trained :class:`PerceptionNet` as segmenter, metric depth estimator and 3D box estimator.

    ``segment(frames)`` returns detections that carry per-object box estimates
    (:attr:`FrameDetections.estimates`; :func:`boxes_from_estimates` turns them into world
    boxes once the camera is known), and ``estimate(frames)`` the metric depth; segmenting
    and then estimating depth of the same frames runs the net once.

    Frames of any size are resized so their shorter side is ``config.working_size``
    (rounded to the net's stride); the maps are resized back and objects found at full size.

    Args:
        net: a trained net (put in eval mode).
        batch_size: frames per forward pass.
        estimate_noise: how far this net's box estimates stray (``config.json``'s ``estimate_noise``;
            default: the shipped model's).
    """

    metric = True  # depth in metres

    def __init__(self, net: PerceptionNet, batch_size: int = 8, estimate_noise: EstimateNoise | None = None) -> None:
        self.net, self.config, self.batch_size = net.eval(), net.config, batch_size
        self.estimate_noise = estimate_noise or EstimateNoise()
        self._last: tuple[Tensor, list[FramePerception]] | None = None

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike | None = None, **kwargs) -> LearnedPerception:
        """Load ``folder`` (default :data:`DEFAULT_PERCEPTION_WEIGHTS`): ``config.json`` and ``model.safetensors``.

        Raises:
            WeightsError: the folder, its config or its weights are missing, unreadable or do not match.
        """
        from safetensors.torch import load_file

        folder = Path(folder) if folder is not None else DEFAULT_PERCEPTION_WEIGHTS
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        if not config_path.is_file() or not weights_path.is_file():
            raise WeightsError(f"{folder}: not a perception model folder ({CONFIG_NAME} and {WEIGHTS_NAME} expected)")
        try:
            meta = json.loads(config_path.read_text())
            if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                raise WeightsError(f"{config_path}: not a {FORMAT} version {VERSION} config")
            net = PerceptionNet(PerceptionConfig(**meta["config"]))
            kwargs.setdefault("estimate_noise", EstimateNoise(**meta.get("estimate_noise", {})))
        except (ValueError, TypeError, KeyError, ConfigError) as e:
            raise WeightsError(f"{config_path}: cannot read the perception config ({e})") from None
        try:
            net.load_state_dict(load_file(str(weights_path)))
        except Exception as e:  # safetensors and load_state_dict raise their own error types
            raise WeightsError(f"{weights_path}: cannot load the perception weights ({e})") from None
        return cls(net, **kwargs)

    def save_pretrained(self, folder: str | os.PathLike, **card) -> Path:
        """Write ``config.json`` (the net's config, its ``estimate_noise`` and ``card`` entries, e.g. training data
        and steps) and ``model.safetensors``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(folder / WEIGHTS_NAME))
        meta = {"format": FORMAT, "version": VERSION, "config": asdict(self.config),
                "estimate_noise": asdict(self.estimate_noise), **card}
        (folder / CONFIG_NAME).write_text(json.dumps(meta, indent=1) + "\n")
        return folder

    @torch.no_grad()
    def perceive(self, frames: Tensor) -> list[FramePerception]:
        """Objects, their box estimates and depth in each of ``frames`` (T, 3, H, W) float in [0, 1]."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValidationError(f"LearnedPerception: frames must be (T, 3, H, W), got {tuple(frames.shape)}")
        if self._last is not None and self._last[0].shape == frames.shape and torch.equal(self._last[0], frames):
            return self._last[1]
        out = []
        for i in range(0, frames.shape[0], self.batch_size):
            out.extend(self._perceive_batch(frames[i:i + self.batch_size].float()))
        self._last = (frames.clone(), out)
        return out

    def _perceive_batch(self, frames: Tensor) -> list[FramePerception]:
        cfg = self.config
        B, _, H, W = frames.shape
        stride = 2 ** (len(cfg.widths) - 1)
        scale = cfg.working_size / min(H, W)
        h, w = (max(stride, round(n * scale / stride) * stride) for n in (H, W))
        resized = (h, w) != (H, W)
        images = F.interpolate(frames, size=(h, w), mode="bilinear", antialias=True, align_corners=False) if resized \
            else frames
        maps = self.net(images)
        if cfg.mirror_average:  # the net was trained on mirrored frames too: two views of one frame, averaged
            mirrored = mirror_maps(self.net(images.flip(-1)))
            maps = maps.mean_with(mirrored)
        pixel_scale = (W / w, H / h)
        dense = torch.cat([maps.log_depth[:, None], maps.foreground[:, None], maps.offsets, maps.box], 1)
        if resized:
            dense = F.interpolate(dense, size=(H, W), mode="bilinear", align_corners=False)
        out = []
        for b in range(B):
            centres, heights = find_centres(maps.heat[b], cfg)
            centres = centres * torch.tensor(pixel_scale)
            labels = assign_pixels(dense[b, 1], dense[b, 2:4], centres, cfg, pixel_scale)
            kept = torch.unique(labels)
            kept = kept[kept > 0]
            relabel = torch.zeros(len(centres) + 1, dtype=torch.long)
            relabel[kept] = torch.arange(1, len(kept) + 1)
            labels = relabel[labels]
            estimates = instance_estimates(labels, dense[b, 4:], cfg, pixel_scale)
            probability = torch.sigmoid(dense[b, 1]).flatten()
            count = torch.bincount(labels.flatten(), minlength=len(kept) + 1)[1:].clamp(min=1)
            mean_fg = torch.zeros(len(kept) + 1).index_add_(0, labels.flatten(), probability)[1:] / count
            scores = (heights[kept - 1].clamp(0, 1) * mean_fg).clamp(0, 1)
            out.append(FramePerception(labels, scores, estimates, torch.exp(dense[b, 0])))
        return out

    def segment(self, frames: Tensor) -> list[FrameDetections]:
        """One :class:`FrameDetections` (with ``estimates``) per frame of ``frames`` (T, 3, H, W) float in [0, 1]."""
        return [p.detections() for p in self.perceive(frames)]

    def estimate(self, frames: Tensor) -> Tensor:
        """Metric depth of ``frames`` (T, 3, H, W) float in [0, 1] → (T, H, W) float metres."""
        return torch.stack([p.depth for p in self.perceive(frames)])


def default_perception() -> LearnedPerception | None:
    """The shipped model when ``weights/perception`` holds it, else None (extraction then falls back to the classical stack)."""
    if not (DEFAULT_PERCEPTION_WEIGHTS / WEIGHTS_NAME).is_file():
        return None
    return LearnedPerception.from_pretrained(DEFAULT_PERCEPTION_WEIGHTS)


__all__ = [
    "BOX_CHANNELS", "DEFAULT_PERCEPTION_WEIGHTS", "ESTIMATE_FIELDS", "EstimateNoise", "FramePerception", "LearnedPerception",
    "PerceptionConfig", "PerceptionMaps", "PerceptionNet", "box_estimates", "coordinates", "default_perception",
    "assign_pixels", "boxes_from_estimates", "decode_estimates", "encode_estimates", "find_centres", "flat_box",
    "instance_estimates",
]

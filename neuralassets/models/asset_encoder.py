"""The asset encoder: a :class:`~neuralassets.conditioning.Conditioning` -> asset tokens.

Token layout for a batch with ``N`` object slots and RoIAlign size ``k`` (``k * k`` cells):

    [ null tokens (num_null_tokens) | background (k*k) | object 0 (k*k) | ... | object N-1 (k*k) ]

- **Object tokens**: backbone features of the object's appearance image RoIAligned k×k inside
  its source box (one token per cell, plus a learned cell embedding), each paired with the
  same pose embedding (Fourier features of the 12 target pose numbers -> MLP) and fused to
  the token width.
- **Background tokens**: the background image RoIAligned with the whole-image box, paired
  with an embedding of the 12-number camera motion.
- **Null tokens**: learned and always present, so attention never runs over an empty set
  and "no objects" (classifier-free guidance's null, an empty scene) has a learned meaning.

Padded slots are zeroed and masked (``token_mask`` False): they reach neither attention nor
the pooled summary nor the spatial map, so adding an empty slot leaves the output unchanged.

Optionally (``spatial_channels > 0``) the encoder also rasterises each object's projected
target box onto the latent grid, carrying a projection of that object's appearance
embedding, and (``background_spatial``) adds a projection of the background image's
feature map, resampled to the latent grid; the denoiser concatenates this map to its
noisy latent. The background map is in the background camera's view: the camera-motion
token tells the denoiser how far to shift it. With ``object_feature_map`` each object's
box also carries its source-box feature map, resized into the target box
(:func:`warp_box_features`), so texture arrives where the object goes, not just its mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import Tensor, nn
from torchvision.ops import roi_align

from ..conditioning import Conditioning
from ..errors import ConfigError, ValidationError
from .backbones import VIT_BACKBONES, ConvBackbone, Dinov2Backbone, load_vit, vit_from_config

POSE_DEPTH_INDICES = (2, 5, 8, 11)  # depth entries of the 12 pose numbers (u, v, depth per corner)


@dataclass
class AssetTokens:
    """Output of :class:`AssetEncoder`.

    Attributes:
        tokens: (B, L, token_dim) float; padded slots are zero.
        mask: (B, L) bool, False for padded slots (to be masked out of attention).
        spatial: (B, spatial_channels, h, w) float map on the latent grid, or None.
    """

    tokens: Tensor
    mask: Tensor
    spatial: Tensor | None = None


def fourier_features(x: Tensor, num_frequencies: int) -> Tensor:
    """``[x, sin(2^f pi x), cos(2^f pi x)]`` for f in [0, F).

    Args:
        x: (..., D) float.
        num_frequencies: F; 0 returns ``x`` unchanged.

    Returns:
        (..., D * (1 + 2F)).
    """
    if num_frequencies == 0:
        return x
    freqs = math.pi * 2.0 ** torch.arange(num_frequencies, dtype=x.dtype, device=x.device)
    angles = (x.unsqueeze(-1) * freqs).flatten(-2)
    return torch.cat([x, angles.sin(), angles.cos()], dim=-1)


def box_coverage(boxes: Tensor, height: int, width: int) -> Tensor:
    """Fraction of each grid cell covered by each box.

    Args:
        boxes: (..., 4) normalised ``(x0, y0, x1, y1)`` in [0, 1].
        height, width: grid size; cell (i, j) spans ``[j/w, (j+1)/w] x [i/h, (i+1)/h]``.

    Returns:
        (..., height, width) float in [0, 1].
    """
    def overlap(lo: Tensor, hi: Tensor, n: int) -> Tensor:
        edges = torch.arange(n + 1, dtype=boxes.dtype, device=boxes.device) / n
        return ((torch.minimum(hi[..., None], edges[1:]) - torch.maximum(lo[..., None], edges[:-1])) * n).clamp(min=0)

    ox = overlap(boxes[..., 0], boxes[..., 2], width)
    oy = overlap(boxes[..., 1], boxes[..., 3], height)
    return oy[..., :, None] * ox[..., None, :]


def warp_box_features(features: Tensor, source_boxes: Tensor, target_boxes: Tensor, height: int, width: int) -> Tensor:
    """Resample the features inside each source box so that they fill its target box.

    Cell (i, j) of the output grid at normalised centre ``p`` inside target box ``t`` reads the
    features at ``s0 + (p - t0) * (s1 - s0) / (t1 - t0)`` of its source box ``s`` (bilinear);
    outside the target box the value is whatever lies there by the same mapping, so weight
    the result by :func:`box_coverage` of the target box. Degenerate target boxes give zeros.

    Args:
        features: (M, C, fh, fw) feature grids covering each object's whole image.
        source_boxes, target_boxes: (M, 4) normalised ``(x0, y0, x1, y1)``.
        height, width: the output grid.

    Returns:
        (M, C, height, width).

    Example:
        >>> f = torch.arange(16.0).view(1, 1, 4, 4)
        >>> whole = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        >>> torch.equal(warp_box_features(f, whole, whole, 4, 4), f)
        True
    """
    dtype, device = features.dtype, features.device
    ys = (torch.arange(height, dtype=dtype, device=device) + 0.5) / height
    xs = (torch.arange(width, dtype=dtype, device=device) + 0.5) / width
    src, tgt = source_boxes.to(dtype), target_boxes.to(dtype)
    t_size = tgt[:, 2:] - tgt[:, :2]
    scale = (src[:, 2:] - src[:, :2]) / t_size.clamp(min=1e-6)  # (M, 2) source extent per target extent
    gx = src[:, None, 0] + (xs[None] - tgt[:, None, 0]) * scale[:, None, 0]  # (M, width)
    gy = src[:, None, 1] + (ys[None] - tgt[:, None, 1]) * scale[:, None, 1]  # (M, height)
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1) * 2 - 1
    valid = (t_size > 1e-6).all(dim=1).to(dtype)[:, None, None, None]
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False) * valid


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


class AssetEncoder(nn.Module, ConfigMixin):
    """Conditioning -> asset tokens (see the module docstring for the layout).

    The defaults are the shipped model's encoder. Its arguments are its config
    (``register_to_config``): ``save_config`` writes them, ``from_config`` rebuilds it.

    Args:
        backbone: ``"conv"`` (a small conv net trained jointly), ``"dinov2"`` (transformers ``Dinov2Model``)
            or ``"dino"`` (a DINO ``ViTModel``, e.g. the paper's ViT-B/8).
        backbone_channels: conv: output channels of each stride-2 stage.
        backbone_path: dinov2 / dino: local folder or hub id of the pretrained model (its weights are
            loaded when no ``dinov2_config`` is given).
        backbone_trainable: dinov2 / dino: fine-tune (True) or freeze (False); the paper found fine-tuning best.
        dinov2_image_size: dinov2 / dino: square input side in pixels, a multiple of its patch size.
        dinov2_config: dinov2 / dino: the model's transformers config, filled in when the pretrained model
            is loaded, so saved weights rebuild without ``backbone_path`` (random weights, loaded afterwards).
        roi_size: k: RoIAlign output is k x k, giving k*k appearance tokens per object and for the background.
        pose_frequencies: Fourier bands (2^0..2^(F-1) times pi) on the pose numbers; 0 feeds raw numbers.
        depth_scale: metres that map to 1.0 before the Fourier features.
        hidden_dim: width of the appearance / pose embeddings before fusion.
        token_dim: width of the output tokens (the denoiser's context width).
        num_null_tokens: learned tokens always present (the meaning of "no objects").
        spatial_channels: channels of the spatial conditioning map (measured better than tokens
            only); 0 = tokens only.
        background_spatial: add the background image's features to the spatial map, so visible
            background is copied.
        object_feature_map: also paint source-box features resized into the target box
            (zero-initialised: addable to weights trained without it).

    Raises:
        ConfigError: unknown backbone, dinov2 without a path or stored config, ``roi_size`` < 1,
            or an object feature map without a spatial map.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, backbone: str = "conv", backbone_channels: tuple[int, ...] = (32, 64, 128),
                 backbone_path: str | None = None, backbone_trainable: bool = True, dinov2_image_size: int = 224,
                 dinov2_config: dict | None = None, roi_size: int = 2, pose_frequencies: int = 6, depth_scale: float = 10.0,
                 hidden_dim: int = 256, token_dim: int = 256, num_null_tokens: int = 4, spatial_channels: int = 16,
                 background_spatial: bool = True, object_feature_map: bool = True):
        super().__init__()
        if roi_size < 1:
            raise ConfigError(f"asset_encoder.roi_size: {roi_size} must be >= 1")
        if object_feature_map and spatial_channels < 1:
            raise ConfigError("asset_encoder.object_feature_map: the object feature map is painted on the spatial map, "
                              f"so it needs spatial_channels >= 1 (got {spatial_channels})")
        self.backbone = self._build_backbone()
        k2, hid, dim = roi_size ** 2, hidden_dim, token_dim
        out_channels = self.backbone.out_channels
        self.appearance_proj = nn.Linear(out_channels, hid)
        self.cell_embedding = nn.Parameter(torch.randn(k2, hid) * 0.02)
        self.pose_mlp = _mlp(12 * (1 + 2 * pose_frequencies), hid, hid)
        self.object_fuse = _mlp(2 * hid, hid, dim)
        self.camera_mlp = _mlp(12, hid, hid)
        self.background_fuse = _mlp(2 * hid, hid, dim)
        self.null_tokens = nn.Parameter(torch.randn(num_null_tokens, dim) * 0.02)
        self.spatial_proj = nn.Linear(hid, spatial_channels) if spatial_channels > 0 else None
        self.background_spatial_proj = (nn.Conv2d(out_channels, spatial_channels, 1)
                                        if spatial_channels > 0 and background_spatial else None)
        self.object_feature_proj = None
        if spatial_channels > 0 and object_feature_map:
            self.object_feature_proj = nn.Conv2d(out_channels, spatial_channels, 1)
            nn.init.zeros_(self.object_feature_proj.weight)
            nn.init.zeros_(self.object_feature_proj.bias)

    def _build_backbone(self) -> nn.Module:
        """The conv backbone, or DINOv2 / DINO: from its stored config (random weights) or else pretrained from its path."""
        c = self.config
        if c.backbone == "conv":
            return ConvBackbone(tuple(c.backbone_channels))
        if c.backbone in VIT_BACKBONES:
            if c.dinov2_config is not None:
                model = vit_from_config(c.dinov2_config)
            elif c.backbone_path:
                model, model_config = load_vit(c.backbone_path, VIT_BACKBONES[c.backbone])
                self.register_to_config(dinov2_config=model_config)
            else:
                raise ConfigError(f"asset_encoder.backbone_path: the {c.backbone} backbone needs a folder or hub id")
            return Dinov2Backbone(model, c.dinov2_image_size, c.backbone_trainable)
        raise ConfigError(f"asset_encoder.backbone: {c.backbone!r} is not one of 'conv', {', '.join(map(repr, VIT_BACKBONES))}")

    @property
    def zero_initialised(self) -> tuple[str, ...]:
        """Prefixes of parameters that start at zero, so that they may be missing from weights
        saved without them (``init_from``): the loaded model's output is then unchanged."""
        return ("object_feature_proj.",) if self.object_feature_proj is not None else ()

    @property
    def tokens_per_object(self) -> int:
        return self.config.roi_size ** 2

    def num_tokens(self, max_objects: int) -> int:
        """Sequence length L for ``max_objects`` slots."""
        return self.config.num_null_tokens + (1 + max_objects) * self.tokens_per_object

    def forward(self, cond: Conditioning, spatial_size: tuple[int, int] | None = None) -> AssetTokens:
        """Encode a batch.

        Args:
            cond: batched conditioning (B examples, N slots, S appearance images).
            spatial_size: (h, w) of the latent grid; needed when ``spatial_channels > 0``.

        Returns:
            :class:`AssetTokens` with L = ``num_tokens(N)`` tokens.
        """
        B, N = cond.object_mask.shape
        S = cond.appearance_images.shape[1]
        k = self.config.roi_size
        dtype = self.null_tokens.dtype
        images = torch.cat([cond.appearance_images.flatten(0, 1), cond.background_image]).to(dtype)
        features = self.backbone(images)  # (B*S + B, C, h, w)
        fh, fw = features.shape[-2:]
        scale = torch.tensor([fw, fh, fw, fh], dtype=features.dtype, device=features.device)

        # RoIs: (image index, x0, y0, x1, y1) in feature-grid units; objects first, then backgrounds.
        batch = torch.arange(B, device=features.device)
        object_image = (batch[:, None] * S + cond.object_image_index).flatten()
        object_boxes = cond.object_boxes.flatten(0, 1).to(features.dtype) * scale
        whole = torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=features.dtype, device=features.device) * scale
        rois = torch.cat([
            torch.cat([object_image[:, None].to(features.dtype), object_boxes], dim=1),
            torch.cat([(B * S + batch)[:, None].to(features.dtype), whole.expand(B, 4)], dim=1)])
        cells = roi_align(features, rois, output_size=k, spatial_scale=1.0, sampling_ratio=2, aligned=True)
        cells = self.appearance_proj(cells.flatten(2).transpose(1, 2)) + self.cell_embedding  # (B*N + B, k*k, hid)
        object_cells = cells[:B * N].view(B, N, k * k, cells.shape[-1])  # N may be 0
        background_cells = cells[B * N:]

        poses = cond.object_poses.to(dtype).clone()
        poses[..., POSE_DEPTH_INDICES] = poses[..., POSE_DEPTH_INDICES] / self.config.depth_scale
        pose = self.pose_mlp(fourier_features(poses, self.config.pose_frequencies))  # (B, N, hid)
        keep = cond.object_mask.to(dtype)[..., None, None]
        objects = self.object_fuse(torch.cat([object_cells, pose[:, :, None].expand_as(object_cells)], -1)) * keep

        camera = self.camera_mlp(cond.camera_pose.to(dtype))[:, None].expand_as(background_cells)
        background = self.background_fuse(torch.cat([background_cells, camera], dim=-1))

        tokens = torch.cat([self.null_tokens.expand(B, -1, -1), background, objects.flatten(1, 2)], dim=1)
        always = torch.ones(B, self.config.num_null_tokens + k * k, dtype=torch.bool, device=tokens.device)
        mask = torch.cat([always, cond.object_mask.repeat_interleave(k * k, dim=1)], dim=1)

        spatial = None
        if self.spatial_proj is not None:
            if spatial_size is None:
                raise ValidationError("spatial_size: the (h, w) latent grid is required when spatial_channels > 0")
            coverage = box_coverage(cond.object_target_boxes.to(dtype), *spatial_size) * keep  # (B, N, h, w)
            embedding = self.spatial_proj(object_cells.mean(dim=2))  # (B, N, C)
            spatial = torch.einsum("bnhw,bnc->bchw", coverage, embedding)
            if self.background_spatial_proj is not None:
                background_map = features[B * S:]
                if tuple(background_map.shape[-2:]) != tuple(spatial_size):
                    background_map = F.interpolate(background_map, size=spatial_size, mode="bilinear", align_corners=False)
                spatial = spatial + self.background_spatial_proj(background_map)
            if self.object_feature_proj is not None and N > 0:
                # Project first: cheaper, and a 1x1 conv commutes with bilinear resampling.
                projected = self.object_feature_proj(features[:B * S])
                warped = warp_box_features(projected[object_image], cond.object_boxes.flatten(0, 1),
                                           cond.object_target_boxes.flatten(0, 1), *spatial_size)
                spatial = spatial + torch.einsum("bnchw,bnhw->bchw", warped.view(B, N, *warped.shape[1:]), coverage)
        return AssetTokens(tokens=tokens, mask=mask, spatial=spatial)

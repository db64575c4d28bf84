"""Image backbones that turn appearance and background images into feature grids.

Both backbones map ``(B, 3, H, W)`` images in [0, 1] to ``(B, C, h, w)`` feature grids that
the asset encoder RoIAligns inside object boxes. The grid covers the whole image, so a box
normalised to [0, 1] maps to grid coordinates by multiplying with ``(w, h)``.

- :class:`ConvBackbone`: a small strided conv net (stride 8) trained jointly with the
  denoiser; the default, cheap enough for CPU training.
- :class:`Dinov2Backbone`: a transformers ``Dinov2Model`` (any size) or a DINO ``ViTModel``
  (e.g. ViT-B/8, the paper's), loaded from a local folder or hub id, frozen or fine-tuned; its
  patch tokens form the grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, WeightsError

#: ``asset_encoder.backbone`` names of the transformer backbones -> the transformers ``model_type`` each loads.
VIT_BACKBONES = {"dinov2": "dinov2", "dino": "vit"}
# ImageNet statistics DINO and DINOv2 were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ConvBackbone(nn.Module):
    """Strided conv encoder: one stride-2 conv and one residual block per stage.

    Args:
        channels: output channels of each stage; ``len(channels)`` stages give a stride of
            ``2 ** len(channels)``.
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), _ResidualBlock(c)]
            c_in = c
        layers += [nn.GroupNorm(8, c_in), nn.SiLU()]
        self.net = nn.Sequential(*layers)
        self.out_channels = c_in
        self.stride = 2 ** len(channels)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) float in [0, 1] -> (B, C, H / stride, W / stride)."""
        return self.net(images * 2.0 - 1.0)


class Dinov2Backbone(nn.Module):
    """DINOv2 (or DINO ViT) patch features as a grid.

    Images are resized to ``image_size`` (a multiple of the patch size) and normalised with
    ImageNet statistics; the CLS token is dropped and the patch tokens reshaped to
    ``(B, C, image_size / patch, image_size / patch)``. A ViT's position embeddings are
    interpolated to that size (DINOv2 does so by itself).

    Args:
        model: a ``transformers.Dinov2Model`` or ``ViTModel`` (without its pooling layer).
        image_size: side of the square input in pixels.
        trainable: fine-tune (True) or keep frozen in eval mode without gradients (False).
    """

    def __init__(self, model: nn.Module, image_size: int, trainable: bool):
        super().__init__()
        patch = int(model.config.patch_size)
        if image_size % patch:
            raise ConfigError(f"asset_encoder.dinov2_image_size: {image_size} is not a multiple of the patch size {patch}")
        self.model = model
        self.image_size = image_size
        self.grid = image_size // patch
        self.trainable = trainable
        self.out_channels = int(model.config.hidden_size)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if not trainable:
            self.model.requires_grad_(False)

    def train(self, mode: bool = True) -> Dinov2Backbone:
        super().train(mode)
        if not self.trainable:
            self.model.eval()  # a frozen backbone keeps dropout off in training too
        return self

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) float in [0, 1] -> (B, hidden_size, grid, grid)."""
        x = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                          antialias=True)
        x = (x - self.mean) / self.std
        extra = {"interpolate_pos_encoding": True} if self.model.config.model_type == "vit" else {}
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            tokens = self.model(pixel_values=x, **extra).last_hidden_state[:, 1:]
        B, P, C = tokens.shape
        return tokens.transpose(1, 2).reshape(B, C, self.grid, self.grid)


def load_vit(path: str, model_type: str = "dinov2") -> tuple[nn.Module, dict]:
    """Load a pretrained ``Dinov2Model`` (``model_type`` "dinov2") or DINO ``ViTModel`` ("vit") from a folder or hub id.

    Returns:
        the model and its config as a plain dict (stored with our weights so a saved
        pipeline rebuilds the backbone without the original folder).

    Raises:
        WeightsError: the folder or id cannot be loaded, or holds another kind of model.
    """
    from transformers import AutoConfig, Dinov2Model, ViTModel

    try:
        found = AutoConfig.from_pretrained(path).model_type
        if found != model_type:
            raise WeightsError(f"asset_encoder.backbone_path: {path!r} holds a {found!r} model, expected {model_type!r}")
        model = ViTModel.from_pretrained(path, add_pooling_layer=False) if model_type == "vit" else Dinov2Model.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise WeightsError(f"asset_encoder.backbone_path: cannot load a {model_type} model from {path!r}: {e}") from e
    return model, model.config.to_dict()


def load_frozen_vit(path: str) -> Dinov2Backbone:
    """A frozen DINO (``ViTModel``, e.g. ViT-B/8) or DINOv2 (``Dinov2Model``) folder as a feature grid.

    A ViT sees images at the size its position embeddings were trained for (``config.image_size``,
    224 for DINO); DINOv2 at 224 pixels.

    Args:
        path: a local transformers model folder (or hub id).

    Raises:
        WeightsError: the folder cannot be loaded or holds another kind of model.
    """
    from transformers import AutoConfig

    try:
        model_type = AutoConfig.from_pretrained(path).model_type
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path!r}: cannot load a DINO ViT or DINOv2 model ({e})") from None
    if model_type not in VIT_BACKBONES.values():
        raise WeightsError(f"{path!r}: a {model_type!r} model, expected a DINO ViT or DINOv2 folder")
    model, config = load_vit(path, model_type)
    patch = int(config["patch_size"])
    size = int(config["image_size"]) if model_type == "vit" else 224
    return Dinov2Backbone(model.eval(), max(patch, size - size % patch), trainable=False)


def vit_from_config(config: dict) -> nn.Module:
    """A randomly initialised ``Dinov2Model`` or ``ViTModel`` from a stored config dict (weights are loaded afterwards)."""
    from transformers import Dinov2Config, Dinov2Model, ViTConfig, ViTModel

    if config.get("model_type") == "vit":
        return ViTModel(ViTConfig.from_dict(config), add_pooling_layer=False)
    return Dinov2Model(Dinov2Config.from_dict(config))

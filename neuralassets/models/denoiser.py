"""The denoiser: one signature over diffusers' SD3 transformer or conditional UNet.

:class:`Denoiser` wraps either

- ``SD3Transformer2DModel`` (``kind="transformer"``, the default): latent patches and asset
  tokens attend jointly; a masked attention processor keeps padded token slots out, and the
  masked mean of the tokens is the pooled projection that modulates every block; or
- ``UNet2DConditionModel`` (``kind="unet"``): tokens enter the cross-attention, masked with
  ``encoder_attention_mask``; a pretrained Stable Diffusion UNet (1.5 / 2.1 layout) is
  adapted by projecting the tokens to its cross-attention width (they replace the text
  embedding).

Either way ``forward(latents, timesteps, tokens, token_mask, spatial)`` returns the
prediction with the latent's shape, so the pipeline and the trainer do not care which.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import diffusers_config
from ..errors import ConfigError, WeightsError


@dataclass
class DenoiserConfig:
    """Which diffusers model denoises the latents, and its size."""

    kind: str = "transformer"  # "transformer" (SD3Transformer2DModel, joint attention) or "unet" (UNet2DConditionModel)
    pretrained: str | None = None  # unet: folder of a diffusers UNet2DConditionModel (SD 1.5 / 2.1 layout) to adapt
    num_layers: int = 6  # transformer: joint-attention blocks
    num_heads: int = 4  # transformer: attention heads; width = num_heads * head_dim
    head_dim: int = 64  # transformer: channels per head
    patch_size: int = 2  # transformer: latent pixels per patch side
    block_channels: tuple[int, ...] = (64, 128, 256)  # unet: channels per resolution; cross-attention in all but the first
    layers_per_block: int = 1  # unet: resnet layers per resolution
    unet_heads: int = 8  # unet: attention heads
    model_config: dict | None = None  # filled in when built: the full diffusers config, so saved weights rebuild exactly


class MaskedJointAttnProcessor:
    """SD3 joint attention in which context tokens with ``attention_mask`` False are never attended to.

    ``attention_mask``: (B, L_context) bool over the context tokens; latent tokens are always kept.
    """

    def __call__(self, attn: nn.Module, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        B, n_latent = hidden_states.shape[:2]

        def heads(x: Tensor, norm: nn.Module | None) -> Tensor:
            x = x.view(B, x.shape[1], attn.heads, -1).transpose(1, 2)
            return norm(x) if norm is not None else x

        q = heads(attn.to_q(hidden_states), attn.norm_q)
        k = heads(attn.to_k(hidden_states), attn.norm_k)
        v = heads(attn.to_v(hidden_states), None)
        keep = None
        if encoder_hidden_states is not None:
            q = torch.cat([q, heads(attn.add_q_proj(encoder_hidden_states), attn.norm_added_q)], dim=2)
            k = torch.cat([k, heads(attn.add_k_proj(encoder_hidden_states), attn.norm_added_k)], dim=2)
            v = torch.cat([v, heads(attn.add_v_proj(encoder_hidden_states), None)], dim=2)
            if attention_mask is not None:
                latent_keep = torch.ones(B, n_latent, dtype=torch.bool, device=attention_mask.device)
                keep = torch.cat([latent_keep, attention_mask.bool()], dim=1)[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        out = out.transpose(1, 2).flatten(2).to(q.dtype)
        hidden_states = attn.to_out[1](attn.to_out[0](out[:, :n_latent]))
        if encoder_hidden_states is None:
            return hidden_states
        context = out[:, n_latent:]
        if not attn.context_pre_only:
            context = attn.to_add_out(context)
        return hidden_states, context


class Denoiser(nn.Module):
    """Predicts the diffusion target of noisy latents given asset tokens.

    Build with :meth:`from_config`.
    """

    def __init__(self, config: DenoiserConfig, model: nn.Module, token_proj: nn.Module):
        super().__init__()
        self.config = config
        self.model = model
        self.token_proj = token_proj
        if config.kind == "transformer":
            model.set_attn_processor(MaskedJointAttnProcessor())

    @classmethod
    def from_config(cls, config: DenoiserConfig, latent_channels: int, latent_size: int, token_dim: int,
                    spatial_channels: int = 0, load_pretrained: bool = True) -> Denoiser:
        """Build the diffusers model for latents of ``latent_channels`` x ``latent_size`` x ``latent_size``.

        Args:
            config: the denoiser config; a stored ``model_config`` takes precedence over the size fields.
            latent_channels: autoencoder latent channels (the prediction's channels).
            latent_size: side of the (square) training latent grid.
            token_dim: width of the asset tokens.
            spatial_channels: channels of the spatial map concatenated to the latent input.
            load_pretrained: load ``pretrained`` UNet weights; False builds from ``model_config``
                with random weights (a saved pipeline's weights are loaded afterwards).

        Raises:
            ConfigError: unknown kind, or a pretrained UNet whose channels do not fit.
            WeightsError: ``pretrained`` cannot be loaded.
        """
        from diffusers import SD3Transformer2DModel, UNet2DConditionModel

        in_channels = latent_channels + spatial_channels
        if config.kind == "transformer":
            model_config = config.model_config or dict(
                sample_size=latent_size, patch_size=config.patch_size, in_channels=in_channels,
                out_channels=latent_channels, num_layers=config.num_layers, attention_head_dim=config.head_dim,
                num_attention_heads=config.num_heads, joint_attention_dim=token_dim,
                caption_projection_dim=config.num_heads * config.head_dim, pooled_projection_dim=token_dim,
                pos_embed_max_size=-(-latent_size // config.patch_size))
            model = SD3Transformer2DModel.from_config(model_config)
            token_proj: nn.Module = nn.Identity()
        elif config.kind == "unet":
            if config.pretrained and load_pretrained and config.model_config is None:
                try:
                    model = UNet2DConditionModel.from_pretrained(config.pretrained)
                except (OSError, ValueError) as e:
                    raise WeightsError(f"denoiser.pretrained: cannot load a UNet2DConditionModel from "
                                       f"{config.pretrained!r}: {e}") from e
            else:
                model = UNet2DConditionModel.from_config(config.model_config or _unet_config(
                    config, in_channels, latent_channels, latent_size, token_dim))
            if model.config.in_channels != in_channels or model.config.out_channels != latent_channels:
                raise ConfigError(
                    f"denoiser: the UNet takes {model.config.in_channels} and predicts {model.config.out_channels} channels, "
                    f"but the latents have {latent_channels} (+{spatial_channels} spatial) channels")
            cross_dim = int(model.config.cross_attention_dim)
            token_proj = nn.Identity() if cross_dim == token_dim else nn.Linear(token_dim, cross_dim)
        else:
            raise ConfigError(f"denoiser.kind: {config.kind!r} is not one of 'transformer', 'unet'")
        config = replace(config, model_config=diffusers_config(model))
        return cls(config, model, token_proj)

    def forward(self, latents: Tensor, timesteps: Tensor, tokens: Tensor, token_mask: Tensor,
                spatial: Tensor | None = None) -> Tensor:
        """Predict the diffusion target.

        Args:
            latents: (B, C, h, w) noisy latents.
            timesteps: (B,) float, the scheduler's timesteps (0..1000).
            tokens: (B, L, D) asset tokens.
            token_mask: (B, L) bool, False for padded slots.
            spatial: (B, C_s, h, w) spatial conditioning map, or None when the model has none.

        Returns:
            (B, C, h, w): velocity (flow matching), noise or v, as the scheduler defines.
        """
        x = latents if spatial is None else torch.cat([latents, spatial.to(latents.dtype)], dim=1)
        if self.config.kind == "transformer":
            weights = token_mask.to(tokens.dtype)[..., None]
            pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            return self.model(hidden_states=x, encoder_hidden_states=tokens, pooled_projections=pooled,
                              timestep=timesteps, joint_attention_kwargs={"attention_mask": token_mask},
                              return_dict=False)[0]
        return self.model(x, timesteps, encoder_hidden_states=self.token_proj(tokens),
                          encoder_attention_mask=token_mask, return_dict=False)[0]


def _unet_config(config: DenoiserConfig, in_channels: int, out_channels: int, latent_size: int, token_dim: int) -> dict:
    n = len(config.block_channels)
    return dict(
        sample_size=latent_size, in_channels=in_channels, out_channels=out_channels,
        block_out_channels=tuple(config.block_channels), layers_per_block=config.layers_per_block,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=token_dim, attention_head_dim=config.unet_heads,
        norm_num_groups=min(32, min(config.block_channels)))

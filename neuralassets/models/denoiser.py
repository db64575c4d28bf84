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

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import Tensor, nn

from ..config import diffusers_config
from ..errors import ConfigError, WeightsError


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


class Denoiser(nn.Module, ConfigMixin):
    """Predicts the diffusion target of noisy latents given asset tokens.

    The defaults are the shipped model's denoiser. Its arguments are its config
    (``register_to_config``): ``save_config`` writes them, ``from_config`` rebuilds it.

    Args:
        kind: ``"transformer"`` (``SD3Transformer2DModel``, joint attention) or ``"unet"``
            (``UNet2DConditionModel``).
        pretrained: unet: folder of a diffusers ``UNet2DConditionModel`` (SD 1.5 / 2.1 layout) to
            adapt; loaded when no ``model_config`` is given.
        num_layers: transformer: joint-attention blocks.
        num_heads: transformer: attention heads; width = num_heads * head_dim.
        head_dim: transformer: channels per head.
        patch_size: transformer: latent pixels per patch side.
        block_channels: unet: channels per resolution; cross-attention in all but the first.
        layers_per_block: unet: resnet layers per resolution.
        unet_heads: unet: attention heads.
        model_config: the full diffusers config, filled in when built; it takes precedence over
            the size arguments, so saved weights rebuild exactly.
        latent_channels: autoencoder latent channels (the prediction's channels).
        latent_size: side of the (square) latent grid.
        token_dim: width of the asset tokens.
        spatial_channels: channels of the spatial map concatenated to the latent input.

    Raises:
        ConfigError: unknown kind, or a pretrained UNet whose channels do not fit.
        WeightsError: ``pretrained`` cannot be loaded.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, kind: str = "transformer", pretrained: str | None = None, num_layers: int = 6, num_heads: int = 4,
                 head_dim: int = 64, patch_size: int = 2, block_channels: tuple[int, ...] = (64, 128, 256),
                 layers_per_block: int = 1, unet_heads: int = 8, model_config: dict | None = None, latent_channels: int = 8,
                 latent_size: int = 16, token_dim: int = 256, spatial_channels: int = 16):
        from diffusers import SD3Transformer2DModel, UNet2DConditionModel

        super().__init__()
        in_channels = latent_channels + spatial_channels
        if kind == "transformer":
            model = SD3Transformer2DModel.from_config(model_config or dict(
                sample_size=latent_size, patch_size=patch_size, in_channels=in_channels,
                out_channels=latent_channels, num_layers=num_layers, attention_head_dim=head_dim,
                num_attention_heads=num_heads, joint_attention_dim=token_dim,
                caption_projection_dim=num_heads * head_dim, pooled_projection_dim=token_dim,
                pos_embed_max_size=-(-latent_size // patch_size)))
            model.set_attn_processor(MaskedJointAttnProcessor())
            token_proj: nn.Module = nn.Identity()
        elif kind == "unet":
            if pretrained and model_config is None:
                try:
                    model = UNet2DConditionModel.from_pretrained(pretrained)
                except (OSError, ValueError) as e:
                    raise WeightsError(f"denoiser.pretrained: cannot load a UNet2DConditionModel from {pretrained!r}: {e}") from e
            else:
                model = UNet2DConditionModel.from_config(model_config or _unet_config(
                    tuple(block_channels), layers_per_block, unet_heads, in_channels, latent_channels, latent_size, token_dim))
            if model.config.in_channels != in_channels or model.config.out_channels != latent_channels:
                raise ConfigError(
                    f"denoiser: the UNet takes {model.config.in_channels} and predicts {model.config.out_channels} channels, "
                    f"but the latents have {latent_channels} (+{spatial_channels} spatial) channels")
            cross_dim = int(model.config.cross_attention_dim)
            token_proj = nn.Identity() if cross_dim == token_dim else nn.Linear(token_dim, cross_dim)
        else:
            raise ConfigError(f"denoiser.kind: {kind!r} is not one of 'transformer', 'unet'")
        self.model, self.token_proj = model, token_proj
        self.register_to_config(model_config=diffusers_config(model))

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


def _unet_config(block_channels: tuple[int, ...], layers_per_block: int, heads: int, in_channels: int, out_channels: int,
                 latent_size: int, token_dim: int) -> dict:
    n = len(block_channels)
    return dict(
        sample_size=latent_size, in_channels=in_channels, out_channels=out_channels,
        block_out_channels=block_channels, layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=token_dim, attention_head_dim=heads,
        norm_num_groups=min(32, min(block_channels)))

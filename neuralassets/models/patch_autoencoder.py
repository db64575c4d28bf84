"""A patch autoencoder: pixel (un)shuffle plus residual blocks at low resolution.

The default latent autoencoder. It turns a 128×128 image into an 8×16×16 latent (f = 8)
like Stable Diffusion's ``AutoencoderKL``, with the same interface (``encode(x).latent_dist``,
``decode(z).sample``, ``config.latent_channels`` / ``scaling_factor``, ``save_pretrained``),
but every convolution runs at 1/4 or 1/8 of the image side. Two choices make it train in
minutes on a CPU where ``AutoencoderKL`` took hours:

- pixels enter and leave by space-to-depth (``PixelUnshuffle`` / ``PixelShuffle``) and
  1×1 convolutions, so colour and position pass through linearly from the first step;
- residual blocks normalise with one group over all channels and start as the identity
  (zeroed last convolution), so no normalisation erases an image's colours.

With ``reference_channels = 4`` the decoder also reads a pixel-aligned reference image
(:func:`~neuralassets.pipelines.surface_splatting.object_reference`: the objects' own photo pixels
where the conditioning puts them, and where it put them), in two ways. It enters both
decoder resolutions by space-to-depth and zero-initialised 1×1 convolutions without bias,
so the features know what the reference shows; and a gate computed from the last features
(one value per pixel, sigmoid, starting near 0.02) blends the output towards the
reference's colour where the reference covers the pixel. Copying a sharp pixel is then one
learnt decision instead of a reconstruction through the latent's channels. Where the
reference covers nothing (or none is given) the decoder is exactly the one without the
branch, so the branch can be added to trained weights.

Example:
    >>> import torch
    >>> vae = PatchAutoencoder(latent_channels=8, width=32, num_blocks=1)
    >>> z = vae.encode(torch.zeros(2, 3, 64, 64)).latent_dist.mode()
    >>> tuple(z.shape), tuple(vae.decode(z).sample.shape)
    ((2, 8, 8, 8), (2, 3, 64, 64))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from ..conditioning import REFERENCE_CHANNELS
from ..errors import ConfigError, ValidationError, WeightsError

GATE_INIT_LOGIT = -4.0  # the reference gate starts at sigmoid(-4) = 0.018: nearly the decoder without a reference


class ResidualBlock(nn.Module):
    """``x + conv(silu(conv(silu(norm(x)))))``, the identity at initialisation. (B, C, h, w) -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(self.norm(x)))))


class PatchAutoencoder(ModelMixin, ConfigMixin):
    """Image (B, 3, H, W) in [-1, 1] <-> latent (B, latent_channels, H / 8, W / 8).

    Args:
        in_channels: image channels.
        latent_channels: channels of the latent.
        width: channels at the latent resolution; half of it at twice that resolution.
        num_blocks: residual blocks at the latent resolution (one fewer at twice it).
        scaling_factor: latents are multiplied by this before diffusion (1 / their std).
        reference_channels: channels of the optional reference the decoder takes detail from:
            0 (none) or 4 (:func:`~neuralassets.pipelines.surface_splatting.object_reference`'s colour and coverage).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, in_channels: int = 3, latent_channels: int = 8, width: int = 256, num_blocks: int = 3,
                 scaling_factor: float = 1.0, reference_channels: int = 0):
        super().__init__()
        half = width // 2
        fine_blocks = max(num_blocks - 1, 1)
        self.encoder = nn.Sequential(
            nn.PixelUnshuffle(4), nn.Conv2d(in_channels * 16, half, 1), *[ResidualBlock(half) for _ in range(fine_blocks)],
            nn.PixelUnshuffle(2), nn.Conv2d(half * 4, width, 1), *[ResidualBlock(width) for _ in range(num_blocks)],
            nn.GroupNorm(1, width), nn.SiLU(), nn.Conv2d(width, 2 * latent_channels, 1))
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, width, 1), *[ResidualBlock(width) for _ in range(num_blocks)],
            nn.Conv2d(width, half * 4, 1), nn.PixelShuffle(2), *[ResidualBlock(half) for _ in range(fine_blocks)],
            nn.GroupNorm(1, half), nn.SiLU(), nn.Conv2d(half, in_channels * 16, 1), nn.PixelShuffle(4))
        # Start with a nearly deterministic posterior (std e^-4), so early reconstructions are
        # not drowned in sampling noise; training may widen it.
        head = self.encoder[-1]
        nn.init.zeros_(head.weight[latent_channels:])
        nn.init.constant_(head.bias[latent_channels:], -8.0)
        if reference_channels not in (0, REFERENCE_CHANNELS):
            raise ConfigError(f"reference_channels: {reference_channels} is not 0 or {REFERENCE_CHANNELS} "
                              "(an object reference's colour and coverage)")
        self.reference_coarse = self.reference_fine = self.reference_gate = None
        if reference_channels:
            self.reference_coarse = nn.Sequential(nn.PixelUnshuffle(8), nn.Conv2d(reference_channels * 64, width, 1, bias=False))
            self.reference_fine = nn.Sequential(nn.PixelUnshuffle(4), nn.Conv2d(reference_channels * 16, half, 1, bias=False))
            self.reference_gate = nn.Sequential(nn.Conv2d(half, 16, 1), nn.PixelShuffle(4))
            for branch in (self.reference_coarse, self.reference_fine, self.reference_gate):
                nn.init.zeros_(branch[0 if branch is self.reference_gate else 1].weight)
            nn.init.constant_(self.reference_gate[0].bias, GATE_INIT_LOGIT)
        # where the branches join the decoder: after its first 1x1 convolution, and after its upsampling
        self._joins = {0: "reference_coarse", num_blocks + 2: "reference_fine"}

    @property
    def zero_initialised(self) -> tuple[str, ...]:
        """Prefixes of the reference branch's parameters, which may be missing from weights saved
        without it (a trained decoder given the branch starts close to decoding as before)."""
        return ("reference_coarse.", "reference_fine.", "reference_gate.") if self.reference_coarse is not None else ()

    @property
    def downsampling_factor(self) -> int:
        """Image pixels per latent pixel along each side."""
        return 8

    def encode(self, x: Tensor, return_dict: bool = True) -> AutoencoderKLOutput:
        """(B, 3, H, W) in [-1, 1], H and W multiples of 8 -> posterior over (B, latent_channels, H/8, W/8)."""
        return AutoencoderKLOutput(latent_dist=DiagonalGaussianDistribution(self.encoder(x)))

    def decode(self, z: Tensor, return_dict: bool = True, reference: Tensor | None = None) -> DecoderOutput:
        """(B, latent_channels, h, w) unscaled latents -> ``.sample`` (B, 3, 8h, 8w), about [-1, 1].

        Args:
            z: the latents.
            return_dict: kept for ``AutoencoderKL``'s signature; the output is always a ``DecoderOutput``.
            reference: (B, reference_channels, 8h, 8w) float, or None (the same as all zeros);
                only for a decoder built with ``reference_channels``.
        """
        if reference is None or self.reference_coarse is None:
            if reference is not None:
                raise ValidationError("reference: this autoencoder was built without reference_channels")
            return DecoderOutput(sample=self.decoder(z))
        expected = (len(z), self.config.reference_channels, z.shape[-2] * 8, z.shape[-1] * 8)
        if tuple(reference.shape) != expected:
            raise ValidationError(f"reference: shape {tuple(reference.shape)}, expected {expected}")
        x = z
        for i, layer in enumerate(self.decoder):
            if i == len(self.decoder) - 2:  # the features the last 1x1 convolution reads also decide the gate
                gate = torch.sigmoid(self.reference_gate(x).float())
            x = layer(x)
            if i in self._joins:
                x = x + getattr(self, self._joins[i])(reference.to(x.dtype))
        coverage = reference[:, -1:].float()
        return DecoderOutput(sample=torch.lerp(x.float(), reference[:, :3].float(), gate * coverage))

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruct through the posterior mode: (B, 3, H, W) -> (B, 3, H, W)."""
        return self.decode(self.encode(x).latent_dist.mode()).sample


def takes_reference(vae: nn.Module) -> bool:
    """Whether ``vae``'s decoder reads an object reference (a ``PatchAutoencoder`` built with ``reference_channels``)."""
    return bool(getattr(vae.config, "reference_channels", 0))


def autoencoder_kind(vae: nn.Module) -> str:
    """The ``AutoencoderConfig.kind`` that builds ``vae``: "patch" or "kl"."""
    return "patch" if isinstance(vae, PatchAutoencoder) else "kl"


def autoencoder_class(config: dict) -> type:
    """The autoencoder class a saved ``config.json`` names (``AutoencoderKL`` when it names none)."""
    name = config.get("_class_name", "AutoencoderKL")
    if name == "PatchAutoencoder":
        return PatchAutoencoder
    import diffusers

    if name != "AutoencoderKL":
        raise WeightsError(f"vae config: autoencoder class {name!r} is not one of 'PatchAutoencoder', 'AutoencoderKL'")
    return diffusers.AutoencoderKL

"""Training objectives: the conditional diffusion loss and the autoencoder loss.

Every random draw (noise, noise level, which examples lose their objects) comes from an
explicit generator, so a step is a pure function of (weights, batch, generator state).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..conditioning import Conditioning
from ..models.asset_encoder import AssetEncoder, box_coverage
from ..models.denoiser import Denoiser
from ..models.patch_autoencoder import takes_reference
from ..models.scheduler import is_flow_matching


class ConditionalDenoiser(nn.Module):
    """Asset encoder + denoiser as one trainable module (what the optimiser and DDP see)."""

    def __init__(self, asset_encoder: AssetEncoder, denoiser: Denoiser):
        super().__init__()
        self.asset_encoder = asset_encoder
        self.denoiser = denoiser

    def forward(self, noisy_latents: Tensor, timesteps: Tensor, cond: Conditioning) -> Tensor:
        """(B, C, h, w) noisy latents, (B,) timesteps, B conditionings -> (B, C, h, w) prediction."""
        tokens = self.asset_encoder(cond, spatial_size=tuple(noisy_latents.shape[-2:]))
        return self.denoiser(noisy_latents, timesteps, tokens.tokens, tokens.mask, tokens.spatial)


class DiffusionObjective:
    """Noises clean latents and scores the model's prediction, matching the sampler's scheduler.

    Flow matching (``FlowMatchEulerDiscreteScheduler``): ``x = (1 - s) x0 + s n`` with
    ``s = shift(sigmoid(N(0, 1)))`` (logit-normal, as in SD3), timestep ``1000 s``, target the
    velocity ``n - x0``. DDPM family: uniform integer timesteps, the scheduler's betas,
    target the noise (``epsilon``) or ``v``.

    The squared error is averaged with :func:`object_weights`: latent cells inside the
    target's object boxes count ``object_loss_weight`` times as much as the rest.

    Args:
        scheduler: the pipeline's diffusers scheduler.
        cfg_drop_prob: probability per example of dropping every object (the guidance null).
        object_loss_weight: weight of a latent cell fully inside an object's target box
            (1 = a plain mean).
    """

    def __init__(self, scheduler, cfg_drop_prob: float, object_loss_weight: float = 1.0):
        self.flow = is_flow_matching(scheduler)
        self.cfg_drop_prob = cfg_drop_prob
        self.object_loss_weight = object_loss_weight
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        if self.flow:
            self.shift = float(scheduler.config.shift)
        else:
            from diffusers import DDPMScheduler

            self.ddpm = DDPMScheduler.from_config(scheduler.config)
            self.prediction_type = scheduler.config.prediction_type

    def __call__(self, model: nn.Module, latents: Tensor, cond: Conditioning, generator: torch.Generator) -> Tensor:
        """Weighted mean squared error of one batch.

        Args:
            model: a :class:`ConditionalDenoiser` (possibly wrapped by accelerate).
            latents: (B, C, h, w) clean scaled latents.
            cond: B conditionings.
            generator: CPU generator for every random draw of the step.

        Returns:
            scalar float32 loss.
        """
        B = latents.shape[0]
        # the target frame shows its objects whether or not the conditioning drops them
        weights = object_weights(cond, tuple(latents.shape[-2:]), self.object_loss_weight).to(latents.device)
        drop = torch.rand(B, generator=generator) < self.cfg_drop_prob
        cond = cond.drop_objects(drop.to(cond.object_mask.device))
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        if self.flow:
            sigma = torch.sigmoid(torch.randn(B, generator=generator))
            sigma = self.shift * sigma / (1 + (self.shift - 1) * sigma)
            s = sigma.to(latents).view(B, 1, 1, 1)
            noisy = (1 - s) * latents + s * noise
            timesteps = sigma.to(latents) * self.num_train_timesteps
            target = noise - latents
        else:
            timesteps = torch.randint(0, self.num_train_timesteps, (B,), generator=generator).to(latents.device)
            noisy = self.ddpm.add_noise(latents, noise, timesteps)
            target = noise if self.prediction_type == "epsilon" else self.ddpm.get_velocity(latents, noise, timesteps)
        prediction = model(noisy, timesteps, cond)
        squared_error = (prediction.float() - target.float()).square().mean(dim=1)  # (B, h, w)
        return (squared_error * weights).sum() / weights.sum()


def object_weights(cond: Conditioning, size: tuple[int, int], object_weight: float) -> Tensor:
    """Per-cell loss weights that favour the target frame's objects.

    Args:
        cond: B conditionings; their ``object_target_boxes`` of real objects are used.
        size: (h, w) of the latent grid.
        object_weight: weight of a cell fully inside some object's target box; cells
            outside every box weigh 1, partly covered cells in between.

    Returns:
        (B, h, w) float32 weights ``1 + (object_weight - 1) * coverage``, where coverage is
        the largest fraction of the cell that any one real object's box covers.

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> cond = SimpleNamespace(object_target_boxes=torch.tensor([[[0.0, 0.0, 0.5, 0.25]]]),
        ...                        object_mask=torch.tensor([[True]]))
        >>> object_weights(cond, (2, 2), 3.0)
        tensor([[[2., 1.],
                 [1., 1.]]])
    """
    boxes = cond.object_target_boxes.float()
    coverage = box_coverage(boxes, *size) * cond.object_mask[..., None, None]  # (B, N, h, w)
    coverage = coverage.amax(dim=1) if boxes.shape[1] else coverage.new_zeros(len(boxes), *size)
    return 1 + (object_weight - 1) * coverage


class AutoencoderObjective(nn.Module):
    """The VAE with its loss as ``forward``, so DDP sees one forward per step.

    Loss: L1 reconstruction of a posterior sample plus ``kl_weight`` times the per-element
    KL divergence to N(0, 1). With ``freeze_encoder`` only the decoder learns, so the latent
    space stays that of the encoder (a denoiser trained on it stays valid) and the encoder
    runs without gradients.
    """

    def __init__(self, vae: nn.Module, kl_weight: float, freeze_encoder: bool = False):
        super().__init__()
        self.vae = vae
        self.kl_weight = kl_weight
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            freeze_encoder_of(vae)

    def forward(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """(B, 3, H, W) float in [0, 1] -> scalar float32 loss; ``generator`` draws the posterior sample."""
        x = images * 2 - 1
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            posterior = self.vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(posterior.mean)
        reconstruction = self.vae.decode(z).sample
        kl = posterior.kl().mean() / posterior.mean[0].numel()
        return F.l1_loss(reconstruction.float(), x.float()) + self.kl_weight * kl.float()


def freeze_encoder_of(vae: nn.Module) -> None:
    """Stop gradients to the encoder (AutoencoderKL also maps its output through quant_conv; PatchAutoencoder has none)."""
    for part in (vae.encoder, getattr(vae, "quant_conv", None)):
        if part is not None:
            part.requires_grad_(False)


class DecoderObjective(nn.Module):
    """The VAE decoder's loss on latents a pipeline sampled, as ``forward``; the encoder stays frozen.

    The decoder was trained on the encoder's latents of real frames, but at inference it decodes
    the denoiser's samples, which differ from those in ways it never saw (a few sampling steps
    leave them smoother and slightly off in colour). Loss: L1 between the decoding and the
    pair's true target frame. The first ``round(encoder_fraction * B)`` examples of each batch
    are decoded from the encoder's latents of their targets instead, so reconstruction (and
    any denoiser trained on this latent space) stays as good. A decoder built with
    ``reference_channels`` decodes the samples with their object reference and the encoder's
    latents without one, so it keeps decoding a latent alone as well as it did.

    With references, pixels inside the pasted objects' boxes (the references' coverage) count
    ``object_loss_weight`` times as much as the rest: the reference only helps there, and
    that is where a render is not replaced by the photo's own pixels. ``reference_only``
    trains the reference branch alone (``PatchAutoencoder.zero_initialised``).
    """

    def __init__(self, vae: nn.Module, encoder_fraction: float, object_loss_weight: float = 1.0, reference_only: bool = False):
        super().__init__()
        self.vae = vae.requires_grad_(True)  # a pipeline that sampled with it may have frozen it
        self.encoder_fraction = encoder_fraction
        self.object_loss_weight = object_loss_weight
        freeze_encoder_of(vae)
        if reference_only:  # only the reference branch learns: decoding without a reference stays as it was
            for name, p in vae.named_parameters():
                p.requires_grad_(name.startswith(vae.zero_initialised))

    def forward(self, sampled: Tensor, images: Tensor, references: Tensor | None = None) -> Tensor:
        """Scalar float32 loss.

        Args:
            sampled: (B, C, h, w) unscaled latents sampled by the pipeline for these pairs.
            images: (B, 3, H, W) float in [0, 1], the pairs' true target frames.
            references: (B, 4, H, W) their object references
                (:func:`~neuralassets.pipelines.surface_splatting.object_reference`), used when the
                decoder takes one; None or ignored otherwise.
        """
        x = images * 2 - 1
        k = round(self.encoder_fraction * len(images))
        latents = sampled
        if k:
            with torch.no_grad():
                encoded = self.vae.encode(x[:k]).latent_dist.mode().to(sampled.dtype)
            latents = torch.cat([encoded, sampled[k:]])
        if references is None or not takes_reference(self.vae):
            return F.l1_loss(self.vae.decode(latents).sample.float(), x.float())
        weights = 1 + (self.object_loss_weight - 1) * references[:, -1].float()  # (B, H, W), coverage is the last channel
        references = torch.cat([torch.zeros_like(references[:k]), references[k:]])  # zeros decode as no reference
        error = (self.vae.decode(latents, reference=references).sample.float() - x.float()).abs().mean(dim=1)
        return (error * weights).sum() / weights.sum()

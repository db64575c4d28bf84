"""Keep the pixels an edit did not change: composite a render back onto the photo.

A latent model renders the whole frame through its autoencoder, so even the parts of the
scene an edit leaves alone come back blurred (the autoencoder's ceiling, well below the
photo). When the render's camera is the photo's camera, those parts can be taken from the
photo itself. Which parts are unchanged is read off the render: wherever it matches the
photo *as the autoencoder reproduces it* (both equally blurred), the model drew what was
there before, and the photo's own pixel is that, sharp. Moved, removed and inserted
objects, their shadows and the background they uncover differ from the reconstruction,
so they keep the render. No masks or geometry are needed, and a render that changes
everything (another camera, a new background) simply keeps all of its pixels.

:func:`change_mask` and :func:`keep_unchanged` are pure functions; :class:`KeepUnchanged`
holds their settings for :class:`~neuralassets.pipelines.NeuralAssetsPipeline`.

Example:
    >>> import torch
    >>> photo = torch.zeros(1, 3, 32, 32)
    >>> render = photo.clone(); render[..., 8:16, 8:16] = 1.0  # the edit drew a white square
    >>> out = keep_unchanged(render, photo, reconstruction=photo)
    >>> round(out[0, 0, 10, 10].item(), 2), out[0, 0, 28, 28].item()  # the square kept, the rest the photo
    (1.0, 0.0)
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Mean absolute difference (colour values in [0, 1]) at or below which a pixel counts as unchanged.
UNCHANGED_BELOW = 0.04
#: Difference at or above which a pixel counts as changed; in between the two blend linearly.
CHANGED_ABOVE = 0.12
#: Standard deviation in pixels of the blur applied to the difference first, so that
#: sampling noise and single stray pixels do not flip the decision.
DIFFERENCE_BLUR = 1.5
#: Pixels the changed region grows by (then feathered by half as much), so a changed
#: object's anti-aliased rim and soft shadow edge come from the render too.
GROW = 2


def _blur(x: Tensor, sigma: float) -> Tensor:
    if sigma <= 0:
        return x
    size = 2 * int(3 * sigma + 0.5) + 1
    return kornia.filters.gaussian_blur2d(x, (size, size), (sigma, sigma), border_type="replicate")


def _check_ramp(unchanged_below: float, changed_above: float) -> None:
    if not 0 <= unchanged_below < changed_above:
        raise ValueError(f"expected 0 <= unchanged_below < changed_above, got {unchanged_below}, {changed_above}")


def change_mask(render: Tensor, reconstruction: Tensor, unchanged_below: float = UNCHANGED_BELOW,
                changed_above: float = CHANGED_ABOVE, blur: float = DIFFERENCE_BLUR, grow: int = GROW) -> Tensor:
    """Where a render differs from the photo's reconstruction.

    Args:
        render: (B, 3, H, W) float in [0, 1], the model's render.
        reconstruction: (B, 3, H, W) float in [0, 1], the photo encoded and decoded by the
            same autoencoder (so that both carry its blur).
        unchanged_below, changed_above: the blend ramp on the blurred mean absolute
            colour difference; ``0 <= unchanged_below < changed_above``.
        blur: standard deviation in pixels of the blur on the difference (0: none).
        grow: pixels the changed region is dilated by, then feathered (0: neither).

    Returns:
        (B, 1, H, W) float in [0, 1]: 1 where the render changed the scene, 0 where it did not.

    Raises:
        ValueError: mismatched shapes or a bad ramp.
    """
    if render.shape != reconstruction.shape or render.dim() != 4 or render.shape[1] != 3:
        raise ValueError(f"render {tuple(render.shape)} and reconstruction {tuple(reconstruction.shape)}: "
                         "expected the same (B, 3, H, W) shape")
    _check_ramp(unchanged_below, changed_above)
    difference = _blur((render - reconstruction).abs().mean(1, keepdim=True), blur)
    mask = ((difference - unchanged_below) / (changed_above - unchanged_below)).clamp(0, 1)
    if grow > 0:
        mask = _blur(F.max_pool2d(mask, 2 * grow + 1, stride=1, padding=grow), grow / 2)
    return mask


def keep_unchanged(render: Tensor, photo: Tensor, reconstruction: Tensor, **settings) -> Tensor:
    """The render where it changed the scene, the photo elsewhere, blended by :func:`change_mask`.

    Args:
        render: (B, 3, H, W) float in [0, 1], the model's render.
        photo: (B, 3, H, W) float in [0, 1], the photo the render's background came from, seen
            by the render's camera; NaN where it does not show the scene (those pixels keep
            the render), e.g. after :func:`~neuralassets.pipelines.reprojection.reproject_image`.
        reconstruction: (B, 3, H, W) float in [0, 1], ``photo`` through the model's
            autoencoder (its NaN pixels filled from the render first).
        **settings: passed to :func:`change_mask`.

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    if photo.shape != render.shape:
        raise ValueError(f"photo {tuple(photo.shape)}: expected the render's shape {tuple(render.shape)}")
    unseen = torch.isnan(photo).any(1, keepdim=True)
    mask = torch.where(unseen, 1.0, change_mask(render, reconstruction, **settings))
    return mask * render + (1 - mask) * torch.where(unseen, render, photo)


class KeepUnchanged(nn.Module):
    """:func:`keep_unchanged` with its settings held (see the module's constants for their meaning)."""

    def __init__(self, unchanged_below: float = UNCHANGED_BELOW, changed_above: float = CHANGED_ABOVE,
                 blur: float = DIFFERENCE_BLUR, grow: int = GROW):
        super().__init__()
        self.settings = {"unchanged_below": unchanged_below, "changed_above": changed_above, "blur": blur, "grow": grow}
        _check_ramp(unchanged_below, changed_above)

    def mask(self, render: Tensor, reconstruction: Tensor) -> Tensor:
        """(B, 1, H, W) float in [0, 1], as :func:`change_mask`."""
        return change_mask(render, reconstruction, **self.settings)

    def forward(self, render: Tensor, photo: Tensor, reconstruction: Tensor) -> Tensor:
        """(B, 3, H, W) float in [0, 1], as :func:`keep_unchanged`."""
        return keep_unchanged(render, photo, reconstruction, **self.settings)


__all__ = ["CHANGED_ABOVE", "DIFFERENCE_BLUR", "GROW", "UNCHANGED_BELOW", "KeepUnchanged", "change_mask",
           "keep_unchanged"]

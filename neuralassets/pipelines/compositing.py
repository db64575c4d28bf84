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

:func:`change_mask` and :func:`keep_unchanged` are pure functions; their settings are the
``unchanged_below``, ``changed_above``, ``difference_blur`` and ``grow`` of
:class:`~neuralassets.pipelines.thresholds.RenderThresholds`.

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
from torch import Tensor

from ..image_ops import resize_images
from .thresholds import DEFAULT_THRESHOLDS, RenderThresholds


def _blur(x: Tensor, sigma: float) -> Tensor:
    if sigma <= 0:
        return x
    size = 2 * int(3 * sigma + 0.5) + 1
    return kornia.filters.gaussian_blur2d(x, (size, size), (sigma, sigma), border_type="replicate")


def change_mask(render: Tensor, reconstruction: Tensor, thresholds: RenderThresholds = DEFAULT_THRESHOLDS) -> Tensor:
    """Where a render differs from the photo's reconstruction.

    Args:
        render: (B, 3, H, W) float in [0, 1], the model's render.
        reconstruction: (B, 3, H, W) float in [0, 1], the photo encoded and decoded by the
            same autoencoder (so that both carry its blur).
        thresholds: the blend ramp on the blurred mean absolute colour difference
            (``unchanged_below``, ``changed_above``), the blur (``difference_blur``, 0: none)
            and how far the changed region grows (``grow``, 0: not at all).

    Returns:
        (B, 1, H, W) float in [0, 1]: 1 where the render changed the scene, 0 where it did not.

    Raises:
        ValueError: mismatched shapes.
    """
    if render.shape != reconstruction.shape or render.dim() != 4 or render.shape[1] != 3:
        raise ValueError(f"render {tuple(render.shape)} and reconstruction {tuple(reconstruction.shape)}: "
                         "expected the same (B, 3, H, W) shape")
    t = thresholds
    difference = _blur((render - reconstruction).abs().mean(1, keepdim=True), t.difference_blur)
    mask = ((difference - t.unchanged_below) / (t.changed_above - t.unchanged_below)).clamp(0, 1)
    if t.grow > 0:
        mask = _blur(F.max_pool2d(mask, 2 * t.grow + 1, stride=1, padding=t.grow), t.grow / 2)
    return mask


def keep_unchanged(render: Tensor, photo: Tensor, reconstruction: Tensor, thresholds: RenderThresholds = DEFAULT_THRESHOLDS
                   ) -> Tensor:
    """The render where it changed the scene, the photo elsewhere, blended by :func:`change_mask`, at the photo's size.

    The decision is made at the render's size; the render and the decision are then resized
    to the photo's, so the photo's own pixels are kept at its full resolution.

    Args:
        render: (B, 3, h, w) float in [0, 1], the model's render.
        photo: (B, 3, H, W) float in [0, 1], the photo the render's background came from, seen
            by the render's camera; NaN where it does not show the scene (those pixels keep
            the render), e.g. after :func:`~neuralassets.pipelines.reprojection.reproject_image`.
        reconstruction: (B, 3, h, w) float in [0, 1], ``photo`` at the render's size through the
            model's autoencoder (its NaN pixels filled from the render first).
        thresholds: the decision's settings (:func:`change_mask`).

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    weight = render_weight(render, photo, reconstruction, thresholds)
    return blend(resize_images(render, tuple(photo.shape[-2:])), photo, weight)


def render_weight(render: Tensor, photo: Tensor, reconstruction: Tensor,
                  thresholds: RenderThresholds = DEFAULT_THRESHOLDS) -> Tensor:
    """How much of each pixel :func:`keep_unchanged` takes from the render, at the photo's size (the rest is the photo's).

    Args: as :func:`keep_unchanged`.

    Returns:
        (B, 1, H, W) float in [0, 1]: :func:`change_mask` resized to the photo, and 1 wherever
        the photo is NaN.
    """
    if photo.shape[:2] != render.shape[:2] or photo.dim() != 4:
        raise ValueError(f"photo {tuple(photo.shape)}: expected (B, 3, H, W) with the render's {tuple(render.shape[:2])}")
    unseen = torch.isnan(resize_images(photo, tuple(render.shape[-2:]))).any(1, keepdim=True)
    mask = torch.where(unseen, 1.0, change_mask(render, reconstruction, thresholds))
    return torch.where(torch.isnan(photo).any(1, keepdim=True), 1.0, resize_images(mask, tuple(photo.shape[-2:])))


def blend(render: Tensor, photo: Tensor, weight: Tensor) -> Tensor:
    """``weight`` of the render and the rest of the photo, the render wherever the photo is NaN.

    Args:
        render: (B, 3, H, W) float in [0, 1].
        photo: (B, 3, H, W) float in [0, 1], NaN where it does not show the scene.
        weight: (B, 1, H, W) float in [0, 1], e.g. :func:`render_weight`.

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    return weight * render + (1 - weight) * torch.where(torch.isnan(photo), render, photo)


__all__ = ["blend", "change_mask", "keep_unchanged", "render_weight"]

"""The decoder's pixel reference: each object's source-box pixels resized into its target box.

A latent of 8×16×16 cannot hold the texture of a 20-pixel object, so every render through
the autoencoder is blurred to its ceiling, while the photo the object came from is sharp.
:func:`object_reference` lays that photo's pixels where the conditioning puts the objects:
each object's source box resized into its paste box (``Conditioning.object_paste_boxes``: the
source box moved and scaled as the object's projected 3D box is; the pixel twin of
:func:`~neuralassets.models.asset_encoder.warp_box_features`), nearer objects painted over
farther ones. A decoder built with ``reference_channels`` (see
:class:`~neuralassets.models.patch_autoencoder.PatchAutoencoder`) takes detail from it where
it agrees with the latent.

A resized box stands for the object only while the camera sees the same side of it: an
object moved across the floor or scaled keeps its look, one turned in place or seen from an
orbiting camera does not, and at the latent's resolution the decoder cannot tell the
difference (a turned object has the same colours). So objects whose view changed by more
than ``max_view_change`` degrees (``Conditioning.object_view_change``; unknown counts as
180) are left out, and the decoder draws them from the latent alone.

Channels: the pasted colour in [-1, 1] times the coverage, then the coverage. Where no
object is pasted all channels are 0, exactly what a decoder sees when given no reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..conditioning import Conditioning
from .asset_encoder import POSE_DEPTH_INDICES, box_coverage, warp_box_features

REFERENCE_CHANNELS = 4  # colour (3) and coverage (1)
MAX_VIEW_CHANGE = 15.0  # degrees; measured on validation: 10 and 20 score alike, 30 starts to paste turned objects


def object_reference(cond: Conditioning, size: tuple[int, int], max_view_change: float = MAX_VIEW_CHANGE) -> Tensor:
    """Paste the source-box pixels of every object seen from about the same side into its paste box, far to near.

    Args:
        cond: batched conditioning (B examples, N slots); its images may be of any size.
        size: (H, W) of the reference, the decoder's output size.
        max_view_change: objects whose ``object_view_change`` exceeds this many degrees are left out.

    Returns:
        (B, 4, H, W) float: colour in [-1, 1] times coverage, then coverage in {0, 1} (a pixel
        is covered when its centre lies in the paste box of a real object that is pasted).

    Example:
        >>> from neuralassets.conditioning import Conditioning
        >>> c = Conditioning(appearance_images=torch.ones(1, 1, 3, 8, 8), object_image_index=torch.zeros(1, 1, dtype=torch.long),
        ...                  object_boxes=torch.tensor([[[0.0, 0.0, 0.5, 0.5]]]), object_poses=torch.zeros(1, 1, 12),
        ...                  object_target_boxes=torch.tensor([[[0.5, 0.5, 1.0, 1.0]]]),
        ...                  object_paste_boxes=torch.tensor([[[0.5, 0.5, 1.0, 1.0]]]), object_view_change=torch.zeros(1, 1),
        ...                  object_mask=torch.ones(1, 1, dtype=torch.bool),
        ...                  background_image=torch.zeros(1, 3, 8, 8), camera_pose=torch.zeros(1, 12))
        >>> r = object_reference(c, (8, 8))
        >>> r[0, 3, 4:, 4:].min().item(), r[0, 3, :4].max().item(), r[0, 0, 4:, 4:].min().item()
        (1.0, 0.0, 1.0)
    """
    B, N = cond.object_mask.shape
    H, W = size
    dtype = torch.float32
    reference = torch.zeros(B, REFERENCE_CHANNELS, H, W, dtype=dtype, device=cond.object_mask.device)
    if N == 0:
        return reference
    images = cond.appearance_images.to(dtype)
    picked = images[torch.arange(B, device=images.device)[:, None], cond.object_image_index].flatten(0, 1)  # (B*N, 3, h, w)
    pasted = warp_box_features(picked * 2 - 1, cond.object_boxes.flatten(0, 1), cond.object_paste_boxes.flatten(0, 1), H, W)
    pasted = pasted.view(B, N, 3, H, W)
    pasted_objects = cond.object_mask & (cond.object_view_change <= max_view_change)
    covered = (box_coverage(cond.object_paste_boxes.to(dtype).clamp(0, 1), H, W) > 0.5) & pasted_objects[..., None, None]
    depth = cond.object_poses[..., list(POSE_DEPTH_INDICES)].to(dtype).mean(dim=-1)
    order = depth.masked_fill(~cond.object_mask, float("inf")).argsort(dim=1, descending=True)  # far first, padding first
    rows = torch.arange(B, device=order.device)
    for slot in order.unbind(dim=1):
        here = covered[rows, slot][:, None]  # (B, 1, H, W)
        reference[:, :3] = torch.where(here, pasted[rows, slot], reference[:, :3])
        reference[:, 3:] = torch.where(here, 1.0, reference[:, 3:])
    return reference

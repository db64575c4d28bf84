"""The geometric renderer: an edited Scene drawn from its photos by geometry alone, with no learning.

:class:`GeometricRenderer` takes exactly what the neural pipeline takes for a render (the
scene's :func:`~neuralassets.conditioning.conditioning_from_scene` and
:func:`~neuralassets.conditioning.background_view`) and draws the target view in five steps:

1. Every object the render changes is cut out of the background photo: its mask, grown by
   :data:`~.edit_region.HOLE_DILATION` pixels so its anti-aliased rim goes too, or its whole box where the
   mask is unknown or the scene no longer has the object (a removal). An object drawn from
   that same photo at the pose the photo shows stays in it, rim and all.
2. The rest of the photo is shown from the target camera through the photo's depth
   (:func:`~neuralassets.pipelines.reprojection.reproject_image`); without depth, through the floor plane
   ``z = 0``, a pixel whose ray misses the floor taken as :data:`~.reprojection.FAR_DEPTH` away.
3. What the target sees and the photo does not is filled by OpenCV's Telea inpainting
   (:func:`inpaint`).
4. Every object's photo surface is drawn at its target pose on top, nearest first
   (:func:`~neuralassets.pipelines.surface_splatting.object_reference`: the splat of the pixels the
   object covers in its photo at their depth; the object's 3D box as a stand-in surface where the
   photo's depth or the object's mask is unknown, at any turn).
5. Where the target camera took the photo, every pixel outside what the edit touches (the holes
   of step 1 and where the changed objects are drawn) is the photo's own, bit for bit.

It is the benchmark's ``geometric`` baseline: what depth, masks and boxes give without a
model, so that a learned renderer is measured against the geometry it is handed.

Example:
    >>> from neuralassets.data.synthetic import generate_scene, generator_config
    >>> scene = generate_scene(3, generator_config({"image_size": 32, "num_frames": 2}))
    >>> GeometricRenderer()(scene, target_frame=1, source_frame=0).shape
    torch.Size([3, 32, 32])
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import torch
from torch import Tensor

from ..conditioning import appearance_photos, background_view
from ..image_ops import from_numpy_image, to_numpy_image
from ..scene import Scene
from .edit_region import edit_layout, photo_cut, seen_photo, untouched_photo
from .surface_splatting import object_reference, reference_coverage
from .thresholds import DEFAULT_THRESHOLDS, RenderThresholds

#: Pixels OpenCV's Telea inpainting looks around each hole pixel.
INPAINT_RADIUS = 3


def inpaint(image: np.ndarray, hole: np.ndarray, grow: int = 0) -> np.ndarray:
    """Fill a hole from its surroundings with OpenCV's Telea inpainting.

    Args:
        image: (H, W, 3) uint8.
        hole: (H, W) bool or uint8, nonzero where the pixels are unknown.
        grow: pixels the hole is dilated by first.

    Returns:
        (H, W, 3) uint8; ``image`` itself when the hole is empty.
    """
    hole = (np.asarray(hole) > 0).astype(np.uint8) * 255
    if not hole.any():
        return image
    if grow > 0:
        hole = cv2.dilate(hole, np.ones((2 * grow + 1,) * 2, np.uint8))
    return cv2.inpaint(image, hole, INPAINT_RADIUS, cv2.INPAINT_TELEA)


class GeometricRenderer:
    """Draw an edited Scene from its photos by reprojection, splatting and inpainting (see the module docstring).

    Args:
        thresholds: the tolerances of the drawing (:class:`~neuralassets.pipelines.thresholds.RenderThresholds`);
            by default the pipeline's, except that objects drawn through their box (no depth or
            mask in their photo) are drawn at any turn (``max_view_change`` 180 degrees).
    """

    def __init__(self, thresholds: RenderThresholds | None = None):
        self.thresholds = thresholds or replace(DEFAULT_THRESHOLDS, max_view_change=180.0)

    @torch.no_grad()
    def __call__(self, scene: Scene, target_frame: int, source_frame: int | None = None) -> Tensor:
        """Render ``scene`` as seen at ``target_frame``.

        Args:
            scene: the (edited) scene.
            target_frame: the frame whose camera and poses are drawn.
            source_frame: the frame appearance and background come from (default: each asset's own),
                as in :func:`~neuralassets.conditioning.conditioning_from_scene`.

        Returns:
            (3, H, W) float in [0, 1] at the scene's size.
        """
        layout = edit_layout(scene, target_frame, source_frame, self.thresholds)
        seen = seen_photo(layout.photo, scene, target_frame, self.thresholds)
        reference = object_reference(layout.cond, (scene.height, scene.width), self.thresholds)
        image = torch.where(reference_coverage(reference)[0], (reference[0, :3] + 1) / 2, _inpainted(seen)).clamp(0, 1)
        # Every object is drawn on top, those left where the photo shows them too, so that they hide what moves
        # behind them; outside what the edit touches the photo's own pixels are kept as they are.
        untouched = untouched_photo(layout, seen, scene, target_frame, self.thresholds, boxes=False)
        return image if untouched is None else torch.where(untouched.isnan(), image, untouched)

    def background(self, scene: Scene, target_frame: int, source_frame: int | None = None,
                   stay: set[int] = frozenset()) -> Tensor:
        """The background photo without the objects the render changes, seen by the target camera, holes inpainted.

        Args:
            scene, target_frame, source_frame: as for :meth:`__call__`.
            stay: ids of objects turned in place whose photo pixels stay in it, so that behind the
                surface drawn over them their own pixels show rather than the floor's.

        Returns:
            (3, H, W) float in [0, 1].
        """
        entries = appearance_photos(scene, source_frame)[1]
        photo = photo_cut(scene, target_frame, entries, stay, background_view(scene, target_frame, source_frame))
        return _inpainted(seen_photo(photo, scene, target_frame, self.thresholds))


def _inpainted(seen: Tensor) -> Tensor:
    """(3, H, W) ``seen`` with its NaN pixels filled by :func:`inpaint`."""
    hole = torch.isnan(seen).any(0)
    if not hole.any():
        return seen
    filled = inpaint(to_numpy_image(seen.nan_to_num(0.0)), hole.numpy())
    return torch.where(hole, from_numpy_image(filled), seen)


__all__ = ["INPAINT_RADIUS", "GeometricRenderer", "inpaint"]

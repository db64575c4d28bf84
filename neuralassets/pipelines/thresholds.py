"""The hand-set numbers of the path from a Scene to pixels, in one place.

:class:`RenderThresholds` holds every tolerance and limit the pipeline's pixel steps use:
drawing the objects' photo pixels for the decoder (:mod:`.surface_splatting`), seeing the
background photo from the target camera (:mod:`.reprojection`) and keeping the pixels an
edit left alone (:mod:`.compositing`). Each was measured on the validation split
(docs/MODEL_CHOICES.md); none refers to a particular kind of object. A pipeline holds one
(``NeuralAssetsPipeline.thresholds``); replace it to try other values::

    from dataclasses import replace
    pipe.thresholds = replace(pipe.thresholds, changed_above=0.2)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderThresholds:
    """Tolerances and limits of the render path (units in each comment)."""

    # -- the object reference: each object's photo pixels drawn where the target view sees it (surface_splatting)
    surface_density: int = 2  # surface points per photo pixel along each axis: no gaps where an object is drawn up to 2x larger
    surface_depth_tolerance: float = 0.02  # relative depth within which drawn points count as the nearest surface
    # share of an object's photo surface points (from the photo's depth) that must lie inside its box for the depth to
    # be drawn through; below, depth and box disagree and the box stands in for the surface
    depth_in_box: float = 0.5
    # lowest and highest factor a photo's depth may be scaled by to agree with its objects' boxes
    depth_scale_range: tuple[float, float] = (0.5, 2.0)
    same_point: float = 1e-3  # box-frame distance (box extents) within which the photo's ray enters a box at the same point
    # degrees an object drawn through its box may turn relative to the camera (pasting every seen face cost validation
    # rotation 1.4 dB)
    max_view_change: float = 15.0
    in_place_shift: float = 0.01  # box-centre shift (fraction of the box's diagonal) up to which an object counts as turned in place
    in_place_volume: float = 0.05  # relative change of the box's volume up to which it does (a scaled object does not)
    # share of a turned-in-place object's drawn pixels that must land on its own photo surface at the same pixel and depth
    # for the photo's pixels to be kept there (above 1: never)
    unmoved_share: float = 0.7
    unmoved_colour: float = 0.5  # mean absolute colour difference ([-1, 1] units) between those drawn and photo pixels, at most
    # mean change of that difference between neighbouring pixels, at most: shading varies smoothly, a turned texture does not
    unmoved_roughness: float = 0.12
    # -- the background photo seen by the target camera (reprojection)
    reprojection_depth_tolerance: float = 0.03  # relative depth difference up to which a target pixel counts as seen by the photo
    # -- keeping what an edit did not change (compositing)
    unchanged_below: float = 0.04  # blurred mean absolute difference (colours in [0, 1]) at or below which a pixel is unchanged
    changed_above: float = 0.12  # difference at or above which a pixel is changed; in between the two blend linearly
    difference_blur: float = 1.5  # standard deviation in pixels of the blur on the difference, so noise and stray pixels do not flip it
    grow: int = 2  # pixels the changed region grows by (then feathered by half as much): a changed object's rim and soft shadow edge
    # latent cells the region an edit touches grows by while sampling (outside it the photo's latents are kept): room for
    # the changed objects' shadows and for the model to join what it draws to what it keeps; None: every cell is sampled
    edit_margin: int | None = 1

    def __post_init__(self) -> None:
        if self.edit_margin is not None and self.edit_margin < 0:
            raise ValueError(f"expected edit_margin >= 0 or None, got {self.edit_margin}")
        if not 0 <= self.unchanged_below < self.changed_above:
            raise ValueError(f"expected 0 <= unchanged_below < changed_above, got {self.unchanged_below}, {self.changed_above}")


#: The shipped model's thresholds (the default of every function that takes some).
DEFAULT_THRESHOLDS = RenderThresholds()

__all__ = ["DEFAULT_THRESHOLDS", "RenderThresholds"]

"""Which pixels of the background photo an edit touches, and so which it leaves as they are.

An edit changes a scene in a few places: where a changed object stood in the photo (a moved,
turned, scaled, restyled or removed object's pixels, cut out by :func:`photo_cut`) and where
the changed objects are drawn at their new poses. Seen by the camera that took the photo,
every other pixel shows what the photo shows. Both renderers keep those pixels: the geometric
baseline pastes the photo there, and the neural pipeline keeps the photo's latents there while
it samples (:func:`edit_region`), so that the model draws only what the edit changes. After
decoding, the pipeline keeps the photo's own pixels wherever its render agrees with them, except
a changed object's (:func:`unchanged_photo`): those no longer show the scene.
An object counts as changed unless it is drawn from that photo at the pose the photo shows it
in; nothing here refers to a particular kind of object.

Example:
    >>> from neuralassets import edits
    >>> from neuralassets.data.synthetic import generate_scene, generator_config
    >>> scene = generate_scene(3, generator_config({"image_size": 32, "num_frames": 1}))
    >>> bool(edit_region(scene, 0).any())  # nothing edited: nothing touched
    False
    >>> moved = edits.move(scene, scene.assets[0].id, [0.5, 0.0, 0.0])
    >>> bool(edit_region(moved, 0).any())
    True
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch import Tensor

from ..conditioning import BackgroundView, Conditioning, PhotoEntry, appearance_photos, background_view, conditioning_from_scene
from ..image_ops import box_mask, resize_images
from ..scene import Scene
from .reprojection import floor_depth, reproject_image, same_camera
from .surface_splatting import object_reference, reference_coverage, turned_in_place
from .thresholds import DEFAULT_THRESHOLDS, RenderThresholds

#: Pixels a cut object's hole grows by, so its anti-aliased rim is cut too.
HOLE_DILATION = 1
#: Pose-number difference up to which an object counts as drawn where its photo shows it.
SAME_POSE = 1e-4
#: Pixels by which a box of the background photo may differ from an asset's and still be that asset's.
SAME_BOX = 0.5


class PhotoCut(NamedTuple):
    """The background photo of a render and what of it the render does not keep.

    Attributes:
        view: the photo, its camera, depth and object boxes (:func:`~neuralassets.conditioning.background_view`).
        frame: the scene frame the photo is, if it is one.
        unmoved: ids of the objects drawn from that frame at the pose it shows them in, same camera.
        cut: (H', W') bool pixels of the photo cut out, grown by :data:`HOLE_DILATION`: the changed
            objects', and every object's when the target camera did not take the photo (a model
            draws every object of a moved view).
        stale: (H', W') bool, the part of ``cut`` that no camera sees as the photo shows it: the
            pixels of the objects the edit changed (moved, turned, scaled, restyled or removed),
            grown the same way. It is ``cut`` when the target camera took the photo.
    """

    view: BackgroundView
    frame: int | None
    unmoved: set[int]
    cut: Tensor
    stale: Tensor


class EditLayout(NamedTuple):
    """What a render of an edited scene draws from where (:func:`edit_layout`).

    Attributes:
        cond: the scene's conditioning, one slot per entry.
        entries: the slotted assets and their photos (:func:`~neuralassets.conditioning.appearance_photos`).
        photo: the background photo and the changed objects cut from it.
    """

    cond: Conditioning
    entries: list[PhotoEntry]
    photo: PhotoCut


def edit_layout(scene: Scene, target_frame: int, source_frame: int | None = None,
                thresholds: RenderThresholds = DEFAULT_THRESHOLDS, cond: Conditioning | None = None) -> EditLayout:
    """The conditioning, appearance entries and photo cut of rendering ``scene`` at ``target_frame``.

    Objects turned in place (:func:`~.surface_splatting.turned_in_place`) keep their pixels in
    the photo, so that behind the surface drawn over them their own pixels show rather than
    the floor's. ``cond``: the render's own conditioning of the view (a batch of one, slots in
    the order of :func:`~neuralassets.conditioning.appearance_photos`, more slots than assets
    allowed; a slot left out of it is no object), when the caller has built it; else it is built here.
    """
    entries = appearance_photos(scene, source_frame)[1]
    if cond is None:
        cond = conditioning_from_scene(scene, target_frame, max(1, len(entries)), source_frame)
    in_place = turned_in_place(cond, thresholds)[0].tolist()
    stay = {e.asset.id for e, turned in zip(entries, in_place) if turned and e.frame is not None}
    return EditLayout(cond, entries, photo_cut(scene, target_frame, entries, stay,
                                               background_view(scene, target_frame, source_frame)))


def seen_photo(photo: PhotoCut, scene: Scene, target_frame: int,
               thresholds: RenderThresholds = DEFAULT_THRESHOLDS) -> Tensor:
    """(3, H, W) float in [0, 1] at the scene's size: the background photo less its cut pixels, as the target camera sees it.

    The photo itself when the target camera took it (or a photo of another size stands in for
    the view: resized); else the photo reprojected through its depth
    (:func:`~.reprojection.reproject_image`), without depth through the floor plane ``z = 0``
    (:func:`~.reprojection.floor_depth`). NaN where it does not show what the target camera sees,
    the cut pixels included.
    """
    return _seen(photo.view, photo.cut, scene, target_frame, thresholds)


def unchanged_photo(scene: Scene, target_frame: int, source_frame: int | None = None,
                    thresholds: RenderThresholds = DEFAULT_THRESHOLDS) -> Tensor | None:
    """(3, H, W) float in [0, 1] at the scene's size: the photo a render keeps pixels of where it left the scene unchanged.

    The background photo less the objects the edit changed (:attr:`PhotoCut.stale` of the
    render's :func:`edit_layout`), as the target camera sees it: the photo itself when the
    target camera took it, else reprojected through its depth, which carries the photo's other
    objects' pixels to the new view too; the compositor (:mod:`neuralassets.pipelines.compositing`)
    keeps them where the render agrees. Without depth the photo is carried by the floor plane
    ``z = 0``, which holds no object, so every object is left out (:attr:`PhotoCut.cut`).
    NaN where the photo does not show what the target camera sees.

    Returns:
        The photo, or None when the background is not a photo of the scene
        (``Background.shows_scene`` False, after a background swap): nothing of it is the target view.
    """
    background = scene.background
    if background is not None and not background.shows_scene:
        return None
    photo = edit_layout(scene, target_frame, source_frame, thresholds).photo
    hole = photo.stale if photo.view.depth is not None else photo.cut
    return _seen(photo.view, hole, scene, target_frame, thresholds)


def _seen(view: BackgroundView, hole: Tensor, scene: Scene, target_frame: int, thresholds: RenderThresholds) -> Tensor:
    """``view``'s photo less ``hole`` ((H', W') bool) as ``target_frame``'s camera sees it, NaN where it does not."""
    target = scene.cameras[target_frame]
    image = view.image.float()
    if same_camera(view.camera, target) or tuple(image.shape[-2:]) != (view.camera.height, view.camera.width):
        return resize_images(image.masked_fill(hole, float("nan"))[None], (scene.height, scene.width))[0]
    depth = view.depth if view.depth is not None else floor_depth(view.camera)
    return reproject_image(image, depth.masked_fill(hole, 0.0), view.camera, target, thresholds.reprojection_depth_tolerance)


def untouched_photo(layout: EditLayout, seen: Tensor, scene: Scene, target_frame: int,
                    thresholds: RenderThresholds = DEFAULT_THRESHOLDS, boxes: bool = True) -> Tensor | None:
    """(3, H, W) float in [0, 1]: what the target view shows of the background photo where the edit leaves it alone.

    Args:
        layout: the render's :func:`edit_layout`.
        seen: its :func:`seen_photo`.
        scene, target_frame: the render.
        thresholds: the drawing's tolerances.
        boxes: a changed object may be anywhere in the 2D bounds of its projected 3D box (a
            model draws it from its tokens); False: only where its photo's pixels are drawn
            (the geometric baseline draws nothing else).

    Returns:
        ``seen`` with NaN also where a changed object is at its new pose (every object when the
        camera moved: none is seen where the photo shows it), or None when the background photo
        is not one of the scene's frames (a swapped background) or not of the scene's size.
    """
    photo, entries = layout.photo, layout.entries
    size = tuple(photo.view.image.shape[-2:])
    if photo.frame is None or size != (scene.height, scene.width):
        return None
    changed = torch.zeros_like(layout.cond.object_mask)
    changed[0, :len(entries)] = torch.tensor([e.asset.id not in photo.unmoved for e in entries], dtype=torch.bool)
    changed &= layout.cond.object_mask
    drawn = reference_coverage(object_reference(replace(layout.cond, object_mask=changed), size, thresholds))[0]
    if boxes:
        height, width = size
        bounds = layout.cond.object_target_boxes[0][changed[0]] * torch.tensor([width, height, width, height])
        drawn |= box_mask(bounds, height, width, cover="touch")
    return seen.masked_fill(drawn, float("nan"))


def untouched_view(scene: Scene, target_frame: int, source_frame: int | None = None,
                   thresholds: RenderThresholds = DEFAULT_THRESHOLDS, cond: Conditioning | None = None) -> Tensor | None:
    """:func:`untouched_photo` of rendering ``scene`` at ``target_frame``, from its :func:`edit_layout` (``cond`` as
    there) and :func:`seen_photo`.

    Returns:
        (3, H, W) float in [0, 1] at the scene's size, NaN where the edit may change the view; None
        when the background is not a photo of the scene.
    """
    layout = edit_layout(scene, target_frame, source_frame, thresholds, cond)
    return untouched_photo(layout, seen_photo(layout.photo, scene, target_frame, thresholds), scene, target_frame, thresholds)


def edit_region(scene: Scene, target_frame: int, source_frame: int | None = None,
                thresholds: RenderThresholds = DEFAULT_THRESHOLDS) -> Tensor | None:
    """(H, W) bool at the scene's size: what an edit touches when ``scene`` is rendered at ``target_frame``.

    Outside it the target view shows the background photo (:func:`untouched_view`): the
    photo's own pixels when the target camera took it, else the photo seen through its depth
    or the floor. None when the background is not a photo of the scene (every pixel may change).

    Args:
        scene: the (edited) scene.
        target_frame: the frame rendered.
        source_frame: the frame appearance and background come from (default: each asset's own).
        thresholds: the drawing's tolerances (:class:`~.thresholds.RenderThresholds`).
    """
    untouched = untouched_view(scene, target_frame, source_frame, thresholds)
    return None if untouched is None else untouched.isnan().any(0)


def photo_cut(scene: Scene, target_frame: int, entries: list[PhotoEntry], stay: set[int], view: BackgroundView) -> PhotoCut:
    """The pixels of ``view``'s photo to cut: objects whose pixels there the render does not keep.

    Args:
        scene, target_frame: the render.
        entries: the scene's :func:`~neuralassets.conditioning.appearance_photos` entries.
        stay: ids of objects turned in place, kept in the photo.
        view: the background photo.

    A changed object's mask is cut, or its whole box where its mask is unknown or the scene no
    longer has the object (a removal); where the target camera did not take the photo, every object's.
    """
    height, width = view.image.shape[-2:]
    stale = torch.zeros(height, width, dtype=torch.bool)
    others = torch.zeros(height, width, dtype=torch.bool)  # objects the edit left as the photo shows them
    frame = _photo_frame(scene, view)
    still = frame is not None and same_camera(scene.cameras[frame], scene.cameras[target_frame])
    unmoved: set[int] = set()
    known = []  # boxes of the photo whose object's mask the scene has
    if frame is not None:
        unmoved = _unmoved(scene, frame, target_frame, entries)
        kept = set(unmoved)
        if still:
            kept |= {e.asset.id for e in entries if e.asset.id in stay and e.frame == frame}
        for a in scene.assets:
            if a.masks is not None and float(a.visibility[frame]) > 0:
                known.append(a.boxes_2d[frame])
                if a.id in kept:
                    others |= a.masks[frame]
                else:
                    stale |= a.masks[frame]
    for box in view.object_boxes:
        if not any(torch.allclose(box, k, atol=SAME_BOX) for k in known):
            stale |= box_mask(box[None], height, width, cover="touch")
    grown = _grown(stale)
    return PhotoCut(view, frame, unmoved if still else set(), grown if still else _grown(stale | others), grown)


def _photo_frame(scene: Scene, view: BackgroundView) -> int | None:
    """The frame of ``scene`` that ``view``'s photo is, if it is one."""
    return next((f for f in range(scene.num_frames) if scene.frames[f].shape == view.image.shape
                 and torch.equal(scene.frames[f], view.image)), None)


def _unmoved(scene: Scene, frame: int, target_frame: int, entries: list[PhotoEntry]) -> set[int]:
    """Ids of the objects (of ``entries``) drawn from photo ``frame`` at the pose it shows them in (the box at
    ``target_frame`` as the photo's camera sees it is the photo's), whichever camera the target is."""
    camera = scene.cameras[frame]
    return {e.asset.id for e in entries if e.frame == frame and torch.allclose(
        e.asset.pose_features(target_frame, camera), e.asset.photo_pose(frame, camera), atol=SAME_POSE)}


def _grown(cut: Tensor) -> Tensor:
    """``cut`` (H, W) bool dilated by :data:`HOLE_DILATION` pixels, so an object's anti-aliased rim goes with it."""
    if not cut.any():
        return cut
    return torch.from_numpy(cv2.dilate(cut.numpy().astype(np.uint8), np.ones((2 * HOLE_DILATION + 1,) * 2, np.uint8)) > 0)


__all__ = ["HOLE_DILATION", "EditLayout", "PhotoCut", "edit_layout", "edit_region", "photo_cut", "seen_photo",
           "unchanged_photo", "untouched_photo", "untouched_view"]

"""From a Scene to the tensors that condition the renderer.

:class:`Conditioning` is the contract between data (the generator's training pairs,
extracted or edited scenes) and models (the asset encoder). It holds everything the
asset encoder needs and nothing it has to guess: images already greyed the way the
paper prescribes, normalised source boxes, the 12 pose numbers of every target box,
a padding mask, and the relative camera motion.

Object slots are padded to a fixed ``max_objects``; padded slots have zero boxes, zero
pose and ``object_mask`` False, and the encoder must ignore them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
from torch import Tensor

from . import geometry
from .edits import out_of_view
from .errors import ValidationError
from .image_ops import box_mask, resize_images, resize_maps
from .scene import Asset, Camera, Scene

GREY = 0.5  # fill value for pixels hidden from an encoder (the paper's choice)
#: Channels of an object reference (``pipelines.surface_splatting.object_reference``, read by the decoder): colour (3)
#: and coverage (1).
REFERENCE_CHANNELS = 4


@dataclass
class Conditioning:
    """Asset tokens' inputs for a batch of renders.

    Attributes:
        appearance_images: (B, S, 3, H, W) float in [0, 1]: the S source images that
            appearance is taken from, with pixels outside every object box set to 0.5.
        object_image_index: (B, N) long, which of the S images each object comes from.
        object_boxes: (B, N, 4) float ``(x0, y0, x1, y1)`` of each object in its source
            image, normalised to [0, 1] by the image width and height.
        object_poses: (B, N, 12) float, the target-frame pose numbers
            (:func:`neuralassets.geometry.pose_features`: u/W, v/H, depth in metres for
            corners 0, 1, 2, 4).
        object_target_boxes: (B, N, 4) float, normalised 2D bounds of the projected target
            box, clipped to the image (for spatial conditioning and in-box metrics).
        object_source_poses: (B, N, 12) float, each object's pose numbers in its appearance
            photo (as ``object_poses``, normalised by the photo's size); all 0 when unknown
            (appearance from an image without a pose, and padding).
        object_mask: (B, N) bool, True for real objects, False for padding.
        background_image: (B, 3, H, W) float in [0, 1], the background source with object
            boxes filled with 0.5.
        camera_pose: (B, 12) float, background camera -> target camera transform
            (rotation row-major 9 numbers, then translation in metres).
    """

    appearance_images: Tensor
    appearance_depths: Tensor
    appearance_slots: Tensor
    object_image_index: Tensor
    object_boxes: Tensor
    object_poses: Tensor
    object_target_boxes: Tensor
    object_source_poses: Tensor
    object_mask: Tensor
    background_image: Tensor
    camera_pose: Tensor

    @property
    def batch_size(self) -> int:
        return int(self.object_mask.shape[0])

    @property
    def max_objects(self) -> int:
        return int(self.object_mask.shape[1])

    def to(self, *args, **kwargs) -> Conditioning:
        """Move every tensor (``Tensor.to`` arguments); dtype changes apply to float tensors only."""
        out = {}
        for f in fields(self):
            x = getattr(self, f.name)
            if x.is_floating_point():
                out[f.name] = x.to(*args, **kwargs)
            else:
                device = kwargs.get("device", next((a for a in args if isinstance(a, (str, torch.device))), None))
                out[f.name] = x.to(device) if device is not None else x
        return Conditioning(**out)

    def pin_memory(self) -> Conditioning:
        """Copy in page-locked memory (``DataLoader(pin_memory=True)`` calls this), for faster copies to a GPU."""
        return Conditioning(**{f.name: getattr(self, f.name).pin_memory() for f in fields(self)})

    def select(self, index: Tensor) -> Conditioning:
        """The examples ``index`` ((K,) long, on this Conditioning's device) as a batch of K."""
        return Conditioning(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def drop_objects(self, drop: Tensor) -> Conditioning:
        """Copy with objects removed: all of the selected examples' (classifier-free guidance's null) or single slots.

        Args:
            drop: (B,) bool, True where every object slot becomes padding; or (B, N) bool,
                True for each slot that becomes padding (its pixels in ``appearance_slots``
                stay, as pixels of a padding slot they show no object).
        """
        keep = ~drop if drop.dim() == 2 else (~drop).view(-1, 1)
        return Conditioning(
            appearance_images=self.appearance_images,
            appearance_depths=self.appearance_depths,
            appearance_slots=self.appearance_slots,
            object_image_index=self.object_image_index * keep,
            object_boxes=self.object_boxes * keep.unsqueeze(-1),
            object_poses=self.object_poses * keep.unsqueeze(-1),
            object_target_boxes=self.object_target_boxes * keep.unsqueeze(-1),
            object_source_poses=self.object_source_poses * keep.unsqueeze(-1),
            object_mask=self.object_mask & keep,
            background_image=self.background_image,
            camera_pose=self.camera_pose,
        )

    @staticmethod
    def collate(items: list[Conditioning]) -> Conditioning:
        """Concatenate along the batch; source-image lists are padded to the longest (grey, depth unknown, no object)."""
        S = max(c.appearance_images.shape[1] for c in items)

        def pad(x: Tensor, value: float) -> Tensor:
            if x.shape[1] == S:
                return x
            fill = torch.full((x.shape[0], S - x.shape[1], *x.shape[2:]), value, dtype=x.dtype, device=x.device)
            return torch.cat([x, fill], dim=1)

        padded = {"appearance_images": GREY, "appearance_depths": 0.0, "appearance_slots": -1}
        out = {f.name: torch.cat([getattr(c, f.name) if f.name not in padded else pad(getattr(c, f.name), padded[f.name])
                                  for c in items]) for f in fields(Conditioning)}
        return Conditioning(**out)


def grey_outside(image: Tensor, boxes: Tensor) -> Tensor:
    """Set pixels outside every box to 0.5.

    Args:
        image: (3, H, W) float.
        boxes: (M, 4) pixel boxes ``(x0, y0, x1, y1)``.

    Returns:
        (3, H, W); a copy.
    """
    return image.masked_fill(~box_mask(boxes, image.shape[-2], image.shape[-1]), GREY)


def grey_inside(image: Tensor, boxes: Tensor) -> Tensor:
    """Set pixels inside any box to 0.5.

    Args:
        image: (3, H, W) float.
        boxes: (M, 4) pixel boxes ``(x0, y0, x1, y1)``.

    Returns:
        (3, H, W); a copy.
    """
    return image.masked_fill(box_mask(boxes, image.shape[-2], image.shape[-1]), GREY)


def camera_motion(source: Camera, target: Camera) -> Tensor:
    """(12,) float: the source -> target camera transform (rotation row-major, then translation)."""
    R, t = geometry.relative_pose(source.R, source.t, target.R, target.t)
    return torch.cat([R.flatten(), t])


def slotted_assets(scene: Scene, source_frame: int | None = None, min_visibility: float = 0.0) -> list:
    """The assets that get an object slot, in slot order: those with appearance to take.

    An asset has appearance when it carries its own (``asset.appearance``) or is seen in its
    source frame (``source_frame`` overrides every asset's) with visibility above ``min_visibility``.
    """
    return [a for a in scene.assets if a.appearance is not None
            or a.visibility[a.source_frame if source_frame is None else source_frame] > min_visibility]


class BackgroundView(NamedTuple):
    """The photo a render's background comes from (:func:`background_view`).

    Attributes:
        image: (3, H', W') float in [0, 1], ungreyed.
        camera: the :class:`~neuralassets.scene.Camera` that took it.
        object_boxes: (M, 4) float pixel boxes of the objects in it (greyed out for the encoder).
        depth: (H', W') float camera-frame depth in metres, or None when unknown.
        object_masks: (M, H', W') bool masks of the objects in it when every one is known, else None.
    """

    image: Tensor
    camera: Camera
    object_boxes: Tensor
    depth: Tensor | None
    object_masks: Tensor | None = None


def background_view(scene: Scene, target_frame: int, source_frame: int | None = None,
                    min_visibility: float = 0.0) -> BackgroundView:
    """The photo a render's background comes from.

    That is ``scene.background`` when set, else frame ``source_frame`` or, by
    default, the source frame of the first slotted asset (:func:`slotted_assets`;
    ``target_frame`` when there is none).
    """
    if scene.background is not None:
        bg = scene.background
        return BackgroundView(bg.image, bg.camera, bg.object_boxes, bg.depth)
    if source_frame is None:
        slotted = slotted_assets(scene, None, min_visibility)
        source_frame = slotted[0].source_frame if slotted else target_frame
    boxes = scene.photo_boxes(source_frame)
    depth = scene.depth[source_frame] if scene.depth is not None else None
    masks = None
    if scene.assets and len(boxes) == len(scene.assets) and all(a.masks is not None for a in scene.assets):
        masks = torch.stack([a.masks[source_frame] for a in scene.assets])
    return BackgroundView(scene.frames[source_frame], scene.cameras[source_frame], boxes, depth, masks)


def index_of_photo(photos: list[Tensor], photo: Tensor) -> int | None:
    """Position of the first of ``photos`` with exactly ``photo``'s size and pixels, or None."""
    return next((k for k, p in enumerate(photos) if p is photo or torch.equal(p, photo)), None)


class PhotoEntry(NamedTuple):
    """Where one slotted asset takes its appearance from (:func:`appearance_photos`).

    Attributes:
        asset: the asset.
        photo: index of its photo in the photo list.
        box: (4,) float pixel box of the asset in that photo.
        frame: the scene frame the photo is, or None for an ``asset.appearance`` image.
    """

    asset: Asset
    photo: int
    box: Tensor
    frame: int | None


def appearance_photos(scene: Scene, source_frame: int | None = None, min_visibility: float = 0.0
                      ) -> tuple[list[Tensor], list[PhotoEntry]]:
    """The distinct photos the slotted assets (:func:`slotted_assets`) take their appearance from.

    An asset's photo is its ``appearance`` image or its source frame (``source_frame``
    overrides every asset's); a photo with the same pixels as an earlier one (an appearance
    swapped within one frame) is that one, so the encoder sees it once.

    Returns:
        ``(photos, entries)``: photos (3, H', W') float in [0, 1], ungreyed, in first-use
        order; for each slotted asset in slot order its :class:`PhotoEntry`.
    """
    photos: list[Tensor] = []
    entries = []
    for a in slotted_assets(scene, source_frame, min_visibility):
        if a.appearance is not None:
            frame, photo, box = None, a.appearance.image, a.appearance.box_2d
        else:
            frame = a.source_frame if source_frame is None else source_frame
            photo, box = scene.frames[frame], a.boxes_2d[frame]
        slot = index_of_photo(photos, photo)
        if slot is None:
            slot = len(photos)
            photos.append(photo)
        entries.append(PhotoEntry(a, slot, box, frame))
    return photos, entries


def boxes_in(entries: list[PhotoEntry], photo: int) -> Tensor:
    """(M, 4) pixel boxes of the :func:`appearance_photos` entries that take their appearance from photo ``photo``."""
    boxes = [e.box for e in entries if e.photo == photo]
    return torch.stack(boxes) if boxes else torch.zeros(0, 4)


def conditioning_from_scene(scene: Scene, target_frame: int, max_objects: int,
                            source_frame: int | None = None, min_visibility: float = 0.0) -> Conditioning:
    """Build the conditioning for rendering ``scene`` as seen at ``target_frame``.

    Each asset's appearance comes from its own source (``asset.appearance`` or frame
    ``asset.source_frame``; ``source_frame`` overrides the latter for every asset), its
    pose from its box at ``target_frame`` seen by that frame's camera. The background
    comes from ``scene.background`` or, when it has none, from the source frame.

    Args:
        scene: the scene to render.
        target_frame: frame index whose cameras and poses are rendered.
        max_objects: number of object slots N.
        source_frame: frame to take appearance and background from (default: each asset's own).
        min_visibility: assets whose visibility in their source frame is at or below this
            are left out (they have no appearance to take); 0 keeps every asset seen at all.

    Returns:
        A batch of one.

    Raises:
        ValidationError: the scene is invalid (:meth:`Scene.validate`: e.g. a NaN or negative
            size in a pose), more assets than ``max_objects``, or a frame index out of range.
    """
    scene.validate()
    T = scene.num_frames
    for name, idx in (("target_frame", target_frame), ("source_frame", source_frame)):
        if idx is not None and not 0 <= idx < T:
            raise ValidationError(f"{name}: {idx} is not a frame index in [0, {T})")
    H, W = scene.height, scene.width
    target_cam = scene.cameras[target_frame]

    photos, entries = appearance_photos(scene, source_frame, min_visibility)
    if len(entries) > max_objects:
        raise ValidationError(
            f"scene has {len(entries)} assets but the model has {max_objects} object slots; "
            "remove assets or use a model with more slots")

    N = max_objects
    index = torch.zeros(N, dtype=torch.long)
    boxes = torch.zeros(N, 4)
    poses = torch.zeros(N, 12)
    target_boxes = torch.zeros(N, 4)
    source_poses = torch.zeros(N, 12)
    mask = torch.zeros(N, dtype=torch.bool)
    cam = target_cam
    pixels = torch.tensor([W, H, W, H], dtype=torch.float32)
    for i, (a, slot, box, frame) in enumerate(entries):
        img = photos[slot]
        scale = torch.tensor([img.shape[-1], img.shape[-2]] * 2, dtype=torch.float32)
        index[i] = slot
        boxes[i] = box / scale
        b = a.box(target_frame)
        poses[i] = a.pose_features(target_frame, cam)
        uv, _ = geometry.project_box(b.center, b.size, b.rotation, cam.K, cam.R, cam.t)
        target_boxes[i] = geometry.bounding_box_2d(uv, W, H) / pixels
        if frame is not None:
            source_poses[i] = a.photo_pose(frame, scene.cameras[frame])
        elif a.appearance.pose is not None:
            source_poses[i] = a.appearance.pose
        mask[i] = True

    if not photos:  # no objects: one grey image keeps shapes static
        photos = [torch.full((3, H, W), GREY)]
    depths, slots = surface_maps(scene, photos, entries)
    size_hw = max((img.shape[-2], img.shape[-1]) for img in photos)
    appearance = torch.stack([
        resize_images(grey_outside(img, boxes_in(entries, slot))[None], size_hw)[0] for slot, img in enumerate(photos)])
    depths = torch.stack([resize_maps(d, size_hw) for d in depths])
    slots = torch.stack([resize_maps(k, size_hw) for k in slots])

    view = background_view(scene, target_frame, source_frame, min_visibility)
    background = resize_images(grey_inside(view.image, view.object_boxes)[None], (H, W))[0]

    return Conditioning(
        appearance_images=appearance.unsqueeze(0),
        appearance_depths=depths.unsqueeze(0),
        appearance_slots=slots.unsqueeze(0),
        object_image_index=index.unsqueeze(0),
        object_boxes=boxes.unsqueeze(0),
        object_poses=poses.unsqueeze(0),
        object_target_boxes=target_boxes.unsqueeze(0),
        object_source_poses=source_poses.unsqueeze(0),
        object_mask=mask.unsqueeze(0),
        background_image=background.unsqueeze(0),
        camera_pose=camera_motion(view.camera, target_cam).unsqueeze(0),
    )


def surface_maps(scene: Scene, photos: list[Tensor], entries: list[PhotoEntry]) -> tuple[list[Tensor], list[Tensor]]:
    """Depth and object slots of each :func:`appearance_photos` photo, where the scene knows them.

    Returns:
        depths: per photo (H', W') float metres, 0 where unknown; slots: per photo (H', W')
        int16, the slot (entry index) whose asset the pixel shows in that photo, -1 elsewhere.
    """
    depths = [torch.zeros(p.shape[-2:]) for p in photos]
    slots = [torch.full(p.shape[-2:], -1, dtype=torch.int16) for p in photos]
    for i, (a, photo, _, frame) in enumerate(entries):
        if frame is None:
            mask, depth = a.appearance.mask, a.appearance.depth
        else:
            mask = None if a.masks is None else a.masks[frame]
            depth = None if scene.depth is None else scene.depth[frame]
        if mask is None or depth is None:
            continue
        depths[photo] = torch.where(mask, depth, depths[photo])
        slots[photo] = slots[photo].masked_fill(mask, i)
    return depths, slots


def frame_conditioning(scene: Scene, frame: int, max_objects: int, source_frame: int | None = None) -> Conditioning:
    """:func:`conditioning_from_scene`, with assets out of view at ``frame`` left out.

    An asset whose 3D box is behind the camera or wholly outside the image at ``frame`` has
    its slot turned into padding; the source images stay as they are, so the other objects'
    appearance does not change while it is away.

    Args:
        scene: the scene.
        frame: target frame index.
        max_objects: object slots N.
        source_frame: as in ``conditioning_from_scene``.

    Returns:
        A batch-of-one :class:`Conditioning`.
    """
    cond = conditioning_from_scene(scene, frame, max_objects, source_frame)
    away = torch.zeros(1, max_objects, dtype=torch.bool)
    for slot, asset in enumerate(slotted_assets(scene, source_frame)):
        away[0, slot] = bool(out_of_view(asset, scene, [frame]))
    return cond.drop_objects(away) if bool(away.any()) else cond

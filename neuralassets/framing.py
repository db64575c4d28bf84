"""Seeing a scene through a window of its frame: crops, and the square that letterboxes it.

The model renders squares. A frame of another shape is not squashed into one: the scene is
seen through a square window instead, either one holding the whole frame with bars on two
sides (:func:`letterbox_window`) or one cropped around the part that matters. A window is a
rectangle in the frame's pixel coordinates that may reach past the frame; what lies outside
the frame is filled. :func:`window_scene` turns a scene into the scene a camera with that
window as its image would see: frames, depth, masks and 2D boxes cut (or padded) to it, the
intrinsics' principal point moved, and the pose numbers of the photos re-expressed in the
window. The world, the 3D boxes and the camera poses do not change, so a render of the
windowed scene is the window of a render of the scene.

Example:
    >>> import torch
    >>> letterbox_window(540, 960)
    (0, -210, 960, 750)
    >>> K = torch.tensor([[500.0, 0, 480], [0, 500, 270], [0, 0, 1]])
    >>> window_intrinsics(K, (0, -210, 960, 750))[1, 2].item()  # the principal point moves down by the bar
    480.0
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ValidationError
from .image_ops import resize_images, resize_maps
from .scene import Background, Camera, Scene

#: Colour of the bars a window past the frame shows: mid grey, as the model's empty appearance slots.
FILL = 0.5

Window = tuple[int, int, int, int]


def letterbox_window(height: int, width: int) -> Window:
    """The smallest square window, centred on the frame, that holds the whole ``height`` x ``width`` frame.

    Returns:
        ``(x0, y0, x1, y1)`` pixels; a square frame's window is the frame itself.
    """
    side = max(height, width)
    x0, y0 = -((side - width) // 2), -((side - height) // 2)
    return x0, y0, x0 + side, y0 + side


def window_intrinsics(K: Tensor, window: Window) -> Tensor:
    """(3, 3) intrinsics of the camera whose image is ``window`` of the image of ``K`` (same focal lengths)."""
    out = K.clone()
    out[0, 2] -= window[0]
    out[1, 2] -= window[1]
    return out


def cut(images: Tensor, window: Window, fill: float | bool = FILL) -> Tensor:
    """The ``window`` of images, padded with ``fill`` where it reaches past them.

    Args:
        images: (..., H, W) any dtype.
        window: ``(x0, y0, x1, y1)`` pixels, ``x0 < x1`` and ``y0 < y1``.
        fill: value of the pixels outside the images.

    Returns:
        (..., y1 - y0, x1 - x0), the dtype of ``images``.
    """
    x0, y0, x1, y1 = window
    H, W = images.shape[-2:]
    pads = (max(-x0, 0), max(x1 - W, 0), max(-y0, 0), max(y1 - H, 0))
    inside = images[..., max(y0, 0):min(y1, H), max(x0, 0):min(x1, W)]
    if not any(pads):
        return inside.clone()
    flat = inside.reshape(-1, *inside.shape[-2:])
    if flat.dtype == torch.bool:
        return F.pad(flat.to(torch.uint8), pads, value=int(fill)).bool().reshape(*images.shape[:-2], y1 - y0, x1 - x0)
    return F.pad(flat, pads, value=fill).reshape(*images.shape[:-2], y1 - y0, x1 - x0)


def _window_camera(camera: Camera, window: Window) -> Camera:
    return Camera(window_intrinsics(camera.K, window), camera.R, camera.t, window[2] - window[0], window[3] - window[1])


def _window_poses(poses: Tensor, image_size: tuple[int, int], window: Window) -> Tensor:
    """(..., 12) pose numbers normalised by an ``image_size`` (H, W) image, re-normalised by ``window``."""
    H, W = image_size
    x0, y0, x1, y1 = window
    out = poses.clone().unflatten(-1, (4, 3))
    out[..., 0] = (out[..., 0] * W - x0) / (x1 - x0)
    out[..., 1] = (out[..., 1] * H - y0) / (y1 - y0)
    return out.flatten(-2)


def _shift_boxes(boxes: Tensor, window: Window) -> Tensor:
    """(..., 4) pixel boxes moved into the window and clipped to it."""
    x0, y0, x1, y1 = window
    shifted = boxes - torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype)
    limits = torch.tensor([x1 - x0, y1 - y0] * 2, dtype=boxes.dtype)
    return torch.minimum(shifted.clamp(min=0), limits)


def window_scene(scene: Scene, window: Window) -> Scene:
    """The scene as seen through ``window`` of its frame (a crop, or a larger canvas with bars).

    Args:
        scene: the scene; not modified.
        window: ``(x0, y0, x1, y1)`` integer pixels of the frame, ``x0 < x1``, ``y0 < y1``; it
            may reach past the frame (those pixels show :data:`FILL`, unknown depth, no object).

    Returns:
        A new scene of ``(x1 - x0) x (y1 - y0)`` frames whose cameras have their principal point
        moved by the window's corner. Appearance photos brought from other scenes and a
        swapped-in background keep their own images; a background photo of the scene's own
        frame is windowed like the frames.

    Raises:
        ValidationError: an empty window.
    """
    window = tuple(int(v) for v in window)
    if window[2] <= window[0] or window[3] <= window[1]:
        raise ValidationError(f"window: expected (x0, y0, x1, y1) with x0 < x1 and y0 < y1, got {window}")
    size = (scene.height, scene.width)
    assets = []
    for a in scene.assets:
        a = a.copy()
        a.boxes_2d = _shift_boxes(a.boxes_2d, window)
        a.masks = None if a.masks is None else cut(a.masks, window, False)
        a.observed_poses = None if a.observed_poses is None else _window_poses(a.observed_poses, size, window)
        assets.append(a)
    background = scene.background
    if background is not None and tuple(background.image.shape[-2:]) == size and background.shows_scene:
        background = Background(cut(background.image, window), _window_camera(background.camera, window),
                                _shift_boxes(background.object_boxes, window), copy.deepcopy(background.attributes),
                                None if background.depth is None else cut(background.depth, window, 0.0), True)
    else:
        background = copy.deepcopy(background)
    return replace(scene, frames=cut(scene.frames, window), cameras=[_window_camera(c, window) for c in scene.cameras],
                   assets=assets, background=background,
                   depth=None if scene.depth is None else cut(scene.depth, window, 0.0),
                   metadata=copy.deepcopy(scene.metadata),
                   removed_boxes=None if scene.removed_boxes is None else _shift_boxes(scene.removed_boxes, window))


def centre_square_window(height: int, width: int) -> Window:
    """The largest square window centred on a ``height`` x ``width`` frame, inside it (a crop, no bars)."""
    side = min(height, width)
    x0, y0 = (width - side) // 2, (height - side) // 2
    return x0, y0, x0 + side, y0 + side


def resized_scene(scene: Scene, height: int, width: int) -> Scene:
    """The scene with frames of ``height`` x ``width`` pixels: what a camera of proportionally scaled intrinsics sees.

    Frames are resized antialiased-bilinearly, depth and masks nearest pixel; 2D boxes and the
    intrinsics' rows scale with their axis. The world, the 3D boxes and the camera poses do not
    change, and the photos' pose numbers are normalised by the image size, so they stay too.

    Args:
        scene: the scene; not modified.
        height, width: the new frame size, pixels (>= 1).

    Returns:
        A new scene.

    Raises:
        ValidationError: a size below one pixel.
    """
    if height < 1 or width < 1:
        raise ValidationError(f"size: expected at least 1x1 pixels, got {width}x{height}")
    sy, sx = height / scene.height, width / scene.width
    scale = torch.tensor([sx, sy, sx, sy])

    def camera(c: Camera) -> Camera:
        K = c.K.clone()
        K[0] *= sx
        K[1] *= sy
        return Camera(K, c.R, c.t, width, height)

    assets = []
    for a in scene.assets:
        a = a.copy()
        a.boxes_2d = a.boxes_2d * scale
        a.masks = None if a.masks is None else resize_maps(a.masks, (height, width))
        assets.append(a)
    background = copy.deepcopy(scene.background)
    if background is not None and tuple(background.image.shape[-2:]) == (scene.height, scene.width) and background.shows_scene:
        background = Background(resize_images(background.image[None], (height, width))[0], camera(background.camera),
                                background.object_boxes * scale, background.attributes,
                                None if background.depth is None else resize_maps(background.depth, (height, width)), True)
    return replace(scene, frames=resize_images(scene.frames, (height, width)).clamp(0, 1),
                   cameras=[camera(c) for c in scene.cameras], assets=assets, background=background,
                   depth=None if scene.depth is None else resize_maps(scene.depth, (height, width)),
                   metadata=copy.deepcopy(scene.metadata),
                   removed_boxes=None if scene.removed_boxes is None else scene.removed_boxes * scale)


__all__ = ["FILL", "Window", "centre_square_window", "cut", "letterbox_window", "resized_scene", "window_intrinsics",
           "window_scene"]

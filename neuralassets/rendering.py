"""Rendering a Scene's frames as a video, with the model or the synthetic generator's exact renderer.

:func:`render_video` renders every frame with the *same* initial noise, so consecutive
frames differ only where the conditioning does, and takes appearance and background from
the same source for every frame: an object keeps its looks through the whole video, also
after leaving the view and coming back. Frames are batched through
:meth:`~neuralassets.pipelines.NeuralAssetsPipeline.render`.

Example (``scene`` a Scene, ``pipe`` a loaded pipeline)::

    from neuralassets.animation import Keyframes, animate

    video = animate(scene, Keyframes.spin(asset_id=2, num_frames=16), 16)
    frames = render_video(pipe, video, out="spin.gif", seed=0)  # (16, 3, H, W)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from .conditioning import Conditioning, conditioning_from_scene, slotted_assets
from .edits import out_of_view
from .errors import ValidationError, VideoError
from .image_ops import resize_images
from .pipelines.reprojection import unchanged_reference
from .scene import Scene
from .video import write_video

#: Frames per second of written videos unless told otherwise.
DEFAULT_FPS = 12.0
#: File formats :func:`render_video` writes.
VIDEO_FORMATS = (".mp4", ".gif")


def frame_conditioning(scene: Scene, frame: int, max_objects: int, source_frame: int | None = None) -> Conditioning:
    """:func:`~neuralassets.conditioning.conditioning_from_scene`, with assets out of view at ``frame`` left out.

    An asset whose 3D box is behind the camera or wholly outside the image at ``frame`` has
    its slot turned into padding; the source images stay as they are, so the other objects'
    appearance does not change while it is away.

    Args:
        scene: the scene.
        frame: target frame index.
        max_objects: object slots N.
        source_frame: as in ``conditioning_from_scene``.

    Returns:
        A batch-of-one :class:`~neuralassets.conditioning.Conditioning`.
    """
    cond = conditioning_from_scene(scene, frame, max_objects, source_frame)
    away = torch.zeros(1, max_objects, dtype=torch.bool)
    for slot, asset in enumerate(slotted_assets(scene, source_frame)):
        away[0, slot] = bool(out_of_view(asset, scene, [frame]))
    return cond.drop_objects(away) if bool(away.any()) else cond


def render_video(pipe, scene: Scene, frames: Sequence[int] | None = None, *, fps: float = DEFAULT_FPS,
                 out: str | os.PathLike | None = None, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, seed: int = 0, source_frame: int | None = None, batch_size: int = 8,
                 progress: bool = True, renderer: Callable | None = None, keep_unchanged: bool = True) -> Tensor:
    """Render frames of ``scene`` as a temporally consistent video.

    Args:
        pipe: a :class:`~neuralassets.pipelines.NeuralAssetsPipeline`, or None with ``renderer``.
        scene: the scene to render (e.g. from :func:`neuralassets.animation.animate`); not modified.
        frames: frame indices to render, in order (default: all).
        fps: frame rate of the written file.
        out: ``.mp4`` or ``.gif`` path to write (:func:`neuralassets.video.write_video`), or None.
        num_inference_steps, guidance_scale: sampling settings (default: the model's).
        seed: seeds the one initial noise shared by every frame.
        source_frame: frame every asset's appearance and the background come from (default:
            each asset's own source frame; the background comes from the first asset's, as in
            ``conditioning_from_scene``). Assets out of view at a frame are left out of it
            (:func:`frame_conditioning`).
        batch_size: frames per denoising batch.
        progress: show a progress bar over frames.
        renderer: instead of the model, a renderer called as ``renderer(scene, frames=[...])``
            whose ``.rgb`` holds (F, 3, H, W) images, e.g. the generator's exact
            :func:`neuralassets.data.render` (ground-truth video of a synthetic scene).
        keep_unchanged: keep the background photo's pixels where a frame's render leaves the
            scene unchanged, the photo seen by that frame's camera (``unchanged_reference``,
            ``NeuralAssetsPipeline.keep_unchanged``).

    Returns:
        (T, 3, H, W) float in [0, 1] at the scene's size (model renders are resized to it).

    Raises:
        ValidationError: neither or both of ``pipe`` and ``renderer``, an empty or bad frame
            list, or a bad setting.
        VideoError: ``out`` is not an ``.mp4`` or ``.gif`` path (checked before rendering).
    """
    if (pipe is None) == (renderer is None):
        raise ValidationError("render_video: give a pipeline or a renderer (exactly one)")
    frames = list(range(scene.num_frames)) if frames is None else [int(f) for f in frames]
    if not frames:
        raise ValidationError("frames: empty; expected at least one frame index")
    bad = [f for f in frames if not 0 <= f < scene.num_frames]
    if bad:
        raise ValidationError(f"frames: {bad[:5]} are not frame indices of a {scene.num_frames}-frame scene")
    if batch_size < 1:
        raise ValidationError(f"batch_size: expected >= 1, got {batch_size}")
    if out is not None and Path(out).suffix.lower() not in VIDEO_FORMATS:
        raise VideoError(f"{out}: cannot write {Path(out).suffix!r}; expected one of {', '.join(VIDEO_FORMATS)}")
    noise = None
    if pipe is not None:
        shape = (1, int(pipe.vae.config.latent_channels), pipe.latent_size, pipe.latent_size)
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))
    images = []
    with tqdm(total=len(frames), desc="render video", unit="frame", disable=not progress, leave=False) as bar:
        for start in range(0, len(frames), batch_size):
            chunk = frames[start:start + batch_size]
            if renderer is not None:
                rendered = renderer(scene, frames=chunk).rgb
            else:
                cond = Conditioning.collate([frame_conditioning(scene, f, pipe.config.max_objects, source_frame) for f in chunk])
                photos = [unchanged_reference(scene, f, source_frame) for f in chunk] if keep_unchanged else None
                rendered = pipe.render(cond, num_inference_steps, guidance_scale, latents=noise.expand(len(chunk), -1, -1, -1),
                                       unchanged_from=photos)
            images.append(rendered.float().cpu())
            bar.update(len(chunk))
    # the model renders squares at its own size; videos match the scene they show
    video = resize_images(torch.cat(images), (scene.height, scene.width)).clamp(0, 1)
    if out is not None:
        write_video(Path(out), video, fps=fps)
    return video


__all__ = ["DEFAULT_FPS", "VIDEO_FORMATS", "frame_conditioning", "render_video"]

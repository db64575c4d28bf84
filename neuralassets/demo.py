"""The showcase behind ``neuralassets demo``: extract a sample video, edit it, compare the model with ground truth.

:func:`run_demo` generates a test-split scene of the synthetic generator (never used for
training), extracts its objects with :func:`neuralassets.perception.extract` (the
ground-truth segmenter, depth lifting, the known cameras), applies a showcase of edits to
the extracted scene and, for the exact re-render, the same edits to the generator's scene,
and writes a labelled before / ground truth / model grid and a side-by-side animation.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from . import edits
from .animation import Keyframe, Keyframes, animate
from .errors import ValidationError
from .image_ops import from_numpy_image, to_numpy_image
from .scene import Scene
from .video import write_video

#: Test-split scene index of the sample video and of the scene whose background is swapped in.
SAMPLE_INDEX, BACKGROUND_INDEX = 4, 1
#: Frames of the generator's 24-frame video given to extraction (every third: its whole motion).
SAMPLE_FRAMES = tuple(range(0, 24, 3))
#: Frames of the demo animation and its frame rate.
ANIMATION_FRAMES, ANIMATION_FPS = 8, 8.0
#: Pixels per scene pixel in the written images.
SCALE = 2
#: Metres the "move" edit and the animation slide an object, across the image.
SLIDE = 0.8


@dataclass
class DemoResult:
    """What :func:`run_demo` wrote and how long it took.

    Attributes:
        grid: PNG, one row per edit: before | ground truth | model.
        gif, mp4: the animation, ground truth | model side by side.
        scene: the extracted Scene as a zip (open it in ``neuralassets editor``).
        seconds: wall time of the whole demo.
    """

    grid: Path
    gif: Path
    mp4: Path
    scene: Path
    seconds: float


#: An edit of the showcase: (scene, generator id -> the scene's asset id) -> edited scene.
Showcase = list[tuple[str, Callable[[Scene, dict[int, int]], Scene]]]


def sample_scenes() -> tuple[Scene, Scene]:
    """The sample video (:data:`SAMPLE_FRAMES` of test scene :data:`SAMPLE_INDEX`) and the background donor's first frame."""
    from .data import generate_scene, split_seed

    sample = generate_scene(split_seed("test", SAMPLE_INDEX), frames=list(SAMPLE_FRAMES))
    sample.metadata["name"] = f"test scene {SAMPLE_INDEX}"
    donor = generate_scene(split_seed("test", BACKGROUND_INDEX), frames=[0])
    donor.metadata["name"] = f"test scene {BACKGROUND_INDEX}"
    return sample, donor


def extract_sample(sample: Scene) -> tuple[Scene, dict[int, int]]:
    """Extract ``sample``'s objects from its frames; returns the scene and generator id -> extracted id.

    Uses the generator's masks as the segmenter, its depth for lifting and its cameras, so
    the extracted boxes live in the generator's world frame and edits mean the same in both.
    """
    from .perception import GroundTruthSegmenter, extract

    scene = extract(sample.frames, segmenter=GroundTruthSegmenter(sample), camera=sample.cameras, depth=sample.depth)
    scene.metadata["name"] = sample.metadata.get("name", "sample")
    return scene, {int(a.attributes["track_id"]): a.id for a in scene.assets}


def showcase(sample: Scene, donor: Scene, ids: dict[int, int]) -> tuple[Showcase, Keyframes, list[int]]:
    """The edits shown, chosen for ``sample``: move, rotate, remove, swap appearance, background swap.

    Objects are ranked by their visible area in frame 0 (only those extracted); the largest
    is rotated and animated, the second moved, the third removed, the first two swapped.

    Returns:
        The labelled edits, the animation's keyframes (generator ids) and the ranked generator ids.
    """
    ranked = sorted((a for a in sample.assets if a.id in ids and float(a.visibility[0]) > 0.3),
                    key=lambda a: -int(a.masks[0].sum()))
    if len(ranked) < 3:
        raise ValidationError(f"{sample.metadata.get('name', 'sample')}: needs 3 objects seen in frame 0, found {len(ranked)}")
    first, second, third = (a.id for a in ranked[:3])
    cam = sample.cameras[0]

    def toward_centre(asset_id: int) -> float:
        u = float(cam.project(sample.asset(asset_id).centers[0][None])[0][0, 0])
        return SLIDE if u < sample.width / 2 else -SLIDE

    name = lambda i: sample.asset(i).name  # noqa: E731
    shift = toward_centre(second)
    edits_shown: Showcase = [
        ("no edit (reconstruction)", lambda s, m: s),
        (f"move the {name(second)} {abs(shift):.1f} m {'right' if shift > 0 else 'left'}",
         lambda s, m: edits.move(s, m[second], (shift, 0.0), frame_of_reference="camera", check_visibility="ignore")),
        (f"turn the {name(first)} by 90 degrees", lambda s, m: edits.rotate(s, m[first], yaw=math.pi / 2, check_visibility="ignore")),
        (f"remove the {name(third)}", lambda s, m: edits.remove(s, m[third])),
        (f"swap the looks of the {name(first)} and the {name(second)}", lambda s, m: edits.swap_appearance(s, m[first], m[second])),
        (f"background of {donor.metadata['name']}", lambda s, m: edits.swap_background(s, donor, 0)),
    ]
    # the vertical axis is the only one every shape turns about without leaving the floor
    right = cam.R[0] * torch.tensor([1.0, 1.0, 0.0])  # the camera's right along the floor
    slide = Keyframe(offset=tuple((toward_centre(first) * right / right.norm()).tolist()), yaw=math.pi / 2)
    keys = Keyframes(assets={first: {0: Keyframe(), ANIMATION_FRAMES - 1: slide}}, interpolation="smooth")
    return edits_shown, keys, [a.id for a in ranked]


def run_demo(pipe, out_dir: str | os.PathLike, num_inference_steps: int | None = None, guidance_scale: float | None = None,
             seed: int = 0, log: Callable[[str], object] = print) -> DemoResult:
    """Extract the sample, run the showcase with ``pipe`` and the exact renderer, and write the results.

    Args:
        pipe: a :class:`~neuralassets.pipelines.NeuralAssetsPipeline` with at least as many
            object slots as the sample has objects.
        out_dir: folder for ``demo_edits.png``, ``demo_animation.gif`` / ``.mp4`` and ``demo_scene.zip``.
        num_inference_steps, guidance_scale: sampling settings (default: the model's).
        seed: seeds the initial noise, shared by every render.
        log: receives one line per stage.

    Returns:
        A :class:`DemoResult`.
    """
    from .data import render

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sample, donor = sample_scenes()
    log(f"sample video: {sample.metadata['name']} of the synthetic generator, {sample.num_frames} frames of "
        f"{sample.width}x{sample.height} (generated on the fly, never used for training)")
    scene, ids = extract_sample(sample)
    log(f"extracted {len(scene)} objects with the ground-truth segmenter, depth lifting and the known cameras: "
        + ", ".join(f"{a.id} {sample.asset(g).name}" for g, a in ((g, scene.asset(i)) for g, i in ids.items())))
    scene_zip = scene.save_zip(out / "demo_scene.zip")
    shown, keys, _ = showcase(sample, donor, ids)
    identity = {a.id: a.id for a in sample.assets}
    settings = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale, "seed": seed, "progress": False}

    rows = []
    for label, edit in shown:
        truth = render(edit(sample, identity), frames=[0]).rgb[0]
        model = pipe.render_video(edit(scene, ids), frames=[0], source_frame=0, **settings)[0]
        rows.append((label, [sample.frames[0], truth, model]))
        log(f"  {label}")
    grid = _save_grid(out / "demo_edits.png", rows, ["before", "ground truth (exact re-render)", "model"])

    model_keys = Keyframes({ids[g]: k for g, k in keys.assets.items()}, keys.camera, keys.interpolation)
    truth_video = render(animate(sample, keys, ANIMATION_FRAMES)).rgb
    model_video = pipe.render_video(animate(scene, model_keys, ANIMATION_FRAMES, source_frame=0), **settings)
    side_by_side = torch.stack([labelled_row([t, m], ["ground truth", "model"]) for t, m in zip(truth_video, model_video)])
    gif = write_video(out / "demo_animation.gif", side_by_side, fps=ANIMATION_FPS)
    mp4 = write_video(out / "demo_animation.mp4", side_by_side, fps=ANIMATION_FPS)
    log(f"  animation: the {sample.asset(next(iter(keys.assets))).name} slides and turns over {ANIMATION_FRAMES} frames")
    return DemoResult(grid, gif, mp4, scene_zip, time.perf_counter() - start)


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------

def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _to_pil(image: Tensor) -> Image.Image:
    pil = Image.fromarray(to_numpy_image(image))
    return pil.resize((pil.width * SCALE, pil.height * SCALE), Image.NEAREST)


def labelled_row(images: list[Tensor], labels: list[str], gap: int = 4, header: int = 22) -> Tensor:
    """Images side by side under their labels, each enlarged :data:`SCALE` times.

    Args:
        images: (3, H, W) float in [0, 1], all the same size.
        labels: one line of text per image.

    Returns:
        (3, header + SCALE * H, n * (SCALE * W + gap) - gap) float in [0, 1].
    """
    tiles = [_to_pil(im) for im in images]
    w, h = tiles[0].size
    canvas = Image.new("RGB", (len(tiles) * (w + gap) - gap, header + h), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (tile, label) in enumerate(zip(tiles, labels)):
        canvas.paste(tile, (k * (w + gap), header))
        draw.text((k * (w + gap) + 4, 4), label, fill="black", font=_font(14))
    return from_numpy_image(np.asarray(canvas))


def _save_grid(path: Path, rows: list[tuple[str, list[Tensor]]], columns: list[str], gap: int = 4, header: int = 24,
               caption: int = 20) -> Path:
    """A PNG: column titles on top, then each row's label above its images."""
    tiles = [[_to_pil(im) for im in images] for _, images in rows]
    w, h = tiles[0][0].size
    width = len(columns) * (w + gap) - gap
    canvas = Image.new("RGB", (width, header + len(rows) * (caption + h + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(columns):
        draw.text((c * (w + gap) + 4, 4), title, fill="black", font=_font(15))
    for r, ((label, _), row) in enumerate(zip(rows, tiles)):
        y = header + r * (caption + h + gap)
        draw.text((4, y + 2), label, fill=(40, 40, 140), font=_font(14))
        for c, tile in enumerate(row):
            canvas.paste(tile, (c * (w + gap), y + caption))
    canvas.save(path)
    return path


__all__ = ["DemoResult", "extract_sample", "labelled_row", "run_demo", "sample_scenes", "showcase"]

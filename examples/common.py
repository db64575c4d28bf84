"""What the example scripts share: command-line options, the pipeline, the input scene and image files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image

from neuralassets import Scene
from neuralassets.demo import extract_sample, labelled_row, sample_scenes
from neuralassets.errors import NeuralAssetsError
from neuralassets.video import to_uint8_frames


def parser(description: str) -> argparse.ArgumentParser:
    """Options every example takes: --model, --video, --out, --steps, --seed."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", default=None, metavar="PATH", help="pipeline folder or hub id (default: the shipped weights/)")
    p.add_argument("--video", default=None, metavar="PATH",
                   help="a video, GIF or folder of frames to extract (default: a held-out synthetic sample video)")
    p.add_argument("--out", default="examples_out", metavar="DIR", help="folder to write results to")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    return p


def fail(message: str) -> None:
    """Exit with a one-line message instead of a traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_pipeline(args: argparse.Namespace):
    """The pipeline named by --model (default: the shipped weights)."""
    from neuralassets.pipelines import NeuralAssetsPipeline

    try:
        return NeuralAssetsPipeline.from_pretrained(args.model)
    except NeuralAssetsError as e:
        fail(str(e))


def load_scene(args: argparse.Namespace, max_objects: int, segmenter=None) -> tuple[Scene, Scene | None, dict[int, int]]:
    """The scene to edit, the generator's scene when it is the synthetic sample (else None), and generator id -> asset id.

    Without --video and ``segmenter`` the synthetic sample is extracted with the ground-truth
    segmenter, depth and cameras (so the generator can re-render every edit exactly).
    Otherwise the --video (or the sample's frames) goes through
    :func:`neuralassets.perception.extract` with ``segmenter`` (default: the weight-free
    classical one), keeping the ``max_objects`` largest objects.
    """
    from neuralassets.perception import extract
    from neuralassets.video import read_video

    try:
        if args.video is None and segmenter is None:
            truth, _ = sample_scenes()
            scene, ids = extract_sample(truth)
            return scene, truth, ids
        frames = sample_scenes()[0].frames if args.video is None else read_video(args.video, max_side=256, max_frames=24)[0]
        scene = extract(frames, segmenter=segmenter, progress=True)
    except NeuralAssetsError as e:
        fail(str(e))
    largest = {a.id for a in sorted(scene.assets, key=lambda a: -int(a.masks[a.source_frame].sum()))[:max_objects]}
    scene = scene.replace(assets=[a for a in scene.assets if a.id in largest])
    if not scene.assets:
        fail(f"{args.video or 'the sample video'}: no objects found")
    return scene, None, {a.id: a.id for a in scene.assets}


def render(pipe, scene: Scene, args: argparse.Namespace, frame: int = 0) -> torch.Tensor:
    """(3, H, W): ``scene`` at ``frame`` with appearance and background from that frame, seeded by --seed."""
    return pipe.render_video(scene, frames=[frame], source_frame=frame, num_inference_steps=args.steps, seed=args.seed,
                             progress=False)[0]


def save_row(path: Path, images: list[torch.Tensor], labels: list[str]) -> Path:
    """Write images side by side under their labels as a PNG; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8_frames(labelled_row(images, labels)[None])[0]).save(path)
    print(f"wrote {path}")
    return path

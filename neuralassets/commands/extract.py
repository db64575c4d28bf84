"""``neuralassets extract``: turn a video (or a folder of videos) into Scene folders of neural assets."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "extract", help="find the objects of a video and save them as a Scene folder (masks, 3D boxes, cameras)",
        description="Segment, track and lift the objects of VIDEO (an .mp4/.gif/... file or a folder of frames) to 3D "
                    "and write a Scene folder to --out, with an overlay of masks, ids and 3D boxes. With --batch, VIDEO "
                    "is a folder of videos and --out a folder receiving one Scene per video; work is split across "
                    "accelerate processes and videos whose Scene is already complete are skipped.")
    p.add_argument("video", metavar="VIDEO", help="video file or folder of frames (with --batch: a folder of videos)")
    p.add_argument("--out", required=True, metavar="SCENE_DIR", help="Scene folder to write (with --batch: parent folder)")
    p.add_argument("--batch", action="store_true", help="VIDEO is a folder of videos; write one Scene per video")
    p.add_argument("--max-side", type=int, default=512, help="shrink frames whose longer side exceeds this (pixels)")
    p.add_argument("--max-frames", type=int, default=None, help="read at most this many frames")
    p.add_argument("--stride", type=int, default=1, help="keep every N-th frame")
    add_perception_arguments(p)
    p.add_argument("--overlay", choices=["png", "gif", "none"], default="png",
                   help="write overlay.png (source frame) or overlay.gif (all frames) into the Scene folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=_run)


def add_perception_arguments(p: argparse.ArgumentParser) -> None:
    """The camera values and model options of extraction, shared with ``neuralassets bench --inputs extracted``."""
    p.add_argument("--fov", type=float, default=50.0, help="horizontal field of view of the camera, degrees")
    p.add_argument("--camera-height", type=float, default=None, metavar="METRES",
                   help="camera height above the floor; also the scale given to relative depth (default: from metric "
                        "depth, else 1.5 m, a hand-held camera)")
    p.add_argument("--camera-pitch", type=float, default=None, metavar="DEGREES",
                   help="downward tilt of the camera below the horizon, 90 = straight down (default: from depth or the "
                        "clip's vanishing points, else 30)")
    p.add_argument("--perception-model", metavar="DIR",
                   help="learned perception model folder (default: weights/perception when it is there)")
    p.add_argument("--keep-depth", action="store_true",
                   help="store the learned model's depth in the scene (it always places the camera and the boxes; "
                        "without it, renders draw objects through their 3D boxes, which scored higher)")
    p.add_argument("--classical", action="store_true",
                   help="segment with the weights-free classical segmenter, even when the learned model is there")
    p.add_argument("--sam-checkpoint", metavar="PTH", help="segment-anything .pth checkpoint (replaces the default segmenter)")
    p.add_argument("--sam-type", default="vit_b", choices=["vit_b", "vit_l", "vit_h"], help="architecture of --sam-checkpoint")
    p.add_argument("--sam-model", metavar="ID", help="transformers SAM or SAM 2 folder / cached hub id")
    p.add_argument("--prompt", action="append", metavar="TEXT",
                   help="only objects matching this text (repeatable); needs --detector and a SAM option")
    p.add_argument("--detector", metavar="ID", help="Grounding DINO or OWLv2 folder / cached hub id for --prompt")
    p.add_argument("--sam2-video", metavar="ID", help="SAM 2 video folder / cached hub id: track by mask propagation")
    p.add_argument("--depth-model", metavar="ID", help="Depth Anything folder / cached hub id: lift with monocular depth")


def perception_pieces(args: argparse.Namespace) -> dict:
    """Segmenter, tracker and depth estimator named by the options (None = the library default)."""
    from ..errors import ConfigError

    if args.classical and args.perception_model:
        raise ConfigError("--classical and --perception-model name two segmenters; give one")
    box_segmenter = None
    if args.sam_checkpoint:
        from ..perception.sam import SamSegmenter

        box_segmenter = _load("--sam-checkpoint", SamSegmenter.from_checkpoint, args.sam_checkpoint, args.sam_type)
    elif args.sam_model:
        from ..perception.sam import HFSamSegmenter

        box_segmenter = _load("--sam-model", HFSamSegmenter.from_pretrained, args.sam_model)
    segmenter = box_segmenter
    if args.prompt:
        if not (args.detector and box_segmenter):
            raise ConfigError("--prompt needs --detector and one of --sam-checkpoint / --sam-model")
        from ..perception.text_prompt import TextPromptedSegmenter

        segmenter = _load("--detector", TextPromptedSegmenter.from_pretrained, args.detector, box_segmenter, args.prompt)
    if segmenter is None and args.classical:
        from ..perception import ClassicalSegmenter

        segmenter = ClassicalSegmenter()
    elif segmenter is None and args.perception_model:
        from ..perception.learned import LearnedPerception

        segmenter = _load("--perception-model", LearnedPerception.from_pretrained, args.perception_model)
    tracker = None
    if args.sam2_video:
        from ..perception.tracking import Sam2VideoTracker

        tracker = _load("--sam2-video", Sam2VideoTracker.from_pretrained, args.sam2_video)
    depth = None
    if args.depth_model:
        from ..perception.depth import DepthAnythingEstimator

        depth = _load("--depth-model", DepthAnythingEstimator.from_pretrained, args.depth_model)
    return {"segmenter": segmenter, "tracker": tracker, "depth_estimator": depth}


def _load(flag: str, loader, *args):
    """``loader(*args)``, its :class:`WeightsError` prefixed with the option that named the weights."""
    from ..errors import WeightsError

    try:
        return loader(*args)
    except WeightsError as e:
        raise WeightsError(f"{flag}: {e}") from None


def is_complete(folder: Path) -> bool:
    """True when ``folder`` holds a Scene that loads (``scene.json`` is written last, so it marks a finished save)."""
    from ..errors import SceneFormatError
    from ..scene import Scene

    if not (folder / "scene.json").is_file():
        return False
    try:
        Scene.load(folder)
    except SceneFormatError:
        return False
    return True


def extraction_config(args: argparse.Namespace):
    """The :class:`~neuralassets.perception.ExtractionConfig` of the camera and depth options."""
    from ..perception import CameraConfig, ExtractionConfig

    return ExtractionConfig(camera=CameraConfig(fov_degrees=args.fov, height=args.camera_height,
                                                pitch_degrees=args.camera_pitch), keep_learned_depth=args.keep_depth)


def extract_one(video: Path, out: Path, args: argparse.Namespace, pieces: dict) -> Path:
    """Extract ``video`` into the Scene folder ``out`` (with its overlay), frame by frame; returns ``out``."""
    from ..perception import extract_video

    return extract_video(video, out, max_side=args.max_side, max_frames=args.max_frames, stride=args.stride,
                         overlay=args.overlay, config=extraction_config(args), progress=not args.no_progress, **pieces)


def describe(out: Path) -> str:
    """One line on what was extracted into the Scene folder ``out``: objects, frames and the camera."""
    from ..errors import SceneFormatError
    from ..jsonio import read_json

    meta = read_json(out / "scene.json", SceneFormatError, "missing; the scene was not written")
    camera = meta["metadata"]["extraction"]["camera"]
    return (f"{out}: scene written, {len(meta['assets'])} objects in {meta['num_frames']} frames of "
            f"{meta['width']}x{meta['height']}; camera {camera['height']:.2f} m high ({camera['height_source']}), "
            f"pitched {camera['pitch_degrees']:.0f}° down ({camera['pitch_source']})")


def _run(args: argparse.Namespace) -> int:
    from ..errors import VideoError
    from ..video import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    pieces = perception_pieces(args)
    source, out = Path(args.video), Path(args.out)
    if not args.batch:
        extract_one(source, out, args, pieces)
        print(describe(out))
        return 0
    from accelerate import PartialState
    from tqdm import tqdm

    if not source.is_dir():
        raise VideoError(f"{source}: --batch expects a folder of videos")
    videos = sorted(p for p in source.iterdir()
                    if p.suffix.lower() in (*VIDEO_SUFFIXES, ".gif")
                    or (p.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir())))
    todo = [v for v in videos if not is_complete(out / v.stem)]
    state = PartialState()
    if state.is_main_process:
        print(f"{len(videos)} videos, {len(videos) - len(todo)} already extracted, {len(todo)} to do "
              f"on {state.num_processes} process(es)")
    failed = []
    with state.split_between_processes(todo) as mine:
        for video in tqdm(mine, desc=f"extract [{state.process_index}]", disable=args.no_progress):
            try:
                extract_one(video, out / video.stem, args, pieces)
            except VideoError as e:  # one unreadable video must not stop the batch
                failed.append(video)
                print(f"skipped {video}: {e}")
    state.wait_for_everyone()
    return 1 if failed else 0

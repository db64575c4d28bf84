"""What the editor can open: bundled sample scenes, uploaded videos or frame pairs, saved Scene zips.

Uploads are checked against the limits below before anything is decoded, and refused with a
message that names the file, what it measured and the limit.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from ..errors import VideoError
from ..scene import Scene
from ..video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, image_size, not_a_video, read_video

#: Largest uploaded file, in megabytes.
MAX_UPLOAD_MB = 100
#: Longest uploaded video, in seconds.
MAX_VIDEO_SECONDS = 20.0
#: Largest width or height of an uploaded image or video, in pixels.
MAX_INPUT_SIDE = 4096
#: Smallest width or height of an uploaded image or video, in pixels.
MIN_INPUT_SIDE = 32
#: Uploaded frames are shrunk (aspect kept) so their longer side is at most this many pixels.
WORKING_SIDE = 128
#: At most this many frames of an uploaded video are kept, evenly spaced.
MAX_FRAMES = 16

#: How many bundled samples the editor offers.
NUM_SAMPLES = 6
#: Frames of the generator's 24-frame videos kept in a sample (every third: the clip's whole motion, cheap to render).
SAMPLE_FRAMES = tuple(range(0, 24, 3))
#: Suffix of saved Scene archives.
ZIP_SUFFIX = ".zip"


class UploadError(VideoError):
    """An upload is of the wrong kind or over a limit; the message says which file and which limit."""


# --------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------

def sample_names() -> list[str]:
    """Display names of the bundled samples, e.g. ``"sample 1 (seed 2000000)"``."""
    from ..data import split_seed

    return [f"sample {i + 1} (seed {split_seed('test', i)})" for i in range(NUM_SAMPLES)]


@functools.lru_cache(maxsize=NUM_SAMPLES)
def sample_scene(index: int) -> Scene:
    """Bundled sample ``index`` (0-based): test-split scene ``index`` of the synthetic generator, :data:`SAMPLE_FRAMES` only.

    Cached per process; Scenes are never edited in place, so sessions may share it.
    """
    from ..data import generate_scene, split_seed

    if not 0 <= index < NUM_SAMPLES:
        raise UploadError(f"sample index {index} is not in [0, {NUM_SAMPLES})")
    scene = generate_scene(split_seed("test", index), frames=list(SAMPLE_FRAMES))
    scene.metadata["name"] = sample_names()[index]
    return scene


# --------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------

def upload_kind(paths: Sequence[str | Path]) -> str:
    """``"zip"``, ``"video"`` or ``"images"`` for one Scene zip, one video (or GIF) or two images.

    A zip's contents are checked by :meth:`Scene.load_zip <neuralassets.scene.Scene.load_zip>`
    from its listing, before anything is extracted.

    Raises:
        UploadError: anything else, or a file over :data:`MAX_UPLOAD_MB`.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise UploadError("nothing uploaded: choose one video, two images or one Scene zip")
    for p in paths:
        mb = p.stat().st_size / 1024**2
        if mb > MAX_UPLOAD_MB:
            raise UploadError(f"{p.name}: {mb:.1f} MB is over the {MAX_UPLOAD_MB} MB upload limit")
    suffixes = [p.suffix.lower() for p in paths]
    if len(paths) == 1 and suffixes[0] == ZIP_SUFFIX:
        return "zip"
    if len(paths) == 1 and suffixes[0] in (*VIDEO_SUFFIXES, ".gif"):
        return "video"
    if len(paths) == 2 and all(s in IMAGE_SUFFIXES for s in suffixes):
        return "images"
    names = ", ".join(p.name for p in paths)
    raise UploadError(f"cannot open {names}: expected one video ({', '.join((*VIDEO_SUFFIXES, '.gif'))}), "
                      f"two images ({', '.join(IMAGE_SUFFIXES)}) or one Scene {ZIP_SUFFIX}")


def read_upload_frames(paths: Sequence[str | Path]) -> Tensor:
    """Frames of an uploaded video or image pair, checked against the limits and shrunk to :data:`WORKING_SIDE`.

    Returns:
        (T, 3, H, W) float in [0, 1] with T <= :data:`MAX_FRAMES` (2 for an image pair).

    Raises:
        UploadError: a limit is exceeded (the message names the file, its measure and the limit).
        VideoError: a file cannot be decoded.
    """
    paths = [Path(p) for p in paths]
    kind = upload_kind(paths)
    if kind == "zip":
        raise UploadError(f"{paths[0].name}: a Scene zip holds a scene, not frames; open it as a scene")
    if kind == "video":
        width, height, seconds, count = _probe_video(paths[0])
        _check_size(paths[0].name, width, height)
        if seconds > MAX_VIDEO_SECONDS:
            raise UploadError(f"{paths[0].name}: {seconds:.1f} s is longer than the {MAX_VIDEO_SECONDS:g} s limit; trim it first")
        stride = max(1, math.ceil(count / MAX_FRAMES))
        source: str | list[str] = str(paths[0])
    else:
        for p in paths:
            _check_size(p.name, *image_size(p, MAX_INPUT_SIDE, UploadError))
        stride, source = 1, [str(p) for p in paths]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shrinking to the working size is intended, not worth a warning
        frames, _ = read_video(source, max_side=WORKING_SIDE, max_frames=MAX_FRAMES, stride=stride)
    if kind == "images" and frames.shape[0] != 2:
        raise UploadError(f"expected two frames of the same size, got {frames.shape[0]}")
    return frames


def _check_size(name: str, width: int, height: int) -> None:
    if max(width, height) > MAX_INPUT_SIDE:
        raise UploadError(f"{name}: {width}x{height} pixels is over the {MAX_INPUT_SIDE} pixel limit per side")
    if min(width, height) < MIN_INPUT_SIDE:
        raise UploadError(f"{name}: {width}x{height} pixels is under the {MIN_INPUT_SIDE} pixel minimum per side")


def _probe_video(path: Path) -> tuple[int, int, float, int]:
    """(width, height, seconds, frame count) read from the header, without decoding frames."""
    import imageio.v3 as iio

    try:
        if path.suffix.lower() == ".gif":
            props = iio.improps(path, index=None)
            meta = iio.immeta(path, index=None)
            count, height, width = props.shape[0], props.shape[1], props.shape[2]
            return width, height, count * float(meta.get("duration", 100)) / 1000.0, count
        meta = iio.immeta(path, plugin="FFMPEG")
    except Exception:  # any decoder failure means the same to the user; ffmpeg's own output names server paths
        raise VideoError(not_a_video(path)) from None
    width, height = meta["size"]
    seconds = float(meta.get("duration") or 0.0)
    fps = float(meta.get("fps") or 0.0)
    return int(width), int(height), seconds, max(1, round(seconds * fps))

"""Reading and writing videos and image sequences.

:func:`read_video` turns an ``.mp4`` / ``.avi`` / ``.mov`` / ``.mkv`` / ``.webm`` / ``.gif``
file, a folder of frames or a list of image files into ``(T, 3, H, W)`` float frames in
[0, 1] and a frame rate. Frames are decoded one at a time and shrunk to ``max_side`` before
the next one is read, so a long 4K clip never sits in memory at full resolution;
:func:`iter_video` hands them over one at a time instead, so a clip of any length can be
processed in bounded memory. Grayscale,
RGBA (alpha is dropped), palette and 16-bit images are converted to 8-bit-exact RGB.
Anything unusable raises :class:`~neuralassets.errors.VideoError` naming the file and what
was expected.

:func:`write_video` writes ``.mp4`` (H.264) or ``.gif``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import NeuralAssetsError, VideoError
from .image_ops import from_numpy_image, to_numpy_image

#: Container formats decoded with ffmpeg (GIFs go through Pillow).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
#: Image formats accepted as frames of a folder or list.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Frame rate reported for image sequences, which carry none.
DEFAULT_FPS = 24.0
#: Largest width or height, in pixels, of an image read as a frame (checked from its header before decoding).
MAX_IMAGE_SIDE = 8192


def read_video(source: str | os.PathLike | Sequence[str | os.PathLike], max_side: int | None = 512,
               max_frames: int | None = None, stride: int = 1, fps: float | None = None) -> tuple[Tensor, float]:
    """Read a video file, a folder of frames or a list of image files.

    Args:
        source: a video file (see :data:`VIDEO_SUFFIXES` and ``.gif``), a folder of images
            (read in natural order: ``frame2`` before ``frame10``) or a list of image paths.
        max_side: frames whose longer side exceeds this many pixels are shrunk (area
            interpolation, aspect kept) with a warning; None keeps the full size.
        max_frames: stop after this many frames (after striding); None reads all.
        stride: keep every ``stride``-th frame, starting with the first.
        fps: frame rate to report for image sequences (default :data:`DEFAULT_FPS`); a video
            file's own rate is always used, divided by ``stride``.

    Returns:
        frames: (T, 3, H, W) float32 in [0, 1], multiples of 1/255.
        fps: frames per second of the returned frames.

    Raises:
        VideoError: the source is missing, empty, unreadable, truncated before its first
            frame, of an unsupported format, an image is over :data:`MAX_IMAGE_SIDE` a side, or
            its frames differ in size; the message names the file by its base name.
    """
    frames, rate = iter_video(source, max_side, max_frames, stride, fps)
    return from_numpy_image(np.stack(list(frames))), rate


def iter_video(source: str | os.PathLike | Sequence[str | os.PathLike], max_side: int | None = 512,
               max_frames: int | None = None, stride: int = 1, fps: float | None = None) -> tuple[Iterator[np.ndarray], float]:
    """:func:`read_video` one frame at a time.

    The arguments are :func:`read_video`'s. Problems with the source as a whole (missing,
    empty, unsupported, unreadable header) raise at once; a frame that cannot be decoded or
    differs in size raises :class:`~neuralassets.errors.VideoError` when it is reached, and
    a source that yields no frame at all raises when the iterator ends.

    Returns:
        frames: an iterator of (H, W, 3) uint8 frames, each shrunk before the next is decoded.
        fps: frames per second of the frames it yields.
    """
    if stride < 1:
        raise VideoError(f"stride must be >= 1, got {stride}")
    if max_frames is not None and max_frames < 1:
        raise VideoError(f"max_frames must be >= 1, got {max_frames}")
    if max_side is not None and max_side < 8:
        raise VideoError(f"max_side must be >= 8 pixels, got {max_side}")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
            if not files:
                raise VideoError(f"{path.name}: folder holds no image files (expected {', '.join(IMAGE_SUFFIXES)})")
            return _collect(_decode_images(files), max_side, max_frames, stride, path), (fps or DEFAULT_FPS) / stride
        if not path.exists():
            raise VideoError(f"{path.name}: no such file or folder")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return _collect(_decode_images([path]), max_side, max_frames, stride, path), fps or DEFAULT_FPS
        if path.suffix.lower() not in (*VIDEO_SUFFIXES, ".gif"):
            raise VideoError(f"{path.name}: unsupported suffix {path.suffix!r} (expected a video {VIDEO_SUFFIXES + ('.gif',)}, "
                             "an image, or a folder of images)")
        if path.stat().st_size == 0:
            raise VideoError(f"{path.name}: file is empty (0 bytes); expected a {path.suffix} video")
        frames, rate = _decode_video_file(path)
        return _collect(frames, max_side, max_frames, stride, path), rate / stride
    files = [Path(p) for p in source]
    if not files:
        raise VideoError("the list of image files is empty; expected at least one frame")
    where = files[0].parent if len(files) > 1 else files[0]
    return _collect(_decode_images(files), max_side, max_frames, stride, where), (fps or DEFAULT_FPS) / stride


def write_video(path: str | os.PathLike, frames: Tensor, fps: float = DEFAULT_FPS) -> Path:
    """Write frames to an ``.mp4`` (H.264, yuv420p) or ``.gif`` file.

    Args:
        path: output file; its suffix picks the format. Parent folders are created.
        frames: (T, 3, H, W) float in [0, 1] (or uint8 (T, H, W, 3)).
        fps: frames per second.

    Returns:
        The path written. MP4 frames with an odd side are padded by one edge pixel, as
        yuv420p needs even sizes.
    """
    import imageio.v3 as iio

    path = Path(path)
    arr = to_uint8_frames(frames)
    if arr.shape[0] == 0:
        raise VideoError(f"{path.name}: no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        iio.imwrite(path, arr, plugin="pillow", duration=1000.0 / fps, loop=0)
    elif suffix == ".mp4":
        pad_h, pad_w = arr.shape[1] % 2, arr.shape[2] % 2
        if pad_h or pad_w:
            arr = np.pad(arr, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        iio.imwrite(path, arr, plugin="FFMPEG", fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv420p",
                    output_params=["-crf", "18"])
    else:
        raise VideoError(f"{path.name}: cannot write {suffix!r}; expected .mp4 or .gif")
    return path


def image_size(path: str | os.PathLike, max_side: int, error: type[NeuralAssetsError] = VideoError,
               name: str | None = None) -> tuple[int, int]:
    """(width, height) in pixels of an image file, read from its header without decoding a pixel.

    Args:
        path: the image file.
        max_side: largest width or height accepted, in pixels.
        error: the exception class to raise (e.g. ``SceneFormatError`` for a Scene's files).
        name: how messages name the file (default: its base name, never a folder path).

    Raises:
        error: not a readable image, or a side over ``max_side`` pixels.
    """
    from PIL import Image

    path = Path(path)
    name = name or path.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
    except Image.DecompressionBombError:
        # Pillow refuses to open an image over twice its own pixel limit, before its size can be read
        raise error(f"{name}: more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels, over the {max_side} pixel limit "
                    "per side") from None
    except (OSError, SyntaxError, ValueError):  # Pillow's messages name the full path; ours names the file
        raise error(f"{name}: not a readable image (expected one of {', '.join(IMAGE_SUFFIXES)})") from None
    if max(width, height) > max_side:
        raise error(f"{name}: {width}x{height} pixels is over the {max_side} pixel limit per side")
    return width, height


def not_a_video(path: Path) -> str:
    """The message for a file that no video decoder reads, naming it by its base name."""
    return f"{path.name}: not a readable {path.suffix} video: unsupported codec, corrupt, truncated or not a video at all"


def to_uint8_frames(frames: Tensor | np.ndarray) -> np.ndarray:
    """(T, 3, H, W) float in [0, 1] → (T, H, W, 3) uint8; uint8 (T, H, W, 3) passes through."""
    if isinstance(frames, np.ndarray) and frames.dtype == np.uint8:
        return frames
    frames = torch.as_tensor(frames)
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise VideoError(f"frames: expected shape (T, 3, H, W), got {tuple(frames.shape)}")
    return to_numpy_image(frames)


# --------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------

def _natural_key(path: Path) -> list:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


def _to_rgb8(arr: np.ndarray, where: Path) -> np.ndarray:
    """Any decoded image array → (H, W, 3) uint8."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise VideoError(f"{where.name}: expected a grayscale, RGB or RGBA image, got an array of shape {arr.shape}")
    if arr.shape[2] in (2, 4):  # drop alpha
        arr = arr[..., :-1]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.uint16:
        return ((arr.astype(np.float32) / 65535.0) * 255.0).round().astype(np.uint8)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        return (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    raise VideoError(f"{where.name}: unsupported pixel type {arr.dtype} (expected 8- or 16-bit)")


class _Shrinker:
    """Shrinks frames to a maximum side, warning once per source."""

    def __init__(self, max_side: int | None, where: Path) -> None:
        self.max_side, self.where, self.warned = max_side, where, False

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        h, w = arr.shape[:2]
        if self.max_side is None or max(h, w) <= self.max_side:
            return arr
        import cv2

        scale = self.max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if not self.warned:
            warnings.warn(f"{self.where.name}: frames of {w}x{h} are shrunk to {size[0]}x{size[1]} (max_side={self.max_side})",
                          stacklevel=4)
            self.warned = True
        return cv2.resize(arr, size, interpolation=cv2.INTER_AREA)


def _collect(frames: Iterator[tuple[Path, np.ndarray]], max_side: int | None, max_frames: int | None, stride: int,
             where: Path) -> Iterator[np.ndarray]:
    """Stride, convert and shrink frames one at a time, checking they all have one size."""
    shrink = _Shrinker(max_side, where)
    first: tuple[Path, tuple[int, int]] | None = None
    kept = 0
    for i, (name, arr) in enumerate(frames):
        if i % stride:
            continue
        arr = _to_rgb8(arr, name)
        if first is None:
            first = (name, arr.shape[:2])
        elif arr.shape[:2] != first[1]:
            raise VideoError(f"{name.name}: frame is {arr.shape[1]}x{arr.shape[0]} but {first[0].name} is "
                             f"{first[1][1]}x{first[1][0]}; every frame must have the same size")
        yield shrink(arr)
        kept += 1
        if max_frames is not None and kept >= max_frames:
            return
    if not kept:
        raise VideoError(f"{where.name}: holds 0 frames; expected at least one")


def _decode_images(files: list[Path]) -> Iterator[tuple[Path, np.ndarray]]:
    import imageio.v3 as iio

    for f in files:
        if not f.is_file():
            raise VideoError(f"{f.name}: no such image file")
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            raise VideoError(f"{f.name}: unsupported image suffix {f.suffix!r} (expected one of {', '.join(IMAGE_SUFFIXES)})")
        image_size(f, MAX_IMAGE_SIDE)
        try:
            image = iio.imread(f, index=0)
        except Exception as e:  # the imaging plugins raise many unrelated types, some naming the full path
            raise VideoError(f"{f.name}: not a readable image ({type(e).__name__})") from None
        yield f, image


def _decode_video_file(path: Path) -> tuple[Iterator[tuple[Path, np.ndarray]], float]:
    """The decoded frames of a video file (lazily) and its own frame rate."""
    import imageio.v3 as iio

    plugin = "pillow" if path.suffix.lower() == ".gif" else "FFMPEG"
    try:
        meta = iio.immeta(path, plugin=plugin)
    except Exception:  # ffmpeg's output (its build banner, server paths) means nothing to the user
        raise VideoError(not_a_video(path)) from None
    if plugin == "pillow":
        duration_ms = float(meta.get("duration") or 0) or 1000.0 / DEFAULT_FPS
        fps = 1000.0 / duration_ms
    else:
        fps = float(meta.get("fps") or DEFAULT_FPS)

    def decode() -> Iterator[tuple[Path, np.ndarray]]:
        try:
            for frame in iio.imiter(path, plugin=plugin):
                yield path, frame
        except VideoError:
            raise
        except Exception as e:
            raise VideoError(f"{path.name}: decoding failed: corrupt or truncated video ({type(e).__name__})") from None

    return decode(), fps


__all__ = ["DEFAULT_FPS", "IMAGE_SUFFIXES", "MAX_IMAGE_SIDE", "VIDEO_SUFFIXES", "image_size", "iter_video", "not_a_video",
           "read_video", "to_uint8_frames", "write_video"]

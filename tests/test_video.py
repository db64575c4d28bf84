"""Video and image-sequence IO: round-trips, conversions and every bad-input case."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from neuralassets.errors import VideoError
from neuralassets.video import read_video, write_video


def _frames(T=6, H=32, W=48):
    """Smooth frames (a moving bright square on a gradient), friendly to lossy codecs."""
    y, x = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    out = torch.stack([x, y, 0.5 * torch.ones_like(x)]).repeat(T, 1, 1, 1)
    for t in range(T):
        out[t, :, 8:20, 4 + 4 * t:16 + 4 * t] = torch.tensor([1.0, 0.2, 0.1])[:, None, None]
    return out


def test_mp4_round_trip_keeps_size_fps_and_content(tmp_path):
    frames = _frames()
    write_video(tmp_path / "clip.mp4", frames, fps=12)
    out, fps = read_video(tmp_path / "clip.mp4")
    assert out.shape == frames.shape and out.dtype == torch.float32
    assert fps == pytest.approx(12)
    assert (out - frames).abs().mean() < 0.03
    # every value is a multiple of 1/255
    assert torch.equal((out * 255).round() / 255, out)


def test_gif_round_trip_is_exact_on_a_few_colours(tmp_path):
    frames = torch.zeros(3, 3, 16, 20)
    frames[:, 0, 4:10, 5:12] = 1.0
    frames[1, 2] = 1.0
    write_video(tmp_path / "clip.gif", frames, fps=5)
    out, fps = read_video(tmp_path / "clip.gif")
    assert out.shape == frames.shape and fps == pytest.approx(5)
    assert torch.equal(out, frames)


def test_odd_sized_mp4_is_padded_by_one_pixel(tmp_path):
    write_video(tmp_path / "odd.mp4", _frames(H=31, W=47), fps=8)
    out, _ = read_video(tmp_path / "odd.mp4")
    assert out.shape[-2:] == (32, 48)


def test_stride_max_frames_and_fps(tmp_path):
    write_video(tmp_path / "clip.mp4", _frames(T=10), fps=20)
    out, fps = read_video(tmp_path / "clip.mp4", stride=3, max_frames=2)
    full, _ = read_video(tmp_path / "clip.mp4")
    assert out.shape[0] == 2 and fps == pytest.approx(20 / 3)
    assert torch.equal(out, full[[0, 3]])


def test_folder_natural_order_grayscale_rgba_and_16_bit(tmp_path):
    base = (_frames(T=1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(base).save(tmp_path / "frame10.png")
    Image.fromarray(np.dstack([base, np.full(base.shape[:2], 7, np.uint8)]), "RGBA").save(tmp_path / "frame2.png")
    Image.fromarray(base[..., 0]).save(tmp_path / "frame1.png")
    Image.fromarray(base[..., 1].astype(np.uint16) * 257).save(tmp_path / "frame3.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    out, fps = read_video(tmp_path, fps=5)
    assert out.shape == (4, 3, 32, 48) and fps == 5
    as_u8 = (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert (as_u8[0] == base[..., :1]).all()          # frame1: grey repeated to RGB
    assert (as_u8[1] == base).all()                   # frame2: alpha dropped
    assert (as_u8[2] == np.repeat(base[..., 1:2], 3, 2)).all()  # frame3: 16-bit → 8-bit exactly
    assert (as_u8[3] == base).all()                   # frame10 last


def test_list_of_files_and_single_image(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((8, 10, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.jpg", quality=100)
    out, fps = read_video([tmp_path / "2.jpg", tmp_path / "0.jpg"])
    assert out.shape == (2, 3, 8, 10) and fps == 24.0
    assert out[0].mean() > out[1].mean()
    one, _ = read_video(tmp_path / "1.jpg")
    assert one.shape == (1, 3, 8, 10)


def test_huge_frames_are_downscaled_with_a_warning(tmp_path):
    big = np.zeros((300, 600, 3), np.uint8)
    big[:, 300:] = 255
    for i in range(2):
        Image.fromarray(big).save(tmp_path / f"{i}.png")
    with pytest.warns(UserWarning, match="shrunk to 128x64"):
        out, _ = read_video(tmp_path, max_side=128)
    assert out.shape == (2, 3, 64, 128)
    assert out[..., :60].max() == 0 and out[..., 68:].min() == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_video(tmp_path, max_side=None)[0].shape == (2, 3, 300, 600)


def test_mismatched_frame_sizes_name_the_file(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(VideoError, match=r"b\.png: frame is 8x9 but .*a\.png is 8x8"):
        read_video(tmp_path)


@pytest.mark.parametrize("content, expected", [
    (b"", "file is empty"),
    (b"this is plain text, not a video", "not a readable .mp4 video"),
])
def test_bad_mp4_files(tmp_path, content, expected):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=expected) as info:
        read_video(path)
    assert "bad.mp4" in str(info.value)


def test_truncated_mp4(tmp_path):
    write_video(tmp_path / "clip.mp4", _frames(T=8), fps=8)
    data = (tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="cut.mp4.*truncated"):
        read_video(tmp_path / "cut.mp4")


def test_other_bad_sources(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="folder holds no image files"):
        read_video(tmp_path / "empty")
    (tmp_path / "clip.xyz").write_bytes(b"1234")
    with pytest.raises(VideoError, match="unsupported suffix '.xyz'"):
        read_video(tmp_path / "clip.xyz")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(VideoError, match="broken.png: not a readable image"):
        read_video([tmp_path / "broken.png"])
    with pytest.raises(VideoError, match="empty"):
        read_video([])
    with pytest.raises(VideoError, match="stride"):
        read_video(tmp_path / "broken.png", stride=0)
    with pytest.raises(VideoError, match=r"bad\.avi: cannot write"):
        write_video(tmp_path / "bad.avi", _frames(T=1))

"""NeuralAssetsPipeline.render_video: fixed noise across frames, batching, out-of-view assets, files."""
import pytest
import torch
from test_models import one_thread  # noqa: F401 (autouse fixture)

from neuralassets.animation import Keyframe, Keyframes, animate
from neuralassets.conditioning import conditioning_from_scene, frame_conditioning
from neuralassets.data import GeneratorConfig, generate_scene
from neuralassets.errors import ValidationError, VideoError
from neuralassets.pipelines import NeuralAssetsPipeline
from neuralassets.video import read_video


@pytest.fixture(scope="module")
def scene():
    """A 2-frame 48x48 synthetic scene with three objects."""
    return generate_scene(7, GeneratorConfig(num_frames=2, image_size=48, min_objects=3, max_objects=3))


@pytest.fixture(scope="module")
def pipe(tiny_pipeline_dir):
    return NeuralAssetsPipeline.from_pretrained(tiny_pipeline_dir)


@pytest.fixture(scope="module")
def away_and_back(scene):
    """Asset 1 leaves the view (40 m away at frames 2-3) and comes back to where it started at frame 5."""
    keys = Keyframes(assets={1: {0: Keyframe(), 2: Keyframe(offset=(40.0, 0.0, 0.0)), 3: Keyframe(offset=(40.0, 0.0, 0.0)),
                                 5: Keyframe()}})
    return animate(scene, keys, 6, source_frame=0)


def test_same_frame_twice_in_a_video_renders_identically(pipe, away_and_back):
    video = pipe.render_video(away_and_back, num_inference_steps=2, seed=3, batch_size=3, progress=False)
    assert video.shape == (6, 3, 48, 48) and video.dtype == torch.float32 and 0 <= video.min() and video.max() <= 1
    # frames 0 and 5 have the same poses and land in different batches of the same size
    assert torch.equal(video[0], video[5])
    assert (video[0] - video[2]).abs().max() > 1e-3  # the object is gone at frame 2
    assert torch.equal(video[2], video[3])
    again = pipe.render_video(away_and_back, frames=[5, 0], num_inference_steps=2, seed=3, batch_size=1, progress=False)
    assert torch.allclose(again[1], video[0], atol=1e-5) and torch.allclose(again[0], video[5], atol=1e-5)
    # another seed draws the edit otherwise (at frame 0 nothing is edited: the photo, whatever the seed)
    other = pipe.render_video(away_and_back, frames=[0, 2], num_inference_steps=2, seed=4, progress=False)
    assert torch.equal(other[0], video[0]) and not torch.allclose(other[1], video[2], atol=1e-3)


def test_frames_match_single_renders_with_the_seeded_noise(pipe, scene):
    video = pipe.render_video(scene, num_inference_steps=2, seed=5, source_frame=0, progress=False)
    noise = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    single = pipe(scene, target_frame=1, source_frame=0, num_inference_steps=2, latents=noise).images
    assert single.shape == (1, 3, 48, 48)  # the scene's size, not the model's 32 x 32
    assert torch.allclose(video[1], single[0], atol=1e-5)


def test_out_of_view_assets_are_left_out_and_keep_their_looks(away_and_back):
    full = conditioning_from_scene(away_and_back, 2, 10)
    away = frame_conditioning(away_and_back, 2, 10)
    assert full.object_mask[0].tolist()[:4] == [True, True, True, False]
    assert away.object_mask[0].tolist()[:4] == [False, True, True, False]
    assert torch.equal(away.object_poses[0, 0], torch.zeros(12)) and torch.equal(away.object_poses[0, 1:], full.object_poses[0, 1:])
    assert torch.equal(away.appearance_images, full.appearance_images)  # the others' source image does not change
    back, start = frame_conditioning(away_and_back, 5, 10), frame_conditioning(away_and_back, 0, 10)
    for name in ("object_boxes", "object_poses", "object_mask", "appearance_images", "background_image", "camera_pose"):
        assert torch.equal(getattr(back, name), getattr(start, name)), name


def test_videos_are_written(pipe, scene, tmp_path):
    anim = animate(scene, Keyframes.slide(2, (0.6, 0.0, 0.0), 4), 4)
    video = pipe.render_video(anim, out=tmp_path / "slide.gif", num_inference_steps=2, progress=False, batch_size=3)
    gif, _ = read_video(tmp_path / "slide.gif", max_side=None)
    assert gif.shape == video.shape == (4, 3, 48, 48) and (gif - video).abs().mean() < 0.05  # a GIF has 256 colours
    pipe.render_video(anim, frames=[0, 2], out=tmp_path / "slide.mp4", fps=6, num_inference_steps=2, progress=False)
    mp4, fps = read_video(tmp_path / "slide.mp4", max_side=None)
    assert mp4.shape == (2, 3, 48, 48) and fps == pytest.approx(6.0)
    assert (mp4 - video[[0, 2]]).abs().mean() < 0.05  # H.264 is lossy


def test_argument_errors(pipe, scene, tmp_path):
    with pytest.raises(ValidationError, match=r"frames: \[2\] are not frame indices of a 2-frame scene"):
        pipe.render_video(scene, frames=[0, 2])
    with pytest.raises(ValidationError, match="frames: empty"):
        pipe.render_video(scene, frames=[])
    with pytest.raises(VideoError, match=r"video.avi: cannot write '.avi'; expected one of .mp4, .gif"):
        pipe.render_video(scene, out=tmp_path / "video.avi")
    assert not (tmp_path / "video.avi").exists()

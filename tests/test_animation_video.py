"""render_video: fixed noise across frames, batching, out-of-view assets, the ground-truth renderer, files."""
import pytest
import torch
from test_models import one_thread  # noqa: F401 (autouse fixture)

from neuralassets.animation import Keyframe, Keyframes, animate
from neuralassets.conditioning import conditioning_from_scene
from neuralassets.data import GeneratorConfig, generate_scene, render
from neuralassets.errors import ValidationError, VideoError
from neuralassets.pipelines import NeuralAssetsPipeline
from neuralassets.rendering import frame_conditioning, render_video
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
    video = render_video(pipe, away_and_back, num_inference_steps=2, seed=3, batch_size=3, progress=False)
    assert video.shape == (6, 3, 48, 48) and video.dtype == torch.float32 and 0 <= video.min() and video.max() <= 1
    # frames 0 and 5 have the same poses and land in different batches of the same size
    assert torch.equal(video[0], video[5])
    assert (video[0] - video[2]).abs().max() > 1e-3  # the object is gone at frame 2
    assert torch.equal(video[2], video[3])
    again = render_video(pipe, away_and_back, frames=[5, 0], num_inference_steps=2, seed=3, batch_size=1, progress=False)
    assert torch.allclose(again[1], video[0], atol=1e-5) and torch.allclose(again[0], video[5], atol=1e-5)
    other = render_video(pipe, away_and_back, frames=[0], num_inference_steps=2, seed=4, progress=False)
    assert not torch.allclose(other[0], video[0], atol=1e-3)


def test_frames_match_single_renders_with_the_seeded_noise(pipe, scene):
    video = render_video(pipe, scene, num_inference_steps=2, seed=5, source_frame=0, progress=False)
    noise = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    single = pipe(scene, target_frame=1, source_frame=0, num_inference_steps=2, latents=noise).images
    resized = torch.nn.functional.interpolate(single, size=(48, 48), mode="bilinear", antialias=True).clamp(0, 1)
    assert torch.allclose(video[1], resized[0], atol=1e-5)


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


def test_ground_truth_renderer_and_files(scene, tmp_path):
    anim = animate(scene, Keyframes.slide(2, (0.6, 0.0, 0.0), 4), 4)
    video = render_video(None, anim, renderer=render, out=tmp_path / "spin.gif", progress=False, batch_size=3)
    assert torch.equal(video, render(anim).rgb)
    assert (video[0] - video[1]).abs().max() > 0.1
    gif, _ = read_video(tmp_path / "spin.gif", max_side=None)
    assert torch.equal(gif, video)  # GIF colours are exact for these few-colour frames
    render_video(None, anim, frames=[0, 2], renderer=render, out=tmp_path / "spin.mp4", fps=6, progress=False)
    mp4, fps = read_video(tmp_path / "spin.mp4", max_side=None)
    assert mp4.shape == (2, 3, 48, 48) and fps == pytest.approx(6.0)
    assert (mp4 - video[[0, 2]]).abs().mean() < 0.03  # H.264 is lossy


def test_argument_errors(pipe, scene, tmp_path):
    with pytest.raises(ValidationError, match="give a pipeline or a renderer"):
        render_video(None, scene)
    with pytest.raises(ValidationError, match="give a pipeline or a renderer"):
        render_video(pipe, scene, renderer=render)
    with pytest.raises(ValidationError, match=r"frames: \[2\] are not frame indices of a 2-frame scene"):
        render_video(pipe, scene, frames=[0, 2])
    with pytest.raises(ValidationError, match="frames: empty"):
        render_video(pipe, scene, frames=[])
    with pytest.raises(VideoError, match=r"video.avi: cannot write '.avi'; expected one of .mp4, .gif"):
        render_video(pipe, scene, out=tmp_path / "video.avi")
    assert not (tmp_path / "video.avi").exists()

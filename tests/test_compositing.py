"""Keeping unchanged pixels: the change mask against hand-computed values, the composite, and its use in rendering."""
import copy
import math

import pytest
import torch
from test_models import one_thread, tiny_pipeline  # noqa: F401 (one_thread: autouse fixture)

from neuralassets import edits as E
from neuralassets.conditioning import background_view, conditioning_from_scene
from neuralassets.errors import ValidationError
from neuralassets.framing import cut, letterbox_window, window_scene
from neuralassets.image_ops import resize_images
from neuralassets.pipelines.compositing import change_mask, keep_unchanged
from neuralassets.pipelines.edit_region import HOLE_DILATION, unchanged_photo
from neuralassets.pipelines.reprojection import reproject_image, same_camera
from neuralassets.pipelines.thresholds import RenderThresholds
from neuralassets.scene import Background, Camera

KEEP_EVERYTHING = RenderThresholds(unchanged_below=10.0, changed_above=11.0)  # nothing counts as changed
COMPOSITING_ONLY = RenderThresholds(edit_margin=None)  # the sampler draws every latent cell (tests/test_edit_region.py)


def test_a_uniform_difference_follows_the_ramp():
    reconstruction = torch.zeros(2, 3, 9, 9)
    render = reconstruction + torch.tensor([0.03, 0.06]).view(2, 1, 1, 1)
    mask = change_mask(render, reconstruction, RenderThresholds(unchanged_below=0.02, changed_above=0.10))
    # blur, dilation and feathering keep a uniform image uniform: (0.03 - 0.02) / 0.08 and (0.06 - 0.02) / 0.08
    assert mask.shape == (2, 1, 9, 9)
    assert torch.allclose(mask[0], torch.full((1, 9, 9), 0.125)) and torch.allclose(mask[1], torch.full((1, 9, 9), 0.5))


def test_a_changed_square_keeps_the_render_inside_and_the_photo_far_outside():
    photo = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    reconstruction = photo + 0.01  # the autoencoder's small error: below the ramp
    render = reconstruction.clone()
    render[..., 12:24, 12:24] = 1.0 - render[..., 12:24, 12:24]
    mask = change_mask(render, reconstruction)
    assert mask[0, 0, 15:21, 15:21].min() > 0.99 and mask[0, 0, :4].max() == 0 and mask[0, 0, 32:].max() == 0
    out = keep_unchanged(render, photo, reconstruction)
    assert torch.equal(out[..., :4, :], photo[..., :4, :])  # unchanged rows: the sharp photo, exactly
    assert torch.allclose(out[..., 16:20, 16:20], render[..., 16:20, 16:20], atol=0.02)
    # without blur and growth the mask is the ramp of the raw difference alone
    sharp = change_mask(render, reconstruction, RenderThresholds(difference_blur=0, grow=0))
    assert torch.equal(sharp[0, 0] > 0, (render - reconstruction).abs().mean(1)[0] > 0.03)


@pytest.mark.parametrize("kwargs", [{"unchanged_below": 0.1, "changed_above": 0.05}, {"unchanged_below": -0.1}])
def test_a_bad_ramp_is_refused(kwargs):
    with pytest.raises(ValueError, match="unchanged_below < changed_above"):
        RenderThresholds(**kwargs)


def test_pixels_the_photo_does_not_see_keep_the_render():
    render, photo = torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12)
    photo[..., :, :4] = float("nan")
    out = keep_unchanged(render, photo, reconstruction=render)  # nothing changed: the photo wherever it sees
    assert torch.equal(out[..., :4], render[..., :4]) and torch.equal(out[..., 4:], photo[..., 4:])


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="expected the same"):
        change_mask(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="photo"):
        keep_unchanged(torch.zeros(1, 3, 8, 8), torch.zeros(2, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_a_larger_photo_keeps_its_own_pixels_at_its_size():
    photo = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    render = resize_images(photo, (32, 32)).clone()
    render[..., :, 20:] = 1 - render[..., :, 20:]  # the right part changed; blur and growth reach 6 pixels left of it
    out = keep_unchanged(render, photo, reconstruction=resize_images(photo, (32, 32)))
    assert out.shape == (1, 3, 64, 64)
    assert torch.equal(out[..., :, :24], photo[..., :, :24])  # unchanged: the photo's full-resolution pixels
    assert torch.allclose(out[..., :, 48:], resize_images(render, (64, 64))[..., :, 48:], atol=1e-6)  # changed: the render


@pytest.fixture
def static_scene(simple_scene):
    """simple_scene with every frame seen by frame 0's camera."""
    scene = copy.deepcopy(simple_scene)
    scene.cameras = [copy.deepcopy(scene.cameras[0]) for _ in scene.cameras]
    return scene


def standing_still(scene):
    """A copy of ``scene`` whose objects stand at frame 0's pose in every frame."""
    scene = copy.deepcopy(scene)
    for a in scene.assets:
        a.centers[:], a.sizes[:], a.rotations[:] = a.centers[0].clone(), a.sizes[0].clone(), a.rotations[0].clone()
    return scene


def grown(mask):
    """(H, W) bool mask grown by HOLE_DILATION pixels (a 3 x 3 square), as a cut object's hole is."""
    assert HOLE_DILATION == 1
    return torch.nn.functional.max_pool2d(mask.float()[None], 3, stride=1, padding=1)[0] > 0


def test_the_kept_photo_is_the_background_photo_less_what_the_edit_changed(simple_scene, static_scene):
    assert same_camera(simple_scene.cameras[0], copy.deepcopy(simple_scene.cameras[0]))
    assert not same_camera(simple_scene.cameras[0], simple_scene.cameras[1])
    unedited = standing_still(static_scene)
    assert torch.equal(unchanged_photo(unedited, 2, 0), unedited.frames[0])
    assert torch.equal(unchanged_photo(unedited, 2), unedited.frames[0])  # each asset's own source frame: 0
    assert torch.equal(unchanged_photo(simple_scene, 1, 1), simple_scene.frames[1])  # the photo's own frame
    # a moved object's pixels in the photo (grown) no longer show the scene; the rest is the photo itself
    moved = E.move(unedited, 1, [0.3, 0.0, 0.0], frames=2)
    hole = grown(unedited.assets[0].masks[0])
    kept = unchanged_photo(moved, 2, 0)
    assert kept.isnan().all(0).equal(hole) and torch.equal(kept[:, ~hole], unedited.frames[0][:, ~hole])
    # the camera moved: the photo reprojected through its depth, its objects' pixels too where they stayed
    cams = simple_scene.cameras
    still = standing_still(simple_scene)
    expected = reproject_image(still.frames[0], still.depth[0], cams[0], cams[2])
    carried = unchanged_photo(still, 2, 0)
    assert torch.equal(carried.nan_to_num(-1), expected.nan_to_num(-1)) and 0 < carried.isnan().float().mean() < 1
    # ... and without the objects that moved (here both)
    hole = grown(simple_scene.assets[0].masks[0] | simple_scene.assets[1].masks[0])
    expected = reproject_image(simple_scene.frames[0], simple_scene.depth[0].masked_fill(hole, 0.0), cams[0], cams[2])
    assert torch.equal(unchanged_photo(simple_scene, 2, 0).nan_to_num(-1), expected.nan_to_num(-1))
    assert unchanged_photo(simple_scene.replace(depth=None), 2, 0) is not None  # the floor stands in for depth
    view = background_view(static_scene, 2, 1)
    assert torch.equal(view.image, static_scene.frames[1]) and view.object_boxes.shape == (2, 4)
    assert torch.equal(view.depth, static_scene.depth[1])
    # a background photo of the scene from another camera, without depth, is carried over by the floor
    other = Camera.look_at([0.0, -5.0, 3.0], [0.0, 0.0, 0.0], 50.0, 32, 24)
    unedited.background = Background(torch.rand(3, 24, 32), other)
    carried = unchanged_photo(unedited, 2, 0)
    assert carried.shape == (3, 24, 32) and 0 < carried.isnan().float().mean() < 1
    unedited.background = Background(torch.rand(3, 24, 32), copy.deepcopy(unedited.cameras[0]))
    assert torch.equal(unchanged_photo(unedited, 2, 0), unedited.background.image)
    unedited.background.shows_scene = False  # another scene's photo standing in for the view
    assert unchanged_photo(unedited, 2, 0) is None
    assert unchanged_photo(E.swap_background(static_scene.replace(background=None), simple_scene), 2, 0) is None


def test_without_depth_the_floor_carries_the_photo_to_a_moved_camera_and_its_objects_stay_behind():
    from neuralassets.data.synthetic import GeneratorConfig, generate_scene
    from neuralassets.pipelines.reprojection import floor_depth

    scene = generate_scene(5, GeneratorConfig(image_size=48, num_frames=8, min_objects=3, max_objects=3))
    target = scene.cameras[7]
    assert not same_camera(scene.cameras[0], target)
    through_depth = unchanged_photo(scene, 7, 0)
    through_floor = unchanged_photo(scene.replace(depth=None), 7, 0)
    # where the target sees the floor (the generator's floor is the plane z = 0), both carry the same photo pixels
    floor = (floor_depth(target) - scene.depth[7]).abs() < 1e-3 * scene.depth[7]
    both = floor & ~through_depth.isnan().any(0) & ~through_floor.isnan().any(0)
    assert both.float().mean() > 0.3
    assert torch.allclose(through_floor[:, both], through_depth[:, both], atol=1e-3)
    # the photo's objects do not lie on the floor: none of their pixels is carried over (painted one colour, a carried
    # pixel inside one would keep that colour exactly)
    painted = scene.frames.clone()
    objects = torch.stack([asset.masks[0] for asset in scene.assets]).any(0)
    painted[0][:, objects] = torch.tensor([1.0, 0.0, 1.0])[:, None]
    carried = unchanged_photo(scene.replace(frames=painted, depth=None), 7, 0)
    assert not (carried == torch.tensor([1.0, 0.0, 1.0])[:, None, None]).all(0).any()
    # depth carries them where they stayed; an object that moved is left out (its pixels painted another colour)
    magenta, cyan = torch.tensor([1.0, 0.0, 1.0])[:, None, None], torch.tensor([0.0, 1.0, 1.0])[:, None, None]
    painted[0][:, scene.assets[0].masks[0]] = cyan[:, 0]
    still = standing_still(scene).replace(frames=painted)
    shows = lambda photo, colour: bool((photo == colour).all(0).any())  # noqa: E731
    assert shows(unchanged_photo(still, 7, 0), magenta) and shows(unchanged_photo(still, 7, 0), cyan)
    moved = E.move(still, still.assets[0].id, [0.0, 0.4, 0.0], frames=7, check_visibility="ignore")
    assert shows(unchanged_photo(moved, 7, 0), magenta) and not shows(unchanged_photo(moved, 7, 0), cyan)


def test_the_pipeline_keeps_unchanged_pixels_at_the_scene_size(simple_scene, static_scene):
    pipe = tiny_pipeline()  # renders 32 x 32; the scenes are 24 x 32
    pipe.thresholds = COMPOSITING_ONLY
    static_scene = standing_still(static_scene)  # nothing edited: the photo is the view
    before = copy.deepcopy(static_scene)

    def run(scene, **kwargs):
        return pipe(scene, target_frame=2, source_frame=0, generator=torch.Generator().manual_seed(3), **kwargs).images

    # the 24 x 32 frame is rendered through its 32 x 32 letterbox square, then cut back out
    square = window_scene(static_scene, letterbox_window(24, 32))
    render = pipe.render(conditioning_from_scene(square, 2, 3, 0), generator=torch.Generator().manual_seed(3))
    raw = run(static_scene, keep_unchanged=False)
    assert raw.shape == (1, 3, 24, 32) and torch.equal(raw, render[..., 4:28, :].clamp(0, 1))
    photo = static_scene.frames[0][None]
    framed = cut(photo, letterbox_window(24, 32), math.nan)  # the frame's own photo; the bars unknown
    filled = torch.where(framed.isnan(), render, framed)
    expected = keep_unchanged(render, framed, pipe.decode_latents(pipe.encode_images(filled)))[..., 4:28, :]
    assert torch.allclose(run(static_scene), expected, atol=1e-6)
    pipe.thresholds = KEEP_EVERYTHING
    assert torch.allclose(run(static_scene), photo, atol=1e-6)  # the photo's own pixels, not resized twice
    # the camera moved and there is no depth: the photo carried over by the floor where it sees it, else the render
    no_depth = simple_scene.replace(depth=None)
    carried = unchanged_photo(no_depth, 2, 0)[None]
    floor_kept, floor_raw = run(no_depth), run(no_depth, keep_unchanged=False)
    unseen = carried.isnan().any(1, keepdim=True).expand_as(floor_kept)
    assert unseen.any() and (~unseen).any() and torch.equal(floor_kept[unseen], floor_raw[unseen])
    assert torch.allclose(floor_kept[~unseen], carried[~unseen], atol=1e-6)
    # with depth, the reprojected photo where it sees the scene and the render where it does not
    reprojected = unchanged_photo(simple_scene, 2, 0)[None]
    moved, moved_raw = run(simple_scene), run(simple_scene, keep_unchanged=False)
    unseen = reprojected.isnan().any(1, keepdim=True).expand_as(moved)
    assert unseen.any() and torch.equal(moved[unseen], moved_raw[unseen])
    # elsewhere a blend of the two (the decision, made at the model's size, is resized to the scene's), often the photo
    seen = ~unseen
    assert ((moved - reprojected).abs()[seen] <= (moved_raw - reprojected).abs()[seen] + 1e-6).all()
    assert ((moved - reprojected).abs()[seen] < 1e-6).float().mean() > 0.3
    assert torch.equal(static_scene.frames, before.frames) and static_scene.cameras[2].t.equal(before.cameras[2].t)
    video = pipe.render_video(static_scene, frames=[2], num_inference_steps=2, source_frame=0, progress=False)
    assert torch.allclose(video, photo, atol=1e-6)


def test_pixels_drawn_from_the_photo_are_compared_with_the_photo_itself():
    pipe = tiny_pipeline()
    photo = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(4))
    render = (photo + 0.01)[None]  # as sharp as the photo, unlike the tiny autoencoder's reconstruction of it
    drawn = torch.zeros(1, 32, 32, dtype=torch.bool)
    drawn[:, :, :16] = True
    out = pipe.composite_unchanged(render, [photo], drawn=drawn)
    assert torch.allclose(out[..., :6], photo[None, ..., :6], atol=1e-6)  # unchanged: the photo's own pixels
    assert torch.allclose(out[..., 26:], render[..., 26:], atol=1e-6)  # far from the reconstruction: changed
    assert torch.allclose(pipe.composite_unchanged(render, [photo]), render, atol=1e-6)


def test_frames_sharing_one_photo_reconstruct_it_once(simple_scene, static_scene):
    # square scenes: a letterboxed frame's photo is unknown in its bars, so each frame is reconstructed on its own
    simple_scene, static_scene = (window_scene(s, letterbox_window(24, 32)) for s in (simple_scene, static_scene))
    pipe = tiny_pipeline()
    encode, batches = pipe.encode_images, []
    pipe.encode_images = lambda images: batches.append(len(images)) or encode(images)

    def video(scene, batch_size):
        batches.clear()
        return pipe.render_video(scene, frames=[0, 1, 2], num_inference_steps=2, source_frame=0, progress=False,
                                 batch_size=batch_size)

    together = video(static_scene, 3)
    # a still camera: the latents of the photo less what each frame's edit touches (nothing at frame 0, the same pixels
    # at frames 1 and 2: both objects moved, their masks cut), then the photo at frame 0 and, at frames 1 and 2, the
    # photo less those masks, whose holes each frame fills with its own render
    assert batches == [2, 3]
    assert torch.allclose(together, video(static_scene, 1), atol=1e-5) and batches == [1, 1] * 3
    video(standing_still(static_scene), 3)  # nothing moves: one photo's latents, one reconstruction
    assert batches == [1, 1]
    video(simple_scene, 3)
    # a moving camera: each frame keeps the latents, then the pixels, of its own reprojection of the photo
    assert batches == [3, 3]


def test_compositing_checks_its_photos():
    pipe = tiny_pipeline()
    renders = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValidationError, match="photos: 2 entries for a batch of 1"):
        pipe.composite_unchanged(renders, [None, None])
    with pytest.raises(ValidationError, match=r"photos\[0\]: shape \(24, 32\), expected \(3, H, W\)"):
        pipe.composite_unchanged(renders, [torch.zeros(24, 32)])
    with pytest.raises(ValidationError, match=r"photos: expected one size, got \[\(24, 32\), \(32, 32\)\]"):
        pipe.composite_unchanged(torch.zeros(2, 3, 32, 32), [torch.zeros(3, 24, 32), torch.zeros(3, 32, 32)])
    assert torch.equal(pipe.composite_unchanged(renders, [None]), renders)


def _two_frame_scene():
    from neuralassets.data import GeneratorConfig, generate_scene

    return generate_scene(3, GeneratorConfig(num_frames=2, image_size=32, min_objects=2, max_objects=2))


def test_the_pipeline_says_which_pixels_it_kept(static_scene):
    static_scene = standing_still(static_scene)  # nothing edited: every pixel may be kept
    pipe = tiny_pipeline()
    pipe.thresholds = COMPOSITING_ONLY

    def run(**kwargs):
        return pipe(static_scene, target_frame=2, source_frame=0, generator=torch.Generator().manual_seed(3), **kwargs)

    raw, out = run(keep_unchanged=False), run()
    assert raw.kept is None
    photo = static_scene.frames[0][None]  # the output and the map are at the scene's own size
    assert out.kept.shape == (1, 1, 24, 32) and 0 <= out.kept.min() and out.kept.max() <= 1
    # the output is exactly that share of the photo and the rest of the render
    assert torch.allclose(out.images, out.kept * photo + (1 - out.kept) * raw.images, atol=1e-6)
    pipe.thresholds = KEEP_EVERYTHING
    assert torch.equal(run().kept, torch.ones(1, 1, 24, 32))
    # a moved object's pixels in the photo are never kept, however alike the render
    hole = grown(static_scene.assets[0].masks[0])
    static_scene = E.move(static_scene, 1, [0.3, 0.0, 0.0], frames=2)
    kept = run().kept[0, 0]
    assert (kept[hole] == 0).all() and (kept[~hole] > 0).any()


def test_a_wide_frame_is_letterboxed_not_squashed_and_its_unchanged_pixels_are_the_photos(static_scene):
    static_scene = standing_still(static_scene)
    pipe = tiny_pipeline()
    window = letterbox_window(24, 32)  # (0, -4, 32, 28): bars of 4 rows above and below
    seeded = dict(target_frame=2, source_frame=0, generator=torch.Generator().manual_seed(3))
    out = pipe(static_scene, keep_unchanged=False, **seeded)
    square = pipe(window_scene(static_scene, window), keep_unchanged=False,
                  **{**seeded, "generator": torch.Generator().manual_seed(3)})
    assert out.images.shape == (1, 3, 24, 32) and square.images.shape == (1, 3, 32, 32)
    assert torch.equal(out.images, square.images[..., 4:28, :])  # the model saw the frame whole, with bars
    pipe.thresholds = KEEP_EVERYTHING  # an edit that changes nothing: every pixel is the photo's own, exactly
    assert torch.equal(pipe(static_scene, **{**seeded, "generator": torch.Generator().manual_seed(3)}).images[0],
                       static_scene.frames[0])

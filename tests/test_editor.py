"""Editor callbacks and views, without a browser: load, select by click, edit, undo/redo, render, export, uploads."""
import json
import math
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from neuralassets import Scene
from neuralassets import edits as E
from neuralassets import geometry as G
from neuralassets.data import render as gt_render
from neuralassets.editor import MAX_UNDO, EditorState, RenderSettings, inputs
from neuralassets.editor import callbacks as cb
from neuralassets.editor.backends import Renderers
from neuralassets.editor.overlay import DRAWN_COLOUR, KEPT_COLOUR, LEGEND_HEIGHT, _label, display_scale, draw_scene, kept_map, projected_box
from neuralassets.editor.views import OBJECT_COLUMNS, view
from neuralassets.image_ops import quantize
from neuralassets.pipelines import GeometricRenderer
from neuralassets.pipelines.thresholds import RenderThresholds
from neuralassets.video import read_video, write_video


@pytest.fixture(scope="module")
def loaded():
    state, message = cb.load_sample(EditorState(), 0)
    assert message.startswith("Loaded sample 1")
    return state


@pytest.fixture(scope="module")
def renderers():
    return Renderers()


def centre_of_mask(scene, asset_id, frame=0):
    """(u, v) pixel centre of the asset's mask pixel closest to the mask's mean."""
    rows, cols = scene.asset(asset_id).masks[frame].nonzero(as_tuple=True)
    k = int(((rows - rows.float().mean()) ** 2 + (cols - cols.float().mean()) ** 2).argmin())
    return float(cols[k]) + 0.5, float(rows[k]) + 0.5


def selected(state, asset_id):
    new, message = cb.select(state, asset_id)
    assert new.selected == asset_id, message
    return new


# --------------------------------------------------------------------------------------
# Loading and views
# --------------------------------------------------------------------------------------

def test_load_sample_is_the_test_split_scene(loaded):
    from neuralassets.data import generate_scene, split_seed

    expected = generate_scene(split_seed("test", 0), frames=[inputs.SAMPLE_FRAMES[-1]])
    scene = loaded.scene
    assert scene.num_frames == len(inputs.SAMPLE_FRAMES) == 8
    assert torch.equal(scene.frames[-1], expected.frames[0])
    assert scene.asset_ids == expected.asset_ids
    assert loaded.original is scene and loaded.undo == () and loaded.selected is None
    assert loaded.source_name == inputs.sample_names()[0] == f"sample 1 (seed {split_seed('test', 0)})"


def test_bad_sample_index_is_a_message():
    state, message = cb.load_sample(EditorState(), inputs.NUM_SAMPLES)
    assert not state.loaded and "sample index 6 is not in [0, 6)" in message


def test_view_of_a_loaded_scene(loaded):
    v = view(selected(loaded, 2))
    s = display_scale(128, 128)
    assert s == 4 and v.scale == 4
    assert v.scene_image.shape == v.before.shape == (512, 512, 3) and v.scene_image.dtype == np.uint8
    assert v.after is None  # nothing rendered yet
    assert [row[0] for row in v.objects] == loaded.scene.asset_ids and len(v.objects[0]) == len(OBJECT_COLUMNS)
    a = loaded.scene.asset(2)
    assert v.objects[1][2:5] == [round(x, 2) for x in a.centers[0].tolist()]
    assert v.objects[1][5] == round(math.degrees(float(G.yaw_of(a.rotations[0]))), 1)
    assert v.choices == [(f"{x.id}: {x.name}", x.id) for x in loaded.scene.assets]
    # "before" is the frame enlarged by nearest neighbour
    assert np.array_equal(v.before[::4, ::4], (loaded.scene.frames[0] * 255).round().byte().permute(1, 2, 0).numpy())
    # the selected object's box is drawn in yellow, the overlay differs from the plain frame only near objects
    assert ((v.scene_image == [255, 225, 25]).all(-1)).sum() > 50
    assert view(EditorState()).scene_image is None


def test_nothing_loaded_messages():
    empty = EditorState()
    for fn, args in ((cb.move_selected, (0.1, 0, 0)), (cb.remove_selected, ()), (cb.click, (3, 3)), (cb.undo, ())):
        state, message = fn(empty, *args)
        assert state is empty and message in (cb.NOTHING_LOADED, "Nothing to undo.")


# --------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------

def test_click_on_an_object_selects_it(loaded):
    for a in loaded.scene.assets:
        u, v = centre_of_mask(loaded.scene, a.id)
        state, message = cb.click(loaded, u, v)
        assert state.selected == a.id and message == f"Selected {a.id} ({a.name})."


def test_click_on_background_clears_the_selection(loaded):
    scene = selected(loaded, 1)
    # the top-left corner is backdrop: no mask and no projected box there
    assert int(scene.scene.instance_map(0)[0, 0]) == 0
    state, message = cb.click(scene, 0.5, 0.5)
    assert state.selected is None and message.startswith("No object at (0, 0)")


def test_click_uses_projected_boxes_where_there_is_no_mask(loaded):
    moved, _ = cb.move_selected(selected(loaded, 1), 0.0, -1.0, 0.0)  # towards the camera side, clear of its old mask
    uv = projected_box(moved.scene, 1, 0)
    u, v = uv.mean(0).tolist()
    assert int(moved.scene.instance_map(0)[int(v), int(u)]) == 0  # only the new box is there
    state, _ = cb.click(replace(moved, selected=None), u, v)
    assert state.selected == 1


def test_a_moved_object_is_picked_where_it_now_stands_not_where_the_photo_shows_it(loaded):
    target = max(loaded.scene.assets, key=lambda a: int(a.masks[0].sum()))
    old_u, old_v = centre_of_mask(loaded.scene, target.id)
    moved, _ = cb.move_selected(selected(loaded, target.id), 0.0, -1.0, 0.0)
    state, _ = cb.click(replace(moved, selected=None), old_u, old_v)
    assert state.selected != target.id  # its observed mask no longer counts: it is not there any more
    exact = gt_render(moved.scene, frames=[0])
    rows, cols = (exact.instance[0] == target.id).nonzero(as_tuple=True)
    state, _ = cb.click(replace(moved, selected=None), float(cols[len(cols) // 2]) + 0.5, float(rows[len(rows) // 2]) + 0.5)
    assert state.selected == target.id


def test_the_scene_view_shows_the_edited_scene(loaded):
    target = loaded.scene.assets[0].id
    assert view(loaded).shows == "the photo"
    removed, _ = cb.remove_selected(selected(loaded, target))
    with_exact = cb.with_preview(removed)
    exact = gt_render(removed.scene, frames=[0]).rgb[0]
    assert torch.equal(with_exact.preview[2], exact) and view(with_exact).shows == "exact re-render of the edited scene"
    assert np.array_equal(view(with_exact).scene_image, draw_scene(exact, removed.scene, 0))
    assert cb.with_preview(with_exact) is with_exact  # computed once per scene and frame
    # a scene the generator did not make (footage) has no exact re-render: the geometric one, else the photo
    metadata = {k: v for k, v in removed.scene.metadata.items() if k != "renderer"}
    foreign = replace(removed, scene=removed.scene.replace(metadata=metadata))
    geometric = cb.with_preview(foreign)
    assert torch.equal(geometric.preview[2], GeometricRenderer()(foreign.scene, 0, source_frame=0))
    assert view(geometric).shows == cb.PREVIEW_GEOMETRIC
    assert view(foreign).shows.startswith("the photo before the edits")  # before the preview is made


def test_history_reads_in_the_controls_units(loaded):
    state = selected(loaded, 1)
    for step in (lambda s: cb.move_selected(s, 0.25, 0.0, 0.0), lambda s: cb.rotate_selected(s, 30, 0, 10),
                 lambda s: cb.scale_selected(s, 1.5), cb.remove_selected):
        state = step(state)[0]
    assert view(state).history.splitlines() == [
        "1. move object 1 by (0.25, 0.00, 0.00) m (world axes)", "2. rotate object 1 by yaw 30°, pitch 0°, roll 10°",
        "3. scale object 1 by ×1.5", "4. remove object 1"]


def test_kept_map_tints_kept_and_drawn_pixels_and_gives_their_shares():
    render = torch.full((3, 4, 8), 0.5)
    kept = torch.zeros(4, 8)
    kept[:, :6] = 1.0  # 75 % kept
    out = kept_map(render, kept)
    s = display_scale(4, 8)
    assert out.shape == (4 * s + LEGEND_HEIGHT, 8 * s, 3) and out.dtype == np.uint8
    expected_kept = np.round(0.5 * 127.5 + 0.5 * np.array(KEPT_COLOUR)).astype(np.uint8)
    expected_drawn = np.round(0.5 * 127.5 + 0.5 * np.array(DRAWN_COLOUR)).astype(np.uint8)
    assert np.abs(out[0, 0].astype(int) - expected_kept).max() <= 1
    assert np.abs(out[0, -1].astype(int) - expected_drawn).max() <= 1


def test_object_labels_do_not_overlap():
    image = np.zeros((64, 64, 3), np.uint8)
    taken = []
    # three boxes whose top-left corners nearly coincide: each label must find its own place
    for text, low in (("1", [20.0, 30.0]), ("2", [22.0, 31.0]), ("3", [21.0, 32.0])):
        taken.append(_label(image, text, low, [low[0] + 20, low[1] + 20], (255, 255, 255), taken))
    for i, a in enumerate(taken):
        assert 0 <= a[0] and a[2] <= 64 and 0 <= a[1] and a[3] <= 64
        for b in taken[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)


def test_select_unknown_id_and_frame_bounds(loaded):
    state, message = cb.select(loaded, 99)
    assert state is loaded and "no object 99" in message
    state, message = cb.set_frame(loaded, 8)
    assert state is loaded and message == "Frame 8 is not in [0, 8)."
    state, _ = cb.set_frame(loaded, 5)
    assert state.frame == 5 and view(state).frame == 5


# --------------------------------------------------------------------------------------
# Edits, undo and redo
# --------------------------------------------------------------------------------------

def test_move_then_undo_and_redo(loaded):
    start = selected(loaded, 2)
    before = start.scene.asset(2).centers.clone()
    moved, message = cb.move_selected(start, 0.3, -0.2, 0.0)
    assert message.startswith("Moved 2 (") and "by (0.30, -0.20, 0.00) m" in message
    assert torch.allclose(moved.scene.asset(2).centers, before + torch.tensor([0.3, -0.2, 0.0]))
    assert torch.equal(start.scene.asset(2).centers, before)  # the old state and its scene are untouched
    assert torch.equal(inputs.sample_scene(0).asset(2).centers, before)  # and so is the shared sample
    assert moved.undo == (start.scene,) and moved.redo == ()
    assert [e.op for e in E.history(moved.scene)] == ["move"]

    undone, message = cb.undo(moved)
    assert undone.scene is start.scene and undone.redo == (moved.scene,) and message == "Undone (0 more to undo)."
    redone, message = cb.redo(undone)
    assert redone.scene is moved.scene and redone.undo == (start.scene,) and redone.redo == ()
    assert cb.redo(redone)[1] == "Nothing to redo."
    # a new edit after an undo drops the redo stack
    other, _ = cb.rotate_selected(undone, 90.0)
    assert other.redo == () and len(other.undo) == 1


def test_undo_stack_is_bounded(loaded):
    state = selected(loaded, 1)
    for _ in range(MAX_UNDO + 5):
        state, _ = cb.move_selected(state, 0.01, 0.0, 0.0)
    assert len(state.undo) == MAX_UNDO
    for _ in range(MAX_UNDO):
        state, _ = cb.undo(state)
    assert cb.undo(state)[1] == "Nothing to undo."
    assert len(E.history(state.scene)) == 5  # the 5 oldest edits can no longer be undone


def test_rotate_and_scale(loaded):
    state = selected(loaded, 3)
    a = state.scene.asset(3)
    turned, message = cb.rotate_selected(state, 90.0)
    assert "yaw 90°" in message
    expected = G.euler_to_matrix(torch.tensor(math.pi / 2), torch.tensor(0.0), torch.tensor(0.0)) @ a.rotations
    assert torch.allclose(turned.scene.asset(3).rotations, expected, atol=1e-6)
    bigger, _ = cb.scale_selected(state, 1.5)
    assert torch.allclose(bigger.scene.asset(3).sizes, a.sizes * 1.5)
    low = lambda s: float(s.asset(3).box(0).corners()[:, 2].min())  # noqa: E731
    assert low(bigger.scene) == pytest.approx(low(state.scene), abs=1e-5)  # it stays on the floor
    refused, message = cb.scale_selected(state, -1.0)
    assert refused is state and message.startswith("Edit failed: factor")


def test_edit_without_selection_and_out_of_view_warning(loaded):
    state, message = cb.move_selected(loaded, 1.0, 0.0, 0.0)
    assert state is loaded and message == cb.NOTHING_SELECTED
    far, message = cb.move_selected(selected(loaded, 1), 40.0, 0.0, 0.0)
    assert far.scene is not loaded.scene and "Warning: asset 1" in message and "out of view" in message


def test_remove_and_undo(loaded):
    state = selected(loaded, 1)
    removed, message = cb.remove_selected(state)
    assert removed.scene.asset_ids == [2, 3] and removed.selected is None and message.startswith("Removed 1 (")
    assert cb.undo(removed)[0].scene.asset_ids == [1, 2, 3]


def test_swap_appearance(loaded):
    state = selected(loaded, 1)
    a, b = state.scene.asset(1), state.scene.asset(2)
    swapped, message = cb.swap_selected_with(state, 2)
    assert message.startswith("Swapped the looks of 1")
    assert swapped.scene.asset(1).name == b.name and swapped.scene.asset(2).name == a.name
    assert swapped.scene.asset(1).attributes["rgb"] == b.attributes["rgb"]
    assert torch.equal(swapped.scene.asset(1).centers, a.centers)  # poses stay
    assert cb.swap_selected_with(state, 1)[1].startswith("Edit failed: id_b")
    assert cb.swap_selected_with(state, None)[1] == "Choose the object to swap appearance with."


def test_duplicate_lands_to_the_right_and_is_selected(loaded):
    state = selected(loaded, 3)
    copy, message = cb.duplicate_selected(state)
    new_id = max(loaded.scene.asset_ids) + 1
    assert copy.scene.asset_ids == [*loaded.scene.asset_ids, new_id] and copy.selected == new_id
    assert message.startswith("Duplicated 3 (") and len(copy.undo) == 1
    assert [e.op for e in E.history(copy.scene)] == ["insert", "move"]
    u_old = float(projected_box(copy.scene, 3, 0)[:, 0].mean())
    u_new = float(projected_box(copy.scene, new_id, 0)[:, 0].mean())
    assert u_new > u_old + 5  # to the right as the camera sees it
    assert copy.scene.asset(new_id).attributes["shape"] == loaded.scene.asset(3).attributes["shape"]


def test_insert_and_background_from_another_sample(loaded):
    donor = inputs.sample_scene(1)
    state, message = cb.insert_asset(loaded, donor, donor.asset_ids[0])
    assert state.scene.asset_ids[-1] == state.selected == max(loaded.scene.asset_ids) + 1
    assert message.startswith(f"Inserted 1 ({donor.asset(1).name}) from {donor.metadata['name']}")
    swapped, message = cb.replace_background(loaded, donor)
    assert swapped.scene.background is not None and message == f"Background taken from {donor.metadata['name']}."
    assert cb.insert_asset(loaded, donor, 99)[1].startswith("Insert failed:")


def test_two_click_floor_drag(loaded):
    scene = loaded.scene
    u0, v0 = centre_of_mask(scene, 2)
    first, message = cb.click(loaded, u0, v0, "drag on floor")
    assert first.selected == 2 and first.drag_from == (u0, v0) and "now click where it should go" in message
    assert first.scene is scene
    second, message = cb.click(first, u0 - 20, v0 + 10, "drag on floor")
    assert message.startswith("Dragged 2 (") and second.drag_from is None
    expected = E.move_in_image(scene, 2, 0, (u0, v0), (u0 - 20, v0 + 10), check_visibility="warn")
    assert torch.allclose(second.scene.asset(2).centers, expected.asset(2).centers)
    assert torch.allclose(second.scene.asset(2).centers[:, 2], scene.asset(2).centers[:, 2])  # slid along the floor


# --------------------------------------------------------------------------------------
# Rendering and export
# --------------------------------------------------------------------------------------

def test_ground_truth_render_matches_the_generator(loaded, renderers):
    moved, _ = cb.move_selected(selected(loaded, 1), -0.5, 0.0, 0.0)
    rendered, message = cb.render(moved, renderers, RenderSettings())
    assert message == "Rendered frame 0 with the ground truth back end."
    assert torch.equal(rendered.rendered, gt_render(moved.scene, frames=[0]).rgb[0])
    assert rendered.render_is_current and view(rendered).after.shape == (512, 512, 3)
    assert not cb.undo(rendered)[0].render_is_current  # an edit or undo makes the render stale
    assert not cb.set_frame(rendered, 3)[0].render_is_current


def test_the_geometric_back_end_draws_any_scene_at_its_size(loaded, renderers):
    target = max(loaded.scene.assets, key=lambda a: int(a.masks[0].sum()))
    moved, _ = cb.move_selected(selected(loaded, target.id), 0.3, 0.0, 0.0)
    metadata = {k: v for k, v in moved.scene.metadata.items() if k != "renderer"}
    footage = replace(moved, scene=moved.scene.replace(metadata=metadata))  # no exact re-render for it
    state, message = cb.render(footage, renderers, RenderSettings(backend="geometric"))
    assert message == "Rendered frame 0 with the geometric back end." and state.kept is None
    assert torch.equal(state.rendered, quantize(GeometricRenderer()(footage.scene, 0, source_frame=0)))
    truth = gt_render(moved.scene, frames=[0]).rgb[0]
    photo = loaded.scene.frames[0]
    assert ((state.rendered - truth) ** 2).mean() < 0.5 * ((photo - truth) ** 2).mean()  # it drew the move


def test_ground_truth_needs_a_synthetic_scene(loaded, renderers):
    plain = loaded.loaded_with(loaded.scene.replace(metadata={}), "plain")
    state, message = cb.render(plain, renderers, RenderSettings())
    assert state.rendered is None and message.startswith("Render failed: the ground-truth back end renders only synthetic scenes")


def test_neural_back_end_without_weights_says_so(loaded, tmp_path):
    renderers = Renderers(weights=tmp_path)
    assert "unavailable: no trained weights" in renderers.neural_status()
    state, message = cb.render(loaded, renderers, RenderSettings(backend="neural"))
    assert state.rendered is None and message.startswith("Render failed:") and "model_index.json missing" in message
    state, message = cb.render(loaded, renderers, RenderSettings(steps=0))
    assert message == "Render failed: steps: expected 1..200, got 0"


def test_neural_back_end_loads_once_and_is_seeded(loaded, tmp_path):
    from test_models import TINY, tiny_pipeline

    tiny_pipeline(replace(TINY, max_objects=10)).save_pretrained(tmp_path / "tiny")
    renderers = Renderers(weights=tmp_path / "tiny")
    # the model alone: with keep_unchanged the unedited scene keeps the photo's latents whatever the seed
    settings = RenderSettings(backend="neural", steps=2, guidance=2.0, seed=7, keep_unchanged=False)
    first, _ = cb.render(loaded, renderers, settings)
    second, _ = cb.render(loaded, renderers, settings)
    other, _ = cb.render(loaded, renderers, replace(settings, seed=8))
    assert renderers.loads == 1 and renderers.neural_status() == "Neural back end: model loaded."
    assert first.rendered.shape == (3, 128, 128)  # the scene's size; the model renders 32x32
    assert torch.equal(first.rendered, second.rendered) and not torch.equal(first.rendered, other.rendered)
    settings = replace(settings, keep_unchanged=True)
    # the frame's own pixels are kept where the render leaves the scene unchanged; here: everywhere
    renderers.pipeline().thresholds = RenderThresholds(unchanged_below=10.0, changed_above=11.0)
    kept, _ = cb.render(loaded, renderers, settings)
    raw, _ = cb.render(loaded, renderers, replace(settings, keep_unchanged=False))
    photo = loaded.scene.frames[loaded.frame]
    assert torch.equal(kept.rendered, photo) and (raw.rendered - photo).abs().mean() > 0.05  # the frame's own pixels


def test_export_png_and_scene_zip_round_trip(loaded, renderers, tmp_path):
    state, _ = cb.move_selected(selected(loaded, 2), 0.2, 0.2, 0.0)
    assert cb.export_png(state, tmp_path)[2] is None  # nothing rendered yet
    state, _ = cb.render(state, renderers, RenderSettings())
    _, message, png = cb.export_png(state, tmp_path)
    assert png == tmp_path / "render.png" and message == "Saved the render as render.png."
    assert np.array_equal(np.asarray(Image.open(png)), (state.rendered * 255).round().byte().permute(1, 2, 0).numpy())

    _, message, path = cb.export_scene(state, tmp_path)
    assert path == tmp_path / "scene.zip" and "(1 edits)" in message
    back = Scene.load_zip(path)
    assert back.asset_ids == state.scene.asset_ids
    for a, b in zip(back.assets, state.scene.assets):
        assert torch.equal(a.centers, b.centers) and a.attributes == b.attributes
    assert E.history(back) == E.history(state.scene)
    reopened, message = cb.load_upload(EditorState(), [path])
    assert message.startswith("Loaded scene.zip: 8 frames of 128x128, 3 objects")
    assert torch.equal(gt_render(reopened.scene, frames=[0]).rgb, gt_render(state.scene, frames=[0]).rgb)


@pytest.mark.parametrize("kind, suffix", [("yaw spin", ".gif"), ("move", ".mp4")])
def test_export_animation(loaded, renderers, tmp_path, kind, suffix):
    state = selected(loaded, 3)  # a textured cube: every frame of its spin differs (a GIF merges repeated frames)
    seen = []
    _, message, path = cb.export_animation(state, renderers, RenderSettings(), kind, 4, suffix, tmp_path, (0.6, 0.0, 0.0),
                                           progress=lambda f, desc=None: seen.append(f))
    assert path == tmp_path / f"animation{suffix}" and message.startswith(f"Saved a 4-frame {kind} of 3 (")
    frames, _ = read_video(path, max_side=None)
    assert frames.shape == (4, 3, 128, 128) and seen == [0.0, 0.25, 0.5, 0.75]
    anim = cb.animated_scene(state.scene, 3, 0, kind, 4, (0.6, 0.0, 0.0))
    if kind == "yaw spin":  # exact GIF colours: frame k is the render of keyframe k
        assert torch.equal(frames[2], gt_render(anim, frames=[2]).rgb[0])
        assert torch.allclose(anim.asset(3).rotations[1],
                              G.euler_to_matrix(torch.tensor(math.pi / 2), torch.tensor(0.0), torch.tensor(0.0))
                              @ state.scene.asset(3).rotations[0], atol=1e-6)
    else:
        assert torch.allclose(anim.asset(3).centers[3], state.scene.asset(3).centers[0] + torch.tensor([0.6, 0, 0]))
        assert torch.equal(anim.asset(1).centers[3], state.scene.asset(1).centers[0])  # only the selected asset moves
    assert (frames[0] - frames[3]).abs().max() > 0.1


def test_animation_argument_messages(loaded, renderers, tmp_path):
    state = selected(loaded, 1)
    assert cb.export_animation(state, renderers, RenderSettings(), "move", 4, ".gif", tmp_path)[1].startswith(
        "A move animation goes by the move sliders")
    assert cb.export_animation(state, renderers, RenderSettings(), "yaw spin", 1, ".gif", tmp_path)[1] == \
        f"An animation needs 2..{cb.MAX_ANIMATION_FRAMES} frames, got 1."
    assert cb.export_animation(loaded, renderers, RenderSettings(), "yaw spin", 4, ".gif", tmp_path)[1] == cb.NOTHING_SELECTED


# --------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------

def test_upload_of_two_images_is_extracted(loaded, tmp_path):
    paths = []
    for i in (0, 3):
        paths.append(tmp_path / f"f{i}.png")
        Image.fromarray((loaded.scene.frames[i] * 255).round().byte().permute(1, 2, 0).numpy()).save(paths[-1])
    seen = []
    state, message = cb.load_upload(EditorState(), paths, progress=lambda f, desc=None: seen.append(desc))
    assert state.loaded and state.scene.num_frames == 2 and len(state.scene) >= 1, message
    assert message.startswith(f"Loaded f0.png + f3.png: 2 frames of 128x128, {len(state.scene)} objects")
    assert seen[0] == "reading frames" and seen[-1] == "done"


def test_upload_limit_messages(tmp_path, monkeypatch):
    import neuralassets.scene as scene_module

    def refused(paths):
        state, message = cb.load_upload(EditorState(), paths)
        assert not state.loaded
        return message.removeprefix("Could not open the upload: ")

    assert refused([]) == "nothing uploaded: choose one video, two images or one Scene zip"
    big = tmp_path / "big.mp4"
    with open(big, "wb") as f:  # sparse: no disk is used
        f.truncate((inputs.MAX_UPLOAD_MB + 1) * 1024**2)
    assert refused([big]) == f"big.mp4: {inputs.MAX_UPLOAD_MB + 1:.1f} MB is over the {inputs.MAX_UPLOAD_MB} MB upload limit"

    images = []
    for name, size in (("a.png", (96, 64)), ("b.png", (96, 64)), ("c.png", (96, 64)), ("tiny.png", (16, 40))):
        images.append(tmp_path / name)
        Image.new("RGB", size, (90, 120, 30)).save(images[-1])
    assert refused(images[:3]).startswith("cannot open a.png, b.png, c.png: expected one video")
    assert refused([images[0], images[3]]) == f"tiny.png: 16x40 pixels is under the {inputs.MIN_INPUT_SIDE} pixel minimum per side"
    monkeypatch.setattr(inputs, "MAX_INPUT_SIDE", 80)
    assert refused(images[:2]) == "a.png: 96x64 pixels is over the 80 pixel limit per side"

    clip = write_video(tmp_path / "clip.mp4", torch.rand(30, 3, 64, 96, generator=torch.Generator().manual_seed(0)), fps=10)
    assert refused([clip]) == "clip.mp4: 96x64 pixels is over the 80 pixel limit per side"
    monkeypatch.setattr(inputs, "MAX_INPUT_SIDE", 4096)
    monkeypatch.setattr(inputs, "MAX_VIDEO_SECONDS", 2.0)
    assert refused([clip]) == "clip.mp4: 3.0 s is longer than the 2 s limit; trim it first"
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("frames/00000.png", b"\0" * (3 * 1024**2))  # 3 MB of zeros compress to a few kB
    monkeypatch.setattr(scene_module, "MAX_ZIP_BYTES", 2 * 1024**2)
    assert refused([bomb]) == "bomb.zip: unpacks to 3.0 MB, over the 2.0 MB limit for a Scene zip; refused before extracting"
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    assert refused([broken]) == "broken.zip: not a readable zip archive (File is not a zip file)"


def test_video_upload_keeps_at_most_max_frames(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", torch.rand(40, 3, 64, 96, generator=torch.Generator().manual_seed(0)), fps=20)
    frames = inputs.read_upload_frames([clip])
    stride = math.ceil(40 / inputs.MAX_FRAMES)
    assert frames.shape == (math.ceil(40 / stride), 3, 64, 96) and frames.shape[0] <= inputs.MAX_FRAMES


def test_render_settings_default_to_the_shipped_models_sampling():
    from neuralassets.pipelines.neural_assets import DEFAULT_WEIGHTS

    index = json.loads((DEFAULT_WEIGHTS / "model_index.json").read_text())
    settings = RenderSettings()
    assert (settings.steps, settings.guidance) == (index["num_inference_steps"], index["guidance_scale"])


def test_a_zip_upload_unpacks_inside_the_editors_folder_and_leaves_nothing(loaded, tmp_path, monkeypatch):
    archive = loaded.scene.save_zip(tmp_path / "edited.zip")
    seen = []
    real = Scene.load_zip.__func__

    def spy(cls, path, workdir=None):
        seen.append(workdir)
        return real(cls, path, workdir=workdir)

    monkeypatch.setattr(Scene, "load_zip", classmethod(spy))
    state, message = cb.load_upload(EditorState(), [archive], workdir=tmp_path / "work")
    assert message.startswith("Loaded edited.zip: 8 frames") and state.scene.num_frames == 8
    assert seen == [tmp_path / "work"] and list((tmp_path / "work").iterdir()) == []

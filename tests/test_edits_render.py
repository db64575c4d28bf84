"""Edits re-rendered by the synthetic renderer: an edit changes the image only where it should."""
import pytest
import torch

from neuralassets import edits as E
from neuralassets import geometry as G
from neuralassets.data import GeneratorConfig, generate_scene, render


@pytest.fixture(scope="module")
def scene():
    return generate_scene(5, GeneratorConfig(image_size=64, num_frames=2, min_objects=4, max_objects=5))


def box_region(asset, frame, camera):
    """(H, W) bool: pixels inside the 2D bounds of the asset's projected 3D box at ``frame``, one pixel wider."""
    uv, _ = G.project_box(asset.centers[frame], asset.sizes[frame], asset.rotations[frame], camera.K, camera.R, camera.t)
    x0, y0, x1, y1 = G.bounding_box_2d(uv, camera.width, camera.height).tolist()
    ys = torch.arange(camera.height)[:, None] + 0.5
    xs = torch.arange(camera.width)[None, :] + 0.5
    return (xs >= x0 - 1) & (xs <= x1 + 1) & (ys >= y0 - 1) & (ys <= y1 + 1)


@pytest.mark.filterwarnings("ignore::neuralassets.edits.EditWarning")
def test_move_changes_pixels_only_near_the_object(scene):
    target = 1
    moved_id = max(scene.assets, key=lambda a: float(a.visibility[target])).id
    edited = E.move(scene, moved_id, (0.35, 0.0), frames=target, frame_of_reference="camera")
    camera = scene.cameras[target]
    # Without shadows the renderer is exact per pixel: only the object's old and new footprints may change.
    before = render(scene, frames=[target], shadows=False)
    after = render(edited, frames=[target], shadows=False)
    changed = (before.rgb[0] != after.rgb[0]).any(dim=0)
    near = box_region(scene.asset(moved_id), target, camera) | box_region(edited.asset(moved_id), target, camera)
    assert changed.sum() > 20
    assert not (changed & ~near).any(), f"{int((changed & ~near).sum())} pixels changed away from the moved object"
    # The object itself went right in the image by about the projected offset.
    mask_before, mask_after = before.instance[0] == moved_id, after.instance[0] == moved_id
    shift = mask_after.nonzero().float().mean(0) - mask_before.nonzero().float().mean(0)  # (row, col)
    (uv0, uv1), _ = camera.project(torch.stack([scene.asset(moved_id).centers[target], edited.asset(moved_id).centers[target]]))
    assert shift[1] > 2 and abs(float(shift[1]) - float(uv1[0] - uv0[0])) < 3
    # Frame 0 was not edited and renders identically.
    assert torch.equal(render(scene, frames=[0], shadows=False).rgb, render(edited, frames=[0], shadows=False).rgb)


def test_remove_and_swap_background_render(scene):
    gone_id = scene.assets[0].id
    removed = render(E.remove(scene, gone_id), frames=[1])
    assert gone_id not in removed.instance.unique().tolist()
    other = generate_scene(6, GeneratorConfig(image_size=64, num_frames=1, min_objects=1, max_objects=1))
    swapped = E.swap_background(scene, other)
    assert swapped.background.attributes["backdrop"] == other.metadata["renderer"]["backdrop"]
    out = render(swapped, frames=[1])
    base = render(scene, frames=[1])
    background = base.instance[0] == 0
    assert torch.equal(out.instance, base.instance)  # objects unchanged
    assert (out.rgb[0] != base.rgb[0]).any(dim=0)[background].float().mean() > 0.5  # the backdrop and floor changed

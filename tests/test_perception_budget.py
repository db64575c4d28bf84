"""The object budget: more objects than model slots keeps the edited and the most salient, folds the rest."""
import pytest
import torch

from neuralassets import Asset, Camera, Scene
from neuralassets.edits import move
from neuralassets.errors import ValidationError
from neuralassets.perception import SlotWarning, edited_asset_ids, fit_to_slots, salience


def _scene() -> Scene:
    """Five boxes seen by a camera at (0, -6, 3): ids 1-5 with chosen on-screen size, lifetime (of 4 frames) and distance."""
    T = 4
    cam = Camera.look_at([0.0, -6.0, 3.0], [0.0, 0.0, 0.0], 50.0, 64, 64)
    #        id: (2D box side in pixels, frames seen, floor y of its centre)
    looks = {1: (4, 4, 0.0), 2: (20, 4, 0.0), 3: (10, 1, 3.0), 4: (10, 4, -3.0), 5: (4, 1, 3.0)}
    assets = []
    for i, (side, seen, y) in looks.items():
        visibility = torch.tensor([1.0] * seen + [0.0] * (T - seen))
        boxes = torch.tensor([[0.0, 0.0, side, side]]).repeat(T, 1)
        assets.append(Asset(i, f"box {i}", torch.tensor([[0.0, y, 0.5]]).repeat(T, 1), torch.ones(T, 3),
                            torch.eye(3).repeat(T, 1, 1), boxes, visibility))
    return Scene(torch.full((T, 3, 64, 64), 0.5), [cam] * T, assets)


def test_salience_ranks_size_lifetime_and_nearness_by_hand():
    score = salience(_scene(), frame=0)
    # ranks in [0, 1] (ties share): area 1: 0.125, 2: 1, 3: 0.625, 4: 0.625, 5: 0.125; lifetime 1, 2, 4: 0.75,
    # 3, 5: 0.125; nearness (y = -3 nearest, then 0, then 3): 4: 1, 1 and 2: 0.625, 3 and 5: 0.125
    expected = torch.tensor([0.125 + 0.75 + 0.625, 1 + 0.75 + 0.625, 0.625 + 0.125 + 0.125, 0.625 + 0.75 + 1,
                             0.125 + 0.125 + 0.125]) / 3
    assert torch.allclose(score, expected)


def test_fit_keeps_the_edited_and_the_most_salient_and_says_so_once():
    scene = move(_scene(), 5, [0.1, 0.0, 0.0], check_visibility="ignore")
    assert edited_asset_ids(scene) == [5]
    with pytest.warns(SlotWarning) as said:
        fit = fit_to_slots(scene, slots=3)
    assert len(said) == 1 and "5 objects and the model 3 object slots" in str(said[0].message)
    assert fit.kept == [2, 4, 5] and fit.folded == [1, 3]  # the edited 5, then 4 (0.79) and 2 (0.79) over 1 (0.5)
    assert fit.scene.metadata["folded_into_background"] == [1, 3]
    assert "drew objects 1, 3 as part of the background" in fit.message
    assert len(scene) == 5 and scene.background is None  # the input is left alone; folded pixels stay background
    assert fit.scene.background is None


def test_a_scene_that_fits_is_returned_as_it_is_and_too_many_edits_are_named():
    scene = _scene()
    fit = fit_to_slots(scene, slots=5)
    assert fit.scene is scene and fit.folded == [] and fit.message == ""
    with pytest.raises(ValidationError, match="3 objects are edited but the model has 2 object slots"):
        fit_to_slots(scene, slots=2, keep=[1, 2, 3])
    with pytest.raises(ValidationError, match=r"asset ids \[9\] are not in the scene"):
        fit_to_slots(scene, slots=2, keep=[9])

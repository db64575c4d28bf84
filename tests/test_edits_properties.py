"""Property tests (hypothesis) for edits: inverses, composition, purity and history replay."""
import copy
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralassets import edits as E

# The simple_scene fixture is only read (never mutated: that is one of the properties), so
# sharing it across examples is safe.
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
pytestmark = pytest.mark.filterwarnings("ignore::neuralassets.edits.EditWarning")

metres = st.floats(-2, 2, allow_nan=False, width=32)
delta3 = st.tuples(metres, metres, metres)
angle = st.floats(-math.pi, math.pi, allow_nan=False)
factor = st.floats(0.2, 5.0, allow_nan=False)
asset_id = st.sampled_from([1, 2])
frame_sel = st.one_of(st.none(), st.integers(0, 2), st.lists(st.integers(-3, 2), min_size=1, max_size=3))


def close_poses(a, b, atol):
    assert a.asset_ids == b.asset_ids
    for x, y in zip(a.assets, b.assets):
        for name in ("centers", "sizes", "rotations"):
            assert torch.allclose(getattr(x, name), getattr(y, name), atol=atol), (x.id, name)


# Intermediate states of these compositions may leave the view; the check is tested elsewhere.
FREE = {"check_visibility": "ignore"}


@SETTINGS
@given(aid=asset_id, d=delta3, frames=frame_sel)
def test_move_then_back_is_identity(simple_scene, aid, d, frames):
    there = E.move(simple_scene, aid, d, frames=frames, **FREE)
    back = E.move(there, aid, [-x for x in d], frames=frames, **FREE)
    close_poses(back, simple_scene, atol=1e-5)


@SETTINGS
@given(aid=asset_id, d1=delta3, d2=delta3, frames=frame_sel)
def test_moves_compose_to_their_sum(simple_scene, aid, d1, d2, frames):
    twice = E.move(E.move(simple_scene, aid, d1, frames=frames, **FREE), aid, d2, frames=frames, **FREE)
    once = E.move(simple_scene, aid, [a + b for a, b in zip(d1, d2)], frames=frames, **FREE)
    close_poses(twice, once, atol=1e-5)


@SETTINGS
@given(aid=asset_id, yaw=angle, frames=frame_sel)
def test_rotate_then_back_is_identity(simple_scene, aid, yaw, frames):
    back = E.rotate(E.rotate(simple_scene, aid, yaw=yaw, frames=frames), aid, yaw=-yaw, frames=frames)
    close_poses(back, simple_scene, atol=1e-5)


@SETTINGS
@given(aid=asset_id, f=factor, per_axis=st.booleans(), keep_on_floor=st.booleans(), frames=frame_sel)
def test_scale_then_inverse_is_identity(simple_scene, aid, f, per_axis, keep_on_floor, frames):
    fw = (f, 1.0, 1.0 / f) if per_axis else f
    bw = (1.0 / f, 1.0, f) if per_axis else 1.0 / f
    there = E.scale(simple_scene, aid, fw, frames=frames, keep_on_floor=keep_on_floor, **FREE)
    back = E.scale(there, aid, bw, frames=frames, keep_on_floor=keep_on_floor, **FREE)
    close_poses(back, simple_scene, atol=1e-5)


edit_step = st.one_of(
    st.builds(lambda a, d, f: ("move", {"asset_id": a, "delta": list(d), "frames": f, "check_visibility": "ignore"}),
              asset_id, delta3, frame_sel),
    st.builds(lambda a, y, f: ("rotate", {"asset_id": a, "yaw": y, "frames": f}), asset_id, angle, frame_sel),
    st.builds(lambda a, s: ("scale", {"asset_id": a, "factor": s, "check_visibility": "ignore"}), asset_id, factor),
    st.builds(lambda: ("swap_appearance", {"id_a": 1, "id_b": 2})),
    st.builds(lambda a: ("remove", {"asset_id": a}), asset_id),
)


def run_direct(scene, steps):
    """Apply (op, args) steps, skipping those whose asset an earlier step removed."""
    for op, args in steps:
        if all(args[k] in scene.asset_ids for k in ("asset_id", "id_a", "id_b") if k in args):
            scene = E.OPS[op](scene, **args)
    return scene


@SETTINGS
@given(steps=st.lists(edit_step, min_size=1, max_size=5))
def test_edits_never_mutate_their_input(simple_scene, steps):
    before = copy.deepcopy(simple_scene)
    run_direct(simple_scene, steps)
    for x, y in zip(before.assets, simple_scene.assets):
        for name in ("centers", "sizes", "rotations", "boxes_2d", "visibility", "masks"):
            assert torch.equal(getattr(x, name), getattr(y, name))
        assert (x.name, x.attributes, x.appearance) == (y.name, y.attributes, y.appearance)
    assert torch.equal(before.frames, simple_scene.frames) and simple_scene.background is None
    assert before.metadata == simple_scene.metadata and before.asset_ids == simple_scene.asset_ids


@SETTINGS
@given(aid=asset_id, steps=st.lists(edit_step.filter(lambda s: s[0] not in ("remove", "swap_appearance")), max_size=3))
def test_remove_then_insert_restores_poses(simple_scene, aid, steps):
    edited = run_direct(simple_scene, steps)
    restored = E.insert(E.remove(edited, aid), edited, aid, new_id=aid, check_visibility="ignore")
    restored.assets.sort(key=lambda a: a.id)
    close_poses(restored, edited, atol=0.0)


@SETTINGS
@given(steps=st.lists(edit_step, min_size=1, max_size=5))
def test_saved_history_replays_to_the_same_scene(tmp_path_factory, simple_scene, steps):
    direct = run_direct(simple_scene, steps)
    path = E.save_edits(tmp_path_factory.mktemp("edits") / "edits.json", direct)
    replay = E.apply_edits(simple_scene, E.load_edits(path))
    close_poses(replay, direct, atol=0.0)
    assert replay.metadata == direct.metadata
    assert [a.attributes for a in replay.assets] == [a.attributes for a in direct.assets]

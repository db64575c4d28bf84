"""Training pairs: paper sampling, edit pairs, determinism, collation, workers, shards."""
import json
from dataclasses import fields, replace

import pytest
import torch
from torch.utils.data import DataLoader

from neuralassets import ConfigError, SceneFormatError, ValidationError
from neuralassets.conditioning import Conditioning, conditioning_from_scene, slotted_assets
from neuralassets.data import SPLITS, GeneratorConfig, generate_scene
from neuralassets.data.edit_cases import load_video, make_case
from neuralassets.data.pairs import (
    DONOR_TASKS,
    EDIT_PAIR_TASKS,
    EditPairDataset,
    FramePairDataset,
    ShardedPairDataset,
    collate_pairs,
    pair_frames,
    write_shards,
)

SMALL = GeneratorConfig(image_size=64, max_objects=5)


def _assert_equal_items(a, b):
    for f in fields(Conditioning):
        assert torch.equal(getattr(a[0], f.name), getattr(b[0], f.name)), f.name
    assert torch.equal(a[1], b[1])


def test_pair_frames_follow_the_paper_sampling():
    pairs = [pair_frames(seed, 24) for seed in range(4000)]
    gaps = torch.tensor([t - s for s, t in pairs])
    assert all(0 <= s < 24 and 0 <= t < 24 for s, t in pairs)
    assert gaps.abs().max() == 23 and (gaps == 0).any()
    assert 0.45 < (gaps < 0).float().sum() / (gaps != 0).float().sum() < 0.55  # order swapped half the time
    counts = torch.bincount(gaps.abs(), minlength=24).float()
    assert counts.min() > 0.6 * counts.mean() and counts.max() < 1.4 * counts.mean()  # |dt| uniform
    assert pair_frames(7, 24) == pair_frames(7, 24)


def test_item_is_the_conditioning_of_the_scene_frames():
    data = FramePairDataset("val", 3, max_objects=6, config=SMALL)
    cond, target = data[1]
    seed = SPLITS["val"][1]
    source_frame, target_frame = pair_frames(seed, 24)
    full = generate_scene(seed, data.config)
    assert torch.equal(target, full.frames[target_frame])
    assert cond.batch_size == 1 and cond.max_objects == 6 and target.shape == (3, 64, 64)
    visible = sum(int(a.visibility[source_frame] > 0) for a in full.assets)
    assert int(cond.object_mask.sum()) == visible
    _assert_equal_items(data[1], data[1])


def test_collate_and_dataloader_workers_give_the_same_batches():
    data = FramePairDataset("train", 4, max_objects=5, config=SMALL, seed_offset=100)
    direct = collate_pairs([data[i] for i in range(4)])
    assert direct[1].shape == (4, 3, 64, 64) and direct[0].batch_size == 4
    loader = DataLoader(data, batch_size=2, num_workers=2, collate_fn=collate_pairs)
    batches = list(loader)
    for f in fields(Conditioning):
        assert torch.equal(torch.cat([getattr(b[0], f.name) for b in batches]), getattr(direct[0], f.name)), f.name
    assert torch.equal(torch.cat([b[1] for b in batches]), direct[1])


def test_max_objects_caps_the_scenes():
    data = FramePairDataset("train", 1, max_objects=3, config=GeneratorConfig(image_size=64))
    assert data.config.max_objects == 3 and data.config.min_objects == 3
    assert int(data[0][0].object_mask.sum()) <= 3


def test_dataset_arguments_are_validated():
    with pytest.raises(ValidationError, match="split"):
        FramePairDataset("training", 1, 4)
    with pytest.raises(ValidationError, match="do not fit"):
        FramePairDataset("val", 10**4 + 1, 4)
    with pytest.raises(IndexError):
        FramePairDataset("val", 2, 4, SMALL)[2]


def test_shards_round_trip_exactly_and_resume(tmp_path):
    out = tmp_path / "pairs"
    write_shards(out, "val", 5, max_objects=5, config=SMALL, shard_size=2, progress=False)
    assert sorted(p.name for p in out.glob("shard_*")) == [f"shard_0000{k}.safetensors" for k in range(3)]
    data = ShardedPairDataset(out)
    live = FramePairDataset("val", 5, max_objects=5, config=SMALL)
    assert len(data) == 5
    for i in (0, 3, 4):
        _assert_equal_items(data[i], live[i])

    # Resuming skips complete shards (their bytes stay) and rewrites only the missing one.
    kept = (out / "shard_00000.safetensors").stat().st_mtime_ns
    (out / "shard_00001.safetensors").unlink()
    with pytest.raises(SceneFormatError, match="shard_00001"):
        ShardedPairDataset(out)
    write_shards(out, "val", 5, max_objects=5, config=SMALL, shard_size=2, progress=False)
    assert (out / "shard_00000.safetensors").stat().st_mtime_ns == kept
    _assert_equal_items(ShardedPairDataset(out)[2], live[2])

    # A folder written before a generator field existed resumes: the field had its default there.
    meta = json.loads((out / "dataset.json").read_text())
    del meta["config"]["resize_probability"]
    (out / "dataset.json").write_text(json.dumps(meta))
    (out / "shard_00002.safetensors").unlink()
    write_shards(out, "val", 5, max_objects=5, config=SMALL, shard_size=2, progress=False)
    _assert_equal_items(ShardedPairDataset(out)[4], live[4])

    with pytest.raises(ConfigError, match="max_objects"):
        write_shards(out, "val", 5, max_objects=6, config=SMALL, shard_size=2, progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(SceneFormatError, match="format_version"):
        ShardedPairDataset(out)


def test_edit_pairs_are_the_benchmark_edits_of_train_videos():
    data = EditPairDataset("val", len(EDIT_PAIR_TASKS), max_objects=6, config=SMALL)  # a slot to insert into
    for i, task in enumerate(EDIT_PAIR_TASKS):  # item i takes task i (mod the task count)
        seed = SPLITS["val"][i]
        video = load_video(seed, data.config)
        donor = load_video(SPLITS["val"][i + 1], data.config) if task in DONOR_TASKS else video
        assert data.donor_seed(i) == SPLITS["val"][i + 1]
        case = make_case(task, i, seed, video, donor)
        assert case is not None, task
        cond, target = data[i]
        assert torch.equal(target, case.target), task
        assert not torch.equal(target, case.source), task  # the target shows the edit, not the source
        expected = conditioning_from_scene(case.scene, 1, 6, source_frame=0)
        _assert_equal_items((cond, target), (expected, case.target))
    _assert_equal_items(data[2], data[2])


def test_edit_pairs_fall_back_to_the_next_task_then_to_the_video_pair():
    two = GeneratorConfig(image_size=64, min_objects=1, max_objects=2)  # never three objects for multi_object
    alone = EditPairDataset("val", 2, max_objects=5, config=two, tasks=("multi_object",))
    _assert_equal_items(alone[1], FramePairDataset("val", 2, max_objects=5, config=two)[1])
    then_scale = EditPairDataset("val", 2, max_objects=5, config=two, tasks=("multi_object", "scale"))
    seed = SPLITS["val"][0]
    video = load_video(seed, then_scale.config)
    assert torch.equal(then_scale[0][1], make_case("scale", 0, seed, video, video).target)
    # an insertion into a scene whose objects fill every slot is not drawn: the video pair stands in
    full = EditPairDataset("val", 8, max_objects=5, config=SMALL, tasks=("insertion",))
    video_pairs = FramePairDataset("val", 8, max_objects=5, config=SMALL)
    crowded = [i for i in range(8) if len(slotted_assets(load_video(SPLITS["val"][i], SMALL, novel_pose=False).still, 0)) == 5]
    assert crowded and len(crowded) < 8
    for i in range(8):
        assert torch.equal(full[i][1], video_pairs[i][1]) == (i in crowded)
    with pytest.raises(ValidationError, match="novel_pose.*edit pairs support translation"):
        EditPairDataset("val", 1, 5, SMALL, tasks=("translation", "novel_pose"))
    with pytest.raises(ValidationError, match="none given"):
        EditPairDataset("val", 1, 5, SMALL, tasks=())


def test_edit_pair_shards_round_trip_and_record_their_tasks(tmp_path):
    out = tmp_path / "edits"
    tasks = ("insertion", "background", "removal", "swap")  # a donor object, a donor background, greyed boxes, one photo
    write_shards(out, "val", 4, max_objects=6, config=SMALL, shard_size=3, progress=False, edit_tasks=tasks)
    assert json.loads((out / "dataset.json").read_text())["edit_tasks"] == list(tasks)
    live = EditPairDataset("val", 4, max_objects=6, config=SMALL, tasks=tasks)
    assert [live[i][0].appearance_images.shape[1] for i in range(4)] == [2, 1, 1, 1]
    for i in range(4):
        _assert_equal_items(ShardedPairDataset(out)[i], live[i])
    with pytest.raises(ConfigError, match="edit_tasks"):
        write_shards(out, "val", 4, max_objects=6, config=SMALL, shard_size=3, progress=False)


def test_version_1_shards_are_still_read(tmp_path):
    """Version 1 stored one source photo that gave appearance and background; such folders still load exactly."""
    from safetensors.torch import load_file, save_file

    out = tmp_path / "pairs"
    write_shards(out, "val", 2, max_objects=5, config=SMALL, shard_size=2, progress=False)
    shard = load_file(str(out / "shard_00000.safetensors"))
    old = {k: v for k, v in shard.items() if k not in ("photos", "appearance_count", "background_photo",
                                                       "background_boxes", "background_box_mask", "object_source_poses")}
    save_file({**old, "source": shard["photos"][:, 0].contiguous()}, str(out / "shard_00000.safetensors"))
    meta = json.loads((out / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**meta, "format_version": 1}))
    live = FramePairDataset("val", 2, max_objects=5, config=SMALL)
    for i in range(2):
        cond, target = live[i]
        assert cond.object_source_poses[cond.object_mask].abs().amin(dim=-1).gt(0).all()
        unknown = replace(cond, object_source_poses=torch.zeros_like(cond.object_source_poses))  # not stored before version 4
        _assert_equal_items(ShardedPairDataset(out)[i], (unknown, target))

"""Dataset clips as square scenes, pairs drawn from them, and `data make --from` shards the denoiser trains on."""
import json

import pytest
import torch
from dataset_fixtures import movi_example, write_objectron, write_tfrecord
from test_models import one_thread  # noqa: F401 (autouse fixture)
from test_training import tiny_config

from neuralassets.cli import main
from neuralassets.conditioning import conditioning_from_scene
from neuralassets.data.datasets import ClipPairDataset, DatasetClips, fit_to_slots, square_scene
from neuralassets.data.movi import read_movi
from neuralassets.data.objectron import read_objectron
from neuralassets.data.pairs import ShardedPairDataset, pair_frames
from neuralassets.errors import ValidationError
from neuralassets.framing import resized_scene
from neuralassets.image_ops import from_uint8, to_uint8


@pytest.fixture(scope="module")
def movi_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("movi_e")
    write_tfrecord(folder / "movi_e-train.tfrecord-00000-of-00001", [movi_example(seed=s)[0] for s in range(2)])
    write_tfrecord(folder / "movi_e-validation.tfrecord-00000-of-00001", [movi_example(seed=5)[0]])
    return folder


def test_resized_scene_scales_intrinsics_boxes_masks_and_depth(movi_folder):
    scene = read_movi(movi_folder)
    half = resized_scene(scene, 12, 12)
    assert half.frames.shape[-2:] == (12, 12) and half.depth.shape[-2:] == (12, 12)
    point = scene.assets[0].box(1).corners()
    uv, _ = scene.cameras[1].project(point)
    uv_half, _ = half.cameras[1].project(point)
    assert torch.allclose(uv_half, uv / 2, atol=1e-5)  # the same points at half the pixels
    assert torch.equal(half.assets[0].boxes_2d, scene.assets[0].boxes_2d / 2)
    assert torch.equal(half.assets[0].masks, scene.assets[0].masks[:, 1::2, 1::2])  # nearest: the centre pixel of each 2x2
    assert torch.equal(half.depth, scene.depth[:, 1::2, 1::2])
    assert torch.equal(scene.assets[0].masks, read_movi(movi_folder).assets[0].masks)  # the input is untouched


def test_objectron_clips_are_cut_to_their_centred_square(tmp_path):
    truth = write_objectron(tmp_path / "clip")
    full = read_objectron(tmp_path / "clip" / "video.MOV", tmp_path / "clip" / "annotation.pbdata", max_side=None)
    square = square_scene(full, 24)  # 24 x 32 portrait: rows 4 to 28 kept
    assert square.frames.shape[-2:] == (24, 24) and torch.equal(square.frames, full.frames[:, :, 4:28])
    for f in range(4):
        corners = full.assets[0].box(f).corners()
        uv, _ = full.cameras[f].project(corners)
        uv_square, _ = square.cameras[f].project(corners)
        assert torch.allclose(uv_square, uv - torch.tensor([0.0, 4.0]), atol=1e-4)
    clips = DatasetClips("objectron", tmp_path / "clip", image_size=12, num_frames=3)
    scene = clips.scene(0)
    assert len(clips) == 1 and scene.frames.shape == (3, 3, 12, 12) and scene.metadata["objectron"]["frame_ids"] == [0, 2, 3]
    assert truth.visibility.shape == (4, 2)


def test_pairs_keep_the_objects_seen_in_the_source_largest_first(movi_folder):
    scene = read_movi(movi_folder)
    fitted = fit_to_slots(scene, source=1, target=0, max_objects=4)
    assert [a.id for a in fitted.assets] == [1]  # asset 2 is hidden in frame 1: no appearance to take
    assert [a.id for a in fit_to_slots(scene, 0, 2, 1)] == [2]  # its box is larger than asset 1's in frame 0
    assert [a.id for a in scene.assets] == [1, 2]
    clips = DatasetClips("movi-e", movi_folder, image_size=32, split="train")
    pairs = ClipPairDataset(clips, length=5, max_objects=4)
    assert pairs.per_clip == 3 and pairs.describe(4).startswith("pair 4 (movi-e clip 1 (movi_e-train.tfrecord-00000-of-00001")
    for index in range(5):
        pair, source, target = pairs.pair(index)
        clip = square_scene(read_movi(movi_folder, index // 3, "train"), 32)
        frames = pair_frames(index, 3)
        assert torch.equal(pair.frames[target], clip.frames[frames[1]]) and torch.equal(pair.frames[source], clip.frames[frames[0]])
        cond, image = pairs[index]
        assert torch.equal(image, clip.frames[frames[1]]) and int(cond.object_mask.sum()) == len(pair.assets)
        for slot, asset in enumerate(pair.assets):
            assert torch.allclose(cond.object_poses[0, slot], clip.asset(asset.id).pose_features(frames[1], clip.cameras[frames[1]]))
    with pytest.raises(ValidationError, match="dataset: 'kitti' is not one of movi-e, objectron"):
        DatasetClips("kitti", movi_folder, 32)


def test_data_make_from_movi_writes_shards_the_denoiser_trains_on(movi_folder, tmp_path, capsys):
    out = tmp_path / "shards"
    args = ["data", "make", "--from", "movi-e", str(movi_folder), "--n", "4", "--out", str(out), "--image-size", "32",
            "--max-objects", "4", "--shard-size", "3"]
    assert main(args) == 0
    assert "wrote 4 movi-e pairs" in capsys.readouterr().out
    meta = json.loads((out / "dataset.json").read_text())
    assert (meta["dataset"], meta["clips"], meta["split"], meta["length"], meta["image_size"]) == ("movi-e", 2, "train", 4, 32)
    shards = ShardedPairDataset(out)
    pairs = ClipPairDataset(DatasetClips("movi-e", movi_folder, 32, "train"), 4, 4)
    for index in range(4):
        stored, target = shards[index]
        made, expected = pairs[index]
        assert torch.equal(target, from_uint8(to_uint8(expected)))
        for name in ("object_poses", "object_boxes", "object_mask", "camera_pose", "object_target_boxes"):
            assert torch.equal(getattr(stored, name), getattr(made, name)), name
    assert main(args) == 0  # a rerun finds every shard written
    capsys.readouterr()
    assert main([*args[:-4], "--max-objects", "3", "--shard-size", "3"]) == 2
    assert "holds a dataset made with other settings (max_objects differ)" in capsys.readouterr().err
    assert main([*args, "--edits", "translation"]) == 2
    assert "--edits: options of synthetic pairs" in capsys.readouterr().err
    # the denoiser stage reads the shards and takes a step on them
    from neuralassets.training import Trainer

    config = tiny_config(tmp_path, max_steps=1, checkpoint_every=100)
    config.data.source, config.data.shard_folder = "shards", str(out)
    trainer = Trainer(config)
    losses = trainer.train()
    assert len(losses) == 1 and torch.isfinite(torch.tensor(losses)).all()
    assert len(trainer.pairs) == 4 and (tmp_path / "run" / "pipeline" / "model_index.json").is_file()


def test_conditioning_of_a_clip_pair_matches_the_scene(movi_folder):
    clips = DatasetClips("movi-e", movi_folder, image_size=32, split="validation")
    scene = clips.scene(0)
    cond = conditioning_from_scene(fit_to_slots(scene, 0, 2, 4), 2, 4, source_frame=0)
    assert cond.appearance_images.shape == (1, 1, 3, 32, 32) and bool(cond.object_mask[0, :2].all())
    assert float(cond.appearance_depths[0, 0].max()) > 0  # MOVi photos carry their depth and object slots
    assert int(cond.appearance_slots[0, 0].max()) == 1

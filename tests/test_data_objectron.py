"""Objectron clips: annotation protobuf and video written here, every field checked in the Scene read."""
import shutil

import numpy as np
import pytest
import torch
from dataset_fixtures import write_objectron

from neuralassets import SceneFormatError, VideoError
from neuralassets.data.objectron import annotated_frames, objectron_clips, parse_sequence, read_annotation, read_objectron


def keypoint_of_corner(i: int) -> int:
    """Objectron's keypoint index (1 + itertools.product order) of our corner i (x + 2y + 4z)."""
    return 1 + 4 * (i & 1) + 2 * ((i >> 1) & 1) + ((i >> 2) & 1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("objectron") / "clip"
    truth = write_objectron(folder)
    return folder, truth


def test_every_objectron_field_reads_into_the_scene(clip):
    folder, truth = clip
    scene = read_objectron(folder / "video.MOV", folder / "annotation.pbdata", max_side=None)
    T, H_l, W_l = truth.landscape_frames.shape[:3]
    assert scene.frames.shape == (T, 3, W_l, H_l)  # upright: the landscape stream turned 90 degrees clockwise
    upright = np.stack([np.rot90(f, k=-1) for f in truth.landscape_frames])
    assert torch.equal((scene.frames * 255).round().byte().permute(0, 2, 3, 1), torch.from_numpy(upright.copy()))
    assert [int(scene.frames[f, 1, 0, -1] * 255 + 0.5) for f in range(T)] == [0, 30, 60, 90]  # frame order
    H, W = scene.height, scene.width
    # each box keypoint lands where Objectron's projection * view matrices put it, at the depth it gives
    for f, cam in enumerate(scene.cameras):
        for k, asset in enumerate(scene.assets):
            if truth.visibility[f, k] == 0:
                continue
            corners = asset.box(f).corners()
            points = torch.cat([asset.centers[f][None], corners])
            uv, depth = cam.project(points)
            expected = torch.tensor(truth.keypoints_2d[f, k, [0] + [keypoint_of_corner(i) for i in range(8)]], dtype=torch.float32)
            assert torch.allclose(uv, expected[:, :2] * torch.tensor([W, H]), atol=2e-3), (f, k)
            assert torch.allclose(depth, expected[:, 2], atol=1e-4), (f, k)
            assert torch.allclose(asset.boxes_2d[f], torch.cat([uv[1:].amin(0), uv[1:].amax(0)]).clamp(min=0)
                                  .minimum(torch.tensor([W, H, W, H], dtype=torch.float32)), atol=1e-4)
    # the world is z up with the support plane at z = 0: both boxes stand on it
    for asset in scene.assets:
        assert asset.box(0).corners()[:, 2].min().item() == pytest.approx(0.0, abs=1e-5)
        assert asset.centers.std(0).max() == 0 and asset.sizes.std(0).max() == 0  # Objectron objects do not move
    assert torch.allclose(scene.assets[0].sizes[0], torch.tensor(truth.scales[0], dtype=torch.float32))
    assert scene.metadata["objectron"]["floor_height"] == pytest.approx(truth.plane_height, abs=1e-5)
    for cam in scene.cameras:  # the portrait camera's image "down" points down the world
        assert (cam.R[1] @ torch.tensor([0.0, 0.0, -1.0])).item() > 0.5
        assert torch.allclose(cam.K[0, 0], torch.tensor(31.0)) and torch.allclose(cam.K[1, 1], torch.tensor(30.0))
    # identity and visibility: ids from annotation order, the same in every frame
    assert [a.id for a in scene.assets] == [1, 2] and [a.name for a in scene.assets] == ["cup 0", "book 7"]
    assert [a.category for a in scene.assets] == ["cup", "book"] and scene.assets[1].attributes == {"objectron_id": 7}
    assert torch.allclose(scene.assets[1].visibility, torch.tensor(truth.visibility[:, 1], dtype=torch.float32))
    assert scene.assets[1].boxes_2d[2].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert scene.depth is None and all(a.masks is None for a in scene.assets)
    assert scene.metadata["objectron"]["frame_ids"] == [0, 1, 2, 3]
    assert scene.metadata["objectron"]["timestamps"] == pytest.approx([f / 30 for f in range(T)])


def test_a_video_decoded_upright_a_subset_of_frames_and_a_smaller_size_agree(clip, tmp_path):
    folder, truth = clip
    full = read_objectron(folder / "video.MOV", folder / "annotation.pbdata", max_side=None)
    write_objectron(tmp_path / "portrait", portrait_video=True)
    upright = read_objectron(tmp_path / "portrait" / "video.MOV", tmp_path / "portrait" / "annotation.pbdata", max_side=None)
    assert torch.equal(upright.frames, full.frames)
    subset = read_objectron(folder / "video.MOV", folder / "annotation.pbdata", frames=[1, 3], max_side=None)
    assert torch.equal(subset.frames, full.frames[[1, 3]]) and subset.metadata["objectron"]["frame_ids"] == [1, 3]
    assert torch.equal(subset.cameras[1].R, full.cameras[3].R) and torch.equal(subset.assets[1].visibility,
                                                                               full.assets[1].visibility[[1, 3]])
    small = read_objectron(folder / "video.MOV", folder / "annotation.pbdata", max_side=16)
    assert small.frames.shape[-2:] == (16, 12)
    for f in range(4):  # the intrinsics follow the frames: the same points at half the pixels
        uv_small, _ = small.cameras[f].project(full.assets[0].box(f).corners())
        uv_full, _ = full.cameras[f].project(full.assets[0].box(f).corners())
        assert torch.allclose(uv_small * 2, uv_full, atol=1e-4)
    assert annotated_frames(read_annotation(folder / "annotation.pbdata"), 3) == [0, 2, 3]


def test_objectron_layouts_and_errors_are_named(clip, tmp_path):
    folder, _ = clip
    root = tmp_path / "objectron"
    (root / "annotations" / "cup" / "batch-1").mkdir(parents=True)
    shutil.copy(folder / "annotation.pbdata", root / "annotations" / "cup" / "batch-1" / "3.pbdata")
    shutil.copy(folder / "annotation.pbdata", root / "annotations" / "cup" / "batch-1" / "4.pbdata")  # no video: left out
    (root / "videos" / "cup" / "batch-1" / "3").mkdir(parents=True)
    shutil.copy(folder / "video.MOV", root / "videos" / "cup" / "batch-1" / "3" / "video.MOV")
    assert objectron_clips(root) == [(root / "videos" / "cup" / "batch-1" / "3" / "video.MOV",
                                      root / "annotations" / "cup" / "batch-1" / "3.pbdata")]
    assert objectron_clips(folder) == [(folder / "video.MOV", folder / "annotation.pbdata")]
    with pytest.raises(SceneFormatError, match="no Objectron clip found"):
        objectron_clips(tmp_path)
    with pytest.raises(SceneFormatError, match=r"frames \[9\] are not annotated"):
        read_objectron(folder / "video.MOV", folder / "annotation.pbdata", frames=[1, 9])
    with pytest.raises(SceneFormatError, match="bad.pbdata: malformed protocol buffer"):
        (tmp_path / "bad.pbdata").write_bytes(b"\x12\x40abc")
        read_annotation(tmp_path / "bad.pbdata")
    with pytest.raises(SceneFormatError, match="no frame_annotations"):
        parse_sequence(b"")
    short = tmp_path / "short"
    write_objectron(short, T=2)
    shutil.copy(folder / "annotation.pbdata", short / "annotation.pbdata")  # 4 annotated frames, a 2-frame video
    with pytest.raises(VideoError, match="video.MOV: holds 2 frames, the annotation asks for frame 3"):
        read_objectron(short / "video.MOV", short / "annotation.pbdata")

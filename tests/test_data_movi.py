"""MOVi TFDS records read without TensorFlow: framing and CRCs, tf.train.Example, every field of the Scene."""
import math

import numpy as np
import pytest
import torch
from dataset_fixtures import blender_pixel, crc32c_bitwise, example, float_feature, int_feature, movi_example, write_tfrecord

from neuralassets import SceneFormatError
from neuralassets.data import protowire
from neuralassets.data.movi import MOVI_E_CATEGORIES, movi_files, movi_records, read_movi
from neuralassets.data.tfrecord import crc32c, index_records, masked_crc32c, parse_example, read_record


def test_crc32c_matches_the_bitwise_definition_at_every_length():
    assert crc32c_bitwise(b"123456789") == crc32c(b"123456789") == 0xE3069283  # the standard check value
    rng = np.random.default_rng(0)
    for n in (0, 1, 3, 4, 5, 1000, 16383, 16384, 16385, 50_001):
        data = rng.integers(0, 256, n).astype(np.uint8).tobytes()
        assert crc32c(data) == crc32c_bitwise(data), n
    crc = crc32c_bitwise(b"abc")
    assert masked_crc32c(b"abc") == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def test_protowire_decodes_hand_encoded_bytes():
    message = bytes([0x08, 0x96, 0x01, 0x12, 0x02, 0x68, 0x69, 0x1D]) + np.float32(2.5).tobytes()
    groups = protowire.by_number(message)
    assert protowire.scalar(groups, 1, "int") == 150 and protowire.scalar(groups, 2, "str") == "hi"
    assert protowire.scalar(groups, 3, "float") == 2.5 and protowire.scalar(groups, 4, "int", default=-1) == -1
    packed = bytes([0x01, 0xAC, 0x02]) + bytes([0xFF] * 9 + [0x01])  # 1, 300, -1 (ten bytes, two's complement)
    assert protowire.packed_varints(packed).tolist() == [1, 300, -1]
    with pytest.raises(SceneFormatError, match="end inside a varint"):
        protowire.packed_varints(bytes([0x81]))
    with pytest.raises(SceneFormatError, match="runs past the end"):
        list(protowire.fields(bytes([0x12, 0x05, 0x68])))


def test_tfrecords_are_indexed_and_checked(tmp_path):
    path = write_tfrecord(tmp_path / "x.tfrecord-00000-of-00001", [b"first", b"", b"third record"])
    records = index_records(path)
    assert [read_record(r) for r in records] == [b"first", b"", b"third record"]
    corrupt = bytearray(path.read_bytes())
    corrupt[12] ^= 1  # a bit of the first record's data
    path.write_bytes(bytes(corrupt))
    with pytest.raises(SceneFormatError, match="data's CRC does not match"):
        read_record(index_records(path)[0])
    path.write_bytes(bytes(corrupt[:-3]))
    with pytest.raises(SceneFormatError, match=r"record 2 .*ends before them|record 2 .*truncated"):
        index_records(path)
    (tmp_path / "bad.tfrecord").write_bytes(b"not a tfrecord at all")
    with pytest.raises(SceneFormatError, match="length's CRC does not match"):
        index_records(tmp_path / "bad.tfrecord")


def test_example_features_decode_on_demand_and_name_wrong_kinds():
    parsed = parse_example(example({"a": float_feature([1.5, -2.0]), "b": int_feature([3, -4, 2**40])}))
    assert parsed.names == ["a", "b"] and "a" in parsed and "c" not in parsed
    assert parsed.floats("a").tolist() == [1.5, -2.0] and parsed.ints("b").tolist() == [3, -4, 2**40]
    with pytest.raises(SceneFormatError, match="'a' is a float list, expected a int64 list"):
        parsed.ints("a")
    with pytest.raises(SceneFormatError, match="'c' is missing"):
        parsed.floats("c")


@pytest.fixture(scope="module")
def movi_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("movi_e") / "256x256" / "1.0.0"
    folder.mkdir(parents=True)
    first, truth = movi_example(seed=0)
    second, _ = movi_example(seed=1)
    write_tfrecord(folder / "movi_e-train.tfrecord-00000-of-00002", [first])
    write_tfrecord(folder / "movi_e-train.tfrecord-00001-of-00002", [second])
    write_tfrecord(folder / "movi_e-validation.tfrecord-00000-of-00001", [second])
    return folder.parents[1], truth


def test_every_movi_field_reads_into_the_scene(movi_dataset):
    root, truth = movi_dataset
    scene = read_movi(root, 0, split="train")
    T, H, W = truth.frames.shape[:3]
    assert scene.frames.shape == (T, 3, H, W)
    assert torch.equal((scene.frames * 255).round().byte().permute(0, 2, 3, 1), torch.from_numpy(truth.frames))
    assert [int(scene.frames[f, 0, 0, 0] * 255 + 0.5) for f in range(T)] == [10, 20, 30]  # frame order
    # cameras: a world point lands where Blender's own camera model draws it
    f_px = truth.focal_mm / truth.sensor_mm * W
    for f, cam in enumerate(scene.cameras):
        assert torch.allclose(cam.K, torch.tensor([[f_px, 0, W / 2], [0, f_px, H / 2], [0, 0, 1]]))
        assert torch.allclose(cam.center, torch.tensor(truth.positions[f], dtype=torch.float32), atol=1e-5)
        for point in ([0.0, 0.0, 0.0], [1.0, -0.5, 0.8], [-1.2, 1.0, 0.1]):
            uv, z = cam.project(torch.tensor([point]))
            expected = blender_pixel(point, truth.positions[f], truth.quaternions[f], truth.focal_mm, truth.sensor_mm, W, H)
            assert torch.allclose(uv[0], torch.tensor(expected, dtype=torch.float32), atol=1e-3) and z[0] > 0
    # assets: ids are segmentation values, the same in every frame; boxes, masks, names, attributes
    assert [a.id for a in scene.assets] == [1, 2] and [a.name for a in scene.assets] == truth.names
    assert [a.category for a in scene.assets] == [MOVI_E_CATEGORIES[16], MOVI_E_CATEGORIES[14]] == ["Toys", "Shoe"]
    assert scene.assets[0].attributes == {"scale": 1.5, "is_dynamic": 1, "mass": 2.0, "category": "Toys"}
    for k, a in enumerate(scene.assets):
        assert torch.equal(a.masks, torch.from_numpy(truth.segmentation == k + 1))
        assert torch.allclose(a.centers, torch.tensor(truth.centers[k], dtype=torch.float32), atol=1e-5)
        assert torch.allclose(a.sizes, torch.tensor(truth.sizes[k], dtype=torch.float32).expand(T, 3), atol=1e-5)
        assert torch.allclose(a.rotations, torch.tensor(truth.rotations[k], dtype=torch.float32), atol=1e-5)
        for f in range(T):  # our corner 1 is (+x, -y, -z): Kubric's product index 4
            local = torch.tensor([0.5, -0.5, -0.5]) * a.sizes[f]
            assert torch.allclose(a.box(f).corners()[1], a.rotations[f] @ local + a.centers[f], atol=1e-5)
    hidden = scene.assets[1]
    assert hidden.visibility.tolist() == [1.0, 0.0, 1.0] and hidden.boxes_2d[0].tolist() == [12.0, 10.0, 20.0, 16.0]
    assert scene.assets[0].boxes_2d[1].tolist() == [3.0, 2.0, 10.0, 8.0]
    # depth: the ray distance quantised to 16 bits over depth_range, turned into camera-frame z
    cam = scene.cameras[2]
    for v, u in ((0, 0), (5, 17), (H - 1, W - 1)):
        x, y = (u + 0.5 - W / 2) / f_px, (v + 0.5 - H / 2) / f_px
        assert scene.depth[2, v, u].item() == pytest.approx(truth.distance[2, v, u] / math.sqrt(1 + x * x + y * y), rel=1e-5)
    assert scene.metadata["kubric"]["video_name"] == "42" and scene.metadata["kubric"]["depth_range"] == [2.0, 12.0]
    assert scene.metadata["kubric"]["background"] == "sky_dome"


def test_movi_files_by_split_and_errors_name_the_record(movi_dataset, tmp_path):
    root, _ = movi_dataset
    assert [p.name for p in movi_files(root, "train")] == ["movi_e-train.tfrecord-00000-of-00002",
                                                           "movi_e-train.tfrecord-00001-of-00002"]
    assert len(movi_records(root)) == 3 and len(movi_records(root, "validation")) == 1
    assert not torch.equal(read_movi(root, 1, "train").frames, read_movi(root, 0, "train").frames)
    with pytest.raises(SceneFormatError, match="holds no TFRecord files of split 'test'"):
        movi_files(root, "test")
    with pytest.raises(SceneFormatError, match="video 5 asked for, the dataset holds 2"):
        read_movi(root, 5, "train")
    broken, _ = movi_example(drop=("camera/quaternions",))
    write_tfrecord(tmp_path / "broken.tfrecord", [broken])
    with pytest.raises(SceneFormatError, match=r"broken.tfrecord: record at byte 0: feature 'camera/quaternions' is missing"):
        read_movi(tmp_path / "broken.tfrecord")


def test_a_generated_scene_through_kubric_and_tfds_reads_back(tmp_path):
    from dataset_fixtures import movi_example_from_kubric

    from neuralassets.data import GeneratorConfig, generate_scene
    from neuralassets.data.kubric import write_kubric

    scene = generate_scene(7, GeneratorConfig(image_size=48, num_frames=3))
    record = movi_example_from_kubric(write_kubric(scene, tmp_path / "kubric"))
    back = read_movi(write_tfrecord(tmp_path / "movi_e-test.tfrecord-00000-of-00001", [record]))
    assert torch.equal(back.frames, scene.frames)
    step = (scene.depth.max() - scene.depth.min()).item() / 65535  # the 16-bit quantisation of the ray distance
    assert (back.depth - scene.depth).abs().max().item() < 2 * step + 1e-4
    for c, d in zip(back.cameras, scene.cameras):
        assert torch.allclose(c.K, d.K, atol=1e-4) and torch.allclose(c.R, d.R, atol=1e-5) and torch.allclose(c.t, d.t, atol=1e-5)
    for a, b in zip(back.assets, scene.assets):
        assert a.id == scene.assets.index(b) + 1 and a.name == b.name and torch.equal(a.masks, b.masks)
        assert torch.allclose(a.centers, b.centers, atol=1e-5) and torch.allclose(a.sizes, b.sizes, atol=1e-5)
        assert torch.allclose(a.rotations, b.rotations, atol=1e-5) and torch.equal(a.boxes_2d, b.boxes_2d)

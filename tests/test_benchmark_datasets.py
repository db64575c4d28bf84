"""The pose-edit benchmark on public datasets' clips: novel-pose cases, the same methods and report."""
import json

import pytest
import torch
from dataset_fixtures import movi_example, write_objectron, write_tfrecord
from test_models import TINY, one_thread, tiny_pipeline  # noqa: F401 (one_thread: autouse fixture)

from neuralassets.cli import main
from neuralassets.data.datasets import DatasetClips, novel_pose_case
from neuralassets.data.edit_cases import frame_pair
from neuralassets.metrics import psnr, region_mask


@pytest.fixture(scope="module")
def movi_validation(tmp_path_factory):
    folder = tmp_path_factory.mktemp("movi_e")
    write_tfrecord(folder / "movi_e-validation.tfrecord-00000-of-00001", [movi_example(seed=s)[0] for s in (3, 4)])
    return folder


def test_a_novel_pose_case_poses_the_source_as_another_frame_of_its_clip(movi_validation):
    clips = DatasetClips("movi-e", movi_validation, 32, "validation")
    case = novel_pose_case(clips, 1, max_objects=3)
    clip = clips.scene(1)
    source, target = frame_pair(1, 3)
    assert (case.task, case.index, case.params["source_frame"], case.params["target_frame"]) == ("novel_pose", 1, source, target)
    assert torch.equal(case.source, clip.frames[source]) and torch.equal(case.target, clip.frames[target])
    assert torch.equal(case.scene.frames[1], clip.frames[source])  # the method never sees the target's pixels
    for asset in case.scene.assets:  # but has its boxes and camera
        assert torch.equal(asset.centers[1], clip.asset(asset.id).centers[target])
        assert torch.equal(asset.masks[1], asset.masks[0])
    assert torch.equal(case.scene.cameras[1].R, clip.cameras[target].R)
    assert case.edited_ids == [a.id for a in case.scene.assets]
    assert torch.equal(case.region, region_mask(case.scene, case.edited_ids, (0, 1)))


def _tiny_dino(folder):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             patch_size=8, image_size=32)).save_pretrained(folder)
    return folder


def test_bench_on_movi_scores_every_method_with_dino_similarity(movi_validation, tmp_path, capsys):
    model = tmp_path / "tiny"
    tiny_pipeline(TINY).save_pretrained(model)
    out = tmp_path / "results"
    code = main(["bench", "--dataset", "movi-e", str(movi_validation), "--split", "val", "--model", str(model),
                 "--cases", "2", "--steps", "2", "--examples", "1", "--out", str(out), "--dino", str(_tiny_dino(tmp_path / "dino"))])
    assert code == 0
    report = json.loads((out / "pose_edit-movi-e-val.json").read_text())
    assert report["methods"] == ["identity", "copy-paste", "geometric", "vae-ceiling", "tiny"]
    assert report["tasks"] == ["novel_pose"] and report["config"]["dataset"] == "movi-e"
    assert report["identity_available"] and not report["lpips_available"]
    rows = {(r["method"], r["index"]): r for r in report["cases"]}
    assert len(rows) == 10
    clips = DatasetClips("movi-e", movi_validation, 32, "validation")
    for index in range(2):  # the identity baseline scores the source frame against the target, by hand
        case = novel_pose_case(clips, index, TINY.max_objects)
        assert rows[("identity", index)]["psnr"] == pytest.approx(float(psnr(case.source[None], case.target[None])), abs=1e-4)
        assert rows[("identity", index)]["psnr_box"] == pytest.approx(
            float(psnr(case.source[None], case.target[None], case.region[None])), abs=1e-4)
        assert all(-1 <= rows[(m, index)]["identity"] <= 1 for m in report["methods"])
    markdown = (out / "pose_edit-movi-e-val.md").read_text()
    assert "Dataset `movi-e`, split `validation`, clips `0:2`" in markdown and "## novel_pose" in markdown
    assert "| tiny |" in markdown and "DINO (dino, RoIAlign 2x2)" in markdown
    assert (out / "pose_edit-movi-e-val_examples_novel_pose.png").is_file()


def test_bench_on_objectron_has_no_geometric_baseline_and_no_identity_without_dino(tmp_path, capsys):
    write_objectron(tmp_path / "clip")
    out = tmp_path / "results"
    assert main(["bench", "--dataset", "objectron", str(tmp_path / "clip"), "--quick", "--image-size", "24",
                 "--out", str(out)]) == 0
    report = json.loads((out / "pose_edit-objectron-quick.json").read_text())
    assert report["methods"] == ["identity", "copy-paste"] and not report["identity_available"]
    assert all(r["identity"] is None for r in report["cases"]) and len(report["cases"]) == 2
    markdown = (out / "pose_edit-objectron-quick.md").read_text()
    assert "| identity | " in markdown and "n/a (no DINO weights given)" in markdown
    capsys.readouterr()
    assert main(["bench", "--dataset", "objectron", str(tmp_path / "clip"), "--inputs", "extracted", "--out", str(out)]) == 2
    assert "--inputs: options of the synthetic benchmark" in capsys.readouterr().err
    assert main(["bench", "--dataset", "kitti", str(tmp_path), "--out", str(out)]) == 2
    assert "'kitti' is not one of movi-e, objectron" in capsys.readouterr().err

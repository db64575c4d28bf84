import os

import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def simple_scene():
    """A 3-frame 32x24 scene with two assets, built by hand (frames are 8-bit exact)."""
    from neuralassets import Asset, Camera, Scene
    from neuralassets.geometry import euler_to_matrix
    from neuralassets.image_ops import quantize

    g = torch.Generator().manual_seed(0)
    T, H, W = 3, 24, 32
    frames = quantize(torch.rand(T, 3, H, W, generator=g))
    cams = [Camera.look_at([4.0 + 0.1 * i, -4.0, 3.0], [0.0, 0.0, 0.3], 50.0, W, H) for i in range(T)]
    assets = []
    for k in range(2):
        yaw = torch.linspace(0, 1, T) + k
        rot = euler_to_matrix(yaw, torch.zeros(T), torch.zeros(T))
        centers = torch.tensor([[k - 0.5, 0.2 * k, 0.25]]).repeat(T, 1) + torch.linspace(0, 0.3, T)[:, None]
        masks = torch.rand(T, H, W, generator=g) > 0.7
        assets.append(Asset(id=k + 1, name=f"obj{k}", centers=centers, sizes=torch.full((T, 3), 0.5),
                            rotations=rot, boxes_2d=torch.tensor([[2.0, 3.0, 12.0, 15.0]]).repeat(T, 1),
                            visibility=torch.ones(T), masks=masks, attributes={"shape": "cube"}))
    depth = torch.rand(T, H, W, generator=g) * 10
    return Scene(frames, cams, assets, depth=depth, metadata={"seed": 0})


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """A saved tiny random pipeline (test_models.TINY with 10 object slots, enough for any generated scene)."""
    from dataclasses import replace

    from test_models import TINY, tiny_pipeline

    folder = tmp_path_factory.mktemp("tiny_pipeline") / "pipeline"
    tiny_pipeline(replace(TINY, max_objects=10)).save_pretrained(folder)
    return folder

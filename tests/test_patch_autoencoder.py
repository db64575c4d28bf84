"""The default PatchAutoencoder: shapes, posterior, saving and loading through the pipeline."""
from dataclasses import replace

import pytest
import torch
from test_models import TINY, one_thread  # noqa: F401 (one_thread: autouse fixture)

from neuralassets.errors import ConfigError, WeightsError
from neuralassets.models import AutoencoderConfig
from neuralassets.models.autoencoder import build_autoencoder, downsampling_factor
from neuralassets.models.patch_autoencoder import PatchAutoencoder
from neuralassets.pipelines import NeuralAssetsPipeline

SMALL = AutoencoderConfig(kind="patch", latent_channels=4, width=16, num_blocks=1)


def test_shapes_and_downsampling():
    vae, config = build_autoencoder(SMALL)
    assert isinstance(vae, PatchAutoencoder) and downsampling_factor(vae) == 8
    posterior = vae.encode(torch.rand(2, 3, 32, 48) * 2 - 1).latent_dist
    assert posterior.mode().shape == (2, 4, 4, 6)
    assert vae.decode(posterior.mode()).sample.shape == (2, 3, 32, 48)
    assert config.model_config["width"] == 16 and config.latent_channels == 4


def test_posterior_starts_nearly_deterministic():
    vae, _ = build_autoencoder(SMALL)
    posterior = vae.encode(torch.rand(1, 3, 16, 16)).latent_dist
    assert torch.allclose(posterior.std, torch.full_like(posterior.std, torch.exp(torch.tensor(-4.0)).item()))


def test_colour_reaches_the_latent_at_initialisation():
    """Space-to-depth and identity residual blocks: two flat images of different colour get different latents."""
    vae, _ = build_autoencoder(SMALL)
    red, blue = torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16)
    red[:, 0], blue[:, 2] = 1.0, 1.0
    z_red, z_blue = (vae.encode(x).latent_dist.mode() for x in (red, blue))
    assert (z_red - z_blue).abs().max() > 1e-3


def test_pipeline_round_trip_names_the_class(tmp_path):
    torch.manual_seed(0)
    pipe = NeuralAssetsPipeline.from_config(replace(TINY, autoencoder=SMALL))
    assert pipe.latent_size == 4
    pipe.save_pretrained(tmp_path / "p")
    import json

    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["vae"] == ["neuralassets", "PatchAutoencoder"]
    loaded = NeuralAssetsPipeline.from_pretrained(tmp_path / "p")
    assert isinstance(loaded.vae, PatchAutoencoder) and loaded.config.autoencoder.kind == "patch"
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(pipe.encode_images(x), loaded.encode_images(x))
    # a saved autoencoder folder is a valid `pretrained` source
    pipe.vae.save_pretrained(tmp_path / "vae")
    vae, config = build_autoencoder(AutoencoderConfig(pretrained=str(tmp_path / "vae")))
    assert isinstance(vae, PatchAutoencoder) and config.kind == "patch"


@pytest.mark.parametrize("max_shard_bytes", [None, 20_000])
def test_int8_pipeline_vae_folder_is_a_pretrained_source(tmp_path, max_shard_bytes):
    """The shipped weights are int8: a trainer pointed at their vae/ must get the dequantised weights, sharded or not."""
    torch.manual_seed(0)
    pipe = NeuralAssetsPipeline.from_config(replace(TINY, autoencoder=replace(SMALL, width=64)))
    pipe.save_pretrained(tmp_path / "p", dtype=torch.int8, max_shard_bytes=max_shard_bytes)
    sharded = (tmp_path / "p" / "vae" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    assert sharded == (max_shard_bytes is not None)
    loaded = NeuralAssetsPipeline.from_pretrained(tmp_path / "p")
    vae, config = build_autoencoder(AutoencoderConfig(pretrained=str(tmp_path / "p" / "vae")))
    assert config.kind == "patch" and not vae.training
    assert vae.state_dict().keys() == loaded.vae.state_dict().keys()
    assert all(torch.equal(v, loaded.vae.state_dict()[k]) for k, v in vae.state_dict().items())
    original = pipe.vae.state_dict()["encoder.1.weight"]
    assert (vae.state_dict()["encoder.1.weight"] - original).abs().max() <= original.abs().max() / 254 + 1e-7


def test_bad_kind_and_folder_raise(tmp_path):
    with pytest.raises(ConfigError, match="autoencoder.kind: 'vq' is not one of patch, kl"):
        build_autoencoder(AutoencoderConfig(kind="vq"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="autoencoder.pretrained: cannot load an autoencoder from .*empty"):
        build_autoencoder(AutoencoderConfig(pretrained=str(tmp_path / "empty")))

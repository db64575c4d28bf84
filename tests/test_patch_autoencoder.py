"""The default PatchAutoencoder: shapes, posterior, saving and loading through the pipeline."""
from dataclasses import replace

import pytest
import torch
from test_models import TINY, one_thread  # noqa: F401 (one_thread: autouse fixture)

from neuralassets.errors import ConfigError, ValidationError, WeightsError
from neuralassets.models import AutoencoderConfig
from neuralassets.models.autoencoder import build_autoencoder, downsampling_factor
from neuralassets.models.patch_autoencoder import PatchAutoencoder
from neuralassets.pipelines import NeuralAssetsPipeline

SMALL = AutoencoderConfig(kind="patch", latent_channels=4, width=16, num_blocks=1, reference_channels=0)


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


def test_reference_branch_starts_at_zero_and_adds_to_trained_weights(tmp_path):
    from neuralassets.models.weights import load_weights, save_weights

    torch.manual_seed(0)
    plain, _ = build_autoencoder(SMALL)
    save_weights(plain.state_dict(), tmp_path / "vae.safetensors")
    vae, config = build_autoencoder(replace(SMALL, reference_channels=4))
    assert config.model_config["reference_channels"] == 4
    assert vae.zero_initialised == ("reference_coarse.", "reference_fine.", "reference_gate.")
    load_weights(vae, tmp_path / "vae.safetensors", vae.zero_initialised)  # the branch is missing from the file
    z, reference = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 32, 32)
    reference[:, 3] = (reference[:, 3] > 0).float()  # coverage is 0 or 1
    with torch.no_grad():
        plain_out = plain.decode(z).sample
        # at first the features ignore the reference and the gate lets 1.8 % of its colour through where it covers
        gate = torch.sigmoid(torch.tensor(-4.0)) * reference[:, 3:]
        assert torch.allclose(vae.decode(z, reference=reference).sample, torch.lerp(plain_out, reference[:, :3], gate), atol=1e-6)
        for p in (vae.reference_coarse[1].weight, vae.reference_fine[1].weight, vae.reference_gate[0].weight):
            p.normal_(0, 0.1)
        assert torch.equal(vae.decode(z, reference=torch.zeros_like(reference)).sample, plain_out)
        assert torch.equal(vae.decode(z).sample, plain_out)  # no reference = an empty one
        assert not torch.allclose(vae.decode(z, reference=reference).sample, plain_out, atol=1e-3)


def test_reference_errors():
    vae, _ = build_autoencoder(replace(SMALL, reference_channels=4))
    with pytest.raises(ValidationError, match=r"reference: shape \(2, 4, 16, 16\), expected \(2, 4, 32, 32\)"):
        vae.decode(torch.randn(2, 4, 4, 4), reference=torch.zeros(2, 4, 16, 16))
    plain, _ = build_autoencoder(SMALL)
    with pytest.raises(ValidationError, match="reference: this autoencoder was built without reference_channels"):
        plain.decode(torch.randn(1, 4, 4, 4), reference=torch.zeros(1, 4, 32, 32))
    with pytest.raises(ConfigError, match=r"reference_channels: 3 is not 0 or 4 \(an object reference's colour and coverage\)"):
        build_autoencoder(replace(SMALL, reference_channels=3))
    # reference_channels is a PatchAutoencoder's: an AutoencoderKL is built without it (the default is the shipped 4)
    kl, kl_config = build_autoencoder(AutoencoderConfig(kind="kl", block_channels=(16, 32)))
    assert type(kl).__name__ == "AutoencoderKL" and kl_config.reference_channels == 0


def test_pipeline_decodes_with_the_object_reference_and_keeps_it_when_saved(tmp_path):
    from neuralassets.conditioning import Conditioning
    from neuralassets.pipelines.surface_splatting import object_reference

    torch.manual_seed(0)
    pipe = NeuralAssetsPipeline.from_config(replace(TINY, autoencoder=replace(SMALL, reference_channels=4)))
    assert pipe.uses_reference
    with torch.no_grad():
        pipe.vae.reference_fine[1].weight.normal_(0, 0.1)
    cond = Conditioning(appearance_images=torch.rand(1, 1, 3, 32, 32), appearance_depths=torch.zeros(1, 1, 32, 32),
                        appearance_slots=torch.full((1, 1, 32, 32), -1, dtype=torch.int16),
                        object_image_index=torch.zeros(1, 1, dtype=torch.long),
                        object_boxes=torch.tensor([[[0.1, 0.1, 0.5, 0.5]]]),
                        object_poses=torch.tensor([[[0.4, 0.4, 4, 0.9, 0.4, 4, 0.4, 0.9, 4, 0.4, 0.4, 5]]]),
                        object_target_boxes=torch.tensor([[[0.4, 0.4, 0.9, 0.9]]]),
                        object_source_poses=torch.tensor([[[0.1, 0.1, 4, 0.5, 0.1, 4, 0.1, 0.5, 4, 0.1, 0.1, 5]]]),
                        object_mask=torch.ones(1, 1, dtype=torch.bool),
                        background_image=torch.rand(1, 3, 32, 32), camera_pose=torch.zeros(1, 12))
    noise = torch.randn(1, 4, 4, 4)
    images = pipe.render(cond, latents=noise)
    latents = pipe.sample_latents(cond, latents=noise)
    reference = object_reference(cond, (32, 32))
    assert reference[0, 3, 13:29, 13:29].all() and reference[0, 3].sum() == 16 * 16  # the front face, pixels 12.8 to 28.8
    by_hand = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, reference=reference).sample
    assert torch.allclose(images, ((by_hand + 1) / 2).clamp(0, 1), atol=1e-6)
    assert not torch.allclose(images, pipe.decode_latents(latents), atol=1e-3)  # the reference changed the render
    pipe.save_pretrained(tmp_path / "p")
    loaded = NeuralAssetsPipeline.from_pretrained(tmp_path / "p")
    assert loaded.uses_reference and torch.equal(loaded.render(cond, latents=noise), images)

"""Asset encoder, denoiser and the pretrained-model adapters (tiny random models)."""
import math
from dataclasses import replace

import pytest
import torch

from neuralassets.conditioning import Conditioning, conditioning_from_scene
from neuralassets.config import from_dict
from neuralassets.errors import ConfigError, WeightsError
from neuralassets.models import AssetEncoder, AutoencoderConfig, ModelConfig, SchedulerConfig
from neuralassets.models.asset_encoder import box_coverage, fourier_features, warp_box_features
from neuralassets.models.weights import load_weights
from neuralassets.pipelines import NeuralAssetsPipeline

TINY = ModelConfig(
    image_size=32, max_objects=3, num_inference_steps=3, guidance_scale=2.0,
    autoencoder=AutoencoderConfig(kind="kl", block_channels=(16, 32), latent_channels=4),
    asset_encoder=dict(backbone_channels=(16, 32), hidden_dim=32, token_dim=32, num_null_tokens=2, spatial_channels=4,
                       object_feature_map=False),
    denoiser=dict(num_layers=2, num_heads=2, head_dim=16))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models are overhead-bound: one thread is as fast, and far faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_pipeline(config: ModelConfig = TINY, seed: int = 0) -> NeuralAssetsPipeline:
    torch.manual_seed(seed)
    return NeuralAssetsPipeline.from_config(config)


def pad_slots(cond: Conditioning, n: int) -> Conditioning:
    """The same conditioning with ``n`` more (empty) object slots."""
    def pad(x, value=0):
        return torch.cat([x, torch.full((x.shape[0], n, *x.shape[2:]), value, dtype=x.dtype)], dim=1)

    return replace(cond, object_image_index=pad(cond.object_image_index), object_boxes=pad(cond.object_boxes),
                   object_poses=pad(cond.object_poses), object_target_boxes=pad(cond.object_target_boxes),
                   object_source_poses=pad(cond.object_source_poses),
                   object_mask=pad(cond.object_mask, False))


def test_fourier_features_hand_computed():
    x = torch.tensor([[0.25, 0.5]])
    f = fourier_features(x, 2)
    expected = [0.25, 0.5,
                math.sin(math.pi * 0.25), math.sin(2 * math.pi * 0.25), math.sin(math.pi * 0.5), math.sin(2 * math.pi * 0.5),
                math.cos(math.pi * 0.25), math.cos(2 * math.pi * 0.25), math.cos(math.pi * 0.5), math.cos(2 * math.pi * 0.5)]
    assert torch.allclose(f[0], torch.tensor(expected), atol=1e-6)
    assert torch.equal(fourier_features(x, 0), x)


def test_box_coverage_fractions():
    # A box covering x in [0.25, 0.75], y in [0, 0.5] on a 2x4 grid (cells 0.25 wide, 0.5 high).
    cov = box_coverage(torch.tensor([0.25, 0.0, 0.75, 0.5]), 2, 4)
    assert torch.allclose(cov, torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    half = box_coverage(torch.tensor([0.125, 0.0, 0.25, 1.0]), 1, 4)
    assert torch.allclose(half, torch.tensor([[0.5, 0.0, 0.0, 0.0]]))
    assert box_coverage(torch.zeros(4), 2, 2).sum() == 0


def test_warp_box_features_moves_and_resizes_box_contents():
    f = torch.arange(16.0).view(1, 1, 4, 4)
    # the left half (columns 0-1) moved to the right half: target columns 2-3 read source columns 0-1
    moved = warp_box_features(f, torch.tensor([[0.0, 0.0, 0.5, 1.0]]), torch.tensor([[0.5, 0.0, 1.0, 1.0]]), 4, 4)
    assert torch.equal(moved[0, 0, :, 2:], f[0, 0, :, :2])
    # a 2x2 block grown to the whole grid: each source cell fills a 2x2 block (bilinear at exact centres)
    grown = warp_box_features(f, torch.tensor([[0.0, 0.0, 0.5, 0.5]]), torch.tensor([[0.0, 0.0, 1.0, 1.0]]), 2, 2)
    assert torch.equal(grown[0, 0], torch.tensor([[0.0, 1.0], [4.0, 5.0]]))
    assert warp_box_features(f, torch.tensor([[0.0, 0.0, 0.5, 0.5]]), torch.zeros(1, 4), 4, 4).abs().sum() == 0


def test_object_feature_map_starts_at_zero_and_paints_only_target_boxes(simple_scene, tmp_path):
    cond = conditioning_from_scene(simple_scene, 1, 3, source_frame=0)
    mapped_config = {**TINY.asset_encoder, "object_feature_map": True}
    torch.manual_seed(0)
    plain = AssetEncoder.from_config(TINY.asset_encoder)
    torch.manual_seed(0)
    mapped = AssetEncoder.from_config(mapped_config)
    a, b = plain(cond, spatial_size=(16, 16)), mapped(cond, spatial_size=(16, 16))
    assert torch.equal(a.spatial, b.spatial) and torch.equal(a.tokens, b.tokens)  # zero-initialised: adds nothing yet
    torch.nn.init.normal_(mapped.object_feature_proj.weight)
    painted = mapped(cond, spatial_size=(16, 16)).spatial - a.spatial
    inside = box_coverage(cond.object_target_boxes[0], 16, 16).sum(0) > 0
    assert painted[0, :, ~inside].abs().max() < 1e-5 and painted[0, :, inside].abs().min(dim=0).values.max() > 0
    # weights saved without the map load into a model with it only where the missing part starts at zero
    path = tmp_path / "model.safetensors"
    from safetensors.torch import save_file
    save_file(plain.state_dict(), path)
    fresh = AssetEncoder.from_config(mapped_config)
    load_weights(fresh, path, fresh.zero_initialised)
    assert torch.equal(fresh(cond, spatial_size=(16, 16)).spatial, a.spatial)
    with pytest.raises(WeightsError, match="missing tensor.*object_feature_proj"):
        load_weights(fresh, path)


def test_token_layout_and_mask(simple_scene):
    encoder = AssetEncoder.from_config(TINY.asset_encoder)
    cond = Conditioning.collate([conditioning_from_scene(simple_scene, 1, 3, source_frame=0)] * 2)
    out = encoder(cond, spatial_size=(16, 16))
    k2 = 4
    assert out.tokens.shape == (2, 2 + (1 + 3) * k2, 32) == (2, encoder.num_tokens(3), 32)
    expected_mask = torch.tensor([True] * (2 + k2) + [True] * (2 * k2) + [False] * k2)
    assert torch.equal(out.mask[0], expected_mask)
    assert torch.all(out.tokens[:, -k2:] == 0)  # the padded third slot carries nothing
    assert out.spatial.shape == (2, 4, 16, 16)


def test_background_spatial_map_follows_the_background_image(simple_scene):
    cond = conditioning_from_scene(simple_scene, 1, 3, source_frame=0)
    no_objects = cond.drop_objects(torch.ones(1, dtype=torch.bool))
    mirrored = replace(no_objects, background_image=no_objects.background_image.flip(-1))
    torch.manual_seed(0)
    encoder = AssetEncoder.from_config(TINY.asset_encoder)
    a, b = (encoder(c, spatial_size=(16, 16)).spatial for c in (no_objects, mirrored))
    assert a.abs().sum() > 0 and not torch.allclose(a, b)  # the map carries the background, mirrored with it
    # at another grid size the background features are resampled to it
    assert encoder(no_objects, spatial_size=(5, 7)).spatial.shape == (1, 4, 5, 7)
    torch.manual_seed(0)
    objects_only = AssetEncoder.from_config({**TINY.asset_encoder, "background_spatial": False})
    assert torch.count_nonzero(objects_only(no_objects, spatial_size=(16, 16)).spatial) == 0


def test_empty_padded_slot_does_not_change_output(simple_scene):
    pipe = tiny_pipeline()
    cond = conditioning_from_scene(simple_scene, 1, 2, source_frame=0)
    a = pipe.render(cond, generator=torch.Generator().manual_seed(3))
    b = pipe.render(pad_slots(cond, 1), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b, atol=1e-5)


def test_an_unused_padding_image_does_not_change_output(simple_scene):
    """Batches pad every item's appearance images to the longest list (with grey); no object reads the padding."""
    pipe = tiny_pipeline()
    cond = conditioning_from_scene(simple_scene, 1, 2, source_frame=0)
    padded = replace(cond, appearance_images=torch.cat([cond.appearance_images, torch.full_like(cond.appearance_images, 0.5)],
                                                       dim=1))
    a = pipe.render(cond, generator=torch.Generator().manual_seed(3))
    b = pipe.render(padded, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b, atol=1e-5)


def test_dropping_all_objects_gives_the_null_output(simple_scene):
    pipe = tiny_pipeline()
    cond = conditioning_from_scene(simple_scene, 1, 3, source_frame=0)
    moved = replace(cond, object_poses=cond.object_poses + 0.3, object_boxes=cond.object_boxes.flip(-1))
    drop = torch.ones(1, dtype=torch.bool)
    kwargs = dict(guidance_scale=1.0, latents=torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)))
    null_a = pipe.render(cond.drop_objects(drop), **kwargs)
    null_b = pipe.render(moved.drop_objects(drop), **kwargs)
    assert torch.allclose(null_a, null_b, atol=1e-6)
    # guidance 0 is the unconditional (null) prediction itself
    assert torch.allclose(pipe.render(cond, **{**kwargs, "guidance_scale": 0.0}), null_a, atol=1e-5)
    assert not torch.allclose(pipe.render(cond, **kwargs), null_a, atol=1e-3)


def test_unet_denoiser_masks_padding(simple_scene):
    config = replace(TINY, denoiser=dict(kind="unet", block_channels=(16, 32), unet_heads=2))
    pipe = tiny_pipeline(config)
    cond = conditioning_from_scene(simple_scene, 1, 2, source_frame=0)
    a = pipe.render(cond, generator=torch.Generator().manual_seed(1))
    b = pipe.render(pad_slots(cond, 1), generator=torch.Generator().manual_seed(1))
    assert a.shape == (1, 3, 32, 32)
    assert torch.allclose(a, b, atol=1e-4)


def test_unknown_kinds_and_keys_raise_config_errors():
    with pytest.raises(ConfigError, match="backbone"):
        AssetEncoder.from_config(dict(backbone="resnet"))
    with pytest.raises(ConfigError, match="denoiser.kind"):
        NeuralAssetsPipeline.from_config(replace(TINY, denoiser=dict(kind="dit")))
    with pytest.raises(ConfigError, match="denoiser.num_layer"):
        from_dict(ModelConfig, {"denoiser": {"num_layer": 3}})
    with pytest.raises(ConfigError, match="image_size"):
        NeuralAssetsPipeline.from_config(replace(TINY, image_size=33))
    with pytest.raises(ConfigError, match=r"norm_num_groups: 8 must divide every block channel count \(12, 24\)"):
        NeuralAssetsPipeline.from_config(replace(TINY, autoencoder=AutoencoderConfig(kind="kl", block_channels=(12, 24))))


def test_tiny_dinov2_backbone_from_folder(tmp_path, simple_scene):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             patch_size=8, image_size=32)).save_pretrained(tmp_path / "dino")
    for trainable in (False, True):
        config = replace(TINY, asset_encoder={**TINY.asset_encoder, "backbone": "dinov2", "backbone_path": str(tmp_path / "dino"),
                                              "dinov2_image_size": 32, "backbone_trainable": trainable})
        encoder = AssetEncoder.from_config(config.asset_encoder)
        assert {p.requires_grad for p in encoder.backbone.model.parameters()} == {trainable}
        assert encoder.backbone.grid == 4 and encoder.config.dinov2_config["hidden_size"] == 32
        assert encoder.train().backbone.model.training is trainable  # a frozen backbone stays in eval mode
    pipe = tiny_pipeline(config)
    images = pipe(simple_scene, target_frame=1, generator=torch.Generator().manual_seed(0)).images
    pipe.save_pretrained(tmp_path / "pipe")
    (tmp_path / "dino" / "model.safetensors").unlink()  # a saved pipeline no longer needs the backbone folder
    again = NeuralAssetsPipeline.from_pretrained(tmp_path / "pipe")
    assert torch.equal(again(simple_scene, target_frame=1, generator=torch.Generator().manual_seed(0)).images, images)


def test_stable_diffusion_layout_from_folder(tmp_path, simple_scene):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from neuralassets.training.objectives import ConditionalDenoiser, DiffusionObjective

    torch.manual_seed(0)
    UNet2DConditionModel(  # the SD 1.5 / 2.1 block layout, tiny widths
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=24, attention_head_dim=8, norm_num_groups=16).save_pretrained(tmp_path / "unet")
    AutoencoderKL(block_out_channels=(16, 32), latent_channels=4, norm_num_groups=16,
                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  scaling_factor=0.18215).save_pretrained(tmp_path / "vae")
    config = replace(TINY, autoencoder=AutoencoderConfig(pretrained=str(tmp_path / "vae")),
                     asset_encoder={**TINY.asset_encoder, "spatial_channels": 0},
                     denoiser=dict(kind="unet", pretrained=str(tmp_path / "unet")),
                     scheduler=SchedulerConfig(kind="ddim"))
    pipe = tiny_pipeline(config)
    assert isinstance(pipe.denoiser.token_proj, torch.nn.Linear) and pipe.denoiser.token_proj.out_features == 24
    assert pipe.vae.config.scaling_factor == pytest.approx(0.18215)
    image = pipe(simple_scene, target_frame=1, generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 3, 24, 32) and torch.isfinite(image).all()  # the scene's size
    # one DDPM training step runs and gives a finite epsilon loss
    model = ConditionalDenoiser(pipe.asset_encoder, pipe.denoiser).requires_grad_(True)
    cond = conditioning_from_scene(simple_scene, 1, 3, source_frame=0)
    loss = DiffusionObjective(pipe.scheduler, 0.1)(model, torch.randn(1, 4, 16, 16), cond, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and model.denoiser.token_proj.weight.grad is not None
    pipe.save_pretrained(tmp_path / "pipe")
    again = NeuralAssetsPipeline.from_pretrained(tmp_path / "pipe")
    assert type(again.scheduler).__name__ == "DDIMScheduler"
    assert torch.equal(again(simple_scene, target_frame=1, generator=torch.Generator().manual_seed(0)).images, image)


def test_object_feature_map_without_a_spatial_map_is_a_config_error():
    with pytest.raises(ConfigError, match="object_feature_map.*spatial_channels >= 1 \\(got 0\\)"):
        AssetEncoder.from_config({**TINY.asset_encoder, "spatial_channels": 0, "object_feature_map": True})

"""Property test (hypothesis): padded object slots change nothing the model computes.

For a random scene with 0-3 real objects, appending 1-3 padded slots, whatever finite
numbers they hold, leaves the real asset tokens, the spatial map and the denoiser's
prediction unchanged and the padded tokens zero.
"""
import functools
from dataclasses import replace

import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_models import TINY, one_thread  # noqa: F401 (one_thread: autouse fixture)

from neuralassets import Asset, Camera, Scene
from neuralassets.conditioning import Conditioning, conditioning_from_scene
from neuralassets.geometry import euler_to_matrix
from neuralassets.image_ops import quantize
from neuralassets.models import build_components

H = W = 32


@functools.cache
def networks():
    """The tiny asset encoder and denoiser, built once (random weights, eval mode)."""
    torch.manual_seed(0)
    c = build_components(TINY)
    return c.asset_encoder.eval(), c.denoiser.eval()


def random_scene(seed: int, num_objects: int) -> Scene:
    """Two frames, ``num_objects`` boxes on the floor in front of a camera that moves a little."""
    g = torch.Generator().manual_seed(seed)
    cams = [Camera.look_at([4.0 + 0.2 * i, -4.0, 3.0], [0.0, 0.0, 0.3], 50.0, W, H) for i in range(2)]
    assets = []
    for k in range(num_objects):
        xy = torch.rand(2, generator=g) * 2 - 1
        size = torch.rand(3, generator=g) * 0.4 + 0.2
        centers = torch.stack([torch.cat([xy + 0.1 * t, size[2:] / 2]) for t in range(2)])
        x0, y0 = (torch.rand(2, generator=g) * 20).tolist()
        assets.append(Asset(k + 1, f"box {k}", centers=centers, sizes=size.expand(2, 3),
                            rotations=euler_to_matrix(torch.rand(2, generator=g) * 3, torch.zeros(2), torch.zeros(2)),
                            boxes_2d=torch.tensor([[x0, y0, x0 + 8, y0 + 8]] * 2), visibility=torch.ones(2)))
    return Scene(quantize(torch.rand(2, 3, H, W, generator=g)), cams, assets)


def pad_with_junk(cond: Conditioning, extra: int, generator: torch.Generator) -> Conditioning:
    """``cond`` with ``extra`` more slots, masked out but holding arbitrary finite numbers."""
    def pad(x: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, fill.to(x.dtype)], dim=1)

    B = cond.batch_size
    return replace(cond,
                   object_image_index=pad(cond.object_image_index, torch.zeros(B, extra)),
                   object_boxes=pad(cond.object_boxes, torch.rand(B, extra, 4, generator=generator)),
                   object_poses=pad(cond.object_poses, torch.randn(B, extra, 12, generator=generator) * 3),
                   object_target_boxes=pad(cond.object_target_boxes, torch.rand(B, extra, 4, generator=generator)),
                   object_source_poses=pad(cond.object_source_poses, torch.randn(B, extra, 12, generator=generator) * 3),
                   object_mask=pad(cond.object_mask, torch.zeros(B, extra, dtype=torch.bool)))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), num_objects=st.integers(0, 3), slots=st.integers(0, 2), extra=st.integers(1, 3),
       timestep=st.integers(0, 999))
@example(seed=0, num_objects=0, slots=0, extra=1, timestep=0)  # a conditioning with no slots at all
@torch.no_grad()
def test_padded_slots_change_no_output(seed, num_objects, slots, extra, timestep):
    encoder, denoiser = networks()
    scene = random_scene(seed, num_objects)
    cond = conditioning_from_scene(scene, 1, num_objects + slots, source_frame=0)
    padded = pad_with_junk(cond, extra, torch.Generator().manual_seed(seed))
    grid = (16, 16)
    a, b = encoder(cond, spatial_size=grid), encoder(padded, spatial_size=grid)

    assert b.tokens.shape[1] == a.tokens.shape[1] + extra * encoder.tokens_per_object
    assert torch.equal(b.mask[:, :a.mask.shape[1]], a.mask) and not b.mask[:, a.mask.shape[1]:].any()
    assert torch.allclose(b.tokens[b.mask], a.tokens[a.mask], atol=1e-6)  # the real tokens, in the same order
    assert not b.tokens[~b.mask].any()  # padded (and empty) slots carry zeros
    assert torch.allclose(b.spatial, a.spatial, atol=1e-6)

    latents = torch.randn(1, 4, *grid, generator=torch.Generator().manual_seed(seed))
    t = torch.full((1,), float(timestep))
    out_a = denoiser(latents, t, a.tokens, a.mask, a.spatial)
    out_b = denoiser(latents, t, b.tokens, b.mask, b.spatial)
    assert torch.allclose(out_a, out_b, atol=1e-5)

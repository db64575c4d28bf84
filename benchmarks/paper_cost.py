"""What a training step of the paper's configuration (configs/paper/movi_e.yaml) costs, without its weights.

    python benchmarks/paper_cost.py                     # prints the table, writes benchmarks/results/paper_cost.json
    python benchmarks/paper_cost.py --gpus 8 --mfu 0.35 --steps 200000

The full-size networks (Stable Diffusion 2.1 base's UNet, DINO ViT-B/8 and the asset encoder around
it, with the architectures their published configs give) are built on PyTorch's ``meta`` device:
no memory is taken and no weight is read, but every operation of a forward and backward pass is
dispatched, so ``torch.utils.flop_counter`` counts its multiply-adds exactly. The VAE does not
enter a step (the denoiser stage encodes the targets once and caches the latents). GPU time is
estimated from the counted FLOPs, the accelerator's dense bf16 peak and an assumed utilisation
(``--mfu``); per-GPU memory of the weights, gradients, AdamW moments and EMA from the parameter
count. Activation memory depends on the kernels chosen at run time and is not estimated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

#: diffusers' published UNet config of Stable Diffusion 2.1 base (stabilityai/stable-diffusion-2-1-base, unet/).
SD21_UNET = dict(sample_size=32, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, attention_head_dim=(5, 10, 20, 20),
                 use_linear_projection=True, cross_attention_dim=1024, norm_num_groups=32)
#: DINO ViT-B/8 (facebook/dino-vitb8).
DINO_VITB8 = dict(model_type="vit", hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                  patch_size=8, image_size=224, qkv_bias=True)
H100_BF16_DENSE_TFLOPS = 989.0  # NVIDIA's figure for the SXM H100, without sparsity


def paper_parts(max_objects: int = 23):
    """The paper's asset encoder and denoiser at full size, on the meta device (from configs/paper/movi_e.yaml's settings)."""
    from transformers import ViTConfig

    from neuralassets.models import AssetEncoder, Denoiser

    with torch.device("meta"):
        encoder = AssetEncoder(backbone="dino", dinov2_config=ViTConfig(**DINO_VITB8).to_dict(), pose_frequencies=0,
                               hidden_dim=512, token_dim=1024, num_null_tokens=0, spatial_channels=0, object_feature_map=False)
        denoiser = Denoiser(kind="unet", model_config=dict(SD21_UNET), latent_channels=4, latent_size=32, token_dim=1024,
                            spatial_channels=0)
    return encoder, denoiser


def count_step(batch: int, max_objects: int = 23) -> dict:
    """Parameters and FLOPs of one training micro-step (forward and backward) at ``batch`` pairs of 256x256."""
    encoder, denoiser = paper_parts(max_objects)
    params = {"unet": sum(p.numel() for p in denoiser.parameters()),  # in this order in the printed table
              "dino_vitb8": sum(p.numel() for p in encoder.backbone.parameters()),
              "asset_encoder_rest": sum(p.numel() for n, p in encoder.named_parameters() if not n.startswith("backbone."))}
    tokens_len = encoder.num_tokens(max_objects)
    device = torch.device("meta")
    flops = {}
    with FlopCounterMode(display=False) as counter:  # DINO sees the appearance photo and the greyed background photo
        features = encoder.backbone(torch.zeros(2 * batch, 3, 256, 256, device=device))
        features.float().mean().backward()
    flops["dino_vitb8"] = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        latents = torch.zeros(batch, 4, 32, 32, device=device)
        tokens = torch.zeros(batch, tokens_len, 1024, device=device, requires_grad=True)
        mask = torch.ones(batch, tokens_len, dtype=torch.bool, device=device)
        out = denoiser(latents, torch.zeros(batch, device=device), tokens, mask)
        out.float().mean().backward()
    flops["unet"] = counter.get_total_flops()
    return {"params": params, "tokens": tokens_len, "flops_per_pair": {k: v / batch for k, v in flops.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="pairs per GPU per micro-step (the config's)")
    parser.add_argument("--pairs-per-step", type=int, default=256, help="pairs per optimiser step over all GPUs")
    parser.add_argument("--steps", type=int, default=200_000, help="optimiser steps of the run")
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--mfu", type=float, default=0.35, help="assumed share of the dense bf16 peak a step achieves")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS)
    parser.add_argument("--out", default="benchmarks/results/paper_cost.json")
    args = parser.parse_args()

    counted = count_step(args.batch)
    params = sum(counted["params"].values())
    per_pair = sum(counted["flops_per_pair"].values())
    seconds_per_pair = per_pair / (args.peak_tflops * 1e12 * args.mfu)
    gpu_hours = seconds_per_pair * args.pairs_per_step * args.steps / 3600
    states_gb = params * (4 + 4 + 8 + 4) / 1e9  # fp32 weights, gradients, two AdamW moments, EMA copy
    result = {**counted, "params_total": params, "flops_per_pair_total": per_pair,
              "assumptions": {"peak_tflops": args.peak_tflops, "mfu": args.mfu, "batch_per_gpu": args.batch,
                              "pairs_per_step": args.pairs_per_step, "steps": args.steps, "gpus": args.gpus},
              "estimate": {"gpu_seconds_per_micro_step": seconds_per_pair * args.batch,
                           "gpu_hours": gpu_hours, "wall_hours": gpu_hours / args.gpus, "weight_state_gb_per_gpu": states_gb}}
    rows = [("parameters: UNet / DINO ViT-B/8 / rest of the asset encoder",
             " / ".join(f"{v / 1e6:.1f} M" for v in counted["params"].values())),
            ("tokens per example", str(counted["tokens"])),
            ("training FLOPs per pair (forward + backward): UNet / DINO on two photos",
             " / ".join(f"{counted['flops_per_pair'][k] / 1e9:.0f} GFLOP" for k in ("unet", "dino_vitb8"))),
            (f"GPU time per micro-step of {args.batch} pairs at {args.mfu:.0%} of {args.peak_tflops:.0f} TFLOP/s",
             f"{seconds_per_pair * args.batch * 1000:.0f} ms"),
            (f"{args.steps} steps of {args.pairs_per_step} pairs",
             f"{gpu_hours:.0f} GPU-hours, {gpu_hours / args.gpus:.1f} h on {args.gpus} GPUs"),
            ("weights + gradients + AdamW + EMA per GPU (fp32)", f"{states_gb:.1f} GB")]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

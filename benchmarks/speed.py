"""Speed benchmarks, one function per section; each returns table rows and ``main`` prints them.

    python benchmarks/speed.py                      # every section
    python benchmarks/speed.py --sections generator --threads 2

Cores are often shared: compare numbers taken in one run, and rerun when the machine is quiet.
"""

from __future__ import annotations

import argparse
import time

import torch


def _best_of(fn, repeats: int) -> float:
    """Fastest wall time in seconds of ``repeats`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def generator_section(quick: bool = False) -> list[dict]:
    """Synthetic generator throughput: frames/s of rendering with all ground truth, and pair sampling."""
    from torch.utils.data import DataLoader

    from neuralassets.data import GeneratorConfig, render_scene, sample_scene_spec
    from neuralassets.data.pairs import FramePairDataset, collate_pairs

    repeats = 1 if quick else 3
    seeds = range(2 if quick else 6)
    rows = []
    for size, objects, supersample in ((128, 6, False), (128, 10, False), (128, 6, True), (64, 6, False), (256, 6, False)):
        if quick and size != 128:
            continue
        config = GeneratorConfig(image_size=size, min_objects=objects, max_objects=objects, supersample=supersample)
        specs = [sample_scene_spec(seed, config) for seed in seeds]
        seconds = _best_of(lambda: [render_scene(s) for s in specs], repeats)  # noqa: B023
        frames = sum(s.num_frames for s in specs)
        rows.append({"what": f"render + ground truth, {size}x{size}, {objects} objects{', 2x2 supersampled' if supersample else ''}",
                     "frames/s": round(frames / seconds, 1)})
    config = GeneratorConfig(min_objects=6, max_objects=6)
    sample_seconds = _best_of(lambda: [sample_scene_spec(s, config) for s in seeds], repeats)
    rows.append({"what": "sample scene spec (24 frames, 6 objects), scenes/s", "frames/s": round(len(seeds) / sample_seconds, 1)})
    count = 16 if quick else 64
    pairs = FramePairDataset("train", count, max_objects=10)
    pair_seconds = _best_of(lambda: [pairs[i] for i in range(count)], 1)
    rows.append({"what": "training pairs (sample + render 2 frames + conditioning), pairs/s",
                 "frames/s": round(count / pair_seconds, 1)})
    loader = DataLoader(pairs, batch_size=8, num_workers=2, collate_fn=collate_pairs, persistent_workers=True)
    loader_seconds = _best_of(lambda: list(loader), 1)
    rows.append({"what": "training pairs through DataLoader, 2 workers x 1 thread, pairs/s",
                 "frames/s": round(count / loader_seconds, 1)})
    return rows


def model_section(quick: bool = False) -> list[dict]:
    """The default model (ModelConfig(), the shipped layout; shipped weights when present, else random ones):
    parameters, denoiser-stage training samples/s, ms per guided denoising step, end-to-end ms per
    128x128 image at several step counts, peak RSS; fp32 and bf16 autocast, and the UNet alternative."""
    import resource
    from dataclasses import replace

    from neuralassets import edits
    from neuralassets.conditioning import Conditioning
    from neuralassets.data import GeneratorConfig, generate_scene
    from neuralassets.data.pairs import FramePairDataset
    from neuralassets.data.synthetic import select_frames
    from neuralassets.models import ModelConfig, build_components
    from neuralassets.pipelines import NeuralAssetsPipeline
    from neuralassets.pipelines.neural_assets import DEFAULT_WEIGHTS
    from neuralassets.training.objectives import ConditionalDenoiser, DiffusionObjective

    model_config = ModelConfig()
    repeats = 1 if quick else 3
    pairs = FramePairDataset("val", 32, model_config.max_objects)
    batch = Conditioning.collate([pairs[i][0] for i in range(32)])
    rows = []
    candidates = [("SD3 transformer 6x256, patch 2 (default)", model_config.denoiser)]
    if not quick:
        candidates.append(("UNet (64,128,256), cross-attention", dict(kind="unet")))
    for name, denoiser_config in candidates:
        c = build_components(replace(model_config, denoiser=denoiser_config))
        model = ConditionalDenoiser(c.asset_encoder, c.denoiser)
        objective = DiffusionObjective(c.scheduler, 0.1)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        latents = torch.randn(32, c.vae.config.latent_channels, 16, 16)
        params = sum(p.numel() for p in model.denoiser.parameters()) / 1e6
        train_rates = {}
        for autocast in (False, True):
            def train_step():
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):  # noqa: B023
                    loss = objective(model, latents, batch, torch.Generator().manual_seed(0))  # noqa: B023
                optimizer.zero_grad()  # noqa: B023
                loss.backward()
                optimizer.step()  # noqa: B023

            train_rates[autocast] = 32 / _best_of(train_step, repeats)
        pipe = NeuralAssetsPipeline.from_components(c)  # from here on inference only
        for autocast in (False, True):
            pipe.autocast_dtype = torch.bfloat16 if autocast else None
            tokens = pipe.encode_tokens(pipe.fit_conditioning(Conditioning.collate([pairs[0][0]])), 2.0)
            noise = pipe.prepare_latents(1, torch.Generator().manual_seed(0))
            step_seconds = _best_of(lambda: pipe.denoise(noise, tokens, 1, 2.0), repeats * 3)  # noqa: B023
            rows.append({"what": f"{name}, {params:.1f}M params, {'bf16 autocast' if autocast else 'fp32'}",
                         "value": f"train {train_rates[autocast]:.1f} samples/s (batch 32); "
                                  f"{1000 * step_seconds:.1f} ms per guided step"})
    pipe = NeuralAssetsPipeline.from_pretrained() if (DEFAULT_WEIGHTS / "model_index.json").is_file() else \
        NeuralAssetsPipeline.from_config(model_config)
    sizes = {n: sum(p.numel() for p in getattr(pipe, n).parameters()) / 1e6 for n in ("vae", "asset_encoder", "denoiser")}
    rows.append({"what": "parameters (M)", "value": ", ".join(f"{n} {v:.2f}" for n, v in sizes.items())})
    # a user's edit: one object of a still 128x128 view moved, rendered with every step of the pipeline (what the edit
    # touches, sampling there, decoding, keeping the photo's unchanged pixels)
    scene = generate_scene(0, GeneratorConfig(num_frames=1, image_size=128, min_objects=6, max_objects=6))
    scene = select_frames(scene, [0, 0])
    edited = edits.move(scene, scene.assets[0].id, [0.4, 0.2], frames=1, frame_of_reference="floor")
    for autocast in (None, torch.bfloat16):
        pipe.autocast_dtype = autocast
        for steps in ((pipe.config.num_inference_steps,) if quick else (10, pipe.config.num_inference_steps, 20, 50)):
            seconds = _best_of(lambda: pipe(edited, target_frame=1, source_frame=0,  # noqa: B023
                                            num_inference_steps=steps, generator=torch.Generator().manual_seed(0)),  # noqa: B023
                               repeats)
            rows.append({"what": f"end to end, one 128x128 edit (move one of 6 objects, keep unchanged pixels), {steps} steps, "
                                 f"guidance {pipe.config.guidance_scale}, {'bf16 autocast' if autocast else 'fp32'}",
                         "value": f"{1000 * seconds:.0f} ms"})
    rows.append({"what": "peak RSS of this process", "value": f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"})
    return rows


SECTIONS = {"generator": generator_section, "model": model_section}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and configurations")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in args.sections:
        rows = SECTIONS[name](quick=args.quick)
        print(f"\n## {name} ({args.threads} threads)\n")
        keys = list(rows[0])
        print("| " + " | ".join(keys) + " |")
        print("|" + "---|" * len(keys))
        for row in rows:
            print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()

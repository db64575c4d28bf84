"""Training the learned perception model (:mod:`neuralassets.perception.learned`) on synthetic frames.

Two steps, both resumable::

    python -m neuralassets.training.perception data --out DATA --videos 3600
    python -m neuralassets.training.perception train --data DATA --checkpoints CKPT --steps 12000
    python -m neuralassets.training.perception export --checkpoints CKPT --out weights/perception

``data`` renders train-split videos (a few frames of each) into safetensors shards once, so
training never waits on the renderer: per frame the image (uint8), depth (float16 metres),
the instance map (uint8, asset index + 1) and per object its box estimate
(:func:`~neuralassets.perception.learned.box_estimates`) and three flags (present, yaw
defined, square footprint). A share of the videos come from a wider generator (camera
elevations, distances and fields of view beyond the defaults, objects that grow or shrink)
so the model is not tied to one camera set-up. ``train`` turns an item into dense targets
(:func:`dense_targets`; half the frames JPEG-compressed, all flipped, jittered and noised
at random), trains with AdamW and a cosine schedule, keeps an EMA of the
weights and writes atomic checkpoints (:mod:`neuralassets.training.checkpoint`); ``export``
writes the EMA weights and config as a weights folder.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.synthetic import GeneratorConfig, generate_scene, split_seed
from ..errors import ValidationError
from ..perception.learned import (
    ESTIMATE_FIELDS,
    PerceptionConfig,
    PerceptionNet,
    box_estimates,
    coordinates,
    encode_estimates,
    flat_box,
    mirror_signs,
)

MAX_OBJECTS = 16  # object rows per frame in a shard (the generator draws at most 10)
ROUND_ABOUT_VERTICAL = ("sphere", "cylinder", "cone")  # no yaw when standing upright


def wide_generator(rng: np.random.Generator, base: GeneratorConfig) -> GeneratorConfig:
    """A generator setting beyond the defaults, drawn from ``rng``: other elevations, distances, fields of view, resizing."""
    return replace(base, camera_elevation=(15.0, 60.0), camera_distance=(4.5, 8.0),
                   fov_degrees=float(rng.uniform(40.0, 62.0)), resize_probability=0.3)


def frame_records(seed: int, config: GeneratorConfig, frames: list[int]) -> dict[str, np.ndarray]:
    """Render ``frames`` of scene ``seed`` into shard records.

    Returns:
        ``images`` (F, 3, S, S) uint8, ``depth`` (F, S, S) float16 metres, ``instances``
        (F, S, S) uint8 (asset index + 1, 0 = background), ``estimates`` (F, MAX_OBJECTS, 10)
        float32 and ``flags`` (F, MAX_OBJECTS, 3) uint8: present, yaw defined, square footprint.
    """
    scene = generate_scene(seed, config, frames=frames)
    T, S = scene.num_frames, scene.height
    instances = torch.zeros(T, S, scene.width, dtype=torch.uint8)
    estimates = torch.zeros(T, MAX_OBJECTS, len(ESTIMATE_FIELDS))
    flags = torch.zeros(T, MAX_OBJECTS, 3, dtype=torch.uint8)
    for k, asset in enumerate(scene.assets):
        instances[asset.masks] = k + 1
    for t, camera in enumerate(scene.cameras):
        centers = torch.stack([a.centers[t] for a in scene.assets])
        sizes = torch.stack([a.sizes[t] for a in scene.assets])
        rotations = torch.stack([a.rotations[t] for a in scene.assets])
        N = len(scene.assets)
        estimates[t, :N] = box_estimates(centers, sizes, rotations, camera)
        _, sides, upright, _ = flat_box(rotations, sizes)
        round_about = torch.tensor([a.category == "sphere" or (a.category in ROUND_ABOUT_VERTICAL and
                                                               bool(a.rotations[t][2, 2].abs() > 0.99))
                                    for a in scene.assets])
        flags[t, :N, 0] = 1
        flags[t, :N, 1] = (upright & ~round_about).to(torch.uint8)
        flags[t, :N, 2] = (sides[:, 1] > 0.9 * sides[:, 0]).to(torch.uint8)
    images = (scene.frames * 255).round().to(torch.uint8)
    return {"images": images.numpy(), "depth": scene.depth.half().numpy(), "instances": instances.numpy(),
            "estimates": estimates.numpy(), "flags": flags.numpy()}


def write_data(out: Path, videos: int, frames_per_video: int = 6, first_seed: int = 800_000, wide_share: float = 0.3,
               videos_per_shard: int = 80, image_size: int = 128) -> None:
    """Render ``videos`` train-split videos into ``out/shard_XXXXX.safetensors`` (existing shards are kept)."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    base = GeneratorConfig(image_size=image_size)
    (out / "data.json").write_text(json.dumps({
        "format": "neuralassets-perception-data", "version": 1, "videos": videos, "frames_per_video": frames_per_video,
        "first_seed": first_seed, "wide_share": wide_share, "base": asdict(base)}, indent=1))
    for shard in range(math.ceil(videos / videos_per_shard)):
        path = out / f"shard_{shard:05d}.safetensors"
        if path.exists():
            continue
        records: list[dict[str, np.ndarray]] = []
        for index in range(shard * videos_per_shard, min(videos, (shard + 1) * videos_per_shard)):
            seed = split_seed("train", first_seed + index)
            rng = np.random.default_rng([seed, 0x9E7C])
            config = wide_generator(rng, base) if rng.uniform() < wide_share else base
            frames = sorted(rng.choice(config.num_frames, frames_per_video, replace=False).tolist())
            records.append(frame_records(seed, config, frames))
        merged = {k: np.concatenate([r[k] for r in records]) for k in records[0]}
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(merged, str(tmp))
        tmp.replace(path)
        print(f"{path.name}: {len(merged['images'])} frames", flush=True)


class PerceptionData:
    """The frames of a ``data`` folder, memory-mapped; ``item(i)`` gives one frame's records as tensors."""

    KEYS = ("images", "depth", "instances", "estimates", "flags")

    def __init__(self, folder: Path) -> None:
        from safetensors import safe_open

        self.shards = [safe_open(str(p), framework="pt") for p in sorted(folder.glob("shard_*.safetensors"))]
        if not self.shards:
            raise ValidationError(f"{folder}: no perception data shards (shard_*.safetensors)")
        sizes = [s.get_slice("images").get_shape()[0] for s in self.shards]
        self.offsets = np.cumsum([0] + sizes)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def item(self, index: int) -> dict[str, Tensor]:
        shard = int(np.searchsorted(self.offsets, index, side="right") - 1)
        i = index - int(self.offsets[shard])
        return {k: self.shards[shard].get_slice(k)[i:i + 1][0] for k in self.KEYS}


def dense_targets(item: dict[str, Tensor], config: PerceptionConfig) -> dict[str, Tensor]:
    """Per-pixel targets of one frame's records.

    Returns:
        ``image`` (3, H, W) float in [0, 1]; ``log_depth`` (H, W); ``foreground`` (H, W) float
        0/1; ``heat`` (H, W) Gaussians at visible-mask centroids; ``offsets`` (2, H, W) to the
        centroid in offset units; ``box`` (13, H, W) (:func:`encode_estimates`); ``yaw2_weight``
        and ``yaw4_weight`` (H, W): where the doubled / quadrupled yaw is defined.
    """
    ids = item["instances"].long()
    H, W = ids.shape
    N = item["estimates"].shape[0]
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    flat = ids.flatten()
    count = torch.bincount(flat, minlength=N + 1).float()
    centroid = torch.zeros(N + 1, 2).index_add_(0, flat, torch.stack([u.flatten(), v.flatten()], -1))
    centroid = centroid / count.clamp(min=1)[:, None]
    seen = (count[1:] > 0).nonzero().flatten() + 1
    d2 = (u[None] - centroid[seen, 0, None, None]) ** 2 + (v[None] - centroid[seen, 1, None, None]) ** 2
    heat = torch.exp(-d2 / (2 * config.heat_sigma ** 2)).amax(0) if len(seen) else torch.zeros(H, W)
    fg = ids > 0
    offsets = (centroid[ids] - torch.stack([u, v], -1)).permute(2, 0, 1) / config.offset_scale * fg
    estimates = torch.cat([torch.zeros(1, len(ESTIMATE_FIELDS)), item["estimates"].float()])[ids]  # (H, W, 10)
    box = encode_estimates(estimates, u, v, config.offset_scale).permute(2, 0, 1) * fg
    flags = torch.cat([torch.zeros(1, 3, dtype=torch.uint8), item["flags"]])[ids].bool()  # (H, W, 3)
    return {"image": item["images"].float() / 255, "log_depth": torch.log(item["depth"].float()),
            "foreground": fg.float(), "heat": heat, "offsets": offsets, "box": box,
            "yaw4_weight": flags[..., 1].float(), "yaw2_weight": (flags[..., 1] & ~flags[..., 2]).float()}


def flip_horizontally(batch: dict[str, Tensor], which: Tensor) -> dict[str, Tensor]:
    """Mirror the samples ``which`` (B,) bool of a batch of :func:`dense_targets` left to right.

    Offsets along x change sign, and so does the relative yaw (a mirror turns the other way).
    """
    out = {}
    for key, value in batch.items():
        out[key] = torch.where(which.view(-1, *[1] * (value.dim() - 1)), value.flip(-1), value)
    for key, sign in zip(("offsets", "box"), mirror_signs()):
        out[key] = out[key] * torch.where(which[:, None], sign, 1.0)[:, :, None, None]
    return out


def compress(image: Tensor, quality: int) -> Tensor:
    """A (3, H, W) uint8 image after a round trip through JPEG at ``quality`` (blocks, ringing, halved chroma: the
    artefacts of compressed video)."""
    import cv2

    bgr = np.ascontiguousarray(image.permute(1, 2, 0).numpy()[..., ::-1])
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
    return torch.from_numpy(np.ascontiguousarray(decoded)).permute(2, 0, 1)


def augment(batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
    """Random left-right flips (:func:`flip_horizontally`), brightness / contrast / colour jitter and noise, per sample."""
    B = batch["image"].shape[0]
    out = flip_horizontally(batch, torch.rand(B, generator=generator) < 0.5)
    gain = 1 + 0.25 * (torch.rand(B, 1, 1, 1, generator=generator) - 0.5)
    tint = 1 + 0.1 * (torch.rand(B, 3, 1, 1, generator=generator) - 0.5)
    bias = 0.1 * (torch.rand(B, 1, 1, 1, generator=generator) - 0.5)
    noise = 0.02 * torch.rand(B, 1, 1, 1, generator=generator) * torch.randn(out["image"].shape, generator=generator)
    out["image"] = (out["image"] * gain * tint + bias + noise).clamp(0, 1)
    return out


def random_crop(batch: dict[str, Tensor], size: int, generator: torch.Generator) -> dict[str, Tensor]:
    """The same random ``size`` x ``size`` window of every map of each sample, with its frame coordinates as ``coords``.

    Offsets and box targets are relative to each pixel, so they stay valid in the window.
    """
    B, _, H, W = batch["image"].shape
    ys = torch.randint(0, H - size + 1, (B,), generator=generator).tolist()
    xs = torch.randint(0, W - size + 1, (B,), generator=generator).tolist()
    full = {**batch, "coords": coordinates(H, W)[None].expand(B, 2, H, W)}
    return {k: torch.stack([v[b, ..., y:y + size, x:x + size] for b, (y, x) in enumerate(zip(ys, xs))])
            for k, v in full.items()}


def perception_loss(maps, targets: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
    """Weighted sum of the heads' losses (see the module docstring of :mod:`neuralassets.perception.learned`)."""
    fg = targets["foreground"]
    pixels = fg.sum().clamp(min=1)
    prob = torch.sigmoid(maps.foreground)
    dice = 1 - (2 * (prob * fg).sum() + 1) / (prob.sum() + fg.sum() + 1)
    terms = {
        "depth": (maps.log_depth - targets["log_depth"]).abs().mean(),
        "foreground": F.binary_cross_entropy_with_logits(maps.foreground, fg) + dice,
        "heat": 50 * (maps.heat - targets["heat"]).square().mean(),
        "offsets": ((maps.offsets - targets["offsets"]).abs().sum(1) * fg).sum() / pixels,
    }
    error = (maps.box - targets["box"]).abs()
    terms["box"] = (error[:, :9].sum(1) * fg).sum() / pixels
    terms["yaw"] = ((error[:, 9:11].sum(1) * targets["yaw2_weight"]).sum() / targets["yaw2_weight"].sum().clamp(min=1)
                    + (error[:, 11:13].sum(1) * targets["yaw4_weight"]).sum() / targets["yaw4_weight"].sum().clamp(min=1))
    total = sum(terms.values())
    return total, {k: float(v.detach()) for k, v in terms.items()}


def train(data_dir: Path, checkpoints: Path, steps: int, batch_size: int = 8, crop: int = 96, lr: float = 2e-3, warmup: int = 300,
          ema_decay: float = 0.999, every: int = 250, seed: int = 0, config: PerceptionConfig | None = None) -> None:
    """Train :class:`PerceptionNet` on a ``data`` folder, resuming from the newest checkpoint in ``checkpoints``."""
    from .checkpoint import (
        ExponentialMovingAverage,
        flatten_optimizer_state,
        list_checkpoints,
        load_checkpoint,
        prefixed,
        save_checkpoint,
        unflatten_optimizer_state,
    )

    data = PerceptionData(data_dir)
    existing = list_checkpoints(checkpoints)
    meta = load_checkpoint(existing[-1])[1] if existing else {}
    config = PerceptionConfig(**meta["config"]) if "config" in meta else (config or PerceptionConfig())
    torch.manual_seed(seed)
    net = PerceptionNet(config)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    ema = ExponentialMovingAverage(net, ema_decay)
    step = 0
    if existing:
        tensors, meta = load_checkpoint(existing[-1])
        net.load_state_dict(prefixed(tensors, "model."))
        ema.shadow = prefixed(tensors, "ema.")
        ema.num_updates = meta["ema_updates"]
        optimizer.load_state_dict(unflatten_optimizer_state(tensors, meta["optimizer"]))
        step = meta["step"]
        print(f"resumed from {existing[-1].name}", flush=True)
    schedule = lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))  # noqa: E731
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    net.train()
    started, running = time.perf_counter(), {}
    while step < steps:
        position = (step * batch_size) % len(data)
        indices = [int(order[(position + i) % len(data)]) for i in range(batch_size)]
        items = [data.item(i) for i in indices]
        for item in items:  # half the frames as compressed video shows them
            if float(torch.rand(1, generator=generator)) < 0.5:
                item["images"] = compress(item["images"], int(torch.randint(25, 90, (1,), generator=generator)))
        targets = [dense_targets(item, config) for item in items]
        batch = augment({k: torch.stack([t[k] for t in targets]) for k in targets[0]}, generator)
        if crop < batch["image"].shape[-1]:
            batch = random_crop(batch, crop, generator)
        for group in optimizer.param_groups:
            group["lr"] = lr * schedule(step)
        loss, terms = perception_loss(net(batch["image"], batch.get("coords")), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        ema.update(net)
        step += 1
        for k, v in terms.items():
            running[k] = running.get(k, 0.0) + v
        if step % 50 == 0:
            rate = 50 * batch_size / (time.perf_counter() - started)
            print(f"step {step} " + " ".join(f"{k} {v / 50:.4f}" for k, v in running.items()) + f" | {rate:.1f} frames/s",
                  flush=True)
            started, running = time.perf_counter(), {}
        if step % every == 0 or step == steps:
            opt_tensors, opt_meta = flatten_optimizer_state(optimizer.state_dict())
            tensors = {**{f"model.{k}": v for k, v in net.state_dict().items()},
                       **{f"ema.{k}": v for k, v in ema.shadow.items()}, **opt_tensors}
            save_checkpoint(checkpoints, step, tensors, {
                "config": asdict(config), "optimizer": opt_meta, "ema_updates": ema.num_updates, "steps": steps,
                "batch_size": batch_size, "crop": crop, "lr": lr, "data": str(data_dir.name), "frames": len(data)}, keep=2)


def export(checkpoints: Path, out: Path, ema: bool = True) -> Path:
    """Write the newest checkpoint's weights (its EMA by default) as a perception model folder."""
    from ..perception.learned import LearnedPerception
    from .checkpoint import list_checkpoints, load_checkpoint, prefixed

    existing = list_checkpoints(checkpoints)
    if not existing:
        raise ValidationError(f"{checkpoints}: no checkpoints to export")
    tensors, meta = load_checkpoint(existing[-1])
    net = PerceptionNet(PerceptionConfig(**meta["config"]))
    net.load_state_dict(prefixed(tensors, "ema." if ema else "model."))
    card = {"training": {k: meta[k] for k in ("step", "steps", "batch_size", "crop", "lr", "frames") if k in meta}}
    return LearnedPerception(net).save_pretrained(out, **card)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="render training frames for, train and export the learned perception model")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("data", help="render train-split frames into shards")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--videos", type=int, default=3600)
    p.add_argument("--frames-per-video", type=int, default=6)
    p.add_argument("--first-seed", type=int, default=800_000, help="index into the train split of the first video")
    p.add_argument("--wide-share", type=float, default=0.3, help="share of videos from the wider generator")
    p = sub.add_parser("train", help="train (resumes from the newest checkpoint)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--checkpoints", type=Path, required=True)
    p.add_argument("--steps", type=int, default=12000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=96, help="train on random windows of this many pixels")
    p.add_argument("--lr", type=float, default=2e-3)
    p = sub.add_parser("export", help="write the newest checkpoint's EMA weights as a perception model folder")
    p.add_argument("--checkpoints", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--raw", action="store_true", help="export the raw weights instead of their EMA")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.command == "data":
        write_data(args.out, args.videos, args.frames_per_video, args.first_seed, args.wide_share)
    elif args.command == "train":
        train(args.data, args.checkpoints, args.steps, args.batch_size, args.crop, args.lr)
    else:
        print(export(args.checkpoints, args.out, ema=not args.raw))


if __name__ == "__main__":
    main()

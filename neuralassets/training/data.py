"""Training data: the pair datasets, a resumable sharded batch order, and the latent cache.

The data order is a pure function of (seed, micro-batch number, process rank): every epoch
is a seeded permutation of the fixed training set, and process ``r`` of ``W`` takes the
``r``-th slice of each global micro-batch. Resuming at step ``s`` therefore continues with
exactly the batches the uninterrupted run would have seen, with nothing to save but ``s``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from ..conditioning import Conditioning
from ..errors import ConfigError
from ..pipelines.surface_splatting import object_reference

if TYPE_CHECKING:
    from .config import DataConfig  # the config module imports the stages, which import this one


def build_pair_dataset(config: DataConfig, max_objects: int, image_size: int) -> tuple[Dataset, Callable]:
    """The training pairs named by ``config`` and their collate function.

    Synthetic pairs are rendered at ``image_size`` unless ``generator_config`` sets another size.

    Returns:
        a dataset of ``(Conditioning, target (3, H, W))`` and ``collate(items) -> (Conditioning, (B, 3, H, W))``.

    Raises:
        ConfigError: the data source is unavailable.
    """
    try:
        from ..data import pairs
    except ImportError as e:
        raise ConfigError(f"data.source: the pair datasets (neuralassets.data.pairs) cannot be imported: {e}") from e
    if config.source == "shards":
        folders = [config.shard_folder] if isinstance(config.shard_folder, str) else config.shard_folder
        dataset = ConcatDataset([pairs.ShardedPairDataset(folder) for folder in folders])
    else:
        from ..data.synthetic import generator_config

        generator = generator_config({"image_size": image_size, **(config.generator_config or {})}, "data.generator_config")
        dataset = pairs.FramePairDataset("train", config.length, max_objects, generator)
    return dataset, pairs.collate_pairs


class ResumableBatchSampler:
    """Endless per-process index batches over seeded epoch permutations.

    Args:
        length: size of the training set.
        batch_size: examples per process per micro-batch.
        seed: seeds each epoch's permutation (epoch ``e`` uses ``seed + e``).
        rank, world_size: this process and the number of processes.
        start_batch: global micro-batch to start from (``step * grad_accum_steps`` on resume).
    """

    def __init__(self, length: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, start_batch: int = 0):
        if length < 1:
            raise ConfigError("data.length: the training set is empty")
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        self._epoch, self._perm = -1, None

    def _index(self, position: int) -> int:
        epoch = position // self.length
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed + epoch))
        return int(self._perm[position % self.length])

    def __iter__(self) -> Iterator[list[int]]:
        batch = self.start_batch
        while True:
            first = (batch * self.world_size + self.rank) * self.batch_size
            yield [self._index(p) for p in range(first, first + self.batch_size)]
            batch += 1


class ResidentPairs:
    """A training set of ``(Conditioning, latent)`` pairs read once and held on one device.

    A batch is then one gather on that device instead of loading, pinning and copying its
    images (for 256 pairs at 128x128, about 100 MB of float images a step), which on an
    accelerator takes longer than a small model's step. Needs the whole set in the device's
    memory (about 0.5 MB per 128x128 pair, plus 0.3 MB for each further appearance image with its depth and slots)
    and briefly twice that while it is assembled. Every item's appearance images are padded
    to the longest list in the set (two when insertion or transfer pairs are in it): the
    padding is grey and no object reads it, so batches render as the loader's would, at the
    cost of encoding it.

    Args:
        pairs: dataset of ``(Conditioning, latent (C, h, w))``.
        device: where to hold it.
        num_workers: loader workers for the one pass that reads it.
    """

    def __init__(self, pairs: Dataset, device: torch.device | str, num_workers: int = 0):
        from tqdm.auto import tqdm

        loader = DataLoader(pairs, batch_size=256, collate_fn=collate_latents, num_workers=num_workers)
        chunks = [(c.to(device), z.to(device)) for c, z in tqdm(loader, desc="holding pairs", leave=False)]
        self.conditioning = Conditioning.collate([c for c, _ in chunks])
        self.latents = torch.cat([z for _, z in chunks])

    def __len__(self) -> int:
        return len(self.latents)

    def batches(self, sampler: Iterable[list[int]]) -> Iterator[tuple[Conditioning, Tensor]]:
        """Yield ``(Conditioning, (B, C, h, w) latents)`` for each index batch of ``sampler``, on the device."""
        for indices in sampler:
            index = torch.as_tensor(indices, device=self.latents.device)
            yield self.conditioning.select(index), self.latents[index]


def collate_latents(items: list) -> tuple[Conditioning, Tensor]:
    """[(Conditioning, latent (C, h, w))] -> (batched Conditioning, (B, C, h, w))."""
    return Conditioning.collate([c for c, _ in items]), torch.stack([z for _, z in items])


class SampledLatentPairs(Dataset):
    """Chosen pairs' targets with the latents a pipeline sampled for them.

    Items are ``((latent (C, h, w), reference (4, H, W)), target (3, H, W))``: the reference is
    the pair's :func:`~neuralassets.pipelines.surface_splatting.object_reference` at the target's size,
    for a decoder that takes detail from it; for another it is (0, H, W), not computed.

    Args:
        pairs: dataset of ``(Conditioning, target)``.
        indices: which pairs; item ``i`` is pair ``indices[i]``.
        latents: (len(indices), C, h, w) their sampled latents, in order.
        with_reference: whether items carry the object reference.
    """

    def __init__(self, pairs: Dataset, indices: list[int], latents: Tensor, with_reference: bool = True):
        self.pairs, self.indices, self.latents, self.with_reference = pairs, indices, latents, with_reference

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[tuple[Tensor, Tensor], Tensor]:
        cond, target = self.pairs[self.indices[index]]
        size = tuple(target.shape[-2:])
        reference = object_reference(cond, size)[0] if self.with_reference else torch.zeros(0, *size)
        return (self.latents[index], reference), target


def evenly_spaced(count: int, length: int) -> list[int]:
    """``min(count, length)`` indices spread evenly over ``range(length)`` (the first, and for two or more the last)."""
    return torch.linspace(0, length - 1, min(count, length)).round().long().tolist()


class LatentPairs(Dataset):
    """Pairs whose targets are replaced by cached latents: ``(Conditioning, latent (C, h, w))``."""

    def __init__(self, pairs: Dataset, latents: Tensor):
        self.pairs, self.latents = pairs, latents

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, index: int):
        cond, _ = self.pairs[index]
        return cond, self.latents[index]


def cache_latents(path: Path, pairs: Dataset, collate: Callable, encode: Callable[[Conditioning, Tensor], Tensor],
                  key: dict, batch_size: int = 64, num_workers: int = 0) -> Tensor:
    """A latent per pair, computed in order and read from ``path`` when it was written for the same ``key``.

    Args:
        path: safetensors cache file.
        pairs: dataset of ``(Conditioning, target)``.
        collate: its collate function.
        encode: (batched Conditioning, (B, 3, H, W) targets) -> (B, C, h, w) latents, called on
            consecutive batches in order (the target's encoding, or a sample of the pipeline).
        key: JSON-ready description of what the latents depend on (data config, model hashes).

    Returns:
        (len(pairs), C, h, w) float32.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    key_json = json.dumps(key, sort_keys=True)
    if path.is_file():
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("key") == key_json:
                return load_file(str(path))["latents"]
    loader = DataLoader(pairs, batch_size=batch_size, collate_fn=collate, num_workers=num_workers)
    chunks = [encode(cond, targets) for cond, targets in tqdm(loader, desc="caching latents", leave=False)]
    latents = torch.cat(chunks).float().contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"latents": latents}, str(tmp), metadata={"key": key_json})
    tmp.replace(path)
    return latents


def state_hash(module: torch.nn.Module) -> str:
    """SHA-256 of a module's weights (identifies which autoencoder produced cached latents)."""
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()

"""Device-resident batching: the whole split lives on the device as uint8; batches are sliced,
converted, augmented and normalised there, with no workers and no per-sample Python.

Batch order comes from a per-epoch permutation that is a pure function of (seed, epoch), so it is
the same on every device; augmentation draws from one generator on the device whose state is
saved, so a resumed run reproduces the same future batches and the same augmentations.

Under torchrun each of the `world_size` processes serves its `rank`'s slice of every global batch:
the same permutation split by rank, so a step's shards together are exactly the one-process batch.
Each rank augments with a generator of its own (rank 0 keeps the one-process one).

`flip_alternate` is airbench's alternating flip (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds"): in
place of a fresh coin per sample and step, a fixed random half of the images is mirrored in even
epochs and the other half in odd ones, so every image is seen both ways in every two epochs. It is a
pure function of (seed, sample, epoch), so it needs no saved state and agrees across ranks.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from .augment import mirror


def _derived_seed(seed: int, *key: int) -> int:
    """An independent 63-bit seed per (seed, purpose, ...) so streams never overlap."""
    return int(np.random.SeedSequence([seed, *key]).generate_state(1, np.uint64)[0]) >> 1


_PERMUTATION, _AUGMENT, _FLIP = 0, 1, 2   # purposes for _derived_seed


def _stats(values: Sequence[float], device) -> Tensor:
    return torch.as_tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)


def normalise(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 (B, C, H, W) -> float (B, C, H, W), (x/255 - mean) / std."""
    return (x.to(torch.float32) / 255.0 - mean) / std


class BatchLoader:
    """Infinite iterator of (x float normalised (B,C,H,W) on device, y int64) batches; whole split on the device as uint8."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, *, mean, std, device, seed: int,
                 augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
                 shuffle: bool = True, drop_last: bool = True, rank: int = 0, world_size: int = 1,
                 flip_alternate: bool = False):
        if x.dtype != torch.uint8 or x.ndim != 4 or y.shape != (len(x),):
            raise ValueError(f"BatchLoader wants uint8 (N, C, H, W) images and N labels, got {tuple(x.shape)} "
                             f"{x.dtype} and {tuple(y.shape)}")
        if batch_size < 1 or (drop_last and batch_size > len(x)) or len(x) == 0:
            raise ConfigError(f"batch size {batch_size} does not fit a split of {len(x)} images")
        self.device = torch.device(device)
        self.x = x.to(self.device).contiguous()
        self.y = y.to(self.device, torch.int64)
        self.batch_size = batch_size   # the global batch: every rank's shard of it together
        self.rank, self.world_size = rank, world_size
        self.mean, self.std = _stats(mean, self.device), _stats(std, self.device)
        self.seed = seed
        self.augment = augment
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(_derived_seed(seed, _AUGMENT, *([rank] if rank else [])))
        # each sample's mirroring in even epochs (odd epochs: the opposite); drawn on the CPU as the order
        self.flip_even = (torch.randint(0, 2, (len(x),), generator=torch.Generator().manual_seed(
            _derived_seed(seed, _FLIP))).bool().to(self.device) if flip_alternate else None)
        self.epoch = 0          # epochs started so far minus one; the current epoch's index
        self.position = 0       # samples of the current epoch already served
        self._order = self._permutation(0)

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _permutation(self, epoch: int) -> Tensor:
        n = len(self.x)
        if not self.shuffle:
            return torch.arange(n, device=self.device)
        # drawn on the CPU, so the order does not depend on the device (n int64s per epoch: cheap)
        g = torch.Generator().manual_seed(_derived_seed(self.seed, _PERMUTATION, epoch))
        return torch.randperm(n, generator=g).to(self.device, non_blocking=True)

    def __iter__(self) -> BatchLoader:
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        n = len(self.x)
        left = n - self.position
        if left <= 0 or (self.drop_last and left < self.batch_size):
            self.epoch += 1
            self.position = 0
            self._order = self._permutation(self.epoch)
        idx = self._order[self.position:self.position + self.batch_size]
        self.position += len(idx)
        if self.world_size > 1:
            idx = idx.tensor_split(self.world_size)[self.rank]
        # index_select, not x[idx]: on the CPU advanced indexing gathers element by element, 18-50x
        # slower for these batches (0.50 ms against 0.03 ms for 128 CIFAR images, one thread)
        x = self.x.index_select(0, idx).to(torch.float32).div_(255.0)
        if self.flip_even is not None:
            x = mirror(x, self.flip_even.index_select(0, idx) ^ bool(self.epoch % 2))
        if self.augment is not None:
            x = self.augment(x, self.generator)
        return (x - self.mean) / self.std, self.y.index_select(0, idx)

    def state_dict(self) -> dict:
        """Epoch, position and augmentation-generator state: enough to replay the exact future batches."""
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "num_samples": len(self.x), "generator": self.generator.get_state()}

    def load_state_dict(self, d: dict) -> None:
        if d["num_samples"] != len(self.x) or d["seed"] != self.seed:
            raise ValueError(f"loader state is for {d['num_samples']} samples and seed {d['seed']}, "
                             f"this loader has {len(self.x)} and seed {self.seed}")
        self.epoch, self.position = int(d["epoch"]), int(d["position"])
        self.generator.set_state(d["generator"].cpu())
        self._order = self._permutation(self.epoch)


def eval_batches(x: Tensor, y: Tensor, batch_size: int, *, mean, std, device) -> Iterator[tuple[Tensor, Tensor]]:
    """(x float normalised, y int64) batches in order, no augmentation, the last partial batch kept."""
    device = torch.device(device)
    m, s = _stats(mean, device), _stats(std, device)
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device, non_blocking=True)
        yield normalise(xb, m, s), y[i:i + batch_size].to(device, torch.int64, non_blocking=True)

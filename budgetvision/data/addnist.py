"""AddNIST (Geada et al. 2024, arXiv 2404.02189): three MNIST digits stacked as R, G, B, label = sum - 1.

Two ways in: the official release's six .npy files (float32, MNIST-normalised), converted back to
the uint8 pixels they were made from, or a deterministic rebuild from MNIST by the published rules:
only triples summing to 1..20 (20 classes), 2,250 / 750 / 500 images per class, train and valid
digits from a fixed 45k / 15k split of MNIST train, test digits from MNIST test.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError

NUM_CLASSES = 20
PER_CLASS = (2250, 750, 500)        # images per class in train / valid / test (the official sizes)
TRAIN_POOL_SHARE = 0.75             # MNIST train -> 45,000 digits for train, 15,000 for valid
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the official files are normalised with exactly these
OFFICIAL_FILES = ("train_x.npy", "train_y.npy", "valid_x.npy", "valid_y.npy", "test_x.npy", "test_y.npy")
SPLITS = ("train", "valid", "test")
_ROUND_TRIP_TOL = 0.05              # pixel units (0..255); real files miss integers by ~1e-5
_CONVERT_CHUNK = 4096               # images per float->uint8 chunk, so 45k float images never sit in memory twice


@dataclass(frozen=True)
class AddNIST:
    """The three official splits as uint8 (n, 3, 28, 28) images and int64 labels 0..19."""

    train: tuple[Tensor, Tensor]
    valid: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    # split -> (n, 3) int64 MNIST indices of each image's R, G, B digit; train and valid index
    # MNIST train, test indexes MNIST test. None for the official files, which do not record them.
    sources: dict[str, Tensor] | None = None


def mnist_train_pools(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint, sorted MNIST-train indices whose digits feed AddNIST train (3/4) and valid (1/4)."""
    perm = np.random.default_rng([seed, 0]).permutation(n)
    k = int(round(n * TRAIN_POOL_SHARE))
    return np.sort(perm[:k]), np.sort(perm[k:])


def _triples_by_sum() -> list[np.ndarray]:
    """All (r, g, b) digit triples, grouped by class (sum - 1) for sums 1..20."""
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(10), np.arange(10), indexing="ij"), -1).reshape(-1, 3)
    sums = grid.sum(1)
    return [grid[sums == c + 1] for c in range(NUM_CLASSES)]


def _draw_split(rng: np.random.Generator, pool: np.ndarray, pool_labels: np.ndarray, per_class: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Labels and (n, 3) source indices for one split, drawing digits from `pool` only."""
    # uniform over the triples of each sum == uniform digits conditioned on the sum
    triples = _triples_by_sum()
    digits = np.concatenate([t[rng.integers(len(t), size=per_class)] for t in triples])
    labels = np.repeat(np.arange(NUM_CLASSES, dtype=np.int64), per_class)
    src = np.empty(digits.shape, dtype=np.int64)
    for d in range(10):
        slots = np.flatnonzero(digits.reshape(-1) == d)
        if len(slots) == 0:
            continue
        images = pool[pool_labels == d]
        if len(images) == 0:
            raise DataError(f"cannot build AddNIST: the MNIST pool has no image of digit {d}")
        # cycle through shuffled copies so every pool image is used about equally often
        reps = -(-len(slots) // len(images))
        src.reshape(-1)[slots] = np.concatenate([rng.permutation(images) for _ in range(reps)])[: len(slots)]
    order = rng.permutation(len(labels))
    return labels[order], src[order]


def build_addnist(mnist_train_x, mnist_train_y, mnist_test_x, mnist_test_y, seed: int = 0,
                  per_class: tuple[int, int, int] = PER_CLASS) -> AddNIST:
    """Rebuild AddNIST from MNIST (arrays or tensors: uint8 (n, 28, 28) images, labels 0..9).

    Deterministic in `seed`. `per_class` gives images per class for train / valid / test."""
    xtr, ytr = np.asarray(mnist_train_x), np.asarray(mnist_train_y).astype(np.int64)
    xte, yte = np.asarray(mnist_test_x), np.asarray(mnist_test_y).astype(np.int64)
    if xtr.ndim == 4 and xtr.shape[1] == 1:
        xtr, xte = xtr[:, 0], xte[:, 0]
    if xtr.ndim != 3 or xte.ndim != 3 or len(xtr) != len(ytr) or len(xte) != len(yte):
        raise DataError("cannot build AddNIST: MNIST images must be (n, H, W) with one label each")
    train_pool, valid_pool = mnist_train_pools(len(xtr), seed)
    test_pool = np.arange(len(xte))
    # one independent stream per split, so changing one split's size leaves the others unchanged
    streams = [np.random.default_rng([seed, 1 + i]) for i in range(3)]
    parts, sources = {}, {}
    for name, rng, pool, images, labels, n in zip(
            SPLITS, streams, (train_pool, valid_pool, test_pool), (xtr, xtr, xte), (ytr, ytr, yte), per_class):
        y, src = _draw_split(rng, pool, labels[pool], n)
        x = np.ascontiguousarray(images[src])                    # (n, 3, H, W): R, G, B digits
        parts[name] = (torch.from_numpy(x.astype(np.uint8, copy=False)), torch.from_numpy(y))
        sources[name] = torch.from_numpy(src)
    return AddNIST(parts["train"], parts["valid"], parts["test"], sources)


def _fail(folder: Path, file: str, why: str) -> DataError:
    return DataError(f"AddNIST file {folder / file} {why}: put the six official files "
                     f"({', '.join(OFFICIAL_FILES)}) in {folder}/")


def _load_x(folder: Path, file: str) -> Tensor:
    try:
        a = np.load(folder / file, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise _fail(folder, file, "is missing") from None
    except (ValueError, OSError, EOFError) as e:
        raise _fail(folder, file, f"is corrupt or truncated ({type(e).__name__})") from None
    if a.ndim != 4 or a.shape[1:] != (3, 28, 28) or not np.issubdtype(a.dtype, np.floating):
        raise _fail(folder, file, f"has shape {a.shape} {a.dtype}, expected float (n, 3, 28, 28)")
    out = np.empty(a.shape, dtype=np.uint8)
    for i in range(0, len(a), _CONVERT_CHUNK):
        pix = (np.asarray(a[i:i + _CONVERT_CHUNK], dtype=np.float64) * MNIST_STD + MNIST_MEAN) * 255.0
        r = np.rint(pix)
        if pix.size and (np.abs(pix - r).max() > _ROUND_TRIP_TOL or r.min() < 0 or r.max() > 255):
            raise _fail(folder, file, "is not MNIST-normalised uint8 pixels ((p/255 - 0.1307) / 0.3081)")
        out[i:i + _CONVERT_CHUNK] = r
    return torch.from_numpy(out)


def _load_y(folder: Path, file: str, n: int) -> Tensor:
    try:
        a = np.load(folder / file, allow_pickle=False)
    except FileNotFoundError:
        raise _fail(folder, file, "is missing") from None
    except (ValueError, OSError, EOFError) as e:
        raise _fail(folder, file, f"is corrupt or truncated ({type(e).__name__})") from None
    if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
        raise _fail(folder, file, f"has shape {a.shape} {a.dtype}, expected {n} integer labels")
    if n and (a.min() < 0 or a.max() >= NUM_CLASSES):
        raise _fail(folder, file, f"has labels outside 0..{NUM_CLASSES - 1}")
    return torch.from_numpy(a.astype(np.int64))


def load_addnist_official(folder) -> AddNIST:
    """Load the official release's six .npy files from `folder`, back to uint8 pixels."""
    folder = Path(folder)
    parts = {}
    for name in SPLITS:
        x = _load_x(folder, f"{name}_x.npy")
        parts[name] = (x, _load_y(folder, f"{name}_y.npy", len(x)))
    return AddNIST(parts["train"], parts["valid"], parts["test"])

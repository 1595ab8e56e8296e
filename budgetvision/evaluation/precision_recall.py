"""Improved precision and recall of a generative model over feature vectors (Kynkäänniemi, Karras,
Laine, Lehtinen and Aila 2019, "Improved Precision and Recall Metric for Assessing Generative
Models", NeurIPS).

Each set's manifold is estimated as the union of balls around its feature vectors, a ball's radius
being the distance from its vector to the k-th nearest other vector of the same set. Precision is
the fraction of generated vectors inside the real manifold (how many samples look real), recall the
fraction of real vectors inside the generated manifold (how much of the real data the generator
covers). FID folds both into one number; these two tell a blurry-but-diverse generator from a sharp
but mode-dropping one.

The paper measures in VGG-16 fc2 features; this function takes whatever features it is given (the
FID Inception's pool3, a judge's penultimate layer), and its numbers compare only with numbers in
the same features.

torchmetrics has no version of it; torch-fidelity's (from 0.4, where this project allows 0.3)
computes the cross distances twice when it saves memory. Here they are computed once, in float64,
in blocks of `chunk` rows against a whole set (10,000 x 10,000 needs chunk x 10,000 numbers at a
time, not 10^8), and each block serves both directions.
"""
from __future__ import annotations

import torch
from torch import Tensor

PRC_K = 3            # the k-th nearest neighbour sets a ball's radius: the paper's choice
PRC_CHUNK = 1_000    # rows per distance block: 1,000 x 10,000 float64 distances = 80 MB


def knn_radii(features: Tensor, k: int = PRC_K, chunk: int = PRC_CHUNK) -> Tensor:
    """Distance from each row of (N, D) features to its k-th nearest other row, (N,) in their dtype."""
    # A row's distance to itself (0) is the smallest of its row, so the k-th other is the (k+1)-th value.
    return torch.cat([torch.cdist(block, features).kthvalue(k + 1, dim=1).values
                      for block in features.split(chunk)])


def precision_recall(real: Tensor, fake: Tensor, *, k: int = PRC_K, chunk: int = PRC_CHUNK) -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of `fake` against `real` features,
    (N, D) and (M, D), on their device. A vector on a ball's boundary is inside (<=, as the paper's
    code). Returns {"precision", "recall"} as floats in [0, 1] and "k"."""
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"want (N, D) and (M, D) features, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if k < 1 or chunk < 1:
        raise ValueError(f"k and chunk must be positive, got k={k}, chunk={chunk}")
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"a k-th nearest neighbour (k={k}) needs more than {k} vectors per set, "
                         f"got {len(real)} real and {len(fake)} generated")
    # float64: in float32 the |a|^2 + |b|^2 - 2ab that cdist uses loses the small distances to round-off
    real, fake = real.double(), fake.double()
    real_radii, fake_radii = knn_radii(real, k, chunk), knn_radii(fake, k, chunk)
    fake_in_real = torch.zeros(len(fake), dtype=torch.bool, device=fake.device)
    real_in_fake = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    for i in range(0, len(fake), chunk):
        dist = torch.cdist(fake[i:i + chunk], real)                       # (chunk, N)
        fake_in_real[i:i + chunk] = (dist <= real_radii).any(dim=1)
        real_in_fake |= (dist <= fake_radii[i:i + chunk, None]).any(dim=0)
    return {"precision": float(fake_in_real.double().mean()), "recall": float(real_in_fake.double().mean()),
            "k": k}

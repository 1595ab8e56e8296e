"""Nearest training images of generated samples (memorisation check, the anonymous paper's figure)."""
from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def pixel_nearest(samples: Tensor, train: Tensor, k: int = 5, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Indices and L2 distances (in [-1, 1] pixel space, per-pixel RMS) of each sample's k nearest
    training images. `train` is uint8 (N, C, H, W); it is scanned in chunks to bound memory."""
    s = samples.flatten(1).float()
    best_d = torch.full((len(s), k), float("inf"), device=s.device)
    best_i = torch.zeros((len(s), k), dtype=torch.long, device=s.device)
    for start in range(0, len(train), chunk):
        t = train[start:start + chunk].to(s.device).flatten(1).float() / 127.5 - 1
        d = torch.cdist(s, t)
        d_all = torch.cat([best_d, d], 1)
        i_all = torch.cat([best_i, torch.arange(start, start + len(t), device=s.device).expand(len(s), -1)], 1)
        best_d, order = d_all.topk(k, dim=1, largest=False)
        best_i = i_all.gather(1, order)
    return best_i, best_d / s.shape[1] ** 0.5

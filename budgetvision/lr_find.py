"""Learning-rate range test (Smith 2018, used by the anonymous paper to set its OneCycle peak).

The learning rate grows exponentially from `lr_min` to `lr_max` over `steps` optimisation steps on
a fresh copy of the preset's network; the smoothed loss is recorded until it diverges. These steps
train a throw-away network and do not count towards any run's budget."""
from __future__ import annotations

import math

import torch

from .data import BatchLoader, build_augment
from .objectives import NonFiniteLoss, build_objective
from .optim import build_optimizers
from .setup import Prepared, input_stats

SMOOTHING = 0.98      # EMA factor of the recorded loss (bias-corrected), as in fastai's finder
DIVERGE_FACTOR = 4.0  # stop once the smoothed loss exceeds this multiple of its best


def lr_range_test(prep: Prepared, *, lr_min: float = 1e-6, lr_max: float = 1.0, steps: int = 200,
                  seed: int = 0) -> dict:
    cfg, spec, device = prep.config, prep.splits.spec, prep.device
    torch.manual_seed(seed)
    objective = build_objective(cfg, spec).to(device)
    opts = build_optimizers(objective, cfg.optim, device)
    ratio = (lr_max / lr_min) ** (1 / max(steps - 1, 1))
    mean, std = input_stats(cfg, spec)
    loader = BatchLoader(*prep.splits.train, cfg.train.batch_size, mean=mean, std=std,
                         device=device, seed=seed, augment=build_augment(cfg.data.augment.as_spec()),
                         flip_alternate=cfg.data.augment.hflip_alternate)
    lrs, losses = [], []
    avg, best = 0.0, math.inf
    for i in range(steps):
        lr = lr_min * ratio ** i
        for opt in opts.values():
            for group in opt.param_groups:
                group["lr"] = lr
        x, y = next(loader)
        try:
            out = objective.train_step(x, y, opts, grad_clip=cfg.train.grad_clip)
        except NonFiniteLoss:  # divergence: the end of the range test, not an error
            break
        value = out["loss"].item()  # the test is short and its curve is the point: one sync per step
        avg = SMOOTHING * avg + (1 - SMOOTHING) * value
        smoothed = avg / (1 - SMOOTHING ** (i + 1))
        lrs.append(lr)
        losses.append(smoothed)
        best = min(best, smoothed)
        if smoothed > DIVERGE_FACTOR * best and i > 10:
            break
    return {"lrs": lrs, "losses": losses, "suggested_lr": suggest(lrs, losses)}


def suggest(lrs: list[float], losses: list[float]) -> float:
    """The learning rate of steepest loss descent (per log-lr), before the minimum."""
    if len(lrs) < 3:
        return lrs[0] if lrs else float("nan")
    stop = min(range(len(losses)), key=losses.__getitem__)
    stop = max(stop, 2)
    slopes = [(losses[i + 1] - losses[i - 1]) / (math.log(lrs[i + 1]) - math.log(lrs[i - 1]))
              for i in range(1, stop)]
    return lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)]

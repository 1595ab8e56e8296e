"""Optimisers and learning-rate schedules from an OptimConfig; schedulers step once per optimisation step."""
from __future__ import annotations

import torch

from .config import OptimConfig


def build_optimizer(params, cfg: OptimConfig, device: torch.device, lr: float | None = None) -> torch.optim.Optimizer:
    lr = cfg.lr if lr is None else lr
    fused = {"fused": True} if device.type == "cuda" else {}
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **fused)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **fused)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=True,
                           weight_decay=cfg.weight_decay, **fused)


def build_optimizers(objective, cfg: OptimConfig, device: torch.device) -> dict[str, torch.optim.Optimizer]:
    """One optimiser per group of an objective; a GAN's discriminator takes `d_lr` when it is set."""
    return {name: build_optimizer(params, cfg, device,
                                  lr=cfg.d_lr if name == "discriminator" and cfg.d_lr > 0 else None)
            for name, params in objective.optimizer_groups().items()}


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, steps: int):
    """A scheduler stepped once per optimisation step."""
    sched = torch.optim.lr_scheduler
    if cfg.schedule == "onecycle":
        return sched.OneCycleLR(opt, max_lr=opt.param_groups[0]["lr"], total_steps=steps, pct_start=cfg.onecycle_pct_start)
    if cfg.schedule == "cosine":
        warm = min(cfg.warmup_steps, steps - 1)
        cosine = sched.CosineAnnealingLR(opt, T_max=max(steps - warm, 1))
        if warm == 0:
            return cosine
        return sched.SequentialLR(opt, [sched.LinearLR(opt, start_factor=1e-3, total_iters=warm), cosine],
                                  milestones=[warm])
    if cfg.schedule == "exponential":
        return sched.StepLR(opt, step_size=cfg.decay_every, gamma=cfg.decay_rate)
    return sched.ConstantLR(opt, factor=1.0, total_iters=0)

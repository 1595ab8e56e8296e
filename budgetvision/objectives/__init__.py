"""Objectives wrap the trained networks and own a training step: `objective.train_step(x, y, opts)`.

`build_objective` is the one place a config's `objective.name` becomes an objective. Each objective
is built from its networks and its config section (`cfg.objective`), which config.py has checked."""
from __future__ import annotations

import importlib

from ..config import check_run
from .base import GenerativeObjective, NonFiniteLoss, Objective
from .classification import Classification

# objective.name -> (module, builder); imported on demand so a classifier run never loads the rest
_BUILDERS = {
    "gan": ("budgetvision.objectives.gan", "build_gan"),
    "ddpm": ("budgetvision.objectives.diffusion", "build_diffusion"),
    "vdiffusion": ("budgetvision.objectives.diffusion", "build_diffusion"),
    "pca": ("budgetvision.objectives.pca", "build_pca"),
}


def build_objective(cfg, spec) -> Objective:
    """The objective (with freshly initialised networks) for a RunConfig on a data set's DataSpec."""
    check_run(cfg)
    if cfg.objective.name == "classification":
        from ..models.registry import build_configured

        network = build_configured(cfg.model, in_channels=spec.channels, num_classes=spec.num_classes,
                                   image_size=spec.image_size)
        return Classification(network, label_smoothing=cfg.train.label_smoothing)
    module, builder = _BUILDERS[cfg.objective.name]
    return getattr(importlib.import_module(module), builder)(cfg, spec)


__all__ = ["Classification", "GenerativeObjective", "NonFiniteLoss", "Objective", "build_objective"]

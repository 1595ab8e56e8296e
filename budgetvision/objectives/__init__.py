"""Objectives wrap the trained networks and own a training step: `objective.train_step(x, y, opts)`.

`build_objective` is the one place a config's `objective.name` becomes an objective."""
from __future__ import annotations

import importlib

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
    if cfg.objective.name == "classification":
        from ..models.registry import build_configured

        network = build_configured(cfg.model, in_channels=spec.channels, num_classes=spec.num_classes,
                                   image_size=spec.image_size)
        return Classification(network, label_smoothing=cfg.train.label_smoothing)
    module, builder = _BUILDERS[cfg.objective.name]
    return getattr(importlib.import_module(module), builder)(cfg, spec)


__all__ = ["Classification", "GenerativeObjective", "NonFiniteLoss", "Objective", "build_objective"]

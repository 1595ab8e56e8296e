"""A run's setup: what is the same for all its seeds, worked out and checked before any file is
written (the training loop, loop.py, then trains one seed from it).

`prepare()` does everything that can fail on bad input (budget, data, model) and returns a
`Prepared`; the helpers beside it answer the questions asked of a config without training it: the
data set's shape (`shape_spec`), the budgeted parameter counts (`config_params`, `param_counts`),
the input normalisation (`input_stats`) and the network as it is evaluated (`for_evaluation`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .budget import budget_of, enforce_budget
from .config import RunConfig, check_fits
from .data import DataSpec, Splits, splits_of
from .data.shapes import data_shape
from .errors import BudgetVisionError, ConfigError
from .models import count_params
from .models.layers import ViewAveraged
from .objectives import Objective, build_objective


@dataclass
class Prepared:
    """Everything a run needs that is the same for all its seeds, validated before any write."""
    config: RunConfig
    splits: Splits
    device: torch.device
    params: int                      # the budgeted total
    param_counts: dict[str, int]     # per trained network (generator, discriminator, ...) and total
    over_budget: bool
    data_root: Path | None = None    # where the data was read from: run.json records it for a resume


def shape_spec(cfg: RunConfig, data_root: Path | None = None) -> DataSpec:
    """A DataSpec with the data set's shape and class count, without loading its images."""
    channels, size, classes = data_shape(cfg.data.name, data_root)
    return DataSpec(name=cfg.data.name, channels=channels, image_size=size, num_classes=classes,
                    mean=(0.5,) * channels, std=(0.5,) * channels,
                    class_names=tuple(str(i) for i in range(classes)))


def param_counts(objective: Objective) -> dict[str, int]:
    """Budgeted parameters (count_params) of each trained network, by role, and their "total"."""
    counts = {role: count_params(net) for role, net in objective.trained_networks().items()}
    return {**counts, "total": sum(counts.values())}


def config_params(cfg: RunConfig, data_root: Path | None = None) -> dict[str, int]:
    """Budgeted parameters (count_params) of a config's networks on its data set (known shapes need no data)."""
    return param_counts(build_objective(cfg, shape_spec(cfg, data_root)))


def prepare(cfg: RunConfig, *, data_root: Path | None, device: torch.device, allow_over: bool) -> Prepared:
    # The budget is checked before the data is loaded: an over-budget run fails fast, even offline.
    counts = config_params(cfg, data_root)
    over = enforce_budget(counts["total"], cfg.train.steps, budget_of(cfg), allow_over=allow_over)
    check_world(cfg, distributed.world_size())
    splits = splits_of(cfg.data, data_root)
    check_fits(cfg, splits.spec.image_size)
    if cfg.train.batch_size > len(splits.train[1]):
        raise BudgetVisionError(f"train.batch_size {cfg.train.batch_size} exceeds the {len(splits.train[1])} "
                                f"training images of '{cfg.data.name}'")
    return Prepared(cfg, splits, device, counts["total"], counts, over, data_root)


def check_world(cfg: RunConfig, world: int) -> None:
    """A run on `world` processes (torchrun) splits the global batch train.batch_size evenly."""
    if world == 1:
        return
    if cfg.train.batch_size % world:
        raise ConfigError(f"train.batch_size {cfg.train.batch_size} is the global batch and does not split over "
                          f"{world} processes; use a multiple of {world}")
    if cfg.objective.name == "pca":
        raise ConfigError("PCA fits its statistics in one pass on one process; train it without torchrun")


def input_stats(cfg: RunConfig, spec: DataSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Classifiers see per-data-set standardised inputs; generators model images in [-1, 1]."""
    if cfg.task == "generate":
        return (0.5,) * spec.channels, (0.5,) * spec.channels
    return spec.mean, spec.std


def for_evaluation(network: nn.Module, cfg: RunConfig) -> nn.Module:
    """The network as a run is evaluated: wrapped in test-time augmentation where it asks."""
    if cfg.task != "classify" or not (cfg.train.flip_tta or cfg.train.tta_shift):
        return network
    return ViewAveraged(network, flip=cfg.train.flip_tta, shift=cfg.train.tta_shift,
                        shift_weight=cfg.train.tta_shift_weight)

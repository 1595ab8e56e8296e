"""The Python API: what the command line does, as functions (the command line is built on them).

    import budgetvision as bv
    run = bv.train("addnist-mobilenet", steps=2000, overrides={"optim.lr": 1e-3}, out="runs")
    model = bv.load(run.path)            # the trained network (EMA copy when kept), eval mode
    bv.evaluate(run.path).test_accuracy
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from . import distributed
from .budget import budget_line, budget_of
from .config import RunConfig, apply_overrides, check_seeds
from .data import data_root as default_data_root
from .device import precision, resolve_device
from .errors import ConfigError
from .presets import get_preset
from .runs import (class_labels, evaluate_generator, evaluate_run, open_run, open_seed, parse_seeds,
                   recorded_data_root, refuse_generator_request, sample as sample_images, sampling_overrides,
                   start_run, summary_line, to_uint8, train_seeds)
from .setup import prepare


@dataclass
class Run:
    """A finished (or resumed) run: its folder, resolved config and aggregate results."""
    path: Path
    config: RunConfig
    results: dict

    @property
    def summary(self) -> str:
        return summary_line(self.results)


def _override_text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, (tuple, list)):
        return f"{key}={','.join(str(v) for v in value)}"
    return f"{key}={value}"


def resolve(preset: str, *, dataset: str | None = None, steps: int | None = None, seed: int | None = None,
            overrides: Mapping[str, Any] | list[str] | None = None) -> RunConfig:
    """A preset's config with the shorthands and `overrides` ({"optim.lr": 1e-3} or ["optim.lr=1e-3"])
    applied, strictly (unknown keys, wrong types and out-of-range values raise ConfigError)."""
    items = [f"data.name={dataset}"] if dataset is not None else []
    items += [f"train.steps={steps}"] if steps is not None else []
    items += [f"train.seed={seed}"] if seed is not None else []
    if isinstance(overrides, Mapping):
        items += [_override_text(k, v) for k, v in overrides.items()]
    else:
        items += list(overrides or [])
    return apply_overrides(get_preset(preset).config, items)


def seeds_of(cfg: RunConfig, seeds: int) -> list[int]:
    """The seeds a run of `seeds` seeds trains: train.seed onwards, all of them seeds."""
    if seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    check_seeds(cfg.train.seed, seeds)
    return list(range(cfg.train.seed, cfg.train.seed + seeds))


def train(preset: str | RunConfig, *, steps: int | None = None, dataset: str | None = None, seed: int | None = None,
          seeds: int = 1, overrides: Mapping[str, Any] | list[str] | None = None, out: str | Path = "runs",
          data_root: str | Path | None = None, device: str = "auto", over_budget: bool = False,
          progress: bool = True, verbose: bool = False) -> Run:
    """Train `seeds` seeds of a preset (or a RunConfig) into a new run folder under `out`. Under
    torchrun every process calls this and all train one run (rank 0 writes it); each gets the Run."""
    cfg = preset if isinstance(preset, RunConfig) else resolve(preset, dataset=dataset, steps=steps, seed=seed,
                                                                overrides=overrides)
    seed_list = seeds_of(cfg, seeds)
    with distributed.group(resolve_device(device)) as dev:
        prep = distributed.everywhere(lambda: prepare(cfg, data_root=default_data_root(data_root), device=dev,
                                                      allow_over=over_budget))
        verbose = verbose and distributed.is_main()
        if verbose:
            world = distributed.world_size()
            procs = f" over {world} processes ({cfg.train.batch_size // world} each)" if world > 1 else ""
            print(f"{cfg.preset}: {budget_line(prep.param_counts, cfg.train.steps, budget_of(cfg))}, "
                  f"batch {cfg.train.batch_size}{procs}, seeds {seed_list}, device {dev}"
                  + (f" ({torch.get_num_threads()} threads)" if dev.type == "cpu" else "")
                  + (f", {precision(dev, cfg.train)}" if precision(dev, cfg.train) != "fp32" else "")
                  + (" — OVER BUDGET by explicit override" if prep.over_budget else ""))
        run_dir = distributed.from_main(lambda: start_run(prep, Path(out), seed_list))
        if verbose:
            print(f"run folder: {run_dir}  (resume with: budgetvision train --resume {run_dir})")
        return Run(run_dir, cfg, train_seeds(prep, run_dir, seed_list, progress=progress))


def resume(path: str | Path, *, data_root: str | Path | None = None, device: str = "auto",
           progress: bool = True) -> Run:
    """Continue a killed run from its checkpoints; a finished run returns its results unchanged.
    Under torchrun, with as many processes as trained it. The data is read from `data_root`, else
    from where the run read it (its run.json), else from the default root."""
    run_dir = Path(path)
    with distributed.group(resolve_device(device)) as dev:
        cfg, manifest = distributed.from_main(lambda: open_run(run_dir))
        root = default_data_root(data_root or recorded_data_root(manifest))
        prep = distributed.everywhere(lambda: prepare(cfg, data_root=root, device=dev,
                                                      allow_over=manifest["over_budget"]))
        return Run(run_dir, cfg, train_seeds(prep, run_dir, manifest["seeds"], progress=progress))


def load(path: str | Path, *, seed: int | None = None, device: str = "cpu",
         data_root: str | Path | None = None) -> nn.Module:
    """The trained network of a run's seed (default: its first), in eval mode: the EMA copy when the
    run kept one, a classifier as the run evaluates it (flip test-time augmentation where it asks).
    Classifiers take inputs standardised with their train split's statistics (`input_stats`)."""
    return open_seed(Path(path), device=resolve_device(device), seed=seed,
                     data_root=default_data_root(data_root)).network


def evaluate(path: str | Path, *, data_root: str | Path | None = None, device: str = "auto",
             **generator_metrics) -> SimpleNamespace:
    """A classifier run's test accuracy over its seeds (`.test_accuracy`, `.test_accuracy_std`,
    `.per_seed`), or a generator run's metrics as `budgetvision eval` computes them
    (e.g. `evaluate(run, fid=True, judge="runs/00001-mnist-lenet", n=10_000)`). Writes eval.json, or
    eval-train.json / eval-val.json for `reference="train"` / `"val"` (a generator's choosing)."""
    run_dir = Path(path)
    cfg, _ = open_run(run_dir)
    root, dev = default_data_root(data_root), resolve_device(device)
    if cfg.task == "classify":
        refuse_generator_request(run_dir, generator_metrics)
        return SimpleNamespace(**evaluate_run(run_dir, data_root=root, device=dev))
    return SimpleNamespace(**evaluate_generator(run_dir, data_root=root, device=dev, **generator_metrics))


def sample(path: str | Path, seeds: str | list[int] = "0-63", *, label: int | None = None, device: str = "cpu",
           seed: int | None = None, **sampling) -> torch.Tensor:
    """uint8 images (N, C, H, W) of a generator run; image k comes from seeds[k] alone. A diffusion
    run samples as trained unless `sampling` says otherwise (sampler="dpmpp2m", sample_steps=20,
    cfg_scale=0.5, guidance_interval="0.3,3"), as `budgetvision sample --sampler ...` does."""
    seed_list = parse_seeds(seeds) if isinstance(seeds, str) else [int(s) for s in seeds]
    dev = resolve_device(device)
    opened = open_seed(Path(path), device=dev, seed=seed, task="generate",
                       sampling=sampling_overrides(Path(path), **sampling))
    labels = class_labels(opened.objective, seed_list, label, opened.spec.num_classes, dev)
    return to_uint8(sample_images(opened.objective, opened.network, seed_list, labels))

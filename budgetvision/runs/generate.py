"""Sampling, interpolation and nearest neighbours from a trained generator run's checkpoint."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ..config import MAX_SEED, RunConfig
from ..errors import ConfigError
from ..evaluation.neighbours import pixel_nearest
from ..objectives import GenerativeObjective
from .folder import open_run, open_seed


def parse_seeds(text: str) -> list[int]:
    """'0-63', '0,5,9' or '3' -> a list of non-negative seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConfigError(f"bad seed list {text!r}: use e.g. 0-63 or 0,5,9")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ConfigError(f"bad seed range {part!r}: the end is below the start")
        if hi > MAX_SEED:
            raise ConfigError(f"seed {hi} in {text!r} is past the largest seed {MAX_SEED}")
        if hi - lo >= 100_000:
            raise ConfigError(f"seed list {text!r} is too long (more than 100,000)")
        seeds.extend(range(lo, hi + 1))
    if len(seeds) > 100_000:
        raise ConfigError(f"seed list {text!r} is too long ({len(seeds):,} > 100,000)")
    return seeds


def open_generator(run_dir: Path, *, device, run_seed: int | None = None, data_root: Path | None = None,
                   **sampling) -> tuple[RunConfig, GenerativeObjective, torch.nn.Module]:
    """A generator run's objective and its sampling network (the EMA copy when kept); `sampling`
    (sampler=, sample_steps=, cfg_scale=, guidance_interval=) replaces how a diffusion run samples."""
    opened = open_seed(run_dir, device=device, seed=run_seed, task="generate", data_root=data_root,
                       sampling=sampling_overrides(run_dir, **sampling))
    return opened.config, opened.objective, opened.network


def sampling_overrides(run_dir: Path, *, sampler: str | None = None, sample_steps: int | None = None,
                       cfg_scale: float | None = None, guidance_interval: str | None = None) -> list[str]:
    """Config overrides (objective.sampler=..., ...) for the sampling settings given; a generator
    that samples in one pass (a GAN, PCA) refuses them in one line."""
    given = (("sampler", sampler), ("sample_steps", sample_steps), ("cfg_scale", cfg_scale),
             ("guidance_interval", guidance_interval))
    overrides = [f"objective.{key}={value}" for key, value in given if value is not None]
    if overrides and not hasattr(open_run(run_dir)[0].objective, "sampler"):
        raise ConfigError("--sampler, --sample-steps, --cfg-scale and --guidance-interval are for diffusion "
                          f"runs; {run_dir} samples in one pass")
    return overrides


def class_labels(objective: GenerativeObjective, seeds: list[int], label: int | None, num_classes: int, device):
    if label is None or not objective.conditional:
        if label is not None:
            raise ConfigError("--class needs a class-conditional generator; this one is unconditional")
        return None
    if not 0 <= label < num_classes:
        raise ConfigError(f"--class must be in 0..{num_classes - 1}, got {label}")
    return torch.full((len(seeds),), label, dtype=torch.long, device=device)


@torch.no_grad()
def sample(objective, network, seeds: list[int], labels, batch_size: int = 256) -> torch.Tensor:
    """Images for `seeds` in batches; each image depends on its seed only, so batching is free."""
    out = []
    for i in range(0, len(seeds), batch_size):
        lab = None if labels is None else labels[i:i + batch_size]
        out.append(objective.sample(seeds[i:i + batch_size], lab, network=network).cpu())
    return torch.cat(out)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8 [0, 255], rounded as an 8-bit PNG of the sample holds it."""
    return images.detach().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def nearest_training_images(samples: torch.Tensor, train_x: torch.Tensor, k: int):
    idx, dist = pixel_nearest(samples, train_x, k=k)
    neighbours = train_x[idx.flatten().cpu()].float().div(127.5).sub(1).reshape(*idx.shape, *train_x.shape[1:])
    return neighbours, dist

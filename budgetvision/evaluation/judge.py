"""Scores from a classifier the tool trained on the real data, run as a judge (Rzayev's "LeNet
score"): its accuracy on class-conditional samples, taking each sample's intended class as the
label, per class and as a confusion matrix; and a Fréchet distance between its penultimate-layer
features of generated and of real test images.

Every number carries the judge's name: a judge-feature FID depends on the judge and is never
comparable with the Inception FID, so it is never called "fid" alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data import DataSpec
from ..data.loader import normalise
from ..errors import BudgetVisionError
from .classification import evaluate_classifier
from .fid import feature_stats, frechet_distance


@dataclass
class Judge:
    """A trained classifier and what it needs to read images (the run layer's open_judge builds one)."""
    name: str                       # "<preset> (<run dir>)", written beside every judge score
    run_dir: Path
    seed: int                       # the judge run's training seed whose checkpoint is used
    step: int
    network: nn.Module              # eval mode; has features() (penultimate) and forward() (logits)
    spec: DataSpec                  # of the judge's own data set: its classes and normalisation
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test_accuracy: float | None     # the judge run's own test accuracy for that seed, when recorded


def check_judge_fits(judge: Judge, spec: DataSpec, generator: str) -> None:
    """A judge must see images of the generator's shape and know its classes."""
    theirs = (judge.spec.channels, judge.spec.image_size, judge.spec.num_classes)
    ours = (spec.channels, spec.image_size, spec.num_classes)
    if theirs != ours:
        raise BudgetVisionError(
            f"judge {judge.name} was trained on {judge.spec.name} ({theirs[0]}x{theirs[1]}x{theirs[1]}, {theirs[2]} "
            f"classes) but {generator} generates {spec.name} ({ours[0]}x{ours[1]}x{ours[1]}, {ours[2]} classes); "
            f"train a judge on the generator's data set")


def judge_scores(judge: Judge, images: Tensor, labels: Tensor, *, device, batch_size: int = 250) -> dict:
    """The judge's accuracy on uint8 images against their intended classes: overall, per class and
    the confusion matrix (rows: intended class, columns: judged class)."""
    out = evaluate_classifier(judge.network, images, labels.cpu(), mean=judge.mean, std=judge.std, device=device,
                              num_classes=judge.spec.num_classes, batch_size=batch_size)
    confusion = out["confusion"]
    per_class = confusion.diag().double() / confusion.sum(1).clamp_min(1).double()
    return {"accuracy": out["accuracy"], "per_class_accuracy": per_class.tolist(),
            "confusion": confusion.tolist(), "n": out["n"]}


@torch.no_grad()
def judge_predictions(judge: Judge, images: Tensor, *, device, batch_size: int = 250) -> Tensor:
    """The judge's class for each uint8 image (for unconditional samples: which classes come out)."""
    return torch.cat([judge.network(x).argmax(1).cpu() for x in _batches(judge, images, device, batch_size)])


@torch.no_grad()
def judge_features(judge: Judge, images: Tensor, *, device, batch_size: int = 250) -> Tensor:
    """Penultimate-layer features (N, D), float32 on the CPU, of uint8 images."""
    return torch.cat([judge.network.features(x).float().cpu() for x in _batches(judge, images, device, batch_size)])


def judge_fid(judge: Judge, generated: Tensor, real: Tensor, *, device, batch_size: int = 250) -> float:
    """Fréchet distance between the judge's features of generated and of real uint8 images."""
    mu_g, sigma_g = feature_stats(judge_features(judge, generated, device=device, batch_size=batch_size))
    mu_r, sigma_r = feature_stats(judge_features(judge, real, device=device, batch_size=batch_size))
    return frechet_distance(mu_g, sigma_g, mu_r, sigma_r)


def _batches(judge: Judge, images: Tensor, device, batch_size: int):
    if images.dtype != torch.uint8:
        raise ValueError(f"the judge takes uint8 images, got {images.dtype}")
    mean = torch.tensor(judge.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(judge.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    for i in range(0, len(images), batch_size):
        yield normalise(images[i:i + batch_size].to(device), mean, std)

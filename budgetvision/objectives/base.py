"""What every objective is: it wraps the trained networks and owns one optimisation step.

The training loop only knows this interface: it builds one optimiser per entry of
`optimizer_groups()`, calls `train_step()` once per step, and counts `trained_networks()` for
the budget. Generative objectives add seeded sampling and interpolation beside the loss.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from ..config import INTERPOLATION_LABELS, INTERPOLATIONS
from ..distributed import average_gradients
from ..errors import BudgetVisionError


# Profiler ranges of a training step's parts (`bench` reads them); everything else in a step is the
# loop's own time: data, augmentation, the non-finite guard, clipping, EMA, schedule, logging.
FORWARD, BACKWARD, OPTIMIZER = "bv.forward", "bv.backward", "bv.optimizer"


class NonFiniteLoss(BudgetVisionError):
    """A NaN or inf loss; the loop adds the step and the last good checkpoint to the message."""


def optimizer_step(loss: Tensor, opt: torch.optim.Optimizer, params: Iterable[Tensor], *,
                   grad_clip: float = 0.0, name: str = "loss") -> None:
    """zero_grad, backward, optional global-norm clip, step; a non-finite loss or gradient is
    refused before it reaches the weights (the gradients are cleared and NonFiniteLoss raised).

    The test is one device sync per call: a NaN must stop (or skip) the step at once. Under torchrun
    the gradients are first averaged over the processes (DDP's step), and so is the loss tested, so
    every process clips by the same norm and takes the same decision."""
    params = [p for p in params if p.requires_grad]
    opt.zero_grad(set_to_none=True)
    with torch.profiler.record_function(BACKWARD):
        loss.backward()
    loss = average_gradients(params, loss)
    if grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if not torch.isfinite(loss.detach() + norm):
        opt.zero_grad(set_to_none=True)
        what = name if not torch.isfinite(loss) else f"gradient of the {name}"
        raise NonFiniteLoss(f"non-finite {what} ({loss.item()})")
    with torch.profiler.record_function(OPTIMIZER):
        opt.step()


class Objective(nn.Module):
    amp_dtype: torch.dtype | None = None   # set by the loop: autocast dtype of forward passes (None: fp32)

    @contextlib.contextmanager
    def autocast(self, x: Tensor):
        """The precision of forward passes and losses, never of backward or the optimiser step:
        autocast to `amp_dtype` where the loop set one (bf16 on CUDA), else full precision. Every
        forward pass of a step runs in here, so here is also its profiler range (FORWARD)."""
        precision = (contextlib.nullcontext() if self.amp_dtype is None
                     else torch.autocast(x.device.type, dtype=self.amp_dtype))
        with torch.profiler.record_function(FORWARD), precision:
            yield

    def trained_networks(self) -> dict[str, nn.Module]:
        """Every network trained for the task, by role; their parameters are the budgeted count."""
        raise NotImplementedError

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Optimiser name -> parameters. "main" is the network a step is counted by; a GAN adds
        "discriminator"."""
        raise NotImplementedError

    def ema_target(self) -> nn.Module:
        """The network whose weights an EMA averages (classifier, generator or denoiser)."""
        raise NotImplementedError

    def train_step(self, x: Tensor, y: Tensor, opts: dict[str, torch.optim.Optimizer], *,
                   grad_clip: float = 0.0) -> dict[str, Tensor]:
        """One optimisation step on a batch (x normalised, y labels). Returns device scalars
        (no .item()): always "loss"; classifiers also "correct" (count in the batch)."""
        raise NotImplementedError


class GenerativeObjective(Objective):
    """A generator's objective, built from its config section (objective.*, every generator's
    _GenerativeConfig fields: the recipe's interpolation) and its data set's class count."""

    def __init__(self, section, *, num_classes: int, conditional: bool):
        super().__init__()
        self.cfg = section                      # objective.*, as config.py checked it
        self.num_classes = num_classes
        self.conditional = conditional          # samples are drawn for a class (labels_for)
        self.interpolation = section.interpolation                 # the recipe's latent path ...
        self.interpolation_labels = section.interpolation_labels   # ... and its classes along it

    def labels_for(self, seeds: Sequence[int], labels: Tensor | None = None, device="cpu") -> Tensor | None:
        """The classes of conditional samples of `seeds`, on `device`: `labels` where given (one class
        index per seed, checked), else seed % num_classes (`default_labels`); None for an
        unconditional model."""
        if not self.conditional:
            return None
        if labels is None:
            return default_labels(seeds, self.num_classes).to(device)
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if labels.numel() != len(seeds) or labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f"labels must be {len(seeds)} class indices in [0, {self.num_classes})")
        return labels.to(device)

    @torch.no_grad()
    def sample(self, seeds: Sequence[int], labels: Tensor | None = None, *,
               network: nn.Module | None = None) -> Tensor:
        """Images in [-1, 1], (len(seeds), C, H, W). Image k depends only on seeds[k] (its own
        torch.Generator for every random draw), never on the batch it was drawn in.
        `network` replaces ema_target() (e.g. by its EMA copy)."""
        raise NotImplementedError

    @torch.no_grad()
    def interpolate(self, seed_pairs: Sequence[tuple[int, int]], steps: int,
                    labels: tuple[Tensor, Tensor] | None = None, *, mode: str | None = None,
                    label_mode: str | None = None, network: nn.Module | None = None) -> Tensor:
        """(pairs, steps, C, H, W) in [-1, 1]: lerp or slerp between the pairs' latents and, for
        conditional models, blended class embeddings or the closer end's label (label_mode blend |
        nearest); endpoints equal sample() of each seed. None: the recipe's own (`_paths`)."""
        raise NotImplementedError

    def _paths(self, mode: str | None, label_mode: str | None):
        """(latent blend function, label_mode) of an interpolation; None takes the recipe's."""
        mode = self.interpolation if mode is None else mode
        label_mode = self.interpolation_labels if label_mode is None else label_mode
        if mode not in INTERPOLATIONS:
            raise ValueError(f"interpolation mode must be one of {', '.join(INTERPOLATIONS)}, got {mode!r}")
        if label_mode not in INTERPOLATION_LABELS:
            raise ValueError(f"interpolation labels must be one of {', '.join(INTERPOLATION_LABELS)}, "
                             f"got {label_mode!r}")
        return (slerp if mode == "slerp" else lerp), label_mode


def default_labels(seeds: Sequence[int], num_classes: int) -> Tensor:
    """The class a conditional sample of seed s gets when none is asked for: s % num_classes, so any
    run of consecutive seeds covers the classes evenly."""
    return torch.tensor([int(s) % num_classes for s in seeds], dtype=torch.long)


def seeded_normal(seeds: Sequence[int], shape: Sequence[int], device) -> Tensor:
    """One standard-normal tensor of `shape` per seed, each from its own generator, stacked."""
    out = []
    for s in seeds:
        g = torch.Generator(device="cpu").manual_seed(int(s))
        out.append(torch.randn(*shape, generator=g))
    return torch.stack(out).to(device)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation per row of flattened a, b at fractions t (broadcast); lerp where
    the vectors are (anti)parallel."""
    fa, fb = a.flatten(1), b.flatten(1)
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))[:, None]
    t = t.reshape(-1, 1) if t.dim() else t.reshape(1, 1)
    so = torch.sin(omega)
    safe = so.abs() > 1e-6
    wa = torch.where(safe, torch.sin((1 - t) * omega) / so.where(safe, torch.ones_like(so)), 1 - t)
    wb = torch.where(safe, torch.sin(t * omega) / so.where(safe, torch.ones_like(so)), t)
    return (wa * fa + wb * fb).reshape(a.shape)


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    t = t.reshape(-1, *([1] * (a.dim() - 1))) if t.dim() else t
    return a + (b - a) * t


def nearest_end(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Per row, a where t <= 1/2, else b: the closer end point (Zavileiskii: "Label of the closer image
    is used to condition the sampling of interpolation"; the exact midpoint keeps the first)."""
    t = t.reshape(-1, *([1] * (a.dim() - 1))) if t.dim() else t
    return torch.where(t > 0.5, b, a)

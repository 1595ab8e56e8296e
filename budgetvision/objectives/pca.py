"""Per-class PCA as a generator (seed 004 section 5): sample in component space, reconstruct.

Training streams the exact per-class first and second moments of the pixels over the batches it
is given (float64), so any batch size works and one epoch of steps sees every image once. The
components, means and component standard deviations are what the generator keeps to sample,
so they are its parameters and count against the budget (they are fitted, not optimised)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .base import GenerativeObjective, default_labels, lerp, seeded_normal, slerp


class PCAGenerator(nn.Module):
    def __init__(self, num_classes: int, shape: tuple[int, int, int], components: int):
        super().__init__()
        dim = shape[0] * shape[1] * shape[2]
        self.shape, self.dim = shape, dim
        self.components = min(components, dim)
        # What sampling uses; trainable only in the sense of being the fitted model (never in an optimiser).
        self.mean = nn.Parameter(torch.zeros(num_classes, dim))
        self.basis = nn.Parameter(torch.zeros(num_classes, self.components, dim))
        self.scale = nn.Parameter(torch.zeros(num_classes, self.components))
        # Sufficient statistics (float64 for exact covariances over 60,000 images).
        self.register_buffer("count", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("sum", torch.zeros(num_classes, dim, dtype=torch.float64))
        self.register_buffer("outer", torch.zeros(num_classes, dim, dim, dtype=torch.float64))
        self.register_buffer("fitted_count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def accumulate(self, x: Tensor, y: Tensor) -> None:
        flat = x.flatten(1).double()
        self.count.index_add_(0, y, torch.ones_like(y, dtype=torch.float64))
        self.sum.index_add_(0, y, flat)
        for c in torch.unique(y).tolist():  # one (D, D) product per class, never a (B, D, D) tensor
            xc = flat[y == c]
            self.outer[c] += xc.T @ xc

    @torch.no_grad()
    def fit(self) -> None:
        """Means and top components of each class from the statistics so far (cheap to redo)."""
        if float(self.fitted_count) == float(self.count.sum()):
            return
        n = self.count.clamp_min(1)[:, None]
        mean = self.sum / n
        cov = self.outer / n[:, :, None] - mean[:, :, None] * mean[:, None, :]
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        top = evecs.flip(-1)[..., : self.components].transpose(1, 2)  # (classes, k, dim)
        self.mean.copy_(mean.float())
        self.basis.copy_(top.float())
        self.scale.copy_(evals.flip(-1)[:, : self.components].clamp_min(0).sqrt().float())
        self.fitted_count.copy_(self.count.sum())

    def generate(self, z: Tensor, labels: Tensor) -> Tensor:
        """z (B, k) standard normal in component space -> images (B, C, H, W) in [-1, 1]."""
        self.fit()
        coeff = z * self.scale[labels]
        x = self.mean[labels] + torch.einsum("bk,bkd->bd", coeff, self.basis[labels])
        return x.clamp(-1, 1).reshape(len(z), *self.shape)

    def reconstruct(self, x: Tensor, labels: Tensor) -> Tensor:
        """Project onto each image's class components and back (exact with all components)."""
        self.fit()
        centred = x.flatten(1) - self.mean[labels]
        coeff = torch.einsum("bd,bkd->bk", centred, self.basis[labels])
        return (self.mean[labels] + torch.einsum("bk,bkd->bd", coeff, self.basis[labels])).reshape(x.shape)


class PCA(GenerativeObjective):
    conditional = True

    def __init__(self, num_classes: int, shape: tuple[int, int, int], components: int):
        super().__init__()
        self.num_classes = num_classes
        self.pca = PCAGenerator(num_classes, shape, components)

    def trained_networks(self) -> dict[str, nn.Module]:
        return {"pca": self.pca}

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {}  # fitted in closed form, nothing to optimise

    def ema_target(self) -> nn.Module:
        return self.pca

    def train_step(self, x, y, opts, *, grad_clip=0.0):
        self.pca.accumulate(x, y)
        # No loss is optimised; logged instead is the batch's pixel variance around its class means
        # so far (what the components then explain). The eigendecomposition waits for sampling.
        with torch.no_grad():
            means = self.pca.sum[y] / self.pca.count[y, None]
            spread = (x.flatten(1).double() - means).pow(2).mean()
        return {"within_class_var": spread.float()}

    def _labels(self, seeds: Sequence[int], labels: Tensor | None, device) -> Tensor:
        if labels is None:
            return default_labels(seeds, self.num_classes).to(device)
        return labels.to(device)

    @torch.no_grad()
    def sample(self, seeds, labels=None, *, network=None):
        pca = network or self.pca
        device = pca.mean.device
        z = seeded_normal(seeds, (pca.components,), device)
        return pca.generate(z, self._labels(seeds, labels, device))

    @torch.no_grad()
    def interpolate(self, seed_pairs, steps, labels=None, *, mode="slerp", network=None):
        """Between two seeds' component-space draws, within the first seed's class (the class of a
        PCA sample is its basis; there is no embedding to blend)."""
        pca = network or self.pca
        device = pca.mean.device
        a = seeded_normal([p[0] for p in seed_pairs], (pca.components,), device)
        b = seeded_normal([p[1] for p in seed_pairs], (pca.components,), device)
        lab = self._labels([p[0] for p in seed_pairs], None if labels is None else labels[0], device)
        t = torch.linspace(0, 1, steps, device=device)
        mix = slerp if mode == "slerp" else lerp
        frames = [pca.generate(mix(a, b, t[i].expand(len(a))), lab) for i in range(steps)]
        return torch.stack(frames, 1)


MAX_STATISTICS_BYTES = 2 * 1024 ** 3  # per-class pixel covariances must fit comfortably in memory


def build_pca(cfg, spec) -> PCA:
    dim = spec.channels * spec.image_size ** 2
    need = spec.num_classes * dim * dim * 8
    if need > MAX_STATISTICS_BYTES:
        raise ConfigError(f"per-class PCA on '{spec.name}' needs {need / 1024 ** 3:.1f} GiB of covariance "
                          f"statistics ({spec.num_classes} classes x {dim}^2 pixels); use a smaller data set")
    return PCA(spec.num_classes, (spec.channels, spec.image_size, spec.image_size), cfg.objective.components)

"""Per-class PCA as a generator network (Rzayev section 5): sample in component space, reconstruct.

Its "training" streams the exact per-class first and second moments of the pixels (float64); the
components, means and component standard deviations it then keeps to sample are its parameters and
count against the budget (fitted in closed form, never in an optimiser)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from budgetvision.models.registry import register, register_training_state


class PCAGenerator(nn.Module):
    def __init__(self, num_classes: int, shape: tuple[int, int, int], components: int):
        super().__init__()
        self.num_classes = num_classes
        dim = shape[0] * shape[1] * shape[2]
        self.shape, self.dim = shape, dim
        self.components = min(components, dim)
        # What sampling uses; trainable only in the sense of being the fitted model (never in an optimiser).
        self.mean = nn.Parameter(torch.zeros(num_classes, dim))
        self.basis = nn.Parameter(torch.zeros(num_classes, self.components, dim))
        self.scale = nn.Parameter(torch.zeros(num_classes, self.components))
        # Sufficient statistics (float64 for exact covariances over 60,000 images): what the components
        # are fitted from, read by training alone, so not counted (sampling reads mean, basis, scale).
        register_training_state(self, "count", torch.zeros(num_classes, dtype=torch.float64))
        register_training_state(self, "sum", torch.zeros(num_classes, dim, dtype=torch.float64))
        register_training_state(self, "outer", torch.zeros(num_classes, dim, dim, dtype=torch.float64))
        register_training_state(self, "fitted_count", torch.zeros((), dtype=torch.float64))

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

    def reconstruct(self, x: Tensor, labels: Tensor, k: int | None = None) -> Tensor:
        """Project onto each image's class components (the leading k; all by default) and back
        (exact with all the pixels' components)."""
        self.fit()
        basis = self.basis[labels][:, :k]
        centred = x.flatten(1) - self.mean[labels]
        coeff = torch.einsum("bd,bkd->bk", centred, basis)
        return (self.mean[labels] + torch.einsum("bk,bkd->bd", coeff, basis)).reshape(x.shape)


@register("pca")
def pca(*, in_channels: int, num_classes: int, image_size: int, components: int = 64) -> PCAGenerator:
    """Per-class PCA of C x H x W images keeping `components` per class (all pixels at most)."""
    return PCAGenerator(num_classes, (in_channels, image_size, image_size), components)

"""Per-class PCA as a generator (Rzayev section 5): sample in component space, reconstruct.

Training streams the exact per-class first and second moments of the pixels over the batches it
is given (float64), so any batch size works and one epoch of steps sees every image once. The
components, means and component standard deviations are what the generator keeps to sample,
so they are its parameters and count against the budget (they are fitted, not optimised)."""
from __future__ import annotations

import torch
from torch import nn

from ..config import PCAConfig
from ..errors import ConfigError
from ..models.registry import build_configured
from ..models.pca import PCAGenerator
from .base import GenerativeObjective, nearest_end, seeded_normal


class PCA(GenerativeObjective):
    """Per-class statistics: every sample is drawn within a class (conditional)."""

    def __init__(self, generator: PCAGenerator, section: PCAConfig):
        super().__init__(section, num_classes=generator.num_classes, conditional=True)
        self.pca = generator

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

    @torch.no_grad()
    def sample(self, seeds, labels=None, *, network=None):
        pca = network or self.pca
        device = pca.mean.device
        z = seeded_normal(seeds, (pca.components,), device)
        return pca.generate(z, self.labels_for(seeds, labels, device))

    @torch.no_grad()
    def interpolate(self, seed_pairs, steps, labels=None, *, mode=None, label_mode=None, network=None):
        """Between two seeds' component-space draws, within the first seed's class (label_mode blend:
        the class of a PCA sample is its basis, there is no embedding to blend), or in the closer
        end's class (nearest)."""
        mix, label_mode = self._paths(mode, label_mode)
        pca = network or self.pca
        device = pca.mean.device
        a = seeded_normal([p[0] for p in seed_pairs], (pca.components,), device)
        b = seeded_normal([p[1] for p in seed_pairs], (pca.components,), device)
        lab_a = self.labels_for([p[0] for p in seed_pairs], None if labels is None else labels[0], device)
        lab_b = self.labels_for([p[1] for p in seed_pairs], None if labels is None else labels[1], device)
        t = torch.linspace(0, 1, steps, device=device)
        frames = []
        for i in range(steps):
            ti = t[i].expand(len(a))
            lab = lab_a if label_mode == "blend" else nearest_end(lab_a, lab_b, ti)
            frames.append(pca.generate(mix(a, b, ti), lab))
        return torch.stack(frames, 1)


MAX_STATISTICS_BYTES = 2 * 1024 ** 3  # per-class pixel covariances must fit comfortably in memory


def build_pca(cfg, spec) -> PCA:
    dim = spec.channels * spec.image_size ** 2
    need = spec.num_classes * dim * dim * 8
    if need > MAX_STATISTICS_BYTES:
        raise ConfigError(f"per-class PCA on '{spec.name}' needs {need / 1024 ** 3:.1f} GiB of covariance "
                          f"statistics ({spec.num_classes} classes x {dim}^2 pixels); use a smaller data set")
    generator = build_configured(cfg.model, in_channels=spec.channels, num_classes=spec.num_classes,
                                 image_size=spec.image_size, components=cfg.objective.components)
    if not isinstance(generator, PCAGenerator):
        raise ConfigError(f"objective pca needs model.name=pca, got {cfg.model.name!r}")
    return PCA(generator, cfg.objective)

"""Generative adversarial training: losses as pure functions, the adaptive weighting of
Zadorozhnyy et al. (2021), and the GAN objective that owns a step, seeded sampling and
interpolation.

Discriminators return raw scores; the BCE losses take them as logits (the papers' sigmoid
output, folded into a numerically stable log-sigmoid), the hinge losses as scores.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import GANConfig
from ..data.augment import cutout, random_crop
from ..distributed import all_mean
from ..errors import ConfigError
from ..models.gan import DISCRIMINATORS, GENERATORS, Discriminator, Generator, with_reference
from ..models.layers import eval_mode
from ..models.registry import MODELS, build_configured
from .base import GenerativeObjective, nearest_end, optimizer_step, seeded_normal

# --------------------------------------------------------------------------- losses


def bce_d_parts(real: Tensor, fake: Tensor, real_label: float = 1.0) -> tuple[Tensor, Tensor]:
    """L_r = BCE(D(x), real_label), L_f = BCE(D(G(z)), 0), each a batch mean; D's loss is L_r + L_f,
    -E[log D(x)] - E[log(1 - D(G(z)))] (Hughes, eq. 3) with D = sigmoid(score).
    real_label < 1 is one-sided label smoothing (Salimans et al. 2016)."""
    real, fake = real.float(), fake.float()
    l_r = F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_label))
    l_f = F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    return l_r, l_f


def bce_g_loss(fake: Tensor) -> Tensor:
    """-E[log D(G(z))] (Hughes, eq. 4): the non-saturating generator loss."""
    return F.softplus(-fake.float()).mean()


def d_accuracy(real: Tensor, fake: Tensor) -> Tensor:
    """D's training accuracy (Rzayev's Figures 2 and 17): the share of reals it scores as real and
    of fakes as fake, averaged. Both losses put the boundary at a raw score of 0 (sigmoid 1/2 for BCE)."""
    return 0.5 * ((real.float() > 0).float().mean() + (fake.float() < 0).float().mean())


def hinge_d_parts(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """L_r = E[max(0, 1 - D(x))], L_f = E[max(0, 1 + D(G(z)))] (Jalil); D's loss is L_r + L_f."""
    return F.relu(1 - real.float()).mean(), F.relu(1 + fake.float()).mean()


def r1_penalty(scores: Tensor, inputs: Tensor, gamma: float) -> Tensor:
    """R1 (Mescheder et al. 2018, eq. 9): (gamma / 2) E_x ||grad_x D(x)||^2 over the real images D
    read, `inputs` (requires_grad) and its `scores` of them. Built with create_graph, so D's update
    descends the penalty too: D is pushed to be flat on the data, the zero-centred gradient
    penalty that keeps it from ringing around the real images."""
    (grad,) = torch.autograd.grad(scores.float().sum(), inputs, create_graph=True)
    return 0.5 * gamma * grad.float().pow(2).flatten(1).sum(1).mean()


def hinge_g_loss(fake: Tensor) -> Tensor:
    """-E[D(G(z))] (Jalil, eq. 5)."""
    return -fake.float().mean()


# --------------------------------------------------------------------------- DiffAugment

TRANSLATION_RATIO = 0.125    # DiffAugment: shifts up to 1/8 of the image side, zero-filled
CUTOUT_RATIO = 0.5           # DiffAugment: one square of half the image side, zeroed


def _color(x: Tensor) -> Tensor:
    """DiffAugment's color op in [-1, 1] image space: brightness + U(-0.5, 0.5), saturation x U(0, 2),
    contrast x U(0.5, 1.5), per image."""
    b = len(x)
    u = torch.rand(3, b, 1, 1, 1, device=x.device, dtype=x.dtype)
    x = x + (u[0] - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (2 * u[1]) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (u[2] + 0.5) + mean


def _translation(x: Tensor) -> Tensor:
    return random_crop(x, max(1, round(x.shape[-1] * TRANSLATION_RATIO)), None)


def _cutout(x: Tensor) -> Tensor:
    return cutout(x, max(1, round(x.shape[-1] * CUTOUT_RATIO)), None)


# DiffAugment's ops by the names objective.diffaugment takes (config.DIFFAUGMENT_OPS, which checks them)
DIFFAUGMENT = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: Tensor, policy: Sequence[str]) -> Tensor:
    """Differentiable Augmentation (Zhao et al. 2020): the same random, differentiable transforms on
    every image the discriminator sees, real and generated, in D's and G's updates alike, so D
    cannot overfit the few real images while G still learns the un-augmented distribution.
    Draws from the global RNG (saved in checkpoints, so a resumed run redraws the same)."""
    for op in policy:
        x = DIFFAUGMENT[op](x)
    return x


def _flat(grads: Tensor | Sequence[Tensor]) -> Tensor:
    if isinstance(grads, Tensor):
        return grads.reshape(-1).float()
    return torch.cat([g.reshape(-1).float() for g in grads])


def aw_weights(grad_real: Tensor | Sequence[Tensor], grad_fake: Tensor | Sequence[Tensor],
               real_score: Tensor | float, fake_score: Tensor | float, *,
               alpha1: float = 0.5,      # s_r below this: D is failing on reals
               alpha2: float = 0.75,     # s_r above this: D is secure on reals, attend to fakes
               delta: float = 0.05,      # margin on s_r against s_f
               epsilon: float = 0.05,    # added to both weights so neither part is ever dropped
               normalized: bool = True,  # Algorithm 1 (unit-norm directions); False: Algorithm 2
               norm_eps: float = 1e-4,   # added to squared norms against division by zero
               ) -> tuple[Tensor, Tensor]:
    """Weights (w_r, w_f) of the aw-loss w_r L_r + w_f L_f (Zadorozhnyy, Cheng & Ye, CVPR 2021,
    Algorithm 1; defaults those of their released aw_loss.py).

    grad_real, grad_fake: gradients of L_r and L_f with respect to the discriminator's
    parameters (one tensor, or one per parameter). real_score, fake_score: s_r, s_f, the mean
    sigmoid of D on the real and the fake batch.

    Where D is losing on reals (s_r < alpha1 or s_r < s_f - delta) the step follows the real
    gradient, and when the fake gradient conflicts with it (obtuse angle) keeps only so much of
    it as leaves L_r's descent unharmed: w_f = -<g_r, g_f> / (|g_f|^2 |g_r|), which makes the
    combined direction orthogonal to g_f. Symmetrically for fakes where D is secure on reals
    (s_r > alpha2 and s_r > s_f - delta). Otherwise both unit directions, equally.
    Computed on the device without a sync (torch.where, not Python branches)."""
    g_r, g_f = _flat(grad_real), _flat(grad_fake)
    s_r = torch.as_tensor(real_score, dtype=torch.float32, device=g_r.device)
    s_f = torch.as_tensor(fake_score, dtype=torch.float32, device=g_r.device)
    rr = g_r.dot(g_r) + norm_eps
    ff = g_f.dot(g_f) + norm_eps
    rf = g_r.dot(g_f)
    r_norm, f_norm = rr.sqrt(), ff.sqrt()
    if normalized:
        unit_r, unit_f = 1 / r_norm, 1 / f_norm
        keep_f, keep_r = -rf / (ff * r_norm), -rf / (rr * f_norm)
    else:
        unit_r = unit_f = torch.ones_like(rr)
        keep_f, keep_r = -rf / ff, -rf / rr
    zero = torch.zeros_like(rr)
    obtuse = rf <= 0
    real_weak = (s_r < alpha1) | (s_r < s_f - delta)
    real_strong = ~real_weak & (s_r > alpha2) & (s_r > s_f - delta)
    w_r = torch.where(real_strong, torch.where(obtuse, keep_r, zero), unit_r)
    w_f = torch.where(real_weak, torch.where(obtuse, keep_f, zero), unit_f)
    return w_r + epsilon, w_f + epsilon


def aw_optimizer_step(l_r: Tensor, l_f: Tensor, real_score: Tensor, fake_score: Tensor,
                      opt: torch.optim.Optimizer, params: Sequence[nn.Parameter], *,
                      grad_clip: float = 0.0, **aw_options) -> tuple[Tensor, Tensor, Tensor]:
    """One discriminator step on the aw-loss w_r L_r + w_f L_f, weights from `aw_weights`.
    Returns (aw-loss, w_r, w_f), detached.

    g_r and g_f are needed for the weights anyway, and the aw-loss's gradient is exactly
    w_r g_r + w_f g_f: a surrogate whose gradient is that and whose value is the aw-loss saves a
    third backward pass and still goes through optimizer_step's finiteness check and clipping
    (a non-finite gradient makes the surrogate's value NaN, refused like a NaN loss)."""
    params = list(params)
    g_r = torch.autograd.grad(l_r, params, allow_unused=True)
    g_f = torch.autograd.grad(l_f, params, allow_unused=True)
    g_r = [torch.zeros_like(p) if g is None else g for g, p in zip(g_r, params)]
    g_f = [torch.zeros_like(p) if g is None else g for g, p in zip(g_f, params)]
    # Under torchrun the weights come from the global batch's gradients and scores, as on one process.
    *grads, real_score, fake_score = all_mean([*g_r, *g_f, real_score, fake_score])
    g_r, g_f = grads[:len(params)], grads[len(params):]
    w_r, w_f = aw_weights(g_r, g_f, real_score, fake_score, **aw_options)
    aw_loss = w_r * l_r.detach() + w_f * l_f.detach()
    linear = sum((p * (w_r * a + w_f * b)).sum() for p, a, b in zip(params, g_r, g_f))
    optimizer_step(aw_loss + linear - linear.detach(), opt, params, grad_clip=grad_clip, name="d_loss")
    return aw_loss, w_r, w_f


# --------------------------------------------------------------------------- objective


class VBNReference(nn.Module):
    """Rzayev's VBN reference, "we randomly choose half of the batch size in every epoch and
    normalize the other half corresponding to the previously chosen half": at the first step of
    each epoch, the first half of that step's (shuffled) real batch for D and as many fresh latents
    and labels for G; every step of the epoch then normalises by them. Kept in the checkpoint
    (extra state), so a resumed run normalises by the same reference."""

    def __init__(self, epoch_steps: int):
        super().__init__()
        self.epoch_steps = epoch_steps   # optimisation steps per epoch; 0: drawn once, never redrawn
        self.step = 0
        self.real: tuple[Tensor, Tensor | None] | None = None   # (images, labels) for D
        self.latent: tuple[Tensor, Tensor | None] | None = None  # (z, labels) for G

    def advance(self, x: Tensor, y: Tensor | None, gan: GAN) -> None:
        """Called once per step with the step's real batch; redraws at an epoch's first step."""
        if self.real is None or (self.epoch_steps and self.step % self.epoch_steps == 0):
            n = max(2, len(x) // 2)
            self.real = (x[:n].detach().clone(), None if y is None else y[:n].clone())
            self.latent = (torch.randn(n, gan.latent_dim, device=x.device), gan._fake_labels(n, x.device))
        self.step += 1

    def get_extra_state(self):
        return {"step": self.step, "real": self.real, "latent": self.latent}

    def set_extra_state(self, state) -> None:
        self.step, self.real, self.latent = int(state["step"]), state["real"], state["latent"]


class GAN(GenerativeObjective):
    """Generator G and discriminator D, trained in alternation: `d_steps` D updates, then one G
    update (together one step of the budget), as its section (GANConfig: the loss, adaptive
    weighting, label smoothing, R1, DiffAugment, VBN) says. `epoch_steps`, the optimisation steps
    of an epoch, is when a VBN epoch reference is redrawn (objective.vbn=epoch)."""

    def __init__(self, generator: Generator, discriminator: Discriminator, section: GANConfig, *,
                 epoch_steps: int = 0):
        if generator.conditional != discriminator.conditional:
            raise ConfigError("generator and discriminator must both be conditional or both not")
        super().__init__(section, num_classes=generator.num_classes, conditional=generator.conditional)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = generator.latent_dim
        # Only an epoch reference is state of its own; "batch" is HalfBatchNorm's own first half.
        self.vbn_reference = VBNReference(epoch_steps) if section.vbn == "epoch" else None

    def trained_networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"main": list(self.generator.parameters()),
                "discriminator": list(self.discriminator.parameters())}

    def ema_target(self) -> nn.Module:
        return self.generator

    def _d_parts(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        if self.cfg.gan_loss == "bce":
            return bce_d_parts(real, fake, self.cfg.real_label)
        return hinge_d_parts(real, fake)

    def _g_loss(self, fake: Tensor) -> Tensor:
        return bce_g_loss(fake) if self.cfg.gan_loss == "bce" else hinge_g_loss(fake)

    def _augment(self, x: Tensor) -> Tensor:
        """What D reads of x: x through DiffAugment when the recipe uses it."""
        return diff_augment(x, self.cfg.diffaugment_ops)

    def _d(self, x: Tensor, y: Tensor | None) -> Tensor:
        """D's score of x, through DiffAugment when the recipe uses it."""
        return self._score(self._augment(x), y)

    def _score(self, x: Tensor, y: Tensor | None) -> Tensor:
        """D's score of x as given (with the VBN reference of real images in front, when the recipe
        keeps one)."""
        if self.vbn_reference is None:
            return self.discriminator(x, y)
        return with_reference(self.discriminator, *self.vbn_reference.real, x, y)

    def _g(self, z: Tensor, y: Tensor | None) -> Tensor:
        """G's images of z in training (with the VBN reference latents in front, when kept)."""
        if self.vbn_reference is None:
            return self.generator(z, y)
        return with_reference(self.generator, *self.vbn_reference.latent, z, y)

    def _fake_labels(self, n: int, device) -> Tensor | None:
        # Uniform over classes (Rzayev: "l uniformly selected for generator training").
        return torch.randint(0, self.num_classes, (n,), device=device) if self.conditional else None

    def _d_update(self, x: Tensor, y: Tensor | None, opt, grad_clip: float) -> dict[str, Tensor]:
        D = self.discriminator
        y_fake = self._fake_labels(len(x), x.device)
        with self.autocast(x):
            with torch.no_grad():
                fake = self._g(torch.randn(len(x), self.latent_dim, device=x.device), y_fake)
            # R1 differentiates D's score by the very images it read (after DiffAugment, as
            # StyleGAN2-ADA), so those are a leaf that keeps its gradient.
            real = self._augment(x).detach().requires_grad_(True) if self.cfg.r1_gamma else self._augment(x)
            d_real, d_fake = self._score(real, y), self._d(fake, y_fake)
            l_r, l_f = self._d_parts(d_real, d_fake)
        out = {"d_real": d_real.detach().float().mean(), "d_fake": d_fake.detach().float().mean(),
               "d_accuracy": d_accuracy(d_real.detach(), d_fake.detach())}
        params = [p for p in D.parameters() if p.requires_grad]
        if not self.cfg.adaptive_weighting:   # (GANConfig refuses R1 with it: aw weighs L_r and L_f alone)
            d_loss = l_r + l_f
            penalty = r1_penalty(d_real, real, self.cfg.r1_gamma) if self.cfg.r1_gamma else 0.0
            optimizer_step(d_loss + penalty, opt, params, grad_clip=grad_clip, name="d_loss")
            if self.cfg.r1_gamma:
                out["r1"] = penalty.detach()
            return {"d_loss": d_loss.detach(), **out}
        aw_loss, w_r, w_f = aw_optimizer_step(l_r, l_f, torch.sigmoid(d_real.float()).mean(),
                                              torch.sigmoid(d_fake.float()).mean(), opt, params,
                                              grad_clip=grad_clip)
        return {"d_loss": (l_r + l_f).detach(), "d_loss_aw": aw_loss, "w_real": w_r, "w_fake": w_f, **out}

    def train_step(self, x, y, opts, *, grad_clip=0.0):
        """x: a real batch in [-1, 1]. Each D update draws fresh fakes against the same real batch
        (the loop hands one batch per step). Returns device scalars of the last D update and the
        G update: "loss" (G), "d_loss" (L_r + L_f, unweighted, so runs with and without adaptive
        weighting or R1 compare; with objective.r1_gamma D also descends "r1", the penalty),
        "d_real" / "d_fake" (mean raw D score on reals / fakes: logits for BCE), "d_accuracy" (D's
        accuracy on the batch, reals and fakes weighted equally), and
        with adaptive weighting "d_loss_aw" (the loss D stepped on), "w_real", "w_fake"."""
        G, D = self.generator, self.discriminator
        y = y if self.conditional else None
        if self.vbn_reference is not None:
            self.vbn_reference.advance(x, y, self)
        for _ in range(self.cfg.d_steps):
            out = self._d_update(x, y, opts["discriminator"], grad_clip)
        # D's weights need no gradient in G's update: only the path through it to G.
        flags = [p.requires_grad for p in D.parameters()]
        D.requires_grad_(False)
        try:
            y_fake = self._fake_labels(len(x), x.device)
            with self.autocast(x):
                fake = self._g(torch.randn(len(x), self.latent_dim, device=x.device), y_fake)
                g_loss = self._g_loss(self._d(fake, y_fake))
            optimizer_step(g_loss, opts["main"], G.parameters(), grad_clip=grad_clip, name="g_loss")
        finally:
            for p, flag in zip(D.parameters(), flags):
                p.requires_grad_(flag)
        return {"loss": g_loss.detach(), **out}

    # ----------------------------------------------------------------------- sampling

    @torch.no_grad()
    def sample(self, seeds: Sequence[int], labels: Tensor | None = None, *,
               network: nn.Module | None = None) -> Tensor:
        """Images (len(seeds), C, H, W) in [-1, 1] from the generator in eval mode (BN running
        statistics, so image k depends on seeds[k] alone). Conditional: labels default to
        seed % num_classes."""
        G = network if network is not None else self.generator
        device = next(G.parameters()).device
        z = seeded_normal(seeds, (self.latent_dim,), device)
        with eval_mode(G):
            return G(z, self.labels_for(seeds, labels, device)).float()

    @torch.no_grad()
    def interpolate(self, seed_pairs: Sequence[tuple[int, int]], steps: int,
                    labels: tuple[Tensor, Tensor] | None = None, *, mode: str | None = None,
                    label_mode: str | None = None, network: nn.Module | None = None) -> Tensor:
        """(pairs, steps, C, H, W): slerp or lerp from seed a's latent to seed b's, and for a
        conditional generator from label a's class vector to label b's (default seed % classes)
        along the same path, or (label_mode nearest) the closer end's. None: the recipe's own.
        The endpoints are exactly sample() of a and of b."""
        blend, label_mode = self._paths(mode, label_mode)
        if steps < 2:
            raise ValueError(f"interpolation needs steps >= 2, got {steps}")
        G = network if network is not None else self.generator
        device = next(G.parameters()).device
        seeds_a, seeds_b = [int(a) for a, _ in seed_pairs], [int(b) for _, b in seed_pairs]
        t = torch.linspace(0, 1, steps, device=device).repeat(len(seed_pairs))

        def path(a: Tensor, b: Tensor, blend=blend) -> Tensor:
            a, b = a.repeat_interleave(steps, 0), b.repeat_interleave(steps, 0)
            mid = blend(a, b, t)
            # slerp's sin ratios are 1 and 0 only to rounding; pin the ends to the exact inputs.
            ends = t.reshape(-1, *([1] * (a.dim() - 1)))
            return torch.where(ends == 0, a, torch.where(ends == 1, b, mid))

        z = path(seeded_normal(seeds_a, (self.latent_dim,), device),
                 seeded_normal(seeds_b, (self.latent_dim,), device))
        emb = None
        if self.conditional:
            la, lb = labels if labels is not None else (None, None)
            emb = path(G.embed(self.labels_for(seeds_a, la, device)).float(),
                       G.embed(self.labels_for(seeds_b, lb, device)).float(),
                       blend if label_mode == "blend" else nearest_end)
        with eval_mode(G):
            images = G(z, emb=emb) if emb is not None else G(z)
        return images.float().reshape(len(seed_pairs), steps, *images.shape[1:])


def build_gan(cfg, spec) -> GAN:
    """The GAN of a RunConfig (model.name = generator, model.discriminator) on a DataSpec."""
    if not cfg.model.discriminator:
        raise ConfigError("a GAN needs model.discriminator (the registry name of its discriminator)")
    for key, name in (("model.name", cfg.model.name), ("model.discriminator", cfg.model.discriminator)):
        builder = MODELS.get(name)
        # A classifier's builder takes no latent_dim: say so in one line, not as a TypeError.
        if builder is not None and "latent_dim" not in inspect.signature(builder).parameters:
            raise ConfigError(f"{key}={name!r} is not a GAN network; GAN networks: "
                              f"{', '.join(GENERATORS + DISCRIMINATORS)}")
    shape = dict(in_channels=spec.channels, num_classes=spec.num_classes, image_size=spec.image_size,
                 latent_dim=cfg.model.latent_dim, conditional=cfg.model.conditional)
    if cfg.objective.vbn != "off":
        for key, name in (("model.name", cfg.model.name), ("model.discriminator", cfg.model.discriminator)):
            if "virtual_bn" not in inspect.signature(MODELS[name]).parameters:
                raise ConfigError(f"objective.vbn={cfg.objective.vbn} needs networks with virtual batch norm "
                                  f"(Rzayev's mnist_dcgan_generator / _discriminator); {key}={name!r} has none")
        shape["virtual_bn"] = True
    # Rzayev's F widens both networks ("the capabilities ... of both networks"); its D deepens
    # the discriminator alone, so a generator is never asked for a depth.
    G = build_configured(cfg.model, fields=("capacity",), **shape)
    D = build_configured(cfg.model, "discriminator", **shape)
    if not isinstance(G, Generator) or not isinstance(D, Discriminator):
        raise ConfigError(f"model.name={cfg.model.name!r} with model.discriminator="
                          f"{cfg.model.discriminator!r} is not a generator/discriminator pair")
    # A VBN epoch is the loader's: its train split in whole batches (0 where only shapes are known).
    epoch_steps = getattr(spec, "train_size", 0) // cfg.train.batch_size
    return GAN(G, D, cfg.objective, epoch_steps=epoch_steps)

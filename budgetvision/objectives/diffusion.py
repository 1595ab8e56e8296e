"""Diffusion: noise schedules, targets, guidance and samplers as pure functions, and the two
seed objectives built on them.

- `DDPM` (Zavileiskii, Ho et al. 2020): discrete T steps, linear or sigmoid betas (Jabri et al.'s,
  or the Annotated Diffusion Model's), epsilon prediction.
- `VDiffusion` (the anonymous paper, after Crowson's v-diffusion): continuous-time variance-preserving
  process parameterised by the log-SNR, Sobol-sampled t, v-objective (Salimans & Ho 2022),
  classifier-free guidance with a null label (Ho & Salimans 2022).

Both reduce sampling to one pair of sequences, (alpha_i, sigma_i) from the noisiest level to the
cleanest, and a `denoise(x, i) -> x0` callback, so one sampler core serves discrete and
continuous time: DDIM (eta = 0, deterministic), DDPM ancestral sampling (eta = 1, which is
exactly Ho's step with the posterior variance beta-tilde) and DPM-Solver++(2M) (Lu et al. 2022,
the second-order multistep ODE solver: DDIM's accuracy in a fraction of the network calls). Every random draw of image k comes from
its own generator seeded by seed k, so an image never depends on the batch it was drawn in.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import DDPMConfig, RunConfig, VDiffusionConfig
from ..errors import ConfigError
from ..models.layers import eval_mode
from ..models.registry import build_configured
from .base import GenerativeObjective, nearest_end, optimizer_step

# The log-SNR range of the continuous schedules: at +-20, alpha or sigma is 4.5e-5, the data or
# the noise is invisible in float32, and the truncated cosine stays finite at both ends
# (the bounds of Hoogeboom et al.'s "simple diffusion").
LOG_SNR_MIN = -20.0
LOG_SNR_MAX = 20.0
SAMPLE_CHUNK = 256  # images per network call in interpolate() and, on a GPU, sample(); memory only, never results
CPU_SAMPLE_CHUNK = 32  # on a CPU: activations that stay in cache (compact U-Net, 2 threads, channels_last,
                       # guided: 2.05 ms an image at 64 a call against 3.92 at 500)

Denoise = Callable[[Tensor, int], Tensor]


# ------------------------------------------------------------------ discrete (DDPM) schedules


def linear_betas(timesteps: int) -> Tensor:
    """Ho et al.'s linear betas, 1e-4 .. 0.02 at T = 1000, scaled by 1000/T for other T (Nichol &
    Dhariwal) so the total noise stays the same. float64, (T,)."""
    scale = 1000.0 / timesteps
    return torch.linspace(scale * 1e-4, min(scale * 0.02, 0.999), timesteps, dtype=torch.float64)


def sigmoid_betas(timesteps: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> Tensor:
    """Jabri, Fleet & Chen's (2022) sigmoid schedule: alpha-bar(t) follows a rescaled sigmoid over
    [start, end] / tau. Their defaults -3, 3, 1. float64, (T,), clipped to 0.999 at the end where
    alpha-bar reaches 0."""
    t = torch.linspace(0, 1, timesteps + 1, dtype=torch.float64)
    # float64 constants: float32 ones (torch.tensor's default) put a 7e-9 error into alpha-bar,
    # 1e-5 relative on the last betas, where alpha-bar is a difference of nearly equal numbers.
    v_start = torch.tensor(start / tau, dtype=torch.float64).sigmoid()
    v_end = torch.tensor(end / tau, dtype=torch.float64).sigmoid()
    alpha_bar = (v_end - ((t * (end - start) + start) / tau).sigmoid()) / (v_end - v_start)
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(1e-8, 0.999)


def sigmoid_tutorial_betas(timesteps: int) -> Tensor:
    """The sigmoid betas of Rogge & Rasul's "The Annotated Diffusion Model" (Hugging Face blog, 2022,
    `sigmoid_beta_schedule`), the code Zavileiskii names first: beta_i = sigmoid(linspace(-6, 6, T)_i)
    (0.02 - 1e-4) + 1e-4. Unlike Jabri's, the betas (not alpha-bar) follow the sigmoid, between the
    linear schedule's ends, so the total noise is near linear's. Exactly the blog's at T = 1000; other
    T scaled by 1000/T as `linear_betas` is. float64, (T,)."""
    scale = 1000.0 / timesteps
    start, end = scale * 1e-4, min(scale * 0.02, 0.999)
    return torch.linspace(-6, 6, timesteps, dtype=torch.float64).sigmoid() * (end - start) + start


# objective.schedule (ddpm) -> its betas; config.DDPM_SCHEDULES names (and checks) the same
BETA_SCHEDULES: dict[str, Callable[[int], Tensor]] = {
    "linear": linear_betas, "sigmoid": sigmoid_betas, "sigmoid-tutorial": sigmoid_tutorial_betas}


# --------------------------------------------------------------- continuous log-SNR schedules


def log_snr_cosine(t: Tensor, log_snr_min: float = LOG_SNR_MIN, log_snr_max: float = LOG_SNR_MAX) -> Tensor:
    """Cosine schedule in log-SNR form, -2 log tan(pi t / 2) (Nichol & Dhariwal's alpha = cos),
    with t mapped onto [log_snr_max, log_snr_min] so both ends stay finite."""
    b = math.atan(math.exp(-0.5 * log_snr_max))
    a = math.atan(math.exp(-0.5 * log_snr_min)) - b
    return -2.0 * torch.log(torch.tan(a * t + b))


def log_snr_linear(t: Tensor) -> Tensor:
    """Crowson's continuous form of the DDPM linear-beta schedule (VDM's Appendix):
    log-SNR = -log(expm1(1e-4 + 10 t^2)); from 9.2 at t = 0 to -10 at t = 1."""
    return -torch.special.expm1(1e-4 + 10.0 * t ** 2).log()


def log_snr_spliced(t: Tensor) -> Tensor:
    """Crowson's spliced schedule (v-diffusion-pytorch `get_spliced_ddpm_cosine_schedule`): the
    cosine schedule up to its crossing with the DDPM-linear one, that schedule after, so it keeps
    cosine's gentle start and linear's finite end. Clipped above at LOG_SNR_MAX (t near 0)."""
    ddpm_crossover, cosine_crossover = 0.48536712, 0.80074257
    big_t = t * (1 + cosine_crossover - ddpm_crossover)
    # Crowson works in "cosine time" u, where alpha = cos(pi u / 2); log-SNR = -2 log tan(pi u / 2).
    ddpm_log_snr = log_snr_linear(big_t + ddpm_crossover - cosine_crossover)
    cosine_log_snr = -2.0 * torch.log(torch.tan(big_t * math.pi / 2))
    return torch.where(big_t < cosine_crossover, cosine_log_snr, ddpm_log_snr).clamp(max=LOG_SNR_MAX)


# objective.schedule (vdiffusion) -> its log-SNR; config.VDIFFUSION_SCHEDULES names (and checks) the same.
# No preset uses spliced or linear: Crowson's other two stay one override away, pinned by test_diffusion.
LOG_SNR_SCHEDULES: dict[str, Callable[[Tensor], Tensor]] = {
    "cosine": log_snr_cosine, "spliced": log_snr_spliced, "linear": log_snr_linear}


def alpha_sigma(log_snr: Tensor) -> tuple[Tensor, Tensor]:
    """Variance-preserving scales: alpha^2 = sigmoid(log_snr), sigma^2 = sigmoid(-log_snr), so
    alpha^2 + sigma^2 = 1 and log(alpha^2 / sigma^2) = log_snr."""
    return log_snr.sigmoid().sqrt(), (-log_snr).sigmoid().sqrt()


# ------------------------------------------------------------------------ targets, guidance


def v_target(x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """v = alpha eps - sigma x0 (Salimans & Ho 2022, the anonymous paper's eq. 1)."""
    return alpha * eps - sigma * x0


def x0_from_v(x_t: Tensor, v: Tensor, alpha, sigma) -> Tensor:
    return alpha * x_t - sigma * v


def min_snr_weight(log_snr: Tensor, gamma: float) -> Tensor:
    """Min-SNR-gamma's weight on a v-prediction error (Hang et al. 2023): min(SNR, gamma) / (SNR + 1).
    A squared v error is the x0 error's times (SNR + 1), so this weights the x0 error by min(SNR, gamma):
    the noise-prediction loss (x0 error times SNR) where SNR < gamma, capped at gamma on the cleaner
    levels, which plain v MSE weights by SNR + 1 without bound. sigmoid(log_snr) is SNR / (SNR + 1),
    stably."""
    snr = log_snr.float().exp()
    return torch.where(snr < gamma, torch.sigmoid(log_snr.float()), gamma / (snr + 1))


def x0_from_eps(x_t: Tensor, eps: Tensor, alpha, sigma) -> Tensor:
    return (x_t - sigma * eps) / alpha


def dynamic_threshold(x0: Tensor, percentile: float) -> Tensor:
    """Imagen's dynamic thresholding (Saharia et al. 2022): per sample, s = the `percentile`
    quantile of |x0|, at least 1; clip to [-s, s] and divide by s. `percentile` 0 is the static
    clip to [-1, 1]. Either way the result lies in [-1, 1]."""
    if percentile <= 0:
        return x0.clamp(-1.0, 1.0)
    s = torch.quantile(x0.detach().abs().flatten(1).float(), percentile, dim=1).clamp_min(1.0)
    s = s.to(x0.dtype).reshape(-1, *([1] * (x0.dim() - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


def cfg_combine(cond: Tensor, uncond: Tensor, w: float) -> Tensor:
    """Classifier-free guidance (the anonymous paper's eq. 4): (1 + w) cond - w uncond; w = 0 is cond."""
    return (1.0 + w) * cond - w * uncond


def guidance_weights(alphas: Sequence[float], sigmas: Sequence[float], w: float,
                     interval: tuple[float, float]) -> list[float]:
    """The guidance weight at each sampling level: w where the level's EDM noise level sigma / alpha
    lies in the interval (lo, hi], else 0 (conditional only, one network call). Kynkaanniemi et al.
    2024 ("Applying guidance in a limited interval"): guidance at high noise costs variety, at low
    noise it does little. lo 0 / hi 0 is no limit on that side, so (0, 0) guides every level."""
    lo, hi = interval
    out = []
    for a, s in zip(alphas, sigmas):
        level = s / a if a > 0 else math.inf
        out.append(w if (lo == 0 or level > lo) and (hi == 0 or level <= hi) else 0.0)
    return out


# ------------------------------------------------------------------------------- samplers


def _generalised_step(x: Tensor, x0: Tensor, a: float, s: float, a_next: float, s_next: float,
                      eta: float, noise: Callable[[], Tensor]) -> Tensor:
    """One DDIM step (Song et al. 2021, eq. 12) from level (a, s) to (a_next, s_next).

    eps is recomputed from the (clipped) x0, so a clip moves the whole step consistently; with
    eta = 1 this is the DDPM posterior q(x_next | x, x0) with variance beta-tilde."""
    eps = (x - a * x0) / s
    noise_std = eta * math.sqrt(max(s_next ** 2 / s ** 2 * (1.0 - a ** 2 / a_next ** 2), 0.0))
    out = a_next * x0 + math.sqrt(max(s_next ** 2 - noise_std ** 2, 0.0)) * eps
    if noise_std > 0:
        out = out + noise_std * noise()
    return out


def _run(denoise: Denoise, x: Tensor, alphas: Sequence[float], sigmas: Sequence[float], eta: float,
         noise: Callable[[], Tensor], threshold: float) -> Tensor:
    levels = list(zip(alphas, sigmas)) + [(1.0, 0.0)]  # the last step lands on clean data
    for i in range(len(alphas)):
        (a, s), (a_next, s_next) = levels[i], levels[i + 1]
        x0 = dynamic_threshold(denoise(x, i).float(), threshold)
        x = _generalised_step(x, x0, a, s, a_next, s_next, eta, noise)
    return x


def ddim_sample(denoise: Denoise, x: Tensor, alphas: Sequence[float], sigmas: Sequence[float], *,
                threshold: float = 0.0) -> Tensor:
    """Deterministic DDIM (eta = 0) from x at level 0 through levels 1.. to clean data.

    `denoise(x, i)` predicts x0 from x at level i (alphas[i], sigmas[i], noisiest first); the
    output is the last x0 prediction, clipped (or dynamically thresholded), so in [-1, 1]."""
    return _run(denoise, x, alphas, sigmas, 0.0, lambda: None, threshold)


def ddpm_sample(denoise: Denoise, x: Tensor, alphas: Sequence[float], sigmas: Sequence[float],
                generators: Sequence[torch.Generator], *, threshold: float = 0.0) -> Tensor:
    """Ancestral DDPM sampling (eta = 1) over the same levels; row k's fresh noise at every step
    comes from generators[k] (CPU), so row k depends on its own generator only."""
    shape = x.shape[1:]

    def noise() -> Tensor:
        return torch.stack([torch.randn(shape, generator=g) for g in generators]).to(x.device)

    return _run(denoise, x, alphas, sigmas, 1.0, noise, threshold)


def dpmpp_2m_sample(denoise: Denoise, x: Tensor, alphas: Sequence[float], sigmas: Sequence[float], *,
                    threshold: float = 0.0) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2) over the same levels as DDIM.

    In lambda = log(alpha / sigma), with h = lambda_next - lambda, each step is DDIM's
    x_next = (sigma_next / sigma) x + alpha_next (1 - e^-h) D, where D is the current x0 prediction
    on the first step and, after it, the second-order extrapolation
    D = (1 + 1 / (2 r)) x0_i - 1 / (2 r) x0_(i-1), r = h_(i-1) / h_i. The last step, onto clean
    data (sigma = 0, h infinite), is first order ("lower order final"): it returns the x0
    prediction, as DDIM's does. One network call per level."""
    lambdas = [math.log(a / s) for a, s in zip(alphas, sigmas)]
    x0_prev, h_prev = None, None
    for i in range(len(alphas)):
        x0 = dynamic_threshold(denoise(x, i).float(), threshold).to(x.dtype)
        if i == len(alphas) - 1:
            return x0
        h = lambdas[i + 1] - lambdas[i]
        d = x0 if x0_prev is None else (1 + h / (2 * h_prev)) * x0 - h / (2 * h_prev) * x0_prev
        x = sigmas[i + 1] / sigmas[i] * x + alphas[i + 1] * -math.expm1(-h) * d
        x0_prev, h_prev = x0, h
    return x


# ----------------------------------------------------------------------------- objectives


class _Diffusion(GenerativeObjective):
    """What both diffusion objectives share: networks, guidance, seeded sampling, interpolation.

    Subclasses define the training loss and `_levels(steps)`: the sampling levels' alphas and
    sigmas and the network's noise-level input at each, plus `_x0(out, x, a, s)`."""

    def __init__(self, network: nn.Module, cfg: DDPMConfig | VDiffusionConfig, *, image_shape: tuple[int, int, int],
                 num_classes: int, conditional: bool):
        super().__init__(cfg, num_classes=num_classes, conditional=conditional)
        self.network = network
        self.image_shape = tuple(image_shape)

    # -- the interface the loop uses
    def trained_networks(self) -> dict[str, nn.Module]:
        return {"denoiser": self.network}

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"main": list(self.network.parameters())}

    def ema_target(self) -> nn.Module:
        return self.network

    def forward(self, x: Tensor, y: Tensor, **fixed) -> Tensor:
        return self.loss(x, y, **fixed)

    def loss(self, x: Tensor, y: Tensor, **fixed) -> Tensor:
        raise NotImplementedError

    def train_step(self, x, y, opts, *, grad_clip=0.0):
        with self.autocast(x):
            loss = self.loss(x, y)
        optimizer_step(loss, opts["main"], self.network.parameters(), grad_clip=grad_clip)
        return {"loss": loss.detach()}

    def _train_labels(self, y: Tensor) -> Tensor | None:
        if not self.conditional:
            return None
        if self.cfg.cond_drop > 0:
            drop = torch.rand(y.shape[0], device=y.device) < self.cfg.cond_drop
            y = torch.where(drop, torch.full_like(y, self.network.null_label), y)
        return y

    # -- sampling
    def _levels(self, steps: int) -> tuple[list[float], list[float], Tensor]:
        raise NotImplementedError

    def _x0(self, out: Tensor, x: Tensor, a: float, s: float) -> Tensor:
        raise NotImplementedError

    def _net(self, network: nn.Module | None) -> nn.Module:
        net = self.network if network is None else network
        # The loop's EMA is an AveragedModel; class_embed and null_label live on what it wraps.
        return net.module if isinstance(net, torch.optim.swa_utils.AveragedModel) else net

    def _guided(self, net: nn.Module, x: Tensor, level: Tensor, cond: Tensor | None, w: float) -> Tensor:
        """The network's output at one level under classifier-free guidance of weight w (0: the
        conditional output alone, one network call)."""
        if cond is None:
            return net(x, level)
        if w == 0:
            return net(x, level, class_emb=cond)
        null = net.class_embed(torch.full((x.shape[0],), net.null_label, device=x.device, dtype=torch.long))
        # One call on the doubled batch: per-sample layers only, so the halves stay independent.
        out = net(torch.cat([x, x]), torch.cat([level, level]), class_emb=torch.cat([cond, null]))
        cond_out, uncond_out = out.float().chunk(2)
        return cfg_combine(cond_out, uncond_out, w)

    def _denoiser(self, net: nn.Module, cond: Tensor | None, steps: int):
        alphas, sigmas, levels = self._levels(steps)
        device = next(net.parameters()).device
        levels = levels.to(device)
        weights = guidance_weights(alphas, sigmas, self.cfg.cfg_scale, self.cfg.guidance_interval)

        def denoise(x: Tensor, i: int) -> Tensor:
            out = self._guided(net, x, levels[i].expand(x.shape[0]), cond, weights[i])
            return self._x0(out.float(), x, alphas[i], sigmas[i])

        return denoise, alphas, sigmas

    @torch.no_grad()
    def sample(self, seeds: Sequence[int], labels: Tensor | None = None, *,
               network: nn.Module | None = None) -> Tensor:
        """(len(seeds), C, H, W) in [-1, 1] with objective.sampler / sample_steps / cfg_scale /
        guidance_interval / threshold; labels default to seed % num_classes for a conditional model."""
        seeds = [int(s) for s in seeds]
        labels = self.labels_for(seeds, labels)
        net = self._net(network)
        device = next(net.parameters()).device
        step = SAMPLE_CHUNK if device.type == "cuda" else CPU_SAMPLE_CHUNK
        out = []
        with eval_mode(net):
            for lo in range(0, len(seeds), step):
                chunk = seeds[lo: lo + step]
                gens = [torch.Generator(device="cpu").manual_seed(s) for s in chunk]
                # The first draw of each generator: identical to base.seeded_normal(seeds).
                x = torch.stack([torch.randn(self.image_shape, generator=g) for g in gens]).to(device)
                cond = (net.class_embed(labels[lo: lo + step].to(device))
                        if labels is not None else None)
                denoise, alphas, sigmas = self._denoiser(net, cond, self.cfg.sample_steps)
                if self.cfg.sampler == "ddim":
                    x = ddim_sample(denoise, x, alphas, sigmas, threshold=self.cfg.threshold)
                elif self.cfg.sampler == "dpmpp2m":
                    x = dpmpp_2m_sample(denoise, x, alphas, sigmas, threshold=self.cfg.threshold)
                else:
                    x = ddpm_sample(denoise, x, alphas, sigmas, gens, threshold=self.cfg.threshold)
                out.append(x)
        return torch.cat(out)

    @torch.no_grad()
    def interpolate(self, seed_pairs: Sequence[tuple[int, int]], steps: int,
                    labels: tuple[Tensor, Tensor] | None = None, *, mode: str | None = None,
                    label_mode: str | None = None, network: nn.Module | None = None) -> Tensor:
        """(pairs, steps, C, H, W): deterministic DDIM from slerped (or lerped) initial noise and,
        for a conditional model, equally interpolated class embeddings (the anonymous paper) or the closer
        end's (label_mode nearest, Zavileiskii). None: the recipe's own. DDIM because a stochastic
        sampler strays from its start noise. The endpoints equal sample() of each seed when
        objective.sampler is ddim."""
        mix, label_mode = self._paths(mode, label_mode)
        if steps < 2:
            raise ValueError("interpolate needs steps >= 2 (the two endpoints)")
        firsts, seconds = [int(a) for a, _ in seed_pairs], [int(b) for _, b in seed_pairs]
        if labels is None:
            labels_a, labels_b = self.labels_for(firsts), self.labels_for(seconds)
        else:
            labels_a, labels_b = self.labels_for(firsts, labels[0]), self.labels_for(seconds, labels[1])
        net = self._net(network)
        device = next(net.parameters()).device
        fractions = torch.linspace(0, 1, steps)
        # Rows ordered pair-major: pair p, fraction j is row p * steps + j.
        rows = [(p, j) for p in range(len(firsts)) for j in range(steps)]
        out = []
        with eval_mode(net):
            for lo in range(0, len(rows), SAMPLE_CHUNK):
                ps = torch.tensor([p for p, _ in rows[lo: lo + SAMPLE_CHUNK]])
                t = fractions[[j for _, j in rows[lo: lo + SAMPLE_CHUNK]]].to(device)
                za = torch.stack([torch.randn(self.image_shape, generator=torch.Generator().manual_seed(firsts[p]))
                                  for p in ps.tolist()]).to(device)
                zb = torch.stack([torch.randn(self.image_shape, generator=torch.Generator().manual_seed(seconds[p]))
                                  for p in ps.tolist()]).to(device)
                x = mix(za, zb, t)
                cond = None
                if labels_a is not None:
                    ea = net.class_embed(labels_a[ps].to(device))
                    eb = net.class_embed(labels_b[ps].to(device))
                    cond = (mix if label_mode == "blend" else nearest_end)(ea, eb, t)
                denoise, alphas, sigmas = self._denoiser(net, cond, self.cfg.sample_steps)
                out.append(ddim_sample(denoise, x, alphas, sigmas, threshold=self.cfg.threshold))
        return torch.cat(out).reshape(len(firsts), steps, *self.image_shape)


class DDPM(_Diffusion):
    """Zavileiskii: discrete-time DDPM (Ho et al. 2020) with epsilon prediction, uniform t in
    {0 .. T-1}; the network sees t/T. sample_steps < T samples on an evenly spaced subsequence
    (Nichol & Dhariwal's respacing: the ancestral step between two kept levels is exact)."""

    def __init__(self, network: nn.Module, cfg: DDPMConfig | VDiffusionConfig, **kw):
        super().__init__(network, cfg, **kw)
        self.timesteps = cfg.timesteps
        alpha_bar = torch.cumprod(1 - BETA_SCHEDULES[cfg.schedule](cfg.timesteps), dim=0)
        self._alpha_bar64 = alpha_bar  # float64 on the CPU, for the sampling levels
        # Derived from the config, so not saved in checkpoints (persistent=False).
        self.register_buffer("sqrt_alpha_bar", alpha_bar.sqrt().float(), persistent=False)
        self.register_buffer("sqrt_one_minus_alpha_bar", (1 - alpha_bar).sqrt().float(), persistent=False)

    def loss(self, x: Tensor, y: Tensor, *, t: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """Mean squared error of the predicted noise (Ho's L_simple). `t` (integer steps) and
        `noise` may be fixed, e.g. to measure progress on one batch."""
        if t is None:
            t = torch.randint(0, self.timesteps, (x.shape[0],), device=x.device)
        if noise is None:
            noise = torch.randn_like(x)
        shape = (-1,) + (1,) * (x.dim() - 1)
        x_t = self.sqrt_alpha_bar[t].reshape(shape) * x + self.sqrt_one_minus_alpha_bar[t].reshape(shape) * noise
        eps = self.network(x_t, t.float() / self.timesteps, self._train_labels(y))
        return F.mse_loss(eps.float(), noise.float())

    def _levels(self, steps):
        ts = torch.linspace(self.timesteps - 1, 0, steps, dtype=torch.float64).round().long()
        ab = self._alpha_bar64[ts]
        return ab.sqrt().tolist(), (1 - ab).sqrt().tolist(), ts.float() / self.timesteps

    def _x0(self, out, x, a, s):
        return x0_from_eps(x, out, a, s)


class VDiffusion(_Diffusion):
    """The anonymous paper: continuous-time VP diffusion in log-SNR, v-objective, Sobol-sampled t, null-label
    dropout for classifier-free guidance. The network sees the log-SNR."""

    def __init__(self, network: nn.Module, cfg: DDPMConfig | VDiffusionConfig, **kw):
        super().__init__(network, cfg, **kw)
        self.log_snr = LOG_SNR_SCHEDULES[cfg.schedule]
        # The Sobol engine is seeded from the global RNG at the first step (which the loop has
        # seeded); seed and points drawn go into state_dict() so a resumed run continues the
        # same sequence.
        self._sobol_seed = -1
        self._sobol_drawn = 0
        self._sobol: torch.quasirandom.SobolEngine | None = None

    def get_extra_state(self):
        return {"sobol_seed": self._sobol_seed, "sobol_drawn": self._sobol_drawn}

    def set_extra_state(self, state) -> None:
        self._sobol_seed, self._sobol_drawn = int(state["sobol_seed"]), int(state["sobol_drawn"])
        self._sobol = None

    def sobol_t(self, n: int) -> Tensor:
        """n times in [0, 1) from a scrambled 1-D Sobol sequence: low discrepancy across the batch
        lowers the variance of the loss estimate (Kingma et al. 2021)."""
        if self._sobol is None:
            if self._sobol_seed < 0:
                self._sobol_seed = int(torch.randint(0, 2 ** 31 - 1, (1,)))
            self._sobol = torch.quasirandom.SobolEngine(1, scramble=True, seed=self._sobol_seed)
            if self._sobol_drawn:
                self._sobol.fast_forward(self._sobol_drawn)
        self._sobol_drawn += n
        return self._sobol.draw(n).reshape(n)

    def loss(self, x: Tensor, y: Tensor, *, t: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """Mean squared error of v (the anonymous paper's eq. 3), each sample's weighted by
        min_snr_weight where objective.min_snr_gamma asks. `t` (in [0, 1]) and `noise` may be fixed."""
        if t is None:
            t = self.sobol_t(x.shape[0])
        t = t.to(x.device, torch.float32)
        if noise is None:
            noise = torch.randn_like(x)
        log_snr = self.log_snr(t)
        alpha, sigma = (s.reshape((-1,) + (1,) * (x.dim() - 1)) for s in alpha_sigma(log_snr))
        x_t = alpha * x + sigma * noise
        v = self.network(x_t, log_snr, self._train_labels(y))
        target = v_target(x, noise, alpha, sigma).float()
        if not self.cfg.min_snr_gamma:
            return F.mse_loss(v.float(), target)
        per_sample = (v.float() - target).square().flatten(1).mean(1)
        return (min_snr_weight(log_snr, self.cfg.min_snr_gamma) * per_sample).mean()

    def _levels(self, steps):
        # t = 1, 1 - 1/n, ..., 1/n; the last step goes on to clean data (Crowson's sampler).
        t = torch.linspace(1, 0, steps + 1, dtype=torch.float64)[:-1]
        log_snr = self.log_snr(t)
        alpha, sigma = alpha_sigma(log_snr)
        return alpha.tolist(), sigma.tolist(), log_snr.float()

    def _x0(self, out, x, a, s):
        return x0_from_v(x, out, a, s)


def build_diffusion(cfg: RunConfig, spec) -> GenerativeObjective:
    """The objective cfg.objective.name names ("ddpm" | "vdiffusion"), around a freshly built
    denoiser for the data set `spec` (a DataSpec: channels, image_size, num_classes)."""
    classes = {"ddpm": DDPM, "vdiffusion": VDiffusion}
    if cfg.objective.name not in classes:
        raise ConfigError(f"objective.name {cfg.objective.name!r} is not a diffusion objective "
                          f"({', '.join(classes)})")
    network = build_configured(cfg.model, in_channels=spec.channels, num_classes=spec.num_classes,
                               image_size=spec.image_size, conditional=cfg.model.conditional)
    return classes[cfg.objective.name](
        network, cfg.objective, image_shape=(spec.channels, spec.image_size, spec.image_size),
        num_classes=spec.num_classes, conditional=cfg.model.conditional)

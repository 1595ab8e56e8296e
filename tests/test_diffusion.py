"""Diffusion: the seed U-Nets, schedules, guidance, seeded samplers and the two objectives (CPU)."""
import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from budgetvision.config import DDPM_SCHEDULES, VDIFFUSION_SCHEDULES, GANConfig, apply_overrides
from budgetvision.data import DataSpec
from budgetvision.errors import ConfigError
from budgetvision.models import build_model, count_params
from budgetvision.models.unet import PAPER_PARAMS
from budgetvision.objectives import NonFiniteLoss, build_objective
from budgetvision.objectives.base import seeded_normal, slerp
from budgetvision.objectives.diffusion import (
    BETA_SCHEDULES,
    DDPM,
    LOG_SNR_SCHEDULES,
    VDiffusion,
    alpha_sigma,
    build_diffusion,
    cfg_combine,
    ddim_sample,
    ddpm_sample,
    dpmpp_2m_sample,
    dynamic_threshold,
    min_snr_weight,
    guidance_weights,
    linear_betas,
    sigmoid_betas,
    sigmoid_tutorial_betas,
    v_target,
    x0_from_v,
)
from budgetvision.presets import get_preset

PRESETS = {"cifar100-ddpm": "ddpm_dsc_unet", "cifar100-vdiffusion": "vdiffusion_unet"}
OURS = ["mnist-guided-diffusion", "cifar100-guided-diffusion"]   # budgetvision's own diffusion presets
NETS = sorted(PAPER_PARAMS) + ["vdiffusion_unet_compact", "vdiffusion_unet_compact_adagn"]
GENERATOR_BUDGET = 1_000_000


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Many tiny ops (depthwise convs, norms on 16x16 maps): one thread is fastest and immune to
    # oversubscription when the test runner shares the machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def spec(channels: int = 1, size: int = 16, classes: int = 10) -> DataSpec:
    return DataSpec(name="test", channels=channels, image_size=size, num_classes=classes,
                    mean=(0.5,) * channels, std=(0.5,) * channels,
                    class_names=tuple(str(i) for i in range(classes)))


def objective(preset: str, *overrides: str, data: DataSpec | None = None):
    cfg = apply_overrides(get_preset(preset).config, ["objective.sample_steps=4", *overrides])
    torch.manual_seed(0)
    return build_diffusion(cfg, data or spec())


# ---------------------------------------------------------------------------------- networks


def test_adagn_block_scales_and_shifts_its_second_norm_by_the_embedding():
    """ADM's AdaGN at a fixed point: with the embedding's Linear set to emit (s, b) = (0.5, -2) per
    channel, the block equals the plain block's path with its second GroupNorm's output x 1.5 - 2;
    the plain compact net keeps its 508,097 and the AdaGN one adds 2 x width per res block."""
    from budgetvision.models.unet import DSCResBlock

    torch.manual_seed(0)
    block = DSCResBlock(8, 16, embed_dim=4)
    with torch.no_grad():
        block.embed.weight.zero_()
        block.embed.bias.copy_(torch.cat([torch.full((16,), 0.5), torch.full((16,), -2.0)]))
    x, emb = torch.randn(2, 8, 5, 5), torch.randn(2, 4)
    body = block.body
    expected = block.skip(x) + body[5:](body[4](body[:4](x)) * 1.5 - 2.0)
    torch.testing.assert_close(block(x, emb), expected)
    assert not torch.allclose(block(x, emb), block.skip(x) + body(x))      # the embedding is read
    with pytest.raises(ValueError, match="embedding"):
        block(x)
    plain, adagn = (build_model(n, in_channels=1, num_classes=10, image_size=28, conditional=True)
                    for n in ("vdiffusion_unet_compact", "vdiffusion_unet_compact_adagn"))
    res_widths = [32, 32, 64, 64, 128, 128, 64, 64, 32, 32]          # encoder, middle, decoder blocks
    assert count_params(plain) == 508_097
    assert count_params(adagn) == 508_097 + sum((160 + 1) * 2 * w for w in res_widths) == 714_177


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_network_matches_paper_count(preset):
    p = get_preset(preset)
    cifar = spec(3, 32, 100)
    obj = build_objective(p.config, cifar)
    assert set(obj.trained_networks()) == {"denoiser"}
    n = count_params(obj.trained_networks()["denoiser"])
    paper, setting = PAPER_PARAMS[PRESETS[preset]]
    assert paper == p.paper_params and setting["num_classes"] == cifar.num_classes
    assert abs(n - paper) <= 0.01 * paper, f"{preset}: {n:,} vs paper {paper:,}"
    assert n < GENERATOR_BUDGET


def test_our_mnist_diffusion_is_the_compact_unet_within_budget_and_dry_runs(capsys):
    """Two poolings, 28 -> 14 -> 7, no padding: 508,097 parameters at MNIST's 28x28x1 and 10
    classes (conditional), under the generator budget, at the leaderboard's MNIST_GENERATOR_STEPS."""
    from budgetvision.cli import main
    from budgetvision.setup import config_params

    cfg = get_preset("mnist-guided-diffusion").config
    obj = build_objective(cfg, spec(1, 28, 10))
    assert isinstance(obj, VDiffusion) and set(obj.trained_networks()) == {"denoiser"}
    assert count_params(obj.trained_networks()["denoiser"]) == 508_097 == config_params(cfg)["total"]
    assert cfg.train.steps == 10_000 and (cfg.objective.sampler, cfg.objective.sample_steps) == ("dpmpp2m", 20)
    assert [type(m).__name__ for m in obj.network.encoder[1]] == ["DSCResBlock", "DSCResBlock"]  # no attention at 14
    assert main(["train", "--preset", "mnist-guided-diffusion", "--dry-run"]) == 0
    assert "within budget" in capsys.readouterr().out


def test_our_cifar_diffusion_is_seed_003s_unet_and_v_mse_within_budget_and_dry_runs(capsys):
    """The anonymous paper's U-Net (981,891 parameters at 32x32x3, 100 classes) and plain v MSE (Min-SNR-5
    screened worse), guidance 1 at every level (its train-reference screen's choice) and DPM-Solver++(2M)
    in 20 steps; training
    otherwise as cifar100-vdiffusion."""
    from budgetvision.cli import main
    from budgetvision.setup import config_params

    cfg, paper = get_preset("cifar100-guided-diffusion").config, get_preset("cifar100-vdiffusion").config
    obj = build_objective(cfg, spec(3, 32, 100))
    assert isinstance(obj, VDiffusion) and count_params(obj.network) == 981_891 == config_params(cfg)["total"]
    o = cfg.objective
    assert (o.min_snr_gamma, o.cfg_scale, o.guidance_interval, o.sampler, o.sample_steps) == \
        (0.0, 1.0, (0.0, 0.0), "dpmpp2m", 20)
    assert paper.objective.min_snr_gamma == 0.0 and (cfg.optim, cfg.train.batch_size) == (paper.optim, 128)
    assert main(["train", "--preset", "cifar100-guided-diffusion", "--dry-run"]) == 0
    assert "within budget" in capsys.readouterr().out


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("in_channels,image_size", [(1, 16), (1, 28), (3, 32)])
def test_output_shape_and_class_embedding_path(name, in_channels, image_size):
    x = torch.randn(2, in_channels, image_size, image_size)
    level = torch.tensor([0.1, 0.7]) if name == "ddpm_dsc_unet" else torch.tensor([5.0, -3.0])
    net = build_model(name, in_channels=in_channels, num_classes=7, image_size=image_size, conditional=True).eval()
    labels = torch.tensor([0, 6])
    with torch.no_grad():
        out = net(x, level, labels)
        assert out.shape == x.shape and torch.isfinite(out).all()
        # A class embedding vector gives exactly what its label gives: interpolation relies on it.
        torch.testing.assert_close(net(x, level, class_emb=net.class_embed(labels)), out, rtol=0, atol=0)
        assert not torch.equal(net(x, level, torch.tensor([1, 2])), out)
    uncond = build_model(name, in_channels=in_channels, num_classes=7, image_size=image_size)
    assert uncond(x, level).shape == x.shape
    assert count_params(uncond) < count_params(net)
    with pytest.raises(ValueError):
        uncond(x, level, labels)


@pytest.mark.parametrize("name", NETS)
def test_every_parameter_learns_and_channels_last_agrees(name):
    net = build_model(name, in_channels=3, num_classes=5, image_size=16, conditional=True)
    x = torch.randn(3, 3, 16, 16)
    level = torch.tensor([0.2, 0.5, 0.9])
    labels = torch.tensor([0, 4, net.null_label])
    net(x, level, labels).square().mean().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: no usable gradient for {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {pname}"
    # The loop runs channels_last on CUDA; the layout must not change the result.
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net.to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last), level, labels), net.to(
            memory_format=torch.contiguous_format)(x, level, labels), atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("name", sorted(LOG_SNR_SCHEDULES))
def test_log_snr_schedules_decrease_and_preserve_variance(name):
    # Not vacuous for alpha_sigma: alpha^2 + sigma^2 = 1 and log(alpha^2 / sigma^2) = log-SNR
    # determine positive alpha, sigma uniquely. The schedules' values are pinned further below.
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    log_snr = LOG_SNR_SCHEDULES[name](t)
    assert torch.isfinite(log_snr).all()
    assert (log_snr[1:] < log_snr[:-1]).all(), "log-SNR must decrease strictly in t"
    alpha, sigma = alpha_sigma(log_snr)
    torch.testing.assert_close(alpha ** 2 + sigma ** 2, torch.ones_like(t))
    torch.testing.assert_close(torch.log(alpha ** 2 / sigma ** 2), log_snr)


def test_cosine_and_spliced_agree_before_the_splice():
    # Crowson's spliced schedule is the cosine one (in cosine time) up to its crossover.
    t = torch.tensor([0.2, 0.4], dtype=torch.float64)
    u = t * (1 + 0.80074257 - 0.48536712)
    torch.testing.assert_close(LOG_SNR_SCHEDULES["spliced"](t), -2 * torch.log(torch.tan(u * math.pi / 2)))


# The schedules' formulas, written out here from the papers (plain math, float64), so a test
# compares the code with the formula rather than with itself.


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def ho_linear_betas(timesteps: int) -> list[float]:
    """Ho et al. 2020, section 4: beta_t linear from beta_1 = 1e-4 to beta_T = 0.02 at T = 1000;
    for other T both ends scaled by 1000 / T (Nichol & Dhariwal 2021, `get_named_beta_schedule`)."""
    lo, hi = 1e-4 * 1000 / timesteps, 0.02 * 1000 / timesteps
    return [lo + (hi - lo) * i / (timesteps - 1) for i in range(timesteps)]


def jabri_gamma(t: float, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> float:
    """Jabri, Fleet & Chen 2022 (Algorithm 1, `sigmoid_schedule`): the signal variance alpha-bar
    at continuous time t in [0, 1]."""
    v_start, v_end = _sigmoid(start / tau), _sigmoid(end / tau)
    return (v_end - _sigmoid((t * (end - start) + start) / tau)) / (v_end - v_start)


def truncated_cosine_log_snr(t: float, lo: float = -20.0, hi: float = 20.0) -> float:
    """Nichol & Dhariwal's cosine (alpha = cos(pi t / 2)) as a log-SNR, -2 log tan(pi t / 2), with t
    mapped onto [hi, lo] (Hoogeboom et al. 2023, `logsnr_schedule_cosine`)."""
    t_min, t_max = math.atan(math.exp(-0.5 * hi)), math.atan(math.exp(-0.5 * lo))
    return -2.0 * math.log(math.tan(t_min + t * (t_max - t_min)))


def test_cosine_log_snr_is_the_truncated_cosine():
    """The anonymous paper's cosine log-SNR schedule: -2 log tan(pi t / 2) (Nichol & Dhariwal's alpha = cos
    in log-SNR form), truncated to [-20, 20]: hand values at the ends and the middle, the
    formula in between, and alpha = cos(pi t / 2) to within the truncation."""
    cosine = LOG_SNR_SCHEDULES["cosine"]
    t = torch.tensor([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0], dtype=torch.float64)
    got = cosine(t)
    # Ends: log-SNR = +-20 exactly; middle: tan(pi / 4) = 1, so 0 (atan x + atan 1/x = pi / 2).
    assert got[0].item() == pytest.approx(20.0, abs=1e-9)
    assert got[-1].item() == pytest.approx(-20.0, abs=1e-9)
    assert got[3].item() == pytest.approx(0.0, abs=1e-12)
    expected = torch.tensor([truncated_cosine_log_snr(v) for v in t.tolist()], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    # Untruncated -2 log tan(pi t / 2): -2 log tan(pi / 8) = -2 log(sqrt(2) - 1) = 1.762747...;
    # the truncation moves the angle by at most atan(e^-10) = 4.5e-5 rad.
    assert got[2].item() == pytest.approx(-2 * math.log(math.sqrt(2) - 1), abs=2e-4)
    assert got[4].item() == pytest.approx(2 * math.log(math.sqrt(2) - 1), abs=2e-4)
    # alpha = cos(pi t / 2), sigma = sin(pi t / 2): at t = 1/3, 1/2, 2/3 these are sqrt(3)/2, sqrt(1/2), 1/2.
    alpha, sigma = alpha_sigma(cosine(torch.tensor([1 / 3, 0.5, 2 / 3], dtype=torch.float64)))
    torch.testing.assert_close(alpha, torch.tensor([math.sqrt(3) / 2, math.sqrt(0.5), 0.5], dtype=torch.float64),
                               rtol=0, atol=1e-4)
    torch.testing.assert_close(sigma, torch.tensor([0.5, math.sqrt(0.5), math.sqrt(3) / 2], dtype=torch.float64),
                               rtol=0, atol=1e-4)


def test_linear_and_spliced_log_snr_match_crowson():
    """Crowson's continuous DDPM-linear schedule (VDM's appendix), log-SNR = -log(expm1(1e-4 +
    10 t^2)): 9.2103 at t = 0 (= -log(expm1(1e-4))), -10.0000546 at t = 1; and the spliced
    schedule (v-diffusion-pytorch): cosine in cosine time u until u = 0.80074257, where it meets
    the linear one at 0.48536712, continuously (that is what the two constants mean), and equal
    to it at t = 1."""
    linear, spliced = LOG_SNR_SCHEDULES["linear"], LOG_SNR_SCHEDULES["spliced"]
    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    expected = [-math.log(math.expm1(1e-4 + 10 * v * v)) for v in t.tolist()]
    assert expected[0] == pytest.approx(9.210290, abs=1e-6) and expected[2] == pytest.approx(-10.0000546, abs=1e-7)
    torch.testing.assert_close(linear(t), torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    cosine_crossover, ddpm_crossover = 0.80074257, 0.48536712
    at_cosine = -2 * math.log(math.tan(cosine_crossover * math.pi / 2))
    at_linear = -math.log(math.expm1(1e-4 + 10 * ddpm_crossover ** 2))
    assert at_cosine == pytest.approx(at_linear, abs=1e-6)  # the splice is continuous
    t_splice = cosine_crossover / (1 + cosine_crossover - ddpm_crossover)
    eps = 1e-9
    around = spliced(torch.tensor([t_splice - eps, t_splice + eps], dtype=torch.float64))
    torch.testing.assert_close(around, torch.tensor([at_cosine, at_cosine], dtype=torch.float64), rtol=0, atol=1e-6)
    assert spliced(torch.tensor([1.0], dtype=torch.float64)).item() == pytest.approx(expected[2], abs=1e-9)
    assert spliced(torch.tensor([0.0], dtype=torch.float64)).item() == 20.0  # tan(0) = 0: clipped at LOG_SNR_MAX


@pytest.mark.parametrize("timesteps", [50, 1000])
def test_linear_betas_are_ho_et_al(timesteps):
    """Ho et al. 2020: beta from 1e-4 to 0.02, linear over T = 1000 (scaled by 1000/T otherwise,
    Nichol & Dhariwal): the whole array, the ends by hand, and the resulting alpha-bar_T."""
    b = linear_betas(timesteps)
    assert b.dtype == torch.float64 and b.shape == (timesteps,)
    torch.testing.assert_close(b, torch.tensor(ho_linear_betas(timesteps), dtype=torch.float64), rtol=1e-12, atol=0)
    if timesteps == 1000:
        assert b[0].item() == pytest.approx(1e-4, rel=1e-12) and b[-1].item() == pytest.approx(0.02, rel=1e-12)
        assert b[1].item() == pytest.approx(1e-4 + 0.0199 / 999, rel=1e-12)
        assert b[500].item() == pytest.approx(1e-4 + 0.0199 * 500 / 999, rel=1e-12)
        # alpha-bar_T = prod(1 - beta_t) = 4.036e-5: sqrt(alpha-bar_T) = 0.0064, x_T is nearly pure noise.
        alpha_bar_t = math.prod(1 - v for v in ho_linear_betas(1000))
        assert alpha_bar_t == pytest.approx(4.0358e-5, rel=1e-4)
        assert torch.prod(1 - b).item() == pytest.approx(alpha_bar_t, rel=1e-10)
    else:  # scale 20: 2e-3 .. 0.4
        assert b[0].item() == pytest.approx(2e-3, rel=1e-12) and b[-1].item() == pytest.approx(0.4, rel=1e-12)


@pytest.mark.parametrize("timesteps", [50, 1000])
def test_sigmoid_betas_are_jabri_et_al(timesteps):
    """Jabri et al. 2022's sigmoid schedule (start -3, end 3, tau 1) discretised as
    beta_i = 1 - gamma((i+1)/T) / gamma(i/T), so alpha-bar after step i is gamma((i+1)/T); the
    last beta, where gamma reaches 0, is clipped to 0.999."""
    b = sigmoid_betas(timesteps)
    assert b.dtype == torch.float64 and b.shape == (timesteps,)
    expected = [1 - jabri_gamma((i + 1) / timesteps) / jabri_gamma(i / timesteps) for i in range(timesteps - 1)]
    torch.testing.assert_close(b[:-1], torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=0)
    assert b[-1].item() == 0.999
    alpha_bar = torch.cumprod(1 - b, 0)
    # By the sigmoid's symmetry gamma(1/2) = (sigmoid(3) - 1/2) / (sigmoid(3) - sigmoid(-3)) = 1/2.
    assert alpha_bar[timesteps // 2 - 1].item() == pytest.approx(0.5, rel=1e-12)
    if timesteps == 1000:
        # By hand: 1 - gamma(0.001) = (sigmoid(-2.994) - sigmoid(-3)) / (sigmoid(3) - sigmoid(-3)).
        assert b[0].item() == pytest.approx((_sigmoid(-2.994) - _sigmoid(-3)) / (_sigmoid(3) - _sigmoid(-3)), rel=1e-9)
        assert b[0].item() == pytest.approx(3.00279e-4, rel=1e-5)
        assert alpha_bar[249].item() == pytest.approx(jabri_gamma(0.25), rel=1e-12)
        assert alpha_bar[-2].item() == pytest.approx(jabri_gamma(0.999), rel=1e-9)


def test_sigmoid_tutorial_betas_are_the_annotated_diffusion_models():
    """Rogge & Rasul's "The Annotated Diffusion Model" (the code Zavileiskii says it used),
    `sigmoid_beta_schedule`: betas = sigmoid(linspace(-6, 6, T)) * (0.02 - 0.0001) + 0.0001,
    written out here at fixed points; Jabri's schedule (objective.schedule=sigmoid) differs."""
    b = sigmoid_tutorial_betas(1000)
    assert b.dtype == torch.float64 and b.shape == (1000,)

    def blog(i: int, T: int = 1000) -> float:
        return _sigmoid(-6 + 12 * i / (T - 1)) * (0.02 - 0.0001) + 0.0001

    for i in (0, 1, 250, 499, 500, 998, 999):
        assert b[i].item() == pytest.approx(blog(i), rel=1e-12)
    assert b[0].item() == pytest.approx(1.4920520e-4, rel=1e-7)     # 1e-4 + 0.0199 sigmoid(-6), by hand
    assert b[-1].item() == pytest.approx(0.0199507948, rel=1e-8)    # 1e-4 + 0.0199 sigmoid(6)
    assert (b + b.flip(0)).sub(0.0201).abs().max().item() < 1e-15   # symmetric about the midpoint
    # Its total noise is near the linear schedule's (alpha-bar_T 3.97e-5 against 4.04e-5) ...
    assert torch.prod(1 - b).item() == pytest.approx(math.prod(1 - blog(i) for i in range(1000)), rel=1e-10)
    assert torch.prod(1 - b).item() == pytest.approx(3.9682e-5, rel=1e-4)
    # ... while Jabri's reaches alpha-bar 1/2 at mid-time and 0 at the end.
    assert abs(b[0].item() - sigmoid_betas(1000)[0].item()) > 1e-4
    # Other T are scaled by 1000 / T as the linear schedule is.
    assert sigmoid_tutorial_betas(50)[0].item() == pytest.approx(20 * blog(0), rel=1e-12)


def test_ddpm_schedule_choice_and_seed002_default():
    """objective.schedule selects the betas the DDPM objective trains and samples with; Zavileiskii's
    preset uses the tutorial's (its code's) reading, Jabri's stays one override away."""
    assert get_preset("cifar100-ddpm").config.objective.schedule == "sigmoid-tutorial"
    for name, betas in (("sigmoid-tutorial", sigmoid_tutorial_betas(1000)), ("sigmoid", sigmoid_betas(1000))):
        obj = objective("cifar100-ddpm", f"objective.schedule={name}")
        torch.testing.assert_close(obj.sqrt_alpha_bar.double(), torch.cumprod(1 - betas, 0).sqrt(), rtol=1e-6, atol=0)


def test_v_relations():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    alpha, sigma = alpha_sigma(torch.tensor([-4.0, 0.0, 2.0, 9.0]).reshape(4, 1, 1, 1))
    x_t = alpha * x0 + sigma * eps
    v = v_target(x0, eps, alpha, sigma)
    torch.testing.assert_close(x0_from_v(x_t, v, alpha, sigma), x0)
    torch.testing.assert_close(sigma * x_t + alpha * v, eps)   # eps from v


def test_dynamic_threshold():
    """Imagen's dynamic thresholding (Saharia et al. 2022): per sample s = max(1, the 99.5th
    percentile of |x0|), x0 -> clip(x0, -s, s) / s; expected values from numpy's percentile."""
    x = torch.stack([torch.linspace(-3, 3, 1000), torch.linspace(-0.5, 0.5, 1000)]).reshape(2, 1, 10, 100)
    out = dynamic_threshold(x, 0.995)
    row = x[0].flatten().double().numpy()
    s0 = max(1.0, float(np.quantile(np.abs(row), 0.995)))
    # By hand: |x| takes each value 3 - 6k/999 twice; the 0.995 quantile (position 994.005 of 999)
    # falls between the two copies of 3 - 12/999.
    assert s0 == pytest.approx(3 - 12 / 999, rel=1e-6)
    torch.testing.assert_close(out[0].flatten().double(), torch.from_numpy(np.clip(row, -s0, s0) / s0),
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(out[1], x[1])  # within [-1, 1]: s = 1, untouched
    # Rescaled rather than clipped: only the top 0.5 % saturate (a clip to [-1, 1] saturates 2/3).
    assert out[0].abs().max() == 1 and (out[0].abs() == 1).float().mean() <= 0.01
    assert (out[0].flatten().diff() >= 0).all()  # order preserved
    torch.testing.assert_close(dynamic_threshold(x, 0.0), x.clamp(-1, 1))


def test_cfg_combine():
    cond, uncond = torch.randn(3, 5), torch.randn(3, 5)
    torch.testing.assert_close(cfg_combine(cond, uncond, 0.0), cond, rtol=0, atol=0)
    torch.testing.assert_close(cfg_combine(cond, uncond, 3.0), 4 * cond - 3 * uncond)


def test_guidance_weight_zero_is_the_conditional_prediction():
    guided = objective("cifar100-vdiffusion", "objective.cfg_scale=0")
    net = guided.network.eval()
    x, log_snr, labels = torch.randn(3, 1, 16, 16), torch.tensor([-2.0, 0.0, 4.0]), torch.tensor([1, 2, 3])
    with torch.no_grad():
        cond = net(x, log_snr, labels)
        torch.testing.assert_close(guided._guided(net, x, log_snr, net.class_embed(labels), 0.0), cond)
        # And w = 3 (the preset's) is (1 + w) cond - w uncond, batched in one call.
        uncond = net(x, log_snr, torch.full((3,), net.null_label))
        torch.testing.assert_close(guided._guided(net, x, log_snr, net.class_embed(labels), 3.0),
                                   4 * cond - 3 * uncond, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samples_depend_only_on_their_seed(preset, sampler):
    obj = objective(preset, f"objective.sampler={sampler}")
    seeds = list(range(10, 18))
    together = obj.sample(seeds)
    assert together.shape == (8, 1, 16, 16)
    assert together.min() >= -1 and together.max() <= 1 and torch.isfinite(together).all()
    alone = torch.cat([obj.sample([s]) for s in seeds])
    # Batch 1 and batch 8 take different float kernels; 1,000 ancestral steps carry their rounding
    # to ~1e-5 (seen: 1.01e-5 on one CPU). Another seed's noise would move a pixel by ~1.
    torch.testing.assert_close(alone, together, atol=1e-4, rtol=0)
    if sampler == "ddim":
        torch.testing.assert_close(obj.sample(seeds), together, rtol=0, atol=0)  # deterministic, run twice
    assert not torch.allclose(together[0], together[1])
    assert obj.network.training, "sampling must restore the network's mode"


def test_ancestral_noise_is_seeded_and_differs_from_ddim():
    ddpm = objective("cifar100-vdiffusion", "objective.sampler=ddpm")
    ddim = objective("cifar100-vdiffusion", "objective.sampler=ddim")
    seeds = [3, 4]
    torch.testing.assert_close(ddpm.sample(seeds), ddpm.sample(seeds))
    assert not torch.allclose(ddpm.sample(seeds), ddim.sample(seeds))


def test_labels_default_to_seed_mod_classes_and_change_samples():
    obj = objective("cifar100-vdiffusion", "objective.sampler=ddim")
    seeds = [3, 14]
    torch.testing.assert_close(obj.sample(seeds), obj.sample(seeds, torch.tensor([3, 4])))
    assert not torch.allclose(obj.sample(seeds), obj.sample(seeds, torch.tensor([0, 0])))
    with pytest.raises(ValueError):
        obj.sample(seeds, torch.tensor([0, 10]))


def test_sample_uses_the_given_network_such_as_the_ema():
    obj = objective("cifar100-vdiffusion", "objective.sampler=ddim")
    ema = torch.optim.swa_utils.AveragedModel(obj.ema_target(), use_buffers=True)
    torch.testing.assert_close(obj.sample([1, 2], network=ema), obj.sample([1, 2]))
    with torch.no_grad():
        for p in ema.module.parameters():
            p.mul_(0.5)
    assert not torch.allclose(obj.sample([1, 2], network=ema), obj.sample([1, 2]))


def test_slerp_endpoints_and_norm():
    a, b = seeded_normal([0, 1], (3, 8, 8), "cpu").unbind(0)
    a, b = a[None], b[None]
    assert torch.equal(slerp(a, b, torch.tensor(0.0)), a)
    assert torch.equal(slerp(a, b, torch.tensor(1.0)), b)
    mid = slerp(a, b, torch.tensor(0.5))
    assert abs(mid.norm() - (a.norm() + b.norm()) / 2) < 0.05 * a.norm()  # no lerp-style shrink


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("mode", ["slerp", "lerp"])
def test_interpolation_endpoints_equal_samples(preset, mode):
    obj = objective(preset, "objective.sampler=ddim")
    pairs = [(0, 1), (2, 7)]
    path = obj.interpolate(pairs, 4, mode=mode)
    assert path.shape == (2, 4, 1, 16, 16)
    assert path.min() >= -1 and path.max() <= 1
    samples = obj.sample([0, 1, 2, 7])
    torch.testing.assert_close(path[:, 0], samples[[0, 2]], atol=1e-5, rtol=0)
    torch.testing.assert_close(path[:, -1], samples[[1, 3]], atol=1e-5, rtol=0)
    assert not torch.allclose(path[:, 1], path[:, 0])
    # Explicit labels: endpoints are the samples with those labels.
    labels = (torch.tensor([5, 5]), torch.tensor([6, 6]))
    path = obj.interpolate(pairs, 3, labels, mode=mode)
    torch.testing.assert_close(path[:, 0], obj.sample([0, 2], torch.tensor([5, 5])), atol=1e-5, rtol=0)


# ------------------------------------------------------- samplers against a known answer
# Data x0 ~ N(mu, s^2) per pixel. Then x_t = a x0 + sigma eps (a^2 + sigma^2 = 1; for DDPM
# a^2 = alpha-bar) is N(a mu, V) with V = a^2 s^2 + sigma^2, and by Gaussian conditioning the
# optimal (posterior-mean) denoiser is closed-form:
#   E[eps | x_t] = sigma (x_t - a mu) / V     (DDPM: sqrt(1-ab) (x_t - sqrt(ab) mu) / (ab s^2 + 1 - ab))
#   E[x0 | x_t]  = mu + a s^2 (x_t - a mu) / V,   v = a eps - sigma x0 (Salimans & Ho 2022).
# MU and S keep every x0 prediction well inside [-1, 1], so the samplers' clip never acts.
MU, S = 0.2, 0.15


class GaussianDenoiser(torch.nn.Module):
    """The exact denoiser above in place of the network: predicts eps from (x_t, t/T) with the
    alpha-bar table given (DDPM), or v from (x_t, log-SNR) with a^2 = sigmoid(log-SNR) (seed
    003). Class c's data mean is class_embed row c (the last row is the null label's), so
    classifier-free guidance and embedding interpolation work as with the real networks."""

    def __init__(self, means, s=S, alpha_bar=None):
        super().__init__()
        self.class_embed = torch.nn.Embedding(len(means), 1)
        with torch.no_grad():
            self.class_embed.weight.copy_(torch.tensor(means, dtype=torch.float32)[:, None])
        self.null_label = len(means) - 1
        self.s = s
        self.alpha_bar = None if alpha_bar is None else torch.tensor(alpha_bar, dtype=torch.float64)
        self.labels_seen: list[int] = []
        self.class_embed.register_forward_pre_hook(lambda m, args: self.labels_seen.extend(args[0].tolist()))

    def forward(self, x, level, y=None, *, class_emb=None):
        if class_emb is None:
            class_emb = self.class_embed(torch.zeros(len(x), dtype=torch.long) if y is None else y)
        mu = class_emb.double()[:, :1, None, None]
        if self.alpha_bar is not None:
            a2 = self.alpha_bar[(level.double() * len(self.alpha_bar)).round().long()]
        else:
            a2 = level.double().sigmoid()
        a2 = a2.reshape(-1, 1, 1, 1)
        a, sigma, xd = a2.sqrt(), (1 - a2).sqrt(), x.double()
        var = a2 * self.s ** 2 + 1 - a2
        eps = sigma * (xd - a * mu) / var
        if self.alpha_bar is not None:
            return eps.to(x.dtype)
        x0 = mu + a * self.s ** 2 * (xd - a * mu) / var
        return (a * eps - sigma * x0).to(x.dtype)


def reference_moments(alpha_bars, mu, s, *, ancestral: bool) -> tuple[float, float]:
    """Mean and variance of what a sampler must return, started from N(0, 1) at alpha_bars[0]
    (noisiest first) and stepping to each next level, then to clean data (alpha-bar 1), with the
    exact denoiser above. The papers' updates, in their epsilon form:
      ancestral (Ho et al. 2020, Algorithm 2, sigma_t^2 = beta-tilde, on a respaced sequence):
        x' = (x - beta / sqrt(1 - ab) eps) / sqrt(alpha) + sqrt(beta~) z,
        alpha = ab / ab', beta = 1 - alpha, beta~ = (1 - ab') / (1 - ab) beta;
      DDIM (Song et al. 2021, eq. 12, sigma = 0):
        x' = sqrt(ab') (x - sqrt(1 - ab) eps) / sqrt(ab) + sqrt(1 - ab') eps.
    Each step is affine in x plus independent noise, so mean and variance propagate exactly;
    a discrete sampler is exact only as the steps go to 0, so this, not (mu, s^2), is the answer."""
    levels = [float(v) for v in alpha_bars] + [1.0]
    m, v = 0.0, 1.0
    for ab, ab_next in zip(levels, levels[1:]):
        def eps(x, ab=ab):
            return math.sqrt(1 - ab) * (x - math.sqrt(ab) * mu) / (ab * s * s + 1 - ab)

        if ancestral:
            alpha = ab / ab_next
            beta = 1 - alpha

            def step(x, ab=ab, alpha=alpha, beta=beta):
                return (x - beta / math.sqrt(1 - ab) * eps(x)) / math.sqrt(alpha)
            noise_var = (1 - ab_next) / (1 - ab) * beta
        else:
            def step(x, ab=ab, ab_next=ab_next):
                x0 = (x - math.sqrt(1 - ab) * eps(x)) / math.sqrt(ab)
                return math.sqrt(ab_next) * x0 + math.sqrt(1 - ab_next) * eps(x)
            noise_var = 0.0
        k, b = step(1.0) - step(0.0), step(0.0)
        m, v = k * m + b, k * k * v + noise_var
    return m, v


def gaussian_objective(kind: str, sampler: str, steps: int, means=(MU, MU)):
    """A DDPM (ho-linear / jabri-sigmoid schedule, T = 1000) or VDiffusion (cosine) objective on
    1x8x8 images with one class, the GaussianDenoiser as its network, and the alpha-bars of its
    sampling levels computed here from the papers' formulas (not read from the code)."""
    if kind == "vdiffusion":
        cfg = apply_overrides(get_preset("cifar100-vdiffusion").config,
                              [f"objective.sampler={sampler}", f"objective.sample_steps={steps}",
                               "objective.cfg_scale=0"])
        net = GaussianDenoiser(list(means))
        # Crowson's levels: t = 1, 1 - 1/n, ..., 1/n, then clean data.
        alpha_bars = [_sigmoid(truncated_cosine_log_snr(1 - i / steps)) for i in range(steps)]
        obj = VDiffusion(net, cfg.objective, image_shape=(1, 8, 8), num_classes=1, conditional=True)
    else:
        schedule = kind.split("-")[1]
        cfg = apply_overrides(get_preset("cifar100-ddpm").config,
                              [f"objective.sampler={sampler}", f"objective.sample_steps={steps}",
                               f"objective.schedule={schedule}", "objective.timesteps=1000"])
        if schedule == "linear":
            table = list(itertools.accumulate((1 - b for b in ho_linear_betas(1000)), lambda p, q: p * q))
        else:  # alpha-bar after step i is gamma((i+1)/T); the last clipped beta 0.999 leaves 1e-3 of the one before
            table = [jabri_gamma((i + 1) / 1000) for i in range(999)]
            table.append(table[-1] * (1 - 0.999))
        net = GaussianDenoiser(list(means), alpha_bar=table)
        # Nichol & Dhariwal's respacing: n timesteps evenly spaced over 0 .. T-1, rounded, T-1 first.
        alpha_bars = [table[round(999 - 999 * i / (steps - 1))] for i in range(steps)]
        obj = DDPM(net, cfg.objective, image_shape=(1, 8, 8), num_classes=1, conditional=True)
    return obj, net, alpha_bars


def test_seed002_interpolation_conditions_on_the_closer_end_points_label():
    """cifar100-ddpm interpolates as Zavileiskii did by default: "Label of the closer image is used to
    condition the sampling of interpolation" (with a linear latent path). Same seed at both ends
    and the exact denoiser of two classes (data means -0.3 and 0.3): the first half of the path is
    seed 5 as class 0, the second as class 1 (DDIM, so exactly); blending (the anonymous paper) differs."""
    cfg = apply_overrides(get_preset("cifar100-ddpm").config, ["objective.sampler=ddim", "objective.sample_steps=4"])
    table = torch.cumprod(1 - sigmoid_tutorial_betas(1000), 0).tolist()
    obj = DDPM(GaussianDenoiser([-0.3, 0.3, 0.0], alpha_bar=table), cfg.objective, image_shape=(1, 8, 8),
               num_classes=2, conditional=True)
    assert (obj.interpolation, obj.interpolation_labels) == ("lerp", "nearest")
    labels = (torch.tensor([0]), torch.tensor([1]))
    path = obj.interpolate([(5, 5)], 5, labels)[0]
    as_0, as_1 = obj.sample([5], torch.tensor([0]))[0], obj.sample([5], torch.tensor([1]))[0]
    assert as_0.mean() < -0.2 and as_1.mean() > 0.2
    for j in range(5):
        torch.testing.assert_close(path[j], as_0 if j <= 2 else as_1, atol=1e-5, rtol=0)
    blended = obj.interpolate([(5, 5)], 5, labels, label_mode="blend")[0]
    assert -0.2 < blended[1].mean() < -0.1  # a quarter of the way: class mean -0.15
    assert torch.equal(obj.interpolate([(0, 9)], 4, mode="lerp", label_mode="nearest"), obj.interpolate([(0, 9)], 4))


def test_sampling_levels_are_the_schedules_at_the_right_times():
    """The levels the samplers step through: DDPM respaced to 4 steps visits t = 999, 666, 333, 0
    (network input t/T) with a = sqrt(alpha-bar_t) from Ho's linear betas; VDiffusion visits t = 1,
    3/4, 1/2, 1/4 with log-SNR -20, -1.7626, 0, 1.7626, so a = sqrt(sigmoid(log-SNR)) is
    sqrt(1/2) at t = 1/2. An off-by-one in either index fails here."""
    ddpm = objective("cifar100-ddpm", "objective.schedule=linear", "objective.timesteps=1000")
    alphas, sigmas, levels = ddpm._levels(4)
    table = list(itertools.accumulate((1 - b for b in ho_linear_betas(1000)), lambda p, q: p * q))
    ts = [999, 666, 333, 0]
    assert alphas == pytest.approx([math.sqrt(table[t]) for t in ts], rel=1e-12)
    assert sigmas == pytest.approx([math.sqrt(1 - table[t]) for t in ts], rel=1e-12)
    assert levels.tolist() == pytest.approx([t / 1000 for t in ts], rel=1e-6)
    assert table[0] == pytest.approx(1 - 1e-4, rel=1e-15)  # the last level: alpha-bar_1 = 1 - beta_1
    vdiff = objective("cifar100-vdiffusion")
    alphas, sigmas, levels = vdiff._levels(4)
    cos_ls = [truncated_cosine_log_snr(t) for t in (1.0, 0.75, 0.5, 0.25)]
    assert levels.tolist() == pytest.approx(cos_ls, abs=1e-5)
    assert cos_ls[0] == pytest.approx(-20.0) and cos_ls[2] == pytest.approx(0.0, abs=1e-12)
    assert alphas == pytest.approx([math.sqrt(_sigmoid(v)) for v in cos_ls], rel=1e-12)
    assert alphas[2] == pytest.approx(math.sqrt(0.5), rel=1e-12)
    assert sigmas[2] == pytest.approx(math.sqrt(0.5), rel=1e-12)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
@pytest.mark.parametrize("kind", ["ddpm-linear", "ddpm-sigmoid", "vdiffusion"])
def test_samplers_with_the_exact_denoiser_give_the_known_distribution(kind, sampler):
    """With the exact denoiser of N(MU, S^2) in place of the network, obj.sample() over 10 levels
    must produce reference_moments' mean and variance (Ho et al.'s ancestral step / Song et al.'s
    DDIM), to 5 standard errors over 400 x 64 samples. Few steps make the answer far from
    (MU, S^2) and different for each mistake: e.g. ancestral noise beta instead of beta-tilde,
    or noise added without shrinking the eps term, or the network told the next level."""
    obj, _, alpha_bars = gaussian_objective(kind, sampler, 10)
    seeds = list(range(400))
    out = obj.sample(seeds).double()
    m, v = reference_moments(alpha_bars, MU, S, ancestral=sampler == "ddpm")
    n = out.numel()
    assert out.mean().item() == pytest.approx(m, abs=5 * math.sqrt(v / n))
    assert out.var().item() == pytest.approx(v, rel=5 * math.sqrt(2 / n))
    if sampler == "ddim":
        # Deterministic and affine: each sample is m + sqrt(v) z, z its seed's first normal draw.
        z = torch.stack([torch.randn(1, 8, 8, generator=torch.Generator().manual_seed(s)) for s in seeds]).double()
        torch.testing.assert_close(out, m + math.sqrt(v) * z, rtol=0, atol=2e-4)
    # And with many steps the reference itself approaches the data distribution (mean MU,
    # variance S^2), as any consistent discretisation must.
    fine = gaussian_objective(kind, sampler, 1000)[2]
    m_fine, v_fine = reference_moments(fine, MU, S, ancestral=sampler == "ddpm")
    assert m_fine == pytest.approx(MU, abs=2e-3) and v_fine == pytest.approx(S * S, rel=0.06)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_many_step_samplers_draw_the_data_distribution(sampler):
    """The pure samplers on 1000 cosine levels (the anonymous paper's schedule) with the exact denoiser of
    N(MU, S^2) return mean MU and variance S^2, up to the 1000-step discretisation (< 3 %) and
    sampling error; the exact answer for these levels holds to 5 standard errors."""
    steps, rows = 1000, 8
    log_snr = [truncated_cosine_log_snr(1 - i / steps) for i in range(steps)]
    alpha_bars = [_sigmoid(v) for v in log_snr]
    alphas, sigmas = [math.sqrt(v) for v in alpha_bars], [math.sqrt(1 - v) for v in alpha_bars]
    net = GaussianDenoiser([MU, MU])
    levels = torch.tensor(log_snr)

    def denoise(x, i):
        return x0_from_v(x, net(x, levels[i].expand(len(x))), alphas[i], sigmas[i])

    gens = [torch.Generator().manual_seed(100 + k) for k in range(rows)]
    x = torch.stack([torch.randn(1, 32, 32, generator=g) for g in gens])
    if sampler == "ddim":
        out = ddim_sample(denoise, x, alphas, sigmas).double()
    else:
        out = ddpm_sample(denoise, x, alphas, sigmas, gens).double()
    n = out.numel()
    m, v = reference_moments(alpha_bars, MU, S, ancestral=sampler == "ddpm")
    assert out.mean().item() == pytest.approx(MU, abs=5 * math.sqrt(v / n) + 1e-3)
    assert out.var().item() == pytest.approx(S * S, rel=0.03 + 5 * math.sqrt(2 / n))
    assert out.var().item() == pytest.approx(v, rel=5 * math.sqrt(2 / n))


@pytest.mark.parametrize("grid", ["uniform", "square"])
def test_dpm_solver_pp_2m_is_second_order_where_ddim_is_first(grid):
    """The probability-flow ODE of N(MU, S^2) data has a closed-form solution: each pixel keeps its
    standardised value xi = (x - a MU) / sqrt(a^2 S^2 + s^2), so x_0 = MU + S xi. On levels from
    log-SNR -12 to 24 (a last level so clean that the final x0 step adds no error), doubling the
    steps must halve DDIM's error (first order) and quarter DPM-Solver++(2M)'s (second order): on a
    lambda-uniform grid and on a squared one, where r = h_prev / h != 1 tests the multistep weights."""
    warp = {"uniform": lambda u: u, "square": lambda u: u * u}[grid]

    def error(sampler, steps):
        log_snr = [2 * (-6 + 18 * warp(i / (steps - 1))) for i in range(steps)]
        alphas = [math.sqrt(_sigmoid(v)) for v in log_snr]
        sigmas = [math.sqrt(_sigmoid(-v)) for v in log_snr]
        net, levels = GaussianDenoiser([MU, MU]), torch.tensor(log_snr, dtype=torch.float64)

        def denoise(x, i):
            return x0_from_v(x, net(x, levels[i].expand(len(x))), alphas[i], sigmas[i])

        x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)).double()
        exact = MU + S * (x - alphas[0] * MU) / math.sqrt(alphas[0] ** 2 * S ** 2 + sigmas[0] ** 2)
        return (sampler(denoise, x, alphas, sigmas) - exact).abs().max().item()

    ddim = [error(ddim_sample, n) for n in (80, 160)]
    dpm = [error(dpmpp_2m_sample, n) for n in (80, 160)]
    assert ddim[0] / ddim[1] == pytest.approx(2.0, rel=0.1)
    assert dpm[0] / dpm[1] == pytest.approx(4.0, rel=0.12)
    assert dpm[0] < ddim[0] / 8


def test_dpm_solver_pp_2m_multistep_weights_give_third_order_local_error_on_uneven_steps():
    """DPM-Solver++ steps x_t = (sigma_t / sigma_s) x_s + sigma_t int e^lambda x0(lambda) dlambda
    (Lu et al. 2022, eq. 9) with x0 extrapolated from its last two values, D = (1 + 1/(2r)) x0_i
    - 1/(2r) x0_(i-1), r = h_(i-1) / h_i. With a callback whose x0 is A + B lambda, the closed form
    of that integral gives the step's exact answer from the x the step starts at; on steps h_(i-1)
    = delta, h_i = 3 delta its error must shrink 8x when delta halves (local order 3). Swapped
    weights (r/2 for 1/(2r)) or no extrapolation (DDIM) shrink it only 4x, and the global-order
    test above cannot tell swapped weights apart: over a run their errors telescope."""
    A, B = 0.3, -0.2

    def local_error(delta):
        lam = [-0.5, -0.5 + delta, -0.5 + 4 * delta, 0.5 + 4 * delta]
        alphas = [math.sqrt(_sigmoid(2 * v)) for v in lam]
        sigmas = [math.sqrt(_sigmoid(-2 * v)) for v in lam]
        seen = []

        def denoise(x, i):
            seen.append(x.item())
            return torch.full_like(x, A + B * lam[i])

        out = dpmpp_2m_sample(denoise, torch.ones(1, 1, 1, 1, dtype=torch.float64), alphas, sigmas)
        assert out.item() == pytest.approx(A + B * lam[-1], abs=1e-7)   # lower order final: x0 (clipped in float32)
        integral = math.exp(lam[2]) * (A + B * lam[2] - B) - math.exp(lam[1]) * (A + B * lam[1] - B)
        return abs(seen[2] - (sigmas[2] / sigmas[1] * seen[1] + sigmas[2] * integral))

    e = [local_error(d) for d in (0.2, 0.1, 0.05)]
    assert e[0] / e[1] == pytest.approx(8.3, rel=0.05) and e[1] / e[2] == pytest.approx(8.4, rel=0.05)


def test_guidance_on_gaussians_is_the_shifted_gaussian_and_w0_is_the_conditional_model():
    """Classifier-free guidance (the anonymous paper's eq. 4, v~ = (1 + w) v(c) - w v(null)) with exact
    denoisers of N(mu_c, S^2) and N(mu_null, S^2): v is affine in the mean with weights summing
    to 1, so the guided denoiser is exactly the denoiser of N((1 + w) mu_c - w mu_null, S^2), and
    guided sampling equals plain sampling of that Gaussian, sample for sample. With w = 0 the
    null label is never evaluated (its mean is NaN here) and the samples are the conditional
    model's."""
    mu_c, mu_null, w, steps = (0.1, 0.3), 0.15, 3.0, 20

    def vdiff(means, *overrides):
        cfg = apply_overrides(get_preset("cifar100-vdiffusion").config,
                              ["objective.sampler=ddpm", f"objective.sample_steps={steps}", *overrides])
        net = GaussianDenoiser(list(means))
        return VDiffusion(net, cfg.objective, image_shape=(1, 4, 4), num_classes=2, conditional=True), net

    seeds, labels = list(range(8)), torch.tensor([0, 1] * 4)
    guided, _ = vdiff([*mu_c, mu_null], f"objective.cfg_scale={w}")
    shifted, _ = vdiff([(1 + w) * m - w * mu_null for m in mu_c] + [float("nan")], "objective.cfg_scale=0")
    torch.testing.assert_close(guided.sample(seeds, labels), shifted.sample(seeds, labels), rtol=0, atol=1e-4)
    w0, net0 = vdiff([*mu_c, float("nan")], "objective.cfg_scale=0")
    plain, _ = vdiff([*mu_c, 123.0], "objective.cfg_scale=0")
    out = w0.sample(seeds, labels)
    assert torch.isfinite(out).all() and net0.null_label not in net0.labels_seen
    torch.testing.assert_close(out, plain.sample(seeds, labels), rtol=0, atol=0)
    x, log_snr = torch.randn(2, 1, 4, 4), torch.tensor([0.5, -1.0])
    cond = net0.class_embed(torch.tensor([0, 1]))
    torch.testing.assert_close(w0._guided(net0, x, log_snr, cond, 0.0), net0(x, log_snr, class_emb=cond),
                               rtol=0, atol=0)


def test_guidance_weights_follow_the_interval_in_edm_sigma():
    """w where sigma / alpha lies in (lo, hi], else 0; a bound of 0 is no bound; alpha 0 is sigma
    infinite."""
    alphas, sigmas = [1.0, 1.0, 1.0, 0.5], [0.5, 1.0, 2.0, 2.0]    # EDM sigma 0.5, 1, 2, 4
    assert guidance_weights(alphas, sigmas, 2.0, (1.0, 2.0)) == [0.0, 0.0, 2.0, 0.0]
    assert guidance_weights(alphas, sigmas, 2.0, (0.0, 0.0)) == [2.0] * 4
    assert guidance_weights(alphas, sigmas, 2.0, (0.0, 1.0)) == [2.0, 2.0, 0.0, 0.0]
    assert guidance_weights(alphas, sigmas, 2.0, (2.0, 0.0)) == [0.0, 0.0, 0.0, 2.0]
    assert guidance_weights([0.0], [1.0], 2.0, (1.0, 0.0)) == [2.0]
    with pytest.raises(ConfigError, match="guidance_interval"):
        apply_overrides(get_preset("cifar100-vdiffusion").config, ["objective.guidance_interval=2,1"])


def test_guidance_on_an_interval_shifts_the_gaussian_at_exactly_those_levels():
    """With the exact Gaussian denoisers above, guidance of weight w on the interval (lo, hi] must
    equal sampling, unguided, a denoiser whose class mean is (1 + w) mu_c - w mu_null at the levels
    whose sigma / alpha lies in (lo, hi] and mu_c elsewhere, sample for sample; and the null label
    is evaluated only at those levels (one network call per level outside the interval)."""
    mu_c, mu_null, w, steps, band = (0.1, 0.3), 0.15, 3.0, 20, (0.5, 2.0)

    class BandShifted(GaussianDenoiser):
        def forward(self, x, level, y=None, *, class_emb=None):
            edm_sigma = math.exp(-level[0].item() / 2)          # sigma / alpha at this log-SNR
            if band[0] < edm_sigma <= band[1]:
                class_emb = (1 + w) * class_emb - w * mu_null
            return super().forward(x, level, class_emb=class_emb)

    def vdiff(net, *overrides):
        cfg = apply_overrides(get_preset("cifar100-vdiffusion").config,
                              ["objective.sampler=ddpm", f"objective.sample_steps={steps}", *overrides])
        return VDiffusion(net, cfg.objective, image_shape=(1, 4, 4), num_classes=2, conditional=True)

    seeds, labels = list(range(8)), torch.tensor([0, 1] * 4)
    net = GaussianDenoiser([*mu_c, mu_null])
    interval = vdiff(net, f"objective.cfg_scale={w}", f"objective.guidance_interval={band[0]},{band[1]}")
    reference = vdiff(BandShifted([*mu_c, float("nan")]), "objective.cfg_scale=0")
    torch.testing.assert_close(interval.sample(seeds, labels), reference.sample(seeds, labels), rtol=0, atol=1e-4)
    alphas, sigmas, _ = interval._levels(steps)
    inside = sum(band[0] < s / a <= band[1] for a, s in zip(alphas, sigmas))
    assert 0 < inside < steps                                   # the interval splits the levels
    assert net.labels_seen.count(net.null_label) == inside * len(seeds)


# ---------------------------------------------------------------------------------- training


@pytest.mark.parametrize("preset", [*PRESETS, *OURS])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(preset):
    obj = objective(preset)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 16, 16, generator=g) * 2 - 1
    y = torch.arange(4)
    # The loss is measured at 8 fixed noise levels x 4 images with fixed noise, so its change
    # reflects learning rather than which t the step happened to draw.
    levels = 8
    xe, ye = x.repeat(levels, 1, 1, 1), y.repeat(levels)
    if isinstance(obj, DDPM):
        t = torch.linspace(0, obj.timesteps - 1, levels).long().repeat_interleave(4)
    else:
        t = torch.linspace(0.05, 0.95, levels).repeat_interleave(4)
    noise = torch.randn(xe.shape, generator=g)

    def measured() -> float:
        with torch.no_grad():
            return obj.loss(xe, ye, t=t, noise=noise).item()

    opts = {name: torch.optim.Adam(params, lr=1e-3) for name, params in obj.optimizer_groups().items()}
    before = measured()
    for _ in range(30):
        out = obj.train_step(x, y, opts)
        assert set(out) == {"loss"} and out["loss"].dim() == 0
    assert measured() < 0.85 * before


class _Recorder(torch.nn.Module):
    """Stands in for the denoiser in training: records its inputs, outputs a constant."""

    def __init__(self, value: float = 0.25):
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(value))
        self.null_label = 10
        self.seen = None

    def forward(self, x, level, y=None):
        self.seen = (x.detach().clone(), level.detach().clone())
        return torch.full_like(x, self.value.item())


def test_training_noises_by_the_forward_process_and_regresses_the_papers_targets():
    """DDPM (Ho et al. 2020, eq. 4 and L_simple): the network sees x_t = sqrt(ab_t) x0 +
    sqrt(1 - ab_t) eps with ab from Ho's linear betas and t/T, and the loss is |eps - out|^2.
    VDiffusion (the anonymous paper, eqs. 1-3): it sees x = alpha x0 + sigma eps at the cosine log-SNR,
    alpha^2 = sigmoid(log-SNR), and the loss is |v - out|^2 with v = alpha eps - sigma x0."""
    g = torch.Generator().manual_seed(3)
    x0, eps = torch.rand(4, 1, 4, 4, generator=g) * 2 - 1, torch.randn(4, 1, 4, 4, generator=g)
    y, shape = torch.zeros(4, dtype=torch.long), (-1, 1, 1, 1)
    cfg = apply_overrides(get_preset("cifar100-ddpm").config, ["objective.schedule=linear", "objective.timesteps=1000"])
    net = _Recorder()
    ddpm = DDPM(net, cfg.objective, image_shape=(1, 4, 4), num_classes=10, conditional=False)
    t = torch.tensor([0, 1, 500, 999])
    table = list(itertools.accumulate((1 - b for b in ho_linear_betas(1000)), lambda p, q: p * q))
    ab = torch.tensor([table[i] for i in t.tolist()], dtype=torch.float64).reshape(shape)
    loss = ddpm.loss(x0, y, t=t, noise=eps)
    torch.testing.assert_close(net.seen[0].double(), ab.sqrt() * x0 + (1 - ab).sqrt() * eps, rtol=0, atol=1e-6)
    torch.testing.assert_close(net.seen[1], t.float() / 1000)
    assert loss.item() == pytest.approx((eps - 0.25).square().mean().item(), rel=1e-6)

    cfg = apply_overrides(get_preset("cifar100-vdiffusion").config, ["objective.schedule=cosine"])
    net = _Recorder()
    vdiff = VDiffusion(net, cfg.objective, image_shape=(1, 4, 4), num_classes=10, conditional=True)
    t = torch.tensor([0.0, 0.25, 0.5, 0.9])
    log_snr = torch.tensor([truncated_cosine_log_snr(v) for v in t.tolist()], dtype=torch.float64)
    alpha, sigma = log_snr.sigmoid().sqrt().reshape(shape), (-log_snr).sigmoid().sqrt().reshape(shape)
    loss = vdiff.loss(x0, y, t=t, noise=eps)
    torch.testing.assert_close(net.seen[0].double(), alpha * x0 + sigma * eps, rtol=0, atol=1e-6)
    torch.testing.assert_close(net.seen[1].double(), log_snr, rtol=1e-6, atol=1e-5)
    v = alpha * eps - sigma * x0
    assert loss.item() == pytest.approx((v - 0.25).square().mean().item(), rel=1e-5)

    # Min-SNR-5 (Hang et al. 2023) weights each sample's v error by min(SNR, 5) / (SNR + 1).
    weighted = VDiffusion(net, replace(cfg.objective, min_snr_gamma=5.0), image_shape=(1, 4, 4), num_classes=10,
                          conditional=True)
    snr = log_snr.exp()
    w = torch.minimum(snr, torch.full_like(snr, 5.0)) / (snr + 1)
    per_sample = (v - 0.25).square().flatten(1).mean(1)
    assert weighted.loss(x0, y, t=t, noise=eps).item() == pytest.approx((w * per_sample).mean().item(), rel=1e-5)


def test_min_snr_weight_at_fixed_points():
    """min(SNR, gamma) / (SNR + 1): SNR/(SNR+1) below gamma, gamma/(SNR+1) above; no overflow at the
    clean end of the schedule (log-SNR 20: SNR 4.9e8)."""
    log_snr = torch.tensor([math.log(0.25), 0.0, math.log(4.0), math.log(5.0), math.log(9.0), 20.0, -20.0])
    expected = [0.2, 0.5, 0.8, 5 / 6, 0.5, 5 / (math.exp(20.0) + 1), 1 / (1 + math.exp(20.0))]
    got = min_snr_weight(log_snr, 5.0)
    assert got.tolist() == pytest.approx(expected, rel=1e-6)
    assert min_snr_weight(torch.tensor([math.log(3.0)]), 1.0).item() == pytest.approx(0.25)


@pytest.mark.parametrize("preset", PRESETS)
def test_non_finite_loss_raises_before_the_update(preset):
    obj = objective(preset)
    opts = {"main": torch.optim.Adam(obj.optimizer_groups()["main"], lr=1e-3)}
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    x[0, 0, 0, 0] = float("nan")
    before = [p.detach().clone() for p in obj.network.parameters()]
    with pytest.raises(NonFiniteLoss):
        obj.train_step(x, torch.tensor([0, 1]), opts)
    assert all(torch.equal(a, p) for a, p in zip(before, obj.network.parameters()))


def test_sobol_times_resume_from_the_state_dict():
    obj = objective("cifar100-vdiffusion")
    first = obj.sobol_t(8)
    assert ((first >= 0) & (first < 1)).all()
    # A scrambled Sobol batch of 8 puts exactly one point in each eighth of [0, 1).
    assert sorted((first * 8).floor().long().tolist()) == list(range(8))
    state = obj.state_dict()
    expected = obj.sobol_t(8)
    resumed = objective("cifar100-vdiffusion")
    resumed.load_state_dict(state)
    torch.testing.assert_close(resumed.sobol_t(8), expected)


# ------------------------------------------------------------------------------ config errors


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="schedule"):
        objective("cifar100-ddpm", "objective.schedule=cosine")
    with pytest.raises(ConfigError, match="schedule"):
        objective("cifar100-vdiffusion", "objective.schedule=sigmoid")
    with pytest.raises(ConfigError, match="sample_steps"):
        objective("cifar100-ddpm", "objective.timesteps=3")
    with pytest.raises(ConfigError, match="cond_drop"):
        objective("cifar100-vdiffusion", "objective.cond_drop=0")
    with pytest.raises(ConfigError, match="conditional"):
        objective("cifar100-vdiffusion", "model.conditional=false")
    with pytest.raises(ConfigError, match="cannot be overridden"):
        apply_overrides(get_preset("cifar100-ddpm").config, ["objective.name=gan"])
    cfg = replace(get_preset("cifar100-ddpm").config, objective=GANConfig())
    with pytest.raises(ConfigError, match="diffusion"):
        build_diffusion(cfg, spec())


def test_checks_between_fields_wait_for_every_override():
    """sample_steps <= timesteps and guidance's needs are checked on the whole config (config.check_run),
    so the overrides that satisfy them may come in either order."""
    for overrides in (["objective.timesteps=10", "objective.sample_steps=10"],
                      ["objective.sample_steps=10", "objective.timesteps=10"]):
        cfg = apply_overrides(get_preset("cifar100-ddpm").config, overrides)
        assert (cfg.objective.timesteps, cfg.objective.sample_steps) == (10, 10)
    for overrides in (["objective.cond_drop=0", "objective.cfg_scale=0", "model.conditional=false"],
                      ["model.conditional=false", "objective.cfg_scale=0", "objective.cond_drop=0"]):
        assert not apply_overrides(get_preset("cifar100-vdiffusion").config, overrides).model.conditional


def test_every_schedule_the_config_takes_is_implemented():
    """config.py names (and checks) the schedules diffusion.py implements: the same lists. No preset
    uses vdiffusion's spliced or linear; each is still what objective.schedule selects."""
    assert tuple(BETA_SCHEDULES) == DDPM_SCHEDULES and tuple(LOG_SNR_SCHEDULES) == VDIFFUSION_SCHEDULES
    for name in VDIFFUSION_SCHEDULES:
        assert objective("cifar100-vdiffusion", f"objective.schedule={name}").log_snr is LOG_SNR_SCHEDULES[name]


def test_presets_pick_their_objectives():
    assert isinstance(build_objective(get_preset("cifar100-ddpm").config, spec()), DDPM)
    assert isinstance(build_objective(get_preset("cifar100-vdiffusion").config, spec()), VDiffusion)

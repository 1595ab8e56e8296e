"""Diffusion: the seed U-Nets, schedules, guidance, seeded samplers and the two objectives (CPU)."""
import math

import pytest
import torch

from budgetvision.config import apply_overrides
from budgetvision.data import DataSpec
from budgetvision.errors import ConfigError
from budgetvision.models import build_model, count_params
from budgetvision.models.unet import PAPER_PARAMS
from budgetvision.objectives import NonFiniteLoss, build_objective
from budgetvision.objectives.base import seeded_normal, slerp
from budgetvision.objectives.diffusion import (
    DDPM,
    LOG_SNR_SCHEDULES,
    VDiffusion,
    alpha_sigma,
    build_diffusion,
    cfg_combine,
    dynamic_threshold,
    eps_from_v,
    linear_betas,
    sigmoid_betas,
    v_target,
    x0_from_v,
)
from budgetvision.presets import get_preset

PRESETS = {"cifar100-ddpm": "ddpm_dsc_unet", "cifar100-vdiffusion": "vdiffusion_unet"}
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


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
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


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
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


@pytest.mark.parametrize("betas", [linear_betas, sigmoid_betas])
@pytest.mark.parametrize("timesteps", [50, 1000])
def test_ddpm_betas(betas, timesteps):
    b = betas(timesteps)
    assert b.shape == (timesteps,)
    assert ((b > 0) & (b < 1)).all()
    alpha_bar = torch.cumprod(1 - b, 0)
    assert (alpha_bar[1:] < alpha_bar[:-1]).all()
    assert alpha_bar[-1] < 0.01, "the last step must be close to pure noise"
    # The discrete process is variance preserving too: sqrt(ab)^2 + sqrt(1 - ab)^2 = 1.
    torch.testing.assert_close(alpha_bar.sqrt() ** 2 + (1 - alpha_bar).sqrt() ** 2, torch.ones_like(b))
    log_snr = torch.log(alpha_bar / (1 - alpha_bar))
    assert (log_snr[1:] < log_snr[:-1]).all()


def test_linear_betas_are_ho_at_1000():
    b = linear_betas(1000)
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)


def test_v_relations():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    alpha, sigma = alpha_sigma(torch.tensor([-4.0, 0.0, 2.0, 9.0]).reshape(4, 1, 1, 1))
    x_t = alpha * x0 + sigma * eps
    v = v_target(x0, eps, alpha, sigma)
    torch.testing.assert_close(x0_from_v(x_t, v, alpha, sigma), x0)
    torch.testing.assert_close(eps_from_v(x_t, v, alpha, sigma), eps)


def test_dynamic_threshold():
    x = torch.stack([torch.linspace(-3, 3, 1000), torch.linspace(-0.5, 0.5, 1000)]).reshape(2, 1, 10, 100)
    out = dynamic_threshold(x, 0.995)
    assert out.abs().max() <= 1
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
        torch.testing.assert_close(guided._guided(net, x, log_snr, net.class_embed(labels)), cond)
        # And w = 3 (the preset's) is (1 + w) cond - w uncond, batched in one call.
        w3 = objective("cifar100-vdiffusion")
        w3.network.load_state_dict(net.state_dict())
        uncond = net(x, log_snr, torch.full((3,), net.null_label))
        torch.testing.assert_close(w3._guided(w3.network.eval(), x, log_snr, net.class_embed(labels)),
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
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=0)
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


# ---------------------------------------------------------------------------------- training


@pytest.mark.parametrize("preset", PRESETS)
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
    cfg = apply_overrides(get_preset("cifar100-ddpm").config, ["objective.name=gan"])
    with pytest.raises(ConfigError, match="diffusion"):
        build_diffusion(cfg, spec())


def test_presets_pick_their_objectives():
    assert isinstance(build_objective(get_preset("cifar100-ddpm").config, spec()), DDPM)
    assert isinstance(build_objective(get_preset("cifar100-vdiffusion").config, spec()), VDiffusion)

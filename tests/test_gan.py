"""GAN networks, losses, adaptive weighting, training steps, seeded sampling and interpolation."""
import math

import numpy as np
import pytest
import torch

from budgetvision.config import GANConfig, apply_overrides
from budgetvision.data import DataSpec
from budgetvision.errors import ConfigError
from budgetvision.models import MODELS, build_model, count_params
from budgetvision.models.gan import (
    DISCRIMINATORS,
    Discriminator,
    GAN_PAPER_PARAMS,
    GENERATORS,
    ClassBatchNorm2d,
    HalfBatchNorm,
    with_reference,
)
from budgetvision.objectives.base import NonFiniteLoss, seeded_normal, slerp
from budgetvision.objectives.gan import (
    GAN,
    aw_optimizer_step,
    aw_weights,
    bce_d_parts,
    bce_g_loss,
    build_gan,
    d_accuracy,
    hinge_d_parts,
    hinge_g_loss,
    r1_penalty,
)
from budgetvision.presets import PRESETS, get_preset
from budgetvision.setup import param_counts

GAN_PRESETS = sorted(n for n, p in PRESETS.items() if p.config.objective.name == "gan")
# (channels, image_size): scikit-learn digits, MNIST, CIFAR.
SHAPES = [(1, 16), (1, 28), (3, 32)]
DATA = {"cifar100": (3, 32, 100), "mnist": (1, 28, 10), "digits": (1, 16, 10)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These networks are tiny: thread start-up costs more than it saves, on a shared CPU most."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def spec(channels: int, image_size: int, num_classes: int) -> DataSpec:
    return DataSpec(name="test", channels=channels, image_size=image_size, num_classes=num_classes,
                    mean=(0.5,) * channels, std=(0.5,) * channels,
                    class_names=tuple(str(i) for i in range(num_classes)))


def preset_gan(name: str, overrides=(), data=None):
    cfg = apply_overrides(get_preset(name).config, list(overrides))
    return build_gan(cfg, spec(*(data or DATA[cfg.data.name])))


def optimizers(obj, lr_g=None, lr_d=None, cfg=None):
    lr = cfg.optim.lr if cfg else 1e-3
    betas = cfg.optim.betas if cfg else (0.5, 0.999)
    return {"main": torch.optim.Adam(obj.generator.parameters(), lr=lr if lr_g is None else lr_g, betas=betas),
            "discriminator": torch.optim.Adam(obj.discriminator.parameters(),
                                              lr=lr if lr_d is None else lr_d, betas=betas)}


def real_batch(channels=1, size=16, n=8):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, channels, size, size, generator=g) * 2 - 1, torch.arange(n) % 10


# --------------------------------------------------------------------------- budgets


def test_every_gan_network_is_registered():
    assert set(GENERATORS) | set(DISCRIMINATORS) <= set(MODELS)
    assert len(GAN_PRESETS) == 6


@pytest.mark.parametrize("name", GAN_PRESETS)
def test_preset_networks_build_within_budget(name):
    preset = get_preset(name)
    counts = param_counts(preset_gan(name))
    assert counts["total"] == counts["generator"] + counts["discriminator"]
    assert counts["total"] < 1_000_000 and counts["total"] < preset.config.budget.max_params
    if preset.paper_params is not None:
        assert abs(counts["total"] - preset.paper_params) <= 0.01 * preset.paper_params, counts


def test_seed000_count_is_exact():
    counts = param_counts(preset_gan("cifar100-sn-dcgan"))
    assert counts == {"generator": 806_128, "discriminator": 167_808, "total": 973_936}


def test_seed001_count_within_one_percent():
    counts = param_counts(preset_gan("cifar100-aw-sngan"))
    assert abs(counts["total"] - 942_812) <= 9_428, counts
    assert counts == {"generator": 679_011, "discriminator": 267_985, "total": 946_996}


@pytest.mark.parametrize("pair", list(GAN_PAPER_PARAMS))
def test_paper_settings_match_their_counts(pair):
    paper, setting = GAN_PAPER_PARAMS[pair]
    total = sum(count_params(build_model(n, **setting)) for n in pair)
    assert total < 1_000_000
    if paper is not None:
        assert abs(total - paper) <= 0.01 * paper


def test_spectral_norm_vectors_are_buffers_not_parameters():
    d = build_model("sn_dcgan_discriminator", in_channels=3, num_classes=10, image_size=32)
    assert any(name.endswith("_u") for name, _ in d.named_buffers())
    assert not any(name.endswith(("_u", "_v")) for name, _ in d.named_parameters())


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("generator,discriminator", list(GAN_PAPER_PARAMS))
@pytest.mark.parametrize("channels,image_size", SHAPES)
@pytest.mark.parametrize("conditional", [False, True])
def test_networks_on_every_data_shape(generator, discriminator, channels, image_size, conditional):
    kw = dict(in_channels=channels, num_classes=10, image_size=image_size, latent_dim=16,
              conditional=conditional)
    G, D = build_model(generator, **kw), build_model(discriminator, **kw)
    z, y = torch.randn(3, 16), torch.tensor([0, 4, 9])
    # The DCGAN output layer (Radford et al. 2016; Hughes, Jalil, Rzayev): the image is exactly tanh
    # of the last layer's output, not merely something in [-1, 1].
    last = G.out if hasattr(G, "out") else G.convs[-1]
    seen = []
    hook = last.register_forward_hook(lambda module, args, out: seen.append(out))
    x = G(z, y)
    hook.remove()
    assert x.shape == (3, channels, image_size, image_size) == seen[0].shape
    torch.testing.assert_close(x, torch.tanh(seen[0]), rtol=0, atol=0)
    assert D(x, y).shape == (3,)


@pytest.mark.parametrize("generator", GENERATORS)
def test_generator_reads_its_class_through_embed(generator):
    G = build_model(generator, in_channels=1, num_classes=10, image_size=16, latent_dim=8,
                    conditional=True).eval()
    for m in G.modules():  # conditional BN starts as the identity for every class: as if trained
        if isinstance(m, torch.nn.Embedding):
            torch.nn.init.normal_(m.weight, 1.0, 0.5)
    z, y = torch.randn(4, 8), torch.tensor([1, 2, 3, 9])
    with torch.no_grad():
        torch.testing.assert_close(G(z, y), G(z, emb=G.embed(y)))
        assert not torch.allclose(G(z, y), G(z, (y + 1) % 10))


def test_projection_discriminator_is_linear_head_plus_class_projection():
    """Miyato & Koyama 2018, eq. 3 (Jalil): D(x, y) = w^T phi(x) + b + V_y^T phi(x), with phi
    the last map summed over space. So D(x, a) - D(x, b) = (V_a - V_b) . phi(x) exactly, and the
    rest is the (spectrally normalised) linear head on phi."""
    torch.manual_seed(0)
    D = build_model("sngan_projection_discriminator", in_channels=3, num_classes=10, image_size=32).eval()
    x = torch.randn(3, 3, 32, 32)
    ya, yb = torch.tensor([0, 3, 7]), torch.tensor([5, 5, 1])
    with torch.no_grad():
        phi = D.body(x).double().sum(dim=(2, 3))
        V = D.projection.weight.double()  # the effective (normalised) class vectors
        w, b = D.head.weight.double(), D.head.bias.double()
        da, db = D(x, ya).double(), D(x, yb).double()
        assert (da - db).abs().min() > 1e-3  # the label matters
        torch.testing.assert_close(da - db, ((V[ya] - V[yb]) * phi).sum(1), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(da, phi @ w[0] + b[0] + (V[ya] * phi).sum(1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,conditional", [("sn_dcgan_discriminator", False),
                                              ("sngan_projection_discriminator", True)])
def test_spectral_norm_divides_each_weight_by_its_top_singular_value(name, conditional):
    """Miyato et al. 2018, Algorithm 1 (Hughes, Jalil): W_SN = W / sigma(W), sigma estimated as
    u^T W v by power iteration (one per training forward) on W as an (out, rest) matrix. Checked
    with torch.linalg: after the iterations the effective weight's largest singular value is 1
    (never below: u^T W v <= sigma(W)), for every wrapped layer, including the projection
    embedding, although the raw weights were scaled to sigma >= 1.5."""
    torch.manual_seed(0)
    D = build_model(name, in_channels=3, num_classes=10, image_size=16, conditional=conditional)
    wrapped = [m for m in D.modules() if torch.nn.utils.parametrize.is_parametrized(m, "weight")]
    assert len(wrapped) == (4 if name == "sn_dcgan_discriminator" else 8)
    with torch.no_grad():
        for m in wrapped:
            m.parametrizations.weight.original.mul_(3.0)
        D.train()
        for _ in range(200):
            for m in wrapped:
                m.weight  # a training-mode read runs one power iteration
        D.eval()
        for m in wrapped:
            raw = m.parametrizations.weight.original.double()
            raw_mat = raw.reshape(raw.shape[0], -1)
            assert torch.linalg.matrix_norm(raw_mat, ord=2).item() > 1.5
            sn = m.parametrizations.weight[0]
            u, v = sn._u.double(), sn._v.double()
            torch.testing.assert_close(m.weight.double(), raw / (u @ raw_mat @ v), rtol=1e-5, atol=1e-7)
            top = torch.linalg.matrix_norm(m.weight.double().reshape(raw.shape[0], -1), ord=2).item()
            assert 1 - 1e-5 <= top <= 1 + 2e-3, (type(m).__name__, top)


def test_conditional_batch_norm_is_bn_with_a_gain_and_shift_per_class():
    """Conditional BN (de Vries et al. 2017; Miyato & Koyama 2018, Jalil's generator):
    gamma_y (x - mean) / sqrt(var + eps) + beta_y, batch statistics (biased variance) in
    training, gamma_y | beta_y = row y of the embedding; statistics computed here in numpy."""
    cbn = ClassBatchNorm2d(3, num_classes=4)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        cbn.embedding.weight.copy_(torch.randn(4, 6, generator=g))
    x = 2 + 3 * torch.randn(6, 3, 4, 4, generator=g)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    xn = x.double().numpy()
    mean, var = xn.mean(axis=(0, 2, 3)), xn.var(axis=(0, 2, 3))
    rows = cbn.embedding.weight.detach().double().numpy()[y.numpy()]
    gamma, beta = rows[:, :3, None, None], rows[:, 3:, None, None]
    expected = gamma * (xn - mean[None, :, None, None]) / np.sqrt(var + 1e-5)[None, :, None, None] + beta
    out = cbn(x, cbn.embedding(y))
    torch.testing.assert_close(out.double(), torch.from_numpy(expected), rtol=1e-5, atol=1e-5)


def test_seed004_multipliers_and_virtual_bn():
    kw = dict(in_channels=1, num_classes=10, image_size=28, conditional=True)
    base = count_params(build_model("mnist_dcgan_discriminator", **kw))
    deeper = build_model("mnist_dcgan_discriminator", depth=2, virtual_bn=True, **kw)
    wider = build_model("mnist_dcgan_generator", capacity=2, virtual_bn=True, **kw)
    assert count_params(deeper) > base
    assert count_params(wider) > count_params(build_model("mnist_dcgan_generator", **kw))
    y = torch.arange(6) % 10
    x = wider(torch.randn(6, 100), y)
    assert x.shape == (6, 1, 28, 28) and deeper(x, y).shape == (6,)
    wider.eval()  # running statistics: one image alone is fine
    with torch.no_grad():
        assert wider(torch.randn(1, 100), y[:1]).shape == (1, 1, 28, 28)
    with pytest.raises(ConfigError):
        build_model("mnist_dcgan_discriminator", depth=0, **kw)


@pytest.mark.parametrize("overrides, g_kw, d_kw", [
    (["model.capacity=2"], dict(capacity=2), dict(capacity=2)),        # F widens both networks
    (["model.depth=2"], {}, dict(depth=2)),                            # D deepens the discriminator only
    (["model.capacity=2", "model.depth=3"], dict(capacity=2), dict(capacity=2, depth=3)),
])
@pytest.mark.parametrize("name", ["mnist-dcgan", "mnist-ccgan"])
def test_seed004_config_capacity_and_depth_reach_the_builders(name, overrides, g_kw, d_kw):
    """model.capacity / model.depth build exactly what the builders' F / D keywords build."""
    data = (1, 16, 10)   # digits-sized: the counts differ from MNIST's only in the dense layers
    cfg = get_preset(name).config
    kw = dict(in_channels=1, image_size=16, num_classes=10, latent_dim=100, conditional=cfg.model.conditional)
    base = param_counts(preset_gan(name, data=data))
    counts = param_counts(preset_gan(name, overrides, data=data))
    assert counts["generator"] == count_params(build_model("mnist_dcgan_generator", **g_kw, **kw))
    assert counts["discriminator"] == count_params(build_model("mnist_dcgan_discriminator", **d_kw, **kw))
    assert counts["discriminator"] > base["discriminator"]
    assert (counts["generator"] > base["generator"]) == ("capacity" in g_kw)


@pytest.mark.parametrize("name, override, words", [
    ("mnist-lenet", "model.capacity=2",
     "model.capacity=2 (Rzayev's capacity F) does not apply to model.name='lenet5'"),
    ("mnist-lenet", "model.depth=3",
     "model.depth=3 (Rzayev's discriminator depth D) does not apply to model.name='lenet5'"),
    ("cifar100-sn-dcgan", "model.capacity=2",
     "model.capacity=2 (Rzayev's capacity F) does not apply to model.name='sn_dcgan_generator'"),
    ("cifar100-sn-dcgan", "model.depth=2", "does not apply to model.discriminator='sn_dcgan_discriminator'"),
    # Rzayev's generator with another discriminator: F must reach both networks, so it is refused
    ("mnist-dcgan", "model.discriminator=sn_dcgan_discriminator model.capacity=2",
     "does not apply to model.discriminator='sn_dcgan_discriminator'"),
    ("cifar100-ddpm", "model.depth=2", "does not apply to model.name='ddpm_dsc_unet'"),
    ("mnist-pca", "model.capacity=3", "does not apply to model.name='pca'"),
])
def test_other_networks_refuse_capacity_and_depth_with_one_line(name, override, words):
    from budgetvision.objectives import build_objective

    cfg = apply_overrides(get_preset(name).config, override.split())
    channels, size, classes = DATA.get(cfg.data.name, (1, 28, 10))
    with pytest.raises(ConfigError) as e:
        build_objective(cfg, spec(channels, size, classes))
    assert words in str(e.value) and "\n" not in str(e.value)


def _reference_bn(x, ref, weight, bias, eps=1e-5):
    """(x - mean(ref)) / sqrt(var(ref) + eps) * weight + bias per channel, numpy, biased variance."""
    r = ref.double().numpy()
    axes = (0,) + tuple(range(2, r.ndim))
    shape = (1, -1) + (1,) * (r.ndim - 2)
    mean, var = r.mean(axis=axes), r.var(axis=axes)
    out = (x.double().numpy() - mean.reshape(shape)) / np.sqrt(var + eps).reshape(shape)
    return torch.from_numpy(out * weight.reshape(shape) + bias.reshape(shape)), mean, r.var(axis=axes, ddof=1)


def test_virtual_batch_norm_uses_its_reference_halfs_statistics():
    """Rzayev's virtual batch normalisation (Salimans et al. 2016's VBN, as the paper ran it:
    one half of the batch is the reference that normalises the whole batch): in training,
    y = (x - mean_ref) / sqrt(var_ref + eps) * gamma + beta for every sample, reference = the
    first half; the running statistics move by momentum 0.1 towards the reference's mean and
    unbiased variance. Unlike BN, on a batch whose halves differ; equal to BN when the halves
    are the same samples. Statistics computed here in numpy."""
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(4, 3, 5, 5, generator=g)
    other = 4 + 3 * torch.randn(4, 3, 5, 5, generator=g)  # unlike the reference
    x = torch.cat([ref, other])
    weight, bias = np.array([0.5, 1.0, 2.0]), np.array([-1.0, 0.0, 1.0])

    def norm(kind, channels=3):
        m = kind(channels)
        with torch.no_grad():
            m.weight.copy_(torch.tensor(weight)), m.bias.copy_(torch.tensor(bias))
        return m

    vbn = norm(HalfBatchNorm)
    out = vbn(x)
    expected, mean, unbiased_var = _reference_bn(x, ref, weight, bias)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(vbn.running_mean.double(), torch.from_numpy(0.1 * mean), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(vbn.running_var.double(), torch.from_numpy(0.9 + 0.1 * unbiased_var),
                               rtol=1e-5, atol=1e-6)
    bn_out = norm(torch.nn.BatchNorm2d)(x)
    assert (bn_out - out).abs().max() > 1.0  # BN normalises by the whole batch's statistics
    twin = torch.cat([ref, ref])
    torch.testing.assert_close(norm(HalfBatchNorm)(twin), norm(torch.nn.BatchNorm2d)(twin), rtol=1e-5, atol=1e-5)
    # (B, C) inputs, as in Rzayev's dense layers: the same rule over the batch dimension.
    flat = x[:, :, 2, 2]
    expected, _, _ = _reference_bn(flat, flat[:4], weight, bias)
    torch.testing.assert_close(norm(HalfBatchNorm)(flat).double(), expected, rtol=1e-5, atol=1e-5)
    # Evaluation: the running statistics, exactly as BN.
    bn = norm(torch.nn.BatchNorm2d)
    bn.running_mean.copy_(vbn.running_mean), bn.running_var.copy_(vbn.running_var)
    torch.testing.assert_close(vbn.eval()(other), bn.eval()(other), rtol=1e-6, atol=1e-6)


def test_with_reference_normalises_by_a_reference_put_in_front():
    """VBN as Salimans et al. run it: the reference goes through the network in front of the batch,
    every HalfBatchNorm normalises the whole by the reference's statistics, and the reference's rows
    are dropped; afterwards the layer is back to its own first half."""
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = HalfBatchNorm(3)

        def forward(self, x, y=None):
            return self.bn(x)

    g = torch.Generator().manual_seed(0)
    ref, x = torch.randn(4, 3, 5, 5, generator=g), 4 + 3 * torch.randn(6, 3, 5, 5, generator=g)
    net = Net()
    with torch.no_grad():
        net.bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0])), net.bn.bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
    out = with_reference(net, ref, None, x, None)
    expected, _, _ = _reference_bn(x, ref, np.array([0.5, 1.0, 2.0]), np.array([-1.0, 0.0, 1.0]))
    assert out.shape == x.shape
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    assert net.bn.reference is None
    own, _, _ = _reference_bn(x, x[:3], np.array([0.5, 1.0, 2.0]), np.array([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(net(x).double(), own, rtol=1e-5, atol=1e-5)


def test_vbn_reference_is_drawn_once_per_epoch_as_seed_004_says():
    """Rzayev: "we randomly choose half of the batch size in every epoch and normalize the other
    half corresponding to the previously chosen half". objective.vbn=epoch: the first half of an
    epoch's first (shuffled) batch is D's reference, with as many fresh latents for G, for every
    step of that epoch (24 images at batch 8: 3 steps), then redrawn; it is in the checkpoint."""
    from dataclasses import replace

    cfg = apply_overrides(get_preset("mnist-ccgan").config, ["objective.vbn=epoch", "train.batch_size=8"])
    data = replace(spec(1, 16, 10), train_size=24)
    obj = build_gan(cfg, data)
    opts = optimizers(obj)
    seen_rows = []
    first_norm = next(m for m in obj.discriminator.modules() if isinstance(m, HalfBatchNorm))
    first_norm.register_forward_hook(lambda m, args, out: seen_rows.append(len(args[0])))
    g = torch.Generator().manual_seed(3)
    batches = [(torch.rand(8, 1, 16, 16, generator=g) * 2 - 1, torch.randint(0, 10, (8,), generator=g))
               for _ in range(7)]
    refs, latents = [], []
    for x, y in batches:
        obj.train_step(x, y, opts)
        refs.append(obj.vbn_reference.real[0].clone())
        latents.append(obj.vbn_reference.latent[0].clone())
    for step, epoch_start in enumerate([0, 0, 0, 3, 3, 3, 6]):
        assert torch.equal(refs[step], batches[epoch_start][0][:4]), step
        assert torch.equal(latents[step], latents[epoch_start]), step
    assert not torch.equal(latents[3], latents[0])
    assert set(seen_rows) == {4 + 8}                     # D sees the reference in front of every batch
    fresh = build_gan(cfg, data)
    fresh.load_state_dict(obj.state_dict())
    assert fresh.vbn_reference.step == 7 and torch.equal(fresh.vbn_reference.real[0], refs[-1])
    # batch: each batch's own first half (no reference kept); off: plain BN; other networks: refused.
    assert build_gan(apply_overrides(cfg, ["objective.vbn=batch"]), data).vbn_reference is None
    plain = build_gan(apply_overrides(cfg, ["objective.vbn=off"]), data)
    assert not any(isinstance(m, HalfBatchNorm) for m in plain.modules())
    with pytest.raises(ConfigError, match="objective.vbn=epoch needs networks with virtual batch norm"):
        preset_gan("cifar100-aw-sngan", ["objective.vbn=epoch"], data=(1, 16, 10))


# --------------------------------------------------------------------------- losses


def test_hinge_losses_match_hand_values():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    # real: relu(1 - 2) = 0, relu(1 + 1) = 2 -> 1.0; fake: relu(1.5) = 1.5, relu(-2) = 0 -> 0.75
    assert sum(hinge_d_parts(real, fake)).item() == pytest.approx(1.75)
    assert hinge_g_loss(fake).item() == pytest.approx(1.25)


def test_bce_losses_match_hand_values():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])

    def sp(v):  # softplus: -log sigmoid(-v)
        return math.log1p(math.exp(v))

    d = (sp(-2.0) + sp(1.0)) / 2 + (sp(0.5) + sp(-3.0)) / 2
    assert sum(bce_d_parts(real, fake)).item() == pytest.approx(d, rel=1e-6)
    assert bce_g_loss(fake).item() == pytest.approx((sp(-0.5) + sp(3.0)) / 2, rel=1e-6)
    # Smoothed target 0.9: -(0.9 log s + 0.1 log(1 - s)) = 0.9 sp(-v) + 0.1 sp(v)
    smooth = sum(0.9 * sp(-v) + 0.1 * sp(v) for v in (2.0, -1.0)) / 2 + (sp(0.5) + sp(-3.0)) / 2
    assert sum(bce_d_parts(real, fake, real_label=0.9)).item() == pytest.approx(smooth, rel=1e-6)


# g_r = (3, 4): |g_r| = 5. With norm_eps=0 the numbers are exact.
@pytest.mark.parametrize("g_f,s_r,s_f,expected", [
    # case 1: D losing on reals (s_r < alpha1), obtuse: w_r = 1/5 + e, w_f = -<r,f>/(|f|^2 |r|) + e
    ((-3.0, 0.0), 0.4, 0.3, (0.2 + 0.05, 9 / (9 * 5) + 0.05)),
    # case 1 by the second test: s_r > alpha2 but s_r < s_f - delta
    ((-3.0, 0.0), 0.8, 0.9, (0.25, 0.25)),
    # case 2: losing on reals, acute: the fake part only keeps epsilon
    ((1.0, 0.0), 0.4, 0.3, (0.25, 0.05)),
    # case 3: secure on reals (s_r > alpha2), obtuse: w_r = -<r,f>/(|r|^2 |f|) + e, w_f = 1/3 + e
    ((-3.0, 0.0), 0.9, 0.2, (9 / (25 * 3) + 0.05, 1 / 3 + 0.05)),
    # case 4: secure, acute
    ((1.0, 0.0), 0.9, 0.2, (0.05, 1.0 + 0.05)),
    # case 5: in between: both unit directions
    ((-3.0, 0.0), 0.6, 0.3, (0.25, 1 / 3 + 0.05)),
])
def test_aw_weights_match_hand_computed_cases(g_f, s_r, s_f, expected):
    w_r, w_f = aw_weights(torch.tensor([3.0, 4.0]), torch.tensor(g_f), s_r, s_f, norm_eps=0.0)
    assert (w_r.item(), w_f.item()) == pytest.approx(expected, rel=1e-6)


def test_aw_weights_defaults_and_unnormalised_variant():
    g_r, g_f = torch.tensor([3.0, 4.0]), torch.tensor([-3.0, 0.0])
    w_r, w_f = aw_weights(g_r, g_f, 0.4, 0.3)  # the release's 1e-4 on the squared norms
    assert w_r.item() == pytest.approx(1 / math.sqrt(25.0001) + 0.05, rel=1e-6)
    assert w_f.item() == pytest.approx(9 / (9.0001 * math.sqrt(25.0001)) + 0.05, rel=1e-6)
    # Algorithm 2, case 1: w_r = 1 + e, w_f = -<r,f>/|f|^2 + e
    w_r, w_f = aw_weights(g_r, g_f, 0.4, 0.3, normalized=False, norm_eps=0.0)
    assert (w_r.item(), w_f.item()) == pytest.approx((1.05, 1.05))
    # Per-parameter lists are flattened and concatenated.
    w = aw_weights([torch.tensor([[3.0]]), torch.tensor([4.0])], [torch.tensor([[-3.0]]), torch.tensor([0.0])],
                   0.4, 0.3, norm_eps=0.0)
    assert (w[0].item(), w[1].item()) == pytest.approx((0.25, 0.25))


def test_aw_step_moves_along_the_weighted_gradient():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = torch.optim.SGD([w], lr=1.0)
    l_r = 1.5 * w[0] + 2.0 * w[1]      # g_r = (1.5, 2): |g_r| = 2.5
    l_f = -1.5 * w[0]                  # g_f = (-1.5, 0): obtuse, <r,f> = -2.25, |g_f|^2 = 2.25
    aw, w_r, w_f = aw_optimizer_step(l_r, l_f, torch.tensor(0.4), torch.tensor(0.3), opt, [w], norm_eps=0.0)
    assert (w_r.item(), w_f.item()) == pytest.approx((1 / 2.5 + 0.05, 2.25 / (2.25 * 2.5) + 0.05))
    step = w_r.item() * torch.tensor([1.5, 2.0]) + w_f.item() * torch.tensor([-1.5, 0.0])
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, 2.0]) - step)
    assert aw.item() == pytest.approx(w_r.item() * 5.5 + w_f.item() * -1.5)


def test_r1_penalty_is_half_gamma_times_the_mean_squared_input_gradient():
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
    # D(x) = sum x^2: grad 2x, |2x|^2 = 20 and 4; mean 12, times gamma / 2 = 5
    assert r1_penalty((x ** 2).sum(1), x, gamma=10.0).item() == pytest.approx(60.0)
    w = torch.tensor([3.0, -4.0], requires_grad=True)
    # D(x) = <w, x>: the same gradient w for every image, so gamma / 2 |w|^2, differentiable in w
    penalty = r1_penalty(x @ w, x, gamma=2.0)
    assert penalty.item() == pytest.approx(25.0)
    (grad_w,) = torch.autograd.grad(penalty, w)
    torch.testing.assert_close(grad_w, 2.0 * w.detach())


class _LinearD(Discriminator):
    """D(x) = <w, x>: its R1 penalty is gamma / 2 |w|^2, whatever the images."""

    def __init__(self, pixels: int):
        super().__init__(num_classes=10, conditional=False)
        self.w = torch.nn.Parameter(torch.linspace(-0.01, 0.01, pixels))

    def forward(self, x, y=None):
        return x.flatten(1) @ self.w


def test_r1_d_update_descends_the_penalty_as_well():
    """Two GANs alike but for objective.r1_gamma, one plain SGD step each on the same batch and
    draws: their D weights differ by exactly lr * gamma * w (the gradient of gamma / 2 |w|^2)."""
    x, _ = real_batch()
    after = {}
    for gamma in (0.0, 10.0):
        torch.manual_seed(0)
        G = build_model("mnist_dcgan_generator", in_channels=1, num_classes=10, image_size=16,
                        latent_dim=8, conditional=False)
        obj = GAN(G, _LinearD(16 * 16), GANConfig(gan_loss="hinge", r1_gamma=gamma))
        w0 = obj.discriminator.w.detach().clone()
        opts = {"main": torch.optim.SGD(G.parameters(), lr=0.0),
                "discriminator": torch.optim.SGD(obj.discriminator.parameters(), lr=0.1)}
        out = obj.train_step(x, None, opts)
        after[gamma] = obj.discriminator.w.detach().clone()
        if gamma:
            assert out["r1"].item() == pytest.approx(gamma / 2 * w0.pow(2).sum().item(), rel=1e-5)
        else:
            assert "r1" not in out
    torch.testing.assert_close(after[10.0] - after[0.0], -0.1 * 10.0 * w0)
    with pytest.raises(ConfigError, match="adaptive_weighting"):
        preset_gan("cifar100-aw-sngan", ["objective.r1_gamma=1"])


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("name", ["mnist-dcgan", "mnist-ccgan"])
def test_a_few_steps_on_a_fixed_batch_lower_the_d_loss(name):
    cfg = get_preset(name).config
    obj = preset_gan(name, data=(1, 16, 10))
    opts = optimizers(obj, cfg=cfg)
    x, y = real_batch()
    losses = [obj.train_step(x, y, opts)["d_loss"].item() for _ in range(30)]
    assert sum(losses[-5:]) / 5 < 0.6 * losses[0], losses


@pytest.mark.parametrize("name", ["cifar100-aw-sngan", "cifar100-sn-dcgan"])
def test_discriminator_learns_a_fixed_batch_against_a_frozen_generator(name):
    cfg = get_preset(name).config
    obj = preset_gan(name, data=(1, 16, 10))
    opts = optimizers(obj, lr_g=0.0, cfg=cfg)
    x, y = real_batch()
    losses = [obj.train_step(x, y, opts)["d_loss"].item() for _ in range(30)]
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0], losses


def test_projection_gan_discriminator_learns_a_fixed_batch_with_the_presets_own_rates():
    """Our MNIST recipe with its own optimisers (two time-scale rates, betas 0 / 0.9) and its
    DiffAugment on: against a frozen generator the hinge D loss (2 at the start) falls below half
    in 30 steps (measured: 0.14, 0.0, 0.04 of the first over seeds 0-2)."""
    from budgetvision.optim import build_optimizers
    torch.manual_seed(0)
    cfg = get_preset("mnist-projection-gan").config
    obj = preset_gan("mnist-projection-gan", data=(1, 16, 10))
    opts = build_optimizers(obj, cfg.optim, torch.device("cpu"))
    assert opts["discriminator"].param_groups[0]["lr"] == 4 * opts["main"].param_groups[0]["lr"]
    for group in opts["main"].param_groups:
        group["lr"] = 0.0
    x, y = real_batch()
    losses = [obj.train_step(x, y, opts)["d_loss"].item() for _ in range(30)]
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0], losses


def test_generator_learns_against_a_frozen_discriminator():
    cfg = get_preset("cifar100-sn-dcgan").config
    obj = preset_gan("cifar100-sn-dcgan", data=(1, 16, 10))
    opts = optimizers(obj, lr_d=0.0, cfg=cfg)
    x, y = real_batch()
    losses = [obj.train_step(x, y, opts)["loss"].item() for _ in range(30)]
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0], losses


def test_d_accuracy_counts_reals_above_and_fakes_below_zero_equally():
    """Rzayev's discriminator accuracy: 3 of 4 reals scored real (0.75), 1 of 2 fakes scored fake
    (0.5): 0.625, not the pooled 4 of 6; a score of exactly 0 is on neither side (sigmoid 1/2)."""
    real = torch.tensor([2.0, 0.5, 0.1, -1.0])
    fake = torch.tensor([-3.0, 0.0])
    assert d_accuracy(real, fake).item() == 0.625
    assert d_accuracy(torch.tensor([1.0]), torch.tensor([-1.0])).item() == 1.0


def test_train_step_returns_device_scalars_and_steps_d_as_configured():
    obj = preset_gan("cifar100-aw-sngan", ["objective.d_steps=2"], data=(1, 16, 10))
    opts = optimizers(obj)
    x, y = real_batch()
    out = obj.train_step(x, y, opts)
    assert {"loss", "d_loss", "d_real", "d_fake", "d_accuracy", "d_loss_aw", "w_real", "w_fake"} <= set(out)
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in out.values())
    assert opts["discriminator"].state[next(iter(obj.discriminator.parameters()))]["step"] == 2
    assert opts["main"].state[next(iter(obj.generator.parameters()))]["step"] == 1
    assert all(p.requires_grad for p in obj.discriminator.parameters())
    assert set(obj.optimizer_groups()) == {"main", "discriminator"}
    assert obj.ema_target() is obj.generator


@pytest.mark.parametrize("overrides", [[], ["objective.adaptive_weighting=true", "objective.gan_loss=hinge"]])
def test_non_finite_loss_raises_before_any_update(overrides):
    obj = preset_gan("mnist-dcgan", overrides, data=(1, 16, 10))
    opts = optimizers(obj)
    x, y = real_batch()
    x[0, 0, 0, 0] = float("nan")
    before = [p.detach().clone() for p in obj.parameters()]
    with pytest.raises(NonFiniteLoss, match="d_loss"):
        obj.train_step(x, y, opts)
    assert all(torch.equal(a, p) for a, p in zip(before, obj.parameters()))


def test_build_gan_rejects_a_missing_or_wrong_discriminator():
    cfg = get_preset("mnist-dcgan").config
    with pytest.raises(ConfigError, match="model.discriminator"):
        build_gan(apply_overrides(cfg, ["model.discriminator="]), spec(1, 28, 10))
    with pytest.raises(ConfigError, match="not a GAN network"):
        build_gan(apply_overrides(cfg, ["model.discriminator=lenet5"]), spec(1, 28, 10))


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("name", ["cifar100-sn-dcgan", "cifar100-aw-sngan", "mnist-ccgan", "mnist-projection-gan"])
def test_samples_depend_only_on_their_seed(name):
    obj = preset_gan(name, data=(1, 16, 10))
    opts = optimizers(obj)
    x, y = real_batch()
    obj.train_step(x, y, opts)  # BN running statistics away from their initial values
    seeds = list(range(10, 18))
    batch = obj.sample(seeds)
    singles = torch.cat([obj.sample([s]) for s in seeds])
    assert batch.shape == (8, 1, 16, 16)
    # Exact for convolutions; a dense layer's batch-1 and batch-8 matmuls differ in rounding.
    torch.testing.assert_close(batch, singles, rtol=0, atol=1e-6)
    assert obj.generator.training  # sample() restores the mode it found
    # The known answer: image k is G, in eval mode (running BN statistics), at z = the first
    # latent_dim normal draws of a generator seeded with seeds[k] (and class seeds[k] % 10).
    z = torch.stack([torch.randn(obj.latent_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    with torch.no_grad():
        expected = obj.generator.eval()(z, torch.tensor(seeds) % 10 if obj.conditional else None)
    obj.generator.train()
    torch.testing.assert_close(batch, expected, rtol=0, atol=1e-6)
    if obj.conditional:
        torch.testing.assert_close(batch, obj.sample(seeds, labels=torch.tensor(seeds) % 10), rtol=0, atol=0)
        assert not torch.allclose(batch, obj.sample(seeds, labels=torch.zeros(8, dtype=torch.long)))


def test_given_labels_are_one_class_index_per_seed():
    """Every generator takes its labels through labels_for (objectives/base.py): checked, or seed % classes."""
    obj = preset_gan("mnist-ccgan", data=(1, 16, 10))
    assert obj.labels_for([3, 14]).tolist() == [3, 4]
    for bad in (torch.tensor([0, 10]), torch.tensor([-1, 0]), torch.tensor([0])):
        with pytest.raises(ValueError, match="2 class indices in \\[0, 10\\)"):
            obj.sample([3, 4], bad)


@pytest.mark.parametrize("name", ["cifar100-sn-dcgan", "cifar100-aw-sngan", "mnist-ccgan", "mnist-projection-gan"])
@pytest.mark.parametrize("mode", ["slerp", "lerp"])
def test_interpolation_endpoints_are_the_samples(name, mode):
    obj = preset_gan(name, data=(1, 16, 10))
    pairs = [(1, 2), (3, 14)]
    path = obj.interpolate(pairs, 5, mode=mode)
    assert path.shape == (2, 5, 1, 16, 16)
    torch.testing.assert_close(path[:, 0], obj.sample([1, 3]), rtol=0, atol=1e-6)
    torch.testing.assert_close(path[:, -1], obj.sample([2, 14]), rtol=0, atol=1e-6)
    assert not torch.allclose(path[:, 2], path[:, 0])


def test_conditional_interpolation_blends_class_vectors():
    obj = preset_gan("cifar100-aw-sngan", data=(1, 16, 10))
    labels = (torch.tensor([3]), torch.tensor([7]))
    path = obj.interpolate([(5, 5)], 3, labels=labels, mode="lerp")
    # Same seed at both ends: only the class changes along the path.
    torch.testing.assert_close(path[0, 0], obj.sample([5], labels=labels[0])[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(path[0, -1], obj.sample([5], labels=labels[1])[0], rtol=0, atol=1e-6)
    G = obj.generator.eval()
    mid_emb = (G.embed(labels[0]) + G.embed(labels[1])) / 2
    with torch.no_grad():
        expected = G(seeded_normal([5], (obj.latent_dim,), "cpu"), emb=mid_emb)
    torch.testing.assert_close(path[0, 1], expected[0], rtol=1e-5, atol=1e-6)


def test_interpolation_defaults_to_the_papers_and_can_take_the_closer_ends_label():
    """Jalil interpolated linearly: cifar100-aw-sngan's default path is lerp (slerp on request).
    label_mode nearest (Zavileiskii's rule) conditions each frame on the closer end's class."""
    obj = preset_gan("cifar100-aw-sngan", data=(1, 16, 10))
    pairs = [(1, 2), (3, 14)]
    assert torch.equal(obj.interpolate(pairs, 5), obj.interpolate(pairs, 5, mode="lerp"))
    assert not torch.allclose(obj.interpolate(pairs, 5), obj.interpolate(pairs, 5, mode="slerp"))
    assert preset_gan("mnist-ccgan", data=(1, 16, 10)).interpolation == "slerp"
    ccgan = preset_gan("mnist-ccgan", data=(1, 16, 10))
    labels = (torch.tensor([3]), torch.tensor([7]))
    path = ccgan.interpolate([(5, 5)], 5, labels=labels, label_mode="nearest")[0]
    as_3, as_7 = ccgan.sample([5], labels=labels[0])[0], ccgan.sample([5], labels=labels[1])[0]
    for j in range(5):
        torch.testing.assert_close(path[j], as_3 if j <= 2 else as_7, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="interpolation labels must be one of blend, nearest"):
        ccgan.interpolate([(5, 5)], 3, label_mode="closest")


def test_slerp_returns_its_endpoints():
    a, b = torch.randn(4, 32), torch.randn(4, 32)
    torch.testing.assert_close(slerp(a, b, torch.zeros(4)), a)
    torch.testing.assert_close(slerp(a, b, torch.ones(4)), b)
    mid = slerp(a, b, torch.full((4,), 0.5))
    # Between two vectors of similar norm, slerp keeps the norm where lerp shrinks it.
    assert (mid.norm(dim=1) > ((a + b) / 2).norm(dim=1)).all()

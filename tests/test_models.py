"""Every classifier, the papers' and our presets', in every supported input setting (timm's
test_models.py style)."""
import itertools

import pytest
import torch
from torch import nn

from budgetvision.data.shapes import KNOWN
from budgetvision.errors import ConfigError
from budgetvision.models import MODELS, build_model, count_params, model_names, register
from budgetvision.models.classifiers import PAPER_PARAMS, DigitSumNet
from budgetvision.models.layers import PatchWhitening, eval_mode, fourier_positions_2d
from budgetvision.models.registry import buffer_roles, register_fitted, register_training_state
from budgetvision.presets import PRESETS

# Every classifier a preset trains, in that preset's own setting (no paper count for ours), and the
# papers' in theirs; generators have their own tests.
SETTINGS = {p.config.model.name: (None, dict(zip(("in_channels", "image_size", "num_classes"),
                                                  KNOWN[p.config.data.name])))
            for p in PRESETS.values() if p.config.task == "classify"} | PAPER_PARAMS
NAMES = sorted(SETTINGS)
# (in_channels, image_size): grey/colour at digits (16), MNIST/AddNIST (28) and CIFAR (32).
INPUTS = list(itertools.product((1, 3), (16, 28, 32)))
NUM_CLASSES = (10, 20, 100)
BUDGET = 100_000


def test_every_classifier_is_registered():
    assert set(NAMES) <= set(model_names())
    # the five papers' networks and our two presets' (speedrun_convnet, addnist_digit_sum)
    assert len(PAPER_PARAMS) == 5 and len(NAMES) == 7


def _supported(name: str, in_channels: int, num_classes: int) -> bool:
    # addnist_digit_sum reads one digit per channel: its classes are the sums 1 .. 9 * channels
    return name != "addnist_digit_sum" or num_classes <= 9 * in_channels


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_channels,image_size", INPUTS)
def test_output_and_feature_shapes(name, in_channels, image_size):
    x = torch.randn(2, in_channels, image_size, image_size)
    models = []
    for num_classes in NUM_CLASSES:
        shape = dict(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
        if not _supported(name, in_channels, num_classes):
            with pytest.raises(ConfigError, match="cannot come from"):
                build_model(name, **shape)
            continue
        models.append(build_model(name, **shape))
        assert models[-1](x).shape == (2, num_classes)
    for model in models[-1:]:
        model.eval()
        with torch.no_grad():
            feats = model.features(x)
            assert feats.ndim == 2 and feats.shape[0] == 2
            # features() is exactly what the last layer reads (the digit-sum net's: per channel,
            # one digit's features each, and the sum's law is computed from those logits)
            if isinstance(model, DigitSumNet):
                torch.testing.assert_close(model.head(feats.reshape(2, in_channels, -1)), model.digit_logits(x))
            else:
                torch.testing.assert_close(model.head(feats), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_finite_gradient(name):
    in_channels, image_size = 3, 32
    model = build_model(name, in_channels=in_channels, num_classes=10, image_size=image_size)
    x = torch.randn(4, in_channels, image_size, image_size)
    loss = nn.functional.cross_entropy(model(x), torch.randint(0, 10, (4,)))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"


@pytest.mark.parametrize("name", NAMES)
def test_count_matches_paper_and_budget(name):
    paper, setting = SETTINGS[name]
    n = count_params(build_model(name, **setting))
    assert n < BUDGET
    if paper is not None:
        assert abs(n - paper) <= 0.01 * paper, f"{name}: {n:,} vs paper {paper:,}"


def test_lenet5_is_the_classic_size():
    assert count_params(build_model("lenet5", **PAPER_PARAMS["lenet5"][1])) == 61_706


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_gives_the_same_logits(name):
    model = build_model(name, in_channels=3, num_classes=10, image_size=28).eval()
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        expected = model(x)
        got = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_unknown_name_raises_one_line_config_error():
    with pytest.raises(ConfigError, match="unknown model 'resnet9000'; known: ") as info:
        build_model("resnet9000", in_channels=3, num_classes=10, image_size=32)
    message = str(info.value)
    assert "\n" not in message
    assert all(name in message for name in NAMES)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_bad_sizes_raise_config_error(bad):
    with pytest.raises(ConfigError, match="in_channels"):
        build_model("lenet5", in_channels=bad, num_classes=10, image_size=28)


def test_too_small_image_raises_config_error():
    with pytest.raises(ConfigError, match="image_size >= 10"):
        build_model("lenet5", in_channels=1, num_classes=10, image_size=8)


def test_count_params_counts_tied_tensors_once_and_frozen_ones_too():
    shared = nn.Linear(4, 4)                       # 20 parameters
    frozen = nn.Linear(4, 1)                       # 5 parameters, learned all the same
    frozen.requires_grad_(False)
    assert count_params(nn.Sequential(shared, shared, frozen)) == 25


def test_count_params_counts_fitted_buffers_and_only_the_rules_exemptions_go_uncounted():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2),
                        nn.utils.parametrizations.spectral_norm(nn.Linear(3, 2)))
    register_fitted(net[0], "fitted", torch.zeros(7))           # counted: 7
    register_training_state(net[0], "moments", torch.zeros(11))  # training only: not counted
    # conv 2*9+2 = 20, BN affine 4, linear 3*2+2 = 8: 32 parameters; BN's running stats and the
    # spectral norm's _u (2) and _v (3) are normalisation statistics
    assert count_params(net) == 32 + 7
    roles = buffer_roles(net)
    assert roles == {"0.fitted": "fitted", "0.moments": "training state",
                     "1.running_mean": "normalisation", "1.running_var": "normalisation",
                     "1.num_batches_tracked": "normalisation",
                     "2.parametrizations.weight.0._u": "normalisation",
                     "2.parametrizations.weight.0._v": "normalisation"}
    net[0].register_buffer("forgotten", torch.zeros(5))         # a plain buffer: the rule cannot place it
    assert buffer_roles(net)["0.forgotten"] == "undeclared" and count_params(net) == 39


def test_speedrun_convnet_counts_its_fitted_whitening_filters():
    """airbench's stem: 24 filters of 3 x 2 x 2 fitted from the training images (288 values) and 24
    trained biases. Counted once the filters are fitted, and in the copy a checkpoint restores."""
    net = build_model("speedrun_convnet", in_channels=3, num_classes=100, image_size=32)
    stem = net.stem[0]
    assert isinstance(stem, PatchWhitening) and stem.weight.numel() == 288
    trained = sum(p.numel() for p in net.parameters())
    assert (trained, count_params(net)) == (93_852, 93_852 + 288)
    stem.init_from_data(torch.randn(64, 3, 32, 32))
    assert count_params(net) == 94_140
    assert count_params(build_model("speedrun_convnet", in_channels=3, num_classes=10, image_size=32)) == 86_850


def test_tied_transformer_layer_is_counted_once():
    model = build_model("dsc_transformer", in_channels=3, num_classes=100, image_size=32)
    per_layer = count_params(model.block)
    assert model.depth == 4
    assert count_params(model) == sum(count_params(m) for m in
                                      (model.stem, model.block, model.norm, model.fc, model.head))
    assert per_layer < count_params(model) < BUDGET


def test_register_refuses_a_duplicate_name():
    with pytest.raises(ValueError, match="already registered"):
        register(NAMES[0])(lambda **_: nn.Identity())
    assert MODELS[NAMES[0]].__name__ == NAMES[0]


def test_fourier_positions_are_distinct_and_bounded():
    codes = fourier_positions_2d(7, 7, 64)
    assert codes.shape == (49, 64)
    assert codes.abs().max() <= 1
    assert torch.cdist(codes, codes).add(torch.eye(49)).min() > 0   # every position differs


def test_attention_runs_in_fp32_under_the_cpus_bf16_autocast(monkeypatch):
    """CPU autocast computes the Linears in bf16 and attention in fp32 (bf16's CPU flash-attention
    backward is 8x slower): the scores see fp32 q, k, v, and the output stays within bf16's error of
    the fp32 module's."""
    from budgetvision.models.layers import SelfAttention

    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda q, k, v: seen.append((q.dtype, k.dtype, v.dtype)) or sdpa(q, k, v))
    torch.manual_seed(0)
    attn, x = SelfAttention(32, 4), torch.randn(2, 8, 32)
    reference = attn(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(x)
    assert seen == [(torch.float32,) * 3] * 2 and out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, atol=0.03, rtol=0.03)
    out.float().sum().backward()   # and it trains: gradients reach the bf16 Linears' fp32 weights
    assert attn.qkv.weight.grad is not None and torch.isfinite(attn.qkv.weight.grad).all()


@pytest.mark.parametrize("mode", [True, False])
def test_eval_mode_gives_back_the_mode_it_found_even_after_an_error(mode):
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)).train(mode)
    with pytest.raises(RuntimeError), eval_mode(net):
        assert not net.training and not net[1].training
        raise RuntimeError("in the block")
    assert net.training is mode and net[1].training is mode

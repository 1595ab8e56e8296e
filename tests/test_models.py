"""Every registered classifier, in every supported input setting (timm's test_models.py style)."""
import itertools

import pytest
import torch
from torch import nn

from budgetvision.errors import ConfigError
from budgetvision.models import MODELS, build_model, count_params, model_names, register
from budgetvision.models.classifiers import PAPER_PARAMS
from budgetvision.models.layers import fourier_positions_2d

NAMES = sorted(PAPER_PARAMS)  # every classifier; generators have their own tests
# (in_channels, image_size): grey/colour at digits (16), MNIST/AddNIST (28) and CIFAR (32).
INPUTS = list(itertools.product((1, 3), (16, 28, 32)))
NUM_CLASSES = (10, 20, 100)
BUDGET = 100_000


def test_every_classifier_is_registered():
    assert set(NAMES) <= set(model_names())
    assert len(NAMES) == 5


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_channels,image_size", INPUTS)
def test_output_and_feature_shapes(name, in_channels, image_size):
    x = torch.randn(2, in_channels, image_size, image_size)
    for num_classes in NUM_CLASSES:
        model = build_model(name, in_channels=in_channels, num_classes=num_classes,
                            image_size=image_size)
        assert model(x).shape == (2, num_classes)
    model.eval()
    with torch.no_grad():
        feats = model.features(x)
        assert feats.ndim == 2 and feats.shape[0] == 2
        # features() is exactly what the last layer reads.
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
    paper, setting = PAPER_PARAMS[name]
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


def test_count_params_counts_tied_tensors_once_and_skips_frozen():
    shared = nn.Linear(4, 4)                       # 20 parameters
    frozen = nn.Linear(4, 1)                       # 5 parameters
    frozen.requires_grad_(False)
    assert count_params(nn.Sequential(shared, shared, frozen)) == 20


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

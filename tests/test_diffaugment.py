"""DiffAugment (Zhao et al. 2020) in the GAN objective: the ops, their gradients, and where they apply."""
import pytest
import torch

from budgetvision.config import DIFFAUGMENT_OPS, GANConfig, apply_overrides
from budgetvision.errors import ConfigError
from budgetvision.models import build_model
from budgetvision.objectives.gan import DIFFAUGMENT, GAN, diff_augment
from budgetvision.presets import get_preset


def _shifted(x, dy, dx):
    """x moved down by dy and right by dx pixels, zero-filled: the translation DiffAugment defines."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_translation_is_a_zero_filled_shift_of_at_most_an_eighth_of_the_side():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 16, 16) * 2 - 1
    out = diff_augment(x, ("translation",))
    pad = 2                                                         # 16 / 8
    shifts = []
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)
                   if torch.equal(out[i], _shifted(x[i], dy, dx))]
        assert len(matches) == 1, f"image {i} is no single shift within +-{pad}"
        shifts.append(matches[0])
    assert len(set(shifts)) > 4                                     # per image, not one shift for the batch


def test_cutout_zeroes_one_square_of_half_the_side_and_passes_gradients_elsewhere():
    torch.manual_seed(1)
    x = (torch.rand(32, 3, 16, 16) + 0.5).requires_grad_()         # no zeros of its own
    out = diff_augment(x, ("cutout",))
    holes = out == 0
    assert torch.equal(holes[:, 0], holes[:, 2])                    # the same square in every channel
    for hole in holes[:, 0]:
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert len(rows) <= 8 and len(cols) <= 8                    # 16 / 2, clipped at the border
        assert hole.sum() == len(rows) * len(cols)                  # a rectangle
    assert torch.equal(out[~holes], x[~holes])
    out.sum().backward()
    torch.testing.assert_close(x.grad, (~holes).float())           # differentiable: G learns through it


def test_color_changes_brightness_saturation_and_contrast_per_image():
    torch.manual_seed(2)
    x = torch.rand(8, 3, 8, 8) * 2 - 1
    out = diff_augment(x, ("color",))
    assert out.shape == x.shape and not torch.allclose(out, x)
    grey = torch.zeros(4, 3, 8, 8)                                  # a flat image stays flat: only brightness moves it
    flat = diff_augment(grey, ("color",))
    assert torch.allclose(flat, flat[:, :1, :1, :1].expand_as(flat))
    assert flat[:, 0, 0, 0].abs().max() <= 0.5


def _gan(policy):
    kw = dict(in_channels=1, num_classes=10, image_size=16, latent_dim=8, conditional=True)
    return GAN(build_model("mnist_dcgan_generator", **kw), build_model("mnist_dcgan_discriminator", **kw),
               GANConfig(gan_loss="hinge", diffaugment=",".join(policy)))


@pytest.mark.parametrize("policy", [(), ("translation", "cutout")])
def test_discriminator_sees_augmented_reals_and_fakes_in_both_updates(policy):
    torch.manual_seed(3)
    gan = _gan(policy)
    seen = []
    gan.discriminator.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    opts = {"main": torch.optim.Adam(gan.generator.parameters()),
            "discriminator": torch.optim.Adam(gan.discriminator.parameters())}
    x, y = torch.rand(8, 1, 16, 16) * 2 - 1, torch.randint(0, 10, (8,))
    gan.train_step(x, y, opts)
    assert len(seen) == 3                                           # D: real, fake; G: fake
    if policy:
        assert not torch.equal(seen[0], x)
        zeroed = [(img == 0).flatten(1).sum(1) for img in seen]     # cutout squares in every call
        assert all((z > 0).all() for z in zeroed)
    else:
        assert torch.equal(seen[0], x)


def test_config_refuses_an_unknown_op():
    cfg = get_preset("mnist-ccgan").config
    assert apply_overrides(cfg, ["objective.diffaugment=translation,cutout"]).objective.diffaugment == \
        "translation,cutout"
    with pytest.raises(ConfigError, match="unknown op 'flip'"):
        apply_overrides(cfg, ["objective.diffaugment=translation,flip"])


def test_every_op_the_config_takes_is_implemented():
    assert tuple(DIFFAUGMENT) == DIFFAUGMENT_OPS

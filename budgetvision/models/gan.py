"""The GANs of Hughes, Jalil and Rzayev: generators and discriminators, registered by name.

Generators map z (B, latent_dim) (and, when conditional, a class) to images (B, C, H, W) in
[-1, 1] through tanh. Discriminators map images (and a class) to raw scores (B,): the sigmoid
of the papers' "probability" output lives inside the BCE loss, where it is numerically stable.

Every builder takes in_channels, num_classes, image_size, latent_dim and conditional, and
serves 16x16 digits, 28x28 MNIST and 32x32 CIFAR. The convolutional generators choose their
starting map size s0 = ceil(image_size / 2^ups) from image_size and crop the excess pixels
in their last stride-2 transposed convolution (its padding; a ConvTranspose2d's padding is
exactly a centre crop of its full output), so at 32x32 the weights are the paper's and at
28x28 nothing is computed only to be thrown away. Discriminators downsample with floor
halving and end in a head sized from the last map, so any input size works.

A conditional generator reads its class through one vector, `embed(y)`:
`G(z, y) == G(z, emb=G.embed(y))`. Interpolation blends two classes' vectors, which for
conditional BN blends every layer's per-class gain and shift at once.

Parameter counts (conv/linear weights + norm affines + embeddings; spectral norm's u and v
are normalisation statistics, not counted: models/registry.py) in each paper's setting are in
GAN_PAPER_PARAMS and checked by tests/test_gan.py.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from budgetvision.errors import ConfigError
from budgetvision.models.registry import register

# (generator, discriminator) -> (the count the paper reports for G + D, the setting it was
# counted in). Rzayev reports no count (its generator alone had ~7 M, over the budget).
GAN_PAPER_PARAMS: dict[tuple[str, str], tuple[int | None, dict]] = {
    ("sn_dcgan_generator", "sn_dcgan_discriminator"): (
        973_936, dict(in_channels=3, image_size=32, num_classes=100, latent_dim=100, conditional=False)),
    ("sngan_cbn_generator", "sngan_projection_discriminator"): (
        942_812, dict(in_channels=3, image_size=32, num_classes=100, latent_dim=128, conditional=True)),
    ("mnist_dcgan_generator", "mnist_dcgan_discriminator"): (
        None, dict(in_channels=1, image_size=28, num_classes=10, latent_dim=100, conditional=True)),
}
GENERATORS = tuple(g for g, _ in GAN_PAPER_PARAMS)
DISCRIMINATORS = tuple(d for _, d in GAN_PAPER_PARAMS)


def _check_size(name: str, image_size: int, minimum: int = 8) -> None:
    if image_size < minimum:
        raise ConfigError(f"model '{name}' needs image_size >= {minimum}, got {image_size}")


def _up_padding(kernel: int, crop: int) -> tuple[int, int]:
    """(padding, output_padding) of a stride-2 ConvTranspose2d whose output is 2n - crop.

    Its output is 2(n - 1) - 2p + kernel + op, so 2p - op = kernel - 2 + crop; op < stride."""
    m = kernel - 2 + crop
    op = m % 2
    return (m + op) // 2, op


class ClassBatchNorm2d(nn.Module):
    """BatchNorm2d whose gain and shift are looked up per class (conditional BN, de Vries et
    al. 2017; the generator side of Miyato & Koyama 2018); plain affine BN when num_classes=0.

    The class enters as a row `emb` = [gamma | beta] of `embedding`, or a blend of rows, so an
    interpolation between classes is an interpolation of the affine parameters."""

    def __init__(self, channels: int, num_classes: int = 0):
        super().__init__()
        self.embed_dim = 2 * channels if num_classes else 0
        self.bn = nn.BatchNorm2d(channels, affine=not num_classes)
        if num_classes:
            self.embedding = nn.Embedding(num_classes, 2 * channels)
            with torch.no_grad():  # start as the identity affine map, like an unconditional BN
                self.embedding.weight[:, :channels].fill_(1.0)
                self.embedding.weight[:, channels:].zero_()

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        h = self.bn(x)
        if not self.embed_dim:
            return h
        gamma, beta = emb.chunk(2, dim=1)
        return h * gamma[:, :, None, None] + beta[:, :, None, None]


class HalfBatchNorm(nn.BatchNorm2d):
    """Rzayev's "virtual batch normalisation": in training, statistics come from a reference at
    the start of the batch and normalise the whole batch, so no sample is normalised only by
    itself. The reference is the first `reference` rows where `with_reference` prepends one (the
    GAN objective's, drawn once per epoch as the paper did), else the batch's first half (batches
    arrive shuffled). Evaluation uses running statistics as BN does. Takes (B, C) as well as
    (B, C, H, W)."""

    reference: int | None = None   # rows at the batch's start that normalise it; None: the first half

    def forward(self, x: Tensor) -> Tensor:
        flat = x.dim() == 2
        h = x[:, :, None, None] if flat else x
        if self.training:
            ref = h[: self.reference or max(2, h.shape[0] // 2)].float()
            mean = ref.mean((0, 2, 3))
            var = ref.var((0, 2, 3), unbiased=False)
            with torch.no_grad():
                n = ref.numel() // ref.shape[1]
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
                self.num_batches_tracked += 1
            scale = self.weight * torch.rsqrt(var + self.eps)
            out = (h.float() - mean[:, None, None]) * scale[:, None, None] + self.bias[:, None, None]
            out = out.to(x.dtype)
        else:
            out = super().forward(h)
        return out[:, :, 0, 0] if flat else out


def with_reference(net: nn.Module, ref: Tensor, ref_y: Tensor | None, x: Tensor, y: Tensor | None) -> Tensor:
    """net(x, y) with every HalfBatchNorm in it normalising by the statistics of the reference
    (ref, ref_y) instead: the reference goes through the network in front of x, as in Salimans et
    al.'s VBN, and its rows are dropped from the output."""
    norms = [m for m in net.modules() if isinstance(m, HalfBatchNorm)]
    for m in norms:
        m.reference = len(ref)
    try:
        out = net(torch.cat([ref.to(x.dtype), x]), None if y is None else torch.cat([ref_y, y]))
    finally:
        for m in norms:
            m.reference = None
    return out[len(ref):]


class Generator(nn.Module):
    """z (B, latent_dim) [+ class] -> images (B, C, H, W) in [-1, 1]."""

    def __init__(self, latent_dim: int, num_classes: int, conditional: bool):
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.conditional = conditional

    def embed(self, y: Tensor) -> Tensor:
        """The class vector (B, E) that `forward(emb=...)` reads for labels y."""
        raise NotImplementedError

    def class_vector(self, y: Tensor | None, emb: Tensor | None) -> Tensor | None:
        if not self.conditional:
            return None
        if emb is not None:
            return emb
        if y is None:
            raise ValueError("a conditional generator needs labels y or a class vector emb")
        return self.embed(y)


class Discriminator(nn.Module):
    """images (B, C, H, W) [+ labels] -> raw scores (B,)."""

    def __init__(self, num_classes: int, conditional: bool):
        super().__init__()
        self.num_classes = num_classes
        self.conditional = conditional

    def _labels(self, y: Tensor | None) -> Tensor:
        if y is None:
            raise ValueError("a conditional discriminator needs labels y")
        return y


# --------------------------------------------------------------------------- Hughes, Jalil
class ConvGenerator(Generator):
    """z as a 1x1 map -> ConvTranspose (kernel s0) to s0 x s0 -> stride-2 ConvTransposes, each
    followed by (conditional) BN and an activation -> output layer -> tanh.

    `out_conv=False`: the output layer is one more stride-2 ConvTranspose to the image channels
    (DCGAN, Hughes); `True`: a 3x3 conv with bias after the last normalised stage (SN-GAN's
    generator, Jalil). Hidden layers carry no bias: the BN after each makes it redundant."""

    def __init__(self, *, in_channels: int, image_size: int, latent_dim: int, num_classes: int,
                 conditional: bool, widths: tuple[int, ...], kernel: int, act: Callable[[], nn.Module],
                 out_conv: bool):
        super().__init__(latent_dim, num_classes, conditional)
        ups = len(widths) - 1 + (0 if out_conv else 1)
        s0 = math.ceil(image_size / 2**ups)
        crop = s0 * 2**ups - image_size
        classes = num_classes if conditional else 0
        self.stem = nn.ConvTranspose2d(latent_dim, widths[0], s0, bias=False)
        self.norms = nn.ModuleList(ClassBatchNorm2d(w, classes) for w in widths)
        self.ups = nn.ModuleList()
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            p, op = _up_padding(kernel, crop if out_conv and i == len(widths) - 2 else 0)
            self.ups.append(nn.ConvTranspose2d(a, b, kernel, 2, p, op, bias=False))
        if out_conv:
            self.out = nn.Conv2d(widths[-1], in_channels, 3, 1, 1)
        else:
            p, op = _up_padding(kernel, crop)
            self.out = nn.ConvTranspose2d(widths[-1], in_channels, kernel, 2, p, op, bias=False)
        self.act = act()

    def embed(self, y: Tensor) -> Tensor:
        return torch.cat([n.embedding(y) for n in self.norms], dim=1)

    def forward(self, z: Tensor, y: Tensor | None = None, *, emb: Tensor | None = None) -> Tensor:
        e = self.class_vector(y, emb)
        es = e.split([n.embed_dim for n in self.norms], dim=1) if e is not None else (None,) * len(self.norms)
        h = self.act(self.norms[0](self.stem(z[:, :, None, None]), es[0]))
        for up, norm, ei in zip(self.ups, self.norms[1:], es[1:]):
            h = self.act(norm(up(h), ei))
        return torch.tanh(self.out(h))


class ConvDiscriminator(Discriminator):
    """Spectrally normalised 4x4 convs (stride 2: padding 1, floor halving; stride 1: "same"),
    optional BN, LeakyReLU; then a head on the last map, plus the projection term
    y^T V phi(x) of Miyato & Koyama (2018) when conditional, phi(x) = the last map summed over
    space (their global sum pooling).

    `head="conv"`: a conv whose kernel covers the whole last map (DCGAN's 4x4 conv on 4x4,
    Hughes); `"fc"`: a linear layer on phi(x) (SN-GAN, Jalil)."""

    def __init__(self, *, in_channels: int, image_size: int, num_classes: int, conditional: bool,
                 widths: tuple[int, ...], strides: tuple[int, ...], norms: tuple[bool, ...],
                 bias: bool, slope: float, head: str):
        super().__init__(num_classes, conditional)
        layers: list[nn.Module] = []
        size, c = image_size, in_channels
        for w, s, bn in zip(widths, strides, norms, strict=True):
            if s == 1:  # "same" for an even kernel: one pixel before, two after (torch's own split)
                layers.append(nn.ZeroPad2d((1, 2, 1, 2)))
            layers.append(spectral_norm(nn.Conv2d(c, w, 4, s, 1 if s == 2 else 0, bias=bias)))
            if bn:
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.LeakyReLU(slope))
            size = size // 2 if s == 2 else size
            c = w
        self.body = nn.Sequential(*layers)
        if head == "conv":
            self.head = spectral_norm(nn.Conv2d(c, 1, size, bias=bias))
        else:
            self.head = spectral_norm(nn.Linear(c, 1, bias=bias))
        self.head_kind = head
        self.projection = spectral_norm(nn.Embedding(num_classes, c)) if conditional else None

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.body(x)
        phi = h.sum(dim=(2, 3))
        out = (self.head(h) if self.head_kind == "conv" else self.head(phi)).flatten()
        if self.projection is not None:
            out = out + (self.projection(self._labels(y)) * phi).sum(dim=1)
        return out


@register("sn_dcgan_generator")
def sn_dcgan_generator(*, in_channels: int, num_classes: int, image_size: int, latent_dim: int = 100,
                       conditional: bool = False) -> Generator:
    """Hughes (DESIGN.md's worked example): 4x4 transposed convs 100 -> 184 -> 128 -> 64 -> 3
    without bias, BatchNorm on 184/128/64, ReLU, tanh. 806,128 parameters at 32x32x3:
    294,400 + 376,832 + 131,072 + 3,072 weights + 752 BN. Conditional uses class BN (the
    paper is unconditional; offered so every GAN here can condition)."""
    _check_size("sn_dcgan_generator", image_size)
    return ConvGenerator(in_channels=in_channels, image_size=image_size, latent_dim=latent_dim,
                         num_classes=num_classes, conditional=conditional, widths=(184, 128, 64),
                         kernel=4, act=nn.ReLU, out_conv=False)


@register("sn_dcgan_discriminator")
def sn_dcgan_discriminator(*, in_channels: int, num_classes: int, image_size: int, latent_dim: int = 100,
                           conditional: bool = False) -> Discriminator:
    """Hughes: spectrally normalised 4x4 stride-2 convs 3 -> 32 -> 64 -> 128 -> 1 without bias,
    BatchNorm on 64/128, LeakyReLU(0.2). 167,808 parameters at 32x32x3: 1,536 + 32,768 +
    131,072 + 2,048 weights + 384 BN; the total with the generator is the paper's 973,936."""
    _check_size("sn_dcgan_discriminator", image_size)
    return ConvDiscriminator(in_channels=in_channels, image_size=image_size, num_classes=num_classes,
                             conditional=conditional, widths=(32, 64, 128), strides=(2, 2, 2),
                             norms=(False, True, True), bias=False, slope=0.2, head="conv")


# Jalil's Table 1 fixes the channels but not the kernels, strides or how z enters. CHOICE,
# to land on the paper's 942,812 (conditional, 100 classes, 32x32x3):
#   G: z as 1x1 -> 4x4 ConvTranspose 128 -> 128 at 4x4 (262,144), then 5x5 stride-2
#      ConvTransposes 128 -> 64 -> 64 -> 32 (DCGAN's TF 5x5 kernels; 204,800 + 102,400 +
#      51,200), each with class BN (2 x 100 x (128+64+64+32) = 57,600) + LeakyReLU(0.2), then
#      a 3x3 conv 32 -> 3 with bias (867) and tanh: 679,011.
#   D: six spectrally normalised 4x4 convs with bias, 3 -> 16 -> 32 -> 32 -> 64 -> 64 -> 128,
#      strides 1, 2, 1, 2, 1, 2 (SN-GAN's alternation; 4x4 throughout as in DCGAN), LeakyReLU
#      (0.1, SN-GAN's), global sum pooling, FC 128 -> 1 (129) + projection V: 100 x 128
#      (12,800): 255,056 + 129 + 12,800 = 267,985.
#   Total 946,996, +0.44 % of the paper's 942,812. Unconditional: G 621,987 (plain BN),
#   D 255,185, total 877,172.
@register("sngan_cbn_generator")
def sngan_cbn_generator(*, in_channels: int, num_classes: int, image_size: int, latent_dim: int = 128,
                        conditional: bool = True) -> Generator:
    """Jalil (aw-SN-GAN, Table 1): z in R^128, ConvTranspose 128/64/64/32 stages with
    conditional BN + LeakyReLU, tanh output (layout and count in the comment above)."""
    _check_size("sngan_cbn_generator", image_size)
    return ConvGenerator(in_channels=in_channels, image_size=image_size, latent_dim=latent_dim,
                         num_classes=num_classes, conditional=conditional, widths=(128, 64, 64, 32),
                         kernel=5, act=lambda: nn.LeakyReLU(0.2), out_conv=True)


@register("sngan_projection_discriminator")
def sngan_projection_discriminator(*, in_channels: int, num_classes: int, image_size: int,
                                   latent_dim: int = 128, conditional: bool = True) -> Discriminator:
    """Jalil (Table 1): SN convs 3 -> 16 -> 32 -> 32 -> 64 -> 64 -> 128, FC to a scalar plus
    the projection y^T V phi(x) when conditional (layout and count in the comment above)."""
    _check_size("sngan_projection_discriminator", image_size)
    return ConvDiscriminator(in_channels=in_channels, image_size=image_size, num_classes=num_classes,
                             conditional=conditional, widths=(16, 32, 32, 64, 64, 128),
                             strides=(1, 2, 1, 2, 1, 2), norms=(False,) * 6, bias=True, slope=0.1,
                             head="fc")


# --------------------------------------------------------------------------- Rzayev
class DenseUpsampleGenerator(Generator):
    """Rzayev's DCGAN generator: dense -> BN/ReLU -> dense -> BN/ReLU -> reshape to s0 x s0 ->
    (nearest upsample x2 -> 5x5 conv) twice, BN/ReLU between, tanh. CCGAN: the one-hot label
    is concatenated to z at the first dense layer, so the class vector is the one-hot itself."""

    def __init__(self, *, in_channels: int, image_size: int, latent_dim: int, num_classes: int,
                 conditional: bool, capacity: int, virtual_bn: bool):
        super().__init__(latent_dim, num_classes, conditional)
        norm = HalfBatchNorm if virtual_bn else None
        hidden, c0, c1 = 128 * capacity, 64 * capacity, 32 * capacity
        self.s0 = math.ceil(image_size / 4)
        self.image_size = image_size
        self.c0 = c0
        cond = num_classes if conditional else 0
        self.dense = nn.Sequential(
            nn.Linear(latent_dim + cond, hidden, bias=False),
            norm(hidden) if norm else nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, c0 * self.s0**2, bias=False),
            norm(c0 * self.s0**2) if norm else nn.BatchNorm1d(c0 * self.s0**2), nn.ReLU(),
        )
        self.convs = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(c0, c1, 5, 1, 2, bias=False),
            norm(c1) if norm else nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(c1, in_channels, 5, 1, 2),
        )

    def embed(self, y: Tensor) -> Tensor:
        return F.one_hot(y, self.num_classes).to(torch.get_default_dtype())

    def forward(self, z: Tensor, y: Tensor | None = None, *, emb: Tensor | None = None) -> Tensor:
        e = self.class_vector(y, emb)
        h = self.dense(torch.cat([z, e.to(z.dtype)], dim=1) if e is not None else z)
        out = self.convs(h.view(-1, self.c0, self.s0, self.s0))
        extra = out.shape[-1] - self.image_size
        if extra:  # sizes not divisible by 4: centre crop of the native 4 * s0
            a = extra // 2
            out = out[:, :, a:a + self.image_size, a:a + self.image_size]
        return torch.tanh(out)


class ConvPoolDiscriminator(Discriminator):
    """Rzayev's discriminator: [5x5 conv -> BN -> ELU] x depth (stride 2 at the first) ->
    [5x5 conv -> BN -> ELU] x depth -> 2x2 max pool -> dense -> ELU -> dense to a score.
    CCGAN: the one-hot label goes through a dense layer to image_size^2 values, reshaped into
    one more input channel."""

    def __init__(self, *, in_channels: int, image_size: int, num_classes: int, conditional: bool,
                 capacity: int, depth: int, virtual_bn: bool):
        super().__init__(num_classes, conditional)
        norm = HalfBatchNorm if virtual_bn else nn.BatchNorm2d
        c1, c2, hidden = 32 * capacity, 64 * capacity, 64 * capacity
        self.image_size = image_size
        self.label_map = nn.Linear(num_classes, image_size**2) if conditional else None
        layers: list[nn.Module] = []
        c = in_channels + (1 if conditional else 0)
        for i in range(2 * depth):
            w = c1 if i < depth else c2
            layers += [nn.Conv2d(c, w, 5, 2 if i == 0 else 1, 2, bias=False), norm(w), nn.ELU()]
            c = w
        layers.append(nn.MaxPool2d(2))
        self.convs = nn.Sequential(*layers)
        side = math.ceil(image_size / 2) // 2
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, hidden), nn.ELU(),
                                   nn.Linear(hidden, 1))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if self.label_map is not None:
            one_hot = F.one_hot(self._labels(y), self.num_classes).to(x.dtype)
            plane = self.label_map(one_hot).view(-1, 1, self.image_size, self.image_size)
            x = torch.cat([x, plane.to(x.dtype)], dim=1)
        return self.dense(self.convs(x)).flatten()


# Rzayev names the layers but not their widths; its generator had ~7 M parameters (the
# Keras-era dense 1024 -> 128x7x7), over this task's budget. CHOICE: widths scaled by the
# capacity multiplier F: G dense 128F, reshape to 64F x s0 x s0, convs 32F and C; D convs
# 32F/64F (depth multiplier D repeats each conv D times), dense 64F. At F = D = 1, 28x28x1:
# G 472,801 (12,800 + 256 + 401,408 + 6,272 + 51,200 + 64 + 801), D 253,025
# (800 + 64 + 51,200 + 128 + 200,768 + 65), total 725,826; conditional (CCGAN, 10 classes)
# G 474,081, D 262,449 (+ label dense 8,624, + 800 for the label channel), total 736,530.
@register("mnist_dcgan_generator")
def mnist_dcgan_generator(*, in_channels: int, num_classes: int, image_size: int, latent_dim: int = 100,
                          conditional: bool = False, capacity: int = 1, virtual_bn: bool = False) -> Generator:
    """Rzayev's DCGAN / CCGAN generator; `capacity` is the paper's F (model.capacity; best: 1),
    `virtual_bn` its half-batch reference normalisation (which it found no better)."""
    _check_size("mnist_dcgan_generator", image_size)
    if capacity < 1:
        raise ConfigError(f"model 'mnist_dcgan_generator': capacity F must be >= 1, got {capacity}")
    return DenseUpsampleGenerator(in_channels=in_channels, image_size=image_size, latent_dim=latent_dim,
                                  num_classes=num_classes, conditional=conditional, capacity=capacity,
                                  virtual_bn=virtual_bn)


@register("mnist_dcgan_discriminator")
def mnist_dcgan_discriminator(*, in_channels: int, num_classes: int, image_size: int, latent_dim: int = 100,
                              conditional: bool = False, capacity: int = 1, depth: int = 1,
                              virtual_bn: bool = False) -> Discriminator:
    """Rzayev's discriminator; `capacity` is F and `depth` is D (model.capacity, model.depth;
    best: both 1)."""
    _check_size("mnist_dcgan_discriminator", image_size)
    if capacity < 1 or depth < 1:
        raise ConfigError(f"model 'mnist_dcgan_discriminator': capacity F and depth D must be >= 1, "
                          f"got {capacity} and {depth}")
    return ConvPoolDiscriminator(in_channels=in_channels, image_size=image_size, num_classes=num_classes,
                                 conditional=conditional, capacity=capacity, depth=depth,
                                 virtual_bn=virtual_bn)

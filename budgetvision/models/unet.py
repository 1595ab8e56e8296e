"""The two denoising U-Nets of the diffusion seeds, registered as `ddpm_dsc_unet` and `vdiffusion_unet`.

Both share one calling convention, so the diffusion objectives never special-case a network:

    net(x, noise_level, labels=None, *, class_emb=None) -> prediction shaped like x

`noise_level` is per sample: t/T in [0, 1) for the discrete DDPM net, the log-SNR for the
v-diffusion net. A conditional net takes either integer `labels` or `class_emb`, a vector from
`net.class_embed(labels)`; passing vectors lets samplers interpolate between classes, and the
label path runs through the very same `class_embed`, so both give identical outputs. Row
`net.null_label` (= num_classes) of the class table is the "no label" of classifier-free
guidance. An unconditional net (conditional=False) has no class table and takes neither.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from budgetvision.errors import ConfigError
from budgetvision.models.layers import DepthwiseSeparable, SelfAttention
from budgetvision.models.registry import register

# Each net's count as its paper gives it, and the input setting it was reported in (checked by
# tests/test_diffusion.py).
PAPER_PARAMS: dict[str, tuple[int, dict]] = {
    "ddpm_dsc_unet": (996_863, dict(in_channels=3, image_size=32, num_classes=100, conditional=True)),
    "vdiffusion_unet": (982_371, dict(in_channels=3, image_size=32, num_classes=100, conditional=True)),
}


class _Conditioned(nn.Module):
    """The class-table half of the calling convention, shared by both U-Nets."""

    num_classes: int
    conditional: bool

    def _init_classes(self, num_classes: int, conditional: bool, dim: int) -> None:
        self.num_classes = num_classes
        self.conditional = conditional
        # One extra row: the null label that classifier-free guidance trains and samples with.
        self.class_table = nn.Embedding(num_classes + 1, dim) if conditional else None

    @property
    def null_label(self) -> int:
        return self.num_classes

    def class_embed(self, labels: Tensor) -> Tensor:
        if self.class_table is None:
            raise ValueError("an unconditional network has no class embedding")
        return self.class_table(labels)

    def _condition(self, labels: Tensor | None, class_emb: Tensor | None) -> Tensor | None:
        if not self.conditional:
            if labels is not None or class_emb is not None:
                raise ValueError("an unconditional network takes no labels or class embeddings")
            return None
        if (labels is None) == (class_emb is None):
            raise ValueError("a conditional network takes exactly one of labels or class_emb")
        return self.class_embed(labels) if class_emb is None else class_emb


def _check_size(name: str, image_size: int, *, minimum: int, multiple: int = 1) -> None:
    if image_size < minimum:
        raise ConfigError(f"model '{name}' needs image_size >= {minimum}, got {image_size}")
    if image_size % multiple:
        raise ConfigError(f"model '{name}' needs image_size divisible by {multiple}, got {image_size}")


# ----------------------------------------------------------------------------- Zavileiskii: DDPM


class DSCResidual(nn.Module):
    """Residual block of two depthwise-separable convs (dw3x3-BN-GELU-pw1x1-BN-GELU, then the
    same ending in BN, linear for the add).

    The sum is scaled by 1/sqrt(2), as in TeaPearce's ResidualConvBlock: skip and branch both
    have about unit variance, so six blocks per level keep the activations' scale instead of
    letting it grow with depth."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            DepthwiseSeparable(channels, channels, act=nn.GELU),
            DepthwiseSeparable(channels, channels, act=nn.GELU, linear_output=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return (x + self.body(x)) / math.sqrt(2.0)


class _LevelDDPM(nn.Sequential):
    """Zavileiskii's "u-net block": `depth` residual blocks at one resolution."""

    def __init__(self, channels: int, depth: int):
        super().__init__(*[DSCResidual(channels) for _ in range(depth)])


class DDPMDSCUNet(_Conditioned):
    """Zavileiskii's conditional U-Net, after TeaPearce's Conditional_Diffusion_MNIST.

    The paper's diagram is lost; its text fixes: residual blocks of depthwise-separable convs,
    "u-net blocks" of 6 repeated residual blocks, skip connections that reduce channels before
    concatenation, and conditioning by multiplying features by a label embedding and adding a
    time embedding (TeaPearce's `cemb * h + temb`, at the two points of the up path where
    TeaPearce injects). Structure (H = image side; c = 62, E = 100):

      stem   conv3x3 in->c, BN, GELU                                       H
      down1  6 DSC res blocks (c)        -> skip1;  maxpool                H -> H/2
      widen  1x1 c->2c, BN, GELU;  6 DSC res blocks (2c) -> skip2; maxpool H/2 -> H/4
      mid    6 DSC res blocks (2c)                                         H/4
      inject h = (1 + class_mlp1(e)) * h + time_mlp1(t)                    (2c)
      up1    convT 2x2 (2c); cat 1x1-reduced skip2 (2c->c); 1x1 3c->2c; 6 blocks      H/2
      inject h = (1 + class_mlp2(e)) * h + time_mlp2(t)                    (2c)
      up2    convT 2x2 (2c->c); cat 1x1-reduced skip1 (c->c/2); 1x1 -> c; 6 blocks   H
      out    cat stem (c); conv3x3 2c->c, BN, GELU; conv3x3 c->in

    CHOICE: the label multiplier is 1 + embedding rather than TeaPearce's bare embedding, so an
    untrained net starts as the unconditioned one instead of one that zeroes its features.
    CHOICE: time enters as the scalar t/T through a 2-layer MLP (TeaPearce's EmbedFC); the paper
    lists sinusoidal embeddings as an improvement it did not make.
    Two poolings: 16, 28 and 32 all divide by 4 (8/4, 14/7, 16/8), so no padding is needed.
    Count at 32x32x3, 100 classes, conditional: 995,838 (paper 996,863, -0.10 %); c and E are
    the free widths, set to land on the paper's count.
    """

    def __init__(self, in_channels: int, num_classes: int, conditional: bool, *,
                 width: int = 62, depth: int = 6, embed_dim: int = 100):
        super().__init__()
        c, c2 = width, 2 * width
        self._init_classes(num_classes, conditional, embed_dim)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                                  nn.GELU())
        self.down1 = _LevelDDPM(c, depth)
        self.widen = nn.Sequential(nn.Conv2d(c, c2, 1, bias=False), nn.BatchNorm2d(c2), nn.GELU())
        self.down2 = _LevelDDPM(c2, depth)
        self.mid = _LevelDDPM(c2, depth)
        self.time_mlp1, self.time_mlp2 = self._time_mlp(embed_dim, c2), self._time_mlp(embed_dim, c2)
        self.class_mlp1 = self._class_mlp(embed_dim, c2) if conditional else None
        self.class_mlp2 = self._class_mlp(embed_dim, c2) if conditional else None
        self.up1 = nn.ConvTranspose2d(c2, c2, 2, stride=2)
        self.skip2 = nn.Conv2d(c2, c, 1)           # the paper's channel-reducing skip
        self.merge1 = nn.Sequential(nn.Conv2d(c2 + c, c2, 1, bias=False), nn.BatchNorm2d(c2), nn.GELU())
        self.dec1 = _LevelDDPM(c2, depth)
        self.up2 = nn.ConvTranspose2d(c2, c, 2, stride=2)
        self.skip1 = nn.Conv2d(c, c // 2, 1)
        self.merge2 = nn.Sequential(nn.Conv2d(c + c // 2, c, 1, bias=False), nn.BatchNorm2d(c), nn.GELU())
        self.dec2 = _LevelDDPM(c, depth)
        self.out = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.GELU(),
                                 nn.Conv2d(c, in_channels, 3, padding=1))

    @staticmethod
    def _time_mlp(dim: int, channels: int) -> nn.Module:
        return nn.Sequential(nn.Linear(1, dim), nn.GELU(), nn.Linear(dim, channels))

    @staticmethod
    def _class_mlp(dim: int, channels: int) -> nn.Module:
        # The class table is EmbedFC's first Linear applied to a one-hot; this is the rest.
        return nn.Sequential(nn.GELU(), nn.Linear(dim, channels))

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None, *,
                class_emb: Tensor | None = None) -> Tensor:
        e = self._condition(labels, class_emb)
        t = t.to(x.dtype).reshape(-1, 1)
        stem = self.stem(x)
        skip1 = self.down1(stem)
        skip2 = self.down2(self.widen(F.max_pool2d(skip1, 2)))
        h = self.mid(F.max_pool2d(skip2, 2))
        h = self._inject(h, t, e, self.time_mlp1, self.class_mlp1)
        h = self.dec1(self.merge1(torch.cat([self.up1(h), self.skip2(skip2)], 1)))
        h = self._inject(h, t, e, self.time_mlp2, self.class_mlp2)
        h = self.dec2(self.merge2(torch.cat([self.up2(h), self.skip1(skip1)], 1)))
        return self.out(torch.cat([h, stem], 1))

    @staticmethod
    def _inject(h: Tensor, t: Tensor, e: Tensor | None, time_mlp: nn.Module, class_mlp: nn.Module | None) -> Tensor:
        if e is not None:
            h = h * (1 + class_mlp(e)[:, :, None, None])
        return h + time_mlp(t)[:, :, None, None]


@register("ddpm_dsc_unet")
def ddpm_dsc_unet(*, in_channels: int, num_classes: int, image_size: int,
                  conditional: bool = False) -> DDPMDSCUNet:
    _check_size("ddpm_dsc_unet", image_size, minimum=8, multiple=4)  # two unpadded poolings
    return DDPMDSCUNet(in_channels, num_classes, conditional)


# ---------------------------------------------------------------------- Anonymous: v-diffusion


def sinusoidal_embedding(x: Tensor, dim: int, min_freq: float = 1 / 16, max_freq: float = 4.0) -> Tensor:
    """sin/cos of x (B,) at `dim // 2` geometric angular frequencies, (B, dim); no parameters.

    CHOICE: frequencies 1/16..4 rad per unit suit a log-SNR in [-20, 20]: the slowest wave is
    unambiguous over that whole range and the fastest resolves a quarter of a unit."""
    half = dim // 2
    freqs = torch.exp(torch.linspace(math.log(min_freq), math.log(max_freq), half, device=x.device))
    angles = x.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _groups(channels: int) -> int:
    return math.gcd(8, channels)


class DSCResBlock(nn.Module):
    """Pre-norm residual block of two depthwise-separable convs: (GN, SiLU, dw3x3, pw1x1) x 2,
    a 1x1 on the skip when the width changes (after a decoder's concatenation).

    With `embed_dim`, the block also reads the (time + class) embedding the way ADM's res blocks do
    (Dhariwal & Nichol 2021, "AdaGN"): the second GroupNorm's output is scaled by 1 + s and shifted
    by b, (s, b) = Linear(embedding)."""

    def __init__(self, c_in: int, c_out: int, embed_dim: int = 0):
        super().__init__()

        def dsc(a: int, b: int) -> list[nn.Module]:
            return [nn.GroupNorm(_groups(a), a), nn.SiLU(), nn.Conv2d(a, a, 3, padding=1, groups=a),
                    nn.Conv2d(a, b, 1)]

        self.body = nn.Sequential(*dsc(c_in, c_out), *dsc(c_out, c_out))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False)
        self.embed = nn.Linear(embed_dim, 2 * c_out) if embed_dim else None

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        if self.embed is None:
            return self.skip(x) + self.body(x)
        if emb is None:
            raise ValueError("this block reads the embedding: pass it")
        h = self.body[4](self.body[:4](x))                       # up to and through the second norm
        scale, shift = self.embed(emb).to(h.dtype)[:, :, None, None].chunk(2, dim=1)
        return self.skip(x) + self.body[5:](h * (1 + scale) + shift)


def _through(stage: nn.Sequential, h: Tensor, emb: Tensor) -> Tensor:
    """A stage's modules in order, the embedding passed to the res blocks that read it."""
    for m in stage:
        h = m(h, emb) if isinstance(m, DSCResBlock) and m.embed is not None else m(h)
    return h


class SpatialAttention(nn.Module):
    """Pre-norm multi-head self-attention over the H*W positions of a feature map, residual."""

    def __init__(self, channels: int, head_dim: int = 32):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        # As many heads of about head_dim channels as divide the width evenly.
        heads = next(h for h in range(max(1, channels // head_dim), 0, -1) if channels % h == 0)
        self.attn = SelfAttention(channels, heads)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)
        return x + self.attn(tokens).transpose(1, 2).reshape(b, c, h, w)


class Injection(nn.Module):
    """Adds the (time + class) embedding to every position, then a regular 3x3 conv (pre-norm,
    residual).

    The regular conv is the anonymous paper's fix for wave-like artefacts: a depthwise conv right after the
    injection would see each channel's added constant alone, never mixing it across channels."""

    def __init__(self, embed_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(embed_dim, channels)
        self.conv = nn.Sequential(nn.GroupNorm(_groups(channels), channels), nn.SiLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        h = h + self.proj(emb)[:, :, None, None].to(h.dtype)
        return h + self.conv(h)


class VDiffusionUNet(_Conditioned):
    """The anonymous paper's "modernised conditional U-Net with self-attention" (after Crowson's CIFAR-10
    v-diffusion net), its standard convs mostly replaced by depthwise-separable ones.

    Structure (c = 32, widths c, 2c, 4c, 4c at H, H/2, H/4, H/8; E = 160):
      emb    e = MLP(sinusoidal(log_snr, 96)) + class_table[label]          (E)
      stem   conv3x3 in->c;  injection 1: + proj(e), regular conv3x3 c->c    H
      enc    per level: 2 DSC res blocks (+ self-attention at H/4), then avgpool to the next
      mid    res block, attention, injection 2 (+ proj(e), regular conv3x3 4c->4c), res block,
             attention                                                        H/8
      dec    per level: upsample x2, concat the encoder's skip, 2 DSC res blocks (+ attention at H/4)
      out    GN, SiLU, conv3x3 c->in
    Self-attention only at H/4 and H/8 (8x8 and 4x4 at CIFAR size): the "low resolutions"
    where 64 or 16 tokens keep it cheap. GroupNorm rather than BatchNorm: the log-SNR varies
    across a batch, so batch statistics would mix noise levels.
    Three poolings need a side divisible by 8: 16 and 32 are; 28 (MNIST) is zero-padded to 32
    inside forward() and cropped back, which keeps MNIST at CIFAR's level structure.
    Count at 32x32x3, 100 classes, conditional: 981,891 (paper 982,371, -0.05 %); c and E are
    the free widths, set to land on the paper's count. CHOICE: no dropout (Crowson's net has 0.1;
    the paper names none).
    """

    def __init__(self, in_channels: int, num_classes: int, conditional: bool, *,
                 width: int = 32, mults: tuple[int, ...] = (1, 2, 4, 4), blocks: int = 2,
                 attn_from: int = 2, embed_dim: int = 160, time_dim: int = 96, block_embed: bool = False):
        super().__init__()
        self._init_classes(num_classes, conditional, embed_dim)
        self.levels = len(mults) - 1
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        widths = [width * m for m in mults]
        block_dim = embed_dim if block_embed else 0   # 0: the paper's net, the embedding injected twice only
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.inject_in = Injection(embed_dim, widths[0])
        self.encoder = nn.ModuleList()
        for i, w in enumerate(widths[:-1]):
            stage: list[nn.Module] = []
            for b in range(blocks):
                stage.append(DSCResBlock(widths[i - 1] if (b == 0 and i > 0) else w, w, block_dim))
                if i >= attn_from:
                    stage.append(SpatialAttention(w))
            self.encoder.append(nn.Sequential(*stage))
        bottom = widths[-1]
        self.mid_in = nn.Sequential(DSCResBlock(widths[-2], bottom, block_dim), SpatialAttention(bottom))
        self.inject_mid = Injection(embed_dim, bottom)
        self.mid_out = nn.Sequential(DSCResBlock(bottom, bottom, block_dim), SpatialAttention(bottom))
        self.decoder = nn.ModuleList()
        c_prev = bottom
        for i in reversed(range(self.levels)):
            w = widths[i]
            stage = []
            for b in range(blocks):
                stage.append(DSCResBlock(c_prev + w if b == 0 else w, w, block_dim))
                if i >= attn_from:
                    stage.append(SpatialAttention(w))
            self.decoder.append(nn.Sequential(*stage))
            c_prev = w
        self.out = nn.Sequential(nn.GroupNorm(_groups(widths[0]), widths[0]), nn.SiLU(),
                                 nn.Conv2d(widths[0], in_channels, 3, padding=1))

    def forward(self, x: Tensor, log_snr: Tensor, labels: Tensor | None = None, *,
                class_emb: Tensor | None = None) -> Tensor:
        e = self.time_mlp(sinusoidal_embedding(log_snr.reshape(-1), self.time_dim).to(x.dtype))
        cond = self._condition(labels, class_emb)
        if cond is not None:
            e = e + cond.to(e.dtype)
        size = x.shape[-1]
        pad = (-size) % (2 ** self.levels)
        if pad:
            x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
        h = self.inject_in(self.stem(x), e)
        skips = []
        for stage in self.encoder:
            h = _through(stage, h, e)
            skips.append(h)
            h = F.avg_pool2d(h, 2)
        h = _through(self.mid_out, self.inject_mid(_through(self.mid_in, h, e), e), e)
        for stage in self.decoder:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = _through(stage, torch.cat([h, skips.pop()], 1), e)
        h = self.out(h)
        if pad:
            h = h[..., pad // 2: pad // 2 + size, pad // 2: pad // 2 + size]
        return h


@register("vdiffusion_unet")
def vdiffusion_unet(*, in_channels: int, num_classes: int, image_size: int,
                    conditional: bool = False) -> VDiffusionUNet:
    _check_size("vdiffusion_unet", image_size, minimum=8)  # any other side is padded to a multiple of 8
    return VDiffusionUNet(in_channels, num_classes, conditional)


@register("vdiffusion_unet_compact")
def vdiffusion_unet_compact(*, in_channels: int, num_classes: int, image_size: int,
                            conditional: bool = False) -> VDiffusionUNet:
    """budgetvision's own: the anonymous paper's U-Net cut to two poolings for 28x28 digits (widths 32, 64, 128
    at 28, 14, 7; attention only in the 7x7 middle). 28 is divisible by 4, so nothing is padded, and
    the net costs about half a step of the full one on a CPU. Count at 28x28x1, 10 classes,
    conditional: 508,097."""
    _check_size("vdiffusion_unet_compact", image_size, minimum=4)
    return VDiffusionUNet(in_channels, num_classes, conditional, mults=(1, 2, 4))


@register("vdiffusion_unet_compact_adagn")
def vdiffusion_unet_compact_adagn(*, in_channels: int, num_classes: int, image_size: int,
                                  conditional: bool = False) -> VDiffusionUNet:
    """budgetvision's own: vdiffusion_unet_compact whose every res block also reads the (time + class)
    embedding through ADM's AdaGN (a scale and shift after its second GroupNorm), where the paper's
    net injects it at two points only. Count at 28x28x1, 10 classes, conditional: see the tests."""
    _check_size("vdiffusion_unet_compact_adagn", image_size, minimum=4)
    return VDiffusionUNet(in_channels, num_classes, conditional, mults=(1, 2, 4), block_embed=True)

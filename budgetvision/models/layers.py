"""Building blocks shared by several networks, each written once.

Convolutions that feed a BatchNorm carry no bias: the norm's shift makes it redundant, and
the papers' parameter counts only come out right without it.
"""
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from budgetvision.models.registry import register_fitted

Activation = Callable[[], nn.Module]


@contextmanager
def eval_mode(network: nn.Module) -> Iterator[nn.Module]:
    """`network` in eval mode inside the block, back in the mode it was in after it (an exception
    included): evaluation and sampling read BatchNorm's running statistics, so an image never
    depends on the others in its batch, and training goes on as it was."""
    was_training = network.training
    network.eval()
    try:
        yield network
    finally:
        network.train(was_training)


class ConvBNAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation; `act=None` leaves the output linear (the last
    layer of a residual branch, which is activated only after the skip is added)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: Activation | None = nn.ReLU,
    ):
        layers: list[nn.Module] = [
            # "same" padding for odd kernels, so resolution only changes through stride.
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class DepthwiseSeparable(nn.Sequential):
    """MobileNet's factorised 3x3 conv: depthwise 3x3 (+BN+act), then pointwise 1x1 (+BN+act).

    `groups` splits the pointwise conv into independent groups, which runs several
    per-channel towers as one layer (depthwise convs never mix channels anyway).
    `linear_output=True` drops the last activation, for a residual add.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        act: Activation = nn.ReLU,
        groups: int = 1,
        linear_output: bool = False,
    ):
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, act=act),
            ConvBNAct(in_channels, out_channels, 1, groups=groups,
                      act=None if linear_output else act),
        )


class SwiGLU(nn.Module):
    """Gated MLP of Shazeer (2020), as in LLaMA: W2 (silu(x W1) * x W3), no biases."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        # One matmul for both the gate and the value halves.
        self.w13 = nn.Linear(dim, 2 * hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.w13(x).chunk(2, dim=-1)
        return self.w2(F.silu(gate) * value)


class SelfAttention(nn.Module):
    """Multi-head self-attention over tokens (B, N, D), bias-free as in LLaMA."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # Attention stays fp32 under the CPU's bf16 autocast: torch's CPU flash attention ran its
            # backward 8x slower in bf16 (dsc_transformer's 256 x 4 heads x 64 tokens x 16: 140 against
            # 17 ms, over half the bf16 step) while the Linears around it ran 2-3x faster.
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """Pre-norm encoder layer, LLaMA flavour: RMSNorm, no dropout, SwiGLU MLP."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int):
        super().__init__()
        self.norm1 = nn.RMSNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.RMSNorm(dim)
        self.mlp = SwiGLU(dim, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def fourier_positions_2d(height: int, width: int, dim: int, *, device=None,
                         dtype=None) -> torch.Tensor:
    """Fixed 2-D sin/cos position codes (height*width, dim), row-major like `flatten(2)`.

    Half the channels encode the row, half the column, each as sin/cos pairs at geometric
    frequencies (Vaswani et al. 2017, extended to 2-D as in MAE). Being computed from the
    grid, they fit any resolution and cost no parameters.
    """
    if dim % 4:
        raise ValueError(f"2-D Fourier positions need dim divisible by 4, got {dim}")
    quarter = dim // 4
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(quarter, device=device) / quarter)
    rows = torch.arange(height, device=device)[:, None] * freqs          # (H, dim/4)
    cols = torch.arange(width, device=device)[:, None] * freqs           # (W, dim/4)
    row_code = torch.cat([rows.sin(), rows.cos()], dim=1)[:, None, :].expand(height, width, -1)
    col_code = torch.cat([cols.sin(), cols.cos()], dim=1)[None, :, :].expand(height, width, -1)
    return torch.cat([row_code, col_code], dim=2).reshape(height * width, dim).to(dtype)


class PatchWhitening(nn.Module):
    """airbench's first layer (Jordan 2024, after tysam-code's hlb-CIFAR10): a frozen `size` x `size`
    convolution (no padding) whose filters whiten the image's patches, each filter followed by its
    negation so a GELU after it keeps both signs: 2 * C * size**2 output channels.

    The filters are the eigenvectors of the (uncentred) covariance of the training images' patches,
    each divided by sqrt(eigenvalue + eps), so the outputs have unit variance along every patch
    direction from the first step. They are set from data by `init_from_data` (the training loop
    calls it with normalised training images before the first step) and kept as a fitted buffer:
    not trained, saved in checkpoints, and counted against the parameter budget like any number
    learned from the training data (registry.register_fitted). The bias is trained.
    Until then the filters are those that whiten white noise (covariance I): each picks out one
    pixel of the patch, scaled by 1 / sqrt(1 + eps), so an uninitialised layer is still a
    faithful function of its input."""

    def __init__(self, in_channels: int, size: int = 2, eps: float = 5e-4):
        super().__init__()
        self.size, self.eps = size, eps
        dims = in_channels * size * size
        pixels = (torch.eye(dims) / (1 + eps) ** 0.5).reshape(dims, in_channels, size, size)
        # All 2 * dims**2 stored values count (288 at 3 channels), the negated half too, as the
        # weights of a trained conv in its place would.
        register_fitted(self, "weight", torch.cat([pixels, -pixels]))
        self.bias = nn.Parameter(torch.zeros(2 * dims))

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        patches = F.unfold(x.float(), self.size).transpose(1, 2).reshape(-1, self.weight.shape[0] // 2)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance.double())    # columns, ascending
        filters = (eigenvectors / torch.sqrt(eigenvalues + self.eps)).T.float()   # one filter per row
        filters = filters.flip(0).reshape(-1, *self.weight.shape[1:])         # largest variance first
        self.weight.copy_(torch.cat([filters, -filters]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Always in fp32, autocast or not: the filters of the smallest-variance directions are large
        # (|w| up to ~16 on CIFAR at eps 5e-4) and their outputs are differences of nearly equal
        # products, so bf16's 8-bit mantissa left the four highest-frequency channels of CIFAR-10-JPEG
        # with 14-17 % rms relative error (fp32 stem: exact). A 2x2 conv of 12 -> 24 channels: cheap.
        # It did not buy back bf16's accuracy cost on cifar100-speedrun-convnet, though (that preset's
        # comment): the stem was not where bf16 lost it.
        with torch.autocast(x.device.type, enabled=False):
            return F.conv2d(x.float(), self.weight, self.bias).to(x.dtype)


def _inputs_to_fp32(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def norms_in_fp32(network: nn.Module) -> int:
    """Every BatchNorm of `network` normalises in fp32 under autocast (train.amp_fp32_norms): a forward
    pre-hook casts its input up, so its batch statistics and output are fp32, and the next conv casts
    back down (autocast leaves BatchNorm in its input's dtype). Returns the number of layers hooked."""
    hooked = 0
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(_inputs_to_fp32)
            hooked += 1
    return hooked


def init_from_data(network: nn.Module, x: torch.Tensor) -> bool:
    """Data-dependent initialisation: every submodule with `init_from_data(x)` is set from the
    normalised training images `x`, in module order. True when any was."""
    found = False
    for module in network.modules():
        if module is not network and hasattr(module, "init_from_data"):
            module.init_from_data(x)
            found = True
    return found


def translated(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """x with its content moved dx pixels right and dy down (negative: left, up), the uncovered
    border filled by reflection: the shifted views of `ViewAveraged` and benchmarks/tta_screen.py."""
    if dx == dy == 0:
        return x
    s, (h, w) = max(abs(dx), abs(dy)), x.shape[-2:]
    padded = F.pad(x, (s, s, s, s), mode="reflect")
    return padded[..., s - dy:s - dy + h, s - dx:s - dx + w]


class ViewAveraged(nn.Module):
    """A classifier evaluated on several views of each image, as airbench does: the mean logits of
    the image and its mirror (`flip`); with `shift`, two copies translated by `shift` pixels
    down-right and up-left (reflected borders), each flip-averaged in turn, share `shift_weight` of
    the mean equally and the image keeps the rest (airbench: 1/2, 1/4, 1/4). For evaluation only;
    `features` passes through."""

    def __init__(self, network: nn.Module, flip: bool = True, shift: int = 0, shift_weight: float = 0.5):
        super().__init__()
        self.network = network
        self.flip = flip
        self.shift = shift
        self.shift_weight = shift_weight
        self.train(network.training)   # a wrapper of an eval-mode network is in eval mode

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.features(x)

    def _mirrored(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.network(x) + self.network(x.flip(-1))) if self.flip else self.network(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self._mirrored(x)
        if not self.shift:
            return logits
        s = self.shift
        down_right, up_left = translated(x, s, s), translated(x, -s, -s)
        w = self.shift_weight
        return (1 - w) * logits + w / 2 * (self._mirrored(down_right) + self._mirrored(up_left))


class _GatherOverRanks(torch.autograd.Function):
    """(ranks, *x.shape): every rank's x, on every rank. Every rank's loss depends on all of them, so
    the gradient of a rank's x is the sum over the ranks of the gradients of its row."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rows = [torch.empty_like(x) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(rows, x.contiguous())
        return torch.stack(rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)
        return grad[torch.distributed.get_rank()]


class SyncedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of a torchrun group: in training each rank's batch mean and
    sum of squared deviations are gathered from every rank and combined (Chan et al.'s parallel
    variance, as torch.nn.SyncBatchNorm does; free of the cancellation in E[x^2] - E[x]^2), and
    gradients flow back through the gathering, so B/N images on each of N processes normalise as B
    images on one and the running statistics stay equal on every rank. torch.nn.SyncBatchNorm does
    this on GPUs only (it has no CPU kernel); this one runs on Gloo and NCCL alike. On one process,
    and in evaluation, it is plain BatchNorm."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"SyncedBatchNorm expects (B, C, ...) input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1):
            return super().forward(x)
        c, dims = x.shape[1], [0, *range(2, x.dim())]
        shape = (1, c) + (1,) * (x.dim() - 2)
        xf = x.float()
        local_mean = xf.mean(dims)
        local_m2 = (xf - local_mean.view(shape)).pow(2).sum(dims)
        parts = _GatherOverRanks.apply(torch.cat([local_mean, local_m2, xf.new_full((1,), x.numel() // c)]))
        counts, means, m2s = parts[:, -1:], parts[:, :c], parts[:, c:2 * c]
        n = counts.sum()
        mean = (counts * means).sum(0) / n
        var = (m2s.sum(0) + (counts * (means - mean).pow(2)).sum(0)) / n   # biased, as BatchNorm normalises
        out = (xf - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * (n / (n - 1)), factor)   # unbiased, as BatchNorm keeps
        return out.to(x.dtype)


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """Every plain BatchNorm1d/2d/3d inside `module` replaced, in place, by a SyncedBatchNorm that
    shares its parameters and buffers (state_dict keys unchanged). Subclasses are left alone: seed
    004's HalfBatchNorm normalises by a reference of its own."""
    for name, child in module.named_children():
        if type(child) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
            synced = SyncedBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats, device=None)
            for key in ("weight", "bias"):
                setattr(synced, key, getattr(child, key))
            for key in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(synced, key, getattr(child, key))
            synced.train(child.training)
            setattr(module, name, synced)
        else:
            sync_batchnorm(child)
    return module

"""Batched, on-device augmentations of a float batch x in [0, 1], shape (B, C, H, W), C in {1, 3}.

Each op draws its per-sample randomness from the torch.Generator it is given (on x's device), so a
batch is reproducible from the generator's state alone. Every op returns a tensor of the same
shape and dtype with values still in [0, 1] (x itself when the op is a no-op). Units: padding, sizes and translations in pixels;
probabilities in [0, 1]; strengths as fractions of the identity factor 1.

RandAugment and TrivialAugment-Wide use torchvision.transforms.v2.functional: samples that drew the
same (op, sign) share one call, so a batch costs a few dozen calls, not one per sample.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ..errors import ConfigError

_NEAREST = InterpolationMode.NEAREST   # what torchvision's RandAugment / TrivialAugment use


def _uniform(n: int, lo: float, hi: float, x: Tensor, g: torch.Generator) -> Tensor:
    return torch.rand(n, generator=g, device=x.device, dtype=x.dtype) * (hi - lo) + lo


def _mask(n: int, p: float, x: Tensor, g: torch.Generator) -> Tensor:
    """(n, 1, 1, 1) bool, True with probability p; always draws, so the stream does not depend on p."""
    return (torch.rand(n, generator=g, device=x.device) < p).view(n, 1, 1, 1)


def random_crop(x: Tensor, padding: int, g: torch.Generator, *, mode: str = "zero", p: float = 1.0) -> Tensor:
    """Pad by `padding` pixels on every side, then take an H x W window at a per-sample offset.

    mode "zero" (torchvision RandomCrop's default fill) or "reflect" (airbench). A sample is
    cropped with probability p, else left centred (unchanged)."""
    if padding <= 0:
        return x
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4, mode="constant" if mode == "zero" else "reflect")
    off = torch.randint(0, 2 * padding + 1, (2, b), generator=g, device=x.device)
    off = torch.where(_mask(b, p, x, g).view(1, b), off, padding)
    rows = (off[0, :, None] + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (off[1, :, None] + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    # one gather: sample i reads padded[i, :, rows_i, cols_i]
    return padded[torch.arange(b, device=x.device).view(b, 1, 1, 1), torch.arange(c, device=x.device).view(1, c, 1, 1),
                  rows, cols]


def random_affine(x: Tensor, degrees: float, scale: float, shift: float, g: torch.Generator, *,
                  per_channel: bool = False) -> Tensor:
    """Rotate by U(-degrees, degrees) (anticlockwise positive, as torchvision), zoom by U(1 - scale, 1 + scale) and translate by U(-shift, shift)
    pixels along each axis, about the image centre, bilinear, zeros outside the image (the classic
    MNIST distortions). `per_channel` draws every channel its own transform (AddNIST's three
    channels are three unrelated digits)."""
    if not (degrees or scale or shift):
        return x
    b, c, h, w = x.shape
    planes = x.reshape(b * c, 1, h, w) if per_channel else x
    n = len(planes)
    angle = _uniform(n, -degrees, degrees, x, g) * (math.pi / 180)
    zoom = _uniform(n, 1 - scale, 1 + scale, x, g)
    # affine_grid maps output to input coordinates in [-1, 1]: the inverse transform, translation in
    # half-widths (2 / size per pixel)
    tx, ty = _uniform(n, -shift, shift, x, g) * (2 / w), _uniform(n, -shift, shift, x, g) * (2 / h)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    inverse = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)   # (n, 2, 2)
    offset = -inverse @ torch.stack([tx, ty], 1).unsqueeze(-1)          # input = inverse (output - t)
    theta = torch.cat([inverse, offset], dim=2)
    grid = torch.nn.functional.affine_grid(theta, list(planes.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(planes, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(b, c, h, w)


def mirror(x: Tensor, where: Tensor, dim: int = -1) -> Tensor:
    """x with the samples where `where` (one bool per sample) is True mirrored along `dim`."""
    return torch.where(where.view(-1, *[1] * (x.ndim - 1)), x.flip(dim), x)


def hflip(x: Tensor, p: float, g: torch.Generator) -> Tensor:
    """Mirror left-right with probability p per sample."""
    return mirror(x, _mask(len(x), p, x, g))


def vflip(x: Tensor, p: float, g: torch.Generator) -> Tensor:
    """Mirror top-bottom with probability p per sample."""
    return mirror(x, _mask(len(x), p, x, g), dim=-2)


def _grey(x: Tensor) -> Tensor:
    """(B, 1, H, W) luma (ITU-R 601, as torchvision); grey images are their own luma."""
    if x.shape[1] == 1:
        return x
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def color_jitter(x: Tensor, brightness: float, contrast: float, saturation: float, g: torch.Generator) -> Tensor:
    """Per-sample brightness, contrast and saturation factors, each uniform in [max(0, 1 - s), 1 + s].

    Same factor ranges as torchvision's ColorJitter, applied in that fixed order. Saturation only
    changes 3-channel images (its random draw is still made, so the stream does not depend on C)."""
    b = len(x)
    shape = (b, 1, 1, 1)
    fb = _uniform(b, max(0.0, 1 - brightness), 1 + brightness, x, g).view(shape)
    fc = _uniform(b, max(0.0, 1 - contrast), 1 + contrast, x, g).view(shape)
    fs = _uniform(b, max(0.0, 1 - saturation), 1 + saturation, x, g).view(shape)
    if brightness > 0:
        x = (x * fb).clamp(0, 1)
    if contrast > 0:
        m = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
        x = (m + fc * (x - m)).clamp(0, 1)
    if saturation > 0 and x.shape[1] == 3:
        gy = _grey(x)
        x = (gy + fs * (x - gy)).clamp(0, 1)
    return x


def gaussian_noise(x: Tensor, std: float, p: float, g: torch.Generator) -> Tensor:
    """Add N(0, std^2) noise (std in [0, 1] pixel units: 0.1 = a tenth of full range) with probability p, clamped.

    A paper's "variance v" is std = sqrt(v)."""
    noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return torch.where(_mask(len(x), p, x, g), (x + std * noise).clamp(0, 1), x)


def cutout(x: Tensor, size: int, g: torch.Generator) -> Tensor:
    """Zero one size x size pixel square per sample (DeVries & Taylor 2017); its centre is uniform
    over the image, so the square may be partly outside it."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b, 1), generator=g, device=x.device)
    cx = torch.randint(0, w, (b, 1), generator=g, device=x.device)
    y0, x0 = cy - size // 2, cx - size // 2
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    inside_y = (ys >= y0) & (ys < y0 + size)               # (B, H)
    inside_x = (xs >= x0) & (xs < x0 + size)               # (B, W)
    hole = (inside_y[:, :, None] & inside_x[:, None, :]).unsqueeze(1)
    return x.masked_fill(hole, 0.0)


# ---------------------------------------------------------------- RandAugment / TrivialAugment-Wide

_OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
        "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
_SIGNED = frozenset({"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
                     "Contrast", "Sharpness"})
NUM_BINS = 31   # magnitude bins 0..30, torchvision's default


def _magnitude(op: str, bin_: int, h: int, w: int, wide: bool) -> float:
    """torchvision's augmentation spaces: RandAugment (wide=False) and TrivialAugmentWide (wide=True)."""
    t = bin_ / (NUM_BINS - 1)
    if op in ("ShearX", "ShearY"):
        return t * (0.99 if wide else 0.3)                      # shear as tan(angle)
    if op == "TranslateX":
        return t * (32.0 if wide else 150.0 / 331.0 * w)        # pixels
    if op == "TranslateY":
        return t * (32.0 if wide else 150.0 / 331.0 * h)
    if op == "Rotate":
        return t * (135.0 if wide else 30.0)                    # degrees
    if op in ("Brightness", "Color", "Contrast", "Sharpness"):
        return t * (0.99 if wide else 0.9)                      # factor - 1
    if op == "Posterize":
        return float(int(round(8 - bin_ / ((NUM_BINS - 1) / (6 if wide else 4)))))  # bits kept
    if op == "Solarize":
        return 1.0 - t                                          # threshold, [0, 1] pixel units
    return 0.0


def _apply(op: str, x: Tensor, m: float) -> Tensor:
    """One op on a group of images with magnitude m (already signed), as torchvision's auto-augment does."""
    if op == "Identity":
        return x
    if op == "ShearX":
        return TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0, shear=[math.degrees(math.atan(m)), 0.0],
                         interpolation=_NEAREST, center=[0, 0])
    if op == "ShearY":
        return TF.affine(x, angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, math.degrees(math.atan(m))],
                         interpolation=_NEAREST, center=[0, 0])
    if op == "TranslateX":
        return TF.affine(x, angle=0.0, translate=[int(m), 0], scale=1.0, shear=[0.0, 0.0], interpolation=_NEAREST)
    if op == "TranslateY":
        return TF.affine(x, angle=0.0, translate=[0, int(m)], scale=1.0, shear=[0.0, 0.0], interpolation=_NEAREST)
    if op == "Rotate":
        return TF.rotate(x, m, interpolation=_NEAREST)
    if op == "Brightness":
        return TF.adjust_brightness(x, 1.0 + m)
    if op == "Color":
        return TF.adjust_saturation(x, 1.0 + m)                 # a no-op on grey images, as in PIL
    if op == "Contrast":
        return TF.adjust_contrast(x, 1.0 + m)
    if op == "Sharpness":
        return TF.adjust_sharpness(x, 1.0 + m)
    if op == "Posterize":
        return TF.posterize(x, int(m))
    if op == "Solarize":
        return TF.solarize(x, m)
    if op == "AutoContrast":
        return TF.autocontrast(x)
    if op == "Equalize":
        return TF.equalize(x)
    raise ValueError(f"unknown op {op}")


def _grouped(x: Tensor, g: torch.Generator, bins: Tensor, wide: bool) -> Tensor:
    """One auto-augment layer: each sample draws an op and a sign; samples with the same (op, sign)
    are transformed together. `bins` holds each sample's magnitude bin; a group uses its first
    sample's bin (only TrivialAugment varies it)."""
    b, _, h, w = x.shape
    op_idx = torch.randint(0, len(_OPS), (b,), generator=g, device=x.device)
    sign = torch.randint(0, 2, (b,), generator=g, device=x.device)
    signed = torch.tensor([op in _SIGNED for op in _OPS], device=x.device)
    # one host sync per layer to form the groups; the ops themselves stay on the device
    key = (op_idx * 2 + sign * signed[op_idx]).cpu()
    bins = bins.cpu()
    out = x.clone()
    for k in key.unique().tolist():
        op = _OPS[k // 2]
        if op == "Identity":
            continue
        members = (key == k).nonzero().squeeze(1)
        m = _magnitude(op, int(bins[members[0]]), h, w, wide)
        if k % 2:
            m = -m
        idx = members.to(x.device)   # index_select / index_copy_: a gather, not per-element indexing
        out.index_copy_(0, idx, _apply(op, x.index_select(0, idx), m).clamp(0, 1))
    return out


def rand_augment(x: Tensor, num_ops: int, magnitude: int, g: torch.Generator) -> Tensor:
    """RandAugment (Cubuk et al. 2019) with torchvision's 14 ops and magnitude scale 0..30: num_ops
    layers, each applying one uniformly chosen op per sample at the fixed magnitude, random sign."""
    if not 0 <= magnitude < NUM_BINS:
        raise ValueError(f"RandAugment magnitude must be in 0..{NUM_BINS - 1}, got {magnitude}")
    bins = torch.full((len(x),), magnitude, dtype=torch.int64)
    for _ in range(num_ops):
        x = _grouped(x, g, bins, wide=False)
    return x


def trivial_augment(x: Tensor, g: torch.Generator) -> Tensor:
    """TrivialAugment-Wide (Müller & Hutter 2021): one uniformly chosen op per sample with a random
    magnitude bin and sign. Samples that drew the same (op, sign) in a batch share one magnitude
    (that of the group's first sample), the price of one torchvision call per group."""
    bins = torch.randint(0, NUM_BINS, (len(x),), generator=g, device=x.device)
    return _grouped(x, g, bins, wide=True)


# ---------------------------------------------------------------- builder

_DEFAULTS = {
    "crop": 0,                    # random-crop padding, pixels (0 = off)
    "crop_p": 1.0,                # probability a sample is cropped (Zavileiskii uses 0.7)
    "crop_mode": "zero",          # padding: "zero" (torchvision RandomCrop) or "reflect" (airbench)
    "rotate": 0.0,                # random affine: rotation range, degrees
    "scale": 0.0,                 # random affine: zoom range, fraction (0.1 -> 0.9..1.1)
    "shift": 0.0,                 # random affine: translation range, pixels (sub-pixel, bilinear)
    "affine_per_channel": False,  # random affine: one draw per channel (AddNIST's digits), else per image
    "hflip": 0.0,                 # probability of a left-right flip
    "vflip": 0.0,                 # probability of a top-bottom flip
    "jitter": 0.0,                # brightness = contrast = saturation strength, fraction (0.2 -> factors 0.8..1.2)
    "noise": 0.0,                 # Gaussian noise std, [0, 1] pixel units
    "noise_p": 1.0,               # probability a sample gets noise
    "cutout": 0,                  # side of the zeroed square, pixels (0 = off)
    "randaugment": 0,             # RandAugment layers per image (0 = off)
    "randaugment_magnitude": 9,   # 0..30
    "trivialaugment": False,      # TrivialAugment-Wide (one op per image)
}


class Augment:
    """A fixed pipeline: geometric ops, auto-augment, colour, noise, cutout; printable for logs."""

    def __init__(self, steps: list[tuple[str, Callable[[Tensor, torch.Generator], Tensor]]]):
        self.steps = steps

    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor:
        for _, f in self.steps:
            x = f(x, g)
        return x

    def __repr__(self) -> str:
        return f"Augment({', '.join(name for name, _ in self.steps)})"


def build_augment(spec: dict) -> Callable[[Tensor, torch.Generator], Tensor] | None:
    """A pipeline from a plain dict (keys as in _DEFAULTS; missing keys mean off), or None if all are off."""
    unknown = sorted(set(spec) - set(_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown augmentation key(s) {', '.join(unknown)}: known are {', '.join(_DEFAULTS)}")
    s = {**_DEFAULTS, **spec}
    for k in ("crop_p", "hflip", "vflip", "noise_p"):
        if not 0.0 <= float(s[k]) <= 1.0:
            raise ConfigError(f"augmentation {k} must be a probability in [0, 1], got {s[k]}")
    if not 0 <= float(s["scale"]) < 1:
        raise ConfigError(f"augmentation scale must be in [0, 1), got {s['scale']}")
    for k in ("crop", "cutout", "randaugment", "jitter", "noise", "rotate", "shift"):
        if float(s[k]) < 0:
            raise ConfigError(f"augmentation {k} must be >= 0, got {s[k]}")
    if s["crop_mode"] not in ("zero", "reflect"):
        raise ConfigError(f"augmentation crop_mode must be 'zero' or 'reflect', got {s['crop_mode']!r}")
    if not 0 <= int(s["randaugment_magnitude"]) < NUM_BINS:
        raise ConfigError(f"augmentation randaugment_magnitude must be in 0..{NUM_BINS - 1}")
    if s["randaugment"] and s["trivialaugment"]:
        raise ConfigError("augmentation: choose randaugment or trivialaugment, not both")

    steps = []
    if s["crop"]:
        pad, mode, p = int(s["crop"]), s["crop_mode"], float(s["crop_p"])
        steps.append((f"crop({pad}, {mode}, p={p})", lambda x, g: random_crop(x, pad, g, mode=mode, p=p)))
    if s["rotate"] or s["scale"] or s["shift"]:
        deg, sc, sh, per = float(s["rotate"]), float(s["scale"]), float(s["shift"]), bool(s["affine_per_channel"])
        steps.append((f"affine({deg} deg, {sc}, {sh} px{', per channel' if per else ''})",
                      lambda x, g: random_affine(x, deg, sc, sh, g, per_channel=per)))
    if s["hflip"]:
        ph = float(s["hflip"])
        steps.append((f"hflip({ph})", lambda x, g: hflip(x, ph, g)))
    if s["vflip"]:
        pv = float(s["vflip"])
        steps.append((f"vflip({pv})", lambda x, g: vflip(x, pv, g)))
    if s["randaugment"]:
        n, m = int(s["randaugment"]), int(s["randaugment_magnitude"])
        steps.append((f"randaugment({n}, {m})", lambda x, g: rand_augment(x, n, m, g)))
    if s["trivialaugment"]:
        steps.append(("trivialaugment", trivial_augment))
    if s["jitter"]:
        j = float(s["jitter"])
        steps.append((f"jitter({j})", lambda x, g: color_jitter(x, j, j, j, g)))
    if s["noise"]:
        sd, pn = float(s["noise"]), float(s["noise_p"])
        steps.append((f"noise({sd}, p={pn})", lambda x, g: gaussian_noise(x, sd, pn, g)))
    if s["cutout"]:
        size = int(s["cutout"])
        steps.append((f"cutout({size})", lambda x, g: cutout(x, size, g)))
    return Augment(steps) if steps else None

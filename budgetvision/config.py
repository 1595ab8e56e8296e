"""Typed, frozen run configuration with strict dotted overrides and JSON round trip.

Every default sits beside its field with its unit or reason. Unknown keys, wrong types and
out-of-range values raise ConfigError with one line, before anything is written.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from .errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd", "muon")
SCHEDULES = ("constant", "onecycle", "cosine", "exponential")
SAMPLERS = ("ddpm", "ddim", "dpmpp2m")    # diffusion: ancestral, deterministic DDIM, DPM-Solver++(2M)
OBJECTIVES = ("classification", "gan", "ddpm", "vdiffusion", "pca")
DIFFAUGMENT_OPS = ("color", "translation", "cutout")   # objectives/gan.py implements each
DDPM_SCHEDULES = ("linear", "sigmoid", "sigmoid-tutorial")   # betas; objectives/diffusion.py implements each
VDIFFUSION_SCHEDULES = ("cosine", "spliced", "linear")       # log-SNR; objectives/diffusion.py implements each
NONFINITE = ("stop", "skip")
INTERPOLATIONS = ("slerp", "lerp")            # latent paths; objectives/base.py implements each
INTERPOLATION_LABELS = ("blend", "nearest")   # class vectors along the path, or the closer end's label
VBN_MODES = ("off", "epoch", "batch")         # Rzayev's virtual batch norm; objectives/gan.py
MAX_SEED = 2**63 - 1                          # seeds seed torch generators and sit in int64 tensors


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class AugmentConfig:
    """Batched, on-device augmentations (see data/augment.py); 0 / False means off."""

    crop: int = 0                    # random-crop padding, pixels
    rotate: float = 0.0              # random affine: rotation range, degrees
    scale: float = 0.0               # random affine: zoom range, fraction (0.1 -> 0.9..1.1)
    shift: float = 0.0               # random affine: translation range, pixels
    affine_per_channel: bool = False  # random affine drawn per channel (AddNIST: three digits), else per image
    hflip: float = 0.0               # probability of a horizontal flip
    hflip_alternate: bool = False    # airbench's alternating flip in place of hflip's coin: a fixed random
                                     # half of the images mirrored in even epochs, the rest in odd ones
    vflip: float = 0.0               # probability of a vertical flip
    jitter: float = 0.0              # brightness/contrast/saturation jitter strength, fraction
    noise: float = 0.0               # Gaussian noise std, in [0, 1] pixel units
    noise_p: float = 0.7             # probability a sample gets noise (Zavileiskii's 0.7)
    cutout: int = 0                  # side of the cut-out square, pixels
    randaugment: int = 0             # RandAugment ops per image (Cubuk et al. use 2)
    randaugment_magnitude: int = 9   # RandAugment magnitude, 0..30 (torchvision's scale)
    trivialaugment: bool = False     # TrivialAugment-Wide instead of RandAugment

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip", "noise_p"):
            _check(0.0 <= getattr(self, name) <= 1.0, f"data.augment.{name} must be in [0, 1]")
        for name in ("crop", "cutout", "randaugment", "jitter", "noise", "rotate", "shift"):
            _check(getattr(self, name) >= 0, f"data.augment.{name} must be >= 0")
        _check(0 <= self.scale < 1, "data.augment.scale must be in [0, 1)")
        _check(0 <= self.randaugment_magnitude <= 30, "data.augment.randaugment_magnitude must be in [0, 30]")
        _check(not (self.hflip and self.hflip_alternate),
               "data.augment: hflip_alternate replaces hflip's coin; set hflip=0 with it")

    def as_spec(self) -> dict:
        """The per-batch pipeline's keys (build_augment); hflip_alternate is the loader's, by epoch."""
        spec = dataclasses.asdict(self)
        del spec["hflip_alternate"]
        return spec


@dataclass(frozen=True)
class DataConfig:
    name: str = "digits"             # addnist | cifar100 | digits | mnist | folder:PATH
    val_fraction: float = 0.1        # share of train held out for validation (never the test split);
                                     # 0 = train on the whole training split, no validation passes
    split_seed: int = 0              # fixed, so every seed of a run sees the same validation split
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        _check(0.0 <= self.val_fraction < 1.0, "data.val_fraction must be in [0, 1)")
        _check(bool(self.name), "data.name must not be empty")
        _check(0 <= self.split_seed <= MAX_SEED, f"data.split_seed must be in [0, {MAX_SEED}]")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "lenet5"             # registry name of the classifier, generator or denoiser
    discriminator: str = ""          # GANs: registry name of the discriminator
    latent_dim: int = 100            # GANs: size of z
    conditional: bool = False        # generators: condition on class labels
    capacity: int = 1                # Rzayev's F: channel multiplier of mnist_dcgan_generator and
                                     # _discriminator (the paper's grid: 1..3); other networks refuse != 1
    depth: int = 1                   # Rzayev's D: convs per stage of mnist_dcgan_discriminator (the
                                     # paper's grid: 1..3); other networks refuse != 1

    def __post_init__(self) -> None:
        _check(self.latent_dim >= 1, "model.latent_dim must be >= 1")
        _check(self.capacity >= 1, f"model.capacity must be >= 1, got {self.capacity}")
        _check(self.depth >= 1, f"model.depth must be >= 1, got {self.depth}")


@dataclass(frozen=True)
class ClassificationConfig:
    """Cross-entropy on labels (label smoothing and test-time flips are train.* options)."""

    name: str = "classification"


@dataclass(frozen=True)
class _GenerativeConfig:
    """What every generator's section shares: how `budgetvision interpolate` walks between two
    seeds by default (its --mode and --labels override)."""

    name: str = ""                   # each subclass's own (kept first, as in every section)
    interpolation: str = "slerp"     # latent path: slerp | lerp
    interpolation_labels: str = "blend"  # conditional: blend the ends' class vectors | nearest (the closer end's label)

    def __post_init__(self) -> None:
        _check(self.interpolation in INTERPOLATIONS,
               f"objective.interpolation must be one of {', '.join(INTERPOLATIONS)}")
        _check(self.interpolation_labels in INTERPOLATION_LABELS,
               f"objective.interpolation_labels must be one of {', '.join(INTERPOLATION_LABELS)}")


@dataclass(frozen=True)
class GANConfig(_GenerativeConfig):
    """Adversarial training: one generator update per step, with its discriminator updates."""

    name: str = "gan"
    gan_loss: str = "bce"            # bce (Goodfellow) | hinge (Miyato et al.)
    adaptive_weighting: bool = False  # aw-GAN: weight real/fake D losses by their gradients (Zadorozhnyy 2021)
    real_label: float = 1.0          # target for real images in BCE; < 1 is one-sided label smoothing
    d_steps: int = 1                 # discriminator updates per generator update
    r1_gamma: float = 0.0            # R1 penalty (gamma / 2) E||grad D(x_real)||^2 in D's loss (Mescheder
                                     # et al. 2018); 0 = none. Not with adaptive_weighting
    diffaugment: str = ""            # DiffAugment ops before D, comma-separated: color,translation,cutout
    vbn: str = "off"                 # Rzayev's virtual BN in G and D: off | epoch (a reference half-batch
                                     # drawn once per epoch, as the paper) | batch (each batch's own first half)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.gan_loss in ("bce", "hinge"), "objective.gan_loss must be bce or hinge")
        _check(self.vbn in VBN_MODES, f"objective.vbn must be one of {', '.join(VBN_MODES)}")
        _check(0 < self.real_label <= 1, "objective.real_label must be in (0, 1]")
        _check(self.d_steps >= 1, "objective.d_steps must be >= 1")
        _check(self.r1_gamma >= 0, f"objective.r1_gamma must be >= 0, got {self.r1_gamma}")
        _check(not (self.r1_gamma and self.adaptive_weighting),
               "objective.r1_gamma does not combine with objective.adaptive_weighting")
        unknown = [op for op in self.diffaugment_ops if op not in DIFFAUGMENT_OPS]
        _check(not unknown, f"objective.diffaugment: unknown op {unknown[0] if unknown else ''!r}; "
                            f"known: {', '.join(DIFFAUGMENT_OPS)}")

    @property
    def diffaugment_ops(self) -> tuple[str, ...]:
        """objective.diffaugment's ops in order ("color,cutout" -> ("color", "cutout"); "" -> none)."""
        return tuple(op for op in self.diffaugment.split(",") if op)


@dataclass(frozen=True)
class _DiffusionConfig(_GenerativeConfig):
    """What both diffusion objectives share: conditioning, guidance and the sampler."""

    cond_drop: float = 0.0           # classifier-free guidance: probability of the null label in training
    cfg_scale: float = 0.0           # classifier-free guidance weight w at sampling; 0 = conditional only
    guidance_interval: tuple[float, float] = (0.0, 0.0)   # guide only where sigma/alpha (EDM's sigma) lies
                                     # in (lo, hi] (Kynkaanniemi et al. 2024); 0 = no limit on that
                                     # side, so (0, 0) guides every level (Ho & Salimans)
    sampler: str = "ddpm"            # ddpm (ancestral) | ddim (deterministic) | dpmpp2m (DPM-Solver++(2M))
    sample_steps: int = 1000         # sampler steps
    threshold: float = 0.0           # dynamic thresholding percentile in x-space (Imagen's 0.995); 0 = clip only

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(0 <= self.cond_drop < 1, "objective.cond_drop must be in [0, 1)")
        _check(self.cfg_scale >= 0, "objective.cfg_scale must be >= 0")
        lo, hi = self.guidance_interval
        _check(lo >= 0 and (hi == 0 or hi > lo),
               f"objective.guidance_interval must be lo,hi with 0 <= lo < hi (0: no limit on that side), "
               f"got {lo},{hi}")
        _check(self.sampler in SAMPLERS, f"objective.sampler must be one of {', '.join(SAMPLERS)}, got '{self.sampler}'")
        _check(self.sample_steps >= 1, "objective.sample_steps must be >= 1")
        _check(0 <= self.threshold < 1, "objective.threshold must be in [0, 1)")


@dataclass(frozen=True)
class DDPMConfig(_DiffusionConfig):
    """Discrete-time DDPM (Ho et al. 2020), epsilon prediction."""

    name: str = "ddpm"
    schedule: str = "linear"         # betas: linear (Ho et al.) | sigmoid (Jabri et al.) | sigmoid-tutorial
                                     # (The Annotated Diffusion Model's)
    timesteps: int = 1000            # discrete diffusion steps T; objective.sample_steps at most this
                                     # (check_run: the two may be overridden in either order)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.schedule in DDPM_SCHEDULES, f"objective.schedule for ddpm must be one of "
                                                f"{', '.join(DDPM_SCHEDULES)}, got {self.schedule!r}")
        _check(self.timesteps >= 1, "objective.timesteps must be >= 1")


@dataclass(frozen=True)
class VDiffusionConfig(_DiffusionConfig):
    """Continuous-time diffusion in log-SNR with the v-objective (the anonymous paper, after Crowson)."""

    name: str = "vdiffusion"
    schedule: str = "cosine"         # log-SNR: cosine | spliced | linear (Crowson's three)
    min_snr_gamma: float = 0.0       # Min-SNR-gamma loss weighting (Hang et al. 2023): each sample's v error
                                     # weighted by min(SNR, gamma) / (SNR + 1), i.e. its x0 error by
                                     # min(SNR, gamma); 0 = the anonymous paper's plain v MSE

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.schedule in VDIFFUSION_SCHEDULES, f"objective.schedule for vdiffusion must be one of "
                                                      f"{', '.join(VDIFFUSION_SCHEDULES)}, got {self.schedule!r}")
        _check(self.min_snr_gamma >= 0, f"objective.min_snr_gamma must be >= 0, got {self.min_snr_gamma}")


@dataclass(frozen=True)
class PCAConfig(_GenerativeConfig):
    """Per-class PCA fitted in closed form through the loop (Rzayev section 5)."""

    name: str = "pca"
    components: int = 64             # principal components per class

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.components >= 1, "objective.components must be >= 1")


# objective.name -> its section; a resolved config shows only its own objective's fields
OBJECTIVE_CONFIGS = {"classification": ClassificationConfig, "gan": GANConfig, "ddpm": DDPMConfig,
                     "vdiffusion": VDiffusionConfig, "pca": PCAConfig}
ObjectiveConfig = typing.Union[ClassificationConfig, GANConfig, DDPMConfig, VDiffusionConfig, PCAConfig]


def task_of(objective: ObjectiveConfig) -> str:
    """classify for a classifier's objective, generate for every other."""
    return "classify" if objective.name == "classification" else "generate"


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"               # adam | adamw | sgd (SGD always with Nesterov momentum) | muon
    lr: float = 1e-3                 # peak learning rate (muon: of the Nesterov SGD on all but conv filters)
    weight_decay: float = 0.0        # L2 (adam, sgd) or decoupled (adamw)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam/AdamW moment decays
    d_lr: float = 0.0                # GAN discriminator lr; 0 = the same as lr
    momentum: float = 0.9            # SGD (and muon's non-filter) Nesterov momentum
    muon_lr: float = 0.02            # muon: peak lr of the orthogonalised conv-filter updates
    muon_momentum: float = 0.95      # muon: the filters' Nesterov momentum (torch.optim.Muon's default)
    onecycle_momentum: bool = True   # onecycle: cycle every group's momentum 0.95-0.85-0.95 in place of
                                     #   its own (torch's default; the momenta above then do nothing)
    schedule: str = "constant"       # constant | onecycle | cosine | exponential
    warmup_steps: int = 0            # linear warm-up for cosine, steps
    onecycle_pct_start: float = 0.3  # share of steps rising to the peak (torch's default)
    decay_rate: float = 0.98         # exponential: lr multiplier per decay_every steps
    decay_every: int = 195           # exponential: steps per decay (one CIFAR epoch at batch 256)

    def __post_init__(self) -> None:
        _check(self.name in OPTIMIZERS, f"optim.name must be one of {', '.join(OPTIMIZERS)}, got '{self.name}'")
        _check(self.schedule in SCHEDULES, f"optim.schedule must be one of {', '.join(SCHEDULES)}, got '{self.schedule}'")
        _check(math.isfinite(self.lr) and self.lr > 0, "optim.lr must be a positive number")
        _check(self.weight_decay >= 0, "optim.weight_decay must be >= 0")
        _check(math.isfinite(self.d_lr) and self.d_lr >= 0, "optim.d_lr must be >= 0")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optim.betas must be two numbers in [0, 1)")
        _check(0 <= self.momentum < 1, "optim.momentum must be in [0, 1)")
        _check(math.isfinite(self.muon_lr) and self.muon_lr > 0, "optim.muon_lr must be a positive number")
        _check(0 <= self.muon_momentum < 1, "optim.muon_momentum must be in [0, 1)")
        _check(self.warmup_steps >= 0, "optim.warmup_steps must be >= 0")
        _check(0 < self.onecycle_pct_start < 1, "optim.onecycle_pct_start must be in (0, 1)")
        _check(0 < self.decay_rate <= 1, "optim.decay_rate must be in (0, 1]")
        _check(self.decay_every >= 1, "optim.decay_every must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 10_000              # optimisation steps (the unit of training, not epochs)
    batch_size: int = 128            # images per step
    seed: int = 0                    # first seed; --seeds K runs seed .. seed+K-1
    label_smoothing: float = 0.0     # cross-entropy label smoothing
    grad_clip: float = 0.0           # max global gradient norm; 0 = off
    ema_decay: float = 0.0           # weight EMA per step; 0 = off (EMA weights are evaluated when on)
    ema_warmup: bool = True          # EMA decay ramps as min(decay, (1 + step) / (10 + step)) (TF's num_updates)
    flip_tta: bool = False           # classifiers: evaluate on the mean logits of each image and its mirror
    tta_shift: int = 0               # classifiers: also on copies shifted this many pixels (airbench's TTA)
    tta_shift_weight: float = 0.5    # ... which share the mean this much between them (airbench: 0.5; 2/3
                                     #   weighs the image and its two shifted copies equally)
    log_every: int = 50              # steps between status lines / metrics.jsonl train rows
    eval_every: int = 500            # classifiers: steps between validation passes (the training graph's
                                     # points); generators are scored after training (budgetvision eval)
    checkpoint_every: int = 1000     # steps between atomic checkpoints
    checkpoint_minutes: float = 10.0  # and at most this many minutes of wall time between them
    sample_every: int = 1000         # generators: steps between fixed-seed sample grids
    amp: bool = True                 # bf16 autocast of forward passes and losses on CUDA ...
    cpu_amp: bool = False            # ... and on a CPU with native bf16 (AVX-512-BF16 or AMX): a speed
                                     #   lever for dense convs (2.1x for speedrun_convnet), slower for tiny
                                     #   or depthwise nets, and not free (-0.30 points on speedrun_convnet
                                     #   at 3,000 steps): off in every preset (device.py)
    amp_fp32_norms: bool = False     # under autocast, BatchNorm layers normalise fp32 inputs (airbench keeps
                                     #   its BN in fp32): a screen of where bf16 loses accuracy (loop.py);
                                     #   off: on speedrun_convnet it did not close the gap on validation.
                                     #   Kept, though no preset sets it: the committed screen (screens/
                                     #   precision--...--bf16-fp32-norms.json) is rerun with it
    channels_last: bool = True       # channels_last memory format (1.3-1.5x faster convs on an AVX-512 CPU too)
    compile: bool = False            # torch.compile the network
    nonfinite: str = "stop"          # on a NaN/inf loss: stop, or skip the step and count it
    tensorboard: bool = True         # TensorBoard events in each seed's folder (tensorboard --logdir runs/)

    def __post_init__(self) -> None:
        _check(self.steps >= 1, "train.steps must be >= 1")
        _check(self.batch_size >= 1, "train.batch_size must be >= 1")
        _check(0 <= self.seed <= MAX_SEED, f"train.seed must be in [0, {MAX_SEED}]")
        _check(0 <= self.label_smoothing < 1, "train.label_smoothing must be in [0, 1)")
        _check(self.tta_shift >= 0, "train.tta_shift must be >= 0")
        _check(0 < self.tta_shift_weight < 1, "train.tta_shift_weight must be in (0, 1)")
        _check(self.grad_clip >= 0, "train.grad_clip must be >= 0")
        _check(0 <= self.ema_decay < 1, "train.ema_decay must be in [0, 1)")
        _check(self.checkpoint_minutes > 0, "train.checkpoint_minutes must be > 0")
        for name in ("log_every", "eval_every", "checkpoint_every", "sample_every"):
            _check(getattr(self, name) >= 1, f"train.{name} must be >= 1")
        _check(self.nonfinite in NONFINITE, f"train.nonfinite must be one of {', '.join(NONFINITE)}")

    @property
    def images_seen(self) -> int:
        """Training images one seed sees: steps x batch (a GAN step's extra D passes reuse its batch)."""
        return self.steps * self.batch_size


def check_seeds(first: int, count: int) -> None:
    """A run's seeds first .. first + count - 1 must all be seeds."""
    _check(first + count - 1 <= MAX_SEED, f"seeds {first} .. {first + count - 1} go past the largest seed {MAX_SEED}")


def check_run(cfg: "RunConfig") -> None:
    """Bounds between fields (and sections) that overrides may set in either order, so they are
    checked on the whole config: after the overrides (apply_overrides) and where a config becomes
    an objective (build_objective). Each section checks its fields alone as it is built."""
    o = cfg.objective
    if isinstance(o, _DiffusionConfig):
        _check(cfg.model.conditional or not (o.cond_drop > 0 or o.cfg_scale > 0),
               "objective.cond_drop and objective.cfg_scale need model.conditional=true")
        _check(o.cfg_scale == 0 or o.cond_drop > 0, "objective.cfg_scale > 0 needs objective.cond_drop > 0: "
                                                    "otherwise the null label guidance subtracts is never trained")
    if isinstance(o, DDPMConfig):
        _check(o.sample_steps <= o.timesteps, f"objective.sample_steps ({o.sample_steps}) must be <= "
                                              f"objective.timesteps ({o.timesteps}) for ddpm")


def check_fits(cfg: "RunConfig", image_size: int) -> None:
    """Bounds that need the data set's image side: a crop padding or test-time shift as large as the
    image would fail in reflection padding (or allocate without end), after the run folder exists."""
    for key, value in (("data.augment.crop", cfg.data.augment.crop), ("train.tta_shift", cfg.train.tta_shift)):
        _check(value < image_size, f"{key} {value} must be smaller than the {image_size}-pixel images of "
                                   f"'{cfg.data.name}'")


@dataclass(frozen=True)
class BudgetConfig:
    max_params: int = 100_000        # budgeted parameters (models/registry.py count_params) must be strictly fewer
    max_steps: int = 10_000          # optimisation steps must be at most this


@dataclass(frozen=True)
class RunConfig:
    preset: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ClassificationConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)

    @property
    def task(self) -> str:
        """classify | generate: what the objective makes of the network, never set on its own."""
        return task_of(self.objective)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Convert a JSON value or a command-line string to `typ`, strictly."""
    origin = typing.get_origin(typ)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a comma-separated list, got {value!r}")
        args = typing.get_args(typ)
        if len(value) != len(args):
            raise ConfigError(f"{key} needs {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value)
            except ValueError:
                raise ConfigError(f"{key} must be a number, got {value!r}") from None
        else:
            raise ConfigError(f"{key} must be a number, got {value!r}")
        if not math.isfinite(out):
            raise ConfigError(f"{key} must be finite, got {value!r}")
        return out
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {typ}")


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build a config dataclass from a (possibly partial) dict; unknown keys fail."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be an object")
    hints = _hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key {prefix + unknown[0]!r}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for key, value in data.items():
        typ = hints[key]
        if typ is ObjectiveConfig:
            typ = _objective_class(value, f"{prefix}{key}")
        if is_dataclass(typ):
            kwargs[key] = from_dict(typ, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, typ, prefix + key)
    return cls(**kwargs)


def _objective_class(value: Any, key: str) -> type:
    name = value.get("name", "classification") if isinstance(value, dict) else None
    if name not in OBJECTIVE_CONFIGS:
        raise ConfigError(f"{key}.name must be one of {', '.join(OBJECTIVES)}, got {name!r}")
    return OBJECTIVE_CONFIGS[name]


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply `a.b.c=value` overrides strictly: every key must exist, every value must parse."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"malformed override {item!r}: expected key=value, e.g. optim.lr=1e-3")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"malformed override {item!r}: empty key")
        if key in ("preset", "task", "objective.name"):
            raise ConfigError(f"{key!r} cannot be overridden: it names the recipe (use --preset)")
        if key.split(".")[0] == "budget":
            raise ConfigError(f"{key!r} cannot be overridden: budgets are the task's rules "
                              "(pass --over-budget to run over them, which results record)")
        cfg = _set_path(cfg, key.split("."), raw, key)
    check_run(cfg)
    return cfg


def _set_path(obj: Any, path: list[str], raw: str, full: str) -> Any:
    name = path[0]
    names = {f.name for f in fields(obj)}
    if name not in names:
        prefix = full[: len(full) - len(".".join(path))]
        raise ConfigError(f"unknown config key {full!r}; known under {prefix or '.'!r}: {', '.join(sorted(names))}")
    current = getattr(obj, name)
    if len(path) == 1:
        if is_dataclass(current):
            raise ConfigError(f"{full!r} is a section; set one of its keys, e.g. {full}.{fields(current)[0].name}=...")
        return replace(obj, **{name: _coerce(raw, _hints(type(obj))[name], full)})
    if not is_dataclass(current):
        raise ConfigError(f"unknown config key {full!r}: {name!r} has no sub-keys")
    return replace(obj, **{name: _set_path(current, path[1:], raw, full)})


def load_config(path) -> RunConfig:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"corrupt config file {path}: {e}") from None
    return saved_config(data)


def saved_config(data: dict) -> RunConfig:
    """The RunConfig a run folder or checkpoint saved, from any budgetvision version's layout
    (keys added since then take their defaults)."""
    return from_dict(RunConfig, _upgrade(data))


def _upgrade(data: dict) -> dict:
    """A run folder's config.json from before the per-objective sections (it has a top-level
    `task` and every objective's keys in one `objective`): the section its objective name picks,
    so older runs still open, evaluate and resume."""
    if not isinstance(data, dict) or "task" not in data or not isinstance(data.get("objective"), dict):
        return data
    data = {k: v for k, v in data.items() if k != "task"}
    section = _objective_class(data["objective"], "objective")
    keep = {f.name for f in fields(section)}
    data["objective"] = {k: v for k, v in data["objective"].items() if k in keep}
    return data

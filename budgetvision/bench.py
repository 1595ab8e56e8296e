"""`budgetvision bench`: training speed of a preset, the tool's loop beside a plain PyTorch loop.

Both loops train the same network with the same optimiser at the same batch size in one process,
taking turns in short windows (tool, plain, plain, tool, ...), so load from elsewhere on the machine
falls on both alike. The plain loop is what a typical script does: a Dataset that transforms one
image at a time with torchvision, a DataLoader, fp32 in the default memory layout, torch's default
optimiser implementation and `.item()` every step. A classifier's plain step is forward,
cross-entropy, backward, optimiser step; a generator's is the objective's own `train_step` (its
losses are the recipe, not the harness). The tool's loop is loop.py's step as `train` runs it:
device-resident batches and augmentation, the preset's layout, precision and compile settings, the
non-finite guard, the schedule and the EMA.

A row also holds the work per training image (the FLOPs torch's FlopCounterMode counts in one
training step: every network's forward and backward; optimiser updates are elementwise and not
counted), the FLOP rate each loop reaches, the shares of the tool's step spent in forward passes,
backward, the optimiser and outside them (torch.profiler), and for generators the sampling rate of
the recipe's sampler (and of DDIM and DPM-Solver++ for diffusion), measured as `budgetvision eval`
draws. Rows are written one file per preset, device and data set, and the README's speed table is
generated from the committed files.
"""
from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision.transforms import InterpolationMode, v2

from .config import RunConfig, apply_overrides
from .data import DataSpec
from .device import amp_dtype, device_name
from .errors import BudgetVisionError, ConfigError
from .io import write_json
from .leaderboard import default_results_dir
from .loop import Training
from .objectives import build_objective
from .objectives.base import BACKWARD, FORWARD, OPTIMIZER
from .optim import build_optimizers, build_scheduler
from .presets import PRESETS, get_preset
from .runs import draw_timed
from .setup import Prepared, input_stats, prepare
from .version import __version__, source_commit

SPEED_FORMAT = "budgetvision-speed-1"
SAMPLE_BATCH = 250    # images per sampling call, as `budgetvision eval` draws them
FAST_SAMPLERS = (("ddim", 50), ("dpmpp2m", 25))   # diffusion: timed beside the recipe's own sampler
# The dense kernels timed as the device's ceiling, each sized to run at full rate (a CPU core: 0.05-0.2 s
# a call in fp32; an H100: ~1 ms): a square matmul (n) and a 3x3 convolution, channels_last (batch,
# channels, side). Both, because a library's best kernel differs: on the 2-core EPYC torch.mm (MKL)
# ran at ~90 GFLOP/s in fp32 where oneDNN's convolutions reached ~115.
CEILING_MATMUL = {"cpu": 2048, "cuda": 8192}
CEILING_CONV = {"cpu": (64, 256, 8), "cuda": (256, 512, 16)}
FLOP_BATCH = 2        # FLOPs are counted at this batch and divided by it: BatchNorm in training mode needs
                      # two images, and every op the counter counts (conv, matmul, attention) is linear in it


@dataclass(frozen=True)
class BenchOptions:
    steps: int = 60              # timed steps per loop
    window: int = 10             # steps per timed window; the two loops take turns window by window
    warmup: int = 5              # untimed steps per loop first: allocation, caches, compilation
    samples: int | None = None   # generators: images drawn for the sampling rate; None: 64 on a GPU, 4 on
                                 # the CPU, where a 1000-step diffusion sampler takes minutes per batch
    workers: int = 0             # the plain loop's DataLoader workers; 0 keeps its data work inside its
                                 # own windows (workers would prefetch while the tool's window runs)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.window < 1 or (self.samples is not None and self.samples < 1):
            raise ConfigError("bench needs --steps, --window and --samples >= 1")
        if self.warmup < 0 or self.workers < 0:
            raise ConfigError("bench needs --warmup and --workers >= 0")

    def args(self) -> list[str]:
        """The options that differ from the defaults, as command-line flags."""
        default = BenchOptions()
        return [f"--{k} {v}" for k, v in vars(self).items() if v != getattr(default, k)]


# ----------------------------------------------------------------------------- the two loops

class PerSampleDataset(Dataset):
    """What a plain script does: index one image, transform it in Python."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(self.x[i]), self.y[i]


def plain_transform(cfg: RunConfig, spec: DataSpec) -> v2.Compose:
    """The preset's augmentations as per-sample torchvision transforms, in the order the tool's
    batched ones run (data/augment.py), then scaling and the same normalisation. AddNIST's
    per-channel affine is drawn per image here: the cost is the same, torchvision has no per-channel op."""
    aug, size = cfg.data.augment, spec.image_size
    ops = []
    if aug.crop:
        ops.append(v2.RandomCrop(size, padding=aug.crop))
    if aug.rotate or aug.scale or aug.shift:
        ops.append(v2.RandomAffine(aug.rotate, translate=(aug.shift / size,) * 2, scale=(1 - aug.scale, 1 + aug.scale),
                                   interpolation=InterpolationMode.BILINEAR))
    if aug.hflip or aug.hflip_alternate:   # the alternating flip mirrors half of each batch: the same work
        ops.append(v2.RandomHorizontalFlip(aug.hflip or 0.5))
    if aug.vflip:
        ops.append(v2.RandomVerticalFlip(aug.vflip))
    if aug.randaugment:
        ops.append(v2.RandAugment(aug.randaugment, aug.randaugment_magnitude))
    if aug.trivialaugment:
        ops.append(v2.TrivialAugmentWide())
    ops.append(v2.ToDtype(torch.float32, scale=True))
    if aug.jitter:
        ops.append(v2.ColorJitter(aug.jitter, aug.jitter, aug.jitter if spec.channels == 3 else None))
    if aug.noise:
        ops.append(v2.RandomApply([v2.GaussianNoise(sigma=aug.noise)], p=aug.noise_p))
    if aug.cutout:
        area = min(1.0, (aug.cutout / size) ** 2)
        ops.append(v2.RandomErasing(1.0, scale=(area, area), ratio=(1.0, 1.0)))
    mean, std = input_stats(cfg, spec)
    ops.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(ops)


def _forever(loader: DataLoader):
    while True:
        yield from loader


def _plain_classifier_step(objective, opt: torch.optim.Optimizer, x, y, grad_clip: float) -> torch.Tensor:
    loss, _ = objective(x, y)   # the network and its cross-entropy, label smoothing included
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(objective.parameters(), grad_clip)
    opt.step()
    return loss


def plain_loop(prep: Prepared, workers: int):
    """A step function (returns the images it trained on) of the plain PyTorch loop."""
    cfg, spec, device = prep.config, prep.splits.spec, prep.device
    torch.manual_seed(cfg.train.seed)
    objective = build_objective(cfg, spec).to(device).train()
    # Built as for the CPU: torch's default implementation (foreach on CUDA), not the tool's fused one.
    opts = build_optimizers(objective, cfg.optim, torch.device("cpu"))
    schedulers = [build_scheduler(o, cfg.optim, cfg.train.steps) for o in opts.values()]
    data = PerSampleDataset(*prep.splits.train, plain_transform(cfg, spec))
    batches = _forever(DataLoader(data, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True,
                                  num_workers=workers, persistent_workers=workers > 0,
                                  pin_memory=device.type == "cuda"))
    classify, clip = cfg.task == "classify", cfg.train.grad_clip

    def step() -> int:
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, torch.int64, non_blocking=True)
        if classify:
            loss = _plain_classifier_step(objective, opts["main"], x, y, clip)
        else:
            loss = next(iter(objective.train_step(x, y, opts, grad_clip=clip).values()))
        loss.item()
        for s in schedulers:
            s.step()
        return len(y)

    return step


def tool_loop(prep: Prepared, folder: Path):
    """A step function of loop.py's training step, and the training state it steps. `folder` is
    never written: nothing here logs or checkpoints."""
    training = Training(prep, prep.config.train.seed, folder)
    batch = prep.config.train.batch_size

    def step() -> int:
        training.train_step()
        return batch

    return step, training


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, n: int, device: torch.device) -> tuple[int, float]:
    _sync(device)
    start = time.perf_counter()
    images = sum(step() for _ in range(n))
    _sync(device)
    return images, time.perf_counter() - start


def interleaved(loops: list, *, steps: int, window: int, warmup: int, device: torch.device) -> list[float]:
    """images/s of each step function, timed in turns of `window` steps after `warmup` untimed steps
    each. The order flips every round (A B, B A, A B, ...), so neither loop always runs first."""
    for step in loops:
        for _ in range(warmup):
            step()
    images, seconds = [0] * len(loops), [0.0] * len(loops)
    order, done = list(range(len(loops))), 0
    while done < steps:
        n = min(window, steps - done)
        for i in order:
            got, took = _timed(loops[i], n, device)
            images[i] += got
            seconds[i] += took
        order.reverse()
        done += n
    return [i / s for i, s in zip(images, seconds)]


def ceiling_steps(device: torch.device, dtype: torch.dtype) -> list:
    """The device's ceiling for the tool's arithmetic: a dense square matmul and a dense 3x3
    convolution (channels_last) in `dtype` with this process's threads, as step functions that return
    their FLOPs, so `interleaved` gives their FLOP/s; the faster is the ceiling. Convolutions and
    linear layers are such kernels underneath, so a training step's GFLOP/s over it says how much of
    the machine the step uses and how much a faster loop could still win (little, near 100 %)."""
    gen = torch.Generator(device=device).manual_seed(0)
    n = CEILING_MATMUL[device.type]
    a, b = (torch.randn(n, n, device=device, dtype=dtype, generator=gen) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)

    def matmul() -> int:
        torch.mm(a, b, out=out)
        return 2 * n ** 3

    batch, width, side = CEILING_CONV[device.type]
    x = torch.randn(batch, width, side, side, device=device, dtype=dtype, generator=gen)
    w = torch.randn(width, width, 3, 3, device=device, dtype=dtype, generator=gen) / (9 * width) ** 0.5
    x, w = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)

    def conv() -> int:
        conv.out = F.conv2d(x, w, padding=1)
        return 2 * batch * width * width * 9 * side * side

    matmul.out, matmul.operands, conv.operands = out, (a, b), (x, w)   # for tests: what the timed calls compute
    return [matmul, conv]


def step_shares(step, n: int, device: torch.device) -> dict[str, float] | None:
    """Where the time of `n` steps goes, as shares of their wall time: the forward passes, backward
    and the optimiser's update (the profiler ranges the objectives mark), and "outside", the rest
    (data, augmentation, the non-finite guard, clipping, EMA, schedule). CPU time of the ranges: on
    a GPU the ranges time the host's launches, so read "outside" there as host overhead. None for a
    step that marks none of the ranges (PCA's closed-form statistics: no forward, backward or
    optimiser to split it into)."""
    parts = (FORWARD, BACKWARD, OPTIMIZER)
    _sync(device)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(n):
            step()
        _sync(device)
        wall = time.perf_counter() - start
    spent = dict.fromkeys(parts, 0.0)
    for event in prof.events():
        if event.name in spent:
            spent[event.name] += event.cpu_time_total / 1e6
    if not any(spent.values()):
        return None
    shares = {name.removeprefix("bv."): min(seconds / wall, 1.0) for name, seconds in spent.items()}
    shares["outside"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


# ----------------------------------------------------------------------------- work and sampling

class _Global:
    """Stands in for FlopCounterMode's module tracker: every count goes to the total alone."""
    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


class TotalFlops(FlopCounterMode):
    """FlopCounterMode's total, without its per-module attribution, whose hooks break
    torch.autograd.grad (aw-GAN's per-loss gradients; pytorch/pytorch#131753)."""

    def __init__(self):
        super().__init__(display=False)
        self.mod_tracker = _Global()


def gflop_per_image(cfg: RunConfig, spec: DataSpec) -> float:
    """GFLOP that FlopCounterMode counts in one training step of a fresh copy of the preset's
    networks on the CPU, per training image."""
    objective = build_objective(cfg, spec).train()
    opts = build_optimizers(objective, cfg.optim, torch.device("cpu"))
    x = torch.rand(FLOP_BATCH, spec.channels, spec.image_size, spec.image_size) * 2 - 1
    y = torch.arange(FLOP_BATCH) % spec.num_classes
    with TotalFlops() as counter:
        objective.train_step(x, y, opts, grad_clip=cfg.train.grad_clip)
    return counter.get_total_flops() / FLOP_BATCH / 1e9


def sampling_rate(training: Training, n: int) -> float:
    """Images/s of the recipe's sampler from the trained network (the EMA copy when kept)."""
    seeds = list(range(n))
    objective, network = training.objective, training.network().eval()
    labels = objective.labels_for(seeds, device=training.device)
    # One untimed image first, as the loops warm up: allocation, caches, and work a network does once
    # on its first draw (PCA fits its components then; with the fit timed, mnist-pca read 1.8 images/s).
    draw_timed(objective, network, seeds[:1], None if labels is None else labels[:1], batch_size=SAMPLE_BATCH)
    return draw_timed(objective, network, seeds, labels, batch_size=SAMPLE_BATCH)[1]


def sampler_name(cfg: RunConfig) -> str | None:
    if cfg.task != "generate":
        return None
    o = cfg.objective
    return _sampler_label(o.sampler, o.sample_steps) if hasattr(o, "sampler") else o.name


def _sampler_label(sampler: str, steps: int) -> str:
    return f"{sampler}, {steps} steps"


def sampling_rates(training: Training, n: int) -> dict[str, float]:
    """Images/s per sampler: the recipe's own, and for diffusion also the fast ones `eval --sampler`
    offers (FAST_SAMPLERS), each from the same trained network."""
    rates = {sampler_name(training.cfg): sampling_rate(training, n)}
    objective = training.objective
    own = getattr(objective, "cfg", None)
    for sampler, steps in FAST_SAMPLERS if hasattr(own, "sampler") else ():
        if (sampler, steps) == (own.sampler, own.sample_steps):
            continue
        objective.cfg = replace(own, sampler=sampler, sample_steps=steps)   # what sample() reads
        try:
            rates[_sampler_label(sampler, steps)] = sampling_rate(training, n)
        finally:
            objective.cfg = own
    return rates


# ----------------------------------------------------------------------------- one row

def dataset_label(name: str) -> str:
    """folder:/data/cifar10-jpeg -> folder:cifar10-jpeg: a result names no local path."""
    return f"folder:{Path(name.split(':', 1)[1]).name}" if name.startswith("folder:") else name


def command_line(preset: str, device: torch.device, dataset: str | None, overrides: list[str],
                 options: BenchOptions, threads: int) -> str:
    """The command that measures a row again (`--all` becomes the row's own --preset)."""
    parts = ["budgetvision bench", f"--preset {preset}", f"--device {device.type}"]
    parts += [f"--dataset {dataset_label(dataset)}"] if dataset else []
    parts += [f"--set {' '.join(overrides)}"] if overrides else []
    return " ".join(parts + options.args() + [f"--threads {threads}"])


def bench_preset(preset: str, *, dataset: str | None = None, overrides: list[str] = (),
                 options: BenchOptions = BenchOptions(), data_root: Path | None, device: torch.device) -> dict:
    """One row: the preset (on `dataset`, with `overrides`) measured on `device`."""
    overrides = list(overrides)
    cfg = apply_overrides(get_preset(preset).config, ([f"data.name={dataset}"] if dataset else []) + overrides)
    # The schedule spans exactly the steps each loop takes (the tool's: also one profiled window), as
    # it would a run of that length; OneCycle refuses a step past its end.
    cfg = apply_overrides(cfg, [f"train.steps={options.warmup + options.steps + options.window}",
                                "train.tensorboard=false"])
    prep = prepare(cfg, data_root=data_root, device=device, allow_over=True)
    with tempfile.TemporaryDirectory() as folder:
        tool, training = tool_loop(prep, Path(folder))
        bf16 = amp_dtype(device, amp=cfg.train.amp, cpu_amp=cfg.train.cpu_amp) is not None
        ceiling = ceiling_steps(device, torch.bfloat16 if bf16 else torch.float32)
        tool_rate, plain_rate, *kernel_flops = interleaved([tool, plain_loop(prep, options.workers), *ceiling],
                                                           steps=options.steps, window=options.window,
                                                           warmup=options.warmup, device=device)
        del ceiling
        peak_flops = max(kernel_flops)
        shares = step_shares(tool, options.window, device)
        samples = options.samples or (64 if device.type == "cuda" else 4)
        rates = sampling_rates(training, samples) if cfg.task == "generate" else {}
    gflop = gflop_per_image(cfg, prep.splits.spec)
    tc = cfg.train
    return {
        "preset": preset, "task": cfg.task, "dataset": dataset_label(cfg.data.name), "device": device.type,
        "device_name": device_name(device), "threads": torch.get_num_threads(), "batch_size": tc.batch_size,
        "params": prep.params,
        "tool_images_per_s": tool_rate, "plain_images_per_s": plain_rate, "ratio": tool_rate / plain_rate,
        "gflop_per_image": gflop, "tool_gflop_per_s": gflop * tool_rate, "plain_gflop_per_s": gflop * plain_rate,
        # the device's ceiling in the tool's precision (the faster of a dense matmul and a dense conv,
        # timed in the same turns) and the share of it the tool's step reaches
        "peak_gflop_per_s": peak_flops / 1e9, "peak_dtype": "bf16" if bf16 else "fp32",
        "peak_kernels_gflop_per_s": {"matmul": kernel_flops[0] / 1e9, "conv3x3": kernel_flops[1] / 1e9},
        "tool_peak_share": gflop * tool_rate / (peak_flops / 1e9),
        "sampling_images_per_s": rates.get(sampler_name(cfg)), "sampler": sampler_name(cfg),
        "sampling_rates": rates,   # images/s per sampler: the recipe's, then the fast diffusion ones
        "step_shares": shares,     # the tool's step: forward, backward, optimizer, outside (torch.profiler)
        "tool_settings": {"channels_last": tc.channels_last, "compile": tc.compile,
                          "bf16": bf16},
        "overrides": overrides,    # the --set changes from the preset's config, as given
        "steps": options.steps, "window": options.window, "warmup": options.warmup,
        "samples": samples if rates else 0, "workers": options.workers,
        "torch": torch.__version__, "budgetvision": __version__, "commit": source_commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": command_line(preset, device, dataset, overrides, options, torch.get_num_threads()),
    }


# ----------------------------------------------------------------------------- result files and tables

def speed_dir() -> Path:
    """The checkout's benchmarks/results/speed (a folder of its own: the leaderboard reads every file
    one level up), else ./benchmarks/results/speed."""
    return default_results_dir() / "speed"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_rows(rows: list[dict], folder: Path) -> list[Path]:
    """One file per preset, device, data set and `--set` overrides (e.g. `...--train-cpu-amp-true.json`):
    a later measurement of the same replaces it; one with other overrides sits beside it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BudgetVisionError(f"cannot create results folder {folder}: {e.strerror}") from None
    paths = []
    for row in rows:
        settings = "".join(f"--{_slug(o)}" for o in row["overrides"])
        path = folder / f"{row['preset']}--{_slug(row['device_name'])}--{_slug(row['dataset'])}{settings}.json"
        write_json(path, {"format": SPEED_FORMAT, **row})
        paths.append(path)
    return paths


def load_rows(folder: Path | None = None) -> list[dict]:
    """Every speed row under `folder` (default: speed_dir()), by device, then in preset order."""
    folder = Path(folder) if folder is not None else speed_dir()
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            row = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BudgetVisionError(f"cannot read speed result {path}: {e}") from None
        if row.pop("format", None) != SPEED_FORMAT:
            raise BudgetVisionError(f"{path} is not a budgetvision speed result ({SPEED_FORMAT})")
        rows.append(row)
    order = {name: i for i, name in enumerate(PRESETS)}
    return sorted(rows, key=lambda r: (r["device"], r["device_name"], order.get(r["preset"], len(order)),
                                       r["dataset"]))


def _rate(value: float) -> str:
    return f"{value:,.1f}" if value >= 1 else f"{value:.2g}"   # a 1000-step sampler on a CPU draws < 0.1 image/s


def _sampling(row: dict) -> str:
    rates = row.get("sampling_rates") or ({row["sampler"]: row["sampling_images_per_s"]}
                                          if row["sampling_images_per_s"] is not None else {})   # older files
    return "; ".join(f"{_rate(rate)} ({name})" for name, rate in rates.items()) or "-"


def _outside(row: dict) -> str:
    """The share of the tool's step outside forward, backward and the optimiser (older files: -)."""
    shares = row.get("step_shares")
    return f"{100 * shares['outside']:.1f} %" if shares else "-"


def _peak(row: dict) -> str:
    """The tool's GFLOP/s as a share of the device's ceiling in its precision (older files: -)."""
    share = row.get("tool_peak_share")
    return f"{100 * share:.0f} % of {row['peak_gflop_per_s']:,.0f}" if share is not None else "-"


def format_text(rows: list[dict]) -> str:
    # Columns as wide as their longest entry: a cut name ("r:cifar10-jpeg") would name another data set.
    pw = max([len("preset"), *(len(r["preset"]) for r in rows)])
    dw = max([len("data set"), *(len(r["dataset"]) for r in rows)])
    head = (f"{'preset':{pw}} {'data set':{dw}} {'batch':>5} {'tool img/s':>11} {'plain img/s':>11} {'ratio':>6} "
            f"{'GFLOP/img':>10} {'tool GFLOP/s':>12} {'of peak':>16} {'outside':>7}  sampling img/s")
    out = [head, "-" * len(head)]
    for r in rows:
        out.append(f"{r['preset']:{pw}} {r['dataset']:{dw}} {r['batch_size']:>5} {r['tool_images_per_s']:>11,.1f} "
                   f"{r['plain_images_per_s']:>11,.1f} {r['ratio']:>5.2f}x {r['gflop_per_image']:>10.4g} "
                   f"{r['tool_gflop_per_s']:>12.1f} {_peak(r):>16} {_outside(r):>7}  {_sampling(r)}")
    if rows:
        r = rows[0]
        out.append(f"{r['device']} ({r['device_name']}), {r['threads']} threads, torch {r['torch']}; "
                   f"{r['steps']} timed steps per loop in windows of {r['window']}, interleaved")
    return "\n".join(out) + "\n"


def format_markdown(rows: list[dict]) -> str:
    out = ["| preset | data set | batch | tool precision | tool img/s | plain img/s (fp32) | ratio | GFLOP/image "
           "| tool GFLOP/s | of peak (GFLOP/s) | outside fwd/bwd/opt | sampling img/s | device | threads "
           "| torch | command |",
           "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- | --- |"]
    for r in rows:
        precision = "bf16 autocast" if r["tool_settings"].get("bf16") else "fp32"
        out.append(f"| {r['preset']} | {r['dataset']} | {r['batch_size']} | {precision} | {r['tool_images_per_s']:,.1f} | "
                   f"{r['plain_images_per_s']:,.1f} | {r['ratio']:.2f}x | {r['gflop_per_image']:.4g} | "
                   f"{r['tool_gflop_per_s']:,.1f} | {_peak(r)} | {_outside(r)} | {_sampling(r)} | "
                   f"{r['device']}: {r['device_name']} | {r['threads']} | {r['torch']} | `{r['command']}` |")
    return "\n".join(out) + "\n"


def readme_section(rows: list[dict]) -> str:
    """The README's speed section: the table of the committed speed files, or a line saying there are none."""
    if not rows:
        return ("No speed result is committed yet: `budgetvision bench --all` writes one file per preset to "
                "`benchmarks/results/speed/`, and `python benchmarks/update_readme.py` puts them here.\n")
    return ("Every row is a file in `benchmarks/results/speed/` (its commit, date, window sizes and the tool's "
            "settings inside), written by the command beside it.\n\n" + format_markdown(rows))

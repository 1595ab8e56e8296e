"""One fit(): budget enforcement, schedules, EMA, AMP, logging cadence, checkpoint / resume.

`prepare()` does everything that can fail on bad input (data, model, budget) before any file is
written; `fit()` trains one seed into its own folder and can resume from its checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from . import __version__
from .budget import enforce_budget
from .config import OptimConfig, RunConfig
from .data import BatchLoader, DataSpec, Splits, build_augment, load_splits
from .data.shapes import data_shape
from .errors import BudgetVisionError
from .evaluation import evaluate_classifier
from .io import load_checkpoint, save_checkpoint, write_json
from .models import count_params
from .models.layers import FlipAveraged
from .objectives import NonFiniteLoss, Objective, build_objective
from .report.plots import sample_grid

TRAIN_ACCURACY_IMAGES = 10_000   # train accuracy is measured on this many un-augmented train images
COLLAPSE_D_LOSS = 1e-3           # a GAN discriminator loss below this ...
COLLAPSE_WINDOWS = 5             # ... for this many consecutive log windows is reported as collapse


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BudgetVisionError(f"device '{name}' requested but CUDA is not available here")
    try:
        return torch.device(name)
    except RuntimeError:
        raise BudgetVisionError(f"unknown device '{name}' (use auto, cpu or cuda)") from None


def versions(device: torch.device) -> dict:
    out = {"budgetvision": __version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import torchvision
        out["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is a dependency
        pass
    out["device_name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return out


@dataclass
class Prepared:
    """Everything a run needs that is the same for all its seeds, validated before any write."""
    config: RunConfig
    splits: Splits
    device: torch.device
    params: int                      # the budgeted total
    param_counts: dict[str, int]     # per trained network (generator, discriminator, ...) and total
    over_budget: bool


def shape_spec(cfg: RunConfig, data_root: Path | None = None) -> DataSpec:
    """A DataSpec with the data set's shape and class count, without loading its images."""
    channels, size, classes = data_shape(cfg.data.name, data_root)
    return DataSpec(name=cfg.data.name, channels=channels, image_size=size, num_classes=classes,
                    mean=(0.5,) * channels, std=(0.5,) * channels,
                    class_names=tuple(str(i) for i in range(classes)))


def param_counts(objective: Objective) -> dict[str, int]:
    counts = {role: count_params(net) for role, net in objective.trained_networks().items()}
    return {**counts, "total": sum(counts.values())}


def config_params(cfg: RunConfig, data_root: Path | None = None) -> dict[str, int]:
    """Trainable parameters of a config's networks on its data set (known shapes need no data)."""
    return param_counts(build_objective(cfg, shape_spec(cfg, data_root)))


def prepare(cfg: RunConfig, *, data_root: Path | None, device: torch.device, allow_over: bool) -> Prepared:
    # The budget is checked before the data is loaded: an over-budget run fails fast, even offline.
    counts = config_params(cfg, data_root)
    over = enforce_budget(counts["total"], cfg.train.steps, cfg.budget, allow_over=allow_over)
    splits = load_splits(cfg.data.name, data_root, val_fraction=cfg.data.val_fraction, seed=cfg.data.split_seed)
    if cfg.train.batch_size > len(splits.train[1]):
        raise BudgetVisionError(f"train.batch_size {cfg.train.batch_size} exceeds the {len(splits.train[1])} "
                                f"training images of '{cfg.data.name}'")
    return Prepared(cfg, splits, device, counts["total"], counts, over)


def input_stats(cfg: RunConfig, spec: DataSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Classifiers see per-data-set standardised inputs; generators model images in [-1, 1]."""
    if cfg.task == "generate":
        return (0.5,) * spec.channels, (0.5,) * spec.channels
    return spec.mean, spec.std


def build_optimizer(params, cfg: OptimConfig, device: torch.device, lr: float | None = None) -> torch.optim.Optimizer:
    lr = cfg.lr if lr is None else lr
    fused = {"fused": True} if device.type == "cuda" else {}
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **fused)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **fused)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=True,
                           weight_decay=cfg.weight_decay, **fused)


def build_optimizers(objective: Objective, cfg: OptimConfig, device: torch.device) -> dict[str, torch.optim.Optimizer]:
    """One optimiser per group; a GAN's discriminator takes `d_lr` when it is set."""
    return {name: build_optimizer(params, cfg, device,
                                  lr=cfg.d_lr if name == "discriminator" and cfg.d_lr > 0 else None)
            for name, params in objective.optimizer_groups().items()}


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, steps: int):
    """A scheduler stepped once per optimisation step."""
    sched = torch.optim.lr_scheduler
    if cfg.schedule == "onecycle":
        return sched.OneCycleLR(opt, max_lr=opt.param_groups[0]["lr"], total_steps=steps, pct_start=cfg.onecycle_pct_start)
    if cfg.schedule == "cosine":
        warm = min(cfg.warmup_steps, steps - 1)
        cosine = sched.CosineAnnealingLR(opt, T_max=max(steps - warm, 1))
        if warm == 0:
            return cosine
        return sched.SequentialLR(opt, [sched.LinearLR(opt, start_factor=1e-3, total_iters=warm), cosine],
                                  milestones=[warm])
    if cfg.schedule == "exponential":
        return sched.StepLR(opt, step_size=cfg.decay_every, gamma=cfg.decay_rate)
    return sched.ConstantLR(opt, factor=1.0, total_iters=0)


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


SAMPLE_SEEDS = list(range(64))   # the fixed, non-cherry-picked 8x8 grid written while training


def fit(prep: Prepared, seed: int, seed_dir: Path, *, progress: bool = True) -> dict:
    """Train one seed into `seed_dir`, resuming from `seed_dir/checkpoint.pt` when it exists.

    Returns that seed's results (also written to `seed_dir/results.json`)."""
    cfg, splits, device = prep.config, prep.splits, prep.device
    tc, spec = cfg.train, prep.splits.spec
    classify = cfg.task == "classify"
    seed_dir.mkdir(parents=True, exist_ok=True)
    for stale in seed_dir.glob(".*.tmp"):  # a write a kill interrupted; the renamed file is intact
        stale.unlink()
    ckpt_path = seed_dir / "checkpoint.pt"
    metrics_path = seed_dir / "metrics.jsonl"

    torch.manual_seed(seed)
    objective = build_objective(cfg, spec).to(device)
    use_cuda = device.type == "cuda"
    for net in objective.trained_networks().values():
        if tc.channels_last:
            net.to(memory_format=torch.channels_last)
        if tc.compile:
            net.compile()  # in place: state_dict keys stay those of the plain module
    opts = build_optimizers(objective, cfg.optim, device)
    schedulers = {name: build_scheduler(opt, cfg.optim, tc.steps) for name, opt in opts.items()}
    ema = (torch.optim.swa_utils.AveragedModel(
        objective.ema_target(), multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(tc.ema_decay),
        use_buffers=True) if tc.ema_decay > 0 else None)
    mean, std = input_stats(cfg, spec)
    loader = BatchLoader(*splits.train, tc.batch_size, mean=mean, std=std, device=device,
                         seed=seed, augment=build_augment(cfg.data.augment.as_spec()))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if use_cuda and tc.amp else contextlib.nullcontext())

    # Running sums between log points live on the device: no .item() in the hot loop.
    sums: dict[str, torch.Tensor] = {}
    seen = 0
    step, skipped, wall_before = 0, 0, 0.0
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path, map_location=device)
        if state.get("config") != cfg.to_dict():
            raise BudgetVisionError(f"checkpoint {ckpt_path} belongs to another config (preset "
                                    f"'{state.get('config', {}).get('preset')}'); refusing to resume")
        objective.load_state_dict(state["objective"])
        for name in opts:
            opts[name].load_state_dict(state["optimizers"][name])
            schedulers[name].load_state_dict(state["schedulers"][name])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        loader.load_state_dict(state["loader"])
        sums = {k: v.to(device) for k, v in state["sums"].items()}
        seen = state["seen"]
        _set_rng_state(state["rng"], device)
        step, skipped, wall_before = state["step"], state["skipped"], state["wall_seconds"]
        with open(metrics_path, "r+b") as f:  # drop rows logged after the checkpoint
            f.truncate(state["metrics_bytes"])
    elif metrics_path.exists():
        metrics_path.unlink()

    def checkpoint() -> None:
        log.flush()
        save_checkpoint(ckpt_path, {
            "config": cfg.to_dict(), "seed": seed, "step": step, "skipped": skipped,
            "wall_seconds": wall_before + time.perf_counter() - t_start,
            "objective": objective.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in opts.items()},
            "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
            "ema": ema.state_dict() if ema is not None else None, "loader": loader.state_dict(),
            "sums": {k: v.detach().cpu() for k, v in sums.items()}, "seen": seen, "rng": _rng_state(device),
            "metrics_bytes": metrics_path.stat().st_size,
        })

    def evaluated_network() -> nn.Module:
        return ema.module if ema is not None else objective.ema_target()

    def classifier_for_eval() -> nn.Module:
        net = evaluated_network()
        return FlipAveraged(net) if tc.flip_tta else net

    def evaluate(x, y, limit=None):
        if limit is not None:
            x, y = x[:limit], y[:limit]
        return evaluate_classifier(classifier_for_eval(), x, y, mean=mean, std=std, device=device,
                                   num_classes=spec.num_classes, batch_size=max(tc.batch_size, 256), amp=tc.amp)

    def write_samples() -> Path:
        net = evaluated_network()
        was_training = net.training
        net.eval()
        images = objective.sample(SAMPLE_SEEDS, network=net)
        net.train(was_training)
        path = seed_dir / "samples" / f"step-{step:06d}.png"
        path.parent.mkdir(exist_ok=True)
        sample_grid(images, path)
        return path

    log = open(metrics_path, "a", buffering=1)  # line-buffered: a reader (or a kill) sees whole rows
    t_start = t_log = time.perf_counter()
    images_since_log = 0
    collapse, warned = [], False  # GAN collapse sign: D's loss at ~0 for a stretch of log windows
    bar = tqdm(total=tc.steps, initial=step, desc=f"{cfg.preset} seed {seed}", unit="step",
               disable=not progress, dynamic_ncols=True, file=sys.stderr)
    objective.train()
    try:
        while step < tc.steps:
            x, y = next(loader)
            try:
                with autocast:
                    out = objective.train_step(x, y, opts, grad_clip=tc.grad_clip)
            except NonFiniteLoss as e:
                if tc.nonfinite != "skip":
                    raise NonFiniteLoss(f"{e} at step {step + 1}; last good checkpoint: "
                                        f"{ckpt_path if ckpt_path.exists() else 'none (none written yet)'}") from None
                skipped += 1
                out = None
            for s in schedulers.values():
                s.step()
            if ema is not None and out is not None:
                ema.update_parameters(objective.ema_target())
            step += 1
            if out is not None:
                for k, v in out.items():
                    v = v.detach().float()
                    sums[k] = sums.get(k, 0) + (v if k == "correct" else v * len(y))
                seen += len(y)
            images_since_log += len(y)

            if step % tc.log_every == 0 or step == tc.steps:
                now = time.perf_counter()
                row = {"kind": "train", "step": step, **{k: v.item() / max(seen, 1) for k, v in sums.items()},
                       "images_per_s": images_since_log / (now - t_log)}
                if "main" in schedulers:
                    row["lr"] = schedulers["main"].get_last_lr()[0]
                if "correct" in row:
                    row["accuracy"] = row.pop("correct")
                sums, seen = {}, 0
                t_log, images_since_log = now, 0
                log.write(json.dumps(row) + "\n")
                collapse.append(row.get("d_loss", math.inf) < COLLAPSE_D_LOSS)
                if len(collapse) >= COLLAPSE_WINDOWS and all(collapse[-COLLAPSE_WINDOWS:]) and not warned:
                    warned = True
                    message = (f"discriminator loss below {COLLAPSE_D_LOSS} for {COLLAPSE_WINDOWS} log windows "
                               f"up to step {step}: the generator has likely collapsed")
                    log.write(json.dumps({"kind": "warning", "step": step, "message": message}) + "\n")
                    tqdm.write(f"budgetvision: warning: {cfg.preset} seed {seed}: {message}", file=sys.stderr)
                bar.set_postfix({k: f"{row[k]:.3g}" for k in row if k not in ("kind", "step", "lr")}, refresh=False)
                bar.update(step - bar.n)
            if classify and (step % tc.eval_every == 0 or step == tc.steps):
                v = evaluate(*splits.val)
                log.write(json.dumps({"kind": "val", "step": step, "loss": v["loss"], "accuracy": v["accuracy"]}) + "\n")
                if not progress:
                    print(f"{cfg.preset} seed {seed} step {step}/{tc.steps} val_acc {v['accuracy']:.4f}",
                          file=sys.stderr)
            if not classify and (step % tc.sample_every == 0 or step == tc.steps):
                path = write_samples()
                if not progress:
                    print(f"{cfg.preset} seed {seed} step {step}/{tc.steps} samples {path}", file=sys.stderr)
            if step % tc.checkpoint_every == 0 or step == tc.steps:
                checkpoint()
    finally:
        bar.close()
        log.close()

    wall = wall_before + time.perf_counter() - t_start
    results = {
        "preset": cfg.preset, "task": cfg.task, "seed": seed, "params": prep.params,
        "param_counts": prep.param_counts, "steps": tc.steps, "batch_size": tc.batch_size,
        "images_seen": tc.steps * tc.batch_size, "nonfinite_skipped": skipped, "wall_seconds": wall,
        "device": str(device), "over_budget": prep.over_budget, "ema": ema is not None,
    }
    if classify:
        test = evaluate(*splits.test)
        train_eval = evaluate(*splits.train, limit=TRAIN_ACCURACY_IMAGES)
        results.update({
            "train_accuracy": train_eval["accuracy"], "train_accuracy_n": train_eval["n"],
            "val_accuracy": evaluate(*splits.val)["accuracy"], "test_accuracy": test["accuracy"],
            "test_loss": test["loss"], "test_accuracy_batch_std": test["batch_accuracy_std"],
            "test_n": test["n"], "confusion": test["confusion"].tolist(),
        })
    else:
        results["samples"] = str(seed_dir / "samples" / f"step-{step:06d}.png")
    write_json(seed_dir / "results.json", results)
    return results


def load_trained(cfg: RunConfig, spec: DataSpec, ckpt_path: Path, device: torch.device
                 ) -> tuple[Objective, nn.Module, int]:
    """The objective a checkpoint holds, the network to evaluate or sample with (its EMA copy when
    the run kept one, in eval mode), and the checkpoint's step."""
    state = load_checkpoint(ckpt_path, map_location=device)
    if state.get("config", {}).get("preset") != cfg.preset:
        raise BudgetVisionError(f"checkpoint {ckpt_path} is of preset '{state.get('config', {}).get('preset')}', "
                                f"not '{cfg.preset}'")
    objective = build_objective(cfg, spec).to(device)
    try:
        objective.load_state_dict(state["objective"])
        network = objective.ema_target()
        if state.get("ema") is not None:
            ema = torch.optim.swa_utils.AveragedModel(network, use_buffers=True)
            ema.load_state_dict(state["ema"])
            network = ema.module
    except (RuntimeError, KeyError) as e:
        raise BudgetVisionError(f"checkpoint {ckpt_path} does not fit preset '{cfg.preset}': "
                                f"{str(e).splitlines()[0]}") from None
    objective.eval()
    network.eval()
    if cfg.task == "classify" and cfg.train.flip_tta:
        network = FlipAveraged(network)
    return objective, network, int(state["step"])


def mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)

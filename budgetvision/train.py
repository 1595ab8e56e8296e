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
from .data import BatchLoader, Splits, build_augment, load_splits
from .data.shapes import data_shape
from .errors import BudgetVisionError
from .evaluation import evaluate_classifier
from .io import load_checkpoint, save_checkpoint, write_json
from .models import build_model, count_params
from .objectives import Classification

TRAIN_ACCURACY_IMAGES = 10_000   # train accuracy is measured on this many un-augmented train images


class NonFiniteLoss(BudgetVisionError):
    """A NaN or inf loss or gradient; the message names the step, the loss and the last checkpoint."""


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
    params: int
    over_budget: bool


def prepare(cfg: RunConfig, *, data_root: Path | None, device: torch.device, allow_over: bool) -> Prepared:
    if cfg.task != "classify":
        raise BudgetVisionError(f"preset '{cfg.preset}' is a {cfg.task} task; this build trains classifiers only")
    # The budget is checked before the data is loaded: an over-budget run fails fast, even offline.
    params = config_params(cfg, data_root)
    over = enforce_budget(params, cfg.train.steps, cfg.budget, allow_over=allow_over)
    splits = load_splits(cfg.data.name, data_root, val_fraction=cfg.data.val_fraction, seed=cfg.data.split_seed)
    if cfg.train.batch_size > len(splits.train[1]):
        raise BudgetVisionError(f"train.batch_size {cfg.train.batch_size} exceeds the {len(splits.train[1])} "
                                f"training images of '{cfg.data.name}'")
    return Prepared(cfg, splits, device, params, over)


def config_params(cfg: RunConfig, data_root: Path | None = None) -> int:
    """Trainable parameters of a config's network on its data set (known shapes need no data)."""
    channels, size, classes = data_shape(cfg.data.name, data_root)
    return count_params(build_model(cfg.model.name, in_channels=channels, num_classes=classes, image_size=size))


def build_network(cfg: RunConfig, splits: Splits) -> nn.Module:
    spec = splits.spec
    return build_model(cfg.model.name, in_channels=spec.channels, num_classes=spec.num_classes,
                       image_size=spec.image_size)


def build_optimizer(params, cfg: OptimConfig, device: torch.device) -> torch.optim.Optimizer:
    fused = {"fused": True} if device.type == "cuda" else {}
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **fused)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **fused)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                           weight_decay=cfg.weight_decay, **fused)


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, steps: int):
    """A scheduler stepped once per optimisation step."""
    sched = torch.optim.lr_scheduler
    if cfg.schedule == "onecycle":
        return sched.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=cfg.onecycle_pct_start)
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


def fit(prep: Prepared, seed: int, seed_dir: Path, *, progress: bool = True) -> dict:
    """Train one seed into `seed_dir`, resuming from `seed_dir/checkpoint.pt` when it exists.

    Returns that seed's results (also written to `seed_dir/results.json`)."""
    cfg, splits, device = prep.config, prep.splits, prep.device
    tc = cfg.train
    seed_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = seed_dir / "checkpoint.pt"
    metrics_path = seed_dir / "metrics.jsonl"

    torch.manual_seed(seed)
    network = build_network(cfg, splits).to(device)
    use_cuda = device.type == "cuda"
    if use_cuda and tc.channels_last:
        network = network.to(memory_format=torch.channels_last)
    objective = Classification(network, label_smoothing=tc.label_smoothing)
    forward = torch.compile(objective) if tc.compile else objective
    opt = build_optimizer(network.parameters(), cfg.optim, device)
    scheduler = build_scheduler(opt, cfg.optim, tc.steps)
    ema = (torch.optim.swa_utils.AveragedModel(
        network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(tc.ema_decay), use_buffers=True)
        if tc.ema_decay > 0 else None)
    spec = splits.spec
    loader = BatchLoader(*splits.train, tc.batch_size, mean=spec.mean, std=spec.std, device=device,
                         seed=seed, augment=build_augment(cfg.data.augment.as_spec()))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if use_cuda and tc.amp else contextlib.nullcontext())

    # Running sums between log points live on the device: no .item() in the hot loop.
    acc = {"loss": torch.zeros((), device=device), "correct": torch.zeros((), device=device),
           "seen": torch.zeros((), device=device)}
    step, skipped, wall_before = 0, 0, 0.0
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path, map_location=device)
        if state.get("config") != cfg.to_dict():
            raise BudgetVisionError(f"checkpoint {ckpt_path} belongs to another config (preset "
                                    f"'{state.get('config', {}).get('preset')}'); refusing to resume")
        network.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        loader.load_state_dict(state["loader"])
        acc = {k: v.to(device) for k, v in state["accumulators"].items()}
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
            "model": network.state_dict(), "optimizer": opt.state_dict(), "scheduler": scheduler.state_dict(),
            "ema": ema.state_dict() if ema is not None else None, "loader": loader.state_dict(),
            "accumulators": {k: v.detach().cpu() for k, v in acc.items()}, "rng": _rng_state(device),
            "metrics_bytes": metrics_path.stat().st_size,
        })

    def evaluate(x, y, limit=None):
        net = ema.module if ema is not None else network
        if limit is not None:
            x, y = x[:limit], y[:limit]
        return evaluate_classifier(net, x, y, mean=spec.mean, std=spec.std, device=device,
                                   num_classes=spec.num_classes, batch_size=max(tc.batch_size, 256), amp=tc.amp)

    log = open(metrics_path, "a")
    t_start = t_log = time.perf_counter()
    images_since_log = 0
    bar = tqdm(total=tc.steps, initial=step, desc=f"{cfg.preset} seed {seed}", unit="step",
               disable=not progress, dynamic_ncols=True, file=sys.stderr)
    network.train()
    try:
        while step < tc.steps:
            x, y = next(loader)
            with autocast:
                loss, logits = forward(x, y)
            if not torch.isfinite(loss):  # one sync per step: a NaN must stop the run at once
                if tc.nonfinite == "skip":
                    skipped += 1
                    opt.zero_grad(set_to_none=True)
                    scheduler.step()
                    step += 1
                    continue
                raise NonFiniteLoss(f"non-finite loss {loss.item()} at step {step + 1}; last good checkpoint: "
                                    f"{ckpt_path if ckpt_path.exists() else 'none'}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(network.parameters(), tc.grad_clip)
            opt.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(network)
            step += 1
            acc["loss"] += loss.detach() * len(y)
            acc["correct"] += (logits.detach().argmax(1) == y).sum()
            acc["seen"] += len(y)
            images_since_log += len(y)

            if step % tc.log_every == 0 or step == tc.steps:
                seen = acc["seen"].item()
                now = time.perf_counter()
                row = {"kind": "train", "step": step, "loss": acc["loss"].item() / seen,
                       "accuracy": acc["correct"].item() / seen, "lr": scheduler.get_last_lr()[0],
                       "images_per_s": images_since_log / (now - t_log)}
                for v in acc.values():
                    v.zero_()
                t_log, images_since_log = now, 0
                log.write(json.dumps(row) + "\n")
                bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.3f}",
                                img_s=f"{row['images_per_s']:.0f}", refresh=False)
                bar.update(step - bar.n)
            if step % tc.eval_every == 0 or step == tc.steps:
                v = evaluate(*splits.val)
                log.write(json.dumps({"kind": "val", "step": step, "loss": v["loss"], "accuracy": v["accuracy"]}) + "\n")
                if not progress:
                    print(f"{cfg.preset} seed {seed} step {step}/{tc.steps} val_acc {v['accuracy']:.4f}",
                          file=sys.stderr)
            if step % tc.checkpoint_every == 0 or step == tc.steps:
                checkpoint()
    finally:
        bar.close()
        log.close()

    wall = wall_before + time.perf_counter() - t_start
    test = evaluate(*splits.test)
    train_eval = evaluate(*splits.train, limit=TRAIN_ACCURACY_IMAGES)
    val = evaluate(*splits.val)
    results = {
        "preset": cfg.preset, "seed": seed, "params": prep.params, "steps": tc.steps,
        "batch_size": tc.batch_size, "images_seen": tc.steps * tc.batch_size,
        "train_accuracy": train_eval["accuracy"], "train_accuracy_n": train_eval["n"],
        "val_accuracy": val["accuracy"], "test_accuracy": test["accuracy"], "test_loss": test["loss"],
        "test_accuracy_batch_std": test["batch_accuracy_std"], "test_n": test["n"],
        "nonfinite_skipped": skipped, "wall_seconds": wall, "device": str(device),
        "over_budget": prep.over_budget, "ema": ema is not None,
        "confusion": test["confusion"].tolist(),
    }
    write_json(seed_dir / "results.json", results)
    return results


def load_network(run_config: RunConfig, splits: Splits, ckpt_path: Path, device: torch.device) -> tuple[nn.Module, int]:
    """The network a checkpoint holds (its EMA weights when the run kept an EMA), and its step."""
    state = load_checkpoint(ckpt_path, map_location=device)
    if state.get("config", {}).get("preset") != run_config.preset:
        raise BudgetVisionError(f"checkpoint {ckpt_path} is of preset '{state.get('config', {}).get('preset')}', "
                                f"not '{run_config.preset}'")
    network = build_network(run_config, splits).to(device)
    try:
        network.load_state_dict(state["model"])
        if state.get("ema") is not None:
            ema = torch.optim.swa_utils.AveragedModel(network, use_buffers=True)
            ema.load_state_dict(state["ema"])
            network = ema.module
    except (RuntimeError, KeyError) as e:
        raise BudgetVisionError(f"checkpoint {ckpt_path} does not fit model '{run_config.model.name}': "
                                f"{str(e).splitlines()[0]}") from None
    return network, int(state["step"])


def mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)

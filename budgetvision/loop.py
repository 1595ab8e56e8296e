"""The training loop: restore, step, log window, checkpoint, finish, each a short method (`budgetvision.train`
 is the API function that runs it; see api.py).

A run's setup (setup.py's `prepare()`) is checked before any file is written; `fit()` trains one
seed of it into its own folder and resumes from its checkpoint when one is there. `Training` is
that seed's state and the loop's steps over it. The loop knows objectives only through their
interface (objectives/base.py), so a classifier, a GAN, a diffusion model and PCA all train here,
under the same budget rules.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from . import distributed
from .config import saved_config
from .data import BatchLoader, build_augment, eval_batches
from .data.datasets import draw_record, eval_subset
from .device import amp_dtype, rebalance_threads
from .errors import BudgetVisionError, ConfigError, StopRequested
from .evaluation import evaluate_classifier
from .io import load_checkpoint, open_run_file, repair_log, save_checkpoint, write_json
from .models.layers import eval_mode, init_from_data, norms_in_fp32, sync_batchnorm
from .objectives import NonFiniteLoss, build_objective
from .optim import build_optimizers, build_scheduler
from .report.plots import sample_grid
from .setup import Prepared, for_evaluation, input_stats
from .version import source_commit

TRAIN_ACCURACY_IMAGES = 10_000   # train accuracy reads this many un-augmented train images (eval_draw's)
COLLAPSE_D_LOSS = 1e-3           # a GAN discriminator loss below this ...
COLLAPSE_WINDOWS = 5             # ... for this many consecutive log windows is reported as collapse
SAMPLE_SEEDS = list(range(64))   # the fixed, non-cherry-picked 8x8 grid written while training


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class _StopSignals:
    """While training, SIGINT (Ctrl-C) and SIGTERM (a scheduler's preemption) ask the loop to finish the
    step in flight, write a checkpoint and stop; a second one stops at once. Only the main thread can
    hold signal handlers: elsewhere (a thread of the caller's) nothing is installed."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir   # named by the second signal's KeyboardInterrupt, for the line main prints
        self.signum: int | None = None
        self.previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            # Under torchrun a signal can come twice, from the terminal and forwarded by torchrun, which
            # itself kills its processes (SIGKILL) when they outlast its grace period.
            if distributed.world_size() == 1:
                raise KeyboardInterrupt(str(self.run_dir))
            return
        self.signum = signum

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


@contextmanager
def _board_errors_in_main_thread():
    """TensorBoard writes from a thread of its own, which re-raises a failed write (a read-only or full
    folder) in the training thread at its next call, where it becomes the one clean line; the thread's
    own traceback, printed after that line, is left out."""
    previous = threading.excepthook

    def hook(args) -> None:
        if type(args.thread).__name__ != "_AsyncWriterThread":
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


class Training:
    """One seed's training state and the loop's steps over it.

    `Training(prep, seed, seed_dir)` builds the seed's networks, optimisers, EMA and data stream and
    sets every field, writing nothing. Then `restore()` continues from the seed's checkpoint in
    `seed_dir`, `run()` trains to train.steps there and returns the results, and `train_step()` is
    one step alone (what `bench` times). `objective`, `network()` (what is evaluated and sampled: the
    EMA copy when kept), `cfg`, `spec` and `device` are read from outside."""

    INIT_IMAGES = 5_000   # training images that data-dependent layers (PatchWhitening) are set from

    def __init__(self, prep: Prepared, seed: int, seed_dir: Path, progress: bool = False, on_validation=None,
                 run_id: str | None = None):
        self.prep, self.cfg, self.seed, self.dir = prep, prep.config, seed, seed_dir
        self.run_id = run_id   # the run folder's identity (run.json), kept in every checkpoint
        self.on_validation = on_validation
        self.tc, self.spec, self.device = prep.config.train, prep.splits.spec, prep.device
        self.classify = self.cfg.task == "classify"
        # data.val_fraction = 0 trains on the whole split: there is nothing to validate on.
        self.validates = self.classify and len(prep.splits.val[1]) > 0
        self.progress = progress
        self.main = distributed.is_main()   # the process (rank 0 under torchrun) that writes and prints
        self.ckpt_path, self.metrics_path = seed_dir / "checkpoint.pt", seed_dir / "metrics.jsonl"
        torch.manual_seed(seed)
        objective = build_objective(self.cfg, self.spec)
        # Under torchrun BatchNorm normalises over the global batch, as on one process (models/layers.py).
        self.objective = (sync_batchnorm(objective) if distributed.active() else objective).to(self.device)
        self.mean, self.std = input_stats(self.cfg, self.spec)
        self._init_from_data()
        distributed.broadcast_state(self.objective)   # every rank starts from rank 0's weights, as DDP does
        distributed.reseed(seed)
        # autocast around forward and loss only: bf16 on CUDA, and on a bf16-native CPU where asked
        self.objective.amp_dtype = amp_dtype(self.device, amp=self.tc.amp, cpu_amp=self.tc.cpu_amp)
        for net in self.objective.trained_networks().values():
            if self.objective.amp_dtype is not None and self.tc.amp_fp32_norms:
                norms_in_fp32(net)
            if self.tc.channels_last:
                net.to(memory_format=torch.channels_last)
            if self.tc.compile:
                net.compile()  # in place: state_dict keys stay those of the plain module
        self.opts = build_optimizers(self.objective, self.cfg.optim, self.device)
        self.schedulers = {k: build_scheduler(o, self.cfg.optim, self.tc.steps) for k, o in self.opts.items()}
        self.ema = (torch.optim.swa_utils.AveragedModel(self.objective.ema_target(), multi_avg_fn=self._ema_update,
                                                        use_buffers=True) if self.tc.ema_decay > 0 else None)
        self.loader = BatchLoader(*prep.splits.train, self.tc.batch_size, mean=self.mean, std=self.std,
                                  device=self.device, seed=seed, augment=build_augment(self.cfg.data.augment.as_spec()),
                                  flip_alternate=self.cfg.data.augment.hflip_alternate,
                                  rank=distributed.rank(), world_size=distributed.world_size())
        # Running sums between log points live on the device: no .item() in the hot loop.
        self.sums: dict[str, torch.Tensor] = {}
        self.seen = self.step = self.skipped = 0
        self.wall_before = 0.0
        # the source commits this seed trained at, one more each time a resume runs other code
        self.commits = [source_commit() or "unknown"]
        self.collapse: list[bool] = []
        self.warned = False
        # The run's own outputs and clocks, opened and started by run(); a step alone needs none.
        self.log = self.board = self.bar = None
        self.t_start = self.t_log = self.t_checkpoint = time.perf_counter()
        self.images_since_log = 0
        self.objective.train()

    def _init_from_data(self) -> None:
        """Layers initialised from data see INIT_IMAGES training images of every class (eval_draw's: the
        first 5,000 of a class-sorted folder are one class), normalised as the loader does; before the
        EMA copy is taken, and a resumed run overwrites them from its checkpoint."""
        images, labels, _ = eval_subset(self.prep.splits.train, self.INIT_IMAGES)
        x, _ = next(eval_batches(images, labels, self.INIT_IMAGES, mean=self.mean, std=self.std, device=self.device))
        for net in self.objective.trained_networks().values():
            init_from_data(net, x)

    @torch.no_grad()
    def _ema_update(self, ema_params, params, num_averaged) -> None:
        """ema <- ema + (1 - d) (params - ema); with train.ema_warmup, d = min(decay, (1 + t) / (10 + t)) at
        step t (TensorFlow's ExponentialMovingAverage with num_updates), so a short run's average is not
        mostly its random initialisation (0.999 ** 2,000 still weighs the initial weights 13 %)."""
        decay = self.tc.ema_decay
        if self.tc.ema_warmup:
            decay = min(decay, (1 + self.step) / (10 + self.step))
        if torch.is_floating_point(ema_params[0]):   # AveragedModel groups its lists by dtype
            torch._foreach_lerp_(ema_params, params, 1 - decay)
        else:                                        # integer buffers (BN's batch counts): the current value
            torch._foreach_copy_(ema_params, params)

    # ------------------------------------------------------------------ restore / checkpoint
    def restore(self) -> None:
        """Continue from the checkpoint when there is one (dropping metrics logged after it). Under
        torchrun rank 0 reads it for every rank, and each rank takes its own part (`_rank_state`)."""
        state = distributed.from_main(self._read_checkpoint)
        if state is None:
            return
        self.objective.load_state_dict(state["objective"])
        for name, opt in self.opts.items():
            opt.load_state_dict(state["optimizers"][name])
            self.schedulers[name].load_state_dict(state["schedulers"][name])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        mine = state if distributed.rank() == 0 else state["other_ranks"][distributed.rank() - 1]
        self.loader.load_state_dict(mine["loader"])
        self.sums = {k: v.to(self.device) for k, v in mine["sums"].items()}
        self.seen = mine["seen"]
        _set_rng_state(mine["rng"], self.device)
        self.step, self.skipped, self.wall_before = state["step"], state["skipped"], state["wall_seconds"]
        before = state.get("commits", ["not recorded"])
        self.commits = before + [c for c in self.commits if c != before[-1]]
        if self.main:
            dropped = repair_log(self.metrics_path, state["metrics_bytes"])
            if dropped:
                print(f"budgetvision: warning: {dropped}", file=sys.stderr)

    def _read_checkpoint(self) -> dict | None:
        if not self.ckpt_path.exists():
            self.metrics_path.unlink(missing_ok=True)
            return None
        # On the CPU: RNG states must be CPU tensors, and rank 0 hands the state on to the other ranks.
        state = load_checkpoint(self.ckpt_path, map_location="cpu")
        try:
            same = saved_config(state.get("config")) == self.cfg
        except ConfigError:
            same = False
        if not same:
            raise BudgetVisionError(f"checkpoint {self.ckpt_path} belongs to another config (preset "
                                    f"'{state.get('config', {}).get('preset')}'); refusing to resume")
        if not same_run(state, self.run_id, self.seed):
            raise BudgetVisionError(f"checkpoint {self.ckpt_path} was written by another run or seed of the same "
                                    f"config; refusing to resume")
        written, now = state.get("world_size", 1), distributed.world_size()
        if written != now:
            raise BudgetVisionError(f"checkpoint {self.ckpt_path} was written by {written} training process(es) "
                                    f"(torchrun's world size), not {now}; resume it with {written}")
        return state

    def _rank_state(self) -> dict:
        """What each rank of a torchrun group has of its own: its shard's augmentation generator (and
        the data position, the same on every rank), its random stream and its metric sums since the
        last log. The checkpoint keeps rank 0's at the top level, as one process writes them."""
        return {"loader": self.loader.state_dict(), "sums": {k: v.detach().cpu() for k, v in self.sums.items()},
                "seen": self.seen, "rng": _rng_state(self.device)}

    def checkpoint(self) -> None:
        self.t_checkpoint = time.perf_counter()
        ranks = distributed.gather(self._rank_state())
        if not self.main:
            return
        self.log.flush()
        if self.board is not None:
            self.board.flush()
        save_checkpoint(self.ckpt_path, {
            "config": self.cfg.to_dict(), "run_id": self.run_id, "seed": self.seed, "step": self.step,
            "skipped": self.skipped,
            "wall_seconds": self.wall(), "objective": self.objective.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.opts.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            **ranks[0], "world_size": len(ranks), "other_ranks": ranks[1:],
            "metrics_bytes": self.metrics_path.stat().st_size, "commits": self.commits,
        })

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.t_start

    # ------------------------------------------------------------------ one step
    def train_step(self) -> None:
        x, y = next(self.loader)
        try:
            out = self.objective.train_step(x, y, self.opts, grad_clip=self.tc.grad_clip)
        except NonFiniteLoss as e:
            if self.tc.nonfinite != "skip":
                last = self.ckpt_path if self.ckpt_path.exists() else "none (none written yet)"
                raise NonFiniteLoss(f"{e} at step {self.step + 1}; last good checkpoint: {last}") from None
            self.skipped += 1
            out = None
        for s in self.schedulers.values():
            s.step()
        if self.ema is not None and out is not None:
            self.ema.update_parameters(self.objective.ema_target())
        self.step += 1
        if out is not None:
            for k, v in out.items():
                v = v.detach().float()
                self.sums[k] = self.sums.get(k, 0) + (v if k == "correct" else v * len(y))
            self.seen += len(y)
        self.images_since_log += len(y)

    # ------------------------------------------------------------------ log window
    def log_window(self) -> None:
        now = time.perf_counter()
        sums, seen, images = self._window_totals()
        row = {"kind": "train", "step": self.step,
               **{k: v.item() / max(seen, 1) for k, v in sums.items()},
               "images_per_s": images / (now - self.t_log)}
        if "main" in self.schedulers:
            row["lr"] = self.schedulers["main"].get_last_lr()[0]
        if "correct" in row:
            row["accuracy"] = row.pop("correct")
        self.sums, self.seen = {}, 0
        self.t_log, self.images_since_log = now, 0
        if not self.main:
            return
        self.write(row)
        self.watch_collapse(row)
        self.bar.set_postfix({k: f"{row[k]:.3g}" for k in row if k not in ("kind", "step", "lr")}, refresh=False)
        self.bar.update(self.step - self.bar.n)

    def _window_totals(self) -> tuple[dict[str, torch.Tensor], int, int]:
        """The log window's metric sums, images its metrics count and images trained on; under
        torchrun summed over the ranks in one all_reduce, so a logged row is the global batch's."""
        if not distributed.active():
            return self.sums, self.seen, self.images_since_log
        keys = sorted(self.sums)
        counts = torch.tensor([self.seen, self.images_since_log], dtype=torch.float64, device=self.device)
        *sums, seen, images = distributed.all_sum(torch.cat([
            torch.stack([self.sums[k].double() for k in keys]) if keys else counts[:0], counts])).unbind()
        return dict(zip(keys, sums)), int(seen.item()), int(images.item())

    def watch_collapse(self, row: dict) -> None:
        """A GAN whose discriminator loss sits at ~0 for a stretch has likely collapsed: say so once."""
        self.collapse.append(row.get("d_loss", math.inf) < COLLAPSE_D_LOSS)
        if self.warned or len(self.collapse) < COLLAPSE_WINDOWS or not all(self.collapse[-COLLAPSE_WINDOWS:]):
            return
        self.warned = True
        message = (f"discriminator loss below {COLLAPSE_D_LOSS} for {COLLAPSE_WINDOWS} log windows "
                   f"up to step {self.step}: the generator has likely collapsed")
        self.write({"kind": "warning", "step": self.step, "message": message})
        tqdm.write(f"budgetvision: warning: {self.cfg.preset} seed {self.seed}: {message}", file=sys.stderr)

    def write(self, row: dict) -> None:
        """One row of metrics.jsonl, and its numbers as TensorBoard scalars (train/..., val/...)."""
        self.log.write(json.dumps(row) + "\n")
        if self.board is not None and row["kind"] in ("train", "val"):
            for key, value in row.items():
                if key not in ("kind", "step") and isinstance(value, (int, float)):
                    self.board.add_scalar(f"{row['kind']}/{key}", value, row["step"])

    def status(self, text: str) -> None:
        if self.main and not self.progress:
            print(f"{self.cfg.preset} seed {self.seed} step {self.step}/{self.tc.steps} {text}", file=sys.stderr)

    # ------------------------------------------------------------------ evaluation while training
    def network(self) -> nn.Module:
        """What is evaluated and sampled: the EMA copy when the run keeps one."""
        return self.ema.module if self.ema is not None else self.objective.ema_target()

    def evaluate(self, x, y) -> dict:
        return evaluate_classifier(for_evaluation(self.network(), self.cfg), x, y, mean=self.mean, std=self.std,
                                   device=self.device, num_classes=self.spec.num_classes,
                                   batch_size=max(self.tc.batch_size, 256), amp=self.tc.amp)

    def validate(self) -> None:
        v = self.evaluate(*self.prep.splits.val)
        self.write({"kind": "val", "step": self.step, "loss": v["loss"], "accuracy": v["accuracy"]})
        self.status(f"val_acc {v['accuracy']:.4f}")
        if self.on_validation is not None:   # a sweep's pruner reads the curve (and may stop the run)
            self.on_validation(self.step, v["accuracy"])

    def write_samples(self) -> Path:
        net = self.network()
        with eval_mode(net):
            images = self.objective.sample(SAMPLE_SEEDS, network=net)
        path = self.dir / "samples" / f"step-{self.step:06d}.png"
        path.parent.mkdir(exist_ok=True)
        sample_grid(images, path)
        if self.board is not None:
            grid = torchvision.utils.make_grid(images.float().clamp(-1, 1).add(1).div(2).cpu(), nrow=8)
            self.board.add_image("samples", grid, self.step)
        self.status(f"samples {path}")
        return path

    # ------------------------------------------------------------------ the loop and its end
    def run(self) -> dict:
        with _board_errors_in_main_thread():
            return self._run()

    def _run(self) -> dict:
        tc = self.tc
        # Line-buffered: a reader (or a kill) sees whole rows. Only rank 0 of a torchrun group writes.
        self.log = (os.fdopen(open_run_file(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a",
                              buffering=1) if self.main else None)
        # TensorBoard events beside metrics.jsonl; a resumed run drops the events logged after its checkpoint.
        self.board = (SummaryWriter(str(self.dir), purge_step=self.step or None)
                      if tc.tensorboard and self.main else None)
        self.t_start = self.t_log = self.t_checkpoint = time.perf_counter()
        self.images_since_log = 0
        self.bar = tqdm(total=tc.steps, initial=self.step, desc=f"{self.cfg.preset} seed {self.seed}", unit="step",
                        disable=not (self.progress and self.main), dynamic_ncols=True, file=sys.stderr)
        try:
            with _StopSignals(self.dir.parent) as stop:
                self.loop(stop)
        finally:
            self.bar.close()
            if self.log is not None:
                self.log.close()
            if self.board is not None:
                self.board.close()
        return distributed.from_main(self.finish)   # rank 0 evaluates; the others wait for its results

    def loop(self, stop: _StopSignals) -> None:
        tc = self.tc
        while self.step < tc.steps:
            self.train_step()
            shared = rebalance_threads()   # another budgetvision process started or ended beside this one
            if shared is not None:
                self.status(f"CPU threads {shared[0]} -> {shared[1]}: shared with this machine's other "
                            "budgetvision processes (--threads N fixes the count)")
            last = self.step == tc.steps
            if self.step % tc.log_every == 0 or last:
                self.log_window()
            if self.main and self.validates and (self.step % tc.eval_every == 0 or last):
                self.validate()
            if self.main and not self.classify and (self.step % tc.sample_every == 0 or last):
                self.write_samples()
            overdue = time.perf_counter() - self.t_checkpoint > 60 * tc.checkpoint_minutes
            # Under torchrun a signal or the wall clock may reach one rank first: all stop at the same step.
            signum, overdue = distributed.agree(stop.signum or 0, overdue)
            if self.step % tc.checkpoint_every == 0 or last or overdue or signum:
                self.checkpoint()
            if signum and not last:
                name = signal.Signals(signum).name
                raise StopRequested(f"stopped by {name} after step {self.step} of {tc.steps}; checkpoint written; "
                                    f"resume with: budgetvision train --resume {self.dir.parent}", signum)

    def finish(self) -> dict:
        tc, prep = self.tc, self.prep
        results = {
            "preset": self.cfg.preset, "task": self.cfg.task, "seed": self.seed, "params": prep.params,
            "param_counts": prep.param_counts, "steps": tc.steps, "batch_size": tc.batch_size,
            "images_seen": tc.images_seen, "nonfinite_skipped": self.skipped, "wall_seconds": self.wall(),
            "device": str(self.device), "world_size": distributed.world_size(), "over_budget": prep.over_budget,
            "ema": self.ema is not None, "trained_at": self.commits,
        }
        if self.classify:
            splits = prep.splits
            test = self.evaluate(*splits.test)
            train_eval = self.evaluate(*eval_subset(splits.train, TRAIN_ACCURACY_IMAGES)[:2])
            results.update({
                "train_accuracy": train_eval["accuracy"], "train_accuracy_n": train_eval["n"],
                "train_accuracy_draw": draw_record("train", train_eval["n"], len(splits.train[1]))["draw"],
                "val_accuracy": self.evaluate(*splits.val)["accuracy"] if self.validates else None,
                "test_accuracy": test["accuracy"],
                "test_loss": test["loss"], "test_accuracy_batch_std": test["batch_accuracy_std"],
                "test_n": test["n"], "confusion": test["confusion"].tolist(),
            })
        else:
            results["samples"] = str(self.dir / "samples" / f"step-{self.step:06d}.png")
        write_json(self.dir / "results.json", results)
        return results


def same_run(state: dict, run_id: str | None, seed: int) -> bool:
    """Whether a checkpoint is of this run and seed; runs and checkpoints from before run ids pass on
    their config alone."""
    theirs = state.get("run_id")
    return (run_id is None or theirs is None or theirs == run_id) and state.get("seed", seed) == seed


def _open_seed_dir(seed_dir: Path) -> None:
    if seed_dir.is_symlink():   # its files would be written wherever the link points
        raise BudgetVisionError(f"refusing to train into {seed_dir}: it is a symbolic link")
    seed_dir.mkdir(parents=True, exist_ok=True)
    for stale in seed_dir.glob(".*.tmp"):  # a write a kill interrupted; the renamed file is intact
        stale.unlink()


def fit(prep: Prepared, seed: int, seed_dir: Path, *, progress: bool = True, on_validation=None,
        run_id: str | None = None) -> dict:
    """Train one seed into `seed_dir`, resuming from `seed_dir/checkpoint.pt` when it exists.
    `on_validation(step, accuracy)` is called after each validation pass (a sweep's pruner); `run_id`
    (run.json's) is written into its checkpoints, and a checkpoint of another run is refused.

    Returns that seed's results (also written to `seed_dir/results.json`)."""
    distributed.from_main(lambda: _open_seed_dir(seed_dir))
    training = Training(prep, seed, seed_dir, progress, on_validation, run_id=run_id)
    training.restore()
    return training.run()


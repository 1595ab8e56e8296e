"""Run folders: `runs/<NNNNN>-<preset>/` with the resolved config, one sub-folder per seed, the
aggregate results (mean ± std over seeds) and the figures; and the one way to open a trained seed."""
from __future__ import annotations

import math
import re
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from .. import distributed
from ..budget import budget_of
from ..config import MAX_SEED, RunConfig, apply_overrides, load_config, saved_config
from ..data import DataSpec, splits_of
from ..device import precision, versions
from ..errors import BudgetVisionError, ConfigError
from ..io import RunLock, load_checkpoint, make_folder, read_json, read_log, write_json
from ..objectives import Objective, build_objective
from ..report.plots import confusion_matrix, loss_curves, training_graph
from ..loop import fit, same_run
from ..setup import Prepared, for_evaluation, shape_spec

RUN_FORMAT = "budgetvision-run-1"
TASK_NAMES = {"classify": "classifier", "generate": "generator"}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) over seeds; one value has std 0."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)


def new_run_dir(out: Path, preset: str) -> Path:
    """The next free `NNNNN-<preset>` folder under `out` (created here, after all validation)."""
    make_folder(out)
    if not out.is_dir():
        raise BudgetVisionError(f"output path {out} is not a folder")
    taken = [int(m.group(1)) for p in out.iterdir() if (m := re.match(r"(\d{5})-", p.name))]
    for index in range(max(taken, default=0) + 1, max(taken, default=0) + 1000):
        run_dir = out / f"{index:05d}-{preset}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:  # another process took it; try the next number
            continue
        except OSError as e:
            raise BudgetVisionError(f"cannot write to output folder {out}: {e.strerror}") from None
    raise BudgetVisionError(f"no free run folder under {out}")


def seed_dirs(run_dir: Path, seeds: list[int]) -> dict[int, Path]:
    return {s: run_dir / f"seed-{s}" for s in seeds}


def start_run(prep: Prepared, out: Path, seeds: list[int]) -> Path:
    run_dir = new_run_dir(out, prep.config.preset)
    try:
        write_json(run_dir / "config.json", prep.config.to_dict())
        write_json(run_dir / "run.json", {
            "format": RUN_FORMAT, "run_id": uuid.uuid4().hex, "preset": prep.config.preset, "seeds": seeds,
            "params": prep.params,
            "over_budget": prep.over_budget, "device": str(prep.device),
            "precision": precision(prep.device, prep.config.train), "versions": versions(prep.device),
            # what a classifier's inputs are standardised with: evaluated elsewhere (another data root,
            # the official AddNIST files) it still reads them as it trained
            **({"input_mean": list(prep.splits.spec.mean), "input_std": list(prep.splits.spec.std)}
               if prep.config.task == "classify" else {}),
            # where it read its data: a resume reads it there again unless told otherwise
            **({"data_root": str(Path(prep.data_root).resolve())} if prep.data_root is not None else {}),
        })
    except OSError as e:  # a full disk or a vanished folder: leave nothing half-written
        shutil.rmtree(run_dir, ignore_errors=True)
        raise BudgetVisionError(f"cannot write run folder {run_dir}: {e.strerror}") from None
    return run_dir


def open_run(run_dir: Path) -> tuple[RunConfig, dict]:
    """Read a run folder's config and manifest; refuse folders from another tool or version."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BudgetVisionError(f"no run folder at {run_dir}")
    manifest = read_json(run_dir / "run.json", keys=("format",))
    if manifest.get("format") != RUN_FORMAT:
        raise BudgetVisionError(f"{run_dir} was written by another version (format {manifest.get('format')!r}, "
                                f"expected {RUN_FORMAT!r})")
    _check_manifest(manifest, run_dir / "run.json")
    return load_config(run_dir / "config.json"), manifest


def recorded_data_root(manifest: dict) -> Path | None:
    """The data root a run trained from, as its run.json records it, where that is still a folder."""
    root = manifest.get("data_root")
    return Path(root) if isinstance(root, str) and Path(root).is_dir() else None


def trained_spec(spec: DataSpec, manifest: dict) -> DataSpec:
    """`spec` with the input statistics the run trained with, where its run.json recorded them (runs
    from before it did read them from the data they are evaluated on)."""
    if "input_mean" not in manifest:
        return spec
    return replace(spec, mean=tuple(manifest["input_mean"]), std=tuple(manifest["input_std"]))


def _check_manifest(manifest: dict, path: Path) -> None:
    """What the run layer reads from run.json, checked once: a seed becomes a folder name (a string
    seed '../..' one outside the run), a run id and the over-budget flag decide what resumes."""
    seeds = manifest.get("seeds")
    if not (isinstance(seeds, list) and seeds and all(type(s) is int and 0 <= s <= MAX_SEED for s in seeds)
            and len(set(seeds)) == len(seeds)):
        raise BudgetVisionError(f"corrupt file {path}: 'seeds' must be a list of distinct seeds, got {seeds!r:.80}")
    if not isinstance(manifest.get("over_budget"), bool) or not isinstance(manifest.get("preset"), str):
        raise BudgetVisionError(f"corrupt file {path}: 'over_budget' must be true or false and 'preset' a name")
    if not isinstance(manifest.get("run_id", ""), str):
        raise BudgetVisionError(f"corrupt file {path}: 'run_id' must be a string")
    stats = [manifest[k] for k in ("input_mean", "input_std") if k in manifest]
    if stats and not (len(stats) == 2 and all(isinstance(v, list) and v and len(v) == len(stats[0]) and
                                               all(type(x) in (int, float) for x in v) for v in stats)):
        raise BudgetVisionError(f"corrupt file {path}: 'input_mean' and 'input_std' must be lists of numbers, "
                                "one per channel")


@dataclass
class OpenedSeed:
    """One trained seed of a run, opened once: what every command that reads a run works from."""
    run_dir: Path
    config: RunConfig
    manifest: dict
    seed: int
    seed_dir: Path
    step: int                        # the checkpoint's optimisation step
    spec: DataSpec                   # the data set's shape, classes and (classifiers) input statistics
    objective: Objective             # eval mode
    network: nn.Module               # what is evaluated or sampled: the EMA copy when kept, eval mode,
                                     # and for classifiers as the run evaluates (flip TTA where it asks)
    weights: str                     # which weights `network` holds: "ema" (the EMA copy) | "trained"


def open_seed(run_dir: Path, *, device, seed: int | None = None, task: str | None = None,
              data_root: Path | None = None, spec: DataSpec | None = None, why: str | None = None,
              sampling: list[str] | None = None, ema: bool = True) -> OpenedSeed:
    """Open a run's seed checkpoint (default: its first seed). `task` refuses a run of the other kind,
    saying `why`. Classifiers need their train split's statistics: `spec`, else the data is loaded.
    `sampling` overrides how a generator samples (`objective.sampler=dpmpp2m`, ...), nothing it learned.
    `ema=False` opens the trained weights where the run also kept an EMA copy (the default network)."""
    run_dir = Path(run_dir)
    cfg, manifest = open_run(run_dir)
    trained = cfg   # what the checkpoint must have been trained with; sampling changes nothing it learned
    if sampling:
        cfg = apply_overrides(cfg, sampling)
    if task is not None and cfg.task != task:
        why = why or f"this command needs a {TASK_NAMES[task]} run"
        raise BudgetVisionError(f"{run_dir} is a {TASK_NAMES[cfg.task]} run ({cfg.preset}); {why}")
    seeds = manifest["seeds"]
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise ConfigError(f"{run_dir} has no seed {seed} (it has {seeds})")
    if spec is None:
        spec = splits_of(cfg.data, data_root).spec if cfg.task == "classify" else shape_spec(cfg, data_root)
    if cfg.task == "classify":
        spec = trained_spec(spec, manifest)
    seed_dir = seed_dirs(run_dir, seeds)[seed]
    objective, network, step, weights = _load_trained(cfg, spec, seed_dir / "checkpoint.pt", device, ema,
                                                      trained=trained, run_id=manifest.get("run_id"), seed=seed)
    return OpenedSeed(run_dir, cfg, manifest, seed, seed_dir, step, spec, objective, network, weights)


def _load_trained(cfg: RunConfig, spec: DataSpec, ckpt_path: Path, device, ema: bool = True, *,
                  trained: RunConfig, run_id: str | None, seed: int) -> tuple[Objective, nn.Module, int, str]:
    state = load_checkpoint(ckpt_path, map_location=device)
    _check_belongs(state, ckpt_path, trained, run_id, seed)
    objective = build_objective(cfg, spec).to(device)
    try:
        objective.load_state_dict(state["objective"])
        network, weights = objective.ema_target(), "trained"
        if ema and state.get("ema") is not None:
            averaged = torch.optim.swa_utils.AveragedModel(network, use_buffers=True)
            averaged.load_state_dict(state["ema"])
            network, weights = averaged.module, "ema"
    except (RuntimeError, KeyError) as e:
        raise BudgetVisionError(f"checkpoint {ckpt_path} does not fit preset '{cfg.preset}': "
                                f"{str(e).splitlines()[0]}") from None
    if cfg.train.channels_last:   # as the run trained: on a CPU too, ~2x faster sampling of a conv net
        objective.to(memory_format=torch.channels_last)
        network.to(memory_format=torch.channels_last)
    objective.eval()
    network.eval()
    return objective, for_evaluation(network, cfg), int(state["step"]), weights


def _check_belongs(state: dict, ckpt_path: Path, cfg: RunConfig, run_id: str | None, seed: int) -> None:
    """A checkpoint is read only by the run and seed that wrote it, as resume does: one copied in from
    another run (even of the same preset) would be scored as this run's."""
    theirs = state.get("config", {})
    try:
        same = saved_config(theirs) == cfg
    except ConfigError:
        same = False
    if not same:
        preset = theirs.get("preset") if isinstance(theirs, dict) else None
        raise BudgetVisionError(f"checkpoint {ckpt_path} belongs to another config (preset '{preset}') than "
                                f"{ckpt_path.parent.parent}/config.json")
    if not same_run(state, run_id, seed):
        raise BudgetVisionError(f"checkpoint {ckpt_path} was written by another run or seed of the same config, "
                                f"not by {ckpt_path.parent.parent}")


def train_seeds(prep: Prepared, run_dir: Path, seeds: list[int], *, progress: bool = True,
                on_validation=None) -> dict:
    """Train (or resume, or skip when finished) every seed, then aggregate and draw the figures. Under
    torchrun every rank trains; rank 0 alone reads and writes the run folder."""
    with _locked(run_dir):   # one process per run: a second one refuses instead of interleaving the logs
        per_seed = []
        run_id = distributed.from_main(lambda: read_json(run_dir / "run.json").get("run_id"))
        for seed, sdir in seed_dirs(run_dir, seeds).items():
            done = distributed.from_main(lambda: _finished(sdir))
            per_seed.append(done or fit(prep, seed, sdir, progress=progress, on_validation=on_validation,
                                        run_id=run_id))
        return distributed.from_main(lambda: finish_run(prep, run_dir, per_seed))


@contextmanager
def _locked(run_dir: Path):
    """The run's lock, held by rank 0 for a whole torchrun group; its refusal stops every rank."""
    lock = RunLock(run_dir)

    def take() -> None:
        lock.__enter__()

    distributed.from_main(take)
    try:
        yield
    finally:
        lock.__exit__(None, None, None)   # a no-op on the ranks that never took it


def _finished(seed_dir: Path) -> dict | None:
    path = seed_dir / "results.json"
    return read_json(path) if path.exists() else None


def finish_run(prep: Prepared, run_dir: Path, per_seed: list[dict]) -> dict:
    cfg = prep.config
    spec = prep.splits.spec
    results = {
        "preset": cfg.preset, "task": cfg.task, "dataset": cfg.data.name, "model": cfg.model.name,
        "params": prep.params, "param_counts": prep.param_counts,
        "param_budget": budget_of(cfg).max_params, "step_budget": budget_of(cfg).max_steps,
        "steps": cfg.train.steps, "batch_size": cfg.train.batch_size,
        "images_seen": cfg.train.images_seen,   # per seed
        "seeds": [r["seed"] for r in per_seed], "over_budget": prep.over_budget,
        "device": str(prep.device), "precision": precision(prep.device, cfg.train), "versions": versions(prep.device),
        "world_size": max(r.get("world_size", 1) for r in per_seed),   # training processes (torchrun)
        "wall_seconds": sum(r["wall_seconds"] for r in per_seed),
    }
    results["nonfinite_skipped"] = sum(r["nonfinite_skipped"] for r in per_seed)
    rows = {r["seed"]: read_metrics(run_dir / f"seed-{r['seed']}" / "metrics.jsonl") for r in per_seed}
    budget_note = f"{prep.params:,} params, {cfg.train.steps:,} steps x batch {cfg.train.batch_size}"
    title = f"{cfg.preset} on {cfg.data.name} ({budget_note})"
    if cfg.task == "classify":
        for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
            values = [r[key] for r in per_seed]
            # val is absent (null) where data.val_fraction = 0: the run trained on the whole split.
            results[key], results[f"{key}_std"] = mean_std(values) if None not in values else (None, None)
        # The papers' "±" is the spread of per-batch accuracy within one run; kept beside the seeds' std.
        results["test_accuracy_batch_std"] = mean_std([r["test_accuracy_batch_std"] for r in per_seed])[0]
        training_graph(rows, run_dir / "training.png", title)
        confusion = torch.tensor([r["confusion"] for r in per_seed]).sum(0)
        confusion_matrix(confusion, spec.class_names, run_dir / "confusion.png",
                         f"{cfg.preset}: test confusion, {len(per_seed)} seed(s)")
    else:
        results["samples"] = [r["samples"] for r in per_seed]
        loss_curves(rows, run_dir / "training.png", title)
    results["warnings"] = warnings_of(run_dir, results["seeds"])
    results["per_seed"] = [{k: v for k, v in r.items() if k != "confusion"} for r in per_seed]
    write_json(run_dir / "results.json", results)
    return results


def read_metrics(path: Path) -> list[dict]:
    """A seed's metrics.jsonl as a list of rows (empty before its first log; damaged lines skipped)."""
    return read_log(path)


def warnings_of(run_dir: Path, seeds: list[int]) -> list[str]:
    """Warnings the training loop logged (e.g. GAN collapse), per seed."""
    return [f"seed {s}: {r['message']}" for s in seeds
            for r in read_metrics(Path(run_dir) / f"seed-{s}" / "metrics.jsonl") if r["kind"] == "warning"
            and "message" in r]


def summary_line(results: dict) -> str:
    if results["task"] != "classify":
        counts = ", ".join(f"{k} {v:,}" for k, v in results["param_counts"].items() if k != "total")
        return (f"{results['preset']} on {results['dataset']}: {results['params']:,} params ({counts}), "
                f"{results['steps']:,} steps, batch {results['batch_size']}"
                + (" OVER BUDGET" if results["over_budget"] else "") + f"; samples: {results['samples'][-1]}")
    pct = lambda key: f"{100 * results[key]:.2f} ± {100 * results[key + '_std']:.2f} %"  # noqa: E731
    over = " OVER BUDGET" if results["over_budget"] else ""
    return (f"{results['preset']} on {results['dataset']}: test {pct('test_accuracy')} over "
            f"{len(results['seeds'])} seed(s) (per-batch ± {100 * results['test_accuracy_batch_std']:.2f} %), "
            f"train {pct('train_accuracy')}; {results['params']:,} params, {results['steps']:,} steps, "
            f"batch {results['batch_size']}{over}")

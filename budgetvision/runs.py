"""Run folders: `runs/<NNNNN>-<preset>/` with the resolved config, one sub-folder per seed, the
aggregate results (mean ± std over seeds) and the figures."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch

from .config import RunConfig, load_config
from .data import load_splits
from .errors import BudgetVisionError
from .evaluation import evaluate_classifier
from .io import read_json, write_json
from .report.plots import confusion_matrix, loss_curves, training_graph
from .train import Prepared, fit, input_stats, load_trained, mean_std, versions

RUN_FORMAT = "budgetvision-run-1"


def new_run_dir(out: Path, preset: str) -> Path:
    """The next free `NNNNN-<preset>` folder under `out` (created here, after all validation)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BudgetVisionError(f"cannot create output folder {out}: {e.strerror}") from None
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
            "format": RUN_FORMAT, "preset": prep.config.preset, "seeds": seeds, "params": prep.params,
            "over_budget": prep.over_budget, "device": str(prep.device), "versions": versions(prep.device),
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
    manifest = read_json(run_dir / "run.json")
    if manifest.get("format") != RUN_FORMAT:
        raise BudgetVisionError(f"{run_dir} was written by another version (format {manifest.get('format')!r}, "
                                f"expected {RUN_FORMAT!r})")
    return load_config(run_dir / "config.json"), manifest


def train_seeds(prep: Prepared, run_dir: Path, seeds: list[int], *, progress: bool = True) -> dict:
    """Train (or resume, or skip when finished) every seed, then aggregate and draw the figures."""
    per_seed = []
    for seed, sdir in seed_dirs(run_dir, seeds).items():
        if (sdir / "results.json").exists():
            per_seed.append(read_json(sdir / "results.json"))
        else:
            per_seed.append(fit(prep, seed, sdir, progress=progress))
    return finish_run(prep, run_dir, per_seed)


def finish_run(prep: Prepared, run_dir: Path, per_seed: list[dict]) -> dict:
    cfg = prep.config
    spec = prep.splits.spec
    results = {
        "preset": cfg.preset, "task": cfg.task, "dataset": cfg.data.name, "model": cfg.model.name,
        "params": prep.params, "param_counts": prep.param_counts, "param_budget": cfg.budget.max_params, "step_budget": cfg.budget.max_steps,
        "steps": cfg.train.steps, "batch_size": cfg.train.batch_size,
        "images_seen": cfg.train.steps * cfg.train.batch_size,   # per seed
        "seeds": [r["seed"] for r in per_seed], "over_budget": prep.over_budget,
        "device": str(prep.device), "versions": versions(prep.device),
        "wall_seconds": sum(r["wall_seconds"] for r in per_seed),
    }
    results["nonfinite_skipped"] = sum(r["nonfinite_skipped"] for r in per_seed)
    rows = {r["seed"]: _read_metrics(run_dir / f"seed-{r['seed']}" / "metrics.jsonl") for r in per_seed}
    budget_note = f"{prep.params:,} params, {cfg.train.steps:,} steps x batch {cfg.train.batch_size}"
    title = f"{cfg.preset} on {cfg.data.name} ({budget_note})"
    if cfg.task == "classify":
        for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
            results[key], results[f"{key}_std"] = mean_std([r[key] for r in per_seed])
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


def _read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def warnings_of(run_dir: Path, seeds: list[int]) -> list[str]:
    """Warnings the training loop logged (e.g. GAN collapse), per seed."""
    return [f"seed {s}: {r['message']}" for s in seeds
            for r in _read_metrics(Path(run_dir) / f"seed-{s}" / "metrics.jsonl") if r["kind"] == "warning"]


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


def evaluate_run(run_dir: Path, *, data_root: Path | None, device) -> dict:
    """Re-evaluate every seed's latest checkpoint on the test split; writes `eval.json`."""
    cfg, manifest = open_run(run_dir)
    if cfg.task != "classify":
        raise BudgetVisionError(f"{run_dir} is a {cfg.task} run; eval here needs a classifier run")
    splits = load_splits(cfg.data.name, data_root, val_fraction=cfg.data.val_fraction, seed=cfg.data.split_seed)
    spec = splits.spec
    per_seed = []
    for seed, sdir in seed_dirs(run_dir, manifest["seeds"]).items():
        if not (sdir / "checkpoint.pt").exists():
            continue
        _, network, step = load_trained(cfg, spec, sdir / "checkpoint.pt", device)
        mean, std = input_stats(cfg, spec)
        test = evaluate_classifier(network, *splits.test, mean=mean, std=std, device=device,
                                   num_classes=spec.num_classes, batch_size=max(cfg.train.batch_size, 256))
        per_seed.append({"seed": seed, "step": step, "test_accuracy": test["accuracy"], "test_loss": test["loss"],
                         "test_accuracy_batch_std": test["batch_accuracy_std"], "test_n": test["n"]})
    if not per_seed:
        raise BudgetVisionError(f"{run_dir} has no checkpoint to evaluate")
    mean, std = mean_std([r["test_accuracy"] for r in per_seed])
    out = {"preset": cfg.preset, "dataset": cfg.data.name, "params": manifest["params"],
           "over_budget": manifest["over_budget"], "test_accuracy": mean, "test_accuracy_std": std,
           "per_seed": per_seed}
    write_json(Path(run_dir) / "eval.json", out)
    return out

"""Hyper-parameter sweeps on Optuna: each trial is an ordinary run folder, trials are coordinated
through the study's storage (SQLite next to the runs by default; a server database for many
machines), and the objective is validation accuracy, never the test split. A class-conditional
generator's trials are scored by a judge (a classifier run) reading its samples against the labels
asked for: Rzayev's LeNet score, which reads no real image (the judge-feature FID beside it, which
does, is reported and chooses nothing).

Search spaces are written as on the command line: `optim.lr=log:1e-4:1e-2` (log-uniform),
`train.label_smoothing=0:0.2` (uniform), `train.batch_size=int:32:256`, `optim.name=adam|adamw|sgd`
(categorical, each value typed as its config field, so `model.capacity=1|2|3` is three ints; with
`grid=True` every combination of categorical values is run once).
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig, apply_overrides
from .errors import BudgetError, BudgetVisionError, ConfigError
from .runs import evaluate_generator, read_metrics, start_run, train_seeds
from .setup import prepare

HEARTBEAT_SECONDS = 30    # a worker's trial is alive while it beats; a killed worker's trial is failed
                          # (and retried) once silent for three beats
PRUNERS = ("median", "hyperband", "none")
JUDGE_SAMPLES = 1_000     # CHOICE: a generator trial's judge samples, 100 per class (standard error ~0.5
                          # point at 97 %); Rzayev does not say how many its LeNet score read


@dataclass(frozen=True)
class Dimension:
    key: str                      # a config key, e.g. optim.lr
    kind: str                     # log | float | int | choice
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str | int | float | bool, ...] = ()

    def suggest(self, trial) -> str | float | int:
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high))
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "log")


def parse_space(items: list[str], cfg: RunConfig) -> list[Dimension]:
    """`key=log:lo:hi`, `key=lo:hi`, `key=int:lo:hi`, `key=a|b|c`; every key and value is checked
    against the config by applying it, so a bad space fails before any trial starts."""
    dims = []
    for item in items:
        key, sep, spec = item.partition("=")
        if not sep or not key.strip() or not spec.strip():
            raise ConfigError(f"malformed search dimension {item!r}: use e.g. optim.lr=log:1e-4:1e-2")
        key = key.strip()
        parts = spec.split(":")
        if "|" in spec:
            dim = Dimension(key, "choice", choices=tuple(_typed(cfg, key, v.strip()) for v in spec.split("|")))
        elif parts[0] in ("log", "int") and len(parts) == 3:
            dim = Dimension(key, parts[0], *_bounds(parts[1:], item))
        elif len(parts) == 2:
            dim = Dimension(key, "float", *_bounds(parts, item))
        else:
            raise ConfigError(f"malformed search dimension {item!r}: use log:lo:hi, lo:hi, int:lo:hi or a|b|c")
        if dim.kind == "log" and dim.low <= 0:
            raise ConfigError(f"{item!r}: a log range needs lo > 0")
        for value in (dim.choices or (dim.low, dim.high)):   # every end (or choice) must be a valid config
            apply_overrides(cfg, [f"{key}={int(value) if dim.kind == 'int' else value}"])
        dims.append(dim)
    if not dims:
        raise ConfigError("a sweep needs at least one --space dimension")
    if len({d.key for d in dims}) != len(dims):
        raise ConfigError("a sweep dimension is given twice")
    return dims


def _typed(cfg: RunConfig, key: str, raw: str) -> str | int | float | bool:
    """A choice as the config holds it once applied (model.capacity=1|2|3 gives 1, 2, 3), so trials
    record ints as ints and a grid over them is a grid of numbers; a value Optuna's categorical
    cannot hold (a tuple such as optim.betas) stays as written, and applies the same from there."""
    value = functools.reduce(getattr, key.split("."), apply_overrides(cfg, [f"{key}={raw}"]))
    return value if isinstance(value, (str, int, float, bool)) else raw


def _bounds(parts: list[str], item: str) -> tuple[float, float]:
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise ConfigError(f"{item!r}: the range ends must be numbers") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"{item!r}: the range needs lo < hi")
    return low, high


def open_study(storage: str, study: str, *, preset: str, create: bool, grid: list[Dimension] | None = None,
               pruner: str = "median", metric: str = "validation accuracy", heartbeat: int = HEARTBEAT_SECONDS):
    """Create or join a study; a study of another preset, or scored otherwise, is refused (one line)."""
    import optuna
    from optuna import storages

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Optuna 4.9 renamed the callback that fails (and retries) a dead worker's trial
    retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback
    with _schema_lock(storage):
        try:
            with warnings.catch_warnings():   # heartbeats are "experimental" in Optuna; they are what we need
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                store = storages.RDBStorage(storage, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                                            heartbeat_stale_trial_callback=retry(max_retry=1))
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's many errors for a bad or unreachable URL
            raise BudgetVisionError(f"cannot open study storage {storage}: {str(e).splitlines()[0]}") from None
    sampler = optuna.samplers.GridSampler({d.key: list(d.choices) for d in grid}) if grid else None
    pruners = {"median": optuna.pruners.MedianPruner(n_warmup_steps=1), "none": optuna.pruners.NopPruner(),
               "hyperband": optuna.pruners.HyperbandPruner()}
    if not create:
        try:
            study_obj = optuna.load_study(study_name=study, storage=store)
        except KeyError:
            raise BudgetVisionError(f"no study {study!r} in {storage}") from None
    else:
        with _schema_lock(storage):
            study_obj = optuna.create_study(study_name=study, storage=store, direction="maximize",
                                            load_if_exists=True, sampler=sampler, pruner=pruners[pruner])
    for key, ours in (("preset", preset), ("metric", metric if create else None)):
        theirs = study_obj.user_attrs.get(key)
        if theirs is None and create:
            study_obj.set_user_attr(key, ours)
        elif ours is not None and theirs is not None and theirs != ours:
            what = "sweeps preset" if key == "preset" else "scores its trials by"
            raise BudgetVisionError(f"study {study!r} in {storage} {what} {theirs!r}, not {ours!r}")
    return study_obj


@contextlib.contextmanager
def _schema_lock(storage: str):
    """Workers started together on a new SQLite file would race to create its tables (and the
    loser fails on a UNIQUE constraint): they take turns through flock on `<file>.lock`. Server
    databases create their schema under their own transactions."""
    path = storage.removeprefix("sqlite:///")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None
    if path == storage or path in ("", ":memory:") or fcntl is None:
        yield
        return
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)   # closing releases the lock


def run_sweep(cfg: RunConfig, space: list[Dimension], *, trials: int, storage: str, study: str, out: Path,
              data_root: Path | None, device, grid: bool = False, pruner: str = "median",
              judge: Path | None = None, judge_n: int | None = None, over_budget: bool = False,
              heartbeat: int = HEARTBEAT_SECONDS, progress: bool = False) -> dict:
    """This worker's share of a study's trials: every trial an ordinary run under `out`. A classifier
    trial is scored by its final validation accuracy (mean over its seeds) and pruned on its
    validation curve; a class-conditional generator's by `judge`'s accuracy on `judge_n` of its
    samples (seeds 0..n-1, labels seed % classes), after training. A point of the space over the
    budget is a failed trial that says why (the sweep goes on), or with `over_budget` a run marked so."""
    import optuna

    judge_n = JUDGE_SAMPLES if judge_n is None else judge_n
    metric = _metric(cfg, judge, judge_n)
    if cfg.task == "classify" and cfg.data.val_fraction == 0 and cfg.data.name != "addnist":
        raise ConfigError("a sweep needs a validation split: set data.val_fraction > 0 (the test split "
                          "never chooses anything)")
    if grid and any(d.kind != "choice" for d in space):
        raise ConfigError("--grid runs every combination of a|b|c values; ranges need a search")
    if pruner not in PRUNERS:
        raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}")
    if heartbeat < 1:
        raise ConfigError(f"--heartbeat must be at least 1 second, got {heartbeat}")
    if judge is not None:   # checked before any trial trains: a classifier run of the same classes
        from .data import splits_of
        from .evaluation.judge import check_judge_fits
        from .runs import open_judge

        check_judge_fits(open_judge(judge, device=device, data_root=data_root), splits_of(cfg.data, data_root).spec,
                         cfg.preset)
    # The folder (and the SQLite study in it) only once every check has passed, and gone again if the
    # study cannot be opened: a refused sweep leaves nothing behind.
    created = next((p for p in [*reversed(Path(out).parents), Path(out)] if not p.exists()), None)
    Path(out).mkdir(parents=True, exist_ok=True)
    try:
        study_obj = open_study(storage, study, preset=cfg.preset, create=True, grid=space if grid else None,
                               pruner=pruner, metric=metric, heartbeat=heartbeat)
    except BudgetVisionError:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise

    def objective(trial) -> float:
        trial_cfg = apply_overrides(cfg, [f"{d.key}={d.suggest(trial)}" for d in space])
        try:
            prep = prepare(trial_cfg, data_root=data_root, device=device, allow_over=over_budget)
        except BudgetError as e:
            trial.set_user_attr("failed", str(e))
            raise
        trial.set_user_attr("over_budget", prep.over_budget)
        run_dir = start_run(prep, out, [trial_cfg.train.seed])
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("seed", trial_cfg.train.seed)

        def report(step: int, accuracy: float) -> None:
            trial.report(accuracy, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} (validation accuracy {accuracy:.4f})")

        results = train_seeds(prep, run_dir, [trial_cfg.train.seed], progress=progress,
                              on_validation=report if judge is None else None)
        if judge is None:
            return results["val_accuracy"]
        scores = evaluate_generator(run_dir, judge=judge, n=judge_n, data_root=data_root, device=device)
        trial.set_user_attr("judge_fid", scores["judge_fid"])
        trial.set_user_attr("last_logged", _last_logged(run_dir / f"seed-{trial_cfg.train.seed}"))
        return scores["judge_accuracy"]

    # Stop once the study (shared by every worker) holds `trials` finished or pruned trials.
    callback = optuna.study.MaxTrialsCallback(trials, states=(optuna.trial.TrialState.COMPLETE,
                                                              optuna.trial.TrialState.PRUNED))
    study_obj.optimize(objective, n_trials=trials, callbacks=[callback], catch=(BudgetError,))
    return summary(study_obj)


def _metric(cfg: RunConfig, judge: Path | None, judge_n: int) -> str:
    """What a trial's value is, in words; a study keeps it, and every worker must agree."""
    if cfg.task == "classify":
        if judge is not None:
            raise ConfigError("--judge scores generator sweeps; a classifier's trials are scored by validation "
                              "accuracy")
        return "validation accuracy"
    if not cfg.model.conditional:
        raise ConfigError("a generator sweep is scored by a judge's accuracy on class-conditional samples; "
                          f"preset '{cfg.preset}' is unconditional")
    if judge is None:
        raise ConfigError("a generator sweep is scored by a judge's accuracy on its samples: pass --judge RUN "
                          "(a classifier run on the same data set, e.g. an mnist-lenet run)")
    if judge_n < 2:   # the judge-feature FID beside the score needs a covariance
        raise ConfigError(f"--judge-n must be at least 2, got {judge_n}")
    return f"judge accuracy ({judge_n} samples)"


def _last_logged(seed_dir: Path) -> dict:
    """A trial's last logged training quantities (GAN: losses, D's scores and accuracy)."""
    rows = [r for r in read_metrics(seed_dir / "metrics.jsonl") if r["kind"] == "train"]
    return {k: v for k, v in rows[-1].items() if k not in ("kind", "images_per_s", "lr")} if rows else {}


def summary(study_obj) -> dict:
    import optuna

    done = [t for t in study_obj.trials if t.state == optuna.trial.TrialState.COMPLETE]
    rows = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
             "run_dir": t.user_attrs.get("run_dir"), "over_budget": t.user_attrs.get("over_budget", False),
             "failed": t.user_attrs.get("failed"),
             "pruned_at": max(t.intermediate_values) if t.state.name == "PRUNED" and t.intermediate_values else None,
             **{k: t.user_attrs[k] for k in ("judge_fid", "last_logged") if k in t.user_attrs}}
            for t in study_obj.trials]
    best = max(done, key=lambda t: t.value) if done else None
    return {"study": study_obj.study_name, "preset": study_obj.user_attrs.get("preset"),
            "metric": study_obj.user_attrs.get("metric", "validation accuracy"), "trials": rows,
            "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                               "run_dir": best.user_attrs.get("run_dir")}}


def write_report(study_obj, folder: Path) -> dict:
    """Optimisation history and parameter importances as PNGs; for a generator study also Rzayev's
    figures: every trial's discriminator accuracy and losses against step (`trials.png`) and its
    judge score (`scores.png`), one line and one bar per combination. (The command line puts them in
    `report.html`, with the trials' table and their runs' sections.)"""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    from .report.plots import loss_curves, score_bars

    folder.mkdir(parents=True, exist_ok=True)
    out = summary(study_obj)
    written = []
    complete = [t for t in study_obj.trials if t.state.name == "COMPLETE"]
    plots = [("history.png", ovm.plot_optimization_history)]
    if len(complete) >= 2 and len({k for t in complete for k in t.params}) >= 1:
        plots.append(("importances.png", ovm.plot_param_importances))
    for name, plot in plots:
        try:
            ax = plot(study_obj)
        except (ValueError, RuntimeError) as e:   # e.g. importances of a parameter that never varied
            out.setdefault("skipped_plots", []).append(f"{name}: {e}")
            continue
        ax.figure.savefig(folder / name, dpi=120, bbox_inches="tight")
        plt.close(ax.figure)
        written.append(name)
    if complete and out["metric"].startswith("judge"):
        named = dict(sorted((" ".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(t.params.items()))
                             or f"trial {t.number}", t) for t in complete))   # one combination per trial
        curves = {name: read_metrics(Path(t.user_attrs["run_dir"]) / f"seed-{t.user_attrs['seed']}" / "metrics.jsonl")
                  for name, t in named.items()}
        title = f"{out['preset']}: study {out['study']}"
        loss_curves(curves, folder / "trials.png", title, keys=["d_accuracy", "d_loss", "loss"])
        score_bars({name: t.value for name, t in named.items()}, folder / "scores.png", title, out["metric"])
        written += ["trials.png", "scores.png"]
    out["plots"] = written
    return out


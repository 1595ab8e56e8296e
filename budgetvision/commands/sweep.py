"""`budgetvision sweep`: an Optuna study over a preset, each trial a run scored on validation; and
`sweep --report`, a study's trials and plots."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ._common import DEFAULT_OUT, add_common, add_recipe, opt_path, resolve


def add(sub) -> None:
    sp = sub.add_parser("sweep", help="an Optuna study over a preset: each trial a run, scored on validation")
    add_recipe(sp)
    sp.add_argument("--space", nargs="+", default=[], metavar="KEY=RANGE",
                    help="optim.lr=log:1e-4:1e-2  train.label_smoothing=0:0.2  train.batch_size=int:32:256  "
                         "optim.name=adam|sgd")
    sp.add_argument("--trials", type=int, default=20, help="trials in the study (shared by all its workers)")
    sp.add_argument("--storage", default=None, help="Optuna storage URL (default: sqlite next to the runs)")
    sp.add_argument("--study", default=None, help="study name (default: the preset's)")
    sp.add_argument("--grid", action="store_true", help="every combination of the a|b|c values, once")
    sp.add_argument("--pruner", default="median", help="median | hyperband | none (on the validation curve)")
    sp.add_argument("--report", action="store_true", help="the study's trials, best first, and its plots")
    sp.add_argument("--judge", default=None, metavar="RUN", help="generators: score each trial by this "
                    "classifier run's accuracy on its class-conditional samples (Rzayev's LeNet score)")
    sp.add_argument("--judge-n", type=int, default=None, metavar="N",
                    help="generators: samples per trial for the judge (default 1,000)")
    sp.add_argument("--over-budget", action="store_true", help="run points of the space over the budget "
                    "(marked so) instead of failing them")
    sp.add_argument("--heartbeat", type=int, default=None, metavar="S", help="seconds between a worker's "
                    "heartbeats (default 30); a killed worker's trial is failed and retried after three missed")
    sp.add_argument("--out", default=str(DEFAULT_OUT / "sweeps"), help="folder for the study's runs")
    add_common(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from ..data import data_root
    from ..device import resolve_device
    from ..sweep import HEARTBEAT_SECONDS, parse_space, run_sweep

    study = args.study or args.preset
    if study is None:
        raise ConfigError("sweep needs --preset NAME (or --study NAME with --report)")
    if study in (".", "..") or "/" in study or "\\" in study or "\0" in study:
        raise ConfigError(f"--study {study!r} must be a plain name: it is the study's folder under --out")
    if args.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {args.trials}")
    out = Path(args.out) / study
    storage = args.storage or f"sqlite:///{(out / 'sweep.db').resolve()}"
    if args.report:
        return _report(args, study, out, storage)
    if args.preset is None:
        raise ConfigError("sweep needs --preset NAME")
    cfg = resolve(args)
    space = parse_space(args.space, cfg)
    result = run_sweep(cfg, space, trials=args.trials, storage=storage, study=study, out=out,
                       data_root=data_root(args.data_root), device=resolve_device(args.device), grid=args.grid,
                       pruner=args.pruner, judge=opt_path(args.judge), judge_n=args.judge_n,
                       over_budget=args.over_budget,
                       heartbeat=HEARTBEAT_SECONDS if args.heartbeat is None else args.heartbeat,
                       progress=not args.no_progress)
    _print_sweep(result)
    print(f"study {study!r} in {storage}; report: budgetvision sweep --report --study {study} --storage {storage}")
    return 0


def _report(args, study: str, out: Path, storage: str) -> int:
    from ..report.html import write_sweep_report
    from ..sweep import open_study, write_report

    if args.storage is None and not (out / "sweep.db").exists():
        raise ConfigError(f"no sweep database at {out / 'sweep.db'}; pass --storage URL")
    study_obj = open_study(storage, study, preset=args.preset, create=False)
    report = write_report(study_obj, out)
    html = write_sweep_report(report, out, out / "report.html")
    _print_sweep(report)
    print(f"plots: {', '.join(str(out / p) for p in report['plots']) or 'none'}; HTML: {html}")
    return 0


def _print_sweep(result: dict) -> None:
    short = "val" if result["metric"] == "validation accuracy" else "judge"
    for t in sorted(result["trials"], key=lambda t: (t["value"] is None, -(t["value"] or 0))):
        value = f"{100 * t['value']:.2f} %" if t["value"] is not None else "-"
        notes = [f"pruned at step {t['pruned_at']}"] if t["pruned_at"] is not None else []
        notes += ["OVER BUDGET"] if t["over_budget"] else []
        notes += [f"D accuracy {t['last_logged']['d_accuracy']:.2f} at the end"] if "d_accuracy" in t.get(
            "last_logged", {}) else []
        notes += [t["failed"]] if t["failed"] else []
        print(f"trial {t['number']:3d} {t['state']:8s} {short} {value:>8s}  {t['params']}"
              + "".join(f" ({n})" for n in notes) + f"  {t['run_dir'] or ''}")
    if result["best"]:
        b = result["best"]
        print(f"best: trial {b['number']}, {result['metric']} {100 * b['value']:.2f} %, {b['params']}")

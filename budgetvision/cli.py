"""The command line: parse and dispatch only. Every user error becomes one line on stderr, exit 2."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import INTERPOLATION_LABELS, INTERPOLATIONS, SAMPLERS
from .errors import BudgetVisionError, ConfigError, StopRequested

DEFAULT_OUT = Path("runs")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not a usage dump
        self.exit(2, f"budgetvision: error: {message} (see '{self.prog} --help')\n")


def _resolve(args):
    from .api import resolve

    return resolve(args.preset, dataset=args.dataset, steps=args.steps, seed=args.seed, overrides=list(args.set))


def cmd_presets(args) -> int:
    from .presets import PRESETS
    from .loop import config_params

    rows = []
    for p in PRESETS.values():
        c = p.config
        rows.append({"name": p.name, "task": c.task, "dataset": c.data.name, "model": c.model.name,
                     "params": config_params(c)["total"], "paper_params": p.paper_params,
                     "param_budget": c.budget.max_params, "step_budget": c.budget.max_steps,
                     "steps": c.train.steps, "batch_size": c.train.batch_size,
                     "origin": p.origin, "source": p.source, "paper_result": p.paper_result})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if args.markdown:
        print("| preset | origin | task | data set | ours: params | paper: params | difference | paper's result | source |")
        print("| --- | --- | --- | --- | ---: | ---: | ---: | --- | --- |")
        for r in rows:
            paper = r["paper_params"]
            diff = f"{r['params'] - paper:+,} ({100 * (r['params'] - paper) / paper:+.3f} %)" if paper else "-"
            print(f"| {r['name']} | {r['origin']} | {r['task']} | {r['dataset']} | {r['params']:,} | "
                  f"{f'{paper:,}' if paper else '-'} | {diff} | {r['paper_result']} | {r['source']} |")
        return 0
    head = f"{'preset':26} {'origin':12} {'task':9} {'dataset':9} {'params':>8} {'paper':>8} {'budget':>16}  source"
    print(head)
    print("-" * len(head))
    for r in rows:
        paper = f"{r['paper_params']:,}" if r["paper_params"] else "-"
        budget = f"<{r['param_budget'] // 1000}k, {r['step_budget'] // 1000}k st"
        print(f"{r['name']:26} {r['origin']:12} {r['task']:9} {r['dataset']:9} {r['params']:>8,} {paper:>8} "
              f"{budget:>16}  {r['source']}")
    return 0


def cmd_leaderboard(args) -> int:
    from .leaderboard import format_markdown, format_text, load_rows

    rows = load_rows(Path(args.results) if args.results else None)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no results yet: benchmarks/compare.py writes them")
    else:
        print(format_markdown(rows) if args.markdown else format_text(rows), end="")
    return 0


def cmd_bench(args) -> int:
    from .bench import BenchOptions, bench_preset, format_text, speed_dir, write_rows
    from .data import data_root
    from .device import resolve_device
    from .errors import DataError
    from .presets import PRESETS

    if args.all == (args.preset is not None):
        raise ConfigError("bench needs one of --preset NAME and --all")
    given = {k: getattr(args, k) for k in ("steps", "window", "warmup", "samples", "workers")}
    options = BenchOptions(**{k: v for k, v in given.items() if v is not None})
    device, root = resolve_device(args.device), data_root(args.data_root)
    rows, skipped = [], []
    for name in list(PRESETS) if args.all else [args.preset]:
        if not args.no_progress:
            print(f"bench: {name} on {device}", file=sys.stderr)
        try:
            rows.append(bench_preset(name, dataset=args.dataset, overrides=args.set, options=options,
                                     data_root=root, device=device))
        except BudgetVisionError as e:   # --all measures every preset that can run here (its data, its shapes)
            if not args.all:
                raise
            skipped.append(f"{name} ({e})")
            print(f"bench: skipped {name}: {e}", file=sys.stderr)
    if not rows:
        raise DataError(f"no preset could be measured (first: {skipped[0]}); --dataset digits needs no download")
    out = Path(args.out) if args.out else speed_dir()
    paths = write_rows(rows, out)
    print(json.dumps(rows, indent=2) if args.json else format_text(rows), end="\n" if args.json else "")
    print(f"bench: {len(paths)} result file(s) in {out}" + (f"; skipped {len(skipped)}" if skipped else ""),
          file=sys.stderr)
    return 0


def cmd_train(args) -> int:
    from . import api
    from .budget import budget_of, enforce_budget
    from .data import data_root
    from .config import check_seeds
    from .loop import config_params, images_seen

    if args.resume is not None:
        _refuse_with_resume(args)
        run = api.resume(args.resume, data_root=args.data_root, device=args.device, progress=not args.no_progress)
        _say(run.summary)
        _say(f"run folder: {run.path}")
        return 0
    if args.preset is None:
        raise ConfigError("train needs --preset NAME (or --resume RUN); see 'budgetvision presets'")
    cfg = _resolve(args)
    args.seeds = 1 if args.seeds is None else args.seeds
    if args.seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    check_seeds(cfg.train.seed, args.seeds)
    if args.dry_run:
        import torch
        seeds = list(range(cfg.train.seed, cfg.train.seed + args.seeds))
        counts = config_params(cfg, data_root(args.data_root))
        params = counts["total"]
        budget = budget_of(cfg)
        over = enforce_budget(params, cfg.train.steps, budget, allow_over=args.over_budget)
        print(cfg.to_json())
        parts = "".join(f", {k} {v:,}" for k, v in counts.items() if k != "total" and len(counts) > 2)
        print(f"parameters: {params:,}{parts} (budget < {budget.max_params:,}); steps: {cfg.train.steps:,} "
              f"(budget <= {budget.max_steps:,}); batch {cfg.train.batch_size}; "
              f"images seen per seed: {images_seen(cfg):,}; seeds: {seeds}; CPU threads: {torch.get_num_threads()}"
              + ("; OVER BUDGET (override given)" if over else "; within budget"))
        return 0
    run = api.train(cfg, seeds=args.seeds, out=args.out, data_root=args.data_root, device=args.device,
                    over_budget=args.over_budget, progress=not args.no_progress, verbose=True)
    _say(run.summary)
    return 0


# A resumed run is its folder's config, seeds and budget status: these would be silently ignored.
_NOT_WITH_RESUME = (("preset", "--preset"), ("dataset", "--dataset"), ("steps", "--steps"), ("seed", "--seed"),
                    ("set", "--set"), ("seeds", "--seeds"), ("dry_run", "--dry-run"), ("over_budget", "--over-budget"))


def _refuse_with_resume(args) -> None:
    given = [flag for attr, flag in _NOT_WITH_RESUME if getattr(args, attr) not in (None, False, [])]
    if given:
        raise ConfigError(f"--resume continues a run as its folder records it; {', '.join(given)} cannot be "
                          f"given with it (start a new run instead)")


def cmd_sweep(args) -> int:
    from .data import data_root
    from .device import resolve_device
    from .report.html import write_sweep_report
    from .sweep import HEARTBEAT_SECONDS, open_study, parse_space, run_sweep, write_report

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
        if args.storage is None and not (out / "sweep.db").exists():
            raise ConfigError(f"no sweep database at {out / 'sweep.db'}; pass --storage URL")
        study_obj = open_study(storage, study, preset=args.preset, create=False)
        report = write_report(study_obj, out)
        html = write_sweep_report(report, out, out / "report.html")
        _print_sweep(report)
        print(f"plots: {', '.join(str(out / p) for p in report['plots']) or 'none'}; HTML: {html}")
        return 0
    if args.preset is None:
        raise ConfigError("sweep needs --preset NAME")
    cfg = _resolve(args)
    space = parse_space(args.space, cfg)
    result = run_sweep(cfg, space, trials=args.trials, storage=storage, study=study, out=out,
                       data_root=data_root(args.data_root), device=resolve_device(args.device), grid=args.grid,
                       pruner=args.pruner, judge=_opt_path(args.judge), judge_n=args.judge_n,
                       over_budget=args.over_budget,
                       heartbeat=HEARTBEAT_SECONDS if args.heartbeat is None else args.heartbeat,
                       progress=not args.no_progress)
    _print_sweep(result)
    print(f"study {study!r} in {storage}; report: budgetvision sweep --report --study {study} --storage {storage}")
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


def cmd_export(args) -> int:
    from .data import data_root
    from .export import export_onnx

    info = export_onnx(Path(args.run), Path(args.onnx), seed=args.run_seed, data_root=data_root(args.data_root))
    what, key = ("test images", "logit") if "max_abs_logit_diff" in info else ("seeded latents", "image")
    print(f"wrote {args.onnx} ({info['preset']}, seed {info['seed']}, step {info['step']}, opset {info['opset']}): "
          f"matches PyTorch on {info['check_images']} {what} (max |{key} diff| {info[f'max_abs_{key}_diff']:.1e}); "
          f"inputs: {info['input']}; in {args.onnx}.json")
    return 0


def _opt_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def cmd_eval(args) -> int:
    from .data import data_root
    from .device import resolve_device
    from .runs import evaluate_run, open_run

    cfg, _ = open_run(Path(args.run))
    if cfg.task == "generate":
        return _eval_generator(args)
    generator_flags = [f for f in ("fid", "kid", "inception_score", "prc", "lpips") if getattr(args, f)] + \
        [f for f in ("judge", "reference", *SAMPLING_FLAGS) if getattr(args, f) is not None]
    if generator_flags:
        flag = generator_flags[0].replace("inception_score", "is").replace("_", "-")
        raise ConfigError(f"{args.run} is a classifier run; --{flag} "
                          "is for generator runs")
    out = evaluate_run(Path(args.run), data_root=data_root(args.data_root), device=resolve_device(args.device),
                       ema=not args.no_ema)
    for r in out["per_seed"]:
        print(f"seed {r['seed']} (step {r['step']}, {r['weights']} weights): "
              f"test accuracy {100 * r['test_accuracy']:.2f} % "
              f"(per-batch ± {100 * r['test_accuracy_batch_std']:.2f} %) on {r['test_n']:,} images")
    print(f"{out['preset']}: test {100 * out['test_accuracy']:.2f} ± {100 * out['test_accuracy_std']:.2f} % "
          f"over {len(out['per_seed'])} seed(s); written to {Path(args.run) / 'eval.json'}")
    return 0


def _eval_generator(args) -> int:
    from .data import data_root
    from .device import resolve_device
    from .runs import eval_file, evaluate_generator

    if not (args.fid or args.kid or args.inception_score or args.prc or args.judge or args.lpips):
        raise ConfigError("a generator run needs at least one of --fid, --kid, --is, --prc, --judge RUN, --lpips")
    if args.n < 2:
        raise ConfigError("--n must be >= 2")
    out = evaluate_generator(Path(args.run), fid=args.fid, kid=args.kid, inception_score=args.inception_score,
                             prc=args.prc, n=args.n, judge=_opt_path(args.judge), lpips=args.lpips,
                             inception_weights=_opt_path(args.inception_weights),
                             lpips_weights=_opt_path(args.lpips_weights), data_root=data_root(args.data_root),
                             device=resolve_device(args.device), run_seed=args.run_seed,
                             ema=not args.no_ema, reference=args.reference or "test", **_sampling(args),
                             progress=not args.no_progress)
    for key, value in out.items():
        if isinstance(value, float):
            print(f"{key}: {value:.6g}")
    if "judge" in out:
        print(f"judge: {out['judge']}")
    print(f"written to {eval_file(Path(args.run), args.reference or 'test')}")
    return 0


def cmd_fid_ref(args) -> int:
    from .data import data_root
    from .device import resolve_device
    from .runs import fid_reference

    if args.n < 2:
        raise ConfigError("--n must be >= 2")
    out = fid_reference(args.dataset, args.split, n=args.n, data_root=data_root(args.data_root),
                        device=resolve_device(args.device), inception_weights=_opt_path(args.inception_weights),
                        progress=not args.no_progress)
    print(f"reference statistics of {args.dataset} {args.split} (n={out['n']:,}) "
          f"{'already cached' if out['cached'] else 'cached'} at {out['path']}")
    return 0


def cmd_lr_find(args) -> int:
    from .data import data_root
    from .io import write_json
    from .lr_find import lr_range_test
    from .report.plots import lr_range_plot
    from .device import resolve_device
    from .loop import prepare

    cfg = _resolve(args)
    prep = prepare(cfg, data_root=data_root(args.data_root), device=resolve_device(args.device), allow_over=True)
    if args.lr_min <= 0 or args.lr_max <= args.lr_min or args.range_steps < 3:
        raise ConfigError("lr-find needs 0 < --lr-min < --lr-max and --range-steps >= 3")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BudgetVisionError(f"cannot create output folder {out}: {e.strerror}") from None
    result = lr_range_test(prep, lr_min=args.lr_min, lr_max=args.lr_max, steps=args.range_steps)
    stem = out / f"lr-find-{cfg.preset}-{cfg.data.name.replace(':', '_').replace('/', '_')}"
    write_json(stem.with_suffix(".json"), {"preset": cfg.preset, "dataset": cfg.data.name, **result})
    lr_range_plot(result["lrs"], result["losses"], result["suggested_lr"], stem.with_suffix(".png"),
                  f"LR range test: {cfg.preset} on {cfg.data.name}")
    print(f"suggested lr {result['suggested_lr']:.3g} (steepest descent of the smoothed loss over "
          f"{len(result['lrs'])} steps); plot: {stem.with_suffix('.png')}")
    return 0


def _open_generator(args):
    from .data import data_root
    from .device import resolve_device
    from .runs import open_generator

    device = resolve_device(args.device)
    cfg, objective, network = open_generator(Path(args.run), device=device, run_seed=args.run_seed,
                                             data_root=data_root(args.data_root), **_sampling(args))
    return cfg, objective, network, device


SAMPLING_FLAGS = ("sampler", "sample_steps", "cfg_scale", "guidance_interval")


def _sampling(args) -> dict:
    """The diffusion sampling flags given (--sampler, --sample-steps, --cfg-scale, --guidance-interval)."""
    return {f: getattr(args, f) for f in SAMPLING_FLAGS if getattr(args, f, None) is not None}


def _out_png(path: str) -> Path:
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out must name a .png file, got {path!r}")
    if not out.parent.is_dir():
        raise BudgetVisionError(f"output folder {out.parent} does not exist")
    return out


def cmd_sample(args) -> int:
    from .data import data_root
    from .runs import class_labels, parse_seeds, sample
    from .report.plots import sample_grid
    from .loop import shape_spec

    seeds = parse_seeds(args.seeds)
    if args.nrow is not None and args.nrow < 1:
        raise ConfigError(f"--nrow must be >= 1, got {args.nrow}")
    out = _out_png(args.out)
    cfg, objective, network, device = _open_generator(args)
    classes = shape_spec(cfg, data_root(args.data_root)).num_classes   # a folder data set under the data root
    labels = class_labels(objective, seeds, args.label, classes, device)
    images = sample(objective, network, seeds, labels)
    sample_grid(images, out, nrow=args.nrow or max(1, round(len(seeds) ** 0.5)))
    print(f"{len(seeds)} samples (seeds {args.seeds}) of {cfg.preset} -> {out}")
    return 0


def cmd_interpolate(args) -> int:
    from .report.plots import interpolation_grid

    if args.pairs < 1 or args.steps < 2:
        raise ConfigError("interpolate needs --pairs >= 1 and --steps >= 2")
    out = _out_png(args.out)
    cfg, objective, network, _ = _open_generator(args)
    pairs = [(args.first_seed + 2 * i, args.first_seed + 2 * i + 1) for i in range(args.pairs)]
    # Unset, the path and the labels are the recipe's own (objective.interpolation[_labels]).
    mode = args.mode or objective.interpolation
    labels = args.labels or objective.interpolation_labels
    frames = objective.interpolate(pairs, args.steps, mode=mode, label_mode=labels, network=network)
    interpolation_grid(frames.cpu(), out)
    which = f"{mode}" + (f", {labels} labels" if getattr(objective, "conditional", False) else "")
    print(f"{args.pairs} interpolations ({which}) x {args.steps} steps of {cfg.preset} -> {out}")
    return 0


def cmd_neighbours(args) -> int:
    from .data import data_root, load_splits
    from .runs import nearest_training_images, parse_seeds, sample
    from .report.plots import neighbours_figure

    seeds = parse_seeds(args.seeds)
    if args.k < 1:
        raise ConfigError("--k must be >= 1")
    out = _out_png(args.out)
    cfg, objective, network, _ = _open_generator(args)
    splits = load_splits(cfg.data.name, data_root(args.data_root), val_fraction=cfg.data.val_fraction,
                         seed=cfg.data.split_seed)
    if args.k > len(splits.train[0]):
        raise ConfigError(f"--k {args.k} is more than the {len(splits.train[0]):,} training images of {cfg.data.name}")
    images = sample(objective, network, seeds, None)
    neighbours, dist = nearest_training_images(images, splits.train[0], args.k)
    neighbours_figure(images, neighbours, dist.cpu(), out)
    print(f"{len(seeds)} samples of {cfg.preset} with their {args.k} nearest training images (pixel L2) -> {out}")
    return 0


def cmd_report(args) -> int:
    from .report.html import write_report
    from .runs import open_run

    runs = [Path(r) for r in args.runs]
    for run in runs:
        open_run(run)
        if not (run / "results.json").exists():
            raise BudgetVisionError(f"{run} has not finished (no results.json); resume it with "
                                    f"'budgetvision train --resume {run}'")
    out = Path(args.out) if args.out else (runs[0] / "report.html" if len(runs) == 1 else Path("report.html"))
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out must name an .html file, got {str(out)!r}")
    if not out.parent.is_dir():
        raise BudgetVisionError(f"output folder {out.parent} does not exist")
    write_report(runs, out)
    print(f"report of {len(runs)} run(s) -> {out}")
    return 0


def cmd_synthetic_mix(args) -> int:
    from .data import data_root
    from .experiments.synthetic_mix import parse_fractions, parse_overrides, run_synthetic_mix
    from .device import resolve_device

    fractions, overrides = parse_fractions(args.real_fractions), parse_overrides(args.class_override)
    if args.total is not None and args.total < 1:
        raise ConfigError("--total must be >= 1")
    out = Path(args.out) if args.out else Path("runs") / f"synthetic-mix-{Path(args.generator).name}"
    summary = run_synthetic_mix(Path(args.generator), fractions=fractions, overrides=overrides,
                                classifier=args.classifier, steps=args.steps, total=args.total, out=out,
                                device=resolve_device(args.device), data_root=data_root(args.data_root),
                                progress=not args.no_progress, lr=args.lr, batch_size=args.batch_size)
    for r in summary["rows"]:
        print(f"real fraction {r['real_fraction']:g}: {r['real_images']:,} real + {r['generated_images']:,} "
              f"generated -> test accuracy {100 * r['test_accuracy']:.2f} %")
    print(f"curve and confusion matrices in {out}")
    return 0


def cmd_pca_vs_gan(args) -> int:
    from .data import data_root
    from .experiments.pca_vs_gan import parse_components, run_pca_vs_gan
    from .device import resolve_device

    out = Path(args.out) if args.out else Path("runs") / f"pca-vs-gan-{Path(args.gan).name}"
    summary = run_pca_vs_gan(Path(args.gan), Path(args.judge), components=parse_components(args.components),
                             n=args.n, out=out, device=resolve_device(args.device),
                             data_root=data_root(args.data_root), mode=args.mode)
    gan = summary["gan_scores"]
    if gan["judge_accuracy"] is not None:
        print(f"{summary['gan_preset']}: judge accuracy {100 * gan['judge_accuracy']:.2f} %, "
              f"judge-feature FID {gan['judge_fid']:.3f}  [judge: {summary['judge']}]")
    for key, what in (("pca", "samples"), ("pca_reconstruct", "test images reconstructed")):
        for r in summary[key]:
            print(f"PCA {r['components']:>4} components, {what}: judge accuracy {100 * r['judge_accuracy']:.2f} %, "
                  f"judge-feature FID {r['judge_fid']:.3f}")
    print(f"curve: {out / 'pca-vs-gan.png'}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    from .device import resolve_device

    run_demo(Path(args.out), device=resolve_device(args.device), steps=args.steps, progress=not args.no_progress)
    return 0


def cmd_selftest(args) -> int:
    from .device import resolve_device
    from .selftest import report

    device = resolve_device(args.device)   # --device cuda without CUDA: one line, exit 2
    return report(device, as_json=args.json, out=Path(args.out) if args.out else None, progress=not args.no_progress)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="budgetvision", description="Image models under hard parameter and step budgets.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def common(sp, data=True):
        sp.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
        if data:
            sp.add_argument("--data-root", default=None,
                            help="data folder (else $BUDGETVISION_DATA, else the user cache)")
        sp.add_argument("--no-progress", action="store_true", help="no progress bar (status lines instead)")
        sp.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for torch (default: $OMP_NUM_THREADS, else torch's own count shared "
                             "evenly with this machine's other budgetvision processes, re-shared as they start "
                             "and end)")

    def sampling(sp):   # how a diffusion run samples, for one command: nothing it learned changes
        sp.add_argument("--sampler", choices=SAMPLERS, default=None, help="diffusion: sample with this instead of "
                        "the run's objective.sampler (dpmpp2m: DPM-Solver++(2M), second order, ~25 steps)")
        sp.add_argument("--sample-steps", type=int, default=None, metavar="N", help="diffusion: sampler steps "
                        "(network calls per image; twice that under guidance) instead of the run's")
        sp.add_argument("--cfg-scale", type=float, default=None, metavar="W", help="diffusion: classifier-free "
                        "guidance weight instead of the run's objective.cfg_scale (0: conditional only)")
        sp.add_argument("--guidance-interval", default=None, metavar="LO,HI", help="diffusion: guide only at "
                        "noise levels sigma/alpha in (LO, HI] (0: no limit on that side) instead of the run's "
                        "objective.guidance_interval")

    def recipe(sp):
        sp.add_argument("--preset", help="a preset name (budgetvision presets)")
        sp.add_argument("--dataset", help="run the preset on another data set: addnist, cifar100, digits, "
                                          "mnist or folder:PATH")
        sp.add_argument("--steps", type=int, help="optimisation steps (train.steps)")
        sp.add_argument("--seed", type=int, help="first seed (train.seed)")
        sp.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. optim.lr=1e-3 train.batch_size=128")

    sp = sub.add_parser("presets", help="every preset with its parameters against its budget")
    sp.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    sp.add_argument("--markdown", action="store_true", help="a Markdown table with the papers' counts")
    sp.set_defaults(func=cmd_presets)

    sp = sub.add_parser("leaderboard", help="the papers' presets and ours side by side, from committed results")
    sp.add_argument("--results", default=None, help="folder of result files (default: the repository's "
                    "benchmarks/results)")
    sp.add_argument("--json", action="store_true", help="a JSON list of rows")
    sp.add_argument("--markdown", action="store_true", help="Markdown tables (the README's results section)")
    sp.set_defaults(func=cmd_leaderboard)

    sp = sub.add_parser("train", help="train a preset; writes runs/<NNNNN>-<preset>/")
    recipe(sp)
    sp.add_argument("--seeds", type=int, default=None, help="independent seeds to run (default 1; mean ± std "
                    "reported)")
    sp.add_argument("--out", default=str(DEFAULT_OUT), help="folder for run folders")
    sp.add_argument("--dry-run", action="store_true", help="print the resolved config and budget check only")
    sp.add_argument("--over-budget", action="store_true", help="run even if over budget (recorded in results)")
    sp.add_argument("--resume", metavar="RUN", help="continue a killed run from its checkpoints")
    common(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("bench", help="training images/s of the tool beside a plain PyTorch loop, GFLOP per image")
    sp.add_argument("--preset", help="a preset name (budgetvision presets)")
    sp.add_argument("--all", action="store_true", help="every preset; those that cannot run here (no data set, shapes "
                                                    "that do not fit) are named and skipped")
    sp.add_argument("--dataset", help="measure on another data set (e.g. digits, offline, or folder:PATH) where "
                                      "a preset's own is absent")
    sp.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                    help="config overrides, e.g. train.batch_size=512 train.compile=true")
    # Unset options take BenchOptions' defaults (bench.py); importing it here would slow every command.
    sp.add_argument("--steps", type=int, help="timed training steps per loop (default 60)")
    sp.add_argument("--window", type=int, help="steps per timed window; the tool's and the plain loop's windows "
                                               "alternate (default 10)")
    sp.add_argument("--warmup", type=int, help="untimed steps per loop first (default 5)")
    sp.add_argument("--samples", type=int, help="generators: images drawn for the sampling rate (default 64 on "
                                                  "a GPU, 4 on the CPU)")
    sp.add_argument("--workers", type=int, help="the plain loop's DataLoader workers (default 0: its data work "
                                                "stays inside its own windows)")
    sp.add_argument("--json", action="store_true", help="a JSON list of rows instead of a table")
    sp.add_argument("--out", default=None, help="folder for the result files, one per preset, device and data "
                    "set (default: the repository's benchmarks/results/speed, which the README's table is from)")
    common(sp)
    sp.set_defaults(func=cmd_bench)

    sp = sub.add_parser("eval", help="classifier: re-evaluate on the test split; generator: FID/KID/IS, judge, LPIPS")
    sp.add_argument("run", help="a run folder")
    sp.add_argument("--fid", action="store_true", help="FID against the test split (standard Inception)")
    sp.add_argument("--kid", action="store_true", help="KID against the test split")
    sp.add_argument("--is", dest="inception_score", action="store_true", help="Inception Score")
    sp.add_argument("--prc", action="store_true", help="improved precision and recall (k=3) against the test "
                    "split, in Inception features and, with --judge, in the judge's")
    sp.add_argument("--n", type=int, default=10_000, help="generated images (and real reference images, a "
                    "class-stratified seeded draw where the split is larger) to compare")
    sp.add_argument("--reference", choices=("train", "val", "test"), default=None, help="the real images FID, KID, precision / "
                    "recall and the judge compare against: test (default) reports, into eval.json; train or val "
                    "choose settings, into eval-train.json / eval-val.json")
    sp.add_argument("--judge", default=None, metavar="RUN", help="a classifier run: its accuracy on "
                    "class-conditional samples and its feature FID")
    sp.add_argument("--lpips", action="store_true", help="LPIPS from samples to their nearest training images")
    sp.add_argument("--inception-weights", default=None, metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth")
    sp.add_argument("--lpips-weights", default=None, metavar="PATH", help="alexnet-owt-7be5be79.pth")
    sp.add_argument("--run-seed", type=int, default=None, help="which training seed's checkpoint (default: first)")
    sampling(sp)
    sp.add_argument("--no-ema", action="store_true", help="score the trained weights where the run also kept an "
                    "EMA copy (train.ema_decay), which is scored by default")
    common(sp)
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("fid-ref", help="cache FID reference statistics of a data set's split")
    sp.add_argument("dataset")
    sp.add_argument("--split", choices=("train", "val", "test"), default="test")
    sp.add_argument("--n", type=int, default=10_000)
    sp.add_argument("--inception-weights", default=None, metavar="PATH")
    common(sp)
    sp.set_defaults(func=cmd_fid_ref)

    sp = sub.add_parser("lr-find", help="learning-rate range test and plot")
    recipe(sp)
    sp.add_argument("--lr-min", type=float, default=1e-6)
    sp.add_argument("--lr-max", type=float, default=1.0)
    sp.add_argument("--range-steps", type=int, default=200, help="steps of the range test (not budgeted)")
    sp.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the plot and JSON")
    common(sp)
    sp.set_defaults(func=cmd_lr_find)

    def generator(sp, default_out):
        sp.add_argument("run", help="a generator run folder")
        sp.add_argument("--run-seed", type=int, default=None, help="which training seed's checkpoint (default: first)")
        sp.add_argument("--out", default=default_out, help="output PNG")
        sampling(sp)
        common(sp)

    sp = sub.add_parser("sample", help="a non-cherry-picked grid; image k comes from seed k")
    generator(sp, "samples.png")
    sp.add_argument("--seeds", default="0-63", help="e.g. 0-63 or 0,5,9")
    sp.add_argument("--class", dest="label", type=int, default=None, help="class for conditional models")
    sp.add_argument("--nrow", type=int, default=None, help="images per row (default: square)")
    sp.set_defaults(func=cmd_sample)

    sp = sub.add_parser("interpolate", help="latent interpolations, one row per pair of seeds")
    generator(sp, "interpolations.png")
    sp.add_argument("--pairs", type=int, default=8)
    sp.add_argument("--steps", type=int, default=10)
    sp.add_argument("--mode", choices=INTERPOLATIONS, default=None,
                    help="latent path (default: the recipe's objective.interpolation)")
    sp.add_argument("--labels", choices=INTERPOLATION_LABELS, default=None,
                    help="conditional models: blend the ends' class vectors, or the closer end's label "
                         "(default: the recipe's objective.interpolation_labels)")
    sp.add_argument("--first-seed", type=int, default=0, help="pairs are (s, s+1), (s+2, s+3), ...")
    sp.set_defaults(func=cmd_interpolate)

    sp = sub.add_parser("neighbours", help="each sample beside its nearest training images")
    generator(sp, "neighbours.png")
    sp.add_argument("--seeds", default="0-7")
    sp.add_argument("--k", type=int, default=5, help="neighbours per sample")
    sp.set_defaults(func=cmd_neighbours)

    sp = sub.add_parser("sweep", help="an Optuna study over a preset: each trial a run, scored on validation")
    recipe(sp)
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
                    "classifier run's accuracy on its class-conditional samples (seed 004's LeNet score)")
    sp.add_argument("--judge-n", type=int, default=None, metavar="N",
                    help="generators: samples per trial for the judge (default 1,000)")
    sp.add_argument("--over-budget", action="store_true", help="run points of the space over the budget "
                    "(marked so) instead of failing them")
    sp.add_argument("--heartbeat", type=int, default=None, metavar="S", help="seconds between a worker's "
                    "heartbeats (default 30); a killed worker's trial is failed and retried after three missed")
    sp.add_argument("--out", default=str(DEFAULT_OUT / "sweeps"), help="folder for the study's runs")
    common(sp)
    sp.set_defaults(func=cmd_sweep)

    sp = sub.add_parser("export", help="a classifier or GAN run as ONNX, checked against onnxruntime")
    sp.add_argument("run", help="a classifier run (checked on its test images) or a GAN run (its generator, "
                                "checked on seeded latents)")
    sp.add_argument("--onnx", required=True, metavar="PATH", help="the .onnx file to write")
    sp.add_argument("--run-seed", type=int, default=None, help="which training seed's checkpoint (default: first)")
    common(sp)
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("report", help="one self-contained HTML report; several runs side by side")
    sp.add_argument("runs", nargs="+", metavar="RUN")
    sp.add_argument("--out", default=None, help="HTML file (default: RUN/report.html for one run, else ./report.html)")
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("experiment", help="experiments that combine runs (seed 004)")
    exp = sp.add_subparsers(dest="experiment", required=True, parser_class=_Parser, metavar="EXPERIMENT")
    sp = exp.add_parser("synthetic-mix", help="classifier trained on real + generated images at real fractions")
    sp.add_argument("--generator", required=True, help="a class-conditional generator run")
    sp.add_argument("--real-fractions", default="0,0.1,0.25,0.5,1")
    sp.add_argument("--class-override", default=None, help="CLASS:FRACTION[,...], e.g. 0:0.4")
    sp.add_argument("--classifier", default="mnist-lenet", help="classifier preset trained on each mix")
    sp.add_argument("--steps", type=int, default=None, help="classifier steps (default: 5 epochs of the mix)")
    sp.add_argument("--lr", type=float, default=None, help="classifier learning rate (default: the paper's 0.001)")
    sp.add_argument("--batch-size", type=int, default=None, help="classifier batch (default: the paper's 32)")
    sp.add_argument("--total", type=int, default=None, help="images per mix (default: the real train size)")
    sp.add_argument("--out", default=None, help="folder (default: runs/synthetic-mix-<generator run>)")
    common(sp)
    sp.set_defaults(func=cmd_synthetic_mix)

    sp = exp.add_parser("pca-vs-gan", help="judge score of per-class PCA against components, the GAN as a line")
    sp.add_argument("--gan", required=True, help="a generator run (its data set is used)")
    sp.add_argument("--judge", required=True, help="a classifier run on the same data set, e.g. mnist-lenet")
    sp.add_argument("--components", default="1,2,4,8,16,32,64,128,256,512,784")
    sp.add_argument("--n", type=int, default=1000, help="samples (and test images reconstructed) per score")
    sp.add_argument("--mode", choices=("sample", "reconstruct", "both"), default="both",
                    help="score PCA's samples from k components, its reconstructions of real test images "
                         "through k components, or both (seed 004's text reads either way)")
    sp.add_argument("--out", default=None, help="folder (default: runs/pca-vs-gan-<gan run>)")
    common(sp)
    sp.set_defaults(func=cmd_pca_vs_gan)

    sp = sub.add_parser("selftest", help="does this machine work? short checks of every path on one device; "
                        "exit 0 when all pass")
    sp.add_argument("--json", action="store_true", help="rows (check, ok, seconds, detail) and the environment "
                    "as JSON")
    sp.add_argument("--out", default=None, help="keep the checks' runs in this folder (default: a temporary "
                    "folder, removed)")
    common(sp, data=False)
    sp.set_defaults(func=cmd_selftest)

    sp = sub.add_parser("demo", help="the whole pipeline offline on scikit-learn's digits, minutes on a CPU")
    sp.add_argument("--out", default=str(DEFAULT_OUT / "demo"), help="folder for the demo's runs")
    sp.add_argument("--steps", type=int, default=None, help="steps per demo run (default: the demo's own)")
    common(sp, data=False)
    sp.set_defaults(func=cmd_demo)
    return p


def _say(line: str, file=None) -> None:
    """Print, from one process: under torchrun rank 0 speaks for the group (another rank's refusal
    reaches rank 0 and is printed there)."""
    from .distributed import is_main

    if is_main():
        print(line, file=file)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) == "lr-find" and args.preset is None:
        print("budgetvision: error: lr-find needs --preset NAME", file=sys.stderr)
        return 2
    try:
        if hasattr(args, "threads"):   # every command that computes
            from .device import set_threads
            set_threads(args.threads)
        return args.func(args)
    except StopRequested as e:   # SIGINT / SIGTERM: the checkpoint is written, the line says how to go on
        _say(f"budgetvision: {e}", file=sys.stderr)
        return 128 + e.signum
    except BudgetVisionError as e:
        _say(f"budgetvision: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a vanished or read-only folder: say which file, once
        where = f" ({e.filename})" if e.filename else ""
        _say(f"budgetvision: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:   # a second Ctrl-C while training names its run folder
        run = e.args[0] if e.args else getattr(args, "resume", None)
        _say("budgetvision: interrupted" + (f"; continue with 'budgetvision train --resume {run}'" if run else ""),
             file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

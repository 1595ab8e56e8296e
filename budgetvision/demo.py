"""`budgetvision demo`: the whole pipeline offline on scikit-learn's bundled digits.

Seed presets, moved to the digits with the same `--dataset` mechanism a user has, trained for a
few hundred steps each: classifiers re-evaluated from their checkpoints, generators sampled,
interpolated and set beside their nearest training images, and one HTML report of everything."""
from __future__ import annotations

from pathlib import Path

from .config import apply_overrides
from .presets import get_preset
from .report.html import write_report
from .report.plots import interpolation_grid, neighbours_figure
from .runs import evaluate_run, nearest_training_images, open_generator, sample, start_run, summary_line, train_seeds
from .setup import prepare

DEMO_RUNS = (  # (preset, steps, seeds, overrides): small enough for minutes on a laptop CPU
    ("mnist-lenet", 800, 2, ["train.eval_every=200", "train.checkpoint_every=400"]),
    ("addnist-mobilenet", 400, 1, ["train.eval_every=100", "train.checkpoint_every=200"]),
    ("mnist-pca", 12, 1, ["train.batch_size=128", "train.sample_every=6", "train.checkpoint_every=6",
                          "train.log_every=3"]),
)


def run_demo(out: Path, *, device, steps: int | None = None, progress: bool = True) -> Path:
    run_dirs = []
    for preset, default_steps, n_seeds, overrides in DEMO_RUNS:
        cfg = apply_overrides(get_preset(preset).config,
                              ["data.name=digits", f"train.steps={steps or default_steps}", *overrides])
        prep = prepare(cfg, data_root=None, device=device, allow_over=False)
        seeds = list(range(n_seeds))
        print(f"[demo] {preset} on digits: {prep.params:,} parameters, {cfg.train.steps} steps x batch "
              f"{cfg.train.batch_size}, seeds {seeds}")
        run_dir = start_run(prep, out, seeds)
        results = train_seeds(prep, run_dir, seeds, progress=progress)
        print(f"[demo] {summary_line(results)}")
        if cfg.task == "classify":
            again = evaluate_run(run_dir, data_root=None, device=device)
            print(f"[demo] re-evaluated from checkpoints: test {100 * again['test_accuracy']:.2f} %")
        else:
            _, objective, network = open_generator(run_dir, device=device)
            interpolation_grid(objective.interpolate([(0, 10), (1, 11), (2, 12), (3, 13)], 8, network=network).cpu(),
                               run_dir / "interpolations.png")
            images = sample(objective, network, list(range(6)), None)
            neighbours, dist = nearest_training_images(images, prep.splits.train[0], k=5)
            neighbours_figure(images, neighbours, dist.cpu(), run_dir / "neighbours.png")
            print(f"[demo] interpolations and nearest neighbours in {run_dir}")
        run_dirs.append(run_dir)
    report = write_report(run_dirs, out / "report.html")
    print(f"[demo] report: {report}  (open it in a browser)")
    return report

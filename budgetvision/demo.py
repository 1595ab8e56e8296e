"""`budgetvision demo`: the whole pipeline offline on scikit-learn's bundled digits.

Two seed presets, moved to the digits with the same `--dataset` mechanism a user has, trained
for a few hundred steps each, then re-evaluated from their checkpoints, with their figures."""
from __future__ import annotations

from pathlib import Path

from .config import apply_overrides
from .presets import get_preset
from .runs import evaluate_run, start_run, summary_line, train_seeds
from .train import prepare

DEMO_RUNS = (  # (preset, steps, seeds, overrides): small enough for minutes on a laptop CPU
    ("mnist-lenet", 800, 2, ["train.eval_every=200", "train.checkpoint_every=400"]),
    ("addnist-mobilenet", 400, 1, ["train.eval_every=100", "train.checkpoint_every=200"]),
)


def run_demo(out: Path, *, device, steps: int | None = None, progress: bool = True) -> list[Path]:
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
        again = evaluate_run(run_dir, data_root=None, device=device)
        print(f"[demo] re-evaluated from checkpoints: test {100 * again['test_accuracy']:.2f} %")
        print(f"[demo] figures: {run_dir / 'training.png'}, {run_dir / 'confusion.png'}")
        run_dirs.append(run_dir)
    return run_dirs

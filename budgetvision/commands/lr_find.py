"""`budgetvision lr-find`: a learning-rate range test and its plot."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ._common import DEFAULT_OUT, add_common, add_recipe, resolve


def add(sub) -> None:
    sp = sub.add_parser("lr-find", help="learning-rate range test and plot")
    add_recipe(sp)
    sp.add_argument("--lr-min", type=float, default=1e-6)
    sp.add_argument("--lr-max", type=float, default=1.0)
    sp.add_argument("--range-steps", type=int, default=200, help="steps of the range test (not budgeted)")
    sp.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the plot and JSON")
    add_common(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from ..data import data_root
    from ..device import resolve_device
    from ..io import make_folder, write_json
    from ..setup import prepare
    from ..lr_find import lr_range_test
    from ..report.plots import lr_range_plot

    if args.preset is None:
        raise ConfigError("lr-find needs --preset NAME")
    cfg = resolve(args)
    prep = prepare(cfg, data_root=data_root(args.data_root), device=resolve_device(args.device), allow_over=True)
    if args.lr_min <= 0 or args.lr_max <= args.lr_min or args.range_steps < 3:
        raise ConfigError("lr-find needs 0 < --lr-min < --lr-max and --range-steps >= 3")
    out = make_folder(Path(args.out))
    result = lr_range_test(prep, lr_min=args.lr_min, lr_max=args.lr_max, steps=args.range_steps)
    stem = out / f"lr-find-{cfg.preset}-{cfg.data.name.replace(':', '_').replace('/', '_')}"
    write_json(stem.with_suffix(".json"), {"preset": cfg.preset, "dataset": cfg.data.name, **result})
    lr_range_plot(result["lrs"], result["losses"], result["suggested_lr"], stem.with_suffix(".png"),
                  f"LR range test: {cfg.preset} on {cfg.data.name}")
    print(f"suggested lr {result['suggested_lr']:.3g} (steepest descent of the smoothed loss over "
          f"{len(result['lrs'])} steps); plot: {stem.with_suffix('.png')}")
    return 0

"""`budgetvision bench`: training images/s of the tool beside a plain PyTorch loop, GFLOP per image."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import BudgetVisionError, ConfigError
from ._common import add_common


def add(sub) -> None:
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
    add_common(sp)
    sp.set_defaults(func=run)


def run(args) -> int:
    from ..bench import format_text, speed_dir, write_rows

    if args.all == (args.preset is not None):
        raise ConfigError("bench needs one of --preset NAME and --all")
    rows, skipped = _measure(args)
    out = Path(args.out) if args.out else speed_dir()
    paths = write_rows(rows, out)
    print(json.dumps(rows, indent=2) if args.json else format_text(rows), end="\n" if args.json else "")
    print(f"bench: {len(paths)} result file(s) in {out}" + (f"; skipped {len(skipped)}" if skipped else ""),
          file=sys.stderr)
    return 0


def _measure(args) -> tuple[list[dict], list[str]]:
    """A row per preset measured; with --all, the presets that cannot run here named and skipped."""
    from ..bench import BenchOptions, bench_preset
    from ..data import data_root
    from ..device import resolve_device
    from ..errors import DataError
    from ..presets import PRESETS

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
    return rows, skipped

"""`budgetvision demo`: the whole pipeline offline on scikit-learn's digits, minutes on a CPU."""
from __future__ import annotations

from pathlib import Path

from ._common import DEFAULT_OUT, add_common


def add(sub) -> None:
    sp = sub.add_parser("demo", help="the whole pipeline offline on scikit-learn's digits, minutes on a CPU")
    sp.add_argument("--out", default=str(DEFAULT_OUT / "demo"), help="folder for the demo's runs")
    sp.add_argument("--steps", type=int, default=None, help="steps per demo run (default: the demo's own)")
    add_common(sp, data=False)
    sp.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo
    from ..device import resolve_device

    run_demo(Path(args.out), device=resolve_device(args.device), steps=args.steps, progress=not args.no_progress)
    return 0

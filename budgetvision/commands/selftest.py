"""`budgetvision selftest`: does this machine work? Short checks of every path on one device."""
from __future__ import annotations

from pathlib import Path

from ._common import add_common


def add(sub) -> None:
    sp = sub.add_parser("selftest", help="does this machine work? short checks of every path on one device; "
                        "exit 0 when all pass")
    sp.add_argument("--json", action="store_true", help="rows (check, ok, seconds, detail) and the environment "
                    "as JSON")
    sp.add_argument("--out", default=None, help="keep the checks' runs in this folder (default: a temporary "
                    "folder, removed)")
    add_common(sp, data=False)
    sp.set_defaults(func=run)


def run(args) -> int:
    from ..device import resolve_device
    from ..selftest import report

    device = resolve_device(args.device)   # --device cuda without CUDA: one line, exit 2
    return report(device, as_json=args.json, out=Path(args.out) if args.out else None, progress=not args.no_progress)

"""`budgetvision report`: one self-contained HTML report; several runs side by side."""
from __future__ import annotations

from pathlib import Path

from ..errors import BudgetVisionError
from ._common import out_file


def add(sub) -> None:
    sp = sub.add_parser("report", help="one self-contained HTML report; several runs side by side")
    sp.add_argument("runs", nargs="+", metavar="RUN")
    sp.add_argument("--out", default=None, help="HTML file (default: RUN/report.html for one run, else ./report.html)")
    sp.set_defaults(func=run)


def run(args) -> int:
    from ..report.html import write_report
    from ..runs import open_run

    runs = [Path(r) for r in args.runs]
    for r in runs:
        open_run(r)
        if not (r / "results.json").exists():
            raise BudgetVisionError(f"{r} has not finished (no results.json); resume it with "
                                    f"'budgetvision train --resume {r}'")
    out = Path(args.out) if args.out else (runs[0] / "report.html" if len(runs) == 1 else Path("report.html"))
    out = out_file(str(out), (".html", ".htm"), "an .html")
    write_report(runs, out)
    print(f"report of {len(runs)} run(s) -> {out}")
    return 0

"""`budgetvision leaderboard`: the papers' presets and ours side by side, from committed results."""
from __future__ import annotations

import json
from pathlib import Path


def add(sub) -> None:
    sp = sub.add_parser("leaderboard", help="the papers' presets and ours side by side, from committed results")
    sp.add_argument("--results", default=None, help="folder of result files (default: the repository's "
                    "benchmarks/results)")
    sp.add_argument("--json", action="store_true", help="a JSON list of rows")
    sp.add_argument("--markdown", action="store_true", help="Markdown tables (the README's results section)")
    sp.set_defaults(func=run)


def run(args) -> int:
    from ..leaderboard import format_markdown, format_text, load_rows

    rows = load_rows(Path(args.results) if args.results else None)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no results yet: benchmarks/compare.py writes them")
    else:
        print(format_markdown(rows) if args.markdown else format_text(rows), end="")
    return 0

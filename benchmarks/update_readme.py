"""Regenerate the README's results section from the committed result files (`leaderboard --markdown`).

    python benchmarks/update_readme.py
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from budgetvision.leaderboard import REPO_RESULTS, load_rows, readme_section  # noqa: E402

START, END = "<!-- leaderboard:start -->\n", "<!-- leaderboard:end -->"


def main() -> int:
    readme = REPO / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        print(f"{readme} has no {START.strip()} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(head + START + readme_section(load_rows(REPO_RESULTS)) + END + tail)
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

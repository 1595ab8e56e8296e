"""Regenerate the README's generated sections from the committed result files: the results section
(`leaderboard --markdown`, from benchmarks/results/) and the speed table (from benchmarks/results/speed/).

    python benchmarks/update_readme.py
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from budgetvision import bench  # noqa: E402
from budgetvision.leaderboard import REPO_RESULTS, load_rows, readme_section  # noqa: E402

SECTIONS = {  # marker name -> the section's text
    "leaderboard": lambda: readme_section(load_rows(REPO_RESULTS)),
    "speed": lambda: bench.readme_section(bench.load_rows(REPO_RESULTS / "speed")),
}


def replace_section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"README.md has no {start.strip()} ... {end} markers")
    head, rest = text.split(start, 1)
    return head + start + body + end + rest.split(end, 1)[1]


def main() -> int:
    readme = REPO / "README.md"
    text = readme.read_text()
    try:
        for name, section in SECTIONS.items():
            text = replace_section(text, name, section())
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    readme.write_text(text)
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

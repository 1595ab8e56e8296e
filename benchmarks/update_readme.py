"""Regenerate the generated sections of README.md and docs/ from the committed files: the results
section (`leaderboard --markdown`, from benchmarks/results/), its sample grids, the speed table (from
benchmarks/results/speed/), the papers table (budgetvision/papers.py) and the presets table
(`budgetvision presets --markdown`). Each lives between `<!-- NAME:start -->` and `<!-- NAME:end -->`
markers in exactly one of those files, wherever it is; `--check` changes nothing and fails if any
section is stale.

    python benchmarks/update_readme.py [--check]
"""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from budgetvision import bench, papers  # noqa: E402
from budgetvision.leaderboard import REPO_RESULTS, load_rows, readme_section, samples_markdown  # noqa: E402


def _presets_markdown() -> str:
    from budgetvision.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["presets", "--markdown"]) == 0
    return out.getvalue()


SECTIONS = {  # marker name -> the section's text
    "leaderboard": lambda: readme_section(load_rows(REPO_RESULTS)),
    "samples": lambda: samples_markdown(load_rows(REPO_RESULTS), REPO_RESULTS / "samples", "benchmarks/results/samples"),
    "speed": lambda: bench.readme_section(bench.load_rows(REPO_RESULTS / "speed")),
    "papers": papers.markdown_table,
    "presets": _presets_markdown,
}


def documents() -> list[Path]:
    """The files a generated section may live in: the README and every page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def replace_section(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"no {start.strip()} ... {end} markers")
    head, rest = text.split(start, 1)
    return head + start + body + end + rest.split(end, 1)[1]


def holder(name: str, texts: dict[Path, str]) -> Path:
    """The one document that holds section `name`."""
    found = [p for p, t in texts.items() if f"<!-- {name}:start -->\n" in t]
    if len(found) != 1:
        where = ", ".join(str(p.relative_to(REPO)) for p in found) or "none of README.md, docs/**/*.md"
        raise ValueError(f"the {name} section must live in exactly one file; its markers are in {where}")
    return found[0]


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    texts = {p: p.read_text() for p in documents()}
    new = dict(texts)
    try:
        for name, section in SECTIONS.items():
            path = holder(name, new)
            new[path] = replace_section(new[path], name, section())
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    stale = [p for p in texts if new[p] != texts[p]]
    for p in stale:
        if check:
            print(f"stale: {p.relative_to(REPO)} (run python benchmarks/update_readme.py)", file=sys.stderr)
        else:
            p.write_text(new[p])
            print(f"updated {p.relative_to(REPO)}")
    if not stale:
        print("every generated section is up to date")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())

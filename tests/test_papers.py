"""The five papers are one table (budgetvision/papers.py): every paper preset names its paper from it,
the README's papers table is generated from it, and a paper is named by its author, never by the
number of its file in ../shared/seeds/ ("seed 003" reads like a random seed)."""
import re
from pathlib import Path

import pytest

from budgetvision.papers import BY_KEY, PAPERS, markdown_table, paper_of
from budgetvision.presets import PRESETS

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO.parent / "shared" / "seeds"


def test_every_paper_preset_is_in_the_table_and_its_source_names_the_paper():
    for name, preset in PRESETS.items():
        paper = paper_of(name)
        if preset.origin == "paper":
            assert paper is not None, f"{name} reproduces a paper that papers.py does not list"
            assert preset.source.startswith(f"{paper.name}: "), (name, preset.source)
        else:
            assert paper is None and preset.source.startswith("budgetvision: "), (name, preset.source)
    listed = [n for p in PAPERS for n in p.presets]
    assert len(listed) == len(set(listed)), "a preset listed under two papers"
    assert all(PRESETS[n].origin == "paper" for n in listed), "papers.py lists a preset that is not there"
    assert set(BY_KEY) == {p.key for p in PAPERS} and len(PAPERS) == 5


def test_the_table_agrees_with_each_papers_first_page():
    if not SEEDS.is_dir():
        pytest.skip(f"the papers are not here ({SEEDS})")
    for p in PAPERS:
        first = " ".join((SEEDS / p.file).read_text()[:800].split()).lower()
        assert p.title.split(" (")[0].lower() in first, (p.key, p.title)
        assert all(author.lower() in first for author in p.authors.split(", ")), (p.key, p.authors)


def test_readme_papers_section_is_what_papers_py_generates():
    readme = (REPO / "README.md").read_text()
    start, end = "<!-- papers:start -->\n", "<!-- papers:end -->"
    assert start in readme and end in readme, "README.md lost its papers markers"
    section = readme.split(start, 1)[1].split(end, 1)[0]
    assert section == markdown_table(), "README.md is stale: run benchmarks/update_readme.py"


def test_papers_are_named_by_author_not_by_seed_number():
    files = [REPO / "README.md", REPO / "budgetvision" / "presets.py", REPO / "budgetvision" / "papers.py",
             *sorted((REPO / "docs").rglob("*.md"))]
    found = [f"{f.relative_to(REPO)}:{i}: {line.strip()}" for f in files
             for i, line in enumerate(f.read_text().splitlines(), 1) if re.search(r"\b[Ss]eeds? 00[0-4]", line)]
    assert not found, "name the paper (papers.py), not its seed file:\n" + "\n".join(found)

"""The README and the pages under docs/ hold together: every relative link (and image) resolves to a
file or folder of the checkout, every `#anchor` into a Markdown page names one of its headings (as
GitHub spells heading anchors), every docs page can be reached from the README, and every generated
section (leaderboard, speed, papers, presets) is what benchmarks/update_readme.py writes."""
import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans (a link there is not a link)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def links(path: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(path.read_text())) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens, -1, -2 for repeats."""
    out, count = set(), {}
    for line in FENCE.sub("", path.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = "".join(c for c in m[1].lower() if c.isalnum() or c in " -_").replace(" ", "-")
            n = count.get(slug, 0)
            count[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _target(page: Path, link: str) -> tuple[Path, str]:
    file, _, anchor = link.partition("#")
    return ((page.parent / file).resolve() if file else page), anchor


def test_there_are_docs_pages_and_the_checker_reads_links(tmp_path):
    assert len([p for p in documents() if p.parent.name == "docs"]) >= 4
    assert "docs/usage.md" in links(REPO / "README.md")
    page = tmp_path / "page.md"
    page.write_text("# A `b` (c)\n## A b c\n[a](x.md#a-b) ![i](i.png) [w](https://x.org) `[b](y.md)`\n"
                    "```\n[c](z.md)\n# not a heading\n```\n")
    assert links(page) == ["x.md#a-b", "i.png"]
    assert anchors(page) == {"a-b-c", "a-b-c-1"}


def test_every_relative_link_resolves():
    broken = []
    for page in documents():
        for link in links(page):
            target, anchor = _target(page, link)
            if not target.exists():
                broken.append(f"{page.relative_to(REPO)}: {link} (no such file)")
            elif anchor and target.suffix == ".md" and anchor not in anchors(target):
                broken.append(f"{page.relative_to(REPO)}: {link} (no heading #{anchor} in {target.name})")
    assert not broken, "links that lead nowhere:\n" + "\n".join(broken)


def test_every_docs_page_is_reachable_from_the_readme():
    seen, todo = set(), [(REPO / "README.md").resolve()]
    while todo:
        page = todo.pop()
        if page in seen or page.suffix != ".md" or not page.exists():
            continue
        seen.add(page)
        todo += [_target(page, link)[0] for link in links(page)]
    orphans = [str(p.relative_to(REPO)) for p in documents() if p.resolve() not in seen]
    assert not orphans, f"docs pages no link leads to: {orphans}"


def test_every_generated_section_is_up_to_date():
    spec = importlib.util.spec_from_file_location("update_readme", REPO / "benchmarks" / "update_readme.py")
    update = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(update)
    assert update.main(["--check"]) == 0, "a generated section is stale: run python benchmarks/update_readme.py"

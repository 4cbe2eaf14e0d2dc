"""The docs hold together: every citation of the reference page names a
section it has, every link in the docs reaches a file (and a heading) that
exists, and the docs' index lists every page -- so a moved file or a renamed
section fails here, not in a reader's hands."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.paths import ROOT

DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference.md"
# where citations may be: the project's own files, not the venv or results
CITING_DIRS = ("firmware", "sim", "hil", "scenarios", "campaigns", "limits", "docs", "benchmarks")
CITING_FILES = ("README.md", "CHANGELOG.md", "Makefile", "pyproject.toml")
TEXT_SUFFIXES = (".py", ".md", ".toml", ".json")
LINKING_PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md", ROOT / "CHANGELOG.md"]

CITE_BY_ANCHOR = re.compile(r"docs/reference\.md#([\w-]+)")
CITE_BY_TITLE = re.compile(r"docs/reference\.md: ([^\n]+)")
OLD_CITATION = re.compile(r"\bREFERENCE\b|design notes")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def slug(title: str) -> str:
    """A heading's anchor, as GitHub makes it."""
    kept = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return kept.replace(" ", "-")


def headings(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    return [m.group(1) for m in re.finditer(r"^#{1,6} +(.+?) *#*$", text, re.M)]


def anchors(page: Path) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for title in headings(page):
        s = slug(title)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def citing_files() -> Iterator[Path]:
    """The project's text files, but this one (its patterns would match)."""
    this = Path(__file__).resolve()
    for d in (*CITING_DIRS, "tests"):
        for p in sorted((ROOT / d).rglob("*")):
            if p.suffix in TEXT_SUFFIXES and p.is_file() and p.resolve() != this:
                yield p
    for name in CITING_FILES:
        if (ROOT / name).exists():
            yield ROOT / name


def grep(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """(file:line, first group or match) for every match in the citing files."""
    found = []
    for p in citing_files():
        for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            for m in pattern.finditer(line):
                where = f"{p.relative_to(ROOT)}:{i}"
                found.append((where, m.group(1) if m.groups() else m.group(0)))
    return found


def test_the_reference_page_has_its_sections() -> None:
    assert {"kinds-of-numbers", "heater-and-session", "puffing-regimes"} <= anchors(REFERENCE)


def test_every_citation_of_the_reference_names_a_section() -> None:
    known = anchors(REFERENCE)
    titles = [t.lower() for t in headings(REFERENCE)]
    by_anchor = grep(CITE_BY_ANCHOR)
    by_title = grep(CITE_BY_TITLE)
    assert by_anchor, "no citation of docs/reference.md found: is the scan looking in the tree?"
    bad = [f"{w}: #{a}" for w, a in by_anchor if a not in known]
    bad += [f"{w}: {t!r}" for w, t in by_title if not any(t.lower().startswith(h) for h in titles)]
    lacking = "\n".join(bad)
    assert not bad, f"citations of sections docs/reference.md lacks ({sorted(known)}):\n{lacking}"


def test_nothing_cites_the_reference_where_it_used_to_be() -> None:
    old = [w for w, _ in grep(OLD_CITATION)]
    assert not old, "cite docs/reference.md#section instead:\n" + "\n".join(old)


def links(page: Path) -> Iterator[tuple[int, str]]:
    """(line, target) of every Markdown link outside code."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), page.read_text())
    for i, line in enumerate(text.splitlines(), 1):
        for m in LINK.finditer(CODE_SPAN.sub("", line)):
            yield i, m.group(1)


@pytest.mark.parametrize("page", LINKING_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_in_the_docs_resolves(page: Path) -> None:
    bad = []
    for line, target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists() or ROOT.resolve() not in (dest, *dest.parents):
            bad.append(f"{line}: {target}: no such file in the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{line}: {target}: {dest.name} has no heading #{anchor}")
    assert not bad, f"{page.relative_to(ROOT)}:\n" + "\n".join(bad)


def test_the_docs_index_lists_every_page() -> None:
    listed = {(DOCS / t.partition("#")[0]).resolve() for _, t in links(DOCS / "README.md")}
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.name != "README.md"]
    missing = [n for n in missing if (DOCS / n).resolve() not in listed]
    assert not missing, "docs/README.md has no line for: " + ", ".join(missing)

"""docs/safety.md#every-limit-and-its-test, read: the limits as the spec
gives them. Edge tests on the simulator take their values from here, not
from the source, so a limit moved in the source alone fails them too
(tests/test_limits_doc.py holds the page and the source together)."""

from __future__ import annotations

import functools
import re

from hil.paths import ROOT

PAGE = ROOT / "docs" / "safety.md"
SECTION = "## Every limit and its test"
CONSTANT = re.compile(r"`(\w+)\.(\w+)(?:\[(\d+)\])? = (-?[\d.]+)`")
TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[^\]]*\])?`")

Constant = tuple[str, str, "int | None", str]  # module, name, index, value as written


@functools.cache
def table_lines() -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    assert SECTION in text, f"{PAGE.name} has no section {SECTION!r}"
    body = re.split(r"^## ", text.split(SECTION, 1)[1], flags=re.M)[0]
    return [line for line in body.splitlines() if line.startswith("|") and "---" not in line]


def rows() -> list[tuple[str, list[Constant], list[tuple[str, str]]]]:
    """(limit, its constants, its tests) for every row of the table."""
    out = []
    for line in table_lines():
        first = line.strip("|").split("|")[0].strip()
        if first == "limit":
            continue
        consts = [(m[1], m[2], int(m[3]) if m[3] else None, m[4]) for m in CONSTANT.finditer(line)]
        out.append((first, consts, [(m[1], m[2]) for m in TEST.finditer(line)]))
    return out


def spec(module: str, name: str, index: int | None = None) -> float:
    """A limit's value as the page gives it."""
    for _, consts, _ in rows():
        for m, n, i, v in consts:
            if (m, n, i) == (module, name, index):
                return float(v)
    raise AssertionError(f"docs/safety.md gives no value for {module}.{name}")

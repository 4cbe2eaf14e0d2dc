"""docs/safety.md#every-limit-and-its-test holds: every value it gives is the
one the firmware's source defines, and every test it names exists. A limit
changed in the source without the page (or the page without the source)
fails here; so does a test renamed away from the page that cites it.

The page is the spec; the edge tests read each limit from the source, so
this check is what ties the two together."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest
import safety_doc

from hil.paths import FIRMWARE_DIR, ROOT


def _rows() -> list[tuple[str, list[safety_doc.Constant], list[tuple[str, str]]]]:
    return safety_doc.rows()


@functools.cache
def _constants(module: str) -> dict[str, object]:
    """The literal module-level constants of firmware/<module>.py:
    NAME = const(V) or NAME = V."""
    tree = ast.parse((FIRMWARE_DIR / f"{module}.py").read_text(encoding="utf-8"))
    out: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if not isinstance(target, ast.Name):
                continue
            value = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "const":
                value = value.args[0]
            try:
                out[target.id] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                continue  # not a literal: a table built at import
    return out


def source_value(module: str, name: str, index: int | None) -> object:
    """A constant of firmware/<module>.py (a tuple's item with index)."""
    consts = _constants(module)
    assert name in consts, f"firmware/{module}.py defines no {name}"
    got = consts[name]
    return got[index] if index is not None else got  # type: ignore[index]


@functools.cache
def _functions(path: Path) -> set[str]:
    if not path.exists():
        return set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_the_page_lists_limits() -> None:
    rows = _rows()
    assert len(rows) >= 40, "the table of limits is missing or cut short"
    assert all(tests for _, _, tests in rows), [name for name, _, t in rows if not t]


@pytest.mark.parametrize(
    ("limit", "module", "name", "index", "value"),
    [(row[0], *c) for row in _rows() for c in row[1]],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_each_value_is_the_sources(
    limit: str, module: str, name: str, index: int | None, value: str
) -> None:
    got = source_value(module, name, index)
    want = float(value) if "." in value else int(value)
    assert got == want, f"{limit}: docs/safety.md says {module}.{name} = {value}, the source {got}"


def test_each_test_named_exists() -> None:
    missing = []
    for limit, _, tests in _rows():
        for path, func in tests:
            if func not in _functions(ROOT / path):
                missing.append(f"{limit}: {path}::{func}")
    assert not missing, "docs/safety.md names tests that do not exist:\n" + "\n".join(missing)


# the safety modules: every numeric constant they define is a limit on the page,
# but these, which are no limits
NOT_LIMITS = {
    ("heater_ctl", "_REQ_NONE"): "a request code",
    ("heater_ctl", "_REQ_START"): "a request code",
    ("heater_ctl", "_REQ_STOP"): "a request code",
    ("heater_ctl", "_REQ_CLEAR"): "a request code",
    ("calib", "OK"): "a reason a record is not used",
    ("calib", "MISSING"): "a reason a record is not used",
    ("calib", "DAMAGED"): "a reason a record is not used",
    ("calib", "STALE"): "a reason a record is not used",
    ("calib", "OTHER_UNIT"): "a reason a record is not used",
    ("calib", "OUT_OF_SPEC"): "a reason a record is not used",
    ("cal_check", "IDLE"): "a phase of the check",
    ("cal_check", "FIRST"): "a phase of the check",
    ("cal_check", "RISE"): "a phase of the check",
    ("cal_check", "SLOPE_ONE"): "the unit of a slope (1.000)",
    ("heater_ctl", "_NOT_HELD"): "a marker: no second reading due",
}
SAFETY_MODULES = (
    "heater_safety", "heater_ctl", "puff_detect", "cal_check", "store", "calib", "adccal", "app",
)  # fmt: skip


@pytest.mark.parametrize("module", SAFETY_MODULES)
def test_every_limit_of_a_safety_module_is_on_the_page(module: str) -> None:
    """A new limit without its row (and so without its test) fails."""
    listed = {(m, n) for _, consts, _ in _rows() for m, n, _, _ in consts}
    numeric = []
    for name, value in _constants(module).items():
        items = value if isinstance(value, tuple) else (value,)
        if name.lstrip("_").isupper() and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in items
        ):
            numeric.append(name)
    unlisted = [n for n in numeric if (module, n) not in listed and (module, n) not in NOT_LIMITS]
    assert not unlisted, f"limits of {module}.py docs/safety.md does not list: " + ", ".join(
        unlisted
    )


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NAMED = re.compile(r"\b(tests/[\w/]+\.py|benchmarks/[\w/]+\.py)(?:::(\w+))?")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_test_a_page_names_exists(page: Path) -> None:
    """A claim names its test: the file, and the test if it says which."""
    missing = []
    for path, func in NAMED.findall(page.read_text(encoding="utf-8")):
        file = ROOT / path
        if not file.exists():
            missing.append(path)
            continue
        if func and func not in _functions(file):
            missing.append(f"{path}::{func}")
    assert not missing, f"{page.name} names what does not exist: " + ", ".join(missing)

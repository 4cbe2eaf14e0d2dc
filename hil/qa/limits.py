"""Limit files: one TOML file per heating profile and puffing regime,
`limits/<profile>-<regime>.toml`, one table per measurement:

    [limits]
    profile = "standard"
    regime = "hci"

    [time_to_setpoint_s]
    max = 10.0
    marginal_max = 5.0
    source = "README: within 2 % of the set-point in 10 s"

The whole file is checked when it is read; every problem is reported with
its line.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.paths import ROOT
from hil.qa.measure import KPI_BY_NAME, Limits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LIMITS_DIR = ROOT / "limits"
_KEYS = ("min", "max", "marginal_min", "marginal_max", "equals", "source")
_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_]+)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=")


class LimitsError(ValueError):
    """A limits file is missing or invalid; the message lists every problem."""


@dataclass
class LimitSet:
    path: Path | None
    profile: str = ""
    regime: str = ""
    description: str = ""
    by_name: dict[str, Limits] = field(default_factory=dict)

    def get(self, name: str) -> Limits | None:
        return self.by_name.get(name)

    @property
    def label(self) -> str:
        if self.path is None:
            return "(inline limits)"
        try:
            return str(self.path.resolve().relative_to(ROOT))
        except ValueError:
            return str(self.path)


def path_for(profile: str, regime: str) -> Path:
    return LIMITS_DIR / f"{profile}-{regime}.toml"


def for_run(profile: str, regime: str) -> LimitSet | None:
    """The committed limits of a profile and regime, or None if there are none."""
    p = path_for(profile, regime)
    return load(p) if p.exists() else None


def load(path: Path) -> LimitSet:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise LimitsError(f"{path}: cannot read: {e.strerror}") from None
    return parse(text, path)


def parse(text: str, path: Path | None = None) -> LimitSet:
    where = str(path) if path else "<limits>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LimitsError(f"{where}: TOML syntax: {e}") from None
    lines = _line_index(text)
    problems: list[str] = []

    def fail(table: str, key: str | None, msg: str) -> None:
        no = lines.get((table, key or ""), lines.get((table, "")))
        loc = f"{where}:{no}" if no else where
        problems.append(f"{loc}: [{table}]{' ' + key if key else ''}: {msg}")

    head = data.pop("limits", {})
    ls = LimitSet(
        path=path,
        profile=str(head.get("profile", "")),
        regime=str(head.get("regime", "")),
        description=str(head.get("description", "")),
    )
    for key in head:
        if key not in ("profile", "regime", "description"):
            fail("limits", key, "unknown key; allowed: profile, regime, description")
    for name, table in data.items():
        if name not in KPI_BY_NAME:
            hint = difflib.get_close_matches(name, list(KPI_BY_NAME), n=1)
            more = f" (did you mean {hint[0]!r}?)" if hint else ""
            fail(name, None, f"no such measurement{more}")
            continue
        if not isinstance(table, dict):
            fail(name, None, "must be a table")
            continue
        lim = _limits(name, table, fail)
        if lim is not None:
            ls.by_name[name] = lim
    if problems:
        raise LimitsError("\n".join(problems))
    return ls


def _limits(name: str, table: dict[str, Any], fail: Any) -> Limits | None:
    ok = True
    for key, v in table.items():
        if key not in _KEYS:
            hint = difflib.get_close_matches(key, _KEYS, n=1)
            more = f" (did you mean {hint[0]!r}?)" if hint else ""
            fail(name, key, f"unknown key{more}; allowed: {', '.join(_KEYS)}")
            ok = False
        elif key == "source":
            if not isinstance(v, str):
                fail(name, key, f"must be a string, got {v!r}")
                ok = False
        elif key == "equals":
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                fail(name, key, f"must be a number or a string, got {v!r}")
                ok = False
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            fail(name, key, f"must be a number, got {v!r}")
            ok = False
    if not ok:
        return None
    if "equals" in table and set(table) & {"min", "max", "marginal_min", "marginal_max"}:
        fail(name, "equals", "an exact value takes no range and no marginal band")
        return None
    if not set(table) & {"equals", "min", "max"}:
        fail(name, None, "needs min, max or equals")
        return None
    lo, hi = table.get("min", -math.inf), table.get("max", math.inf)
    mlo, mhi = table.get("marginal_min", lo), table.get("marginal_max", hi)
    if not lo <= mlo <= mhi <= hi:
        fail(name, None, "needs min <= marginal_min <= marginal_max <= max")
        return None
    return Limits(
        min=_f(table.get("min")),
        max=_f(table.get("max")),
        marginal_min=_f(table.get("marginal_min")),
        marginal_max=_f(table.get("marginal_max")),
        equals=table.get("equals"),
        source=table.get("source", ""),
    )


def _f(v: Any) -> float | None:
    return None if v is None else float(v)


def _line_index(text: str) -> dict[tuple[str, str], int]:
    """(table, key) -> line; (table, "") is the table's header."""
    out: dict[tuple[str, str], int] = {}
    table = ""
    for no, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line)
        if m:
            table = m.group(1)
            out.setdefault((table, ""), no)
            continue
        m = _KEY.match(line)
        if m:
            out.setdefault((table, m.group(1)), no)
    return out

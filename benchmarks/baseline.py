"""Benchmark results against a committed baseline (benchmarks/baseline.json),
with tolerances stated in benchmarks/tolerances.toml.

A metric belongs to a section (kpi, speed, instructions) and a group (a
scenario, a benchmark). Its tolerance says which way is worse and by how much
it may move that way: `abs` (in its units), `rel` (a fraction of the
baseline), or `factor` (speeds: slower or faster by more than this factor).
Only a change the worse way beyond the tolerance is a regression; a change
the better way beyond it is reported as an improvement, so that the baseline
gets refreshed (`make bench-baseline`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil import tomlfile
from hil.paths import ROOT

BASELINE_PATH = ROOT / "benchmarks" / "baseline.json"
TOLERANCES_PATH = ROOT / "benchmarks" / "tolerances.toml"
DIRECTIONS = ("higher", "lower", "change")  # which way is worse
_TOLERANCE_KEYS = ("worse", "abs", "rel", "factor", "units")
Value = float | int | str | None


class BaselineError(tomlfile.TomlFileError):
    """The baseline or the tolerances are missing or malformed."""


@dataclass(frozen=True)
class Tolerance:
    worse: str
    abs: float = 0.0
    rel: float = 0.0
    factor: float = 0.0
    units: str = ""

    def describe(self) -> str:
        parts = []
        if self.factor:
            parts.append(f"x{self.factor:g}")
        if self.abs:
            parts.append(f"{self.abs:g} {self.units}".rstrip())
        if self.rel:
            parts.append(f"{self.rel * 100:g} %")
        how = " or ".join(parts) if parts else "none"
        return f"{how}, {self.worse} is worse" if self.worse != "change" else f"{how}, any change"

    def excess(self, base: float, now: float) -> float:
        """How far `now` is worse than `base` beyond the tolerance (> 0: a
        regression); negative values mean within the tolerance."""
        if self.factor:
            if base <= 0 or now <= 0:
                return 0.0 if base == now else math.inf
            ratio = now / base if self.worse == "higher" else base / now
            if self.worse == "change":
                ratio = max(now / base, base / now)
            return ratio - self.factor
        slack = max(self.abs, self.rel * abs(base))
        delta = now - base
        worse_by = {"higher": delta, "lower": -delta, "change": abs(delta)}[self.worse]
        return worse_by - slack

    def better_beyond(self, base: float, now: float) -> bool:
        if self.worse == "change":
            return False
        flipped = Tolerance("lower" if self.worse == "higher" else "higher", self.abs, self.rel,
                            self.factor)  # fmt: skip
        return flipped.excess(base, now) > 0


@dataclass
class Comparison:
    regressions: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.regressions and not self.missing

    def message(self) -> str:
        lines = [*self.regressions, *self.missing]
        if self.improvements:
            lines += [*self.improvements, "(improvements: refresh with `make bench-baseline`)"]
        return "\n".join(lines)


def load_tolerances(path: Path = TOLERANCES_PATH) -> dict[str, dict[str, Tolerance]]:
    text = tomlfile.read(path, BaselineError)
    data = tomlfile.loads(text, str(path), BaselineError)
    ck = tomlfile.Checker(text, str(path))
    out: dict[str, dict[str, Tolerance]] = {}
    for section, metrics in data.items():
        if not isinstance(metrics, dict):
            ck.fail(section, None, "must be a table of metrics")
            continue
        for name, t in metrics.items():
            tol = _tolerance(ck, section, name, t)
            if tol is not None:
                out.setdefault(section, {})[name] = tol
    ck.raise_problems(BaselineError)
    return out


def _tolerance(ck: tomlfile.Checker, section: str, name: str, t: Any) -> Tolerance | None:
    if not isinstance(t, dict) or t.get("worse") not in DIRECTIONS:
        ck.fail(section, name, f"needs worse = one of {', '.join(DIRECTIONS)}")
        return None
    if not ck.check_keys(t, f"{section}.{name}", _TOLERANCE_KEYS):
        return None
    if t.get("factor", 0) and t["factor"] < 1:
        ck.fail(section, name, "factor must be >= 1")
        return None
    return Tolerance(**t)


def load_baseline(path: Path = BASELINE_PATH) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise BaselineError(f"{path}: cannot read: {e}") from None
    return data


def compare(
    section: str,
    group: str,
    measured: dict[str, Value],
    baseline: dict[str, Any],
    tolerances: dict[str, dict[str, Tolerance]],
) -> Comparison:
    """Every measured metric of a group against its baseline."""
    out = Comparison()
    base = baseline.get(section, {}).get(group)
    if base is None:
        out.missing.append(f"{group}: no {section} baseline (record one: make bench-baseline)")
        return out
    tols = tolerances.get(section, {})
    for name, now in measured.items():
        tol = tols.get(name)
        if tol is None:
            continue  # recorded, not judged
        if name not in base:
            out.missing.append(f"{group}: {name} has no baseline (make bench-baseline)")
            continue
        was = base[name]
        detail = f"baseline {_fmt(was, tol)}, now {_fmt(now, tol)} (tolerance {tol.describe()})"
        if isinstance(was, (int, float)) and isinstance(now, (int, float)):
            if tol.excess(float(was), float(now)) > 0:
                how = "changed" if tol.worse == "change" else "regressed"
                out.regressions.append(f"{group}: {name} {how}: {detail}")
            elif tol.better_beyond(float(was), float(now)):
                out.improvements.append(f"{group}: {name} improved: {detail}")
        elif was != now:
            out.regressions.append(f"{group}: {name} changed: {detail}")
    return out


def updated(
    baseline: dict[str, Any], section: str, group: str, measured: dict[str, Value]
) -> dict[str, Any]:
    out = dict(baseline)
    out.setdefault(section, {})
    out[section] = dict(out[section])
    out[section][group] = dict(measured)
    return out


def save(baseline: dict[str, Any], path: Path = BASELINE_PATH) -> None:
    path.write_text(json.dumps(baseline, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _fmt(v: Value, tol: Tolerance) -> str:
    return f"{v} {tol.units}".rstrip() if v is not None else "none"

"""A campaign's statistics: the distribution of every KPI, its process
capability against the limits, and the worst runs.

Cpk = min(USL - mean, mean - LSL) / (3 sd), over the sides that have a
limit (an exact value is both). Cpk >= 1.33 is the usual bar for a capable
process; below 1, more than about 0.1 % of units fall outside a limit. With
no spread (sd = 0) Cpk is infinite inside the limits, minus infinite outside.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hil.campaign.executor import JobResult
from hil.qa import measure
from hil.qa.kpi import KpiSpec
from hil.qa.measure import Limits, Outcome

CAPABLE_CPK = 1.33


@dataclass
class KpiStats:
    name: str
    label: str
    units: str
    limits: Limits | None
    n: int = 0  # runs with a numeric value
    missing: int = 0  # runs without one (not reached, or the run failed)
    mean: float | None = None
    sd: float | None = None
    min: float | None = None
    p05: float | None = None
    median: float | None = None
    p95: float | None = None
    max: float | None = None
    cpk: float | None = None
    cpk_note: str = ""
    outcomes: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)  # text KPIs
    worst_seed: int | None = None
    worst_value: measure.Value = None
    worst_outcome: str = ""

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "limits"}
        d["limits"] = self.limits.to_json() if self.limits else None
        if self.cpk is not None and math.isinf(self.cpk):
            d["cpk"] = None
        return d


def cpk(values: np.ndarray, lo: float | None, hi: float | None) -> tuple[float | None, str]:
    """Process capability of the values against the limits, and a note."""
    if lo is None and hi is None:
        return None, "no limits"
    if len(values) < 2:
        return None, "fewer than 2 values"
    mean = float(np.mean(values))
    sd = float(np.std(values, ddof=1))
    sides = [mean - lo] if lo is not None else []
    if hi is not None:
        sides.append(hi - mean)
    worst = min(sides)
    if sd == 0.0:
        return (math.inf if worst >= 0 else -math.inf), "no spread"
    return worst / (3 * sd), ""


def summarize(results: list[JobResult], limits: dict[str, Limits] | None) -> list[KpiStats]:
    """Statistics of every measurement the runs have (heating KPIs, power
    measurements, or both), over the runs."""
    out = []
    for spec in measured_specs(results):
        lim = (limits or {}).get(spec.name)
        st = KpiStats(spec.name, spec.label, spec.units, lim)
        raw = [(r, r.values.get(spec.name)) for r in results]
        st.outcomes = dict(Counter(r.outcomes.get(spec.name, Outcome.FAIL.value) for r in results))
        nums = [(r, float(v)) for r, v in raw if isinstance(v, (int, float))]
        texts = [v for _, v in raw if isinstance(v, str)]
        st.missing = len(results) - len(nums) - len(texts)
        if texts:
            st.categories = dict(Counter(texts))
            st.cpk_note = "categorical: see counts"
        if nums:
            v = np.array([x for _, x in nums])
            st.n = len(v)
            st.mean, st.min, st.max = float(v.mean()), float(v.min()), float(v.max())
            st.sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            st.p05, st.median, st.p95 = (float(q) for q in np.percentile(v, [5, 50, 95]))
            if lim is not None and lim.numeric:
                st.cpk, st.cpk_note = cpk(v, *lim.bounds())
                if st.missing:
                    st.cpk_note = _join(st.cpk_note, f"{st.missing} runs without a value")
            elif lim is None:
                st.cpk_note = "no limits"
        elif not texts:
            st.cpk_note = f"no values: {st.missing} runs without one"
        _worst(st, raw)
        out.append(st)
    return out


def measured_specs(results: list[JobResult]) -> list[KpiSpec]:
    """The measurements of these runs, in table order; the heating KPIs
    when no run has any (every run failed to complete)."""
    names = {n for r in results for n in r.values}
    return measure.specs_of(names) or list(measure.KPI_SPECS)


def _worst(st: KpiStats, raw: list[tuple[JobResult, measure.Value]]) -> None:
    """The run nearest to (or furthest beyond) a limit; for a text limit, the
    first run that fails it."""
    lim = st.limits
    if lim is None or not raw:
        return
    if lim.numeric:
        scored = [(s, r, v) for r, v in raw if (s := lim.slack(v)) is not None]
        if not scored:
            return
        _, run, value = min(scored, key=lambda x: (x[0], x[1].index))
    else:
        bad = [(r, v) for r, v in raw if lim.check(v) != Outcome.PASS]
        if not bad:
            return
        run, value = bad[0]
    outcome = run.outcomes.get(st.name, "")
    if outcome == Outcome.PASS.value and st.sd == 0.0:
        return  # every run the same and passing: no worst one
    st.worst_seed, st.worst_value, st.worst_outcome = run.seed, value, outcome


def worst_runs(results: list[JobResult], n: int = 10) -> list[JobResult]:
    """Failed runs first (most failed measurements first), then marginal ones."""
    rank = {Outcome.FAIL.value: 0, Outcome.MARGINAL.value: 1}
    bad = [r for r in results if r.outcome in rank]

    def key(r: JobResult) -> tuple[int, int, int]:
        fails = sum(o == Outcome.FAIL.value for o in r.outcomes.values()) + bool(r.error)
        return (rank[r.outcome], -fails, r.index)

    return sorted(bad, key=key)[:n]


def format_cpk(st: KpiStats) -> str:
    if st.cpk is None:
        return "-"
    if math.isinf(st.cpk):
        return "inf" if st.cpk > 0 else "-inf"
    return f"{st.cpk:.2f}"


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b

"""Benchmark results against the baseline: which way is worse, by how much."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import baseline
from benchmarks.baseline import Tolerance

TOL = {
    "kpi": {
        "overshoot_pct": Tolerance("higher", abs=0.25, units="%"),
        "end_reason": Tolerance("change"),
        "energy_j": Tolerance("higher", rel=0.03, units="J"),
    },
    "speed": {"step_ns": Tolerance("higher", factor=2.0, units="ns")},
}
Measured = dict[str, baseline.Value]  # one group's figures, as measured

BASE = {
    "kpi": {"hci": {"overshoot_pct": 0.53, "end_reason": "time_limit", "energy_j": 1000.0}},
    "speed": {"step": {"step_ns": 5000}},
}


def test_a_regression_names_the_kpi_and_both_values() -> None:
    now: Measured = {"overshoot_pct": 1.09, "end_reason": "time_limit", "energy_j": 1020.0}
    cmp = baseline.compare("kpi", "hci", now, BASE, TOL)
    assert not cmp.ok
    assert cmp.regressions == [
        "hci: overshoot_pct regressed: baseline 0.53 %, now 1.09 % "
        "(tolerance 0.25 %, higher is worse)"
    ]


def test_within_tolerance_and_improvements_pass() -> None:
    now: Measured = {"overshoot_pct": 0.7, "end_reason": "time_limit", "energy_j": 900.0}
    cmp = baseline.compare("kpi", "hci", now, BASE, TOL)
    assert cmp.ok
    assert cmp.improvements and "energy_j improved" in cmp.improvements[0]


def test_text_kpis_must_not_change() -> None:
    now: Measured = {"overshoot_pct": 0.53, "end_reason": "fault", "energy_j": 1000.0}
    cmp = baseline.compare("kpi", "hci", now, BASE, TOL)
    assert cmp.regressions == [
        "hci: end_reason changed: baseline time_limit, now fault (tolerance none, any change)"
    ]


@pytest.mark.parametrize(("now", "ok"), [(9_900, True), (10_100, False), (2_000, True)])
def test_speeds_fail_only_beyond_their_factor(now: int, ok: bool) -> None:
    assert baseline.compare("speed", "step", {"step_ns": now}, BASE, TOL).ok is ok


def test_a_missing_baseline_fails_and_says_how_to_record_one() -> None:
    cmp = baseline.compare("kpi", "new_scenario", {"overshoot_pct": 1.0}, BASE, TOL)
    assert not cmp.ok and "make bench-baseline" in cmp.message()


def test_the_committed_tolerances_and_baseline_agree() -> None:
    tol = baseline.load_tolerances()
    base = baseline.load_baseline()
    for section in ("kpi", "speed", "cost", "instructions"):
        judged = set(tol[section])
        recorded = {name for group in base[section].values() for name in group}
        assert judged <= recorded, f"{section}: tolerances without a baseline value"


def test_malformed_tolerances_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "t.toml"
    bad.write_text('[kpi]\nx = { worse = "up" }\n')
    with pytest.raises(baseline.BaselineError, match="worse = one of higher, lower, change"):
        baseline.load_tolerances(bad)

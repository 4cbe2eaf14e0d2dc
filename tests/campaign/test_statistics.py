"""Campaign statistics: Cpk, categorical KPIs, worst cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hil.campaign import statistics
from hil.campaign.executor import JobResult
from hil.qa.measure import Limits, Value


def test_cpk_of_a_centred_process_at_three_sigma_is_one() -> None:
    rng = np.random.default_rng(1)
    v = rng.normal(0.0, 1.0, 100_000)
    v = (v - v.mean()) / v.std(ddof=1)  # exactly mean 0, sd 1
    cpk, note = statistics.cpk(v, -3.0, 3.0)
    assert cpk == pytest.approx(1.0) and note == ""
    # off-centre: the nearer limit counts
    assert statistics.cpk(v + 1.0, -3.0, 3.0)[0] == pytest.approx(2 / 3)
    # one-sided
    assert statistics.cpk(v, None, 6.0)[0] == pytest.approx(2.0)
    assert statistics.cpk(v, None, None) == (None, "no limits")


def test_no_spread_is_infinitely_capable_inside_the_limits_only() -> None:
    same = np.full(10, 12.0)
    assert statistics.cpk(same, 12.0, 12.0) == (math.inf, "no spread")
    assert statistics.cpk(same, 13.0, 13.0) == (-math.inf, "no spread")


def _run(i: int, values: dict[str, Value], outcomes: dict[str, str], outcome: str) -> JobResult:
    return JobResult(index=i, seed=100 + i, params={}, values=values, outcomes=outcomes,
                     outcome=outcome)  # fmt: skip


def test_summary_statistics_and_the_worst_run() -> None:
    runs = [
        _run(0, {"energy_j": 1200.0, "end_reason": "time_limit"},
             {"energy_j": "pass", "end_reason": "pass"}, "pass"),
        _run(1, {"energy_j": 1450.0, "end_reason": "time_limit"},
             {"energy_j": "marginal", "end_reason": "pass"}, "marginal"),
        _run(2, {"energy_j": 1100.0, "end_reason": "fault"},
             {"energy_j": "pass", "end_reason": "fail"}, "fail"),
    ]  # fmt: skip
    limits = {"energy_j": Limits(max=1500.0, marginal_max=1400.0),
              "end_reason": Limits(equals="time_limit")}  # fmt: skip
    stats = {s.name: s for s in statistics.summarize(runs, limits)}
    e = stats["energy_j"]
    assert (e.n, e.mean, e.min, e.max) == (3, 1250.0, 1100.0, 1450.0)
    assert e.cpk == pytest.approx((1500.0 - 1250.0) / (3 * np.std([1200, 1450, 1100], ddof=1)))
    assert (e.worst_seed, e.worst_value) == (101, 1450.0)  # nearest its limit
    assert e.outcomes == {"pass": 2, "marginal": 1}
    r = stats["end_reason"]
    assert r.categories == {"time_limit": 2, "fault": 1} and r.cpk is None
    assert r.worst_seed == 102
    assert [w.seed for w in statistics.worst_runs(runs)] == [102, 101]

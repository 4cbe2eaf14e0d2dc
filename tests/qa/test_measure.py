"""Measurements with limits: outcomes at and around every limit."""

from __future__ import annotations

import math

import pytest

from hil.qa import kpi, measure
from hil.qa.measure import Limits, Outcome

BAND = Limits(min=1.0, max=3.0, marginal_min=1.5, marginal_max=2.5)


@pytest.mark.parametrize(
    ("value", "outcome"),
    [
        (2.0, Outcome.PASS),
        (1.5, Outcome.PASS),  # the marginal band's edges still pass
        (2.5, Outcome.PASS),
        (1.2, Outcome.MARGINAL),
        (2.9, Outcome.MARGINAL),
        (1.0, Outcome.MARGINAL),  # the limits themselves are inside
        (3.0, Outcome.MARGINAL),
        (0.99, Outcome.FAIL),
        (3.01, Outcome.FAIL),
        (None, Outcome.FAIL),  # no value: not reached
        (math.nan, Outcome.FAIL),
        ("text", Outcome.FAIL),
    ],
)
def test_a_range_with_a_marginal_band(value: measure.Value, outcome: Outcome) -> None:
    assert BAND.check(value) == outcome


def test_one_sided_limits() -> None:
    upper = Limits(max=10.0, marginal_max=5.0)
    assert [upper.check(v) for v in (-100.0, 5.0, 7.0, 10.5)] == [
        Outcome.PASS,
        Outcome.PASS,
        Outcome.MARGINAL,
        Outcome.FAIL,
    ]
    lower = Limits(min=0.0)
    assert lower.check(0.0) == Outcome.PASS and lower.check(-0.1) == Outcome.FAIL


def test_exact_values_numbers_and_text() -> None:
    assert Limits(equals=12).check(12) == Outcome.PASS
    assert Limits(equals=12).check(11) == Outcome.FAIL
    assert Limits(equals="time_limit").check("time_limit") == Outcome.PASS
    assert Limits(equals="time_limit").check("fault") == Outcome.FAIL


def test_slack_is_the_distance_to_the_nearest_limit() -> None:
    assert BAND.slack(2.0) == pytest.approx(1.0)
    assert BAND.slack(2.8) == pytest.approx(0.2)
    assert BAND.slack(3.5) == pytest.approx(-0.5)
    assert BAND.slack(None) == -math.inf
    assert Limits(equals=12).slack(11) == -1
    assert Limits(equals="none").slack("none") is None


def test_limits_read_as_people_write_them() -> None:
    assert Limits(max=10.0, marginal_max=5.0).describe() == "\u2264 10; marginal > 5"
    assert BAND.describe() == "1 .. 3; marginal < 1.5 or > 2.5"
    assert Limits(equals="none").describe() == "= none"


def test_evaluate_judges_every_kpi_and_knows_what_needs_truth() -> None:
    kpi = {"time_to_setpoint_s": 1.5, "peak_blade_true_c": 321.0, "puffs_taken": 12}
    limits = {
        "time_to_setpoint_s": Limits(max=10.0),
        "peak_blade_true_c": Limits(max=350.0),
        "puffs_taken": Limits(equals=12),
        "overshoot_pct": Limits(max=2.0),
    }
    on_board = {m.name: m for m in measure.evaluate(kpi, limits, has_truth=False)}
    assert [m.name for m in on_board.values()] == [s.name for s in measure.KPI_SPECS]
    assert on_board["time_to_setpoint_s"].outcome == Outcome.PASS
    # a board cannot measure the true blade temperature: unset, not failed
    assert on_board["peak_blade_true_c"].outcome == Outcome.UNSET
    assert on_board["puffs_taken"].outcome == Outcome.UNSET
    # a KPI the target can measure but has no value for fails against its limit
    assert on_board["overshoot_pct"].outcome == Outcome.FAIL
    # and one without a limit is unset
    assert on_board["energy_j"].outcome == Outcome.UNSET
    in_sim = {m.name: m for m in measure.evaluate(kpi, limits, has_truth=True)}
    assert in_sim["peak_blade_true_c"].outcome == Outcome.PASS


def test_the_overall_outcome_is_the_worst_one() -> None:
    def ms(*outcomes: Outcome) -> list[measure.Measurement]:
        return [measure.Measurement("x", "x", "", 1.0, None, o) for o in outcomes]

    assert measure.overall(ms(Outcome.PASS, Outcome.UNSET)) == Outcome.PASS
    assert measure.overall(ms(Outcome.PASS, Outcome.MARGINAL)) == Outcome.MARGINAL
    assert measure.overall(ms(Outcome.MARGINAL, Outcome.FAIL)) == Outcome.FAIL
    assert measure.overall(ms(Outcome.UNSET)) == Outcome.UNSET


def test_measurements_survive_json() -> None:
    m = measure.Measurement("overshoot_pct", "overshoot", "%", 0.53, BAND, Outcome.PASS, "n")
    assert measure.Measurement.from_json(m.to_json()) == m


def test_one_kpi_table_serves_the_console_the_record_and_the_report() -> None:
    assert [s.name for s in measure.KPI_SPECS] == [s.name for s in kpi.KPIS if s.measured]
    assert [m.label for m in measure.evaluate({}, None, has_truth=True)] == [
        s.label for s in measure.KPI_SPECS
    ]
    lines = kpi.table({"rms_error_c": 0.43, "control_jitter_us": 0}).splitlines()
    assert len(lines) == sum(s.printed for s in kpi.KPIS)
    # the console's table is ASCII: "C" and "us" for the record's degrees and microseconds
    assert all(ln.isascii() for ln in lines)
    assert any(ln.startswith("  control-period jitter ") and ln.endswith(" 0 us") for ln in lines)
    assert any(
        ln.startswith("  RMS error between puffs ") and ln.endswith(" 0.43 C") for ln in lines
    )

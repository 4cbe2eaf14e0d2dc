"""The calibration's plausibility checks (firmware/cal_check.py) and the
puff detector's input (firmware/puff_detect.py), unit- and property-tested in
CPython with Int30 arithmetic: in the control step nothing may need a bigint."""

from __future__ import annotations

from typing import Any

import fw_harness as fw
import pytest
from fw_harness import Int30
from hypothesis import given, settings
from hypothesis import strategies as st

cal_check = fw.firmware("cal_check")
board = fw.firmware("board")
puff_detect = fw.firmware("puff_detect")
calib = fw.firmware("calib")
faults = fw.firmware("faults")

SETTLE = settings(max_examples=300, deadline=None, derandomize=True)
K_UJ_PER_CC = 200  # cal_check._K_UJ_PER_CC: what a record of its own heater measures


def test_the_fail_safe_record_is_the_spec_corner_that_reads_hot() -> None:
    assert (board.CAL_FAILSAFE_R0_UOHM, board.CAL_FAILSAFE_TCR_PPM) == (
        board.CAL_R0_MIN_UOHM,
        board.CAL_TCR_MIN_PPM,
    )
    fs = calib.fail_safe(calib.MISSING)
    assert not fs.stored and fs.why == calib.MISSING


def _cold_start(slope: float, per_period_mw: int = 10000, start_cc: int = 2000) -> tuple[int, Any]:
    """A cold start whose reading rises 1/slope as fast as a record of its own
    heater would read it: (what rise() said last, the check)."""
    c = cal_check.CalCheck()
    c.begin(False)
    assert c.first(start_cc, start_cc, False) == 0 and c.phase == cal_check.RISE
    t = start_cc
    for _ in range(40):
        t += round(per_period_mw * 10 / (K_UJ_PER_CC * slope))  # 10 ms of the power, in 0.01 K
        r = c.rise(Int30(t), Int30(per_period_mw), Int30(10000))
        if r:
            return r, c
    return 0, c


@pytest.mark.parametrize(
    ("slope", "tripped"), [(1.00, False), (1.15, False), (1.19, False), (1.21, True), (1.6, True)]
)
def test_the_heat_of_the_rise_measures_the_records_slope(slope: float, tripped: bool) -> None:
    r, c = _cold_start(slope)
    assert r == (1 if tripped else 2)
    if not tripped:
        assert c.measured_pm == pytest.approx(slope * 1000, rel=0.02)
        # read down by the slope less its tolerance, never up
        assert c.slope_pm == max(1000, c.measured_pm * 980 // 1000)
        assert c.correct(32000) >= 32000


def test_a_record_that_reads_hot_is_never_read_hotter() -> None:
    r, c = _cold_start(0.8)
    assert r == 2 and c.slope_pm == 1000 and c.correct(32000) == 32000


def test_a_cold_start_reading_under_the_air_trips_just_past_6_k() -> None:
    for under_cc, trips in ((599, 0), (601, faults.CALIBRATION)):
        c = cal_check.CalCheck()
        c.begin(False)
        assert c.first(2000 - under_cc, 2000, False) == trips
    c = cal_check.CalCheck()
    c.begin(False)
    assert c.first(2000 - 2000, 2000, True) == 0  # the fail-safe record reads hot: no such check


def test_a_warm_start_with_no_check_this_boot_is_refused_until_the_blade_has_cooled() -> None:
    c = cal_check.CalCheck()
    c.begin(False)
    assert c.first(2000 + 1501, 2000, False) == faults.BLADE_WARM
    assert c.phase == cal_check.IDLE and c.slope_pm == cal_check.SLOPE_ONE
    c.begin(True)  # off long enough: the blade is at the air, the excess the record's
    assert c.first(2000 + 1501, 2000, False) == 0 and c.phase == cal_check.RISE
    r, checked = _cold_start(1.05)  # a check this boot: a warm start keeps its slope
    assert r == 2
    slope = checked.slope_pm
    assert slope > 1000
    checked.begin(False)
    assert checked.first(30000, 2000, False) == 0 and checked.slope_pm == slope


@SETTLE
@given(
    p_mw=st.integers(0, 20000),
    dt_us=st.integers(1, 50000),
    rise_cc=st.integers(-5000, 5000),
    periods=st.integers(1, 60),
)
def test_the_rise_check_never_needs_a_bigint(
    p_mw: int, dt_us: int, rise_cc: int, periods: int
) -> None:
    c = cal_check.CalCheck()
    c.begin(False)
    c.first(Int30(2000), Int30(2000), False)
    t = 2000
    for _ in range(periods):
        t += rise_cc // periods
        if c.rise(Int30(t), Int30(p_mw), Int30(dt_us)):
            break
    c.correct(Int30(40000))


@SETTLE
@given(
    p_mw=st.lists(st.integers(0, 20000), min_size=8, max_size=8),
    dt_us=st.lists(st.integers(5000, 50000), min_size=8, max_size=8),
    step_cc=st.lists(st.integers(-800, 800), min_size=8, max_size=8),
    rise_cc=st.integers(8000, 60000),
    k=st.integers(100, 330),
)
def test_the_loss_fed_to_the_puff_detector_never_needs_a_bigint(
    p_mw: list[int], dt_us: list[int], step_cc: list[int], rise_cc: int, k: int
) -> None:
    d = puff_detect.PuffDetector()
    t = 30000
    for p, dt, s in zip(p_mw, dt_us, step_cc, strict=True):
        t += s
        d.feed(Int30(p), Int30(dt), Int30(t), Int30(rise_cc), Int30(k))
    assert d.started

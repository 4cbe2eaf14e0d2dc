"""Every safety limit of the heater, tested at its edge: just inside it does
not trip, just outside it trips -- with the right fault code, within the
time the README states (the same control step; a debounced signal on its
second sample, within two control periods). Each limit is read from the
firmware's source (tests/firmware/fw_edges.py), so the edge follows its
constant; docs/safety.md#every-limit-and-its-test lists the limits with
their values and these tests, and tests/test_limits_doc.py holds the table
to the source.

Runs in CPython on stand-in hardware (fw_harness): fast enough to run for
every mutant of the safety modules (mutation/plan.toml).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from fw_edges import (
    PERIOD_MS,
    Heater,
    board,
    cal,
    faults,
    heater_ctl,
    heater_safety,
    limit,
    ntc,
    ok_readings,
    states,
    temp_reading,
)

HS = heater_safety
I_OPEN = limit(HS, "_I_OPEN_MA")
I_MAX = limit(HS, "_I_MAX_MA")
RAIL = limit(HS, "_RAIL_UV")
NTC_MIN = limit(HS, "_NTC_MIN_UV")
V_OVER = limit(HS, "_V_OVER_CELL_MV")
CELL_MIN = limit(HS, "_CELL_MIN_MV")
SANE_MIN = limit(HS, "_CELL_SANE_MIN_MV")
SANE_MAX = limit(HS, "_CELL_SANE_MAX_MV")
DEBOUNCE = limit(HS, "_DEBOUNCE")
TOL = limit(HS, "_NTC_TOL_C")


def check(s: Any = None, **change: int) -> int:
    """One check_heating on a fresh HeaterSafety (or `s`) with one change."""
    safety = s or HS.HeaterSafety(cal())
    return int(safety.check_heating(**ok_readings(**change)))


def trips_after(change: dict[str, int], n: int = 6) -> list[int]:
    """The codes of n checks in a row with the same out-of-range reading."""
    s = HS.HeaterSafety(cal())
    return [int(s.check_heating(**ok_readings(**change))) for _ in range(n)]


def debounced(code: int) -> list[int]:
    """What a debounced fault looks like over 6 samples: quiet, then the code."""
    return [0] * (DEBOUNCE - 1) + [code] * (7 - DEBOUNCE)


# --- fast signals: trip on the sample that shows them ------------------------------------


def test_the_healthy_reference_passes() -> None:
    assert trips_after({}) == [0] * 6


def test_stick_removed_trips_at_once() -> None:
    assert check(stick=0) == faults.STICK_MISSING
    assert check(stick=0, sampled=False) == faults.STICK_MISSING  # heater reading or not
    assert check(stick=1) == 0


def test_heater_open_below_the_minimum_current() -> None:
    # a 1.6 ohm track at the edge current: its voltage alone is no other fault
    assert check(i_ma=I_OPEN, v_mv=I_OPEN * 16 // 10, ih_uv=I_OPEN * 500) == 0
    assert check(i_ma=I_OPEN - 1, v_mv=(I_OPEN - 1) * 16 // 10) == faults.HEATER_OPEN
    assert check(i_ma=0, v_mv=0) == faults.HEATER_OPEN
    # no on-phase sample (duty was 0): the heater readings are not judged
    assert check(i_ma=0, v_mv=0, sampled=False) == 0


def test_heater_short_above_the_maximum_current() -> None:
    # 0.6 ohm at the edge current: neither a short by resistance nor above the cell
    v = I_MAX * 6 // 10
    assert check(i_ma=I_MAX, v_mv=v, cell_mv=v, ih_uv=I_MAX * 500) == 0
    assert check(i_ma=I_MAX + 1, v_mv=v, cell_mv=v) == faults.HEATER_SHORT


def test_heater_short_below_half_the_cold_resistance() -> None:
    c = cal()
    s = HS.HeaterSafety(c)
    assert s.r_short_100u == c.r0_uohm * limit(HS, "_R_SHORT_PCT") // 100 // 100
    i = 2000
    v_edge = math.ceil(s.r_short_100u * i / 10000)  # the lowest millivolts that are no short
    assert check(s, i_ma=i, v_mv=v_edge) == 0
    assert check(HS.HeaterSafety(c), i_ma=i, v_mv=v_edge - 1) == faults.HEATER_SHORT


def test_a_pinned_heater_reading_is_implausible() -> None:
    assert check(vh_uv=RAIL - 1) == 0
    assert check(vh_uv=RAIL) == faults.ADC_IMPLAUSIBLE
    assert check(ih_uv=RAIL - 1) == 0
    assert check(ih_uv=RAIL) == faults.ADC_IMPLAUSIBLE
    assert RAIL < board.ADC_FULL_SCALE_UV  # the rail is reached before full scale


def test_heater_volts_above_the_cell_are_implausible() -> None:
    cell = 3600
    assert check(cell_mv=cell, v_mv=cell + V_OVER, i_ma=2400) == 0
    assert check(cell_mv=cell, v_mv=cell + V_OVER + 1, i_ma=2400) == faults.ADC_IMPLAUSIBLE


def test_over_temperature_at_the_resistance_of_the_cap() -> None:
    c = cal()
    s = HS.HeaterSafety(c)
    i = 2000
    v_edge = s.r_cap_100u * i // 10000  # the highest millivolts at or below the cap
    assert check(s, i_ma=i, v_mv=v_edge, cell_mv=v_edge + 200) == 0
    assert check(s, i_ma=i, v_mv=v_edge + 1, cell_mv=v_edge + 200) == faults.OVER_TEMP
    # the edge is TEMP_CAP_C as the controller reads the blade (within a reading's step)
    at_edge = heater_ctl.temp_cc(v_edge * 10, i, c.r0_10u, c.r0tcr_uohm_k)
    assert abs(at_edge - 100 * HS.TEMP_CAP_C) <= 10
    assert check(s, i_ma=i, v_mv=v_edge + 1, cell_mv=v_edge + 200, sampled=False) == 0


@pytest.mark.parametrize(("r0", "tcr"), [(400_000, 2500), (800_000, 3500), (1_500_000, 4500)])
def test_over_temperature_threshold_follows_the_calibration(r0: int, tcr: int) -> None:
    """r_cap = R0 (1 + TCR (TEMP_CAP_C - T0)) at either end of the valid ranges."""
    s = HS.HeaterSafety(cal(r0, tcr))
    r_cap = r0 / 1e6 * (1 + tcr / 1e6 * (HS.TEMP_CAP_C - board.CAL_T0_C))
    assert abs(s.r_cap_100u / 1e4 - r_cap) < 1e-4
    assert s.r_short_100u == r0 * limit(HS, "_R_SHORT_PCT") // 100 // 100  # half R0, 100 uOhm


def test_the_checks_come_in_their_order() -> None:
    """Several faults at once: the most specific is named (the stick, then
    the heater's own readings, then the slow signals)."""
    assert check(stick=0, i_ma=0) == faults.STICK_MISSING
    assert check(i_ma=0, vh_uv=RAIL) == faults.HEATER_OPEN
    assert check(i_ma=I_MAX + 1, vh_uv=RAIL) == faults.HEATER_SHORT
    assert check(vh_uv=RAIL, v_mv=4000, cell_mv=3600) == faults.ADC_IMPLAUSIBLE
    assert check(v_mv=3600, cell_mv=3500, cell_ntc_uv=0) == faults.OVER_TEMP  # 1.8 ohm


# --- sanity of the slow signals' readings: at once ------------------------------------------


@pytest.mark.parametrize(
    ("key", "inside", "outside"),
    [
        ("cell_mv", SANE_MIN, SANE_MIN - 1),
        ("cell_mv", SANE_MAX, SANE_MAX + 1),
        ("cell_ntc_uv", NTC_MIN, NTC_MIN - 1),  # a shorted thermistor
        ("cell_ntc_uv", RAIL - 1, RAIL),  # an open one
        ("amb_ntc_uv", NTC_MIN, NTC_MIN - 1),
        ("amb_ntc_uv", RAIL - 1, RAIL),
    ],
)
def test_an_implausible_slow_reading_trips_at_once(key: str, inside: int, outside: int) -> None:
    extra = {"v_mv": 2000} if key == "cell_mv" else {}  # the heater below the cell
    assert check(**{key: inside}, **extra) == 0  # its first sample: nothing yet
    assert check(**{key: outside}, **extra) == faults.ADC_IMPLAUSIBLE
    assert check(**{key: outside}, **extra, sampled=False) == faults.ADC_IMPLAUSIBLE


# --- slow signals: debounced -------------------------------------------------------------


def test_cell_under_voltage_below_its_minimum_on_the_second_sample() -> None:
    assert trips_after({"cell_mv": CELL_MIN, "v_mv": 2000}) == [0] * 6
    assert trips_after({"cell_mv": CELL_MIN - 1, "v_mv": 2000}) == debounced(faults.CELL_UNDERVOLT)


def test_cell_over_temperature_at_its_limit_and_tolerance() -> None:
    s = HS.HeaterSafety(cal())
    assert s.cell_hot_uv == ntc.uv_at_c(HS.CELL_MAX_C + TOL)
    assert trips_after({"cell_ntc_uv": s.cell_hot_uv}) == [0] * 6
    assert trips_after({"cell_ntc_uv": s.cell_hot_uv - 1}) == debounced(faults.CELL_OVERTEMP)
    # in degrees: a reading within the thermistor's tolerance of the limit never trips
    assert trips_after({"cell_ntc_uv": ntc.uv_at_c(HS.CELL_MAX_C + TOL - 0.05)}) == [0] * 6
    assert trips_after({"cell_ntc_uv": ntc.uv_at_c(HS.CELL_MAX_C + TOL + 0.05)})[-1] != 0


def test_ambient_limits_with_the_thermistors_tolerance() -> None:
    s = HS.HeaterSafety(cal())
    assert s.amb_cold_uv == ntc.uv_at_c(HS.AMBIENT_MIN_C - TOL)
    assert s.amb_hot_uv == ntc.uv_at_c(HS.AMBIENT_MAX_C + TOL)
    assert trips_after({"amb_ntc_uv": s.amb_cold_uv}) == [0] * 6
    assert trips_after({"amb_ntc_uv": s.amb_cold_uv + 1}) == debounced(faults.AMBIENT_COLD)
    assert trips_after({"amb_ntc_uv": s.amb_hot_uv}) == [0] * 6
    assert trips_after({"amb_ntc_uv": s.amb_hot_uv - 1}) == debounced(faults.AMBIENT_HOT)
    for c, code in ((HS.AMBIENT_MIN_C - TOL, faults.AMBIENT_COLD),
                    (HS.AMBIENT_MAX_C + TOL, faults.AMBIENT_HOT)):  # fmt: skip
        step = 0.05 if code == faults.AMBIENT_HOT else -0.05
        assert trips_after({"amb_ntc_uv": ntc.uv_at_c(c - step)}) == [0] * 6
        assert trips_after({"amb_ntc_uv": ntc.uv_at_c(c + step)})[-1] == code


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ({"cell_mv": CELL_MIN - 1, "v_mv": 2000}, faults.CELL_UNDERVOLT),
        ({"cell_ntc_uv": ntc.uv_at_c(70)}, faults.CELL_OVERTEMP),
        ({"amb_ntc_uv": ntc.uv_at_c(-5)}, faults.AMBIENT_COLD),
        ({"amb_ntc_uv": ntc.uv_at_c(55)}, faults.AMBIENT_HOT),
    ],
)
def test_a_good_sample_between_two_bad_ones_starts_the_count_again(
    bad: dict[str, int], code: int
) -> None:
    s = HS.HeaterSafety(cal())
    seq = [bad, {}] * 3 + [bad] * DEBOUNCE
    got = [int(s.check_heating(**ok_readings(**r))) for r in seq]
    assert got == [0] * (len(seq) - 1) + [code]
    s.reset()  # a new session: the counts start afresh
    assert [int(s.check_heating(**ok_readings(**bad))) for _ in range(DEBOUNCE)][-1] == code
    s.reset()
    assert int(s.check_heating(**ok_readings(**bad))) == (0 if DEBOUNCE > 1 else code)


def test_ambient_cold_then_hot_counts_as_one_signal() -> None:
    """Out of range either way is one condition: its code is the last sample's."""
    s = HS.HeaterSafety(cal())
    temps = [-5, 55] * DEBOUNCE
    got = [int(s.check_heating(**ok_readings(amb_ntc_uv=ntc.uv_at_c(t)))) for t in temps]
    assert got[DEBOUNCE - 1] == (faults.AMBIENT_COLD if DEBOUNCE % 2 else faults.AMBIENT_HOT)
    assert got[: DEBOUNCE - 1] == [0] * (DEBOUNCE - 1)


# --- refusing a start: one sample, no debounce ----------------------------------------------


def refusal(cell_mv: int = 3900, cell_ntc_uv: int | None = None, amb_ntc_uv: int | None = None,
            block: int = 0) -> int:  # fmt: skip
    s = HS.HeaterSafety(cal())
    s.start_block = block
    cell_ntc = ntc.uv_at_c(25) if cell_ntc_uv is None else cell_ntc_uv
    amb = ntc.uv_at_c(20) if amb_ntc_uv is None else amb_ntc_uv
    return int(s.start_refusal(cell_mv, cell_ntc, amb))


def test_start_refused_at_the_same_edges_on_one_sample() -> None:
    s = HS.HeaterSafety(cal())
    assert refusal() == 0
    assert refusal(cell_mv=CELL_MIN) == 0
    assert refusal(cell_mv=CELL_MIN - 1) == faults.CELL_UNDERVOLT
    assert refusal(cell_mv=SANE_MIN - 1) == faults.ADC_IMPLAUSIBLE
    assert refusal(cell_mv=SANE_MAX) == 0
    assert refusal(cell_mv=SANE_MAX + 1) == faults.ADC_IMPLAUSIBLE
    assert refusal(cell_ntc_uv=s.cell_hot_uv) == 0
    assert refusal(cell_ntc_uv=s.cell_hot_uv - 1) == faults.CELL_OVERTEMP
    assert refusal(cell_ntc_uv=NTC_MIN - 1) == faults.ADC_IMPLAUSIBLE
    assert refusal(cell_ntc_uv=RAIL) == faults.ADC_IMPLAUSIBLE
    assert refusal(amb_ntc_uv=s.amb_cold_uv) == 0
    assert refusal(amb_ntc_uv=s.amb_cold_uv + 1) == faults.AMBIENT_COLD
    assert refusal(amb_ntc_uv=s.amb_hot_uv) == 0
    assert refusal(amb_ntc_uv=s.amb_hot_uv - 1) == faults.AMBIENT_HOT
    assert refusal(amb_ntc_uv=NTC_MIN - 1) == faults.ADC_IMPLAUSIBLE
    assert refusal(amb_ntc_uv=RAIL) == faults.ADC_IMPLAUSIBLE
    assert refusal(block=faults.HOLDER_LOW) == faults.HOLDER_LOW  # the charger's gate
    assert refusal(cell_mv=CELL_MIN - 1, block=faults.HOLDER_LOW) == faults.CELL_UNDERVOLT


# --- the first measurement of a session against the air -------------------------------------


def test_a_blade_colder_than_the_air_by_the_margin_trips_calibration() -> None:
    margin = limit(HS, "_CAL_MARGIN_CC")
    for amb_c in (0, 20, 50):
        uv = ntc.uv_at_c(amb_c)
        air_cc = ntc.dc_from_uv(uv) * 10
        assert HS.HeaterSafety.check_first_sample(air_cc - margin, uv) == 0
        assert HS.HeaterSafety.check_first_sample(air_cc - margin - 1, uv) == faults.CALIBRATION
        assert HS.HeaterSafety.check_first_sample(air_cc + 30000, uv) == 0


# --- in the control step: cut through both paths, logged, within the stated time -------------


CUT_AT_ONCE = [
    ({"i_ma": I_OPEN - 1, "v_mv": 240}, faults.HEATER_OPEN, 240),
    ({"i_ma": I_MAX + 1, "v_mv": 3600}, faults.HEATER_SHORT, 3600),
    ({"v_mv": 3900 + V_OVER + 1}, faults.ADC_IMPLAUSIBLE, 3900 + V_OVER + 1),
    ({"cell_mv": SANE_MIN - 1, "v_mv": 2000}, faults.ADC_IMPLAUSIBLE, 2000),
    ({"amb_ntc_uv": RAIL}, faults.ADC_IMPLAUSIBLE, 3200),
    ({"v_mv": 3500}, faults.OVER_TEMP, 3500),  # 1.75 ohm at 2 A: above the cap
]


@pytest.mark.parametrize(("change", "code", "detail"), CUT_AT_ONCE)
def test_the_step_cuts_and_logs_a_fast_fault_in_the_same_period(
    change: dict[str, int], code: int, detail: int
) -> None:
    h = Heater()
    h.heating()
    assert h.duty > 0 and h.switch_on and h.hc.state == states.HEATING
    h.set(**change)
    h.step()
    assert h.cut
    assert (h.hc.state, h.hc.fault, h.hc.end_reason) == (states.FAULT, code, states.END_FAULT)
    assert h.logged() == [(code, h.now_ms + 5000, detail)]  # ticks_ms at the trip, millivolts
    assert not h.hc.ready
    h.step()
    assert h.cut and len(h.logged()) == 1  # stays cut, logged once


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"cell_mv": CELL_MIN - 1, "v_mv": 2000}, faults.CELL_UNDERVOLT),
        ({"cell_c": 70.0}, faults.CELL_OVERTEMP),
        ({"amb_c": -5.0}, faults.AMBIENT_COLD),
        ({"amb_c": 55.0}, faults.AMBIENT_HOT),
    ],
)
def test_the_step_cuts_a_slow_fault_within_two_periods(change: dict[str, Any], code: int) -> None:
    h = Heater()
    h.heating()
    h.set(**change)
    for _ in range(DEBOUNCE - 1):
        h.step()
        assert not h.cut
    h.step()
    assert h.cut and h.hc.fault == code
    assert DEBOUNCE * PERIOD_MS <= 20  # the README's "within two control periods"


def test_the_stick_pulled_cuts_in_the_same_period() -> None:
    h = Heater()
    h.heating()
    h.hc.stick.level = 0
    h.step()
    assert h.cut and h.hc.fault == faults.STICK_MISSING


def test_a_fault_is_cleared_only_by_request_and_leaves_the_heater_off() -> None:
    h = Heater()
    h.heating()
    h.set(i_ma=0)
    h.step()
    assert h.hc.state == states.FAULT
    h.set(i_ma=2000)
    for _ in range(5):
        h.step()
    assert h.hc.state == states.FAULT and h.cut
    h.hc.request_start()  # no start from a fault
    h.step()
    assert h.hc.state == states.FAULT and h.cut
    h.hc.request_clear_fault()
    h.step()
    assert (h.hc.state, h.hc.fault) == (states.SLEEP, faults.NONE) and h.cut
    assert h.logged()[0][0] == faults.HEATER_OPEN  # the log keeps it


def test_the_first_measurement_colder_than_the_air_trips_calibration() -> None:
    """A unit whose record overstates R0 by 6 %: at room temperature it reads
    the blade about 17 K colder than the air, past the margin."""
    margin = limit(HS, "_CAL_MARGIN_CC")
    c = cal()
    for amb_c, expect in ((20.0, faults.CALIBRATION), (0.0, faults.CALIBRATION)):
        air_cc = ntc.dc_from_uv(ntc.uv_at_c(amb_c)) * 10
        for target, code in ((air_cc - margin, 0), (air_cc - margin - 1, expect)):
            v_100uv, i_ma = temp_reading(c, target)
            h = Heater(c)
            h.set(v_100uv=v_100uv, i_ma=i_ma, amb_c=amb_c)
            h.start()
            h.step()
            assert h.hc.fault == code, (amb_c, target)
            if code:
                assert h.cut and h.logged() == [(code, h.now_ms + 5000, target // 100)]


def test_a_start_refused_never_switches_the_heater_on() -> None:
    for change, code in (
        ({"cell_mv": CELL_MIN - 1}, faults.CELL_UNDERVOLT),
        ({"amb_c": 55.0}, faults.AMBIENT_HOT),
        ({"cell_c": 70.0}, faults.CELL_OVERTEMP),
    ):
        h = Heater()
        h.set(**change)
        h.start()
        assert h.hc.state == states.SLEEP and h.cut
        assert (h.hc.refused, h.hc.refusals) == (code, 1)
    h = Heater()
    h.hc.stick.level = 0
    h.start()
    assert (h.hc.state, h.hc.refused) == (states.SLEEP, faults.STICK_MISSING) and h.cut
    h.hc.stick.level = 1
    h.start()
    assert (h.hc.state, h.hc.refused, h.hc.refusals) == (states.PREHEAT, faults.NONE, 1)
    assert h.switch_on and h.duty == limit(heater_ctl, "_DUTY_MIN")

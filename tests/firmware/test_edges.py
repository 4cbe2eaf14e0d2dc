"""Every safety limit of the heater, tested at its edge: just inside it does
not trip, just outside it trips -- with the right fault code, within the
time the README states (the same control step; a debounced signal on its
second sample, within two control periods). Each limit is read from the
firmware's source (tests/fw_edges.py), so the edge follows its
constant; docs/safety.md#every-limit-and-its-test lists the limits with
their values and these tests, and tests/test_limits_doc.py holds the table
to the source.

Runs in CPython on stand-in hardware (fw_harness): fast enough to run for
every mutant of the safety modules (mutation/plan.toml).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import fw_harness as fw
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
    telemetry,
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


# --- the session's limits: time, puffs, the end warning, cooling, ready ---------------------

SESSION_MS = heater_ctl.SESSION_MS
WARN_MS = SESSION_MS - heater_ctl.WARN_BEFORE_END_MS
PUFFS = heater_ctl.SESSION_PUFFS
WARN_PUFFS = PUFFS - heater_ctl.WARN_PUFFS_LEFT


def _steady(h: Heater) -> None:
    """Readings at the set-point: no error, so no puff-like change of demand."""
    sp = h.hc.profile.setpoint_cc(h.now_ms)
    v, i = temp_reading(h.hc.cal, sp)
    h.set(v_100uv=v, i_ma=i)
    h.hc._temp_cc = sp


def test_the_session_ends_at_its_time_limit() -> None:
    h = Heater()
    h.heating()
    h.now_ms = SESSION_MS - 2
    _steady(h)
    h.step(SESSION_MS - 1)
    assert h.hc.state == states.END_WARNING and h.switch_on
    h.step(SESSION_MS)
    assert (h.hc.state, h.hc.end_reason) == (states.COOLING, states.END_TIME)
    assert h.cut and h.hc.fault == faults.NONE and not h.logged()


def test_the_end_warning_comes_at_its_time() -> None:
    h = Heater()
    h.heating()
    h.now_ms = WARN_MS - 2
    _steady(h)
    h.step(WARN_MS - 1)
    assert h.hc.state == states.HEATING
    h.step(WARN_MS)
    assert h.hc.state == states.END_WARNING and h.switch_on


def test_the_end_warning_comes_at_the_last_puffs() -> None:
    h = Heater()
    h.heating()
    _steady(h)
    h.hc.puffs.count = WARN_PUFFS - 1
    h.step()
    assert h.hc.state == states.HEATING
    h.hc.puffs.count = WARN_PUFFS
    h.step()
    assert h.hc.state == states.END_WARNING


def test_the_session_ends_when_its_last_puff_ends() -> None:
    h = Heater()
    h.heating()
    _steady(h)
    h.hc.puffs.count = PUFFS - 1
    h.step()
    assert h.hc.state == states.END_WARNING
    h.hc.puffs.count = PUFFS
    h.hc.puffs.active = True  # the last puff still being drawn: heat on
    h.step()
    assert h.hc.state == states.END_WARNING and h.switch_on
    h.hc.puffs.active = False
    h.step()
    assert (h.hc.state, h.hc.end_reason) == (states.COOLING, states.END_PUFFS) and h.cut


def test_cooling_lasts_its_time_then_sleep() -> None:
    h = Heater()
    h.heating()
    h.hc.request_stop()
    h.step()
    end = h.now_ms
    assert (h.hc.state, h.hc.end_reason) == (states.COOLING, states.END_USER) and h.cut
    h.step(end + heater_ctl.COOLING_MS - 1)
    assert h.hc.state == states.COOLING
    h.step(end + heater_ctl.COOLING_MS)
    assert h.hc.state == states.SLEEP and h.cut


def test_a_start_during_cooling_starts_a_new_session() -> None:
    h = Heater()
    h.heating()
    h.hc.request_stop()
    h.step()
    h.hc.request_start()
    h.step()
    assert h.hc.state == states.PREHEAT and h.switch_on and h.hc.end_reason == states.END_NONE


@pytest.mark.parametrize("name", ["standard", "eco", "intense"])
def test_ready_when_the_preheat_is_over_and_the_blade_in_band(name: str) -> None:
    """PREHEAT -> HEATING (ready) once the profile's preheat time has passed
    and the blade reads within band_pct of the set-point, either side."""
    # (ms after the preheat time, cC past the band's edge): ready only at 0 and 0
    for dt_ms, past, ready in ((0, 0, True), (-1, 0, False), (0, 1, False)):
        for sign in (1, -1):
            h = Heater(profile=name)
            p = h.hc.profile
            at = p.preheat_ms + dt_ms
            sp = p.setpoint_cc(at)
            band = p.band_cc(sp)
            assert band == sp * p.band_pct // 100
            target = sp + sign * (band + past)  # at the band's edge, or one past it
            v, i = temp_reading(h.hc.cal, target)
            h.set(v_100uv=v, i_ma=i)
            h.start()
            h.hc._temp_cc = target  # filtered as steady
            h.now_ms = at - PERIOD_MS
            h.step(at)
            assert (h.hc.state == states.HEATING) == ready, (name, dt_ms, past, sign)
            assert h.hc.ready == ready


def test_the_step_rate_is_the_control_period_while_a_session_may_run() -> None:
    h = Heater()
    timer = h.hc.timer
    h.hc.start()
    assert (timer.mode, timer.period) == (timer.PERIODIC, heater_ctl.CONTROL_PERIOD_MS)
    assert timer.callback == h.hc.step
    h.hc.idle()  # asleep, nothing asked: the idle rate
    assert timer.period == heater_ctl.IDLE_PERIOD_MS
    h.tele.enabled = True
    h.step()
    assert _last_frame(h)[3] & telemetry.FLAG_IDLE_RATE
    h.hc.request_start()  # back to the control rate before the request is served
    assert timer.period == heater_ctl.CONTROL_PERIOD_MS
    h.step()
    assert not _last_frame(h)[3] & telemetry.FLAG_IDLE_RATE
    h.hc.request_stop()
    h.step()
    h.hc.idle()  # cooling: still the control rate (it times the cooling)
    assert timer.period == heater_ctl.CONTROL_PERIOD_MS
    h.hc.cut_for_reset()
    assert not timer.running and h.cut
    assert heater_ctl.CONTROL_PERIOD_MS == 10 and heater_ctl.IDLE_PERIOD_MS == 1000


# --- the control law: PI with anti-windup, cell-voltage feed-forward, duty limits ------------

KP = limit(heater_ctl, "_KP_MW_PER_CC")
KI = limit(heater_ctl, "_KI_Q8")
FF = limit(heater_ctl, "_FF_MW_PER_K")
T_REF = limit(heater_ctl, "_T_REF_C")
P_MAX = limit(heater_ctl, "_P_MAX_MW")
DUTY_MIN = limit(heater_ctl, "_DUTY_MIN")
DUTY_MAX = limit(heater_ctl, "_DUTY_MAX")


def law(sp: int, t: int, integ: int, p_full: int) -> tuple[int, int, int, int]:
    """The control law as heater_ctl's docstring states it: demand = feed-
    forward + Kp err + the integral; power capped at the lesser of P_MAX and
    full-on power; the integral grows only towards leaving saturation and
    stays within 0 .. P_MAX; duty = power / full-on power, within its limits.
    Returns (demand, integral, duty, power)."""
    err = sp - t
    demand = (sp // 100 - T_REF) * FF + err * KP + (integ >> 8)
    cap = min(P_MAX, p_full)
    if demand > cap:
        power = cap
        integ += err * KI if err < 0 else 0
    elif demand < 0:
        power = 0
        integ += err * KI if err > 0 else 0
    else:
        power = demand
        integ += err * KI
    integ = min(max(integ, 0), P_MAX << 8)
    duty = min(max((power << 16) // p_full if p_full > 0 else DUTY_MAX, DUTY_MIN), DUTY_MAX)
    return demand, integ, duty, duty * p_full >> 16


@pytest.mark.parametrize(
    ("temp_c", "i_ma", "integ"),
    [
        (320.0, 2000, 0),  # on the set-point, nothing integrated
        (300.0, 2000, 2000 << 8),  # 20 K low: the integral grows
        (319.0, 2000, 1200 << 8),  # in the linear range
        (330.0, 2000, 500 << 8),  # above the set-point: the demand falls
        (100.0, 2000, 0),  # far below: saturated at full power, the integral held
        (100.0, 1000, 9000 << 8),  # a weak cell: capped at full-on power
        (340.0, 2000, 0),  # far above: no power, the integral held at 0
        (340.0, 2000, 10000 << 8),  # the integral at its cap
        (20.0, 4000, 10000 << 8),  # a cold blade, a strong cell: capped at P_MAX
        (301.0, 2000, 10000 << 8),  # saturated above the set-point: the integral unwinds
        (305.0, 2000, 100),  # the integral would go below 0: held at 0
    ],
)
def test_the_control_law_is_pi_with_feed_forward(temp_c: float, i_ma: int, integ: int) -> None:
    h = Heater()
    h.heating()
    h.now_ms = 100_000 - PERIOD_MS
    c = h.hc.cal
    t = int(temp_c * 100)
    v, i = temp_reading(c, t)
    v_100uv = v * i_ma // i  # the same resistance at this current
    t = heater_ctl.temp_cc(v_100uv, i_ma, c.r0_10u, c.r0tcr_uohm_k)
    h.set(v_100uv=v_100uv, i_ma=i_ma, cell_mv=4100)
    h.hc._temp_cc = t  # steady: the filter keeps it
    h.hc._integ_q8 = integ
    h.step(100_000)
    sp = h.hc.profile.setpoint_cc(100_000)
    p_full = v_100uv * i_ma // 10000
    demand, integ_after, duty, power = law(sp, t, integ, p_full)
    got = (h.hc.demand_mw, h.hc._integ_q8, h.duty, h.hc.power_mw)
    assert got == (demand, integ_after, duty, power)
    assert h.hc._sp_cc == sp and h.hc.temp_dc == t // 10
    assert 0 <= power <= min(P_MAX, p_full)


def test_the_integral_unwinds_at_the_smallest_error_above_the_set_point() -> None:
    """Anti-windup at its edge: saturated with the blade 0.01 K above its
    set-point (err = -1), the integral unwinds by Ki; on the set-point (err =
    0) it is held."""
    for err, unwinds in ((-1, KI), (0, 0)):
        h = Heater()
        h.heating()
        h.now_ms = 100_000 - PERIOD_MS
        c = h.hc.cal
        sp = h.hc.profile.setpoint_cc(100_000)
        found = (
            (v, i)
            for i in range(1900, 2100)
            for v in range(20000, 62000)
            if heater_ctl.temp_cc(v, i, c.r0_10u, c.r0tcr_uohm_k) == sp - err
        )
        v_100uv, i_ma = next(found, (0, 0))
        assert i_ma, f"no reading reads as {sp - err} cC"
        h.set(v_100uv=v_100uv, i_ma=i_ma, cell_mv=4100)
        h.hc._temp_cc = sp - err
        integ = 10000 << 8  # the integral at its cap: the demand above full power
        h.hc._integ_q8 = integ
        h.step(100_000)
        assert h.hc.demand_mw > min(P_MAX, v_100uv * i_ma // 10000)  # saturated
        assert h.hc._integ_q8 == integ - unwinds, (err, h.hc._integ_q8 - integ)


def test_the_first_step_of_a_session_only_feeds_the_sample_and_hold() -> None:
    h = Heater()
    h.start()
    assert (h.hc.state, h.duty, h.switch_on) == (states.PREHEAT, DUTY_MIN, True)
    assert h.hc._temp_cc == 0 and h.hc.power_mw == 0
    h.step()  # the first on-phase sample: now it measures
    assert h.hc._temp_cc != 0 and h.duty >= DUTY_MIN


def test_the_fuel_gauge_gets_the_mean_heater_current() -> None:
    """drawn_ma_steps: the last period's current times its duty, summed per step."""
    h = Heater()
    h.heating()
    heater_ctl.drawn_ma_steps[0] = 0
    duty = h.duty
    h.step()
    assert heater_ctl.drawn_ma_steps[0] == 2000 * duty >> 16
    h.hc.request_stop()
    h.step()
    before = heater_ctl.drawn_ma_steps[0]
    h.step()
    assert heater_ctl.drawn_ma_steps[0] == before  # cut: nothing drawn


def _last_frame(h: Heater) -> tuple[int, ...]:
    """The telemetry record the last step packed."""
    slots = telemetry._SLOTS
    size = telemetry.PAYLOAD_LEN + 5
    off = (h.tele._w - 1) % slots * size
    return tuple(struct.unpack_from(telemetry.FMT, h.tele._buf, off + 3))


def test_telemetry_tells_the_step_as_it_was() -> None:
    h = Heater()
    h.tele.enabled = True
    h.heating()
    h.step()
    seq_before = h.tele.seq
    h.step()
    assert h.tele.seq == seq_before + 1
    (_seq, t_us, state, flags, puffs, fault, end, sp_dc, temp_dc, duty, power, cell, ma, mv) = (
        _last_frame(h)
    )
    assert state == states.HEATING and fault == 0 and end == 0 and puffs == 0
    f = telemetry
    assert flags == f.FLAG_HEATER_EN | f.FLAG_STICK | f.FLAG_READY  # on, stick in, ready, fast
    assert (sp_dc, temp_dc, duty, power) == (h.hc._sp_cc // 10, h.hc.temp_dc, h.duty, h.hc.power_mw)
    assert (cell, ma, mv) == (3900, 2000, 3200)
    assert t_us == (5_000_000 + h.now_ms * 1000) & ((1 << 30) - 1)
    h.hc.puffs.active = True
    h.hc.puffs.count = 3
    h.hc.stick.level = 0
    h.step()
    flags, puffs = _last_frame(h)[3], _last_frame(h)[4]
    assert flags & f.FLAG_PUFF and not flags & f.FLAG_STICK and puffs == 3
    assert _last_frame(h)[5] == faults.STICK_MISSING  # and the heater readings no more
    assert _last_frame(h)[12:] == (0, 0)


def test_the_reading_is_filtered_by_the_mean_of_the_last_two() -> None:
    h = Heater()
    h.heating()
    c = h.hc.cal
    v, i = temp_reading(c, 30000)
    h.set(v_100uv=v, i_ma=i)
    h.hc._temp_cc = 29000
    h.step()
    assert h.hc._temp_cc == (29000 + 30000) >> 1
    h.step()
    assert h.hc._temp_cc == (29500 + 30000) >> 1


# --- puff detection: thresholds, confirmation, end, the longest puff -------------------------

PD = fw.firmware("puff_detect")
ON = limit(PD, "_ON_MW", "_ON")  # excess that starts a puff
OFF = limit(PD, "_OFF_MW", "_OFF")
ON_STEPS = limit(PD, "_ON_STEPS")
OFF_STEPS = limit(PD, "_OFF_STEPS")
MAX_STEPS = limit(PD, "_MAX_PUFF_STEPS")
FAST = limit(PD, "_FAST_SHIFT")


def detector(level: int = 3000) -> Any:
    """A detector counting from a steady input `level`."""
    d = PD.PuffDetector()
    if hasattr(d, "start"):  # a detector that starts counting on its own call
        d.reset()
        d.start(level)
    else:
        d.reset(level)
    return d


def _filt(d: Any) -> int:
    return int(d._filt_q8 if hasattr(d, "_filt_q8") else d._filt)


def feed(d: Any, excess: int) -> bool:
    """One update whose input makes the detector's excess exactly `excess`
    (the filtered input less the reference, as update() computes it)."""
    f, ref = _filt(d), int(d._ref_q8)
    target = ref + (excess << 8) + 128  # any filtered value in [ref + e<<8, ref + e<<8 + 255]
    x = (f + ((target - f) << FAST)) >> 8  # invert f' = f + ((x << 8) - f) >> FAST
    got = d.update(x)
    assert (_filt(d) - ref) >> 8 == excess, "the input did not give the excess asked for"
    return bool(got)


def test_an_excess_at_the_threshold_is_no_puff() -> None:
    d = detector()
    assert not any(feed(d, ON) for _ in range(5 * ON_STEPS))
    assert d.count == 0 and not d.active


def test_a_puff_is_confirmed_after_its_confirmation_time() -> None:
    d = detector()
    got = [feed(d, ON + 1) for _ in range(ON_STEPS)]
    assert got == [False] * (ON_STEPS - 1) + [True]  # confirmed on the ON_STEPS-th period
    assert d.count == 1 and d.active
    assert ON_STEPS * PERIOD_MS == 150  # 150 ms (docs/safety.md)


def test_a_dip_to_the_threshold_restarts_the_confirmation() -> None:
    d = detector()
    got = [feed(d, ON + 1) for _ in range(ON_STEPS - 1)]
    got.append(feed(d, ON))
    got += [feed(d, ON + 1) for _ in range(ON_STEPS - 1)]
    assert not any(got) and d.count == 0
    assert feed(d, ON + 1) and d.count == 1


def _puffing(peak: int = 2 * ON) -> Any:
    d = detector()
    for _ in range(ON_STEPS):
        feed(d, peak)
    assert d.active
    return d


def test_a_puff_ends_after_its_end_time_below_half_its_peak() -> None:
    """(Below OFF as well: a confirmed puff's peak is above ON > 2 OFF, so
    half its peak is the threshold that decides.)"""
    peak = 4 * ON
    d = _puffing(peak)
    for _ in range(10 * OFF_STEPS):
        feed(d, peak >> 1)  # half the peak: still drawing
    assert d.active
    for _ in range(OFF_STEPS - 1):
        feed(d, (peak >> 1) - 1)
    assert d.active
    feed(d, (peak >> 1) - 1)
    assert not d.active and d.count == 1
    assert OFF_STEPS * PERIOD_MS == 200
    assert ON > 2 * OFF


def test_the_end_follows_the_puffs_peak_as_it_rises() -> None:
    d = _puffing(2 * ON)  # confirmed at 2 ON
    for _ in range(5):
        feed(d, 8 * ON)  # drawn harder: the peak rises to 8 ON
    for _ in range(OFF_STEPS):
        feed(d, 3 * ON)  # under half the new peak, over half the first one
    assert not d.active


def test_a_puff_rising_after_a_dip_keeps_going() -> None:
    d = _puffing(4 * ON)
    for _ in range(OFF_STEPS - 1):
        feed(d, OFF - 1)
    feed(d, 4 * ON)  # drawing again: the end count starts over
    for _ in range(OFF_STEPS - 1):
        feed(d, OFF - 1)
    assert d.active


def test_the_longest_puff_ends_at_its_limit() -> None:
    d = _puffing(4 * ON)
    for _ in range(MAX_STEPS - 1):
        feed(d, 4 * ON)
    assert d.active
    feed(d, 4 * ON)
    assert not d.active and d.count == 1
    assert MAX_STEPS * PERIOD_MS == 8000  # 8 s


def test_after_a_puff_the_next_waits_for_the_excess_to_settle() -> None:
    d = _puffing(4 * ON)
    for _ in range(OFF_STEPS):
        feed(d, OFF - 1)
    assert not d.active
    # still above the end threshold: not armed, however long
    assert not any(feed(d, 4 * ON) for _ in range(3 * ON_STEPS))
    assert d.count == 1
    feed(d, OFF)  # at the threshold: not yet
    assert not any(feed(d, 4 * ON) for _ in range(3 * ON_STEPS))
    feed(d, OFF - 1)  # settled: armed again
    got = [feed(d, ON + 1) for _ in range(ON_STEPS)]
    assert got[-1] and d.count == 2


def test_the_reference_is_frozen_during_a_puff_and_lags_outside() -> None:
    d = _puffing(4 * ON)
    ref = d._ref_q8
    for _ in range(50):
        feed(d, 4 * ON)
    assert d._ref_q8 == ref
    ref_shift = limit(PD, "_REF_SHIFT")
    d = detector(3000)
    f_before, ref_before = _filt(d), d._ref_q8
    d.update(4000)
    f = f_before + (((4000 << 8) - f_before) >> FAST)
    assert _filt(d) == f
    assert d._ref_q8 == ref_before + ((f - ref_before) >> ref_shift)
    assert (FAST, ref_shift) == (3, 7)  # ~80 ms and ~1.3 s at 100 Hz

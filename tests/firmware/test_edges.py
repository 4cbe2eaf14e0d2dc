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

import ast
import math
import struct
import types
from typing import Any

import fw_harness as fw
import pytest
from fw_edges import (
    PERIOD_MS,
    Heater,
    board,
    cal,
    cal_check,
    calib,
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

from hil.paths import FIRMWARE_DIR

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


@pytest.mark.parametrize(("r0", "tcr"), [(720_000, 3000), (800_000, 3500), (880_000, 3800)])
def test_over_temperature_threshold_follows_the_calibration(r0: int, tcr: int) -> None:
    """r_cap = R0 (1 + TCR (TEMP_CAP_C - T0)) at either end of the unit spec."""
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


# --- the calibration's plausibility (cal_check.py): the first measurement, a cold start's rise --

CC = cal_check
COLD_MARGIN = limit(CC, "_COLD_MARGIN_CC")
WARM = limit(CC, "_WARM_CC")
CHECK = limit(CC, "_CHECK_CC")
K_UJ = limit(CC, "_K_UJ_PER_CC")
TOL_PM = limit(CC, "_TOL_PM")
TRIP_PM = limit(CC, "_TRIP_PM")
E_TRIP = limit(CC, "_E_TRIP_UJ")
COOL_US = limit(heater_ctl, "_COOL_US")


def _first(
    temp_cc: int,
    amb_cc: int = 2000,
    fail_safe: bool = False,
    measured: int = 0,
    cooled: bool = False,
) -> Any:
    c = CC.CalCheck()
    c.measured_pm = measured
    c.begin(cooled)
    c.tripped = c.first(temp_cc, amb_cc, fail_safe)
    return c


def test_a_blade_colder_than_the_air_by_the_margin_trips_calibration() -> None:
    for amb in (0, 2000, 5000):
        assert _first(amb - COLD_MARGIN, amb).tripped == 0
        assert _first(amb - COLD_MARGIN - 1, amb).tripped == faults.CALIBRATION
        # the fail-safe values read hot by design: not judged
        assert _first(amb - COLD_MARGIN - 1, amb, fail_safe=True).tripped == 0
    assert COLD_MARGIN == 600  # 6 K (docs/safety.md)


def test_a_start_up_to_its_margin_above_the_air_is_a_cold_start() -> None:
    """Up to WARM above the air the rise is measured; above it, a warm start
    keeps the slope this boot measured, or with none it is refused -- unless
    the heater has been off its cool time, when it is a cold start too."""
    c = _first(2000 + WARM)
    assert (c.tripped, c.phase, c.slope_pm) == (0, CC.RISE, 1000)
    c = _first(2000 + WARM + 1)
    assert (c.tripped, c.phase, c.slope_pm) == (faults.BLADE_WARM, CC.IDLE, 1000)
    assert c.k_uj_per_cc == board.BLADE_HEAT_UJ_PER_CC
    c = _first(2000 + WARM + 1, cooled=True)
    assert (c.tripped, c.phase, c._t1_cc) == (0, CC.RISE, 2000 + WARM + 1)
    c = _first(2000 + WARM + 1, measured=1100)  # checked earlier this boot: its slope kept
    assert (c.tripped, c.phase, c.slope_pm) == (0, CC.IDLE, 1000)


def test_a_check_not_measuring_a_rise_ignores_one() -> None:
    """rise() outside a cold start's rise (a warm start, or the rise judged
    already) changes nothing and says nothing."""
    c = _first(2000 + WARM + 1, measured=1000)  # a warm start: no rise measured
    assert c.rise(2000 + 10 * CHECK, 10_000, 10_000) == 0
    assert (c.phase, c.measured_pm, c.slope_pm, c._e_uj) == (CC.IDLE, 1000, 1000, 0)


def _energy_for(s_pm: int) -> int:
    """The least energy (uJ) over a rise of CHECK that rise() reads as s_pm."""
    d = CHECK * K_UJ >> 4
    return int(-(-s_pm * d // 1000) * 16)


def _rise(energy_uj: int, fail_safe: bool = False, by: int = CHECK) -> tuple[list[int], Any]:
    """A cold start from 20 C whose reading rises `by` while the heater delivers
    `energy_uj`: most of it in the first period (at most E_TRIP), the rest
    in the last (power x 1 ms: the energy in uJ). The codes rise() returned."""
    c = _first(2000, fail_safe=fail_safe)
    first = min(energy_uj, E_TRIP)
    codes = [int(c.rise(2001, first, 1000))]  # `first` mW for 1 ms: `first` uJ
    codes.append(int(c.rise(2000 + by, energy_uj - first, 1000)))
    return codes, c


def test_the_rise_is_judged_once_it_reaches_its_span() -> None:
    e = _energy_for(1000)
    codes, c = _rise(e, by=CHECK - 1)
    assert codes == [0, 0] and c.phase == CC.RISE  # not yet
    codes, c = _rise(e)
    assert codes == [0, 2] and c.phase == CC.IDLE and c.measured_pm == 1000
    assert CHECK == 2500  # 25 K


def test_a_record_of_its_own_heater_reads_its_heat_capacity() -> None:
    """K_UJ: the energy per 0.01 K of a record that describes its heater:
    exactly that energy reads s = 1, and the blade's heat capacity stays."""
    codes, c = _rise(CHECK * K_UJ)
    assert codes[-1] == 2 and (c.measured_pm, c.slope_pm) == (1000, 1000)
    assert c.k_uj_per_cc == board.BLADE_HEAT_UJ_PER_CC


def test_a_slope_off_by_more_than_its_limit_trips_calibration() -> None:
    codes, c = _rise(_energy_for(TRIP_PM))
    assert codes[-1] == 2 and c.measured_pm == TRIP_PM
    assert c.slope_pm == TRIP_PM * (1000 - TOL_PM) // 1000  # read down
    codes, c = _rise(_energy_for(TRIP_PM + 1))
    assert codes[-1] == 1 and c.measured_pm == TRIP_PM + 1
    codes, c = _rise(_energy_for(TRIP_PM + 1), fail_safe=True)  # the fail-safe values: never
    assert codes[-1] == 2 and c.slope_pm == 1000
    assert TRIP_PM == 1200


def test_too_much_energy_before_the_span_trips_at_once() -> None:
    """E_TRIP: the energy of a rise at the trip slope. Delivered before the
    reading has risen its span, the record is already off by more than that."""
    assert E_TRIP == TRIP_PM * K_UJ * CHECK // 1000
    c = _first(2000)
    assert c.rise(2001, E_TRIP // 10, 10_000) == 0
    assert c.rise(2002, 0, 10_000) == 0  # at the limit, nothing more
    assert c.rise(2003, 1, 1000) == 1  # 1 uJ past it
    assert c.phase == CC.IDLE


def test_a_slope_within_its_tolerance_is_not_corrected() -> None:
    """s' = s less TOL_PM, never below 1: the correction begins where s
    (1 - tol) exceeds 1."""
    edge = next(s for s in range(1000, 1100) if s * (1000 - TOL_PM) // 1000 > 1000)
    codes, c = _rise(_energy_for(edge - 1))
    assert codes[-1] == 2 and c.measured_pm == edge - 1 and c.slope_pm == 1000
    codes, c = _rise(_energy_for(edge))
    assert codes[-1] == 2 and c.measured_pm == edge and c.slope_pm == 1001
    assert c.k_uj_per_cc == board.BLADE_HEAT_UJ_PER_CC * edge // 1001
    assert TOL_PM == 20  # 2 % (docs/safety.md)


def test_the_over_temperature_trip_is_derated_with_the_correction() -> None:
    """derate(s'): the trip where the corrected reading reaches the cap."""
    c = cal()
    for slope in (1000, 1100, TRIP_PM * (1000 - TOL_PM) // 1000):  # up to the largest correction
        s = HS.HeaterSafety(c)
        s.derate(slope)
        i = 2000
        v_edge = s.r_cap_100u * i // 10000
        assert check(s, i_ma=i, v_mv=v_edge, cell_mv=v_edge + 200) == 0
        assert check(s, i_ma=i, v_mv=v_edge + 1, cell_mv=v_edge + 200) == faults.OVER_TEMP
        raw = heater_ctl.temp_cc(v_edge * 10, i, c.r0_10u, c.r0tcr_uohm_k)
        cc = CC.CalCheck()
        cc.slope_pm = slope
        assert abs(cc.correct(raw) - 100 * HS.TEMP_CAP_C) <= 30, slope


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


def test_a_heater_current_at_the_senses_rest_reads_as_none() -> None:
    """In the step the current sense reads through adccal: at or below its
    rest (the ADC's floor and margin, 334 mA) it is no current -- the open
    heater's trip in the step is there, above the 150 mA of the check."""
    adccal = fw.firmware("adccal")
    rest_ma = (adccal.IDF_FLOOR_UV + adccal.MARGIN_UV) // board.UV_PER_MA
    assert rest_ma > I_OPEN
    for i_ma, code in ((rest_ma + 1, faults.NONE), (rest_ma, faults.HEATER_OPEN)):
        h = Heater()
        h.heating()
        h.set(i_ma=i_ma, v_mv=i_ma * 16 // 10)  # 1.6 ohm: no other fault
        h.step()
        assert h.hc.fault == code, i_ma
        assert h.cut == bool(code)


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
    """In the step: the session's first measurement against the ambient
    thermistor, as the record reads both; at the margin the rise is measured,
    one past it the heater is cut and CALIBRATION logged with the reading."""
    c = cal()
    for amb_c in (0.0, 20.0, 50.0):
        air_cc = ntc.dc_from_uv(ntc.uv_at_c(amb_c)) * 10
        for target, code in (
            (air_cc - COLD_MARGIN, 0),
            (air_cc - COLD_MARGIN - 1, faults.CALIBRATION),
        ):
            v_100uv, i_ma = temp_reading(c, target)
            h = Heater(c)
            h.set(v_100uv=v_100uv, i_ma=i_ma, amb_c=amb_c)
            h.start()
            h.step()
            assert h.hc.fault == code, (amb_c, target)
            if code:
                assert h.cut and h.hc.state == states.FAULT
                assert h.logged() == [(code, h.now_ms + 5000, target // 100)]
            else:
                assert h.switch_on and h.hc.cal_check.phase == cal_check.RISE
    # the fail-safe values (no usable record) are not judged by it
    fs = calib.fail_safe(calib.MISSING)
    air_cc = ntc.dc_from_uv(ntc.uv_at_c(20.0)) * 10
    v, i = temp_reading(fs, air_cc - COLD_MARGIN - 1)
    h = Heater(fs)
    h.set(v_100uv=v, i_ma=i)
    h.start()
    h.step()
    assert h.hc.fault == faults.NONE and h.switch_on


def test_a_warm_start_unchecked_this_boot_is_refused_until_the_blade_has_cooled() -> None:
    """In the step: a first reading more than WARM above the air, with no
    slope measured this boot and the heater off for less than its cool time,
    is refused (BLADE_WARM): the heater cut, nothing logged, no fault. One
    checked this boot keeps its slope; one after the cool time is a cold
    start, the air taken as the record reads the blade."""
    c = cal()
    air_cc = ntc.dc_from_uv(ntc.uv_at_c(20.0)) * 10
    for target, checked, cooled, phase in (
        (air_cc + WARM + 1, False, False, None),
        (air_cc + WARM + 1, True, False, CC.IDLE),
        (air_cc + WARM + 1, False, True, CC.RISE),
        (air_cc + WARM, False, False, CC.RISE),  # a cold start: measured, not assumed
    ):
        v, i = temp_reading(c, target)
        h = Heater(c, checked=checked)
        h.hc._cooled = cooled
        h.set(v_100uv=v, i_ma=i)
        h.start()
        h.step()
        if phase is None:
            assert h.cut and h.hc.state == states.SLEEP and h.hc.fault == faults.NONE
            assert (h.hc.refused, h.hc.refusals, h.logged()) == (faults.BLADE_WARM, 1, [])
            continue
        assert h.switch_on and h.hc.state == states.PREHEAT, (target, checked, cooled)
        assert (h.hc.cal_check.phase, h.hc.cal_check.slope_pm) == (phase, 1000)
        offset = target - air_cc if phase == CC.RISE else 0
        assert h.hc._air_off_cc == offset


def test_the_blade_counts_as_cooled_once_the_heater_has_been_off_its_cool_time() -> None:
    """Off since boot (or its last cut) COOL_US less 1 us: not yet; at
    COOL_US: cooled, and it stays so until the heater is next cut."""
    assert COOL_US == 120_000_000  # 2 minutes (docs/safety.md)
    for off_us, cooled in ((COOL_US - 1, False), (COOL_US, True)):
        h = Heater()
        assert not h.hc._cooled
        fw.clock().us = h.hc._off_us + off_us
        h.hc.step(None)
        assert h.hc._cooled == cooled, off_us
    fw.clock().us += COOL_US  # latched, whatever the wrapping ticks say later
    h.hc.step(None)
    assert h.hc._cooled
    h.hc._cut()
    assert not h.hc._cooled and h.hc._off_us == fw.clock().us & (1 << 30) - 1


def test_a_blade_that_heats_with_the_least_duty_trips_gate_stuck() -> None:
    """A session's first reading holds the least duty one more period; the
    second reading more than HELD_RISE above the first: the PWM does not hold
    the heater (a MOSFET shorted on), GATE_STUCK, cut through both paths and
    logged with the reading. Up to HELD_RISE the control law runs."""
    held = limit(heater_ctl, "_HELD_RISE_CC")
    assert held == 300  # 3 K (docs/safety.md)
    c = cal()
    air_cc = ntc.dc_from_uv(ntc.uv_at_c(20.0)) * 10
    for rose, code in ((held, faults.NONE), (held + 1, faults.GATE_STUCK)):
        h = Heater(c)
        v, i = temp_reading(c, air_cc)
        h.set(v_100uv=v, i_ma=i)
        h.start()
        h.step()  # the first reading: held
        assert h.duty == DUTY_MIN and h.switch_on and h.hc.fault == faults.NONE
        _read_next(h, air_cc + rose, code)
        if not code:
            assert h.duty > DUTY_MIN and h.switch_on  # the preheat's power


def _read_next(h: Heater, to_cc: int, code: int) -> None:
    """One step reading to_cc: GATE_STUCK (cut, logged with the reading) or nothing."""
    v, i = temp_reading(h.hc.cal, to_cc)
    h.set(v_100uv=v, i_ma=i)
    h.step()
    assert h.hc.fault == code, to_cc
    if code:
        assert h.cut and h.logged() == [(code, h.now_ms + 5000, to_cc // 100)]


def test_a_blade_warming_at_the_least_duty_mid_session_trips_gate_stuck() -> None:
    """Mid-session: the blade over its set-point drives the duty to its
    least, and the reading there is kept; the blade HELD_RISE over it while
    the duty stays at its least: nothing, 0.01 K more: GATE_STUCK. The duty
    back above its least forgets it."""
    held = limit(heater_ctl, "_HELD_RISE_CC")
    c = cal()
    for rose, code in ((held, faults.NONE), (held + 1, faults.GATE_STUCK)):
        h = Heater(c)
        h.heating()
        sp = h.hc.profile.setpoint_cc(h.now_ms + PERIOD_MS)
        hot = sp + 2000  # 20 K over the set-point: the law asks for nothing
        v, i = temp_reading(c, hot)
        h.set(v_100uv=v, i_ma=i)
        h.hc._integ_q8, h.hc._temp_cc = 0, hot  # filtered as steady
        h.step()
        assert h.duty == DUTY_MIN and h.hc._held_cc == hot
        _read_next(h, hot + rose, code)
    h = Heater(c)
    h.heating()  # at its reading's set-point: a duty above the least
    assert h.duty > DUTY_MIN and h.hc._held_cc == limit(heater_ctl, "_NOT_HELD")


def _cold_start(c: Any = None) -> Heater:
    """A session started with the blade at the air (20 C): its rise is measured."""
    h = Heater(c)
    air_cc = ntc.dc_from_uv(ntc.uv_at_c(20.0)) * 10
    v, i = temp_reading(h.hc.cal, air_cc)
    h.set(v_100uv=v, i_ma=i)
    h.start()
    h.step()
    assert h.hc.cal_check.phase == cal_check.RISE and h.hc.cal_check._t1_cc == air_cc
    return h


def _rise_step(h: Heater, to_cc: int, p_mw: int, dt_ms: int) -> None:
    """One step dt_ms after the last, the reading at to_cc, p_mw delivered over the period."""
    v, i = temp_reading(h.hc.cal, to_cc)
    h.set(v_100uv=v, i_ma=i)
    h.hc.power_mw = p_mw  # what the last period's law delivered
    h.step(h.now_ms + dt_ms)


def test_a_cold_starts_first_reading_is_the_air_as_the_record_reads_it() -> None:
    """A cold start: the air is taken as the record reads the blade then
    (an offset on the thermistor's reading, kept for the session); a warm
    start keeps the thermistor's."""
    c = cal()
    air_cc = ntc.dc_from_uv(ntc.uv_at_c(20.0)) * 10
    for first, offset in ((air_cc + 300, 300), (air_cc - 300, -300), (air_cc + WARM + 1, 0)):
        v, i = temp_reading(c, first)
        h = Heater(c)
        h.set(v_100uv=v, i_ma=i)
        h.start()
        h.step()
        assert (h.hc._air_off_cc, h.hc._amb_cc) == (offset, air_cc + offset), first


def test_the_step_measures_a_cold_starts_rise_and_derates_the_trip() -> None:
    """In the step: the energy of each period (a late step's counted for 50 ms
    at most) over the rise; at its span the slope is set, the reading
    corrected and the trip derated."""
    h = _cold_start()
    cc = h.hc.cal_check
    t1 = cc._t1_cc
    _rise_step(h, t1 + 100, 5000, 200)  # a step 200 ms late: 50 ms of 5 W
    assert cc._e_uj == 5000 * 50_000 // 1000 and cc.phase == cal_check.RISE
    _rise_step(h, t1 + 200, 10_000, 10)
    assert cc._e_uj == 250_000 + 100_000
    prev = h.hc._temp_cc
    rest_ms = (E_TRIP - 350_000) // 10_000  # 10 W for the rest of a rise at the trip: s = 1.2
    _rise_step(h, t1 + CHECK, 10_000, rest_ms)
    assert cc.phase == cal_check.IDLE and cc.measured_pm == TRIP_PM and h.hc.fault == faults.NONE
    slope = TRIP_PM * (1000 - TOL_PM) // 1000
    assert cc.slope_pm == slope
    ref = HS.HeaterSafety(h.hc.cal)
    ref.derate(slope)
    assert h.hc.safety.r_cap_100u == ref.r_cap_100u < HS.HeaterSafety(h.hc.cal).r_cap_100u
    assert h.hc._temp_cc == (prev + cc.correct(t1 + CHECK)) >> 1  # read with the slope


def test_a_cold_start_whose_rise_takes_too_much_energy_trips_in_the_step() -> None:
    h = _cold_start()
    t1 = h.hc.cal_check._t1_cc
    _rise_step(h, t1 + 100, 10_000, 50)  # 500 mJ
    _rise_step(h, t1 + CHECK, 10_000, 14)  # 140 mJ more: 640 mJ, s > 1.2
    assert h.cut and h.hc.fault == faults.CALIBRATION
    assert h.logged() == [(faults.CALIBRATION, h.now_ms + 5000, (t1 + CHECK) // 100)]


def test_a_corrected_reading_is_what_the_step_controls_on() -> None:
    """With a slope set (a record reading low), every reading is corrected
    before the filter: the blade read s' times further from 20 C."""
    h = Heater()
    h.heating()
    cc = h.hc.cal_check
    cc.slope_pm = 1176
    h.hc.safety.derate(1176)
    v, i = temp_reading(h.hc.cal, 25000)
    h.set(v_100uv=v, i_ma=i)
    h.hc._temp_cc = cc.correct(25000)
    h.step()
    assert h.hc._temp_cc == cc.correct(25000) == 2000 + 23000 * 1176 // 1000


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
            h.step(at - PERIOD_MS)  # the first reading: the least duty held a period
            h.hc._temp_cc = target  # filtered as steady
            h.step(at)
            assert (h.hc.state == states.HEATING) == ready, (name, dt_ms, past, sign)
            assert h.hc.ready == ready


def test_a_preheat_that_never_reaches_its_band_stops_at_its_grace_time() -> None:
    """PREHEAT_GRACE past the profile's preheat time, still not in band: the
    heater is cut, PREHEAT_TIMEOUT logged with the blade's reading (C)."""
    grace = limit(heater_ctl, "_PREHEAT_GRACE_MS")
    for dt_ms, code in ((-1, faults.NONE), (0, faults.PREHEAT_TIMEOUT)):
        h = Heater()
        at = h.hc.profile.preheat_ms + grace + dt_ms
        v, i = temp_reading(h.hc.cal, 20000)  # 200 C: far under the band
        h.set(v_100uv=v, i_ma=i)
        h.start()
        h.step()
        h.now_ms = at - PERIOD_MS
        h.step(at)
        assert h.hc.fault == code, dt_ms
        if code:
            assert h.cut and h.hc.state == states.FAULT and h.hc.end_reason == states.END_FAULT
            assert h.logged() == [(code, at + 5000, 200)]
        else:
            assert h.switch_on and h.hc.state == states.PREHEAT
    assert grace == 15000  # 15 s past the preheat (docs/safety.md)


def test_puffs_are_looked_for_once_the_blade_is_its_rise_above_the_air() -> None:
    """The puff detector is fed only once the blade reads PUFF_RISE above the air."""
    rise = limit(heater_ctl, "_PUFF_RISE_CC")
    for past, fed in ((-1, False), (0, True)):
        h = Heater()
        h.heating()
        target = h.hc._amb_cc + rise + past
        v, i = temp_reading(h.hc.cal, target)
        h.set(v_100uv=v, i_ma=i)
        h.hc._temp_cc = target  # steady: the filter keeps it
        k = h.hc.puffs._k
        h.step()
        assert h.hc._temp_cc == target
        assert (h.hc.puffs._k == k + 1) == fed, past
    assert rise == 8000  # 80 K


def test_the_air_is_read_again_when_its_thermistor_moves() -> None:
    """The air's temperature is looked up again (a table walk) only once the
    ambient thermistor has moved more than AMB_MOVE from where it was read."""
    move = limit(heater_ctl, "_AMB_MOVE_UV")

    def moved(uv: int) -> bool:  # the table tells a move either way
        return bool(ntc.dc_from_uv(uv - move) != ntc.dc_from_uv(uv) != ntc.dc_from_uv(uv + move))

    amb_c = next(c / 100 for c in range(2000, 2100) if moved(ntc.uv_at_c(c / 100)))
    for d in (move, -move, move + 1, -move - 1):
        h = Heater()
        h.set(amb_c=amb_c)
        h.heating()
        seen, amb_cc = h.hc._amb_seen_uv, h.hc._amb_cc
        h.set(amb_ntc_uv=seen + d)
        assert ntc.dc_from_uv(seen + d) * 10 != amb_cc  # a move the table tells
        h.step()
        if abs(d) > move:
            assert h.hc._amb_seen_uv == seen + d
            assert h.hc._amb_cc == ntc.dc_from_uv(seen + d) * 10 + h.hc._air_off_cc
        else:
            assert (h.hc._amb_seen_uv, h.hc._amb_cc) == (seen, amb_cc)


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
# The detector's input is the blade's loss conductance in 0.1 mW/K (puff_detect.py); the
# thresholds are in the same unit.

PD = fw.firmware("puff_detect")
ON = limit(PD, "_ON")  # excess that starts a puff
OFF = limit(PD, "_OFF")
ON_STEPS = limit(PD, "_ON_STEPS")
OFF_STEPS = limit(PD, "_OFF_STEPS")
MAX_STEPS = limit(PD, "_MAX_PUFF_STEPS")
FAST = limit(PD, "_FAST_SHIFT")
REF_SHIFT = limit(PD, "_REF_SHIFT")
REF_DOWN_SHIFT = limit(PD, "_REF_DOWN_SHIFT")
FALL = limit(PD, "_FALL")
FALL_STEPS = limit(PD, "_FALL_STEPS")
SETTLE = limit(PD, "_SETTLE_STEPS")
SPAN = limit(PD, "_SPAN")


def _filt(d: Any) -> int:
    return int(d._filt)


def x_for(d: Any, filtered: int) -> int:
    """The input that makes the detector's filter exactly `filtered` (x 256)
    on the next update: inverts f' = f + (((x << 8) - f) >> FAST)."""
    f = _filt(d)
    return int((f + ((filtered - f) << FAST)) >> 8)


def started(level: int = 3000) -> Any:
    """A detector whose counting has just started at a steady conductance."""
    d = PD.PuffDetector()
    d.start(level)
    return d


def detector(level: int = 3000) -> Any:
    """A detector counting from a steady input `level`, past its settling and
    the window in which it looks for a puff under way at the start."""
    d = started(level)
    for _ in range(SETTLE + FALL_STEPS):
        assert not d.update(level)
    assert (d._settle, d._fall_n, d.count) == (0, 0, 0)
    return d


def feed(d: Any, excess: int) -> bool:
    """One update whose input makes the detector's excess exactly `excess`
    (the filtered input less the reference, as update() computes it)."""
    ref = int(d._ref_q8)
    got = d.update(x_for(d, ref + (excess << 8) + 128))
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
    d = detector(3000)
    f_before, ref_before = _filt(d), d._ref_q8
    d.update(4000)
    f = f_before + (((4000 << 8) - f_before) >> FAST)
    assert _filt(d) == f
    assert d._ref_q8 == ref_before + ((f - ref_before) >> REF_SHIFT)
    ref_before = d._ref_q8
    d.update(2000)  # below the reference: it falls the faster way
    f = _filt(d)
    assert f < ref_before and d._ref_q8 == ref_before + ((f - ref_before) >> REF_DOWN_SHIFT)
    assert (FAST, REF_SHIFT, REF_DOWN_SHIFT) == (3, 7, 4)  # ~80 ms, ~1.3 s, ~0.16 s at 100 Hz


def test_a_reference_left_high_by_a_puff_falls_back_and_the_next_weak_puff_counts() -> None:
    """A deep puff drawn from the first moments of heating: the reference
    follows it up while counting settles, is frozen through the rest of it,
    and is left far above the level when it ends. Within a second it is back
    at the level, and a weak puff just over ON counts -- with the reference
    falling as slowly as it rises it would still sit above the level and
    hide it (a counter-example of the safety campaign)."""
    d = started(3000)
    for _ in range(SETTLE):
        d.update(3000 + 20 * ON)
    for _ in range(ON_STEPS + 50):
        d.update(3000 + 40 * ON)
    assert d.count == 1 and d.active and (d._ref_q8 >> 8) > 3000 + 10 * ON
    for _ in range(100):  # the puff ends; 1 s back at the level
        d.update(3000)
    assert not d.active and (d._ref_q8 >> 8) - 3000 < OFF
    got = [feed(d, ON + 1) for _ in range(ON_STEPS)]
    assert got[-1] and d.count == 2


def test_the_air_read_again_scales_the_conductances_by_the_blades_rise() -> None:
    """rescale(pm): the filter, the reference, the first seconds' top and a
    puff's peak times pm / 1000 (the old rise over the new), exactly where
    the filter's low bits allow."""
    d = started(3000)
    d._ref_q8, d._top, d._peak = 2800 << 8, 3300, 400
    d.rescale(900)
    assert (_filt(d) >> 8, d._ref_q8 >> 8, d._top, d._peak) == (2700, 2520, 2970, 360)
    d.rescale(1000)
    assert (_filt(d) >> 8, d._ref_q8 >> 8, d._top, d._peak) == (2700, 2520, 2970, 360)


def test_a_step_in_the_air_rescales_the_puff_detector_once_counting_runs() -> None:
    """In the step: the thermistor moved, the air is read again and the
    detector scaled by the blade's old rise over its new -- a 20 K drop in
    the air is no fall of the conductance (a phantom puff the campaign
    found). With either rise under the counting threshold: not scaled."""
    count_cc = limit(heater_ctl, "_PUFF_RISE_CC")
    for temp_c, scaled in ((300.0, True), (20.0 + count_cc / 100 - 1, False)):
        h = Heater()
        h.heating(temp_c)
        calls: list[int] = []
        h.hc.puffs.rescale = calls.append
        t, was = h.hc._temp_cc, h.hc._temp_cc - h.hc._amb_cc
        h.set(amb_c=0.0)
        h.step()
        now = t - (ntc.dc_from_uv(ntc.uv_at_c(0.0)) * 10 + h.hc._air_off_cc)
        assert calls == ([was * 1000 // now] if scaled else []), temp_c


def test_for_its_first_half_second_the_reference_follows_and_nothing_is_confirmed() -> None:
    """For SETTLE periods after counting starts the reference is the filter
    itself, however far the input jumps (the preheat ramp's end); on the next
    it lags again, and a puff can be confirmed."""
    d = started(3000)
    for _ in range(SETTLE):
        assert not d.update(3000 + 50 * ON)
        assert d._ref_q8 == _filt(d) and not d.active
    assert d.count == 0
    ref = d._ref_q8
    d.update(3000 + 50 * ON)
    assert d._ref_q8 != _filt(d) and d._ref_q8 == ref + ((_filt(d) - ref) >> REF_SHIFT)
    assert SETTLE * PERIOD_MS == 500


def test_after_a_puff_ends_the_reference_follows_for_the_settling_time() -> None:
    """A puff's end: for SETTLE periods the reference is the filter itself
    (after a deep draw the cold plug keeps the loss up for seconds: a campaign
    counter-example counted it as a second puff), nothing confirmed however
    high; on the next it lags again."""
    peak = 4 * ON
    d = _puffing(peak)
    for _ in range(OFF_STEPS):
        feed(d, (peak >> 1) - 1)
    assert not d.active and d.count == 1 and d._settle == SETTLE
    level = (int(d._ref_q8) >> 8) + 3 * ON
    for _ in range(SETTLE):
        assert not d.update(level)
        assert d._ref_q8 == _filt(d) and not d.active
    ref = d._ref_q8
    d.update(level + 3 * ON)
    assert d._ref_q8 != _filt(d) and d._ref_q8 == ref + ((_filt(d) - ref) >> REF_SHIFT)
    assert d.count == 1


def _fall_from(top: int, fall: int, after: int) -> Any:
    """Counting starts at conductance `top` (a draw under way), which holds
    through the settling and `after` - 1 more periods; on the `after`-th it
    has fallen by `fall` (as filtered)."""
    d = started(top)
    for _ in range(SETTLE):
        d.update(top)
    for _ in range(after - 1):
        assert not d.update(top)
    assert d._top == top
    d.update(x_for(d, ((top - fall) << 8) + 128))
    assert _filt(d) >> 8 == top - fall
    return d


def test_a_draw_under_way_at_the_start_counts_when_it_falls_by_its_margin() -> None:
    d = _fall_from(3000, FALL, 1)  # by the margin: no puff
    assert d.count == 0
    d = _fall_from(3000, FALL + 1, 1)  # past it: the draw under way has ended, one puff
    assert d.count == 1 and d._fall_n == 0 and not d.active
    assert d._ref_q8 == d._filt  # the reference starts afresh from the fallen conductance


def test_a_fall_is_measured_from_the_highest_the_draw_reached() -> None:
    """The top follows the conductance up in the window: a fall by the margin
    counts from there, not from where counting started."""
    d = started(3000)
    for _ in range(SETTLE):
        d.update(3000)
    d.update(x_for(d, ((3000 + 100) << 8) + 128))  # a new top, 100 up
    assert d._top == 3100 and d.count == 0
    d.update(x_for(d, ((3100 - FALL) << 8) + 128))  # by the margin below it: not yet
    assert d.count == 0
    d.update(x_for(d, ((3100 - FALL - 1) << 8) + 128))  # past it (still above the start)
    assert d.count == 1


def test_a_fall_is_looked_for_only_in_its_window() -> None:
    assert _fall_from(3000, FALL + 1, FALL_STEPS).count == 1  # the window's last period
    assert _fall_from(3000, FALL + 1, FALL_STEPS + 1).count == 0  # one past it
    assert FALL_STEPS * PERIOD_MS == 5000  # 5 s after counting starts


def test_the_loss_is_taken_over_its_span_and_counting_starts_after_it() -> None:
    """feed(): the first SPAN periods only fill the span; on the next the loss
    conductance over the span starts the counting: (energy in less the heat
    that went into the blade's rise over the span) / span time / rise above the air."""
    d = PD.PuffDetector()
    p_mw, dt_us, k = 4000, 10_000, 200
    temps = [30000 + 10 * n for n in range(SPAN + 1)]
    for t in temps[:SPAN]:
        d.feed(p_mw, dt_us, t, 28000, k)
        assert not d.started
    d.feed(p_mw, dt_us, temps[SPAN], 28000, k)
    assert d.started
    e = SPAN * (p_mw * dt_us // 1000) - k * (temps[SPAN] - temps[0])
    loss_mw = e // (SPAN * dt_us // 1000)
    x = loss_mw * 1000 // 28000
    assert _filt(d) >> 8 == x and d._settle == SETTLE
    # counting has started: the next period updates the filter (it does not start again)
    f = _filt(d)
    d.feed(p_mw + 400, dt_us, temps[SPAN], 28000, k)
    x2 = (
        (SPAN * (p_mw * dt_us // 1000) + 400 * dt_us // 1000 - k * 10 * (SPAN - 1))
        // (SPAN * dt_us // 1000)
        * 1000
        // 28000
    )
    assert _filt(d) == f + (((x2 << 8) - f) >> FAST) and d._settle == SETTLE - 1


def test_a_span_of_no_time_is_skipped() -> None:
    """A step run twice at one instant: no time over the span, no loss taken
    (and no division by zero)."""
    d = PD.PuffDetector()
    for n in range(3 * SPAN):
        d.feed(4000, 1, 30000 + n, 28000, 200)  # 1 us a period: the span's ms is 0
    assert not d.started and d._filt == 0


# --- the main loop's watch on the control step (app.py) --------------------------------------


def _app_function(name: str) -> tuple[Any, dict[str, Any]]:
    """A method of app.App, compiled from firmware/app.py's own text with
    the names it uses (app.py itself needs the whole board to import), and
    app.py's module-level constants."""
    tree = ast.parse((FIRMWARE_DIR / "app.py").read_text(encoding="utf-8"))
    consts: dict[str, Any] = {}
    found = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            v = node.value
            if isinstance(v, ast.Call) and getattr(v.func, "id", "") == "const":
                consts[node.targets[0].id] = ast.literal_eval(v.args[0])
        if isinstance(node, ast.ClassDef) and node.name == "App":
            found = next(f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == name)
    assert found is not None, f"app.App has no {name}"
    ns: dict[str, Any] = {"time": fw.clock().module(), "states": states, "faults": faults, **consts}
    exec(compile(ast.Module([found], []), str(FIRMWARE_DIR / "app.py"), "exec"), ns)
    return ns[name], consts


def test_a_stopped_control_step_is_cut_by_the_main_loop_at_its_stall_time() -> None:
    """No control step for STEP_STALL_MS while it should run: with the heater
    on, cut (CONTROL_OVERRUN); either way the step is started again. One
    step short of that time nothing happens."""
    watch, consts = _app_function("_watch_control")
    stall, main = consts["STEP_STALL_MS"], consts["MAIN_PERIOD_MS"]
    for state, dt_ms, code in (
        (states.HEATING, stall - 1, faults.NONE),
        (states.HEATING, stall, faults.CONTROL_OVERRUN),
        (states.PREHEAT, stall, faults.CONTROL_OVERRUN),
        (states.END_WARNING, stall, faults.CONTROL_OVERRUN),
        (states.COOLING, stall, faults.NONE),  # heater off: only started again
    ):
        h = Heater()
        h.heating()
        h.hc.state = state
        app = types.SimpleNamespace(heater=h.hc, _steps=-1, _steps_ms=0)
        watch(app, 1000)  # the step's count seen
        assert (app._steps, app._steps_ms) == (h.hc.steps, 1000)
        h.hc.timer.running = False  # it stops
        watch(app, 1000 + dt_ms)
        assert h.hc.fault == code, (state, dt_ms)
        assert h.hc.timer.running == (dt_ms >= stall) and (app._steps == -1) == (dt_ms >= stall)
        if code:
            assert h.cut and h.hc.state == states.FAULT and h.logged()[0][0] == code
        elif state != states.COOLING:
            assert h.switch_on
    h = Heater()
    h.hc._rate(False)  # asleep, at the idle rate: not watched
    app = types.SimpleNamespace(heater=h.hc, _steps=5, _steps_ms=0)
    watch(app, 10_000)
    assert app._steps == -1 and h.hc.fault == faults.NONE
    assert stall < main  # found within two main-loop passes (docs/safety.md)
    assert (stall, main) == (40, 50)


class _Wdt:
    def __init__(self, timeout: int) -> None:
        self.timeout = timeout


class _Halted(Exception):
    pass


def test_the_watchdog_is_armed_at_its_timeout_after_the_adc_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watchdog (reset after WDT_TIMEOUT of no main-loop pass: the
    emulation's, tests/simulator/test_sim_hal.py) is armed at its timeout
    once the ADC reads; an ADC that cannot read (no eFuse calibration) halts
    with its fault instead of a reset loop."""
    arm, consts = _app_function("_arm_watchdog")
    arm.__globals__["WDT"] = _Wdt
    arm.__globals__["sys"] = __import__("sys")
    adc_boot = fw.firmware("adc_boot")
    halted: list[tuple[str, int]] = []

    def halt(app: Any, why: str, wdt: _Wdt) -> None:
        halted.append((why, wdt.timeout))
        raise _Halted

    monkeypatch.setattr(adc_boot, "halt", halt)
    h = Heater()
    app = types.SimpleNamespace(heater=h.hc)
    wdt = arm(app)
    assert wdt.timeout == consts["WDT_TIMEOUT_MS"] == 2000 and not halted

    def no_cal() -> int:
        raise OSError(22)

    adc_boot = fw.firmware("adc_boot")  # the boot dropped it: loaded again
    monkeypatch.setattr(adc_boot, "halt", halt)
    monkeypatch.setattr(h.hc.adc_amb_ntc, "read_uv", no_cal)
    with pytest.raises(_Halted):
        arm(app)
    assert halted and "adc check failed" in halted[0][0] and halted[0][1] == 2000

"""The arithmetic audit: no intermediate of the control step, the puff
detector, the fuel gauges or the charge loops needs a big integer on the
ESP32, whose small ints have 31 bits -- anything larger is a heap
allocation, in the control step's case inside a timer callback.

Every input is an Int30 (fw_harness): an int whose arithmetic fails the
moment a result leaves the small-int range, and so is everything derived
from it; in fw.audit() the firmware's int arrays and its clock hand out
Int30s too. The inputs are readings that pass the safety checks, drawn
across their whole valid ranges -- a reading the checks refuse never reaches
the control law -- and what the code set up at start (the main loop's, where a
big integer costs nothing worse than an allocation) is wrapped once made.
Each audit counts, per `if` of the code it drives,
how many examples went each way (fw.Branches): it fails if a branch is never
reached that the list below does not name as unreachable, with the reason.
Run with -s to see the counts.
"""

from __future__ import annotations

import json
from typing import Any

import fw_harness as fw
import pytest
from fw_edges import (
    T0_US,
    board,
    calib,
    faults,
    heater_ctl,
    heater_safety,
    limit,
    ntc,
    profiles,
    states,
)
from fw_harness import BigIntError, Int30
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from hil.mutation import plan
from hil.paths import FIRMWARE_DIR, RESULTS_DIR

puff_detect = fw.firmware("puff_detect")
cal_check = fw.firmware("cal_check")
adccal = fw.firmware("adccal")
gauge = fw.firmware("gauge")
charge_loop = fw.firmware("charge_loop")
telemetry = fw.firmware("telemetry")

AUDIT = settings(max_examples=1200, deadline=None, derandomize=True)
HS = heater_safety
HC = heater_ctl


def _report(name: str, br: fw.Branches) -> None:
    print(f"\n{name}: {br.examples} examples\n{br.table()}")
    out = RESULTS_DIR / "audit"
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {"where": f"{f}:{line}", "if": test, "taken": br.taken[p], "passed": br.passed[p]}
        for p, (f, line, test) in enumerate(br.points)
    ]
    (out / f"{name}.json").write_text(
        json.dumps({"examples": br.examples, "branches": rows}, indent=1)
    )


def _check_reach(br: fw.Branches, unreachable: dict[str, str]) -> None:
    missing = br.missing()
    unexpected = [m for m in missing if m not in unreachable]
    assert not unexpected, "branches the audit never reached:\n" + "\n".join(unexpected)
    reached_after_all = [m for m in unreachable if m not in missing]
    assert not reached_after_all, "listed as unreachable, but reached:\n" + "\n".join(
        reached_after_all
    )


def _int30(obj: Any, *names: str) -> None:
    """Make the named attributes Int30."""
    for n in names:
        setattr(obj, n, Int30(getattr(obj, n)))


def _cal_ranges() -> tuple[tuple[int, int], tuple[int, int]]:
    """The R0 and TCR of a unit in spec (board.py, calib.valid's ranges)."""
    b = board
    return (b.CAL_R0_MIN_UOHM, b.CAL_R0_MAX_UOHM), (b.CAL_TCR_MIN_PPM, b.CAL_TCR_MAX_PPM)


# --- the control step ----------------------------------------------------------------------

# `if`s valid readings cannot reach, and why: a reading that would take them
# trips a safety check first (tests/firmware/test_edges.py has each at its
# edge), or the control law's own bounds rule them out
_TRIPS = "a reading that takes it trips a safety check (test_edges.py)"
_RECORD = (
    "a calibration check trips: a record of its own heater (the examples') never does; "
    "test_edges.py has each check at its edge"
)
_SANE = (
    "if not (_CELL_SANE_MIN_MV <= cell_mv <= _CELL_SANE_MAX_MV and _NTC_MIN_UV <= cell_ntc_uv "
    "< _RAIL_UV and (_NTC_MIN_UV <= amb_ntc_uv < _RAIL_UV)) (never taken)"
)
CONTROL_UNREACHABLE = {
    "temp_cc: if r > 3 * r0_10u (never taken)": (
        "3 x R0 is ~600 C: the over-temperature check (at 345 C) trips first"
    ),
    "HeaterControl.step: if fault (never taken)": _TRIPS,
    "HeaterControl._measure: if r == CALIBRATION (never taken)": _RECORD,
    "HeaterControl._measure: if r == 1 (never taken)": _RECORD,
    "CalCheck.first: if temp_cc < amb_cc - _COLD_MARGIN_CC (never taken)": _RECORD,
    "CalCheck.rise: if s > _TRIP_PM and (not self._fail_safe) (never taken)": _RECORD,
    "CalCheck.rise: if e > _E_TRIP_UJ (never taken)": _RECORD,
    "CalCheck.rise: if self.phase != RISE (never taken)": (
        "the step calls rise() only in the RISE phase (a guard for other callers)"
    ),
    "HeaterControl._control: if integ > _P_MAX_MW << 8 (never taken)": (
        "the integral grows only while demand <= p_cap <= P_MAX, which keeps it "
        "below its clamp by 4 x err x 256"
    ),
    "HeaterControl._control: if err > 0 (never taken)": (
        "a negative demand needs err < -(feed-forward + integral) / Kp < 0"
    ),
    "HeaterSafety.check_heating: if not stick (never taken)": _TRIPS,
    "HeaterSafety.check_heating: if i_ma < _I_OPEN_MA (never taken)": _TRIPS,
    "HeaterSafety.check_heating: "
    "if i_ma > _I_MAX_MA or v_mv * 10000 < self.r_short_100u * i_ma (never taken)": _TRIPS,
    "HeaterSafety.check_heating: if vh_uv >= _RAIL_UV or ih_uv >= _RAIL_UV or "
    "v_mv > cell_mv + _V_OVER_CELL_MV (never taken)": _TRIPS,
    "HeaterSafety.check_heating: if v_mv * 10000 > self.r_cap_100u * i_ma (never taken)": _TRIPS,
    "HeaterSafety.check_heating: " + _SANE: _TRIPS,
    "HeaterSafety.check_heating: if cell_mv < _CELL_MIN_MV (never taken)": _TRIPS,
    "HeaterSafety.check_heating: if self._uv_n >= _DEBOUNCE (never taken)": _TRIPS,
    "HeaterSafety.check_heating: if self._uv_n >= _DEBOUNCE (never passed)": _TRIPS,
    "HeaterSafety.check_heating: if cell_ntc_uv < self.cell_hot_uv (never taken)": _TRIPS,
    "HeaterSafety.check_heating: if self._hot_n >= _DEBOUNCE (never taken)": _TRIPS,
    "HeaterSafety.check_heating: if self._hot_n >= _DEBOUNCE (never passed)": _TRIPS,
    "HeaterSafety.check_heating: "
    "if amb_ntc_uv > self.amb_cold_uv or amb_ntc_uv < self.amb_hot_uv (never taken)": _TRIPS,
    "HeaterSafety.check_heating: if self._amb_n >= _DEBOUNCE (never taken)": _TRIPS,
    "HeaterSafety.check_heating: if self._amb_n >= _DEBOUNCE (never passed)": _TRIPS,
    "HeaterSafety.start_refusal: " + _SANE: "a refused start (test_edges.py)",
    "HeaterSafety.start_refusal: if cell_mv < _CELL_MIN_MV (never taken)": "as above",
    "HeaterSafety.start_refusal: if cell_ntc_uv < self.cell_hot_uv (never taken)": "as above",
    "HeaterSafety.start_refusal: if amb_ntc_uv > self.amb_cold_uv (never taken)": "as above",
    "HeaterSafety.start_refusal: if amb_ntc_uv < self.amb_hot_uv (never taken)": "as above",
}


@st.composite
def heating_step(draw: st.DrawFn) -> dict[str, Any]:
    """One control period with readings that pass every check, and the
    controller's own state drawn across its range: the session's time and
    state, the integrator, the last reading, the puff detector's counters."""
    (r0_lo, r0_hi), (tcr_lo, tcr_hi) = _cal_ranges()
    tol = limit(HS, "_NTC_TOL_C")
    p_max = limit(HC, "_P_MAX_MW")
    duty_min, duty_max = limit(HC, "_DUTY_MIN"), limit(HC, "_DUTY_MAX")
    on_states = [states.PREHEAT] * 3 + [states.HEATING] * 3 + [states.END_WARNING] * 2
    on_n, off_n = limit(puff_detect, "_ON_STEPS"), limit(puff_detect, "_OFF_STEPS")
    max_len = limit(puff_detect, "_MAX_PUFF_STEPS")
    span, settle = limit(puff_detect, "_SPAN"), limit(puff_detect, "_SETTLE_STEPS")
    fall_steps = limit(puff_detect, "_FALL_STEPS")
    blade_k = board.BLADE_HEAT_UJ_PER_CC
    # the largest correction: a measured slope just under the trip, less its tolerance
    s_max = limit(cal_check, "_TRIP_PM") * (1000 - limit(cal_check, "_TOL_PM")) // 1000
    cool_us = limit(HC, "_COOL_US")
    held_cc = limit(HC, "_HELD_RISE_CC")
    check_cc = limit(cal_check, "_CHECK_CC")
    # a cold start's energy so far, for a record of its heater: under the trip's
    # by a period's most (the trip itself is at its edge in test_edges.py)
    e_safe = limit(cal_check, "_E_TRIP_UJ") - p_max * 50
    move = limit(HC, "_AMB_MOVE_UV")
    dts = [10_000, 10_000, 10_000, 1, 9_000, 50_000, 50_001, 200_000]  # a period's length, us
    rest_ma = (adccal.IDF_FLOOR_UV + adccal.MARGIN_UV) // board.UV_PER_MA + 1
    i_least = max(limit(HS, "_I_OPEN_MA"), rest_ma)
    ex: dict[str, Any] = {
        "r0": draw(st.integers(r0_lo, r0_hi)),
        "tcr": draw(st.integers(tcr_lo, tcr_hi)),
        "amb_c": draw(st.floats(HS.AMBIENT_MIN_C - tol + 0.01, HS.AMBIENT_MAX_C + tol - 0.01)),
        "cell_c": draw(st.floats(-20.0, HS.CELL_MAX_C + tol - 0.01)),
        # from the least current the sense reads (above its rest, adccal.py) and the open trip
        "i_ma": draw(st.integers(i_least, limit(HS, "_I_MAX_MA"))),
        "state": draw(
            st.sampled_from(
                [*on_states, states.COOLING, states.COOLING, states.SLEEP, states.FAULT]
            )
        ),
        "integ": draw(
            st.sampled_from([0, p_max << 8]) | st.integers(0, 3000) | st.integers(0, p_max << 8)
        ),
        "duty": draw(st.sampled_from([0, duty_min, duty_max] + [-1] * 12)),
        "profile": draw(st.sampled_from(profiles.names())),
        "puffs": draw(
            st.sampled_from([HC.SESSION_PUFFS, HC.SESSION_PUFFS - HC.WARN_PUFFS_LEFT]).flatmap(
                lambda e: st.integers(e - 1, e)
            )
            | st.integers(0, HC.SESSION_PUFFS)
        ),
        "puff_active": draw(st.booleans()),
        "puff_n": draw(st.sampled_from([0, 1, on_n - 1, off_n - 1]) | st.integers(0, off_n)),
        "puff_len": draw(st.sampled_from([0, max_len - 1]) | st.integers(0, max_len)),
        "puff_peak": draw(st.integers(0, 200) | st.integers(0, 3000)),
        # the puff detector: counting started or not, its span filling, its
        # settling and fall windows at their ends; conductances in 0.1 mW/K
        "puff_started": draw(st.sampled_from([True] * 4 + [False])),
        "puff_k": draw(st.sampled_from([0, span - 1, span, span + 1]) | st.integers(0, 10_000)),
        "puff_filt": draw(st.integers(-3000, 6000)),
        # the reference and the top near the filter (the thresholds' edges), or anywhere
        "puff_ref": draw(st.integers(-100, 100) | st.integers(-9000, 9000)),
        "puff_top": draw(st.integers(-100, 100) | st.integers(-9000, 9000)),
        "puff_settle": draw(st.sampled_from([0, 0, 0, 0, 1, settle])),
        "puff_fall_n": draw(st.sampled_from([0, 0, 0, 1, fall_steps])),
        "puff_span_mw": draw(st.lists(st.integers(0, p_max), min_size=span, max_size=span)),
        "puff_span_dt": draw(
            st.lists(st.sampled_from(dts), min_size=span, max_size=span)
            | st.sampled_from([1, 10_000]).map(lambda dt: [dt] * span)  # no time at all
        ),
        "puff_span_dc": draw(st.lists(st.integers(-500, 500), min_size=span, max_size=span)),
        # the calibration's check: mid-session, a session's first reading, a
        # cold start's rise; the reading's correction from none to the largest
        "stored": draw(st.sampled_from([True] * 4 + [False])),
        "phase": draw(st.sampled_from([cal_check.IDLE] * 3 + [cal_check.FIRST, cal_check.RISE])),
        "slope": draw(st.sampled_from([1000, 1000, s_max]) | st.integers(1000, s_max)),
        "measured": draw(st.sampled_from([0, 1000]) | st.integers(800, 1200)),
        "k": draw(st.sampled_from([blade_k, blade_k * 1000 // s_max]) | st.integers(120, 260)),
        # how long the heater has been off (us), at the cool time's edge or anywhere
        "off_us": draw(st.sampled_from([0, cool_us - 1, cool_us]) | st.integers(0, 2 * cool_us)),
        "cooled": draw(st.booleans()),
        # the session's second reading due, its rise over the first at the gate check's edge
        "held": draw(st.sampled_from([False] * 4 + [True])),
        "held_rise": draw(st.sampled_from([0, held_cc, held_cc + 1]) | st.integers(-500, 2000)),
        "rise_e": draw(st.sampled_from([0, e_safe]) | st.integers(0, e_safe)),
        "rise_from": draw(
            st.sampled_from([0, check_cc - 1, check_cc, check_cc + 1])
            | st.integers(0, check_cc + 500)
        ),
        "dt_us": draw(st.sampled_from(dts)),
        "rest_uv": draw(st.sampled_from([0, adccal.MARGIN_UV]) | st.integers(0, adccal.MARGIN_UV)),
        "p_prev": draw(st.sampled_from([0, p_max]) | st.integers(0, p_max)),
        "air_off": draw(st.sampled_from([0]) | st.integers(-600, 600)),
        "amb_moved": draw(
            st.sampled_from([0, move, -move, move + 1, -move - 1]) | st.integers(-20_000, 20_000)
        ),
        "req": draw(st.sampled_from([0] * 6 + [1, 2, 3])),  # start, stop, clear a fault
        "stick": draw(st.sampled_from([1] * 5 + [0])),
        "puff_armed": draw(st.booleans()),
        "ready": draw(st.booleans()),
        "fast": draw(st.booleans()),
    }
    if ex["duty"] < 0:
        ex["duty"] = draw(st.integers(duty_min, duty_max))
    if ex["state"] in (states.PREHEAT, states.HEATING, states.END_WARNING):
        ex["stick"] = 1  # out: STICK_MISSING (test_edges.py)
    else:
        ex["duty"] = 0  # the heater is cut in every other state
        ex["stick"] = draw(st.sampled_from([1, 0]))  # a start without a stick is refused
    if ex["state"] == states.FAULT:
        ex["req"] = draw(st.sampled_from([0, 1, 3, 3]))
    prof = profiles.Profile(ex["profile"])
    ex["profile_i"] = draw(st.integers(0, prof._n - 1))
    # the session's time: anywhere, or at one of its edges
    if ex["state"] == states.PREHEAT:
        edges = [prof.preheat_ms, prof.preheat_ms + limit(HC, "_PREHEAT_GRACE_MS")]
    elif ex["state"] == states.COOLING:
        edges = [HC.COOLING_MS]
    else:
        edges = [HC.SESSION_MS - HC.WARN_BEFORE_END_MS, HC.SESSION_MS, prof._t_ms[-1]]
    if draw(st.integers(0, 2)):  # two in three at an edge (one drawn alike: hypothesis
        # leans to small numbers of a wide range)
        ex["t_ms"] = edges[draw(st.integers(0, len(edges) - 1))] + draw(st.integers(-20, 20))
    else:
        ex["t_ms"] = draw(st.integers(0, max(edges) + 5000))
    # the blade's true temperature, at or above the air and below the cap (a
    # calibrated unit reads it as it is): near the set-point, or anywhere
    sp_c = prof.setpoint_cc(ex["t_ms"]) / 100
    near = draw(st.floats(-0.04, 0.04))
    anywhere = draw(st.floats(ex["amb_c"], HS.TEMP_CAP_C - 1.0))
    temp = sp_c * (1 + near) if draw(st.booleans()) else anywhere
    ex["temp_c"] = min(max(temp, ex["amb_c"]), HS.TEMP_CAP_C - 1.0)
    if ex["phase"] == cal_check.RISE:  # a cold start: within 30 K of the air
        ex["temp_c"] = min(ex["temp_c"], ex["amb_c"] + 30.0)
    if not ex["stored"]:  # the fail-safe record: never corrected (cal_check.py)
        ex["slope"] = 1000
    # the record's reading, which the slope in use corrects to the true
    # temperature (and the trip is derated alike); a session's first reading,
    # of a record of its heater, no colder than the air
    t0 = board.CAL_T0_C
    ex["raw_c"] = t0 + (ex["temp_c"] - t0) * 1000 / ex["slope"]
    if ex["phase"] == cal_check.FIRST:
        ex["raw_c"] = max(ex["raw_c"], ex["amb_c"])
    r_uohm = ex["r0"] * (1 + ex["tcr"] * 1e-6 * (ex["raw_c"] - t0))
    ex["v_100uv"] = int(r_uohm * ex["i_ma"] / 1e5)
    v_mv = ex["v_100uv"] // 10
    lo = max(limit(HS, "_CELL_MIN_MV"), v_mv - limit(HS, "_V_OVER_CELL_MV"))
    assume(lo <= limit(HS, "_CELL_SANE_MAX_MV"))
    ex["cell_mv"] = draw(st.integers(lo, limit(HS, "_CELL_SANE_MAX_MV")))
    prev = draw(st.sampled_from(["first", "near", "anywhere", "near", "anywhere"]))
    ex["prev_cc"] = {
        "first": 0,
        "near": int(100 * (ex["temp_c"] + draw(st.floats(-2.0, 2.0)))),
        "anywhere": int(100 * draw(st.floats(ex["amb_c"], HS.TEMP_CAP_C))),
    }[prev] or 0
    return ex


def _heater(ex: dict[str, Any], cls: Any = None, wrap: Any = Int30) -> Any:
    """The controller (cls: HeaterControl, or a variant's) set up for one
    example, every input wrapped (Int30: audited; int: plain CPython)."""
    c = calib.Calibration(ex["r0"], ex["tcr"], ex["stored"])  # set-up: main loop, not audited
    p = profiles.Profile(ex["profile"])
    p._t_ms = [wrap(x) for x in p._t_ms]
    p._sp_cc = [wrap(x) for x in p._sp_cc]
    p.preheat_ms, p.band_pct = wrap(p.preheat_ms), wrap(p.band_pct)
    log = fw.NullLog()
    hc = (cls or HC.HeaterControl)(c, p, telemetry.Telemetry(out=bytearray()), log)
    c.r0_10u, c.r0tcr_uohm_k = wrap(c.r0_10u), wrap(c.r0tcr_uohm_k)  # what the step reads
    s = hc.safety
    s.derate(ex["slope"])  # the trip as the correction in use has it
    for n in ("r_cap_100u", "r_short_100u", "cell_hot_uv", "amb_cold_uv", "amb_hot_uv"):
        setattr(s, n, wrap(getattr(s, n)))
    hc.tele.enabled = True  # packs the record: its arguments are audited too
    hc.state = ex["state"]
    hc._en = ex["duty"] > 0
    hc._duty = wrap(ex["duty"])
    hc._integ_q8 = wrap(ex["integ"])
    hc._temp_cc = wrap(ex["prev_cc"])
    hc._t0_us = wrap(T0_US)
    hc.adc_vh.uv = wrap(ex["v_100uv"] * 100 // board.HEATER_V_DIV)
    hc.adc_ih.uv = wrap(ex["i_ma"] * board.UV_PER_MA)
    if not ex["duty"]:  # no on-phase to hold: the sense at rest reads the ADC's floor
        hc.adc_ih.uv = wrap(adccal.IDF_FLOOR_UV + ex["rest_uv"])
    hc.adc_cell.uv = wrap(ex["cell_mv"] * 1000 // board.CELL_V_DIV)
    hc.adc_cell_ntc.uv = wrap(ntc.uv_at_c(ex["cell_c"]))
    hc.adc_amb_ntc.uv = wrap(ntc.uv_at_c(ex["amb_c"]))
    hc._amb_uv = hc.adc_amb_ntc.uv
    hc._amb_seen_uv = wrap(hc._amb_uv + ex["amb_moved"])
    hc._air_off_cc = wrap(ex["air_off"])
    hc._amb_cc = wrap(ntc.dc_from_uv(hc._amb_seen_uv) * 10 + ex["air_off"])
    now_us = T0_US + ex["t_ms"] * 1000
    hc._last_us = wrap(now_us - ex["dt_us"])
    hc.power_mw = wrap(ex["p_prev"])
    cc = hc.cal_check
    cc.phase = ex["phase"]
    cc.slope_pm, cc.measured_pm = wrap(ex["slope"]), wrap(ex["measured"])
    cc.k_uj_per_cc = wrap(ex["k"])
    cc._fail_safe = not ex["stored"]
    # the rise so far: this step's reading (as the step will read it) less rise_from
    v_read = ex["v_100uv"] * 100 // board.HEATER_V_DIV * board.HEATER_V_DIV // 100
    raw_now = HC.temp_cc(v_read, ex["i_ma"], ex["r0"] // 10, c.r0tcr_uohm_k)
    cc._t1_cc = wrap(raw_now - ex["rise_from"])
    hc._held_cc = wrap(raw_now - ex["held_rise"]) if ex["held"] else limit(HC, "_NOT_HELD")
    cc._e_uj = wrap(ex["rise_e"])
    hc._off_us = wrap(now_us - ex["off_us"])
    hc._cooled = ex["cooled"]
    cc._cooled = ex["cooled"]
    hc.ready = ex["ready"]
    HC.__dict__["_fast"] = ex["fast"]  # the module's rate flag
    p._i = ex["profile_i"]
    pd = hc.puffs
    pd.reset()
    pd.started = ex["puff_started"]
    pd._k = wrap(ex["puff_k"])
    pd._filt = wrap(ex["puff_filt"] << 8)
    pd._ref_q8 = wrap((ex["puff_filt"] + ex["puff_ref"]) << 8)
    pd._top = wrap(ex["puff_filt"] + ex["puff_top"])
    pd._settle, pd._fall_n = wrap(ex["puff_settle"]), wrap(ex["puff_fall_n"])
    for i in range(len(ex["puff_span_mw"])):  # the span's last periods (arrays: audited)
        pd._dt[i] = ex["puff_span_dt"][i]
        pd._e[i] = ex["puff_span_mw"][i] * ex["puff_span_dt"][i] // 1000
        pd._t[i] = int(100 * ex["temp_c"]) + ex["puff_span_dc"][i]
    pd.count = wrap(ex["puffs"])
    pd.active = ex["puff_active"] and ex["puffs"] > 0
    pd._armed = ex["puff_armed"]
    pd._n, pd._len = wrap(ex["puff_n"]), wrap(ex["puff_len"] if pd.active else 0)
    pd._peak = wrap(ex["puff_peak"] if pd.active else 0)
    hc._req = ex["req"]
    hc.stick.level = ex["stick"]
    fw.clock().us = now_us
    return hc


def _mid_session(**change: Any) -> dict[str, Any]:
    """An example of heating_step's form by hand: mid-session at 290 C on a
    nominal unit, the puff detector counting, changed by `change`."""
    ex: dict[str, Any] = {
        "r0": 800_000,
        "tcr": 3500,
        "amb_c": 20.0,
        "cell_c": 25.0,
        "i_ma": 2000,
        "state": states.HEATING,
        "t_ms": 100_000,
        "integ": 2000 << 8,
        "duty": 30000,
        "profile": "standard",
        "profile_i": 0,
        "puffs": 0,
        "puff_active": False,
        "puff_n": 0,
        "puff_len": 0,
        "puff_peak": 0,
        "puff_armed": True,
        "puff_started": True,
        "puff_k": 100,
        "puff_filt": 300,
        "puff_ref": 0,
        "puff_top": 0,
        "puff_settle": 0,
        "puff_fall_n": 0,
        "puff_span_mw": [4000] * 4,
        "puff_span_dt": [10_000] * 4,
        "puff_span_dc": [0] * 4,
        "stored": True,
        "phase": cal_check.IDLE,
        "slope": 1000,
        "measured": 1000,
        "k": board.BLADE_HEAT_UJ_PER_CC,
        "rise_e": 0,
        "rise_from": 0,
        "dt_us": 10_000,
        "rest_uv": 0,
        "p_prev": 4000,
        "air_off": 0,
        "amb_moved": 0,
        "off_us": 0,
        "cooled": False,
        "held": False,
        "held_rise": 0,
        "req": 0,
        "stick": 1,
        "ready": True,
        "fast": True,
        "temp_c": 290.0,
        "raw_c": 290.0,
        "cell_mv": 3900,
        "prev_cc": 29000,
    }
    ex.update(change)
    r_uohm = ex["r0"] * (1 + ex["tcr"] * 1e-6 * (ex["raw_c"] - board.CAL_T0_C))
    ex["v_100uv"] = int(r_uohm * ex["i_ma"] / 1e5)
    return ex


CONTROL_CODE = (  # every function the step runs that has an `if`
    HC.temp_cc,
    HC.HeaterControl.step,
    HC.HeaterControl._control,
    HC.HeaterControl._measure,
    HC.HeaterControl._session,
    HC.HeaterControl._serve_request,
    HS.HeaterSafety.check_heating,
    HS.HeaterSafety.start_refusal,
    cal_check.CalCheck.first,
    cal_check.CalCheck.rise,
    cal_check.CalCheck.correct,
    puff_detect.PuffDetector.feed,
    puff_detect.PuffDetector.update,
    profiles.Profile.setpoint_cc,
    adccal.sense,
)


def test_control_step_never_needs_a_bigint() -> None:
    br = fw.Branches(*CONTROL_CODE)
    law_expected = [0]

    # by hand, beside the drawn ones: the puff detector's rarest ways (a puff at
    # its longest, the fall window's three ways, a span of no time at all)
    counting = {"puff_started": True, "puff_k": 100, "puff_settle": 0}
    long_puff = {"puff_active": True, "puffs": 3, "puff_len": limit(puff_detect, "_MAX_PUFF_STEPS")}
    fall = {"puff_fall_n": 5, "puff_armed": True}
    on_last = limit(puff_detect, "_ON_STEPS") - 1
    std = profiles.Profile("standard")
    t_ready = std.preheat_ms + 100
    sp_c = std.setpoint_cc(t_ready) / 100
    rise_done = limit(cal_check, "_CHECK_CC") + 10
    above = std.setpoint_cc(100_000) / 100 + 3.0  # mid-session, 3 K over the set-point

    @AUDIT
    @given(heating_step())
    @example(_mid_session(**counting, **long_puff, puff_peak=50))
    @example(_mid_session(**counting, **fall, puff_top=10_000))  # fallen from its top
    @example(_mid_session(**counting, **fall, puff_top=0))  # at its top: neither
    @example(_mid_session(**counting, **fall, puff_top=-1000))  # above it: a new top
    @example(_mid_session(**counting, puff_span_dt=[1] * 4, dt_us=1))
    @example(_mid_session(**counting, puff_armed=True, puff_ref=-1000))  # a puff's first period
    @example(_mid_session(**counting, puff_armed=True, puff_ref=-1000, puff_n=on_last))  # its last
    @example(_mid_session(**counting, **{**long_puff, "puff_len": 10}, puff_n=20, puff_peak=3000))
    # the preheat over, the blade in its band: ready
    @example(_mid_session(state=states.PREHEAT, t_ms=t_ready, temp_c=sp_c, raw_c=sp_c,
                          prev_cc=int(100 * sp_c), ready=False))  # fmt: skip
    # over the set-point with the integral at 0: it would go negative (clamped)
    @example(_mid_session(integ=0, temp_c=above, raw_c=above, prev_cc=int(100 * above)))
    # a puff under way, its excess over its peak so far (a new peak, still drawing)
    @example(_mid_session(**counting, puff_active=True, puffs=1, puff_len=10, puff_ref=-1000))
    # 30 K over it: the least duty, its reading kept; and already a period there
    @example(_mid_session(integ=0, temp_c=320.0, raw_c=320.0, prev_cc=32000))
    @example(_mid_session(integ=0, temp_c=320.0, raw_c=320.0, prev_cc=32000, held=True))
    # a warm start (the blade well over the air) before any rise was ever measured:
    # refused; and the same reading once the heater has been off its cool time
    @example(_mid_session(phase=cal_check.FIRST, measured=0, temp_c=60.0, raw_c=60.0,
                          prev_cc=6000))  # fmt: skip
    @example(_mid_session(phase=cal_check.FIRST, measured=0, temp_c=60.0, raw_c=60.0,
                          prev_cc=6000, cooled=True))  # fmt: skip
    # the second reading: the least duty held, the blade up to the gate check's edge, and past it
    @example(
        _mid_session(state=states.PREHEAT, t_ms=20, held=True, held_rise=limit(HC, "_HELD_RISE_CC"))
    )
    @example(
        _mid_session(
            state=states.PREHEAT, t_ms=20, held=True, held_rise=limit(HC, "_HELD_RISE_CC") + 1
        )
    )
    # off its cool time, to the microsecond: cooled from now on
    @example(_mid_session(state=states.SLEEP, duty=0, off_us=limit(HC, "_COOL_US")))
    # a start served, and one refused (no stick)
    @example(_mid_session(state=states.SLEEP, duty=0, req=1, phase=cal_check.IDLE))
    @example(_mid_session(state=states.SLEEP, duty=0, req=1, stick=0))
    # a cold start's rise measured, with this unit's record and with the fail-safe one
    @example(
        _mid_session(
            phase=cal_check.RISE,
            temp_c=50.0,
            raw_c=50.0,
            prev_cc=5000,
            rise_from=rise_done,
            rise_e=500_000,
        )
    )
    @example(_mid_session(phase=cal_check.RISE, stored=False, temp_c=50.0, raw_c=50.0,
                          prev_cc=5000, rise_from=rise_done, rise_e=500_000))  # fmt: skip
    def one(ex: dict[str, Any]) -> None:
        hc = _heater(ex)
        # a stop request (2) ends the session before the step measures anything;
        # so do its time limit and, in preheat, its timeout (a time, not a reading)
        heating = ex["state"] in (states.PREHEAT, states.HEATING, states.END_WARNING)
        heating = heating and ex["req"] != 2
        timeout = ex["state"] == states.PREHEAT and ex["t_ms"] >= hc.profile.preheat_ms + limit(
            HC, "_PREHEAT_GRACE_MS"
        )
        heating = heating and ex["t_ms"] < HC.SESSION_MS
        timeout = timeout and heating
        heating = heating and not timeout
        law_expected[0] += heating and ex["duty"] > 0
        with fw.audit(), br:
            hc.step(None)
        # the session's second reading risen past the gate check's edge: a stuck gate
        stuck = heating and ex["duty"] > 0 and ex["held"] and ex["phase"] != cal_check.FIRST
        stuck = stuck and ex["held_rise"] > limit(HC, "_HELD_RISE_CC")
        want = faults.PREHEAT_TIMEOUT if timeout else faults.GATE_STUCK if stuck else 0
        assert hc.fault == want, f"a valid reading tripped fault {hc.fault}: {ex}"
        if heating and not ex["duty"]:  # no on-phase sample yet: the sample-and-hold fed
            assert hc._duty == limit(HC, "_DUTY_MIN")
        assert 0 <= hc._duty <= limit(HC, "_DUTY_MAX")

    one()
    _report("control_step", br)
    (law,) = [
        p
        for p, pt in enumerate(br.points)
        if pt[0] == "HeaterControl._control" and "not sampled" in pt[2]
    ]
    print(f"the control law ran in {br.passed[law]} of {br.examples} examples")
    # every heater-on example with an on-phase sample reached it: none was cut
    # first; about half are drawn so (8 of 12 states heat, 8 of 9 requests are
    # not a stop, 14 of 15 steps have a sample), and hypothesis's draws lean to
    # the edges: at least a third must reach the law
    assert br.passed[law] == law_expected[0] >= br.examples // 3
    assert br.taken[law] >= 10  # first steps of a session
    _check_reach(br, CONTROL_UNREACHABLE)


def test_the_audit_catches_a_1e10_intermediate_in_the_duty() -> None:
    """The named bug of mutation/plan.toml: the duty computed as
    (power << 20) // (p_full << 4) -- the same duty, in CPython and on the
    64-bit unix port alike, but an intermediate near 1e10, a bigint on the
    ESP32. Only the audit sees it."""
    (bug,) = [b for b in plan.load().bugs if b.module == "heater_ctl" and "1e10" in b.what]
    source = (FIRMWARE_DIR / "heater_ctl.py").read_text()
    text = bug.apply(source)
    assert text is not None, "the bug's text is no longer in heater_ctl.py: update the plan"
    buggy = fw.firmware_variant("heater_ctl", text)
    ex = _mid_session()
    hc_ok, hc_bug = _heater(ex), _heater(ex, buggy.HeaterControl)
    with fw.audit():
        hc_ok.step(None)
        with pytest.raises(BigIntError, match="does not fit a 31-bit small int"):
            hc_bug.step(None)
    # with plain ints the bug is invisible: the very same duty
    plain_ok, plain_bug = _heater(ex, wrap=int), _heater(ex, buggy.HeaterControl, wrap=int)
    plain_ok.step(None)
    plain_bug.step(None)
    assert plain_bug._duty == plain_ok._duty > limit(HC, "_DUTY_MIN")


# --- puff detection -----------------------------------------------------------------------


def _segments(levels: st.SearchStrategy[Any], longest: int, total: int) -> st.SearchStrategy[Any]:
    """A run of inputs held for a while each: (level, how many periods) pairs,
    so that conditions last long enough to confirm, end or time out."""
    seg = st.tuples(levels, st.sampled_from([1, 2, longest]) | st.integers(1, longest))
    return st.lists(seg, min_size=1, max_size=12).map(
        lambda segs: [x for level, n in segs for x in [level] * n][:total]
    )


def test_puff_detection_never_needs_a_bigint() -> None:
    """The loss conductance the step can hand in (0.1 mW/K): from -3 W/K
    (a blade cooling fast, a period's energy noise over a small rise) to
    +6 W/K, held in runs long enough to confirm, end, time out or fall; and
    feed() with every period's power, length and the blade's readings over
    their ranges."""
    br = fw.Branches(
        puff_detect.PuffDetector.feed,
        puff_detect.PuffDetector.start,
        puff_detect.PuffDetector.update,
        puff_detect.PuffDetector._end,
    )
    longest = limit(puff_detect, "_MAX_PUFF_STEPS") + 20
    level = st.sampled_from([-30_000, 0, 200, 300, 600, 60_000]) | st.integers(-30_000, 60_000)
    period = st.tuples(
        st.sampled_from([0, 10_000]) | st.integers(0, 20_000),  # mW delivered
        st.sampled_from([10_000, 10_000, 1, 50_000]),  # us: the step clamps it to 50 ms
        st.integers(-500, 500),  # 0.01 K the reading moved
        st.sampled_from([8000, 1_500_000]) | st.integers(8000, 1_500_000),  # rise above the air
        st.sampled_from([board.BLADE_HEAT_UJ_PER_CC, 129]) | st.integers(120, 320),  # k
    )

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(level, _segments(level, longest, 3000), st.lists(period, min_size=1, max_size=60))
    # by hand: a span of no time at all; a puff at its longest; a draw under way
    # at the start that falls (and one that rises first)
    @example(0, [0], [(4000, 1, 0, 20_000, 200)] * 6)
    @example(300, [300] * 60 + [900] * 30 + [900] * 800, [(4000, 10_000, 0, 20_000, 200)] * 6)
    @example(900, [900] * 60 + [1000] * 10 + [0] * 100, [(4000, 10_000, 0, 20_000, 200)] * 6)
    def one(start: int, run: list[int], periods: list[Any]) -> None:
        d = puff_detect.PuffDetector()
        t = 30_000
        with fw.audit(), br:
            for p_mw, dt_us, dt_cc, rise, k in periods:  # feed(): the span, then counting
                t += dt_cc
                d.feed(Int30(p_mw), Int30(dt_us), Int30(t), Int30(rise), Int30(k))
        d = puff_detect.PuffDetector()
        with fw.audit(), br:
            d.start(Int30(start))
            _int30(d, "_n", "_len", "_peak", "count", "_settle", "_fall_n", "_top")
            for x in run:
                d.update(Int30(x))

    one()
    _report("puff_detect", br)
    _check_reach(br, {})


# --- fuel gauges and charge loops -----------------------------------------------------------


GAUGES = {
    "charger": (board.CHARGER_CELL_MAH, board.CHARGER_R_MOHM, 300_000),
    "holder": (board.HOLDER_CELL_MAH, board.HOLDER_R_MOHM, 120_000),
}
GAUGE_TICK = st.tuples(
    st.sampled_from([0, 0, 1]) | st.integers(-7000, 3500),  # mA: the heater .. a charge
    st.sampled_from([250, 250, 250, 1, 2000]),  # ms since the last tick
    st.sampled_from([3000, 3840, 4200]) | st.integers(2500, 4400),  # mV
    st.sampled_from([-1, 0, 99, 100, 200, 500, 501, 600, 800]) | st.integers(-400, 800),  # 0.1 C
    st.sampled_from([False] * 20 + [True]),  # a charge terminated
)


def test_fuel_gauges_never_need_a_bigint() -> None:
    """Currents from the heater's 7 A to a 3.5 A charge, the cell from 2.5 to
    4.4 V and -40 to 80 C, the learnt capacity half to 1.1 x nominal."""
    br = fw.Branches(
        gauge.Gauge.count,
        gauge.Gauge._anchor_at,
        gauge.Gauge.soc,
        gauge.soc_from_ocv,
        gauge.r_mohm_at,
    )

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(
        st.sampled_from(sorted(GAUGES)),
        st.integers(2500, 4400),
        st.floats(0.5, 1.1),
        st.sampled_from([0.0, 0.99, 1.0]),
        st.sampled_from([-1, 10000]) | st.integers(-1, 10000),
        st.sampled_from([-1_450_000, -60_000]) | st.integers(-3_000_000, 3_000_000),
        _segments(GAUGE_TICK, 400, 1500),
    )
    # a full charger cell rests at half charge: its capacity is learnt; and a cold one
    @example("charger", 3840, 1.0, 0.99, 10000, -1_450_000, [(0, 250, 3840, 200, False)] * 20)
    @example("holder", 3800, 1.0, 0.0, -1, 0, [(-2000, 250, 3500, dc, True) for dc in (-300, 800)])
    # at rest again where it was last anchored: too close to learn, the anchor kept
    @example("charger", 3840, 1.0, 0.99, 5000, 0, [(0, 250, 3840, 200, False)] * 20)
    def one(
        cell: str, mv0: int, cap_x: float, rested: float, anchor: int, since: int, ticks: list[Any]
    ) -> None:
        cap, r20, rest = GAUGES[cell]
        g = gauge.Gauge(Int30(cap), Int30(r20), Int30(rest))
        g.cap_mah = Int30(max(1, int(cap * cap_x)))
        with fw.audit(), br:
            g.start(Int30(mv0))
            g.rest_ms = Int30(int(rest * rested))  # a rest well under way, or none
            g._anchor, g._since_uah = Int30(anchor), Int30(since)
            for ma, dt, mv, dc, full in ticks:
                g.count(Int30(ma) * dt, Int30(dt), Int30(mv), Int30(dc))
                if full:
                    g.full(Int30(4200), Int30(58), Int30(dc))
                assert 0 <= g.soc() <= 10000

    one()
    _report("gauge", br)
    _check_reach(br, {})


LOOPS = {  # charger.py's two loops: i_cc, i_term, r20, timeout, precharge timeout
    "usb": (2000, 58, board.CHARGER_R_MOHM, 240 * 60_000, 30 * 60_000),
    "holder": (2100, 180, board.HOLDER_R_MOHM, 10 * 60_000, 60_000),
}
CHARGE_TICK = st.tuples(
    st.sampled_from([True] * 30 + [False]),
    st.sampled_from([2999, 3000, 4100, 4200, 4250, 4251]) | st.integers(2500, 4400),  # mV
    st.sampled_from([0, 40, 2000]) | st.integers(-100, 3100),  # mA
    st.sampled_from([-1, 0, 99, 100, 449, 450, 600, 601, 250]) | st.integers(-400, 800),  # 0.1 C
    st.sampled_from([250, 250, 250, 1000, 2000]),
)


def test_charge_loops_never_need_a_bigint() -> None:
    """Both charge loops as charger.py sets them up, the cell from 2.5 to
    4.4 V, -40 to 80 C, a charge under way for up to three timeouts."""
    br = fw.Branches(charge_loop.ChargeLoop.step, charge_loop.zone)

    @settings(max_examples=150, deadline=None, derandomize=True)
    # by hand, branches the draws reach only now and then: warm, then back under
    # the warm edge by less than the hysteresis (it stays warm); then unplugged
    @example(
        "usb",
        0.0,
        charge_loop.CV,
        [(True, 4100, 500, 500, 250), (True, 4100, 500, 449, 250), (False, 4100, 0, 449, 250)],
    )
    # near the CV target with the voltage falling: the set-point follows the filtered one
    @example(
        "usb",
        0.0,
        charge_loop.CV,
        [(True, 4210, 500, 250, 250)] * 30 + [(True, 4195, 500, 250, 250)],
    )
    @given(
        st.sampled_from(sorted(LOOPS)),
        st.sampled_from([0.0, 0.999, 1.0, 2.999, 3.0]) | st.floats(0.0, 3.0),
        st.sampled_from([*range(7), charge_loop.DONE, charge_loop.CV]),
        _segments(CHARGE_TICK, 40, 600),
    )
    def one(name: str, elapsed: float, state: int, ticks: list[Any]) -> None:
        i_cc, i_term, r20, timeout, pre = LOOPS[name]
        loop = charge_loop.ChargeLoop(
            Int30(i_cc), Int30(i_term), Int30(r20), Int30(timeout), Int30(pre)
        )
        # a charge under way for a while, in any state: its timers near their ends
        loop.state = state
        loop._wall_ms = Int30(int(elapsed * timeout))
        loop._eq_ms = Int30(min(int(elapsed * timeout), timeout))
        with fw.audit(), br:
            for on, mv, ma, dc, dt in ticks:
                iset = loop.step(on, Int30(mv), Int30(ma), Int30(dc), Int30(dt))
                assert 0 <= iset <= i_cc

    one()
    _report("charge_loop", br)
    _check_reach(br, {})

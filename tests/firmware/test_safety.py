"""Safety faults injected into the simulated plant: each one must end with the
heater off within two control periods (20 ms) and the right fault code.
Runs on the simulator and, unchanged, on a board with the plant on board."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import simulate
from safety_doc import spec

from hil.rig.dut import Dut
from hil.simulator import runner
from hil.wire import series

PERIOD_S = 0.010
INJECT_S = 100.0013  # mid-session, just after a control step: the worst case for latency


pytestmark = pytest.mark.plant


# The ESP32's ADC at the corners of a unit's spread (sim/models/adc.py,
# docs/esp32.md): eFuse Vref at either end of 1000-1200 mV, with the worst
# residual offset and gain of its readings, both ways.
ADC_CORNERS = {
    "adc_nominal": "",
    "adc_reads_high": "adc_vref_mv = 1200.0\nadc_offset_uv = 20000.0\nadc_gain_ppm = 20000.0",
    "adc_reads_low": "adc_vref_mv = 1000.0\nadc_offset_uv = -20000.0\nadc_gain_ppm = -20000.0",
}


def _session_with(dut: Dut, event: str, adc: str = "adc_nominal") -> runner.RunResult:
    return simulate(
        dut,
        f"""
        [scenario]
        name = "fault"
        duration_s = 112.0
        [puffing]
        regime = "hci"
        [plant]
        {ADC_CORNERS[adc]}
        [[events]]
        t_s = {INJECT_S}
        {event}
        """,
    )


def _truth_times(res: runner.RunResult) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tr = res.truth
    t = tr["t_us"] / 1e6
    en = (tr["io"] & series.IO_HEATER_EN) > 0
    return t, en, tr["power_uw"] / 1e6, tr["blade_uc"] / 1e6


def _assert_cut(res: runner.RunResult, t_cond: float, fault: str, timed: bool = True) -> None:
    """Load switch off within two periods of the condition (timed; else
    after it); no power after. The cut's instant is the control step that
    made it (its telemetry frame, stamped at the step): the truth, sampled
    every 10 ms on its own grid, shows the switch off and no power from the
    next sample on."""
    c = res.series.cols
    steps = np.flatnonzero((c["t_s"] >= t_cond) & (c["heater_en"] == 0))
    assert len(steps), "the heater was never switched off"
    t_off = float(c["t_s"][steps[0]])
    assert t_off - t_cond <= 2 * PERIOD_S + 1e-9 or not timed, (
        f"cut {1000 * (t_off - t_cond):.1f} ms after the fault"
    )
    t, en, power, _ = _truth_times(res)
    after = t > t_off + 1e-9
    assert after.any() and not en[after].any(), "the load switch on after the cut"
    assert np.all(power[after] == 0.0), "heater power after the cut"
    state, code = int(c["state"][-1]), int(c["fault"][-1])
    assert (state, code) == (series.FAULT, series.FAULT_NAMES.index(fault)), (
        f"ended in state {series.STATE_NAMES[state]}, fault {series.FAULT_NAMES[code]}"
    )
    assert f"fault {fault}" in res.console


# the slow signals' limits as docs/safety.md gives them, and a margin past the
# thermistor's tolerance that the simulated ADC's noise (~0.1 K) cannot cross;
# the faults go further past, beyond the reading's error at the corners of the
# ESP32 ADC's spread (ADC_CORNERS: up to 2 K at 60 C), which the edge tests of
# tests/firmware/test_edges.py leave out
TOL_C = spec("heater_safety", "_NTC_TOL_C")
MARGIN_C = 1.0
FAULT_MARGIN_C = 3.0
CELL_HOT_C = spec("heater_safety", "CELL_MAX_C") + TOL_C
AMB_COLD_C = spec("heater_safety", "AMBIENT_MIN_C") - TOL_C
AMB_HOT_C = spec("heater_safety", "AMBIENT_MAX_C") + TOL_C

CASES = {
    "heater_open": ('action = "fault"\nkind = "heater_open"', "heater_open"),
    "heater_short": ('action = "fault"\nkind = "heater_short"', "heater_short"),
    # pinned at the 3.3 V rail: the ESP32's reading then sits at its top, 3060-3209 mV
    "adc_pinned": (
        'action = "fault"\nkind = "adc_stuck"\nchannel = "heater_v"\nuv = 3300000',
        "adc_implausible",
    ),
    "cell_ntc_open": (
        'action = "fault"\nkind = "adc_stuck"\nchannel = "cell_ntc"\nuv = 3300000',
        "adc_implausible",
    ),
    # at 0 V: the ESP32 reads its floor, 142 mV -- a hot thermistor's reading, were
    # the threshold below the floor
    "cell_ntc_shorted": (
        'action = "fault"\nkind = "adc_stuck"\nchannel = "cell_ntc"\nuv = 0',
        "adc_implausible",
    ),
    "ambient_ntc_shorted": (
        'action = "fault"\nkind = "adc_stuck"\nchannel = "ambient_ntc"\nuv = 0',
        "adc_implausible",
    ),
    "cell_empty": ('action = "cell_soc"\nsoc_pct = 0.0', "cell_undervolt"),
    "cell_hot": (f'action = "cell_temp"\ntemp_c = {CELL_HOT_C + FAULT_MARGIN_C}', "cell_overtemp"),
    "ambient_cold": (f'action = "ambient"\ntemp_c = {AMB_COLD_C - FAULT_MARGIN_C}', "ambient_cold"),
    "ambient_hot": (f'action = "ambient"\ntemp_c = {AMB_HOT_C + FAULT_MARGIN_C}', "ambient_hot"),
    "stick_pulled": ('action = "stick"\npresent = false', "stick_missing"),
}


@pytest.mark.parametrize("adc", list(ADC_CORNERS))
@pytest.mark.parametrize("case", list(CASES))
def test_fault_cuts_heater_within_two_periods(dut: Dut, case: str, adc: str) -> None:
    event, fault = CASES[case]
    res = _session_with(dut, event, adc)
    _assert_cut(res, INJECT_S, fault)


@pytest.mark.parametrize(
    "event",
    [
        f'action = "cell_temp"\ntemp_c = {CELL_HOT_C - MARGIN_C}',
        f'action = "ambient"\ntemp_c = {AMB_COLD_C + MARGIN_C}',
        f'action = "ambient"\ntemp_c = {AMB_HOT_C - MARGIN_C}',
    ],
    ids=["cell_warm", "ambient_cool", "ambient_warm"],
)
def test_just_inside_a_slow_limit_the_session_goes_on(dut: Dut, event: str) -> None:
    res = _session_with(dut, event)
    c = res.series.cols
    after = c["t_s"] > INJECT_S + 1
    assert after.any()
    assert np.isin(c["state"][after], series.HEATING_STATES).all(), res.console
    assert not [line for line in res.console if line.startswith("fault")], res.console


@pytest.mark.parametrize("adc", list(ADC_CORNERS))
def test_a_runaway_heater_is_cut_as_a_stuck_gate_before_the_trip(dut: Dut, adc: str) -> None:
    """A MOSFET shorted on mid-session: the PWM no longer controls the heater.
    The blade overshoots, the controller falls to its least duty, and the
    blade still warming there trips gate_stuck through the load switch --
    well before the over-temperature trip (345 C as read), which is its
    backstop (tests/firmware/test_edges.py)."""
    res = _session_with(dut, 'action = "fault"\nkind = "gate_stuck_on"', adc)
    t, _, _, blade = _truth_times(res)
    after = t >= INJECT_S
    sp = float(res.series.cols["setpoint_c"][res.series.cols["t_s"] < INJECT_S][-1])
    assert blade[after].max() > sp + 5.0, "the blade never ran away: the fault was not injected"
    _assert_cut(res, INJECT_S, "gate_stuck", timed=False)
    c = res.series.cols
    t_off = float(c["t_s"][np.flatnonzero((c["t_s"] >= INJECT_S) & (c["heater_en"] == 0))[0]])
    assert t_off - INJECT_S < 0.2, f"cut {t_off - INJECT_S:.3f} s after the gate stuck"
    assert blade[after].max() < sp + 20.0


def test_faults_are_logged_and_the_device_keeps_running(dut: Dut) -> None:
    res = _session_with(dut, 'action = "fault"\nkind = "heater_open"')
    c = res.series.cols
    after = c["t_s"] > INJECT_S + 1
    assert after.any()  # telemetry kept coming: the firmware is alive
    assert (c["state"][after] == series.FAULT).all()


def test_a_fault_is_in_the_log_with_its_time_and_reading(dut: Dut) -> None:
    """The fault log as the console reads it: each fault's name, the device's
    ticks_ms at the cut and the heater's millivolts then, oldest first; a
    cleared fault stays logged, and the device goes on."""

    def log() -> list[tuple[str, int, int]]:
        out = []
        for e in dut.command("faults").split()[1:]:
            name, _, rest = e.partition("@")
            ticks, detail = rest.split(":")
            out.append((name, int(ticks), int(detail)))
        return out

    dut.start()
    assert log() == []
    times = []
    for kind in ("heater_short", "heater_open"):
        dut.command("start")
        dut.wait_state("heating", timeout_s=30)
        dut.fault(kind)
        times.append(dut.now_s)
        dut.wait_state("fault", timeout_s=0.03)
        dut.fault("clear")
        dut.command("clear")
        dut.wait_state("sleep", timeout_s=0.1)
    entries = log()
    assert [e[0] for e in entries] == ["heater_short", "heater_open"]
    gap_ms = (entries[1][1] - entries[0][1]) % (1 << 30)  # ticks_ms wraps at 2**30
    assert abs(gap_ms / 1000 - (times[1] - times[0])) <= 0.03
    assert 0 <= entries[0][2] < 1000  # millivolts across a shorted heater: near nothing
    assert entries[1][2] > 3000  # an open heater: the cell's full voltage across it
    assert dut.command("status").startswith("OK state=sleep")


def _unit(
    dut: Dut, r0_ohm: float, calibrated: bool, extra: str = "", record: str = ""
) -> runner.RunResult:
    return simulate(
        dut,
        f"""
        [scenario]
        name = "unit"
        duration_s = 30.0
        [unit]
        r0_ohm = {r0_ohm}
        calibrated = {str(calibrated).lower()}
        {record}
        [puffing]
        regime = "hci"
        {extra}
        """,
    )


def test_a_record_that_overstates_r0_stops_the_session_cold(dut: Dut) -> None:
    """A unit 10 % under the nominal R0 with another heater's record (the
    nominal unit's) would run its blade far past the cap (the firmware reads
    it colder than it is); its first measurement reads colder than the air,
    and the session ends there with the blade still cold."""
    res = _unit(dut, 0.72, calibrated=True, record='record = "other_heater"\nrecord_r0_ohm = 0.80')
    assert "fault calibration" in res.console
    assert res.truth["blade_uc"].max() / 1e6 < 25.0


def test_a_calibrated_unit_at_either_end_of_the_tolerance_heats(dut: Dut) -> None:
    for r0 in (0.72, 0.88):
        res = _unit(dut, r0, calibrated=True)
        assert not [line for line in res.console if line.startswith("fault")], res.console
        assert res.truth["blade_uc"].max() / 1e6 > 300.0


def test_a_warm_blade_does_not_trip_the_calibration_check(dut: Dut) -> None:
    """A session started again right after one was stopped: the blade is
    still hot, which reads warmer than the air, never colder."""
    res = _unit(
        dut,
        0.80,
        calibrated=True,
        extra="""
        [[events]]
        t_s = 15.0
        action = "button"
        hold_s = 1.5
        [[events]]
        t_s = 18.0
        action = "button"
        hold_s = 1.5
        """,
    )
    assert not [line for line in res.console if line.startswith("fault")], res.console
    assert res.console.count("state preheat") == 2, res.console


# --- every heater-on state has a time bound ---------------------------------------------


def test_a_blade_that_never_reaches_its_band_stops_at_the_preheat_timeout(dut: Dut) -> None:
    """A blade losing five times its heat to the air cannot pass about 220 C
    on 10 W: preheat would heat forever. It stops 15 s after the profile's
    20 s preheat, to the period."""
    res = simulate(
        dut,
        """
        [scenario]
        name = "cold blade"
        duration_s = 45.0
        [plant]
        g_blade_amb_w_per_k = 0.035
        [puffing]
        regime = "none"
        """,
    )
    t, en, _, _ = _truth_times(res)
    on = t[en]
    assert abs((on[-1] - on[0]) - 35.0) <= 2 * PERIOD_S, (on[0], on[-1])
    assert res.truth["blade_uc"].max() / 1e6 < 300.0  # it never got to the 320 C band
    assert "fault preheat_timeout" in res.console


def test_a_control_step_that_stops_is_found_by_the_main_loop(dut: Dut) -> None:
    """The control step's timer stops while the heater is on: the main loop
    sees no step in one of its periods and cuts the heater (control_overrun)
    within two of them, then starts the step again: a click clears the fault
    and the next session heats."""
    inject = 20.0013
    res = simulate(
        dut,
        f"""
        [scenario]
        name = "stopped step"
        duration_s = 40.0
        [puffing]
        regime = "hci"
        [[events]]
        t_s = {inject}
        action = "fault"
        kind = "timer_stop"
        [[events]]
        t_s = 24.0
        action = "button"
        hold_s = 0.2
        [[events]]
        t_s = 26.0
        action = "button"
        hold_s = 1.5
        """,
    )
    t, en, power, _ = _truth_times(res)
    off = np.flatnonzero((t >= inject) & ~en)
    assert t[off[0]] - inject <= 2 * 0.050 + PERIOD_S
    assert "fault control_overrun" in res.console
    assert en[t > 28.0].any() and power[t > 28.0].max() > 1.0  # heating again


def test_a_control_step_that_stops_while_cooling_is_started_again(dut: Dut) -> None:
    """Stopped while the heater is off (cooling, stepping every 10 ms): no
    fault to cut, but the step starts again -- cooling ends and the next
    start is served."""
    res = simulate(
        dut,
        """
        [scenario]
        name = "stopped while cooling"
        duration_s = 60.0
        [puffing]
        regime = "none"
        [[events]]
        t_s = 10.0
        action = "button"
        hold_s = 1.5
        [[events]]
        t_s = 15.0013
        action = "fault"
        kind = "timer_stop"
        [[events]]
        t_s = 50.0
        action = "button"
        hold_s = 1.5
        """,
    )
    assert "fault control_overrun" not in res.console
    assert res.console.count("state preheat") == 2, res.console
    assert "state sleep" in res.console

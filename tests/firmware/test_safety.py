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


def _session_with(dut: Dut, event: str) -> runner.RunResult:
    return simulate(
        dut,
        f"""
        [scenario]
        name = "fault"
        duration_s = 112.0
        [puffing]
        regime = "hci"
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


def _assert_cut(res: runner.RunResult, t_cond: float, fault: str) -> None:
    """Load switch off within two periods of the condition; no power after."""
    t, en, power, _ = _truth_times(res)
    off = np.flatnonzero((t >= t_cond) & ~en)
    assert len(off), "the heater was never switched off"
    t_off = t[off[0]]
    assert t_off - t_cond <= 2 * PERIOD_S + 1e-9, (
        f"cut {1000 * (t_off - t_cond):.0f} ms after the fault"
    )
    assert np.all(power[t > t_off + 1e-9] == 0.0), "heater power after the cut"
    c = res.series.cols
    state, code = int(c["state"][-1]), int(c["fault"][-1])
    assert (state, code) == (series.FAULT, series.FAULT_NAMES.index(fault)), (
        f"ended in state {series.STATE_NAMES[state]}, fault {series.FAULT_NAMES[code]}"
    )
    assert f"fault {fault}" in res.console


# the slow signals' limits as docs/safety.md gives them, and a margin past the
# thermistor's tolerance that the simulated ADC's noise (~0.1 K) cannot cross
TOL_C = spec("heater_safety", "_NTC_TOL_C")
MARGIN_C = 1.0
CELL_HOT_C = spec("heater_safety", "CELL_MAX_C") + TOL_C
AMB_COLD_C = spec("heater_safety", "AMBIENT_MIN_C") - TOL_C
AMB_HOT_C = spec("heater_safety", "AMBIENT_MAX_C") + TOL_C

CASES = {
    "heater_open": ('action = "fault"\nkind = "heater_open"', "heater_open"),
    "heater_short": ('action = "fault"\nkind = "heater_short"', "heater_short"),
    "adc_pinned": (
        'action = "fault"\nkind = "adc_stuck"\nchannel = "heater_v"\nuv = 3100000',
        "adc_implausible",
    ),
    "cell_ntc_open": (
        'action = "fault"\nkind = "adc_stuck"\nchannel = "cell_ntc"\nuv = 3100000',
        "adc_implausible",
    ),
    "cell_empty": ('action = "cell_soc"\nsoc_pct = 0.0', "cell_undervolt"),
    "cell_hot": (f'action = "cell_temp"\ntemp_c = {CELL_HOT_C + MARGIN_C}', "cell_overtemp"),
    "ambient_cold": (f'action = "ambient"\ntemp_c = {AMB_COLD_C - MARGIN_C}', "ambient_cold"),
    "ambient_hot": (f'action = "ambient"\ntemp_c = {AMB_HOT_C + MARGIN_C}', "ambient_hot"),
    "stick_pulled": ('action = "stick"\npresent = false', "stick_missing"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fault_cuts_heater_within_two_periods(dut: Dut, case: str) -> None:
    event, fault = CASES[case]
    res = _session_with(dut, event)
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


def test_over_temperature_cuts_a_runaway_heater(dut: Dut) -> None:
    """A MOSFET shorted on: the PWM no longer controls the heater, the
    over-temperature trip must cut it through the load switch."""
    res = _session_with(dut, 'action = "fault"\nkind = "gate_stuck_on"')
    t, _, _, blade = _truth_times(res)
    over = np.flatnonzero((t >= INJECT_S) & (blade >= 345.0))
    assert len(over), "the blade never overheated: the fault was not injected"
    _assert_cut(res, t[over[0]], "over_temp")
    assert blade.max() < 350.0


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


def _unit(dut: Dut, r0_ohm: float, calibrated: bool, extra: str = "") -> runner.RunResult:
    return simulate(
        dut,
        f"""
        [scenario]
        name = "unit"
        duration_s = 30.0
        [unit]
        r0_ohm = {r0_ohm}
        calibrated = {str(calibrated).lower()}
        [puffing]
        regime = "hci"
        {extra}
        """,
    )


def test_a_calibration_that_overstates_r0_stops_the_session_cold(dut: Dut) -> None:
    """A unit 10 % under the nominal R0 with no calibration record of its own
    would run its blade far past the cap (the firmware reads it colder than
    it is); its first measurement reads colder than the air, and the session
    ends there with the blade still cold."""
    res = _unit(dut, 0.72, calibrated=False)
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

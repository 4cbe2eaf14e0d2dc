"""The firmware on the ESP32 port as the simulator emulates it (docs/esp32.md):
the ADC's floor and a unit's spread, flash writes that hold the soft timers
back, a chip without ADC calibration. Runs on the simulator and, unchanged,
on a board with the plant on board."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from conftest import open_pairing, parse, simulate

from hil.ble.client import BleClient
from hil.qa import timing
from hil.rig.dut import Dut, idle_scenario
from hil.wire import series

pytestmark = pytest.mark.plant

PERIOD_S = 0.010
HAPTICS = "7e1a0005-5c1d-4b8e-9f2a-6b3c4d5e6f70"
# the flash's datasheet maximums (docs/reference.md): the worst stall a write can bring
WORST_FLASH = {"flash_prog_us": 3000.0, "flash_erase_us": 400000.0}
# the corners of a unit's ADC spread (tests/firmware/test_safety.py)
READS_HIGH = "adc_vref_mv = 1200.0\nadc_offset_uv = 20000.0\nadc_gain_ppm = 20000.0"
READS_LOW = "adc_vref_mv = 1000.0\nadc_offset_uv = -20000.0\nadc_gain_ppm = -20000.0"


def _paired(dut: Dut) -> BleClient:
    phone = dut.ble().phone()
    phone.connect()
    open_pairing(dut)
    phone.pair()
    dut.expect_event(r"^ble bonded$", timeout_s=0.5)
    return phone


def _gaps(t: np.ndarray) -> np.ndarray:
    return np.diff(t) if len(t) > 1 else np.zeros(1)


def test_a_setting_written_over_ble_mid_session_waits_for_the_heater_off(
    dut: Dut, record_property: Callable[[str, object], None]
) -> None:
    """A phone changes the haptics in mid-session, on a flash at its
    datasheet's worst times (a sector erase 400 ms): the record waits in RAM,
    every control step -- and its safety checks -- comes on time, the true
    blade stays under the cap. Written once the session is over, the erase
    holds the step back (cooling, heater off), as the ESP32 would."""
    if dut.target.capabilities().radio:
        pytest.skip("a real radio: the phone here is the emulated one's")
    dut.start(replace(idle_scenario(), plant=dict(WORST_FLASH)))
    phone = _paired(dut)
    dut.press(1.5)
    dut.wait_state("heating", timeout_s=40.0)
    dut.advance(3.0)
    phone.write(HAPTICS, b"\x01\x03\x32")
    assert phone.read(HAPTICS) == b"\x01\x03\x32"
    dut.advance(5.0)
    dut.command("stop")
    dut.wait_state("cooling", timeout_s=1.0)
    dut.advance(2.0)
    tel = dut.telemetry()
    c = tel.cols
    t = c["t_s"]
    on = np.isin(c["state"], series.HEATING_STATES)
    heating_gap = float(_gaps(t[on]).max())
    after = t > t[on][-1]
    cooling_gap = float(_gaps(t[after]).max())
    tm = dut.control_timing()
    heating = series.TelemetrySeries(meta={}, cols={k: v[on] for k, v in c.items()})
    tm_on = timing.from_record(heating, {})
    tr = series.truth_array(dut.live.link.truth) if dut.live else None
    blade_max = float(tr["blade_uc"].max()) / 1e6 if tr is not None else float("nan")
    for name, value in (
        ("deadline_misses_heating", tm_on.deadline_misses),
        ("worst_step_delay_heating_ms", round(tm_on.worst_lateness_us / 1000, 1)),
        ("deadline_misses_run", tm.deadline_misses),
        ("worst_step_delay_run_ms", round(tm.worst_lateness_us / 1000, 1)),
        ("longest_step_gap_heating_ms", round(heating_gap * 1000, 1)),
        ("longest_step_gap_after_ms", round(cooling_gap * 1000, 1)),
        ("true_blade_max_c", round(blade_max, 2)),
    ):
        record_property(name, value)
    print(f"\nflash at its worst, a setting written over BLE mid-session:\n  heating: "
          f"{tm_on.summary()}\n  whole run (pairing and the write after the session "
          f"included): {tm.summary()}\n  longest gap between control steps: heating "
          f"{heating_gap * 1000:.1f} ms, after the session {cooling_gap * 1000:.1f} ms; "
          f"true blade max {blade_max:.2f} C")  # fmt: skip
    assert tm_on.deadline_misses == 0
    assert heating_gap <= 2 * PERIOD_S + 1e-6  # no safety check later than 2 periods
    assert blade_max < 350.0
    assert cooling_gap >= WORST_FLASH["flash_erase_us"] / 1e6  # written, after the session


@pytest.mark.parametrize("adc", ["nominal", "reads_high", "reads_low"])
@pytest.mark.parametrize("calibrated", [True, False])
def test_the_holder_gauge_holds_docked_and_idle_for_an_hour(
    dut: Dut, adc: str, calibrated: bool
) -> None:
    """Docked, not charging (the charger too low to give), nothing drawn: the
    holder's charge sense reads the ADC's floor (142 mV, 142 mA), which must
    count as no current -- with the unit's ADC record or without."""
    plant = {"nominal": "", "reads_high": READS_HIGH, "reads_low": READS_LOW}[adc]
    res = simulate(
        dut,
        f"""
        [scenario]
        name = "docked_idle"
        duration_s = 3600.0
        [holder]
        soc_pct = 50
        docked = true
        [charger]
        soc_pct = 2
        [unit]
        calibrated = {str(calibrated).lower()}
        [puffing]
        regime = "none"
        [start]
        session = false
        [record]
        sample_s = 1.0
        telemetry = false
        [plant]
        {plant}
        """,
    )
    assert res.power is not None
    p = res.power.cols
    assert float(np.abs(p["holder_a"][10:]).max()) == 0.0  # no phantom current
    # after the gauge's rest correction (2 min at rest: SoC from the OCV) the
    # estimate does not move; on a calibrated unit it is the true SoC
    err = (p["holder_soc_pct"] - p["holder_soc_true_pct"])[p["t_s"] > 130.0]
    assert float(err.max() - err.min()) <= 0.5
    if calibrated:
        assert float(np.abs(err).max()) <= 1.0


def test_a_chip_without_adc_calibration_faults_at_boot_and_does_not_reset(dut: Dut) -> None:
    """No eFuse calibration: read_uv() raises OSError at every call. The
    firmware checks the ADC before it arms the watchdog, reports the fault
    and keeps serving with the heater off -- no reset loop."""
    res = simulate(
        dut,
        """
        [scenario]
        name = "no_adc_cal"
        duration_s = 20.0
        [puffing]
        regime = "hci"
        [plant]
        adc_cal = 0.0
        """,
    )
    assert res.info["reason"] == "end_of_scenario" and res.info["boots"] == "1"
    assert "fault adc_implausible" in res.console
    assert any(line.startswith("adc check failed: ") and "-258" in line for line in res.console)
    assert float(res.truth["power_uw"].max()) == 0.0
    c = res.series.cols
    assert (c["state"][c["t_s"] > 1.0] == series.FAULT).all()


def test_adc_console_shows_and_measures_the_units_zeros(dut: Dut) -> None:
    """End of line: `adc zero` measures the senses at rest (heater off, nothing
    charging), `adc cal` stores the station's offset and gain; `adc` shows them."""
    dut.start(replace(idle_scenario(), plant={"adc_offset_uv": 10000.0}))
    first = dut.command("adc")
    assert "floor_uv=142000" in first and "stored=1" in first  # a calibrated unit's record
    z = dict(w.split("=") for w in dut.command("adc zero").split()[1:])
    assert int(z["floor_uv"]) == 142000  # the heater off: its current sense at the floor
    assert abs(int(z["chg_i_zero_uv"]) - 1560000) <= 3000  # mid-scale 1.55 V, read 10 mV high
    again = dut.command("adc cal 9000 -1000")
    assert "offset_uv=9000 gain_ppm=-1000 stored=1" in again
    assert dut.command("adc cal 900000 0", check=False).startswith("ERR")
    assert dut.command("adc zero extra", check=False).startswith("ERR 2")


def test_the_worst_adc_corner_still_heats_within_the_band() -> None:
    """A session on either corner of the ADC spread, the unit calibrated at end
    of line: the blade reaches the set-point and stays under the cap."""
    from conftest import sim_scenario

    for plant in (READS_HIGH, READS_LOW):
        res = sim_scenario(
            f"""
            [scenario]
            name = "corner"
            duration_s = 60.0
            [puffing]
            regime = "hci"
            [plant]
            {plant}
            """
        )
        assert not [line for line in res.console if line.startswith("fault")], res.console
        blade = res.truth["blade_uc"] / 1e6
        assert 300.0 < float(blade.max()) < 340.0


def test_parse_keeps_negative_adc_residuals() -> None:
    sc = parse("[scenario]\nname='x'\nduration_s=10.0\n[plant]\nadc_offset_uv = -5000.0\n")
    assert sc.plant["adc_offset_uv"] == -5000.0

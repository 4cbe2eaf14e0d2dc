"""A calibration record that does not describe the unit never lets the blade
past 350 C (docs/safety.md): a record that is missing, damaged, stale or
another controller's gives way to the fail-safe end of the spec, with a
fault code and the red LED; one that passes those checks but describes
another heater is caught by physics it does not enter into -- the cold
blade against the air, the heat a cold start's first 25 K take.
Runs on the simulator and, unchanged, on a board with the plant on board."""

from __future__ import annotations

import pytest
from conftest import sim_scenario, simulate

from hil.rig.dut import Dut
from hil.simulator import runner
from hil.wire import contract, series

pytestmark = pytest.mark.plant

CAP_C = 350.0
IO_LED_FAULT = contract.sim("plant").integer("IO_LED_FAULT")
# a unit of R0 0.80 ohm, TCR 0.0030 /K with another heater's record of the same R0
OTHER_HEATER = 'r0_ohm = 0.80\ntcr_per_k = 0.0030\nrecord = "other_heater"\nrecord_r0_ohm = 0.80\n'


def _run(
    dut: Dut, unit: str, *, profile: str = "intense", ambient: float = 20.0, s: float = 40.0
) -> runner.RunResult:
    return simulate(
        dut,
        f"""
        [scenario]
        name = "calibration"
        profile = "{profile}"
        duration_s = {s}
        [ambient]
        temp_c = {ambient}
        [unit]
        {unit}
        [puffing]
        regime = "hci"
        """,
    )


def _peak_c(res: runner.RunResult) -> float:
    return float(res.truth["blade_uc"].max()) / 1e6


def _faults(res: runner.RunResult) -> list[str]:
    return [line for line in res.console if line.startswith("fault ")]


@pytest.mark.parametrize("record", ["missing", "damaged", "stale", "other_unit"])
def test_a_record_not_this_units_gives_the_fail_safe_values(dut: Dut, record: str) -> None:
    """The unit that ran to 371 C on the nominal values when it had no record
    (R0 0.80 ohm, TCR 0.0030 /K: the lowest TCR reads coldest)."""
    res = _run(dut, f'r0_ohm = 0.80\ntcr_per_k = 0.0030\nrecord = "{record}"')
    why = "missing" if record == "missing" else record
    assert f"calib fail_safe {why}" in res.console
    boot = next(line for line in res.console if line.startswith("boot heatrig"))
    assert "calibrated=0 r0_uohm=720000 tcr_ppm=3000" in boot
    assert _peak_c(res) < 300.0  # the fail-safe values read hot on every unit: it runs cool
    assert not _faults(res)  # and it still heats
    # the red LED blinks slowly while nothing else shows on it (before the session)
    idle = res.truth[res.truth["t_us"] < 1_900_000]
    red = (idle["io"] & IO_LED_FAULT) > 0
    assert red.any() and not red.all()


@pytest.mark.parametrize(
    ("r0", "tcr"), [(0.72, 0.0030), (0.72, 0.0038), (0.88, 0.0030), (0.88, 0.0038)]
)
@pytest.mark.parametrize("ambient", [0.0, 50.0])
def test_the_fail_safe_values_keep_every_unit_in_spec_under_the_cap(
    dut: Dut, r0: float, tcr: float, ambient: float
) -> None:
    res = _run(
        dut, f"r0_ohm = {r0}\ntcr_per_k = {tcr}\ncalibrated = false", ambient=ambient, s=30.0
    )
    if "refused holder_low" in res.console:  # the cold corner: the gate's business
        assert ambient == 0.0
        return
    assert _peak_c(res) < CAP_C
    assert _peak_c(res) > 120.0  # it heats: a cooler session, not none


def test_another_heaters_record_with_a_larger_tcr_is_read_down(dut: Dut) -> None:
    """Its R0 matches (the cold check passes), its dR/dT is 15 % too large:
    uncorrected, the intense preheat's 325 C reading would be 20 + 305 x 1.15
    = 371 C of blade. The cold start's heat says so, and the reading is
    corrected: no fault, the blade stays under the cap."""
    res = _run(
        dut,
        OTHER_HEATER + "record_tcr_per_k = 0.00345",
    )
    assert not _faults(res)
    assert 300.0 < _peak_c(res) < CAP_C


def test_another_heaters_record_far_off_trips_calibration(dut: Dut) -> None:
    """25 % too large, past the check's 20 %: the record is another heater's."""
    res = _run(
        dut,
        OTHER_HEATER + "record_tcr_per_k = 0.00375",
    )
    assert _faults(res) == ["fault calibration"]
    assert _peak_c(res) < 100.0  # found within the first 25 K of the rise


@pytest.mark.parametrize(("record_r0", "trips"), [(0.812, False), (0.824, True)])
def test_a_record_overstating_r0_is_caught_cold(dut: Dut, record_r0: float, trips: bool) -> None:
    """R0 1.5 % high reads the cold blade 4 K under the air: within the check's
    6 K; 3 % high reads it 9 K under: the session stops at once."""
    res = _run(
        dut,
        f'r0_ohm = 0.80\ntcr_per_k = 0.0035\nrecord = "other_heater"\nrecord_r0_ohm = {record_r0}',
    )
    if trips:
        assert _faults(res) == ["fault calibration"]
        assert _peak_c(res) < 25.0
    else:
        assert not _faults(res)
        assert _peak_c(res) < CAP_C


def test_a_warm_start_with_nothing_checked_this_boot_runs_fail_safe() -> None:
    """A session started on a hot blade cannot measure its heat capacity; if
    no cold start this boot has, the reading takes the largest error any
    record in spec can have: the blade runs far under its set-point (or the
    over-temperature trip, derated likewise, stops it)."""
    res = sim_scenario(  # a reboot from the plant's snapshot: the simulator itself
        """
        [scenario]
        name = "warm start"
        duration_s = 40.0
        [puffing]
        regime = "none"
        [[events]]
        t_s = 10.0
        action = "power_cut"
        [[events]]
        t_s = 12.0
        action = "button"
        hold_s = 1.5
        """,
    )
    assert len(res.reboots) == 1
    t = res.truth["t_us"] / 1e6
    blade = res.truth["blade_uc"] / 1e6
    after = (t > 20.0) & ((res.truth["io"] & series.IO_HEATER_EN) > 0)
    assert not after.any() or blade[after].max() < 260.0
    assert blade.max() < CAP_C

"""A full heating session: the numbers the kit promises. Runs on the simulator
and, unchanged, on a board (--target serial)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import builtin, kpis, simulate

from hil.rig.dut import Dut
from hil.simulator import runner
from hil.wire import series


def test_hci_reaches_setpoint_quickly_without_overshoot(hci: runner.RunResult) -> None:
    k = kpis(hci)
    assert k["time_to_setpoint_s"] is not None and k["time_to_setpoint_s"] <= 10.0
    assert k["overshoot_pct"] <= 2.0


def test_hci_tracks_setpoint_between_puffs(hci: runner.RunResult) -> None:
    assert kpis(hci)["rms_error_c"] <= 2.0


def test_hci_detects_every_puff_and_no_phantom(hci: runner.RunResult) -> None:
    k = kpis(hci)
    assert k["puffs_taken"] == 12
    assert k["puffs_detected"] == 12
    assert k["phantom_puffs"] == 0
    assert k["missed_puffs"] == 0


def test_hci_ends_at_six_minutes(hci: runner.RunResult) -> None:
    k = kpis(hci)
    assert k["end_reason"] == "time_limit"
    assert abs(k["end_time_s"] - 360.0) <= 0.010  # one control period
    assert k["fault"] == "none"


def test_session_end_at_14th_puff_when_puffs_come_every_20_s(dut: Dut) -> None:
    res = builtin(dut, "hci_20s")
    k = kpis(res)
    assert k["end_reason"] == "puff_limit"
    assert k["puffs_detected"] == 14
    assert k["puffs_taken"] == 14
    # the session ends as the 14th puff ends, long before 6:00
    fourteenth = res.scenario.puffs[13]
    end_abs = k["end_time_s"] + res.scenario.heating_start_s
    assert fourteenth.t_s < end_abs < fourteenth.t_s + fourteenth.duration_s + 1.0


def test_end_warning_comes_30_s_before_the_time_limit(hci: runner.RunResult) -> None:
    c = hci.series.cols
    t, state = c["t_s"], c["state"]
    start = t[np.flatnonzero(state == 1)[0]]
    warn = t[np.flatnonzero(state == 3)[0]]
    assert abs((warn - start) - 330.0) <= 0.010


def test_end_warning_comes_at_the_last_two_puffs(dut: Dut) -> None:
    c = builtin(dut, "hci_20s").series.cols
    first_warning = np.flatnonzero(c["state"] == 3)[0]
    assert c["puffs"][first_warning] == 12


def test_iso3308_puffs_all_detected(dut: Dut) -> None:
    k = kpis(builtin(dut, "iso3308"))
    assert k["puffs_taken"] == 6
    assert k["puffs_detected"] == 6
    assert k["phantom_puffs"] == 0


def test_no_heating_without_a_stick(dut: Dut) -> None:
    res = builtin(dut, "no_stick")
    c = res.series.cols
    assert not np.isin(c["state"], series.HEATING_STATES).any()
    assert np.nanmax(c["power_true_w"]) == 0.0
    assert "refused stick_missing" in res.console
    assert c["vibration"].any()  # the refusal is signalled


def test_no_heating_without_a_deliberate_hold(dut: Dut) -> None:
    res = simulate(
        dut,
        """
        [scenario]
        name = "short press"
        duration_s = 10.0
        [start]
        button_at_s = 1.0
        hold_s = 0.5
        [puffing]
        regime = "none"
        """,
    )
    assert not np.isin(res.series.cols["state"], series.HEATING_STATES).any()


def test_same_scenario_and_seed_give_identical_telemetry(dut: Dut, hci: runner.RunResult) -> None:
    again = dut.run(hci.scenario, fresh=True)
    assert again.series.to_csv() == hci.series.to_csv()


def test_another_seed_changes_the_noise_not_the_outcome(dut: Dut, hci: runner.RunResult) -> None:
    other = builtin(dut, "hci", {"scenario.seed": 7})
    assert other.series.to_csv() != hci.series.to_csv()
    assert kpis(other)["puffs_detected"] == 12


def test_record_carries_the_run_metadata(hci: runner.RunResult) -> None:
    text = hci.series.to_csv()
    header = [line for line in text.splitlines()[:20] if line.startswith("#")]
    for key in ("firmware_version", "target: ", "scenario: hci", "seed: 1"):
        assert any(key in line for line in header), key


# --- every puff counts, from the start of heating -----------------------------------------


def _puffing(
    dut: Dut, puffs: str, ambient: float = 20.0, profile: str = "standard"
) -> runner.RunResult:
    return simulate(
        dut,
        f"""
        [scenario]
        name = "puffs"
        profile = "{profile}"
        duration_s = 400.0
        [ambient]
        temp_c = {ambient}
        [puffing]
        {puffs}
        """,
    )


def test_a_session_whose_first_puffs_fall_in_preheat_ends_at_its_14th(dut: Dut) -> None:
    """HCI puffs every 20 s from 4 s into the preheat: the 15th puff, which an
    uncounted preheat puff once let through, finds the heater off."""
    res = _puffing(dut, 'regime = "hci"\nfirst_s = 6.0\ninterval_s = 20.0\ncount = 16')
    k = kpis(res)
    assert (k["end_reason"], k["puffs_taken"], k["puffs_detected"]) == ("puff_limit", 14, 14)
    assert (k["missed_puffs"], k["phantom_puffs"]) == (0, 0)
    t = res.truth["t_us"] / 1e6
    en = (res.truth["io"] & series.IO_HEATER_EN) > 0
    fifteenth = res.scenario.puffs[14]
    assert not en[(t >= fifteenth.t_s) & (t < fifteenth.t_s + fifteenth.duration_s)].any()
    assert "session puffs=14" in res.console


def test_a_puff_drawn_from_the_first_moment_of_heating_counts(dut: Dut) -> None:
    """A square draw that starts as heating does is in the detector's
    reference when counting begins: it counts when it ends."""
    puffs = 'regime = "custom"\n' + "".join(
        f'[[puffing.puffs]]\nt_s = {t}\nvolume_ml = 70\nduration_s = 1.5\nshape = "square"\n'
        for t in (2.0, 30.0, 60.0)
    )
    k = kpis(_puffing(dut, puffs))
    assert (k["puffs_taken"], k["puffs_detected"], k["missed_puffs"], k["phantom_puffs"]) == (
        3,
        3,
        0,
        0,
    )


@pytest.mark.parametrize("ambient", [0.0, 50.0])
@pytest.mark.parametrize("profile", ["standard", "intense"])
def test_no_phantom_puff_from_the_preheat_ramp_set_point_steps_or_the_air(
    dut: Dut, ambient: float, profile: str
) -> None:
    """A whole session drawn on by nobody, in the coldest and the hottest air
    the kit accepts: preheat ramp, the profile's set-point steps, the cell
    sagging, and no puff counted."""
    res = _puffing(dut, 'regime = "none"', ambient=ambient, profile=profile)
    if "refused holder_low" in res.console:  # the gate's, in the cold: nothing heated
        assert ambient == 0.0 and profile == "intense"
        return
    k = kpis(res)
    assert k["end_reason"] == "time_limit"
    assert k["puffs_detected"] == 0

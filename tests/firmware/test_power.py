"""The pocket charger and the holder's power, on the simulator: charging from
USB, holder recharges, fuel gauges against the model's true state of charge,
sessions refused up front, indications and gestures."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import sim_builtin, sim_scenario

from hil.qa import power_kpi
from hil.simulator import runner

CAP_MAH = 2900.0  # the charger cell (sim/models/params.py)


@pytest.fixture
def day(multi_session_run: runner.RunResult) -> runner.RunResult:
    """multi_session: a full charger, sessions every 12 min until it is empty."""
    return multi_session_run


@pytest.fixture
def usb(usb_charge_run: runner.RunResult) -> runner.RunResult:
    return usb_charge_run


# --- a day of sessions on one charge of the pocket charger -------------------------------


def test_at_least_20_complete_sessions_on_one_charge(day: runner.RunResult) -> None:
    assert day.power is not None
    sessions = day.power.sessions()
    complete = [s for s in sessions if s.complete]
    assert len(complete) >= 20, [s.end_reason for s in sessions]


def test_no_session_is_cut_off_the_last_one_is_refused_up_front(day: runner.RunResult) -> None:
    assert day.power is not None
    sessions = day.power.sessions()
    assert all(s.complete for s in sessions), [(s.end_reason, s.fault) for s in sessions]
    refusals = day.power.refusals()
    assert refusals, "the charger was never emptied: no session was refused"
    assert {r for _, r in refusals} == {"holder_low"}
    # once refused, the holder had no session left in it: every later start refused too
    assert sessions[-1].start_s < refusals[0][0]
    assert all(s.holder_soc_end_pct > 1.0 for s in sessions)  # none ran the cell flat


def test_holder_recharges_take_at_most_4_min_30(day: runner.RunResult) -> None:
    assert day.power is not None
    done = [c for c in day.power.charges("holder") if c.outcome == "done"]
    assert len(done) >= 20
    assert max(c.duration_s for c in done) <= 270.0
    assert min(c.soc_end_pct for c in done) >= 95.0  # "full": enough for the next session


def test_charger_gauge_within_3_points_over_a_full_discharge(day: runner.RunResult) -> None:
    assert day.power is not None
    soc = day.power.cols["charger_soc_true_pct"]
    assert soc[0] > 99.0 and np.nanmin(soc) < 10.0  # full to empty
    err = np.abs(day.power.gauge_error_pct("charger"))
    assert np.nanmax(err) <= 3.0


def test_a_day_runs_six_hours_of_device_time(day: runner.RunResult) -> None:
    """(Its wall time, what a user waits for, is a benchmark:
    benchmarks/test_user_waits.py.)"""
    assert day.sim_s >= 6 * 3600


def test_an_aged_charger_cell_keeps_the_gauge_within_5_points() -> None:
    res = sim_builtin("multi_session_aged")
    assert res.power is not None
    err = np.abs(res.power.gauge_error_pct("charger"))
    assert np.nanmax(err) <= 5.0
    sessions = res.power.sessions()
    assert all(s.complete for s in sessions)
    assert 15 <= len(sessions) < 22  # a fifth of the capacity gone


# --- USB charging of the charger cell ------------------------------------------------------


def test_usb_charge_from_empty_to_full_within_2_hours(usb: runner.RunResult) -> None:
    assert usb.power is not None
    (charge,) = usb.power.charges("usb")
    assert charge.outcome == "done"
    assert charge.duration_s <= 120 * 60
    assert charge.soc_start_pct < 1.0 and charge.soc_end_pct > 99.0


def test_usb_charge_terminates_at_a_fiftieth_of_the_capacity(usb: runner.RunResult) -> None:
    assert usb.power is not None
    (charge,) = usb.power.charges("usb")
    tr = usb.power.truth
    t = tr["t_us"] / 1e6
    last = (t > charge.end_s - 10.0) & (t < charge.end_s - 1.0)
    i_term_ma = float(np.mean(tr["chg_ua"][last])) / 1e3
    assert 0.015 * CAP_MAH <= i_term_ma <= 0.021 * CAP_MAH, f"{i_term_ma:.1f} mA at termination"


def test_usb_charge_holds_4_2_v(usb: runner.RunResult) -> None:
    assert usb.power is not None
    v = usb.power.truth["chg_uv"] / 1e6
    assert 4.15 <= v.max() <= 4.25


def test_no_charging_below_0_c() -> None:
    res = sim_builtin("usb_charge_cold")
    assert res.power is not None
    assert res.power.truth["chg_ua"].max() <= 0  # the electronics' draw only
    assert "charge usb wait" in res.console


def test_a_fifth_of_the_current_from_0_to_10_c() -> None:
    res = sim_builtin("usb_charge_cool")
    assert res.power is not None
    i_ma = res.power.truth["chg_ua"] / 1e3
    charging = i_ma > 50
    assert charging.any()
    assert 380 <= np.median(i_ma[charging]) <= 420  # 20 % of 2 A
    assert i_ma.max() <= 420


def test_warm_charging_stops_at_4_0_v() -> None:
    res = sim_builtin("usb_charge_hot")
    assert res.power is not None
    v = res.power.truth["chg_uv"] / 1e6
    assert v.max() <= 4.05
    (charge,) = res.power.charges("usb")
    assert charge.outcome == "done"
    assert 60.0 <= charge.soc_end_pct <= 85.0  # the OCV of 4.0 V: full is out of reach when warm


def test_unplugged_mid_charge_then_plugged_again() -> None:
    res = sim_scenario(
        """
        [scenario]
        name = "replug"
        duration_s = 900.0
        [charger]
        soc_pct = 40
        [start]
        session = false
        [record]
        sample_s = 1.0
        telemetry = false
        [[events]]
        t_s = 10.0
        action = "usb"
        plugged = true
        [[events]]
        t_s = 300.0
        action = "usb"
        plugged = false
        [[events]]
        t_s = 600.0
        action = "usb"
        plugged = true
        """
    )
    assert res.power is not None
    charges = res.power.charges("usb")
    assert [c.outcome for c in charges] == ["stopped", "running"]
    t = res.power.truth["t_us"] / 1e6
    i = res.power.truth["chg_ua"]
    assert (i[(t > 310) & (t < 590)] <= 0).all()  # nothing flows without a source


# --- sessions the holder cannot finish are refused up front ----------------------------------


def _refused(res: runner.RunResult) -> bool:
    return "refused holder_low" in res.console and not (res.truth["power_uw"] > 0).any()


def test_cold_low_unit_at_20_percent_is_refused_not_cut_off() -> None:
    """0 C, a low-R0 unit, a fifth of a charge: without the gate the holder
    trips under-voltage about 50 s in."""
    res = sim_scenario(
        """
        [scenario]
        name = "cold low"
        [ambient]
        temp_c = 0.0
        [holder]
        soc_pct = 20
        [unit]
        r0_ohm = 0.72
        """
    )
    assert _refused(res)
    io = res.truth["io"]
    assert (io & 0x04).any()  # the refusal is felt (a long vibration) ...
    assert (io & 0x10).any()  # ... and seen (the red LED blinks)


@pytest.mark.parametrize(("soc", "refused"), [(60, True), (100, False)])
def test_a_holder_that_cannot_finish_is_refused(soc: int, refused: bool) -> None:
    res = sim_scenario(
        f"""
        [scenario]
        name = "gate"
        duration_s = 60.0
        [holder]
        soc_pct = {soc}
        """
    )
    assert _refused(res) == refused


# --- the kit's states, indications and gestures ---------------------------------------------


def test_kit_states_over_a_day(day: runner.RunResult) -> None:
    kits = [c.split()[1] for c in day.console if c.startswith("kit ")]
    for state in ("docked", "charging", "ready", "in_session", "cooling"):
        assert state in kits, kits[:20]


def test_vibrations_at_start_ready_and_end_warning() -> None:
    res = sim_builtin("hci")
    tr = res.truth
    t = tr["t_us"] / 1e6
    on = (tr["io"] & 0x04) > 0  # the motor
    rises = t[1:][on[1:] & ~on[:-1]]
    start = res.scenario.heating_start_s
    assert len(rises[(rises >= start) & (rises < start + 1)]) == 1  # heating starts
    assert len(rises[(rises > start + 15) & (rises < start + 25)]) == 2  # ready
    assert len(rises[(rises > start + 329) & (rises < start + 332)]) == 2  # 30 s before the end


def _charger_leds(res: runner.RunResult) -> np.ndarray:
    return np.asarray((res.power.truth["io"] >> 4) & 0xF if res.power else [])


def test_charger_button_click_shows_the_level() -> None:
    res = sim_scenario(
        """
        [scenario]
        name = "level"
        duration_s = 30.0
        [charger]
        soc_pct = 60
        [start]
        session = false
        [record]
        sample_s = 0.1
        [[events]]
        t_s = 10.0
        action = "charger_button"
        hold_s = 0.3
        """
    )
    assert res.power is not None
    t = res.power.truth["t_us"] / 1e6
    leds = _charger_leds(res)
    assert (leds[(t > 2) & (t < 9)] == 0).all()  # dark until asked
    assert (leds[(t > 11) & (t < 14)] == 0b0111).all()  # 60 %: three quarters started
    assert (leds[t > 17] == 0).all()  # and dark again after 5 s


def test_charger_button_held_4_s_switches_the_charger_off() -> None:
    res = sim_scenario(
        """
        [scenario]
        name = "off"
        duration_s = 120.0
        [holder]
        soc_pct = 50
        [start]
        session = false
        [record]
        sample_s = 1.0
        [[events]]
        t_s = 10.0
        action = "charger_button"
        hold_s = 5.0
        [[events]]
        t_s = 30.0
        action = "dock"
        docked = true
        """
    )
    assert "kit off" in res.console
    assert res.power is not None
    assert not res.power.charges("holder"), "an off charger charged the holder"


def test_power_frames_reach_the_host(usb: runner.RunResult) -> None:
    assert usb.power is not None
    assert len(usb.power) >= usb.sim_s - 5  # one a second
    csv = usb.power.to_csv({"scenario": "usb_charge"})
    assert csv.startswith("# heatrig power\n# scenario: usb_charge\n")
    charges = power_kpi.summary(usb.power)["usb_charges"]
    assert isinstance(charges, list)
    assert [c["outcome"] for c in charges] == ["done"]

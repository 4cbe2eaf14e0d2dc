"""Power measurements: each computed from a run's power series, judged
against limits/power-<scenario>.toml; the standard power scenarios meet
theirs, and a run is judged on whichever of heating and power applies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import kpis

from hil.paths import ROOT, SCENARIOS_DIR
from hil.qa import limits, measure, power, power_kpi, testrecord
from hil.qa.measure import HEATING, POWER, Outcome
from hil.qa.power import CC, CV, DONE, FLAG_DOCKED, FLAG_USB, PRE, PowerSeries
from hil.simulator import runner
from hil.wire.series import END_NAMES, FAULT_NAMES, HEATING_STATES

POWER_LIMIT_FILES = sorted((ROOT / "limits").glob("power-*.toml"))
HOLDER_LOW = FAULT_NAMES.index("holder_low")
END_FAULT = END_NAMES.index("fault")


def series(n: int, **cols: object) -> PowerSeries:
    """A power series of n one-second frames: every column 0 (truth 20 C,
    charger full) unless given, as a value or an array."""
    base: dict[str, np.ndarray] = {name: np.zeros(n) for name, _ in power.COLUMNS}
    base["t_s"] = np.arange(n, dtype=float)
    for name in ("charger_temp_true_c", "holder_temp_true_c", "charger_temp_c", "holder_temp_c"):
        base[name] = np.full(n, 20.0)
    for name in ("charger_soc_true_pct", "charger_soc_pct"):
        base[name] = np.full(n, 100.0)
    for name, v in cols.items():
        base[name] = np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()
    for name in ("kit", "heater_state", "end_reason", "fault", "usb_charge", "holder_charge"):
        base[name] = base[name].astype(np.int64)
    for name in ("flags", "charge_fault", "refused", "refusals"):
        base[name] = base[name].astype(np.int64)
    return PowerSeries(np.empty(0), np.empty(0), base, {"scenario": "synthetic"})


# --- the temperature windows, just inside and just outside --------------------------------

TOL, GRACE = power_kpi.WINDOW_TOL_K, power_kpi.WINDOW_GRACE_S
I_CC = power.Stage.of("usb").i_cc_a


@pytest.mark.parametrize(
    ("temp_c", "amps", "volts", "bad"),
    [
        (-TOL + 0.01, 0.3, 3.8, False),  # at 0 C, within the thermistor's tolerance
        (-TOL - 0.01, 0.3, 3.8, True),  # charging below 0 C
        (-5.0, power_kpi.CHARGING_A, 3.8, False),  # the electronics' draw is no charge
        (-5.0, power_kpi.CHARGING_A + 0.01, 3.8, True),
        (5.0, 0.2 * I_CC * 1.05 - 0.001, 3.8, False),  # a fifth of the current when cool
        (5.0, 0.2 * I_CC * 1.05 + 0.001, 3.8, True),
        (10.0 - TOL + 0.01, I_CC, 3.8, False),  # full current from 10 C, within tolerance
        (50.0, 1.0, power.V_WARM_V + power_kpi.V_MARGIN - 0.001, False),  # 4.0 V when warm
        (50.0, 1.0, power.V_WARM_V + power_kpi.V_MARGIN + 0.001, True),
        (45.0 + TOL - 0.01, 1.0, 4.2, False),
        (60.0 + TOL + 0.01, 0.1, 3.8, True),  # nothing above 60 C
    ],
)
def test_charging_outside_a_temperature_window_is_counted(
    temp_c: float, amps: float, volts: float, bad: bool
) -> None:
    n = 20
    ps = series(n, charger_temp_true_c=temp_c, charger_a_true=amps, charger_v_true=volts)
    expected = n - GRACE if bad else 0.0
    assert power_kpi.window_violation_s(ps) == pytest.approx(expected)
    # the holder's cell is judged the same way, against its own charge current
    h = series(n, holder_temp_true_c=temp_c, holder_a_true=-amps, holder_v_true=volts)
    assert power_kpi.window_violation_s(h) == 0.0  # discharging is never a violation


def test_the_firmwares_reaction_time_is_not_a_violation() -> None:
    temp = np.full(30, 20.0)
    temp[10 : 10 + int(GRACE)] = -5.0  # exactly the grace: the loop reacts within it
    ps = series(30, charger_temp_true_c=temp, charger_a_true=0.5)
    assert power_kpi.window_violation_s(ps) == 0.0
    temp[10 : 10 + int(GRACE) + 2] = -5.0  # two seconds longer: two seconds counted
    ps = series(30, charger_temp_true_c=temp, charger_a_true=0.5)
    assert power_kpi.window_violation_s(ps) == pytest.approx(2.0)


# --- sessions per charge -------------------------------------------------------------------


def _day(n_sessions: int, *, usb_at: int | None = None, soc0: float = 100.0) -> PowerSeries:
    """Sessions of 10 s every 20 s, then a refused start (holder_low)."""
    n = 20 * n_sessions + 40
    heater = np.zeros(n)
    for k in range(n_sessions):
        heater[20 * k + 5 : 20 * k + 15] = HEATING_STATES[0]
    end = np.full(n, END_NAMES.index("time_limit"))
    refusals = np.zeros(n)
    refusals[20 * n_sessions + 10 :] = 1
    flags = np.full(n, FLAG_DOCKED)
    if usb_at is not None:
        flags[usb_at:] |= FLAG_USB
    soc = np.full(n, soc0)
    return series(
        n,
        heater_state=heater,
        end_reason=end,
        refusals=refusals,
        refused=HOLDER_LOW,
        flags=flags,
        charger_soc_true_pct=soc,
    )


def test_sessions_per_charge_counts_complete_sessions_until_the_first_refusal() -> None:
    assert power_kpi.sessions_per_charge(_day(3)) == 3
    # not a day on one charge: plugged in before the refusal, or not full at the start
    assert power_kpi.sessions_per_charge(_day(3, usb_at=30)) is None
    assert power_kpi.sessions_per_charge(_day(3, soc0=power_kpi.FULL_PCT - 0.01)) is None
    assert power_kpi.sessions_per_charge(_day(3, soc0=power_kpi.FULL_PCT)) == 3
    # never emptied: no refusal, no figure
    no_refusal = _day(3)
    no_refusal.cols["refusals"][:] = 0
    assert power_kpi.sessions_per_charge(no_refusal) is None


def test_a_session_ended_by_a_fault_is_cut_off_and_not_counted() -> None:
    ps = _day(3)
    ps.cols["end_reason"][20 + 15] = END_FAULT  # the second session's end
    k = power_kpi.compute(ps)
    assert k["sessions_cut_off"] == 1
    assert k["sessions_per_charge"] == 2


def test_a_charge_its_stages_and_its_termination() -> None:
    state = np.zeros(40, dtype=np.int64)
    state[5], state[6:20], state[20:30], state[30:] = PRE, CC, CV, DONE
    amps = np.where(state == CV, 0.06, np.where(state == CC, 2.0, 0.0))
    ps = series(40, usb_charge=state, charger_a_true=amps, flags=FLAG_USB)
    (c,) = ps.charges("usb")
    assert (c.outcome, c.start_s, c.end_s, c.duration_s) == ("done", 5.0, 30.0, 25.0)
    assert ps.stages(c) == [(5.0, "pre"), (6.0, "cc"), (20.0, "cv"), (30.0, "done")]
    assert ps.termination_a(c) == pytest.approx(0.06)  # the 10 s before it terminated
    k = power_kpi.compute(ps)
    assert k["usb_charge_min"] == round(25 / 60, 1)
    assert k["usb_termination_ma"] == pytest.approx(60.0)


def test_usb_and_dock_events_come_from_the_flags() -> None:
    flags = np.array([0, FLAG_USB, FLAG_USB | FLAG_DOCKED, FLAG_DOCKED, 0])
    assert series(5, flags=flags).events() == [
        (1.0, "usb in"),
        (2.0, "docked"),
        (3.0, "usb out"),
        (4.0, "undocked"),
    ]


def test_a_board_record_has_no_truth_and_no_truth_measurements() -> None:
    ps = _day(2)
    for name, _ in power.COLUMNS:
        if "_true" in name:
            ps.cols[name][:] = np.nan
    assert not ps.has_truth
    k = power_kpi.compute(ps)
    assert k["sessions_per_charge"] == 2  # from the gauge: the charger read full
    assert k["charger_gauge_error_pts"] is None and k["charge_window_violation_s"] is None
    ms = {m.name: m for m in measure.evaluate(k, None, has_truth=False, group=POWER)}
    assert ms["charger_gauge_error_pts"].note == "needs the simulator's truth"


# --- the standard power scenarios against their limits ----------------------------------------


def test_multi_session_is_judged_on_its_power(multi_session_run: runner.RunResult) -> None:
    res = multi_session_run
    test = testrecord.build(res.series, kpis(res), power=res.power)
    assert test.parts == [POWER]
    assert "no control telemetry" in test.not_judged[HEATING]
    assert test.limits_label == "limits/power-multi_session.toml"
    assert test.outcome == Outcome.PASS, [
        (m.name, m.value, m.outcome) for m in test.measurements if m.outcome != Outcome.PASS
    ]
    v = {m.name: m.value for m in test.measurements}
    assert v["sessions_per_charge"] == 23 and v["sessions_cut_off"] == 0
    assert isinstance(v["holder_recharge_max_s"], float) and v["holder_recharge_max_s"] <= 270
    assert isinstance(v["charger_gauge_error_pts"], float) and v["charger_gauge_error_pts"] <= 1.0
    assert v["charge_window_violation_s"] == 0 and v["charge_faults"] == 0
    assert not any(m.group == HEATING for m in test.measurements)


def test_usb_charge_is_judged_on_its_power(usb_charge_run: runner.RunResult) -> None:
    res = usb_charge_run
    test = testrecord.build(res.series, kpis(res), power=res.power)
    assert test.not_judged[HEATING] == "no heating session in this run"
    assert test.outcome == Outcome.PASS
    v = {m.name: m.value for m in test.measurements}
    assert isinstance(v["usb_charge_min"], float) and 100 <= v["usb_charge_min"] <= 120
    assert isinstance(v["usb_termination_ma"], float) and 43.5 <= v["usb_termination_ma"] <= 60.9


def test_a_limit_just_past_the_measured_value_fails_it(multi_session_run: runner.RunResult) -> None:
    assert multi_session_run.power is not None
    k = power_kpi.compute(multi_session_run.power)
    n = k["sessions_per_charge"]
    assert isinstance(n, int)
    for lo, outcome in ((n, Outcome.PASS), (n + 1, Outcome.FAIL)):
        lim = limits.parse(f'[limits]\nscenario = "x"\n[sessions_per_charge]\nmin = {lo}\n')
        judged = measure.evaluate(k, lim.by_name, has_truth=True, group=POWER)
        assert {m.name: m.outcome for m in judged}["sessions_per_charge"] == outcome


def test_the_record_survives_json_with_its_parts(
    multi_session_run: runner.RunResult, tmp_path: Path
) -> None:
    res = multi_session_run
    test = testrecord.build(res.series, kpis(res), power=res.power)
    again = testrecord.read(test.write(tmp_path / "record.json"))
    assert again.measurements == test.measurements
    assert (again.parts, again.not_judged) == (test.parts, test.not_judged)


def test_power_csv_reads_back_to_the_same_measurements(
    multi_session_run: runner.RunResult, tmp_path: Path
) -> None:
    assert multi_session_run.power is not None
    path = tmp_path / "power.csv"
    multi_session_run.power.write_csv(path, multi_session_run.series.meta)
    back = power.read_csv(path)
    assert back.meta["scenario"] == "multi_session"
    assert power_kpi.compute(back) == power_kpi.compute(multi_session_run.power)
    assert back.refusals() == multi_session_run.power.refusals()


def test_the_console_summary_is_plain_values(multi_session_run: runner.RunResult) -> None:
    assert multi_session_run.power is not None
    lines = power_kpi.summary_lines(multi_session_run.power)
    assert "sessions: 23 complete, 0 cut off" in lines
    assert "refused: holder_low x7" in lines
    assert all(ln.isascii() and "[" not in ln and "(" not in ln.split(":")[0] for ln in lines)


# --- the limits files ------------------------------------------------------------------------


@pytest.mark.parametrize("path", POWER_LIMIT_FILES, ids=lambda p: p.name)
def test_every_power_limits_file_is_valid_and_sourced(path: Path) -> None:
    ls = limits.load(path)
    assert ls.group == POWER
    assert path.name == f"power-{ls.scenario}.toml"
    assert (SCENARIOS_DIR / f"{ls.scenario}.toml").is_file(), "its scenario is a built-in one"
    assert all(lim.source for lim in ls.by_name.values()), "every limit says where it comes from"


def test_every_standard_power_scenario_has_power_limits() -> None:
    names = {p.stem.removeprefix("power-") for p in POWER_LIMIT_FILES}
    assert {"multi_session", "multi_session_aged", "usb_charge", "power_day"} <= names
    assert {"usb_charge_cold", "usb_charge_cool", "usb_charge_hot"} <= names


def test_heating_and_power_limits_do_not_mix() -> None:
    text = '[limits]\nscenario = "x"\n\n[sessions_cut_off]\nmax = 0\n\n[energy_j]\nmax = 1.0\n'
    with pytest.raises(limits.LimitsError) as e:
        limits.parse(text, Path("mixed.toml"))
    assert "mixed.toml:7: [energy_j]" in str(e.value) and "power file" in str(e.value)
    with pytest.raises(limits.LimitsError, match="no such measurement"):
        limits.parse("[sessions_per_chrage]\nmin = 20\n", Path("typo.toml"))

"""Each invariant of the safety campaign, on made-up truth: passes just
inside its bound, fails just outside (hil/safety/invariants.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from hil.safety import invariants
from hil.scenarios import scenario
from hil.simulator import runner
from hil.wire import series
from hil.wire.series import truth_array

DT = 0.01


def _scenario(extra: str = "", puffs: str = 'regime = "none"') -> scenario.Scenario:
    text = f"""
    [scenario]
    name = "made up"
    duration_s = 400.0
    [puffing]
    {puffs}
    {extra}
    """
    return scenario.parse(textwrap.dedent(text), Path("<test>"))


def _truth(
    on: list[tuple[float, float]], end_s: float = 400.0, blade_c: float = 300.0
) -> np.ndarray:
    """Samples every 10 ms: the heater on in the given spans, the stick in."""
    t = np.arange(0.0, end_s, DT)
    tr = np.zeros(len(t), dtype=truth_array([]).dtype)
    tr["t_us"] = np.rint(t * 1e6).astype(np.int64)
    en = np.zeros(len(t), bool)
    for a, b in on:
        en |= (t >= a - 1e-9) & (t < b - 1e-9)
    tr["io"] = series.IO_STICK | np.where(en, series.IO_HEATER_EN, 0)
    tr["blade_uc"] = np.where(en, blade_c * 1e6, 20e6).astype(np.int64)
    return tr


BOOT = (
    "boot heatrig 0.1.0 profile=standard calibrated=1 r0_uohm=800000 tcr_ppm=3500 "
    "boots=1 sessions=0 puffs=0"
)


def _result(
    sc: scenario.Scenario,
    tr: np.ndarray,
    console: list[str] | None = None,
    reboots: list[str] | None = None,
) -> runner.RunResult:
    boot = BOOT
    return runner.RunResult(
        sc,
        None,  # type: ignore[arg-type]  # the invariants read the truth and the console only
        tr,
        {},
        console if console is not None else [boot],
        "",
        0.0,
        None,
        reboots or [],
    )


def test_a_clean_run_passes_and_says_what_it_exercised() -> None:
    v = invariants.check(_scenario(), _result(_scenario(), _truth([(2.0, 100.0)])))
    assert v.ok, v.violations
    assert v.exercised == {"blade_cap", "nothing_stuck"}  # no fault, no 14 puffs, no cut


@pytest.mark.parametrize(("blade_c", "ok"), [(349.9, True), (350.1, False)])
def test_blade_cap(blade_c: float, ok: bool) -> None:
    sc = _scenario()
    v = invariants.check(sc, _result(sc, _truth([(2.0, 10.0)], blade_c=blade_c)))
    assert v.ok is ok and ("blade_cap" in v.violations) is not ok


FAULT = '[[events]]\nt_s = 5.0\naction = "fault"\nkind = "{kind}"'


@pytest.mark.parametrize(
    ("kind", "bound_s"),
    [
        ("heater_open", invariants.CUT_S),
        ("heater_short", invariants.CUT_S),
        ("timer_stop", invariants.CUT_STALLED_S),
    ],
)
@pytest.mark.parametrize("late", [False, True])
def test_fault_cut(kind: str, bound_s: float, late: bool) -> None:
    sc = _scenario(FAULT.format(kind=kind))
    off = 5.0 + bound_s + (DT if late else 0.0)
    v = invariants.check(sc, _result(sc, _truth([(2.0, off)])))
    assert ("fault_cut" in v.violations) is late
    assert f"onset_while_heating:{kind}" in v.observed


@pytest.mark.parametrize("late", [False, True])
def test_an_empty_cell_binds_from_its_first_sample_below_the_limit_under_load(late: bool) -> None:
    """An empty cell shows under load: the cut is bound from the first truth
    sample with the cell under the firmware's limit, not from the soc event
    (nor from a heater on at the least duty); never below it, nothing binds."""
    sc = _scenario('[[events]]\nt_s = 1.0\naction = "cell_soc"\nsoc_pct = 0.0')
    tr = _truth([(2.0, 3.0 + invariants.CUT_S + (DT if late else 0.0))])
    tr["cell_uv"] = np.where(tr["t_us"] >= 3_000_000, invariants.CELL_MIN_UV - 1, 3_300_000)
    v = invariants.check(sc, _result(sc, tr))
    assert ("fault_cut" in v.violations) is late
    tr["cell_uv"] = invariants.CELL_MIN_UV  # at the limit: never under it
    assert invariants.check(sc, _result(sc, tr)).ok


def test_no_heating_without_a_stick() -> None:
    sc = _scenario("[start]\nstick_at_s = 30.0")
    assert invariants.check(sc, _result(sc, _truth([(30.0, 60.0)]))).ok
    late = invariants.check(
        sc, _result(sc, _truth([(2.0, 2.05)]))
    )  # heated before the stick was in
    assert "fault_cut" in late.violations


@pytest.mark.parametrize(("extra_s", "ok"), [(0.0, True), (DT, False)])
def test_session_time(extra_s: float, ok: bool) -> None:
    sc = _scenario()
    on = invariants.SESSION_S + invariants.CONTROL_PERIOD_S + invariants.SAMPLE_S + extra_s
    v = invariants.check(sc, _result(sc, _truth([(2.0, 2.0 + on)])))
    assert ("session_time" in v.violations) is not ok
    assert "session_time" in v.exercised


def _puffs(n: int, every: float = 10.0) -> str:
    return 'regime = "custom"\n' + "".join(
        f"[[puffing.puffs]]\nt_s = {5.0 + k * every}\nvolume_ml = 55\nduration_s = 2.0\n"
        for k in range(n)
    )


@pytest.mark.parametrize(
    ("after_s", "ok"),
    [(invariants.PUFF_END_GRACE_S, True), (invariants.PUFF_END_GRACE_S + 0.02, False)],
)
def test_puff_limit(after_s: float, ok: bool) -> None:
    sc = _scenario(puffs=_puffs(16))
    end14 = 5.0 + 13 * 10.0 + 2.0
    v = invariants.check(sc, _result(sc, _truth([(2.0, end14 + after_s)])))
    assert ("puff_limit" in v.violations) is not ok


@pytest.mark.parametrize(("counted", "why"), [(3, ""), (2, "missed"), (4, "phantom")])
def test_puff_count(counted: int, why: str) -> None:
    sc = _scenario(puffs=_puffs(3))
    boot = BOOT
    console = [
        boot,
        "state preheat",
        *(f"puff {k}" for k in range(1, counted + 1)),
        f"session puffs={counted}",
    ]
    v = invariants.check(sc, _result(sc, _truth([(2.0, 60.0)]), console))
    assert v.puffs["taken"] == 3
    assert ("puff_count" in v.violations) is bool(why)
    if why:
        assert v.puffs[why] == 1


def test_a_run_that_did_not_complete_is_stuck() -> None:
    v = invariants.check(_scenario(), None, "the run ended early: watchdog_reset")
    assert v.violations == {"nothing_stuck": ["the run ended early: watchdog_reset"]}


def _boot(boots: int, sessions: int, puffs: int, profile: str = "standard") -> str:
    return (f"boot heatrig 0.1.0 profile={profile} calibrated=1 r0_uohm=800000 tcr_ppm=3500 "
            f"boots={boots} sessions={sessions} puffs={puffs}")  # fmt: skip


@pytest.mark.parametrize(
    ("after", "mid_write", "ok"),
    [
        (_boot(2, 1, 3), False, True),  # everything kept
        (_boot(2, 0, 0), False, False),  # the session the cut followed, lost
        (_boot(2, 0, 0), True, True),  # ... unless the cut fell in its save: the previous record
        (_boot(1, 0, 0), True, False),  # and not two records lost
        (_boot(2, 1, 3, "eco"), False, False),  # a setting changed
    ],
)
def test_kept_over_power_cut(after: str, mid_write: bool, ok: bool) -> None:
    cut = '[[events]]\nt_s = 50.0\naction = "power_cut"' + (
        "\nat_write_byte = 10" if mid_write else ""
    )
    sc = _scenario(cut)
    console = [
        _boot(1, 0, 0),
        "state preheat",
        "puff 1",
        "puff 2",
        "puff 3",
        "session puffs=3",
        after,
    ]
    v = invariants.check(
        sc,
        _result(sc, _truth([(2.0, 40.0)]), console, ["sim reboot reason=power_cut t_us=50000000"]),
    )
    assert ("kept_over_power_cut" in v.violations) is not ok


def test_a_stopped_step_binds_only_a_session_under_way() -> None:
    """A start re-arms the step's timer (heater_ctl.request_start): a session
    begun after the stop is a healthy one."""
    sc = _scenario(FAULT.format(kind="timer_stop"))
    assert invariants.check(sc, _result(sc, _truth([(5.05, 100.0)]))).ok
    assert "fault_cut" in invariants.check(sc, _result(sc, _truth([(2.0, 100.0)]))).violations

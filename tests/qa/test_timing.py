"""Control-step timing: the rig's jitter and deadline-miss report, the
simulator's host CPU time per step, and the controller and the safety checks
holding when the simulator makes timer callbacks late (interrupt jitter and
garbage-collection stalls)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import builtin, kpis, simulate

from hil.qa import timing
from hil.rig.dut import Dut
from hil.wire.series import TelemetrySeries

PERIOD_US = timing.PERIOD_US


def _record(t_us: list[int], seq: list[int] | None = None) -> TelemetrySeries:
    n = len(t_us)
    cols = {
        "t_s": np.array(t_us, dtype=float) / 1e6,
        "seq": np.array(seq if seq is not None else range(n), dtype=float),
    }
    return TelemetrySeries(meta={}, cols=cols)


def test_a_steady_period_has_no_jitter_and_no_misses() -> None:
    tm = timing.from_record(_record([i * PERIOD_US for i in range(100)]), {})
    assert (tm.steps, tm.jitter_max_us, tm.deadline_misses, tm.dropped_frames) == (100, 0, 0, 0)


def test_a_late_step_is_jitter_and_a_step_later_than_a_period_is_a_miss() -> None:
    t = [i * PERIOD_US for i in range(100)]
    t[10] += 3000  # late, but before the next step was due
    t[50] += 12000  # started after the next step was due
    t[51] += 12000  # ... and so did the one after it
    t[52] += 2000
    tm = timing.from_record(_record(t), {})
    assert tm.jitter_max_us == 12000
    assert tm.deadline_misses == 2
    assert tm.worst_lateness_us == 12000


def test_periods_a_flash_write_lost_are_misses_and_the_grid_goes_on_after() -> None:
    """A 406 ms write after the step at 490 ms: the timer's interrupt waits,
    one step runs at its end (896 ms, for the alarm at 890) and the 39
    periods before it are lost; the steps after are on the grid again."""
    t = [i * PERIOD_US for i in range(50)] + [896_000]
    t += [900_000 + j * PERIOD_US for j in range(49)]
    tm = timing.from_record(_record(t), {})
    assert tm.lost_periods == 39
    assert tm.deadline_misses == 40  # the periods lost, and the step that came 396 ms late
    assert tm.worst_lateness_us == 396_000
    assert tm.longest_gap_us == 406_000


def test_frames_lost_on_the_link_are_not_counted_as_misses() -> None:
    t = [i * PERIOD_US for i in range(100) if i not in (30, 31)]
    seq = [i for i in range(100) if i not in (30, 31)]
    tm = timing.from_record(_record(t, seq), {})
    assert (tm.dropped_frames, tm.deadline_misses, tm.jitter_max_us) == (2, 0, 0)


def test_the_simulator_reports_host_cpu_time_per_control_step(dut: Dut) -> None:
    res = builtin(dut, "hci_20s")
    tm = timing.from_record(res.series, res.info)
    cpu = tm.host_cpu_us
    assert cpu is not None
    assert cpu["steps"] == int(res.info["timer_fires"])
    assert cpu["mean"] > 0 and cpu["p50"] <= cpu["p99"] <= cpu["max"]
    # virtual time: the telemetry's own stamps are exact; the only jitter is
    # the flash's (a record written at boot and at the session's end holds a
    # step back by the write: sim/mpapi/vflash.py)
    assert tm.deadline_misses == 0
    assert 0 < tm.jitter_max_us <= int(res.info["flash_stall_max_us"])


# jitter on every tick up to 0.5 ms, and one tick in 40 stalled 3-6 ms (a GC pause)
JITTERY = [500, 6000, 40, 7]


@pytest.mark.plant
def test_control_holds_under_timer_latency(dut: Dut) -> None:
    res = dut.run(builtin(dut, "hci").scenario, timer_latency=JITTERY)
    tm = timing.from_record(res.series, res.info)
    assert tm.jitter_p99_us > 1000 and tm.jitter_max_us <= 6500  # the latency was there
    assert tm.deadline_misses == 0
    k = kpis(res)
    assert k["time_to_setpoint_s"] is not None and k["time_to_setpoint_s"] <= 10.0
    assert k["overshoot_pct"] <= 2.0
    assert k["rms_error_c"] <= 2.0
    assert (k["puffs_detected"], k["phantom_puffs"]) == (12, 0)
    assert k["end_reason"] == "time_limit"
    assert abs(k["end_time_s"] - 360.0) <= 0.010 + 0.0065  # a period and the worst latency


@pytest.mark.plant
def test_stalls_longer_than_a_period_are_reported_as_deadline_misses(dut: Dut) -> None:
    res = simulate(
        dut,
        """
        [scenario]
        name = "stalls"
        duration_s = 30.0
        [puffing]
        regime = "none"
        """,
        timer_latency=[200, 16000, 100, 3],
    )
    tm = timing.from_record(res.series, res.info)
    assert tm.deadline_misses > 0
    assert 10000 < tm.worst_lateness_us <= 16200


@pytest.mark.plant
def test_safety_cuts_the_heater_under_timer_latency(dut: Dut) -> None:
    res = simulate(
        dut,
        """
        [scenario]
        name = "open heater, late timers"
        duration_s = 40.0
        [puffing]
        regime = "none"
        [[events]]
        t_s = 30.0013
        action = "fault"
        kind = "heater_open"
        """,
        timer_latency=JITTERY,
    )
    tr = res.truth
    t = tr["t_us"] / 1e6
    en = (tr["io"] & 0x20) > 0
    t_off = t[np.flatnonzero((t >= 30.0013) & ~en)[0]]
    assert t_off - 30.0013 <= 2 * 0.010 + 0.0065
    assert int(res.series.cols["fault"][-1]) == 2  # heater_open

"""Control-period jitter from the telemetry's time stamps."""

from __future__ import annotations

import numpy as np
from conftest import kpis

from hil.qa import kpi
from hil.simulator import runner


def test_jitter_is_the_largest_deviation_from_the_median_period() -> None:
    t_us = np.arange(0, 100) * 10_000
    t_us[50:] += 1_500  # one step 1.5 ms late, the next ones on time again after it
    t_us[51:] -= 1_500
    seq = np.arange(100)
    assert kpi.control_jitter_us(t_us / 1e6, seq) == 1_500


def test_a_dropped_frame_is_not_a_late_step() -> None:
    t_us = np.arange(0, 100) * 10_000
    seq = np.arange(100)
    keep = np.ones(100, bool)
    keep[40] = False  # frame 40 lost on the link: a 20 ms gap in the times
    assert kpi.control_jitter_us(t_us[keep] / 1e6, seq[keep]) == 0


def test_sequence_numbers_wrap() -> None:
    seq = (np.arange(65530, 65540)) % 65536
    t_us = np.arange(10) * 10_000
    t_us[7] += 300
    assert kpi.control_jitter_us(t_us / 1e6, seq) == 300


def test_the_simulator_has_no_jitter_by_construction(hci: runner.RunResult) -> None:
    """Virtual time: the only jitter is the flash's -- a record written at
    boot and at the session's end holds a step back by the write (a page
    program, sim/mpapi/vflash.py)."""
    assert 0 < kpis(hci)["control_jitter_us"] <= int(hci.info["flash_stall_max_us"]) == 400

"""The charge loop and the fuel gauge, unit- and property-tested in CPython
(see fw_harness): their rules hold for any input, not just the scenarios'."""

from __future__ import annotations

from typing import Any

import fw_harness as fw
from hypothesis import given, settings
from hypothesis import strategies as st

charge_loop = fw.firmware("charge_loop")
gauge = fw.firmware("gauge")
faults = fw.firmware("faults")

SETTLE = settings(max_examples=200, deadline=None, derandomize=True)
TICK_MS = 250


# --- fuel gauge ------------------------------------------------------------------------------


@SETTLE
@given(st.integers(2800, 4300), st.integers(2800, 4300))
def test_soc_from_ocv_is_monotonic_and_bounded(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert 0 <= gauge.soc_from_ocv(lo) <= gauge.soc_from_ocv(hi) <= 10000


def test_soc_from_ocv_hits_the_table() -> None:
    for k, mv in enumerate(gauge.OCV_MV):
        assert gauge.soc_from_ocv(mv) == 1000 * k


@SETTLE
@given(st.integers(-300, 700), st.integers(-300, 700))
def test_resistance_falls_as_the_cell_warms(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert gauge.r_mohm_at(100, lo) >= gauge.r_mohm_at(100, hi) > 0
    assert gauge.r_mohm_at(100, 200) == 100


@SETTLE
@given(st.lists(st.integers(-3000, 2500), min_size=1, max_size=200))
def test_coulomb_counting_loses_nothing_to_rounding(currents_ma: list[int]) -> None:
    g = gauge.Gauge(2900, 55, 300_000)
    g.start(3840)  # 50 %
    q0 = g.q_uah * 3600 + g._rem
    total = 0
    for ma in currents_ma:
        g.count(ma * TICK_MS, TICK_MS, 3840, 200)
        total += ma * TICK_MS
    # mA ms in = mA ms counted, exactly, unless the count was clamped at empty or full
    q = g.q_uah * 3600 + g._rem
    if 0 < g.q_uah < 2900 * 1000:
        assert q - q0 == total
    assert 0 <= g.soc() <= 10000


def test_rest_corrects_the_count_to_the_ocv() -> None:
    g = gauge.Gauge(2900, 55, 300_000)
    g.start(3840)
    g.count(-1000 * 3600 * 290, 1000, 3700, 200)  # 290 mAh out at once: 40 % by counting
    assert abs(g.soc() - 4000) <= 1
    for _ in range(300_000 // TICK_MS - 1):
        g.count(0, TICK_MS, 3770, 200)  # at rest, the cell at the OCV of 30 %
    assert abs(g.soc() - 4000) <= 1  # not yet: 5 min of rest
    g.count(0, TICK_MS, 3770, 200)
    assert abs(g.soc() - 3000) <= 1


def test_no_ocv_correction_below_0_c_and_slower_below_10_c() -> None:
    for temp_dc, needed_ms in ((-50, None), (50, 600_000), (200, 300_000)):
        g = gauge.Gauge(2900, 55, 300_000)
        g.start(3840)
        t = 0
        while t < 700_000 and g.soc() == 5000:
            g.count(0, TICK_MS, 3770, temp_dc)
            t += TICK_MS
        if needed_ms is None:
            assert g.soc() == 5000
        else:
            assert t == needed_ms


def test_an_aged_cell_is_learnt_between_two_anchors() -> None:
    """A cell with 80 % of its nominal capacity: full, then 1160 mAh out
    (50 % of what it really holds), then a rest at the OCV of 50 %."""
    g = gauge.Gauge(2900, 55, 300_000)
    g.start(3840)
    g.full(4200, 0, 200)  # terminated at 4.2 V: 100 %
    g.count(-1160 * 3600 * 1000, 1000, 3700, 200)  # mA ms
    for _ in range(300_000 // TICK_MS):
        g.count(0, TICK_MS, 3840, 200)
    assert g.cap_mah < 2900
    assert abs(g.cap_mah - (2900 + 2320) // 2) <= 5  # halfway to the truth in one step
    assert abs(g.soc() - 5000) <= 1


# --- charge loop ----------------------------------------------------------------------------------


def _loop() -> Any:  # a firmware object (fw_harness): untyped
    return charge_loop.ChargeLoop(2000, 58, 55, 240 * 60_000, 30 * 60_000)


@SETTLE
@given(st.lists(st.integers(-200, 700), min_size=1, max_size=100))
def test_never_charges_outside_0_to_60_c(temps_dc: list[int]) -> None:
    loop = _loop()
    for t in temps_dc:
        iset = loop.step(True, 3800, 0, t, TICK_MS)
        if t < 0 or t > 600:
            assert iset == 0, (t, loop.state)
        assert iset <= 2000
        if loop.zone == 1:
            assert iset <= 400


def test_hysteresis_needs_2_k_to_leave_a_window() -> None:
    loop = _loop()
    assert loop.step(True, 3800, 0, -10, TICK_MS) == 0
    assert loop.step(True, 3800, 0, 10, TICK_MS) == 0  # 1.0 C: still too cold
    assert loop.step(True, 3800, 0, 25, TICK_MS) > 0  # 2.5 C: cool, 20 %
    assert loop.zone == 1


@SETTLE
@given(st.integers(3000, 4150), st.integers(30, 110), st.integers(0, 10))
def test_cv_never_pushes_the_cell_past_its_target(ocv_mv: int, r_mohm: int, noise_mv: int) -> None:
    """A cell of resistance r (up to twice the 55 mOhm the loop assumes: an
    aged cell), its voltage OCV + I r, measured with +-noise, its OCV rising
    far faster than a real one's: from CC into CV the set-point never takes it
    more than the noise and 20 mV past 4.2 V (the limit is 4.25 V)."""
    loop = _loop()
    i_ma = 0
    worst = 0
    for k in range(400):
        v = ocv_mv + i_ma * r_mohm // 1000
        worst = max(worst, v)
        i_ma = loop.step(True, v + (noise_mv if k % 2 else -noise_mv), i_ma, 250, TICK_MS)
        ocv_mv = min(4200, ocv_mv + 1)  # charging raises the OCV
    assert worst <= 4200 + noise_mv + 20
    assert loop.state in (charge_loop.CC, charge_loop.CV, charge_loop.DONE)


def test_terminates_in_cv_below_the_termination_current() -> None:
    loop = _loop()
    loop.step(True, 4180, 2000, 250, TICK_MS)
    loop.step(True, 4205, 1500, 250, TICK_MS)  # voltage-limited: CV
    assert loop.state == charge_loop.CV
    n = 0
    while loop.state != charge_loop.DONE and n < 200:
        loop.step(True, 4200, 40, 250, TICK_MS)
        n += 1
    assert loop.state == charge_loop.DONE
    assert 5000 <= n * TICK_MS <= 15_000  # filtered (~2 s), then held 5 s
    assert loop.step(True, 4150, 0, 250, TICK_MS) == 0  # done until it falls 100 mV
    assert loop.step(True, 4090, 0, 250, TICK_MS) > 0


def test_a_charge_that_never_ends_times_out() -> None:
    loop = _loop()
    t = 0
    while loop.state != charge_loop.FAULT and t < 10 * 3600_000:
        loop.step(True, 3900, 2000, 250, TICK_MS)  # a cell that never reaches 4.2 V
        t += TICK_MS
    assert loop.state == charge_loop.FAULT and loop.fault == faults.CHARGE_TIMEOUT
    assert abs(t - 240 * 60_000) <= TICK_MS
    assert loop.step(True, 3900, 0, 250, TICK_MS) == 0  # latched
    loop.step(False, 3900, 0, 250, TICK_MS)  # the source goes away ...
    assert loop.step(True, 3900, 0, 250, TICK_MS) > 0  # ... and a new charge may start


def test_a_weak_source_stretches_the_timeout() -> None:
    loop = _loop()
    t = 0
    while loop.state != charge_loop.FAULT and t < 20 * 3600_000:
        loop.step(True, 3900, 500, 250, TICK_MS)  # a quarter of the current: 4 x the time
        t += TICK_MS
    assert t > 8 * 3600_000


def test_over_voltage_latches_a_fault() -> None:
    loop = _loop()
    loop.step(True, 4260, 0, 250, TICK_MS)
    assert loop.state != charge_loop.FAULT  # one sample may be noise
    loop.step(True, 4260, 0, 250, TICK_MS)
    assert loop.state == charge_loop.FAULT and loop.fault == faults.CHARGE_OVERVOLT


def test_a_deep_discharged_cell_is_precharged() -> None:
    loop = _loop()
    assert loop.step(True, 2800, 0, 250, TICK_MS) == 200  # C/10 of the 2 A charge
    assert loop.state == charge_loop.PRE

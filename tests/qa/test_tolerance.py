"""The true blade temperature never exceeds 350 C with a stick in, across the
unit tolerances (R0 0.80 ohm +-10 %, TCR 0.0030-0.0038), the ambient range
and the holder's charge, on the hottest profile -- at every corner where a
session runs.

Not every corner of the box runs one: the charger's session gate
(charger.py) refuses a start the holder cannot finish, and in the cold a
session needs more charge than a full holder has. Those corners are refused
up front -- nothing heats -- and are tested as refusals, never counted as
corners that passed. The corners that heat are chosen from the firmware's
own gate (in CPython): the coldest air the profile starts in from a full
holder, and at each temperature the least charge the gate accepts.

A unit with no calibration record runs on the nominal values: one whose R0
is 10 % low reads its blade colder than the air at the first measurement
and stops there (fault `calibration`, the blade still cold) -- a stop, not a
corner that heated; one 10 % high reads hot and runs cooler.
"""

from __future__ import annotations

import itertools
from typing import Any

import fw_harness as fw
import pytest
from conftest import simulate
from fw_edges import Heater

from hil.rig.dut import Dut
from hil.simulator import runner

PROFILE = "intense"  # the hottest
CAP_C = 350.0
R0S = (0.72, 0.88)  # 0.80 ohm +-10 %
TCRS = (0.0030, 0.0038)
AMBIENT_C = (0.0, 50.0)  # the range the firmware heats in (heater_safety.py)

charger = fw.firmware("charger")
profiles = fw.firmware("profiles")
faults = fw.firmware("faults")


def _gate() -> Any:
    """The firmware's session gate, on stand-in hardware."""
    h = Heater()
    p = charger.Power(h.hc, faults.FaultLog(), lambda text: None)
    p.profile = PROFILE
    return p


def _refused(p: Any, temp_dc: int, soc_cpct: int) -> bool:
    p.hold_dc = temp_dc
    p.hold._set_soc(soc_cpct)
    p._gate()
    return bool(p.holder_low)


def coldest_start_c() -> float:
    """The coldest holder (0.1 C steps) the gate lets start from full."""
    p = _gate()
    t = next(t for t in range(0, 501) if not _refused(p, t, 10000))
    return t / 10


def least_charge_pct(temp_c: float) -> float:
    """The least charge (as the gauge reads it) the gate accepts at temp_c."""
    p = _gate()
    t = round(temp_c * 10)
    return next(s for s in range(0, 10001, 10) if not _refused(p, t, s)) / 100


# the margins by which a heating corner sits inside the gate: the plant's cell
# model and the firmware's gauge differ a little in SoC and temperature
SOC_MARGIN_PCT = 3.0
TEMP_MARGIN_C = 1.0


def heating_corners() -> list[tuple[float, float, float, float]]:
    cold = coldest_start_c() + TEMP_MARGIN_C
    out = []
    for r0, tcr, amb in itertools.product(R0S, TCRS, (cold, AMBIENT_C[1])):
        low = min(100.0, least_charge_pct(amb) + SOC_MARGIN_PCT)
        for soc in sorted({low, 100.0}):
            out.append((r0, tcr, soc, amb))
    return out


def _run(
    dut: Dut, r0: float, tcr: float, soc: float, ambient: float, calibrated: bool = True
) -> runner.RunResult:
    return simulate(
        dut,
        f"""
        [scenario]
        name = "corner"
        profile = "{PROFILE}"
        [ambient]
        temp_c = {ambient}
        [holder]
        soc_pct = {soc}
        [unit]
        r0_ohm = {r0}
        tcr_per_k = {tcr}
        calibrated = {str(calibrated).lower()}
        [puffing]
        regime = "hci"
        """,
    )


def test_the_corners_are_what_the_gate_lets_heat() -> None:
    """The box's cold corners are refused by the gate: the heating corners
    are moved inside it, and each is one where a session starts."""
    cold = coldest_start_c()
    assert AMBIENT_C[0] < cold < 20.0, cold  # the intense profile needs warmer air than 0 C
    assert least_charge_pct(cold + TEMP_MARGIN_C) <= 100.0
    low = least_charge_pct(AMBIENT_C[1])  # warm: a partly charged holder may start
    assert 50.0 < low < 100.0 - SOC_MARGIN_PCT, low


@pytest.mark.parametrize(("r0", "tcr", "soc", "ambient"), heating_corners())
def test_blade_never_above_350_c(
    dut: Dut, r0: float, tcr: float, soc: float, ambient: float
) -> None:
    res = _run(dut, r0, tcr, soc, ambient)
    heated = bool((res.truth["power_uw"] > 0).any())
    assert heated, f"the corner did not heat ({res.console[-3:]}): it tests nothing"
    assert not [c for c in res.console if c.startswith(("refused", "fault"))], res.console
    assert (res.truth["blade_uc"] / 1e6).max() < CAP_C


@pytest.mark.parametrize(
    ("soc", "ambient"), [(20.0, AMBIENT_C[1]), (100.0, AMBIENT_C[0]), (20.0, AMBIENT_C[0])]
)
def test_a_corner_the_holder_cannot_finish_is_refused_and_nothing_heats(
    dut: Dut, soc: float, ambient: float
) -> None:
    """Refused up front: no heat at all, so nothing about the cap is shown
    here -- these corners are refusals, not passes."""
    res = _run(dut, R0S[0], TCRS[1], soc, ambient)
    assert "refused holder_low" in res.console
    assert not (res.truth["power_uw"] > 0).any()


@pytest.mark.parametrize("r0", R0S)
def test_a_unit_without_its_record_never_runs_hot(dut: Dut, r0: float) -> None:
    """No record: the fail-safe values (the spec's smallest R0 and TCR,
    docs/safety.md), with which every unit in spec reads its blade hot: it
    heats, says why, and runs below its set-points -- at either end of R0."""
    res = _run(dut, r0, TCRS[1], 100.0, AMBIENT_C[1], calibrated=False)
    blade = res.truth["blade_uc"] / 1e6
    assert "calib fail_safe missing" in res.console
    assert any("r0_uohm=720000 tcr_ppm=3000" in c for c in res.console)
    assert (res.truth["power_uw"] > 0).any(), res.console[-3:]
    assert not [c for c in res.console if c.startswith("fault calibration")], res.console
    # cooler than it reads, never hotter (measured: 268 C at 0.72 ohm, 175 C at 0.88 ohm)
    assert 150.0 < blade.max() < profiles.MAX_SETPOINT_C

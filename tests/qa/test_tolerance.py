"""The true blade temperature never exceeds 350 C with a stick in, across the
unit tolerances, holder charge and ambient range (calibration record set to
the unit, as end-of-line test would). A corner where the holder could not
finish a session is refused up front instead (charger.py's session gate):
then nothing heats at all."""

from __future__ import annotations

import itertools

import pytest
from conftest import simulate

from hil.rig.dut import Dut

CORNERS = list(
    itertools.product(
        (0.72, 0.88),  # R0: 0.80 ohm +-10 %
        (0.0030, 0.0038),  # TCR per K
        (20.0, 100.0),  # holder SoC %
        (0.0, 50.0),  # ambient C
    )
)


@pytest.mark.parametrize(("r0", "tcr", "soc", "ambient"), CORNERS)
def test_blade_never_above_350_c(
    dut: Dut, r0: float, tcr: float, soc: float, ambient: float
) -> None:
    res = simulate(
        dut,
        f"""
        [scenario]
        name = "corner"
        profile = "intense"   # the hottest profile
        [ambient]
        temp_c = {ambient}
        [holder]
        soc_pct = {soc}
        [unit]
        r0_ohm = {r0}
        tcr_per_k = {tcr}
        [puffing]
        regime = "hci"
        """,
    )
    blade = res.truth["blade_uc"] / 1e6
    heated = bool((res.truth["power_uw"] > 0).any())
    refused = "refused holder_low" in res.console
    assert heated != refused, f"heated={heated}, refused={refused}"
    if soc == 20.0:  # a fifth of a charge cannot finish a session
        assert refused
    if soc == 100.0 and ambient == 50.0:  # the hottest corner must be exercised, not refused
        assert heated
    assert blade.max() < 350.0

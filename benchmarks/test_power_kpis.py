"""The power figures of the standard power scenarios against the baseline:
a change that costs a session per charge, a minute of USB charge time, a
few seconds of holder recharge or a quarter point of fuel-gauge accuracy
(benchmarks/tolerances.toml, [power]) fails here, naming the figure and
both values."""

from __future__ import annotations

from typing import Any

import pytest

from hil.paths import SCENARIOS_DIR
from hil.qa import power_kpi
from hil.scenarios import scenario
from hil.simulator import runner

STANDARD_POWER = (
    "multi_session",
    "multi_session_aged",
    "usb_charge",
    "usb_charge_cold",
    "usb_charge_cool",
    "usb_charge_hot",
)


@pytest.mark.parametrize("name", STANDARD_POWER)
def test_power_figures_against_baseline(benchmark: Any, judge: Any, name: str) -> None:
    sc = scenario.load(SCENARIOS_DIR / f"{name}.toml")
    res = benchmark.pedantic(runner.run, args=(sc,), rounds=1, iterations=1)
    assert res.power is not None and len(res.power), f"{name}: no power frames"
    figures = power_kpi.compute(res.power)
    benchmark.extra_info.update(figures)
    judge.check("power", name, figures)

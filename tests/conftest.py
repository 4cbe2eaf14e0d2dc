"""Shared helpers: scenarios for the device under test, KPIs, firmware imports.

Tests that take the `dut` fixture (hil/pytest_plugin.py) run on whichever
target pytest was given: the simulator by default, or a board
(--target serial --port PORT|virtual).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hil import kpi, scenario, simrun
from hil.dut import Dut
from hil.paths import SCENARIOS_DIR

sys.path.insert(0, str(Path(__file__).parent))


def parse(toml: str) -> scenario.Scenario:
    """A test's own scenario, given as TOML text."""
    return scenario.parse(textwrap.dedent(toml), Path("<test scenario>"))


def simulate(dut: Dut, toml: str, **config: Any) -> simrun.SimResult:
    """Run a test's own scenario (TOML text) on the device under test."""
    return dut.run(parse(toml), **config)


def builtin(dut: Dut, name: str, overrides: dict[str, Any] | None = None) -> simrun.SimResult:
    return dut.run(scenario.load(SCENARIOS_DIR / f"{name}.toml", overrides))


def kpis(res: simrun.SimResult) -> dict[str, Any]:
    return kpi.compute(res.record, kpi.true_puffs(res.truth), res.realtime_factor)


@pytest.fixture
def hci(dut: Dut) -> simrun.SimResult:
    """The main job's scenario; the target runs it once for every test that reads it."""
    return builtin(dut, "hci")

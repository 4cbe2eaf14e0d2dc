"""Shared helpers: run scenarios on the simulator, import firmware modules."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hil import kpi, scenario, simrun
from hil.paths import SCENARIOS_DIR

sys.path.insert(0, str(Path(__file__).parent))


def simulate(toml: str, **kw: Any) -> simrun.SimResult:
    """Simulate a scenario given as TOML text (a test's own scenario)."""
    sc = scenario.parse(textwrap.dedent(toml), Path("<test scenario>"))
    return simrun.run(sc, **kw)


def builtin(name: str, overrides: dict[str, Any] | None = None) -> simrun.SimResult:
    return simrun.run(scenario.load(SCENARIOS_DIR / f"{name}.toml", overrides))


def kpis(res: simrun.SimResult) -> dict[str, Any]:
    return kpi.compute(res.record, kpi.true_puffs(res.truth), res.realtime_factor)


@pytest.fixture(scope="session")
def hci() -> simrun.SimResult:
    """The main job's scenario, simulated once for every test that reads it."""
    return builtin("hci")

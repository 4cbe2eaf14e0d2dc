"""Shared helpers: scenarios for the device under test, KPIs, firmware imports.

Tests that take the `dut` fixture (hil/rig/pytest_plugin.py) run on whichever
target pytest was given: the simulator by default, or a board
(--target serial --port PORT|virtual).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hil.paths import SCENARIOS_DIR
from hil.qa import kpi
from hil.rig.dut import Dut
from hil.scenarios import scenario
from hil.simulator import runner, toolchain

sys.path.insert(0, str(Path(__file__).parent))


def parse(toml: str) -> scenario.Scenario:
    """A test's own scenario, given as TOML text."""
    return scenario.parse(textwrap.dedent(toml), Path("<test scenario>"))


def simulate(dut: Dut, toml: str, **config: Any) -> runner.RunResult:
    """Run a test's own scenario (TOML text) on the device under test."""
    return dut.run(parse(toml), **config)


def builtin(dut: Dut, name: str, overrides: dict[str, Any] | None = None) -> runner.RunResult:
    return dut.run(scenario.load(SCENARIOS_DIR / f"{name}.toml", overrides))


def sim_scenario(toml: str, **kw: Any) -> runner.RunResult:
    """Simulate a test's own scenario (TOML text): for tests that need the
    simulator itself (reboots from a plant snapshot, a cut at a flash byte)."""
    return runner.run(parse(toml), **kw)


def sim_builtin(name: str, overrides: dict[str, Any] | None = None) -> runner.RunResult:
    """Simulate a scenario of scenarios/ (the simulator itself, as above)."""
    return runner.run(scenario.load(SCENARIOS_DIR / f"{name}.toml", overrides))


def run_mpy(script: str) -> dict[str, Any]:
    """Run a script in the unix port with the firmware and simulator modules
    importable; the script prints a JSON object last, which comes back."""
    argv, env = toolchain.micropython_command(["-c", script], modules=toolchain.sim_modules())
    r = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def kpis(res: runner.RunResult) -> dict[str, Any]:
    return kpi.compute(res.series, kpi.true_puffs(res.truth), res.realtime_factor)


def heatrig(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hil.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture(scope="session")
def multi_session_run() -> runner.RunResult:
    """multi_session (6 h of device time, ~20 s of wall clock): simulated once
    for every test of the session that reads it."""
    return sim_builtin("multi_session")


@pytest.fixture(scope="session")
def usb_charge_run() -> runner.RunResult:
    """usb_charge (2.5 h of device time): simulated once for the session."""
    return sim_builtin("usb_charge")


@pytest.fixture
def hci(dut: Dut) -> runner.RunResult:
    """The main job's scenario; the target runs it once for every test that reads it."""
    return builtin(dut, "hci")


def open_pairing(dut: Dut) -> None:
    """The user double-clicks the charger button: the kit's pairing window opens."""
    dut.charger_double_click()
    dut.expect_event(r"^ble pairing open$", timeout_s=0.5)

"""The firmware stays firmware: it compiles for the ESP32, runs in the ESP32
heap budget, and its control step allocates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.paths import FIRMWARE_DIR, SCENARIOS_DIR, SIM_DIR
from hil.qa import kpi
from hil.rig.dut import Dut
from hil.scenarios import scenario
from hil.simulator import runner, toolchain

FIRMWARE_FILES = sorted(FIRMWARE_DIR.glob("*.py"))
SIM_FILES = sorted(SIM_DIR.rglob("*.py"))  # the plant runs on a board too (processor in the loop)


@pytest.mark.parametrize(
    "src", FIRMWARE_FILES + SIM_FILES, ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_compiles_for_esp32(src: Path, tmp_path: Path) -> None:
    toolchain.compile_file(src, tmp_path / "out.mpy", arch="xtensawin")
    assert (tmp_path / "out.mpy").stat().st_size > 0


def test_mpy_cross_rejects_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import micropython\n@micropython.viper\ndef f(x: int) -> int:\n    return x +\n"
    )
    with pytest.raises(toolchain.ToolError, match=r"bad\.py"):
        toolchain.compile_file(bad, tmp_path / "bad.mpy", arch="xtensawin")


def test_control_step_allocates_nothing(dut: Dut) -> None:
    """Every timer callback of a whole session -- preheat, puffs, end warning,
    cooling -- runs under micropython.heap_lock(): one allocation would raise
    MemoryError and fail the run."""
    sc = scenario.load(SCENARIOS_DIR / "hci.toml")
    res = dut.run(sc, lock_heap=True)
    k = kpi.compute(res.series, kpi.true_puffs(res.truth))
    assert k["end_reason"] == "time_limit"
    assert k["puffs_detected"] == 12
    # every control step ran locked; all but the last main-loop period's frames were sent
    assert 0 <= int(res.info["timer_fires"]) - len(res.series) <= 5


def test_heap_lock_does_catch_an_allocation() -> None:
    """The check above can fail: a firmware-style timer callback that
    allocates one list is stopped by the same mechanism."""
    with pytest.raises(runner.SimError, match="MemoryError"):
        runner.run(
            scenario.parse(
                '[scenario]\nname = "alloc"\nduration_s = 3.0\n[puffing]\nregime = "none"\n'
            ),
            lock_heap=True,
            extra_config={"probe_allocating_timer": True},
        )


@pytest.mark.heap_budget
def test_whole_simulation_fits_the_esp32_heap(hci: runner.RunResult) -> None:
    """The firmware runs a whole session with the free heap of a 156K
    interpreter (the ESP32's budget in 64-bit objects; the simulator's own
    objects set aside), and boots using at most three quarters of it: the
    rest is for what it allocates as it runs. On every target that holds the
    firmware to that budget."""
    assert runner.ESP32_HEAP == "156K"
    budget = int(hci.info["heap_budget"])
    assert budget == toolchain.free_heap("156K")
    assert hci.info["reason"] == "end_of_scenario"
    assert 0 < int(hci.info["heap_boot"]) <= budget * 3 // 4


def test_a_run_too_big_for_its_heap_fails_loudly() -> None:
    with pytest.raises(runner.SimError, match="MemoryError"):
        runner.run(scenario.load(SCENARIOS_DIR / "hci.toml"), heap="40K")


def test_builtin_scenarios_are_valid() -> None:
    for path in SCENARIOS_DIR.glob("*.toml"):
        scenario.load(path)

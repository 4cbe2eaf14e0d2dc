"""What a target declares it has (Target.capabilities()) is what it has: the
simulator's and the virtual board's declarations, each marker judged against
them with its reason, and -- on whichever target the tests run (the
simulator, then the virtual board in `make test`) -- the declarations checked
against what the device does."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator

import pytest

from hil.rig import artifacts, pytest_plugin
from hil.rig.dut import Dut
from hil.rig.link import Link
from hil.rig.targets import Capabilities, SerialTarget, SimTarget
from hil.rig.transport import LinkClosed
from hil.simulator import runner, toolchain


@pytest.fixture(scope="module")
def vboard(tmp_path_factory: pytest.TempPathFactory) -> Generator[SerialTarget, None, None]:
    t = SerialTarget("virtual", 115200, workdir=tmp_path_factory.mktemp("caps"))
    yield t
    t.close()


# --- the declarations ---------------------------------------------------------------------
def test_the_simulator_declares_its_plant_and_heap_budget_and_no_hardware() -> None:
    assert SimTarget().capabilities() == Capabilities(
        plant=True, power_hw=False, radio=False, heap_budget=True, link_ends_with_run=True
    )


def test_the_virtual_board_declares_what_the_simulator_does_but_its_open_port(
    vboard: SerialTarget,
) -> None:
    assert vboard.capabilities() == Capabilities(
        plant=True, power_hw=False, radio=False, heap_budget=True, link_ends_with_run=False
    )


def test_every_marker_is_a_capability_with_a_skip_reason() -> None:
    fields = {f.name for f in dataclasses.fields(Capabilities)}
    assert set(pytest_plugin.MARKERS) == set(artifacts.REASONS)
    assert set(pytest_plugin.MARKERS) <= fields


# --- markers judged against them ----------------------------------------------------------
class _NoHeapBudget(SimTarget):
    """A simulator that would not hold the firmware to the ESP32's heap."""

    name = "nobudget"

    def capabilities(self) -> Capabilities:
        return dataclasses.replace(super().capabilities(), heap_budget=False)


def test_a_marker_the_target_lacks_skips_the_test_with_its_reason() -> None:
    with pytest.raises(artifacts.NotCapable, match=r"needs a real BLE radio.*\(target: sim\)$"):
        artifacts.check_capabilities(SimTarget(), ["radio"])
    with pytest.raises(artifacts.NotCapable, match=r"ESP32's heap budget.*\(target: nobudget\)$"):
        artifacts.check_capabilities(_NoHeapBudget(), ["dut", "heap_budget"])


def test_markers_the_target_has_and_other_markers_let_the_test_run() -> None:
    artifacts.check_capabilities(SimTarget(), ["plant", "heap_budget", "dut", "parametrize"])
    artifacts.check_capabilities(_NoHeapBudget(), ["plant"])


# --- the declarations against the device ----------------------------------------------------
@pytest.mark.plant
def test_the_plant_and_the_heap_budget_are_as_declared(dut: Dut, hci: runner.RunResult) -> None:
    caps = dut.target.capabilities()
    assert hci.series.has_truth == caps.plant  # the plant's truth came with the telemetry
    assert caps.power_hw == (not caps.plant)
    held = int(hci.info["heap_budget"]) == toolchain.free_heap(runner.ESP32_HEAP)
    assert held == caps.heap_budget


@pytest.mark.plant
def test_the_radio_is_real_only_where_declared(dut: Dut) -> None:
    dut.start()
    emulated = any(a.name == "heatrig" for a in dut.ble().phone().scan(timeout_s=1.0))
    assert emulated == (not dut.target.capabilities().radio)


@pytest.mark.plant
def test_the_link_ends_with_the_run_only_where_declared(dut: Dut) -> None:
    dut.start()
    assert dut.live is not None
    link = dut.live.link
    link.send_line("@plant end")
    assert _closed_by_the_run_end(link, 10.0) == dut.target.capabilities().link_ends_with_run


def _closed_by_the_run_end(link: Link, timeout_s: float) -> bool:
    """Whether the link closes when the run ends (else a board's raw REPL
    prompt comes back on its open port)."""
    end = time.monotonic() + timeout_s
    try:
        while not link.stray.endswith(b"\x04>"):
            if time.monotonic() > end:
                raise AssertionError(f"the run did not end within {timeout_s:g} s")
            link.pump(0.1)
    except LinkClosed:
        return True
    return False

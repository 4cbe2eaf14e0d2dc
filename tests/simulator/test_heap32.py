"""The 32-bit heap check (hil/simulator/heap32.py; `make heap32`, part of
`make test`): its budget from the ESP32 port, its margin's limit, and its
measurement on the 32-bit MicroPython."""

from __future__ import annotations

import pytest

from hil.scenarios import scenario
from hil.simulator import heap32, runner
from hil.simulator.toolchain import ToolError


def test_the_budget_is_the_ports_initial_heap_grown_once_less_the_gc_tables() -> None:
    assert heap32.INITIAL_HEAP_BYTES == 56 * 1024
    # 16-byte blocks, a table byte per 4 of them and a finaliser byte per 8
    blocks = 2 * 56 * 1024 / (16 + 1 / 4 + 1 / 8)
    assert heap32.BUDGET_BYTES == int(blocks * 16) == 112_061


def _report(peak: int) -> heap32.Heap32Report:
    return heap32.Heap32Report("test", {0.3: peak - 100, 12.0: peak}, nimble_bytes=3000)


def test_the_margin_holds_at_a_quarter_of_the_budget_and_not_a_byte_less() -> None:
    limit = heap32.BUDGET_BYTES - int(heap32.MARGIN_SHARE * heap32.BUDGET_BYTES + 0.999) - 3000
    assert _report(limit).holds
    assert not _report(limit + 1).holds
    r = _report(limit)
    assert (r.boot_bytes, r.peak_bytes, r.peak_at_s) == (limit - 100, limit, 12.0)


def test_the_32_bit_run_measures_the_booted_firmware() -> None:
    """One instant, after boot: the firmware's live heap on wasm32 (its
    objects smaller than on the 64-bit unix port); and the simulator's budget
    there (runner.ESP32_HEAP) no kinder than the ESP32's at the ratio of the
    two boots: the same firmware, the same share of its heap."""
    try:
        r = heap32.run((0.3,))
    except ToolError as e:
        pytest.fail(f"{e}")
    assert 40_000 < r.boot_bytes < 80_000, r.summary()
    assert r.nimble_bytes > heap32.NIMBLE_FIXED_BYTES  # the firmware's table was registered
    sc = scenario.parse('[scenario]\nname = "boot"\nduration_s = 3.0\n')
    info = runner.run(sc).info
    boot64, budget64 = int(info["heap_boot"]), int(info["heap_budget"])
    assert boot64 > r.boot_bytes
    assert budget64 * r.boot_bytes / boot64 <= heap32.BUDGET_BYTES, (boot64, budget64, r.boot_bytes)

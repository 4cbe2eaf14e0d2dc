"""The firmware stays firmware: it compiles for the ESP32, runs in the ESP32
heap budget, and its control step allocates nothing."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

from hil.paths import FIRMWARE_DIR, SCENARIOS_DIR, SIM_DIR
from hil.qa import kpi
from hil.rig.dut import Dut
from hil.scenarios import scenario
from hil.simulator import native, runner, toolchain

FIRMWARE_FILES = sorted(FIRMWARE_DIR.glob("*.py"))
SIM_FILES = sorted(SIM_DIR.rglob("*.py"))  # the plant runs on a board too (processor in the loop)


@pytest.mark.parametrize(
    "src", FIRMWARE_FILES + SIM_FILES, ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_compiles_for_esp32(src: Path, tmp_path: Path) -> None:
    toolchain.compile_file(src, tmp_path / "out.mpy", arch="xtensawin")
    assert (tmp_path / "out.mpy").stat().st_size > 0


# What the ESP32 port has to import (docs.micropython.org/en/latest/library,
# ports/esp32/mpconfigport.h); the firmware's and the plant's own modules
# besides. A CPython module (typing, say) fails on the board, guarded or not.
# fmt: off
DEVICE_MODULES = frozenset({
    "_thread", "array", "asyncio", "binascii", "bluetooth", "collections", "errno", "esp",
    "esp32", "gc", "hashlib", "io", "json", "machine", "math", "micropython", "network", "os",
    "random", "re", "select", "socket", "struct", "sys", "time", "uctypes", "umachine", "utime",
    "vfs",
})
# fmt: on


def _imports(src: Path) -> set[str]:
    tree = ast.parse(src.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):  # every import: in functions and under try too
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "src", FIRMWARE_FILES + SIM_FILES, ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_imports_only_what_the_device_has(src: Path) -> None:
    own = {p.stem for p in FIRMWARE_FILES} | {"sim"}
    foreign = sorted(_imports(src) - DEVICE_MODULES - own)
    assert not foreign, f"{src.name} imports {foreign}: not on MicroPython's ESP32 port"


# The control step's modules, and the bytecode functions its native ones call
# that may take their frame from the heap (hil/simulator/native.py
# frame_bytes), with why that is not the step's every period.
STEP_MODULES = (
    "heater_ctl",
    "heater_safety",
    "puff_detect",
    "profiles",
    "cal_check",
    "ntc",
    "framing",
)
RARE_CALLS = {"heater_ctl._serve_request": "a start, stop or clear request: once a button press"}


def _functions(module: str) -> tuple[str, list[ast.FunctionDef]]:
    src = (FIRMWARE_DIR / f"{module}.py").read_text(encoding="utf-8")
    return src, [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef)]


def _native(fn: ast.FunctionDef) -> bool:
    return any("micropython" in ast.unparse(d) for d in fn.decorator_list)


def test_the_control_steps_bytecode_calls_keep_their_frames_off_the_heap(tmp_path: Path) -> None:
    """Every bytecode function a native function of the control step calls
    (by name) has a frame the ESP32 port keeps on the C stack: a larger one
    is a heap allocation at each call on the board, which the step's
    heap_lock check cannot see (the allocation falls back to the stack)."""
    natives = []
    for m in STEP_MODULES:
        src, fns = _functions(m)
        natives += [ast.get_source_segment(src, f) or "" for f in fns if _native(f)]
    called = "\n".join(natives)
    checked = []
    for m in STEP_MODULES:
        src, fns = _functions(m)
        for f in fns:
            if _native(f) or not re.search(rf"\b{f.name}\(", called):
                continue
            one = tmp_path / f"{m}_{f.name}.py"
            body = textwrap.dedent(ast.get_source_segment(src, f) or "")
            one.write_text("from micropython import const\n" + body + "\n")
            toolchain.compile_file(one, one.with_suffix(".mpy"))
            [size] = native.frame_bytes(one.with_suffix(".mpy").read_bytes())
            checked.append(f"{m}.{f.name}")
            if f"{m}.{f.name}" not in RARE_CALLS:
                assert size <= native.STATE_ON_STACK_BYTES, f"{m}.{f.name}: a {size}-byte frame"
    assert "puff_detect.update" in checked and "heater_ctl._session" in checked, checked
    assert set(RARE_CALLS) <= set(checked)


def test_a_large_bytecode_frame_is_seen(tmp_path: Path) -> None:
    src = tmp_path / "big.py"
    args = ", ".join(f"a{i}" for i in range(12))
    src.write_text(f"def big({args}):\n    return a0 + a11\n\ndef small(a):\n    return a\n")
    toolchain.compile_file(src, tmp_path / "big.mpy")
    big, small = native.frame_bytes((tmp_path / "big.mpy").read_bytes())
    assert big > native.STATE_ON_STACK_BYTES >= small


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

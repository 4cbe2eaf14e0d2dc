"""The control-step benchmark measures what the firmware does: its extract of
the control law equals the firmware's step, under every emitter."""

from __future__ import annotations

from benchmarks import stepbench
from hil.paths import FIRMWARE_DIR


def test_the_control_law_extract_equals_the_firmware_step_for_step() -> None:
    out = stepbench.run("step_equiv.py", "shipped", "1000")
    assert out["steps"] == 3000
    assert out["mismatches"] == {"bytecode": 0, "native": 0, "viper": 0}, out["first"]
    # every branch of the controller was exercised, below 20 C included
    assert min(out["branches"].values()) >= 20, out["branches"]


def test_the_bytecode_build_drops_native_and_keeps_viper() -> None:
    src = (FIRMWARE_DIR / "heater_ctl.py").read_text()
    assert "@micropython.native" in src
    assert "@micropython.native" not in stepbench.source_for("bytecode", src)
    framing = (FIRMWARE_DIR / "framing.py").read_text()
    assert stepbench.source_for("bytecode", framing).count("@micropython.viper") == 1
    assert stepbench.source_for("shipped", src) == src


def test_the_bench_times_a_heating_step_that_allocates_nothing() -> None:
    for variant in stepbench.VARIANTS:
        out = stepbench.run("step_bench.py", variant, "step-only")
        assert out["state_after"] == 2, variant  # HEATING: the path a session takes
        assert out["step_ns"] is not None, f"{variant}: the step allocated under heap_lock"


def test_the_shipped_step_is_native() -> None:
    emitters = stepbench.firmware_emitters()
    assert emitters["step"] == emitters["_control"] == "native"

"""Builds and runs the control-step benchmarks inside MicroPython
(benchmarks/mpy/): the firmware's step as shipped and rebuilt as plain
bytecode, and the control law extracted for the bytecode, native and viper
emitters.

A build is a directory of modules compiled with `mpy-cross -march=x64`, as
the simulator's are (native and viper code need an architecture); the
benchmark scripts run from source with that directory first on the path.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from hil.paths import FIRMWARE_DIR, ROOT
from hil.simulator import toolchain

BENCH_DIR = ROOT / "benchmarks" / "mpy"
VARIANTS = ("shipped", "bytecode")  # how the firmware is built
EMITTERS = ("bytecode", "native", "viper")
_NATIVE = re.compile(r"^[ \t]*@micropython\.native[ \t]*\n", re.MULTILINE)
_MODULES = ("fake_machine", "bench_setup", "control_law", "control_law_viper")


class BenchError(RuntimeError):
    """A benchmark script failed inside MicroPython; the message has its output."""


def firmware_emitters(path: Path = FIRMWARE_DIR / "heater_ctl.py") -> dict[str, str]:
    """Function name -> emitter (bytecode, native, viper) in a firmware module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            emitter = "bytecode"
            for d in node.decorator_list:
                if isinstance(d, ast.Attribute) and d.attr in ("native", "viper"):
                    emitter = d.attr
            out[node.name] = emitter
    return out


def source_for(variant: str, text: str) -> str:
    """A firmware module's source for a build variant: as shipped, or with
    every native decorator removed (viper code stays: it has no bytecode form)."""
    return _NATIVE.sub("", text) if variant == "bytecode" else text


def build(variant: str) -> Path:
    """Compiled firmware (as shipped, or with every native decorator removed)
    and the benchmark modules; cached by content."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    sources = [
        toolchain.ModuleSource(p.name, source_for(variant, p.read_text(encoding="utf-8")))
        for p in sorted(FIRMWARE_DIR.glob("*.py"))
    ]
    sources += [toolchain.ModuleSource(f"{m}.py", BENCH_DIR / f"{m}.py") for m in _MODULES]
    sources.append(toolchain.ModuleSource("control_law_native.py", _native_control_law()))
    return toolchain.compiled_modules(f"stepbench-{variant}", sources, "x64")


def _native_control_law() -> str:
    """The extracted control law with its step compiled by the native emitter."""
    law = (BENCH_DIR / "control_law.py").read_text(encoding="utf-8")
    native = law.replace("\ndef control(", "\n@micropython.native\ndef control(", 1)
    return native.replace(
        "from micropython import const", "import micropython\nfrom micropython import const", 1
    )


def command(script: str, variant: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run a benchmark script."""
    return toolchain.micropython_command([str(BENCH_DIR / script), *args], modules=build(variant))


def run(script: str, variant: str, *args: str, timeout_s: float = 300.0) -> dict[str, Any]:
    """Run a benchmark script and return the JSON object it prints."""
    cmd, env = command(script, variant, *args)
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{script} did not finish within {timeout_s:.0f} s") from None
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    try:
        if proc.returncode != 0:
            raise ValueError
        result: dict[str, Any] = json.loads(last[0])
    except ValueError:
        detail = (proc.stdout + proc.stderr).strip() or "(no output)"
        raise BenchError(f"{script} {variant} failed (exit {proc.returncode}):\n{detail}") from None
    return result

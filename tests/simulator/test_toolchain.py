"""The toolchain: one way to launch the unix port, one cache of compiled modules."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from hil.simulator import toolchain
from hil.simulator.toolchain import ModuleSource


def test_the_command_sets_heap_and_module_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROPYPATH", "/elsewhere")
    argv, env = toolchain.micropython_command(["-c", "1"], heap="64K", modules=Path("/mods"))
    assert argv == [toolchain.micropython(), "-X", "heapsize=64K", "-c", "1"]
    assert env["MICROPYPATH"] == "/mods:.frozen"
    argv, env = toolchain.micropython_command(["-c", "1"])
    assert argv == [toolchain.micropython(), "-c", "1"]
    assert "MICROPYPATH" not in env  # the unix port's own default path


def test_compiled_modules_are_cached_by_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(toolchain, "BUILD_DIR", tmp_path / "build")
    (tmp_path / "a.py").write_text("X = 1\n")
    sources = [
        ModuleSource("a.py", tmp_path / "a.py"),
        ModuleSource("pkg/b.py", "def f():\n    return 2\n", native=True),
    ]
    first = toolchain.compiled_modules("t-x64", sources)
    assert {p.relative_to(first).as_posix() for p in first.rglob("*.mpy")} == {"a.mpy", "pkg/b.mpy"}
    assert not (first / ".src").exists()
    assert toolchain.compiled_modules("t-x64", sources) == first
    code = "import a; from pkg import b; print(a.X + b.f())"
    argv, env = toolchain.micropython_command(["-c", code], modules=first)
    assert subprocess.run(argv, env=env, capture_output=True, text=True).stdout == "3\n"

    (tmp_path / "a.py").write_text("X = 2\n")
    second = toolchain.compiled_modules("t-x64", sources)
    # the earlier build stays while another process may still run from it
    assert second != first and first.exists()
    assert subprocess.run(argv, env=env, capture_output=True, text=True).stdout == "3\n"
    unused = time.time() - toolchain.STALE_S - 1
    os.utime(first, (unused, unused))
    assert toolchain.compiled_modules("t-x64", sources) == second
    assert not first.exists()  # unused for an hour: gone
    as_bytecode = [sources[0], ModuleSource("pkg/b.py", sources[1].source)]
    assert toolchain.compiled_modules("t-x64", as_bytecode) != second


def test_only_a_changed_module_is_compiled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(toolchain, "BUILD_DIR", tmp_path / "build")
    for name in "abc":
        (tmp_path / f"{name}.py").write_text(f"X = {name!r}\n")
    sources = [ModuleSource(f"{n}.py", tmp_path / f"{n}.py") for n in "abc"]
    toolchain.compiled_modules("t-x64", sources)
    compiled: list[str] = []
    real = toolchain.compile_file

    def counting(src: Path, dst: Path, arch: str | None = None, native: bool = False) -> None:
        compiled.append(src.name)
        real(src, dst, arch, native)

    monkeypatch.setattr(toolchain, "compile_file", counting)
    (tmp_path / "b.py").write_text("X = 'B'\n")
    build = toolchain.compiled_modules("t-x64", sources)
    assert compiled == ["b.py"]
    assert {p.name for p in build.glob("*.mpy")} == {"a.mpy", "b.mpy", "c.mpy"}
    code = "import a, b, c; print(a.X + b.X + c.X)"
    argv, env = toolchain.micropython_command(["-c", code], modules=build)
    assert subprocess.run(argv, env=env, capture_output=True, text=True).stdout == "aBc\n"

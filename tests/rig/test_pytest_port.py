"""`pytest --target serial --port PORT`, exactly as the README writes it, on a
port whose path exists: pytest takes a separate word that names an existing
path for a test path while it looks for its rootdir -- before the plugin is
loaded -- and would root the run at /dev (or /dev/pts). The plugin runs pytest
again with the option joined to its value (hil/rig/pytest_plugin.py reroot()).

Here a virtual board's pty (/dev/pts/N, which exists) stands for the board's
port; `make test` runs the whole `dut` suite the same way (tests/board_session.py)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Generator
from pathlib import Path

import pytest

from hil.paths import ROOT
from hil.rig import pytest_plugin
from hil.rig.targets import Capabilities, SerialTarget
from hil.rig.vboard import VirtualBoard

pytest_plugins = ["pytester"]

INNER = """
from pathlib import Path


def test_rooted_at_the_project(request):
    assert request.config.rootpath == Path({root!r})
    assert request.config.inipath == Path({root!r}) / "pyproject.toml"
    assert request.config.getini("testpaths") == ["checks"]
    assert request.config.getoption("--port") == {port!r}


def test_on_the_board(dut):
    assert dut.target.describe() == "serial " + {port!r}
    dut.start()
    assert dut.command("ver").startswith("OK heatrig")
"""


def readme_command() -> list[str]:
    """The README's command for a board on /dev/ttyUSB0, as words."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    line = re.search(r"^pytest --target serial --port /dev/ttyUSB0\b.*$", text, re.M)
    assert line is not None, "the README no longer shows the command for a board"
    return shlex.split(line.group(0).split("#")[0])


@pytest.fixture(scope="module")
def pty_board(tmp_path_factory: pytest.TempPathFactory) -> Generator[VirtualBoard, None, None]:
    with VirtualBoard(tmp_path_factory.mktemp("ptyboard") / "flash") as vb:
        yield vb


def test_the_readme_command_runs_as_written_on_a_port_whose_path_exists(
    pytester: pytest.Pytester, pty_board: VirtualBoard
) -> None:
    port = pty_board.port
    assert Path(port).exists()
    words = readme_command()
    assert words == ["pytest", "--target", "serial", "--port", "/dev/ttyUSB0"]
    args = [port if w == "/dev/ttyUSB0" else w for w in words[1:]]
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\ntestpaths = ["checks"]\n')
    root = str(pytester.path)
    (pytester.path / "checks").mkdir()
    (pytester.path / "checks" / "test_inner.py").write_text(INNER.format(root=root, port=port))
    run = pytester.runpytest_subprocess(*args)
    run.stdout.fnmatch_lines([f"rootdir: {root}", "configfile: pyproject.toml"])
    run.assert_outcomes(passed=2)


def test_where_pytest_cannot_be_run_again_the_error_says_what_to_write(
    pytester: pytest.Pytester, pty_board: VirtualBoard
) -> None:
    """pytest.main() inside a process: no second run, a usage error instead."""
    pytester.makepyfile("def test_x():\n    pass\n")
    run = pytester.runpytest_inprocess("--target", "serial", "--port", pty_board.port)
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(
        [f"*join the option and its value with `=`: --target serial --port={pty_board.port}*"]
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port", "/dev/null"], ["--port=/dev/null"]),
        (["-m", "dut", "--port", "/dev/null", "-q"], ["-m", "dut", "--port=/dev/null", "-q"]),
        (["--results", "/tmp", "--port", "virtual"], ["--results=/tmp", "--port", "virtual"]),
        (["--port", "virtual"], None),  # not a path
        (["--port", "/no/such/port"], None),  # no such path: pytest ignores it too
        (["--port=/dev/null"], None),
        (["--junitxml", "/dev/null"], None),  # pytest's own option: it knows its value
        (["--", "--port", "/dev/null"], None),
        (["--port"], None),
    ],
)
def test_joined_takes_exactly_the_plugins_values_that_name_a_path(
    args: list[str], expected: list[str] | None
) -> None:
    assert pytest_plugin.joined(args) == expected


def test_a_board_at_a_path_declares_the_heap_budget_by_what_it_is(
    pty_board: VirtualBoard, tmp_path: Path
) -> None:
    """Not by whether the rig started it: a virtual board at a path holds the
    firmware to the heap budget as `--port virtual` does."""
    t = SerialTarget(pty_board.port, 115200, workdir=tmp_path)
    try:
        assert t.capabilities() == Capabilities(
            plant=True, power_hw=False, radio=False, heap_budget=True, link_ends_with_run=False
        )
    finally:
        t.close()

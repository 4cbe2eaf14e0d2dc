"""A board is left as found: its stored state -- the firmware's store records
(settings, calibration, counters, the fault log, bonds, registration) and the
rig's own files -- is read before the deploy and put back byte for byte, before
each real-time boot of its firmware and at the end of the session, a failed
test or a Ctrl-C included. Checked on the board's flash itself (a virtual
board's folder), apart from the rig's own reading of it.

`make test` runs the whole `dut` suite this way (tests/board_session.py);
here a failing session and an interrupted one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path

import board_session
import pytest

from hil.paths import ROOT
from hil.rig.board import Board, is_state_file
from hil.rig.vboard import VirtualBoard

pytest_plugins = ["pytester"]


@pytest.fixture
def user_board(tmp_path: Path) -> Generator[tuple[VirtualBoard, Board], None, None]:
    flash = tmp_path / "flash"
    board_session.seed(flash)
    with VirtualBoard(flash) as vb:
        b = Board(vb.port, 115200)
        try:
            b.to_repl()
            yield vb, b
        finally:
            b.close()


def test_the_state_is_the_records_and_the_rigs_files(tmp_path: Path) -> None:
    names = ["settings.a", "calib.b", "registration.a", "run.json", "repl.hold", "calib.a.part"]
    others = ["main.py", "app.mpy", "heatrig.json", "boot.py", "pil.json", "notes.txt", "a.b.c"]
    assert all(is_state_file(n) for n in names)
    assert not any(is_state_file(n) for n in others)


def test_a_boards_state_is_read_and_put_back_byte_for_byte(
    user_board: tuple[VirtualBoard, Board],
) -> None:
    vb, b = user_board
    found = b.state()
    assert found == board_session.state_files(vb.flash)
    assert len(found) == 8
    b.write("calib.a", b"another unit")
    b.write("run.json", b"{}")
    b.remove("registration.a")
    (vb.flash / "settings.b.part").write_bytes(b"cut")
    assert b.restore_state(found) == [
        "calib.a", "registration.a", "run.json", "settings.b.part",
    ]  # fmt: skip
    assert board_session.state_files(vb.flash) == found
    assert b.restore_state(found) == []  # nothing left to do


INNER = """
def test_changes_the_state_then_fails(dut):
    dut.start()
    dut.command("set profile intense")
    dut.command("set telemetry 1")
    dut.command("cal 812000 3420")
    assert False, "on purpose"


def test_a_real_time_boot_finds_the_boards_own_state(dut):
    dut.start(real_time=True)
    assert dut.command("settings") == "OK profile=eco telemetry=0"
    assert dut.command("cal") == "OK r0_uohm=801200 tcr_ppm=3490 stored=1"
"""


def _session(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tests.board_session", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_failed_test_leaves_the_board_as_found(pytester: pytest.Pytester) -> None:
    """A test that changes the board's settings and calibration and fails: the
    next real-time boot finds the board's own, and so does its user after."""
    pytester.makepyfile(test_inner=INNER)
    r = _session(
        pytester.path,
        "--",
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--target",
        "serial",
        "--port",
        "{port}",
    )
    assert "1 failed, 1 passed" in r.stdout, r.stdout + r.stderr
    assert "8 after" in r.stdout and ": byte-identical;" in r.stdout, r.stdout


def test_an_interrupted_run_leaves_the_board_as_found() -> None:
    """Ctrl-C in the middle of the console tests (after the fourth result):
    pytest ends the session, the rig puts the board's state back."""
    r = _session(
        ROOT,
        "--interrupt-after",
        "4",
        "--",
        sys.executable,
        "-m",
        "pytest",
        "-v",
        "-p",
        "no:cacheprovider",
        "-m",
        "dut",
        "--target",
        "serial",
        "--port",
        "{port}",
        "tests/rig/test_console.py",
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "KeyboardInterrupt" in r.stdout
    assert ": byte-identical;" in r.stdout

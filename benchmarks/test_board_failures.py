"""How fast a port that leads nowhere fails, in wall time: `heatrig deploy`
on a port with nothing behind it and on one with something that is not a
MicroPython REPL, and `heatrig flash` on a port with no ROM bootloader. Each
must fail within the time the docs state (hil/rig/board.py FAILS_WITHIN_S,
hil/farm/flash.py FAILS_WITHIN_S); the tests check the messages, not the time."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hil.farm import flash
from hil.rig import board

CHATTER = b"ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\nI (31) app: hello\r\n"


@contextmanager
def _port(respond: bytes | None) -> Iterator[str]:
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


def _heatrig_fails(*args: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "hil.cli", *args], capture_output=True, text=True, timeout=120
    )
    took = time.perf_counter() - t0
    assert r.returncode == 2, r.stderr
    return took


@pytest.mark.parametrize(("what", "respond"), [("nothing", None), ("chatter", CHATTER)])
def test_deploy_to_a_dead_port_fails_within_the_stated_time(
    benchmark: Any, what: str, respond: bytes | None
) -> None:
    took: list[float] = []
    with _port(respond) as port:
        benchmark.pedantic(
            lambda: took.append(_heatrig_fails("deploy", "--port", port)), rounds=2, iterations=1
        )
    benchmark.extra_info.update(seconds=round(max(took), 2), bound_s=board.FAILS_WITHIN_S)
    print(f"\ndeploy, {what} behind the port: failed in {max(took):.1f} s")
    assert max(took) <= board.FAILS_WITHIN_S


def test_flash_to_a_port_with_no_rom_bootloader_fails_within_the_stated_time(
    benchmark: Any, tmp_path: Path
) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(bytes([flash.IMAGE_MAGIC]) + bytes(200 * 1024))
    took: list[float] = []
    with _port(None) as port:
        benchmark.pedantic(
            lambda: took.append(_heatrig_fails("flash", "--port", port, "--image", str(image))),
            rounds=2,
            iterations=1,
        )
    benchmark.extra_info.update(seconds=round(max(took), 2), bound_s=flash.FAILS_WITHIN_S)
    print(f"\nflash, no ROM bootloader behind the port: failed in {max(took):.1f} s")
    assert max(took) <= flash.FAILS_WITHIN_S

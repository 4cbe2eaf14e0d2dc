"""The serial path against the simulator's pipes: the same scenario and the
same live session give the same telemetry, byte for byte, whether the
firmware runs as a child process or on a virtual board reached through
pyserial and the raw REPL after a real deploy. And the processor-in-the-loop
boot: after a deploy the board runs the firmware against the plant in real
time, its console answering."""

from __future__ import annotations

import re
import time
from collections.abc import Generator
from pathlib import Path

import pytest
from conftest import parse

from hil.rig import deploy
from hil.rig.dut import Dut
from hil.rig.targets import SerialTarget, SimTarget, Target
from hil.wire import frames
from hil.wire.series import TelemetrySeries

SCENARIO = """
[scenario]
name = "short hci"
duration_s = 60.0
[puffing]
regime = "hci"
"""


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Generator[list[Target], None, None]:
    ts: list[Target] = [
        SimTarget(),
        SerialTarget("virtual", 115200, workdir=tmp_path_factory.mktemp("serial")),
    ]
    yield ts
    for t in ts:
        t.close()


def _csv(rec: TelemetrySeries) -> str:
    """The record as CSV, less the line naming the target."""
    return "\n".join(line for line in rec.to_csv().splitlines() if not line.startswith("# target:"))


def _live(t: Target, log: Path) -> str:
    dut = Dut(t, log_path=log)
    try:
        dut.start()
        dut.command("start")
        dut.wait_state("heating", timeout_s=30)
        dut.puff()
        dut.advance(5.0)
        dut.fault("heater_open")
        dut.wait_state("fault", timeout_s=0.1)
        return _csv(dut.telemetry())
    finally:
        dut.close()


def test_a_scenario_gives_the_same_telemetry_on_both_paths(targets: list[Target]) -> None:
    sim, board = (t.run(parse(SCENARIO)) for t in targets)
    fast = sim.series.cols["idle_rate"] == 0
    assert fast[-1] and fast.sum() > 5800  # 100 Hz from the button on (asleep before: 1 Hz)
    assert board.series.meta["target"].endswith("(virtual board)")
    assert _csv(sim.series) == _csv(board.series)
    assert _boots_masked(sim.console) == _boots_masked(board.console)


def _boots_masked(console: list[str]) -> list[str]:
    """The console, less the boot count: the board booted once more, at its deploy."""
    return [re.sub(r" boots=\d+", "", line) for line in console]


def test_a_live_session_gives_the_same_telemetry_on_both_paths(
    targets: list[Target], tmp_path: Path
) -> None:
    sim, board = (_live(t, tmp_path / f"{t.name}.log") for t in targets)
    assert sim.count("\n") > 2000
    assert sim == board


def test_after_a_deploy_the_board_runs_the_firmware_with_the_plant_in_real_time(
    targets: list[Target],
) -> None:
    serial_target = targets[1]
    assert isinstance(serial_target, SerialTarget)
    board = serial_target.board()
    board.hard_reset()  # boot.py wires in the plant, main.py starts the firmware
    assert deploy.wait_boot(board, 10.0).startswith("boot heatrig")
    port = board.serial
    dec = frames.Decoder()
    got: list[frames.Frame] = []

    def ask(line: bytes, ftype: int) -> str:
        port.write(line + b"\n")
        end = time.monotonic() + 5
        while time.monotonic() < end:
            port.timeout = 0.05
            found, _ = dec.feed(port.read(max(1, port.in_waiting)))
            got.extend(found)
            for f in got:
                if f.ftype == ftype:
                    got.remove(f)
                    return frames.text(f.payload)
        raise AssertionError(f"no reply to {line!r}; got {len(got)} other frames")

    assert ask(b"ver", frames.T_REPLY).startswith("OK heatrig")
    t1 = int(ask(b"@plant at", frames.T_PLANT_REPLY).split("=")[1])
    time.sleep(0.5)
    t2 = int(ask(b"@plant at", frames.T_PLANT_REPLY).split("=")[1])
    assert 0.3e6 < t2 - t1 < 1.0e6  # the plant's clock follows the wall clock

"""Where the firmware runs: the simulator (a child process, pipes) or a board
on a serial port (an ESP32, or the virtual board). Both give the same two
things:

- run(scenario): a whole scenario with its events pre-scheduled, to the end,
  and its record -- the fast path of CI;
- start(scenario): a live session on a link the host drives: console
  commands, plant inputs, and (on a virtual clock) the clock itself.

On a board the scenario reaches the device as files on its flash (run.json
and the unit's calibration and settings), written over the raw REPL, and the
run is started there (sim/run.py board()). The virtual board and a board
running the plant in virtual time play a six-minute session in seconds.

Each target declares what it has (`capabilities()`): the pytest markers of
the same names are judged against it, and tests ask it rather than the
target's kind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.rig import deploy
from hil.rig.board import Board, BoardError
from hil.rig.link import Link, LinkLog
from hil.rig.transport import LinkClosed, SerialTransport, SubprocessTransport
from hil.rig.vboard import VirtualBoard
from hil.scenarios.scenario import Scenario
from hil.simulator import runner

BOARD_RUN = "from sim import run\nrun.board('run.json')\n"
END_MARK = b"sim end reason="


class TargetError(RuntimeError):
    """The target could not do what was asked; the message says what to do."""


@dataclass(frozen=True)
class Capabilities:
    """What a target has. The first four are pytest markers of the same names
    (hil/rig/pytest_plugin.py): a test so marked is skipped where they are false."""

    plant: bool  # the plant models run with the firmware (the simulator, processor in the loop)
    power_hw: bool  # real heater, cells and sense resistors
    radio: bool  # a real BLE radio (else the firmware's is the emulation, sim/mpapi/vbluetooth.py)
    heap_budget: bool  # runs hold the firmware to the ESP32's heap budget (runner.heap_config)
    link_ends_with_run: bool  # the link closes when a run ends (the simulator: one process each)

    def has(self, marker: str) -> bool:
        """The capability a pytest marker names (KeyError: no such capability)."""
        return bool(dataclasses.asdict(self)[marker])


# the simulator: the plant is there, the hardware and the radio are not
SIM_CAPABILITIES = Capabilities(
    plant=True, power_hw=False, radio=False, heap_budget=True, link_ends_with_run=True
)


@dataclass
class Live:
    """A running session: the link, and what kind of clock it has."""

    link: Link
    virtual_clock: bool  # host-stepped virtual time (else real time)
    target: Target
    cfg: dict[str, Any]
    flash: Path | None = None  # the simulator's flash directory

    def finish(self, timeout_s: float = 10.0) -> None:
        self.target.finish(self, timeout_s)


class Target(ABC):
    name: str

    def __init__(self) -> None:
        self._cache: dict[str, runner.RunResult] = {}

    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What this target has (a board's: learned from it on first contact)."""

    @abstractmethod
    def remove_files(self, *names: str) -> None:
        """Remove files from the device's flash before a session (a board's
        flash outlives sessions; the simulator's starts empty each time)."""

    def run(self, sc: Scenario, *, fresh: bool = False, **config: Any) -> runner.RunResult:
        """Run the scenario to its end. Runs are deterministic, so a repeat of
        the same scenario and configuration is served from a cache unless fresh."""
        cfg = sc.run_config()
        cfg.update(config)
        what = [cfg, sc.profile, sc.record, sc.calibration_record()]
        key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()
        if fresh or key not in self._cache:
            self._cache[key] = self._run(sc, cfg, config)
        return self._cache[key]

    @abstractmethod
    def _run(
        self, sc: Scenario, cfg: dict[str, Any], extra: dict[str, Any]
    ) -> runner.RunResult: ...

    @abstractmethod
    def start(self, sc: Scenario, cfg: dict[str, Any], log: LinkLog) -> Live: ...

    @abstractmethod
    def finish(self, live: Live, timeout_s: float) -> None: ...

    @abstractmethod
    def reboot(self, live: Live) -> Live:
        """After the device reset itself: a new session on the same flash (what
        the firmware stored survives), with the same run configuration."""

    @abstractmethod
    def close(self) -> None:
        """Release the target (end of the test session)."""

    def describe(self) -> str:
        return self.name


class SimTarget(Target):
    """The simulator: the unix port as a child process, in virtual time."""

    name = "sim"

    def __init__(self) -> None:
        super().__init__()
        self._flashes: list[Path] = []

    def capabilities(self) -> Capabilities:
        return SIM_CAPABILITIES

    def remove_files(self, *names: str) -> None:
        pass  # every session has a new flash

    def _run(self, sc: Scenario, cfg: dict[str, Any], extra: dict[str, Any]) -> runner.RunResult:
        return runner.run(sc, lock_heap=bool(cfg.get("lock_heap")), extra_config=extra)

    def start(self, sc: Scenario, cfg: dict[str, Any], log: LinkLog) -> Live:
        flash = Path(tempfile.mkdtemp(prefix="heatrig-flash-"))
        self._flashes.append(flash)
        cfg = {**runner.heap_config(), **cfg}
        for name, data in runner.device_files(sc, cfg).items():
            if data is not None:
                (flash / name).write_bytes(data)
        return self._launch(flash, cfg, log)

    def _launch(self, flash: Path, cfg: dict[str, Any], log: LinkLog) -> Live:
        argv, env = runner.simulator_command()
        tr = SubprocessTransport(argv, cwd=flash, env=env)
        log.write("note", f"sim: flash {flash}")
        return Live(Link(tr, log), bool(cfg.get("host_stepped")), self, cfg, flash)

    def reboot(self, live: Live) -> Live:
        _wait_closed(live.link, 10.0)
        assert live.flash is not None
        return self._launch(live.flash, live.cfg, live.link.log)

    def finish(self, live: Live, timeout_s: float) -> None:
        link = live.link
        if not link.closed:
            with contextlib.suppress(LinkClosed):
                link.send_line("@plant end")
            _wait_closed(link, timeout_s)

    def close(self) -> None:
        for flash in self._flashes:
            shutil.rmtree(flash, ignore_errors=True)


class SerialTarget(Target):
    """A board on a serial port, the firmware deployed to it first (once per
    session). port "virtual" starts a virtual board (hil/rig/vboard.py) for it."""

    name = "serial"

    def __init__(self, port: str, baud: int, *, deploy_first: bool = True, workdir: Path):
        super().__init__()
        self._capabilities: Capabilities | None = None  # learned from the board by board()
        self.vboard: VirtualBoard | None = None
        if port == "virtual":
            self.vboard = VirtualBoard(workdir / "vboard-flash")
            port = self.vboard.start()
        self.port = port
        self.baud = baud
        self.deploy_first = deploy_first
        self.deploy_report: deploy.DeployReport | None = None
        self._board: Board | None = None
        self.log = LinkLog(workdir / "serial-target.log")

    def describe(self) -> str:
        kind = " (virtual board)" if self.vboard else ""
        return f"serial {self.port}{kind}"

    def board(self) -> Board:
        """The board at its raw REPL, deployed to (once)."""
        if self._board is None:
            self._board = Board(self.port, self.baud, log=lambda m: self.log.write("board", m))
            if self.deploy_first:
                self.deploy_report = deploy.deploy(
                    self._board, say=lambda m: self.log.write("deploy", m)
                )
                self.log.write("deploy", self.deploy_report.summary())
            self._board.to_repl()
            self._capabilities = self._learn(self._board)
            return self._board
        self._board.to_repl()
        return self._board

    def _learn(self, board: Board) -> Capabilities:
        """What the board has: the plant if its last deploy put it there, the
        power hardware if not; a radio unless it is the virtual board."""
        plant = deploy.board_has_plant(board)
        return Capabilities(
            plant=plant,
            power_hw=not plant,
            radio=not board.info().is_virtual,
            heap_budget=self.vboard is not None,  # an ESP32's heap is the budget itself
            link_ends_with_run=False,  # the board's port stays open
        )

    def capabilities(self) -> Capabilities:
        """Learned from the board on first contact (which connects, and deploys)."""
        if self._capabilities is None:
            self.board()
        assert self._capabilities is not None  # board() learned them
        return self._capabilities

    def remove_files(self, *names: str) -> None:
        self.board().remove(*names)

    def _prepare(self, sc: Scenario, cfg: dict[str, Any]) -> Board:
        b = self.board()
        caps = self.capabilities()
        if not caps.plant:
            raise TargetError(
                f"{self.port} has no plant (deployed for real power hardware): scenarios and "
                f"plant inputs need a simulated plant; deploy with the plant, or skip"
            )
        if caps.heap_budget:  # held to the ESP32's heap budget, as in the simulator
            cfg = {**runner.heap_config(), **cfg}
        files = runner.device_files(sc, cfg)
        b.remove(*(name for name, data in files.items() if data is None))
        for name, data in files.items():
            if data is not None:
                b.write(name, data)
        return b

    def _run(self, sc: Scenario, cfg: dict[str, Any], extra: dict[str, Any]) -> runner.RunResult:
        b = self._prepare(sc, cfg)
        t0 = time.perf_counter()
        b.start(BOARD_RUN)
        tr = SerialTransport(b.serial)
        data = bytearray()
        limit = 120 + sc.duration_s / 20
        end = time.monotonic() + limit
        seen_end = -1
        try:
            while time.monotonic() < end:
                chunk = tr.read(0.2)
                if not chunk:
                    continue
                data += chunk
                if seen_end < 0:
                    seen_end = data.find(END_MARK, max(0, len(data) - len(chunk) - 20))
                if seen_end >= 0 and data.endswith(b"\x04>"):
                    break
            else:
                raise TargetError(
                    f"{sc.name}: no end of run from {self.port} within {limit:.0f} s; "
                    f"it sent {len(data)} bytes, ending {bytes(data[-200:])!r}"
                )
        except LinkClosed as e:
            raise TargetError(f"{sc.name}: the link to {self.port} broke: {e}") from None
        wall = time.perf_counter() - t0
        body, err = _split_tail(bytes(data))
        res = runner.decode(sc, body, 0 if not err else 3, err.decode(errors="replace"), wall)
        res.series.meta["target"] = self.describe()
        return res

    def start(self, sc: Scenario, cfg: dict[str, Any], log: LinkLog) -> Live:
        if not cfg.get("host_stepped") or not self.capabilities().plant:
            return self._attach_at_boot(log, cfg)
        b = self._prepare(sc, cfg)
        b.start(BOARD_RUN)
        log.write("note", f"started on {self.describe()}")
        return Live(Link(_BoardTransport(b), log), bool(cfg.get("host_stepped")), self, cfg)

    def _attach_at_boot(self, log: LinkLog, cfg: dict[str, Any]) -> Live:
        """Real time: reset the board and talk to the firmware as it boots
        (with the plant of /pil.json on a processor-in-the-loop board)."""
        b = self.board()
        b.hard_reset()
        log.write("note", f"reset {self.describe()}: the firmware boots, real time")
        return Live(Link(_BoardTransport(b), log), False, self, cfg)

    def reboot(self, live: Live) -> Live:
        live.link.closed = True
        if not live.virtual_clock:  # it reboots by itself
            return Live(
                Link(_BoardTransport(self._board_now()), live.link.log), False, self, live.cfg
            )
        b = self.board()  # the board booted the firmware: back to the REPL
        b.write("run.json", json.dumps(live.cfg).encode())
        b.start(BOARD_RUN)
        live.link.log.write("note", f"restarted on {self.describe()}")
        return Live(Link(_BoardTransport(b), live.link.log), live.virtual_clock, self, live.cfg)

    def _board_now(self) -> Board:
        assert self._board is not None
        return self._board

    def finish(self, live: Live, timeout_s: float) -> None:
        link = live.link
        if link.closed:
            return
        if not live.virtual_clock:  # the firmware runs on; the next run resets the board
            link.closed = True
            return
        try:
            link.send_line("@plant end")
            end = time.monotonic() + timeout_s
            while time.monotonic() < end and not link.stray.endswith(b"\x04>"):
                link.pump(0.1)
        except LinkClosed:
            pass
        link.closed = True  # the port stays open: it is the board's
        link.log.write("note", "link: " + link.noise_report())

    def close(self) -> None:
        if self._board is not None:
            self._board.close()
        if self.vboard is not None:
            self.vboard.stop()
        self.log.close()


class _BoardTransport(SerialTransport):
    """The board's own port; closing the link leaves it open for the next run."""

    def __init__(self, board: Board):
        super().__init__(board.serial)

    def close(self) -> None:
        pass


def _wait_closed(link: Link, timeout_s: float) -> None:
    """Read until the other end has gone (a process that is exiting)."""
    end = time.monotonic() + timeout_s
    try:
        while time.monotonic() < end:
            link.pump(0.1)
    except LinkClosed:
        pass
    link.close()


def _split_tail(data: bytes) -> tuple[bytes, bytes]:
    """A program's output and its error text, from the raw REPL's tail:
    ... stdout ... \\x04 stderr \\x04 >"""
    if not data.endswith(b"\x04>"):
        return data, b""
    first = data.rfind(b"\x04", 0, len(data) - 2)
    if first < 0:
        return data[:-2], b""
    return data[:first], data[first + 1 : -2]


def make(
    target: str, port: str | None, baud: int, workdir: Path, *, deploy_first: bool = True
) -> Target:
    if target == "sim":
        return SimTarget()
    if target == "serial":
        if not port:
            raise TargetError(
                "--target serial needs --port: the board's serial port (e.g. /dev/ttyUSB0), "
                "or `virtual` for a virtual board"
            )
        try:
            return SerialTarget(port, baud, deploy_first=deploy_first, workdir=workdir)
        except BoardError as e:
            raise TargetError(str(e)) from None
    raise TargetError(f"unknown target {target!r}: sim or serial")

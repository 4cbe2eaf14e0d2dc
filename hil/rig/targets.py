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

A board is left as found: its stored state (hil/rig/board.py is_state_file:
the firmware's store records, the rig's files) is read at first contact,
before the deploy, and put back byte for byte before the board boots its
firmware in real time (which reads that state) and when the target closes --
a failed test or a Ctrl-C included (restore_found()). Between, a scenario or
a host-stepped session writes the records it needs and removes the others
(runner.device_files), as on the simulator's fresh flash.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import shutil
import signal
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.rig import deploy, trace
from hil.rig.board import Board, BoardError
from hil.rig.link import Link, LinkLog
from hil.rig.transport import LinkClosed, SerialTransport, SubprocessTransport, Transport
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


class NotReplayable(Exception):
    """A replayed trace cannot give what a test asks (another run, a live
    session): the test is skipped with this reason."""


class Target(ABC):
    name: str
    traces: Path | None = None  # where each run's link trace is kept (None: not kept)

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
        the same scenario and configuration is served from a cache unless fresh.
        With `traces` set, the run's link is traced into a file there."""
        key = trace.run_key(sc, config)
        if fresh or key not in self._cache:
            cfg = sc.run_config()
            cfg.update(config)
            writer = None
            if self.traces is not None:
                head = trace.header("run", self.describe(), sc, run_key=key, config=config)
                writer = trace.TraceWriter(self.traces / f"{sc.name}-{key[:12]}.trace", head)
            try:
                res = self._run(sc, cfg, config, writer)
            finally:
                if writer is not None:
                    writer.close()
            res.trace = writer.path if writer is not None else None
            self._cache[key] = res
        return self._cache[key]

    @abstractmethod
    def _run(
        self,
        sc: Scenario,
        cfg: dict[str, Any],
        extra: dict[str, Any],
        tracer: trace.TraceWriter | None,
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

    def _run(
        self,
        sc: Scenario,
        cfg: dict[str, Any],
        extra: dict[str, Any],
        tracer: trace.TraceWriter | None,
    ) -> runner.RunResult:
        return runner.run(
            sc,
            lock_heap=bool(cfg.get("lock_heap")),
            extra_config=extra,
            on_output=tracer.rx if tracer is not None else None,
        )

    def start(self, sc: Scenario, cfg: dict[str, Any], log: LinkLog) -> Live:
        flash = Path(tempfile.mkdtemp(prefix="heatrig-flash-"))
        self._flashes.append(flash)
        extra = cfg.pop("flash_files", None) or {}  # more files on the flash (bytes by name)
        cfg = {**runner.heap_config(), **cfg}
        for name, data in {**runner.device_files(sc, cfg), **extra}.items():
            if data is not None:
                (flash / name).parent.mkdir(parents=True, exist_ok=True)
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
        self.found: dict[str, bytes] | None = None  # the board's stored state at first contact
        self.found_file = workdir / "board-state-found.json"
        self.restored: list[str] = []  # what restore_found() put back, over the session
        self._dirty = False  # the board ran something since its state was last put back

    def describe(self) -> str:
        kind = " (virtual board)" if self.vboard else ""
        return f"serial {self.port}{kind}"

    def board(self) -> Board:
        """The board at its raw REPL, deployed to (once)."""
        if self._board is None:
            b = Board(self.port, self.baud, log=lambda m: self.log.write("board", m))
            self._board = b
            b.to_repl()
            self._keep_found(b)
            if self.deploy_first:
                self._dirty = True  # the deploy boots the firmware, which counts the boot
                kind = deploy.board_has_plant(b) if deploy.board_deployed(b) else True
                self.deploy_report = deploy.deploy(
                    b, plant=kind, say=lambda m: self.log.write("deploy", m)
                )
                self.log.write("deploy", self.deploy_report.summary())
            b.to_repl()
            self._capabilities = self._learn(b)
            return b
        self._board.to_repl()
        return self._board

    def _keep_found(self, b: Board) -> None:
        """The board's stored state as found, read once, kept on the host too."""
        self.found = b.state()
        self.found_file.parent.mkdir(parents=True, exist_ok=True)
        record = {n: base64.b64encode(d).decode() for n, d in sorted(self.found.items())}
        self.found_file.write_text(json.dumps({"port": self.port, "files": record}, indent=1))
        self.log.write("state", f"as found: {', '.join(sorted(self.found)) or 'none'}")

    def restore_found(self) -> None:
        """Put the board's stored state back as found, if anything ran on it
        since; a Ctrl-C meanwhile waits until it is done."""
        if not self._dirty or self.found is None or self._board is None:
            return
        t0 = time.monotonic()
        with _interrupts_deferred():
            b = self.board()
            changed = b.restore_state(self.found)
            self._dirty = False
        self.restored += changed
        self.log.write(
            "state",
            f"put back: {', '.join(changed) or 'nothing had changed'} "
            f"({time.monotonic() - t0:.2f} s)",
        )

    def _learn(self, board: Board) -> Capabilities:
        """What the board has: the plant if its last deploy put it there, the
        power hardware if not; a radio unless it is the virtual board."""
        plant = deploy.board_has_plant(board)
        virtual = board.info().is_virtual
        return Capabilities(
            plant=plant,
            power_hw=not plant,
            radio=not virtual,
            heap_budget=virtual,  # the unix port is held to it (an ESP32's heap is the budget)
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
        self._dirty = True
        files = runner.device_files(sc, cfg)
        b.remove(*(name for name, data in files.items() if data is None))
        for name, data in files.items():
            if data is not None:
                b.write(name, data)
        return b

    def _run(
        self,
        sc: Scenario,
        cfg: dict[str, Any],
        extra: dict[str, Any],
        tracer: trace.TraceWriter | None,
    ) -> runner.RunResult:
        b = self._prepare(sc, cfg)
        t0 = time.perf_counter()
        b.start(BOARD_RUN)
        tr: Transport = SerialTransport(b.serial)
        if tracer is not None:
            tracer.note(f"started on {self.describe()}: {BOARD_RUN.strip()}")
            tr = trace.TracedTransport(tr, tracer)
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
        self.restore_found()  # the firmware boots with the board's own records
        b = self.board()
        self._dirty = True
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
        try:
            self.restore_found()
        finally:
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


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Ctrl-C (and SIGTERM) wait until the block is done, then interrupt: a
    board's state is put back whole, not half."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []

    def later(signum: int, _frame: object) -> None:
        came.append(signum)

    old = {s: signal.signal(s, later) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
    if came:
        raise KeyboardInterrupt


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


class ReplayTarget(Target):
    """A recorded run (hil/rig/trace.py), served to the tests that only analyse
    a run: a test that runs the very scenario and configuration the trace
    holds gets its RunResult, decoded from the trace's bytes; any other run,
    and any live session, is NotReplayable (the test is skipped)."""

    name = "replay"

    def __init__(self, path: Path):
        super().__init__()
        try:
            self.trace = trace.read(path)
            self.result = trace.replay(self.trace)
        except trace.TraceError as e:
            raise TargetError(str(e)) from None
        self.key = str(self.trace.header.get("run_key", ""))

    def describe(self) -> str:
        return f"replay of {self.trace.path} ({self.trace.header.get('target')})"

    def capabilities(self) -> Capabilities:
        """What the recorded run had: the plant's truth if it came with it,
        the heap budget if the run was held to it."""
        held = self.result.info.get("heap_budget") == str(runner.heap_config()["heap_budget"])
        return Capabilities(
            plant=self.result.series.has_truth,
            power_hw=False,
            radio=False,
            heap_budget=held,
            link_ends_with_run=False,
        )

    def remove_files(self, *names: str) -> None:
        pass

    def run(self, sc: Scenario, *, fresh: bool = False, **config: Any) -> runner.RunResult:
        if trace.run_key(sc, config) != self.key:
            held = self.trace.scenario.name
            raise NotReplayable(
                f"runs {sc.name!r} (with {config or 'no extras'}); the replayed trace holds a run "
                f"of {held!r} (with {self.trace.header.get('config') or 'no extras'})"
            )
        return self.result

    def _run(
        self,
        sc: Scenario,
        cfg: dict[str, Any],
        extra: dict[str, Any],
        tracer: trace.TraceWriter | None,
    ) -> runner.RunResult:
        raise AssertionError("run() serves the trace")

    def start(self, sc: Scenario, cfg: dict[str, Any], log: LinkLog) -> Live:
        raise NotReplayable("drives a live session; a replayed trace holds a finished run")

    def finish(self, live: Live, timeout_s: float) -> None:
        pass

    def reboot(self, live: Live) -> Live:
        raise NotReplayable("drives a live session; a replayed trace holds a finished run")

    def close(self) -> None:
        pass


def make(
    target: str,
    port: str | None,
    baud: int,
    workdir: Path,
    *,
    deploy_first: bool = True,
    replay: Path | None = None,
) -> Target:
    if replay is not None:
        return ReplayTarget(replay)
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

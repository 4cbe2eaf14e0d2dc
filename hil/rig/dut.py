"""The device under test: one API over every target (hil/rig/targets.py).

    res = dut.run(scenario)            a whole scenario, its record and KPIs
    dut.start()                        a live session:
    dut.command("start")               console commands, with their replies
    dut.stick(True); dut.puff()        plant inputs (targets with a plant)
    dut.wait_state("heating", 30)      waits bounded in device time
    dut.advance(5.0)                   let device time pass
    dut.telemetry()                       the telemetry so far, as arrays

On a virtual clock the host steps time: nothing happens on the device between
two calls, and a wait advances the clock in slices until its condition holds.
On a real clock (a board in real time) time runs on its own and a wait reads
until the condition or the timeout. Every wait that fails says what it waited
for, what came, and where the log is.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil.qa import timing
from hil.rig import trace
from hil.rig.link import Link, LinkLog
from hil.rig.targets import Live, Target
from hil.rig.transport import LinkClosed
from hil.scenarios.scenario import Event, Scenario
from hil.simulator import runner
from hil.wire import events, frames, series

if TYPE_CHECKING:
    from hil.ble.phone import VirtualAir

STATE_NAMES = series.STATE_NAMES
SLICE_S = 0.25  # device time per clock grant while waiting on a virtual clock
RELEASE_S = 0.1  # a button pressed again at the instant of its release waits this long
REPLY_TIMEOUT_S = 5.0  # wall time for a reply (no device time passes for one)
NO_PLANT = events.no_channel("plant")


class DutError(AssertionError):
    """An expectation on the device failed; the message has what was expected,
    what came instead and the log."""


@dataclass
class RunArtifact:
    label: str
    result: runner.RunResult


@dataclass
class Dut:
    target: Target
    log_path: Path | None = None
    runs: list[RunArtifact] = field(default_factory=list)
    live: Live | None = None
    last_live_series: series.TelemetrySeries | None = None  # kept when a live session stops
    _log: LinkLog | None = None
    _offset_us: int | None = None
    _t_us: int = 0  # device time of the last telemetry frame, from the start of the run
    _last_ticks: int | None = None
    _checked: int = 0  # telemetry frames already unwrapped into _t_us
    _tel_cursor: int = 0  # waits look at telemetry from here on
    _ev_cursor: int = 0  # and at events from here on
    _scenario: Scenario | None = None  # the live session's
    _released_at: float | None = None  # device time the button was last let go
    _ble: VirtualAir | None = None  # the BLE stack of a device with an emulated radio
    trace_dir: Path | None = None  # live sessions' link traces go here (live.trace, ...)
    traces: list[Path] = field(default_factory=list)  # the live sessions' traces
    _tracer: trace.TraceWriter | None = None  # the live session's

    # --- whole scenarios -------------------------------------------------------------
    def run(self, sc: Scenario, *, fresh: bool = False, **config: Any) -> runner.RunResult:
        """Run a scenario to its end (config: run-configuration extras such as
        lock_heap, timer_latency). The simulator measures the host CPU time of
        each control step (profile_steps, on by default: ~4 % slower)."""
        config.setdefault("profile_steps", True)
        res = self.target.run(sc, fresh=fresh, **config)
        self.runs.append(RunArtifact(sc.name, res))
        self.log.write("run", f"{sc.name} on {self.target.describe()}: {res.info}")
        self.log.write("timing", timing.from_record(res.series, res.info).summary())
        for line in res.console:
            self.log.write("event", line)
        return res

    @property
    def log(self) -> LinkLog:
        if self._log is None:
            self._log = LinkLog(self.log_path)
        return self._log

    # --- live sessions ----------------------------------------------------------------
    def start(self, sc: Scenario | None = None, *, real_time: bool = False, **config: Any) -> None:
        """Boot the firmware in a live session: by default a calibrated unit,
        a full holder at 20 C, a stick inserted and no button pressed, on a
        host-stepped virtual clock. real_time: the clock runs by itself (the
        simulator paced to the wall clock; a board as it boots, its plant set
        by /pil.json; a board with real power hardware always)."""
        if self.live is not None:
            self.stop()
        sc = sc or idle_scenario()
        cfg = sc.run_config()
        cfg.update(end_s=None, host_stepped=not real_time, sample_us=10000)
        if real_time:
            cfg["pace"] = 1.0
        cfg.update(config)
        self._scenario = sc
        self._attach(self._traced(self.target.start(sc, cfg, self.log), sc, cfg))

    def _traced(self, live: Live, sc: Scenario, cfg: dict[str, Any]) -> Live:
        """The live session's link, traced into trace_dir (if set): one trace
        per session, a reset's new boot included."""
        if self.trace_dir is None:
            return live
        if self._tracer is None:
            n = len(self.traces) + 1
            path = self.trace_dir / ("live.trace" if n == 1 else f"live-{n}.trace")
            head = trace.header("live", self.target.describe(), sc, config=cfg)
            self._tracer = trace.TraceWriter(path, head)
            self.traces.append(path)
        else:
            self._tracer.note("the device reset: a new boot on the same flash")
        live.link.transport = trace.TracedTransport(live.link.transport, self._tracer)
        return live

    def reset(self) -> None:
        """Reset the device (console `reset`) and go on in a new session on
        the same flash: what the firmware stored survives, the rest restarts."""
        live = self._live()
        self.command("reset")
        if live.virtual_clock:  # the firmware waits 20 ms before the reset: let them pass
            live.link.send_line("@plant run 20000")
        self.last_live_series = self.telemetry()
        self.log.write("note", "the device resets")
        self._attach(
            self._traced(self.target.reboot(live), self._scenario or idle_scenario(), live.cfg)
        )

    def follow_reset(self) -> None:
        """The device reset itself (an update's switch, a watchdog): go on in
        the new boot's session on the same flash."""
        live = self._live()
        self.last_live_series = self.telemetry()
        self.log.write("note", "the device reset itself")
        self._attach(self.target.reboot(live))

    def _attach(self, live: Live) -> None:
        self.live = live
        self._offset_us = None
        self._released_at = None
        self._t_us = 0
        self._last_ticks = None
        self._checked = 0
        self._tel_cursor = 0
        self._ev_cursor = 0
        if self.live.virtual_clock:
            self._until(lambda: self._link.paused_us is not None, "the first pause", 30.0)
        self.expect_event("^" + re.escape(events.BOOT), timeout_s=5.0)
        if self._ble is not None:  # a new boot: the radio starts from nothing
            self._ble.rebooted()
        if not live.virtual_clock:
            self.command("tm on")  # waits read telemetry
        for text in self._link.plant_info:
            if text.startswith(events.SIM_START):
                words = dict(w.split("=", 1) for w in text.split() if "=" in w)
                self._offset_us = int(words["ticks_offset_us"])

    def ble(self) -> VirtualAir:
        """The device's BLE stack and the air around it (hil/ble/phone.py), on a
        target whose firmware runs the emulated radio (the simulator, the
        virtual board): `.phone()` gives a client on it. Frames the device
        sends are pumped into it by every client call and after every advance."""
        self._live()
        if self._ble is None:
            from hil.ble.phone import VirtualAir  # Bumble loads only for the tests that use it

            self._ble = VirtualAir(lambda: self._link, lambda m: self.log.write("ble", m))
        return self._ble

    def stop(self) -> None:
        """End the live session (its record stays in last_live_series)."""
        if self._ble is not None:
            self._ble.close()
            self._ble = None
        if self.live is not None:
            try:
                self.last_live_series = self.telemetry()
            finally:
                try:
                    self.live.finish()
                finally:
                    self.live = None
                    if self._tracer is not None:
                        self._tracer.close()
                        self._tracer = None

    def _live(self) -> Live:
        if self.live is None:
            raise DutError("no live session: call dut.start() first")
        return self.live

    @property
    def _link(self) -> Link:
        return self._live().link

    def _until(self, cond: Callable[[], bool], what: str, timeout_s: float) -> None:
        """Pump the link until cond() (wall-clock bound: for replies, not device time)."""
        link = self._link
        end = time.monotonic() + timeout_s
        try:
            while not cond():
                if time.monotonic() > end:
                    raise DutError(self._explain(f"{what} within {timeout_s:g} s"))
                link.pump(0.05)
        except LinkClosed as e:
            raise DutError(self._explain(f"{what}, but the link closed ({e})")) from None

    def _explain(self, what: str) -> str:
        link = self.live.link if self.live else None
        parts = [f"expected {what}"]
        if link is not None:
            last = link.last
            if last is not None:
                parts.append(
                    f"last telemetry at t={self.now_s:.3f} s: state={STATE_NAMES[last.state]} "
                    f"temp={last.temp_dc / 10:.1f} C setpoint={last.setpoint_dc / 10:.1f} C "
                    f"fault={series.FAULT_NAMES[last.fault]} puffs={last.puffs}"
                )
            parts.append(f"events: {link.events[-8:]}")
            if link.replies or link.plant_replies:
                parts.append(f"unclaimed replies: {list(link.replies)[-4:]}")
            if link.stray:
                parts.append(f"unframed output: {bytes(link.stray[-300:])!r}")
            parts.append(f"link: {link.noise_report()}")
        parts.append(f"log: {self.log_path}")
        return "\n  ".join(parts)

    # --- console ---------------------------------------------------------------------
    def command(self, line: str, *, check: bool = True, timeout_s: float = REPLY_TIMEOUT_S) -> str:
        """Send a console command; its reply ("OK ..." or "ERR n ...").
        check: an ERR reply fails with the command, the reply and the log."""
        link = self._link
        self._discard(link.replies)
        link.send_line(line)
        self._until(lambda: bool(link.replies), f"a reply to {line!r}", timeout_s)
        reply: str = link.replies.popleft()
        if check and not reply.startswith("OK"):
            raise DutError(self._explain(f"OK to {line!r}, got {reply!r}"))
        return reply

    def send_line(self, line: str) -> None:
        """A console line whose reply is not awaited (next_reply() takes it):
        several lines in flight, as a transfer sends them."""
        self._link.send_line(line)

    def next_reply(self, timeout_s: float = REPLY_TIMEOUT_S) -> str:
        """The oldest reply not yet taken (to a line of send_line())."""
        link = self._link
        self._until(lambda: bool(link.replies), "a reply", timeout_s)
        reply: str = link.replies.popleft()
        return reply

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are: garbage, cut lines, anything a broken link might carry."""
        self._link.send_raw(data)

    def sync(self, timeout_s: float = REPLY_TIMEOUT_S) -> list[str]:
        """Make sure the console is serving: `ver` until its reply comes back.
        Returns the replies that came before it (to earlier lines)."""
        link = self._link
        link.send_line("ver")
        got: list[str] = []
        end = time.monotonic() + timeout_s
        while True:
            self._until(lambda: bool(link.replies), "a reply to 'ver'", end - time.monotonic())
            r = link.replies.popleft()
            if r.startswith(events.VERSION):
                return got
            got.append(r)

    def _discard(self, q: deque[str]) -> None:
        while q:
            self.log.write("note", f"unclaimed reply dropped: {q.popleft()}")

    # --- plant -----------------------------------------------------------------------
    def plant(self, line: str, *, check: bool = True) -> str:
        """A plant command (sim/plant_cmd.py); its reply. Replies of the
        firmware's console stay queued for its commands."""
        link = self._link
        self._discard(link.plant_replies)
        link.send_line("@plant " + line)

        def no_channel() -> bool:
            return any(r.startswith(NO_PLANT) for r in link.replies)

        self._until(
            lambda: bool(link.plant_replies) or no_channel(),
            f"a reply to '@plant {line}'",
            REPLY_TIMEOUT_S,
        )
        if link.plant_replies:
            reply: str = link.plant_replies.popleft()
        else:  # a target without a plant: the console's own error
            reply = next(r for r in link.replies if r.startswith(NO_PLANT))
            link.replies.remove(reply)
        if check and not reply.startswith("OK"):
            raise DutError(self._explain(f"OK to '@plant {line}', got {reply!r}"))
        return reply

    def puff(self, volume_ml: float = 55.0, duration_s: float = 2.0, square: bool = False) -> None:
        self.plant(f"puff {volume_ml:g} {duration_s:g}" + (" square" if square else ""))

    def stick(self, present: bool) -> None:
        self.plant(f"stick {int(present)}")

    def button(self, pressed: bool) -> None:
        if pressed and self._released_at == self.now_s:  # a finger takes longer than that
            self.advance(RELEASE_S)
        self.plant(f"button {int(pressed)}")
        if not pressed:
            self._released_at = self.now_s

    def press(self, hold_s: float) -> None:
        """Press the button, hold it for hold_s of device time, release it."""
        self.button(True)
        self.advance(hold_s)
        self.button(False)

    def ambient(self, temp_c: float) -> None:
        self.plant(f"ambient {temp_c:g}")

    def fault(self, kind: str, channel: str | None = None, uv: int | None = None) -> None:
        self.plant(f"fault {kind}" + (f" {channel} {uv}" if channel else ""))

    def usb(self, plugged: bool, limit_a: float | None = None) -> None:
        self.plant(f"usb {int(plugged)}" + (f" {limit_a:g}" if limit_a else ""))

    def dock(self, docked: bool) -> None:
        """Put the holder into the charger, or take it out."""
        self.plant(f"dock {int(docked)}")

    def charger_button(self, pressed: bool) -> None:
        self.plant(f"charger_button {int(pressed)}")

    def charger_double_click(self) -> None:
        """Two clicks of the charger button, as a user makes them (it opens
        the BLE pairing window)."""
        for _ in range(2):
            self.charger_button(True)
            self.advance(0.1)
            self.charger_button(False)
            self.advance(0.15)

    # --- time ---------------------------------------------------------------------------
    @property
    def now_s(self) -> float:
        """Device time since the start of the run."""
        live = self.live
        if live is not None and live.virtual_clock and live.link.paused_us is not None:
            return float(live.link.paused_us) / 1e6
        self._unwrap()
        return self._t_us / 1e6

    def _unwrap(self) -> None:
        link = self._link
        tel = link.telemetry
        for payload in tel[self._checked :]:
            ticks = frames.telemetry(payload).t_us
            if self._last_ticks is None:
                base = self._offset_us if self._offset_us is not None else ticks
                self._t_us = (ticks - base) % (1 << 30)
            else:
                self._t_us += (ticks - self._last_ticks + (1 << 29)) % (1 << 30) - (1 << 29)
            self._last_ticks = ticks
        self._checked = len(tel)

    def advance(self, seconds: float) -> None:
        """Let `seconds` of device time pass."""
        link = self._link
        if self.live is not None and self.live.virtual_clock:
            target = round((self.now_s + seconds) * 1e6)
            link.paused_us = None
            self.plant(f"run {round(seconds * 1e6)}")
            self._until(
                lambda: link.paused_us is not None and link.paused_us >= target,
                f"the clock to reach t={target / 1e6:.3f} s",
                30.0 + seconds / 20,
            )
            if self._ble is not None:
                self._ble.pump()
        else:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                link.pump(min(0.05, max(0.0, end - time.monotonic())))

    def wait_for(
        self, what: str, cond: Callable[[frames.TelemetryFrame], bool], timeout_s: float
    ) -> frames.TelemetryFrame:
        """The first telemetry frame for which cond holds, among those that
        came after the frame the previous wait matched, within timeout_s of
        device time."""
        link = self._link
        start = self._clock()
        while True:
            tel = link.telemetry
            for i in range(self._tel_cursor, len(tel)):
                s = frames.telemetry(tel[i])
                if cond(s):
                    self._tel_cursor = i + 1
                    return s
            self._tel_cursor = len(tel)
            left = start + timeout_s - self._clock()
            if left <= 1e-9:
                raise DutError(
                    self._explain(f"{what} within {timeout_s:g} s of device time (from "
                                  f"t={start:.3f} s)")
                )  # fmt: skip
            self._let_time_pass(min(SLICE_S, left))

    def wait_state(self, name: str, timeout_s: float) -> frames.TelemetryFrame:
        code = STATE_NAMES.index(name)
        return self.wait_for(events.state(name), lambda s: s.state == code, timeout_s)

    def expect_event(self, pattern: str, timeout_s: float) -> str:
        """The first event matching the regex, among those after the one the
        previous expect_event matched."""
        rx = re.compile(pattern)
        link = self._link
        start = self._clock()
        while True:
            for i in range(self._ev_cursor, len(link.events)):
                if rx.search(link.events[i]):
                    self._ev_cursor = i + 1
                    return str(link.events[i])
            left = start + timeout_s - self._clock()
            if left <= 1e-9:
                raise DutError(self._explain(f"an event matching {pattern!r} within "
                                             f"{timeout_s:g} s of device time"))  # fmt: skip
            self._let_time_pass(min(SLICE_S, left))

    def _clock(self) -> float:
        """What timeouts are measured on: device time; on a real clock that
        is the wall clock (telemetry may be off, or not yet flowing)."""
        if self._live().virtual_clock:
            return self.now_s
        return time.monotonic()

    def _let_time_pass(self, seconds: float) -> None:
        if self.live is not None and self.live.virtual_clock:
            self.advance(seconds)
        else:
            self._link.pump(min(0.05, seconds))

    # --- records ------------------------------------------------------------------------
    def telemetry(self) -> series.TelemetrySeries:
        """The live session's telemetry so far, joined with the plant's truth."""
        link = self._link
        sc = self._scenario or idle_scenario()
        meta = runner.meta_for(sc)
        meta["target"] = self.target.describe()
        rec = series.build(link.telemetry, link.truth, meta, self._offset_us)
        rec.events = [(0.0, e) for e in link.events]
        return rec

    def events(self) -> list[str]:
        """The live session's console events so far (state changes, faults, BLE)."""
        return list(self._link.events)

    def control_timing(self) -> timing.Timing:
        return timing.from_record(self.telemetry(), {})

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self._log is not None:
                self._log.close()


def idle_scenario() -> Scenario:
    """A unit as it leaves the factory, a stick in, nobody touching it."""
    return Scenario(
        name="live",
        path=None,
        description="live session",
        regime="none",
        duration_s=0.0,
        events=[Event(0.0, "stick", True)],
    )

"""The event kernel: a virtual clock that jumps from one event to the next
while the plant integrates in between.

Nothing here waits for the wall clock (unless pacing is asked for). Time moves
only when the firmware sleeps or idles: time.sleep_ms() asks the kernel to run
until the wake-up instant, firing, in time order, scenario events, timer
callbacks and the truth sampler. At one instant the order is fixed: scenario
events first (inputs change), then timers in creation order (the firmware
reacts), then the sampler (the record shows the result), so a run is a pure
function of its inputs.

Host-stepped runs (interactive tests) add a horizon: the clock stops there
until the host grants more time ("@plant run", sim/plant_cmd.py). While
stopped, the firmware's sleep returns at the same instant whenever input
arrives, so its console serves commands with the clock standing still.
"""

import micropython
import utime
from attr_map import make_room  # the firmware's; also the plant's and the truth recorder's

# The 30-bit tick counters of the ESP32 wrap every 2**30 us (17.9 min) and
# 2**30 ms. The clock starts 200 s before both wrap, so every simulated
# session crosses a wrap and tick arithmetic bugs show up in CI.
TICKS_PERIOD = 1 << 30
DEFAULT_TICKS_OFFSET_US = (TICKS_PERIOD - 200000) * 1000


class SimEnd(BaseException):
    """Raised out of sleep when the run is over; BaseException so that the
    firmware's `except Exception` guards let it through."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


_NEVER = 1 << 62


class Kernel:
    def __init__(self):
        self.reset()
        make_room(self)

    def reset(self):
        self.now_us = 0
        self.ticks_offset_us = DEFAULT_TICKS_OFFSET_US
        self.timers = []  # active vmachine.Timer objects, in creation order
        self.events = []  # (t_us, fn, arg), sorted by time
        self._ev_i = 0
        self.plant = None
        self.end_us = _NEVER
        self.sampler = None  # fn(now_us), called every sample_period_us
        self.sample_period_us = 10000
        self.wdt_timeout_us = 0
        self.pace = 0.0  # 0: as fast as possible; else virtual seconds per wall second
        self._wall0_us = 0
        self.lock_heap = False  # run timer callbacks under micropython.heap_lock()
        self.timer_latency = None  # fn(timer) -> extra us before its callback runs
        self.step_profile = None  # StepProfile: host CPU time of each timer callback
        self.fired = 0
        self.stalls = 0  # C code that held the timers back (stall), and the longest
        self.stall_max_us = 0
        # Flash time the BLE IRQ handler spent (sim/mpapi/vbluetooth.py): the
        # plant catches up when the handler returns, not inside it -- on the
        # board the write is C code and costs its 4 kB stack nothing, here
        # the plant's catching up is Python and would overflow that stack
        self.irq_depth = 0
        self.irq_stall_us = 0
        # host-stepped runs: the clock stops at the horizon (see _at_limit)
        self.horizon_us = _NEVER
        self.on_pause = None  # fn(now_us): tell the host the clock stopped
        self.wait_input = None  # fn(): block until the host sends something
        self._paused = 0  # 0 running, 1 at the horizon, 2 the host was told
        self._kick = False  # a grant: return from the next sleep at once
        # the next instant of each kind of work, kept current so the loop reads three ints
        self._next_ev_us = _NEVER
        self._next_tm_us = _NEVER
        self._next_tm = None
        self._next_sample_us = _NEVER
        self._wdt_deadline_us = _NEVER
        self._limit_us = _NEVER  # min(end, horizon, watchdog): where run_until must look closer

    # --- scheduling -------------------------------------------------------------
    def schedule(self, t_us, fn, arg):
        """Add an input event; events at one instant keep the order they were added."""
        ev = self.events
        if self._ev_i >= 8:  # drop what has fired: long runs schedule as they go
            del ev[: self._ev_i]
            self._ev_i = 0
        i = len(ev)
        while i > self._ev_i and ev[i - 1][0] > t_us:
            i -= 1
        ev.insert(i, (t_us, fn, arg))
        self._next_ev_us = ev[self._ev_i][0]

    def set_sampler(self, fn, period_us):
        """Call fn(now_us) every period_us from now; period_us <= 0 stops it."""
        self.sampler = fn
        self.sample_period_us = period_us
        self._next_sample_us = self.now_us if period_us > 0 else _NEVER

    @micropython.native
    def sample_now(self):
        """A truth sample at this instant, after the timers due at it."""
        if self._next_sample_us > self.now_us:
            self._next_sample_us = self.now_us

    def add_timer(self, tm):
        if tm not in self.timers:
            self.timers.append(tm)
        self._pick_timer()

    def remove_timer(self, tm):
        if tm in self.timers:
            self.timers.remove(tm)
        self._pick_timer()

    @micropython.native
    def _pick_timer(self):
        best = None
        for tm in self.timers:
            if best is None or tm.due_us < best.due_us:
                best = tm
        self._next_tm = best
        self._next_tm_us = best.due_us if best is not None else _NEVER

    @micropython.native
    def feed_wdt(self):
        t = self.wdt_timeout_us
        if t:
            self._wdt_deadline_us = self.now_us + t
            Kernel._update_limit(self)

    def set_end(self, end_us):
        self.end_us = end_us
        self._update_limit()

    def grant(self, us):
        """Host-stepped: let the clock run `us` further from now. The sleep
        after the grant returns once more at this instant, so the main loop
        always sees the host's last inputs before time moves, however the
        host's lines were split into reads."""
        self.horizon_us = self.now_us + us
        self._paused = 0
        self._kick = True
        self._update_limit()

    def _update_limit(self):
        if self._kick:
            self._limit_us = self.now_us  # _at_limit returns once first
        else:
            self._limit_us = min(self.end_us, self.horizon_us, self._wdt_deadline_us)

    def start_pacing(self, pace):
        self.pace = pace
        self._wall0_us = utime.ticks_us()

    # --- running ---------------------------------------------------------------------
    def next_due(self):
        t = min(self._next_ev_us, self._next_tm_us, self.end_us)
        return t if t < _NEVER else self.now_us + 1000000

    @micropython.native
    def run_until(self, t_us):
        """Advance virtual time to t_us, firing everything due before it.
        (The hot loop of a run: the methods it calls are held in locals,
        and the plain advance of _advance is done here.)"""
        plant = self.plant
        advance = type(plant).advance if plant is not None else None  # functions: no bound
        fire = Kernel._fire  # method is allocated, and the heap is measured (run.py)
        while True:
            nt = t_us
            kind = 0
            x = self._next_ev_us
            if x <= nt:
                nt = x
                kind = 1
            x = self._next_tm_us
            if x < nt:
                nt = x
                kind = 2
            x = self._next_sample_us
            if x < nt:
                nt = x
                kind = 3
            if nt > self._limit_us:
                self._at_limit()
                return
            now = self.now_us
            if nt > now:  # self._advance(nt)
                if advance is not None:
                    advance(plant, nt - now)
                self.now_us = nt
                if self.pace:
                    self._pace(nt)
            if kind == 0:
                return
            if kind == 1:
                _, fn, arg = self.events[self._ev_i]
                self._ev_i += 1
                self._next_ev_us = self.events[self._ev_i][0] if self._ev_i < len(self.events) else _NEVER
                fn(arg)
                continue
            if kind == 2:
                fire(self, self._next_tm)
                if self._next_sample_us > nt or self._next_tm_us <= nt:
                    continue  # no sample due, or another timer first
            # the sample of this instant, after every timer due at it
            self._next_sample_us += self.sample_period_us
            self.sampler(nt)

    def irq_done(self):
        """The BLE IRQ handler has returned: the flash time it spent passes now."""
        us, self.irq_stall_us = self.irq_stall_us, 0
        if us:
            self.stall(us)

    def stall(self, us):
        """C code runs for `us` (a flash program or erase): no bytecode
        boundary, so no soft timer's callback runs. On the ESP32 a timer's
        interrupt only schedules its callback (ports/esp32/machine_timer.c:
        mp_sched_schedule), which runs between bytecodes or in a sleep; and
        with the flash busy the interrupt itself waits (not in IRAM).
        Inputs and the plant go on; at the end each timer that came due fires
        once, late: the periods it missed are lost (one interrupt was
        pending; the hardware alarm keeps its phase)."""
        if self.irq_depth:  # on the BLE IRQ's task: when its handler returns (irq_done)
            self.irq_stall_us += us
            return
        end = self.now_us + us
        self.stalls += 1
        if us > self.stall_max_us:
            self.stall_max_us = us
        self._next_tm_us = _NEVER  # no timer in the meantime
        # a host-stepped clock's horizon does not stop C code half-way: the
        # write ends, then the clock stands (the kick stays for the main loop)
        hz, kick = self.horizon_us, self._kick
        self.horizon_us = max(hz, end)
        self._kick = False
        self._update_limit()
        try:
            while self.now_us < end:
                self.run_until(end)
        finally:
            self.horizon_us = hz
            self._kick = kick
            self._update_limit()
            for tm in self.timers:
                p = tm.period_us
                if p and tm.due_us <= self.now_us:
                    tm.due_us += (self.now_us - tm.due_us) // p * p  # its latest alarm
            self._pick_timer()
        while self._next_tm_us <= self.now_us:
            self._fire(self._next_tm)

    def _at_limit(self):
        """The end of the run, a watchdog reset (both raise SimEnd), or the
        host's horizon: the first time there, return so that the main loop
        runs at this instant (and sends its telemetry); then tell the host,
        and return only when input arrives."""
        if self._kick:
            self._kick = False
            self._update_limit()
            return
        end = self.end_us
        wdt = self._wdt_deadline_us
        hz = self.horizon_us
        if end <= hz and end <= wdt:
            self._advance(end)
            raise SimEnd("end_of_scenario")
        if wdt < hz:
            self._advance(wdt)
            raise SimEnd("watchdog_reset")
        self._advance(hz)
        if self._paused == 0:
            self._paused = 1
            return
        if self._paused == 1:
            self._paused = 2
            self.on_pause(self.now_us)
        self.wait_input()

    @micropython.native
    def _advance(self, nt):
        if nt <= self.now_us:
            return
        if self.plant is not None:
            self.plant.advance(nt - self.now_us)
        self.now_us = nt
        if self.pace:
            self._pace(nt)

    def _pace(self, nt):
        ahead = int(nt / self.pace) - utime.ticks_diff(utime.ticks_us(), self._wall0_us)
        if ahead > 0:
            utime.sleep_us(ahead)

    @micropython.native
    def _fire(self, tm):
        p = tm.period_us
        if p:
            tm.due_us += p
            Kernel._pick_timer(self)
        else:
            self.remove_timer(tm)
        if self.timer_latency is not None:
            late = self.timer_latency(tm)
            if late > 0:
                self._advance(self.now_us + late)
        self.fired += 1
        cb = tm.callback
        if cb is None:
            return
        prof = self.step_profile
        if prof is not None:
            w0 = utime.ticks_us()
        if not self.lock_heap:
            cb(tm)
        else:
            micropython.heap_lock()
            try:
                cb(tm)
            finally:
                micropython.heap_unlock()
        if prof is not None:
            prof.add(utime.ticks_diff(utime.ticks_us(), w0))


K = Kernel()

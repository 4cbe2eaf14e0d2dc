"""The event kernel: a virtual clock that jumps from one event to the next
while the plant integrates in between.

Nothing here waits for the wall clock (unless pacing is asked for). Time moves
only when the firmware sleeps or idles: time.sleep_ms() asks the kernel to run
until the wake-up instant, firing, in time order, scenario events, timer
callbacks and the truth sampler. At one instant the order is fixed: scenario
events first (inputs change), then timers in creation order (the firmware
reacts), then the sampler (the record shows the result), so a run is a pure
function of its inputs.
"""

import micropython
import utime

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
        self.fired = 0
        # the next instant of each kind of work, kept current so the loop reads three ints
        self._next_ev_us = _NEVER
        self._next_tm_us = _NEVER
        self._next_tm = None
        self._next_sample_us = _NEVER
        self._wdt_deadline_us = _NEVER

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
        self.sampler = fn
        self.sample_period_us = period_us
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

    def feed_wdt(self):
        if self.wdt_timeout_us:
            self._wdt_deadline_us = self.now_us + self.wdt_timeout_us

    def start_pacing(self, pace):
        self.pace = pace
        self._wall0_us = utime.ticks_us()

    # --- running ---------------------------------------------------------------------
    def next_due(self):
        t = min(self._next_ev_us, self._next_tm_us, self.end_us)
        return t if t < _NEVER else self.now_us + 1000000

    @micropython.native
    def run_until(self, t_us):
        """Advance virtual time to t_us, firing everything due before it."""
        while True:
            nt = t_us
            kind = 0
            if self._next_ev_us <= nt:
                nt = self._next_ev_us
                kind = 1
            if self._next_tm_us < nt:
                nt = self._next_tm_us
                kind = 2
            if self._next_sample_us < nt:
                nt = self._next_sample_us
                kind = 3
            if nt > self.end_us:
                self._advance(self.end_us)
                raise SimEnd("end_of_scenario")
            if nt > self._wdt_deadline_us:
                self._advance(self._wdt_deadline_us)
                raise SimEnd("watchdog_reset")
            self._advance(nt)
            if kind == 0:
                return
            if kind == 1:
                _, fn, arg = self.events[self._ev_i]
                self._ev_i += 1
                self._next_ev_us = self.events[self._ev_i][0] if self._ev_i < len(self.events) else _NEVER
                fn(arg)
                continue
            if kind == 2:
                self._fire(self._next_tm)
                if self._next_sample_us > nt or self._next_tm_us <= nt:
                    continue  # no sample due, or another timer first
            # the sample of this instant, after every timer due at it
            self._next_sample_us += self.sample_period_us
            self.sampler(nt)

    @micropython.native
    def _advance(self, nt):
        if nt <= self.now_us:
            return
        if self.plant is not None:
            self.plant.advance(nt - self.now_us)
        self.now_us = nt
        if self.pace:
            ahead = int(nt / self.pace) - utime.ticks_diff(utime.ticks_us(), self._wall0_us)
            if ahead > 0:
                utime.sleep_us(ahead)

    @micropython.native
    def _fire(self, tm):
        if tm.period_us:
            tm.due_us += tm.period_us
            self._pick_timer()
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
        if not self.lock_heap:
            cb(tm)
            return
        micropython.heap_lock()
        try:
            cb(tm)
        finally:
            micropython.heap_unlock()


K = Kernel()

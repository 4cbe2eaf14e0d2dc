"""A scenario's repeated cycle (a day of sessions: undock, heat, puff, dock,
recharge...), handed to the kernel one event at a time.

Scheduling hundreds of cycles up front would hold thousands of events in a
heap of 128 kB; here the template is held once and each event, as it fires,
schedules the next.
"""

from sim.kernel import K


class Cycle:
    def __init__(self, spec, handlers):
        self.start_us = spec["start_us"]
        self.period_us = spec["period_us"]
        self.count = spec["count"]
        # (offset_us, handler, arg), in time order
        self.events = [(dt, handlers[kind], arg) for dt, kind, arg in spec["events"]]
        self.k = 0  # cycle
        self.i = 0  # its next event
        if self.count > 0 and self.events:
            K.schedule(self._due(), self._fire, None)

    def resume(self, k, i):
        """Continue a run cut short at cycle k, event i (sim/reboot.py)."""
        if k == 0 and i == 0:
            return  # not begun: its first event, scheduled when made, stands
        self.k = k
        self.i = i
        if k < self.count:
            K.schedule(self._due(), self._fire, None)

    def _due(self):
        return self.start_us + self.k * self.period_us + self.events[self.i][0]

    def _fire(self, _):
        _, fn, arg = self.events[self.i]
        self.i += 1
        if self.i == len(self.events):
            self.i = 0
            self.k += 1
        if self.k < self.count:
            K.schedule(self._due(), self._fire, None)
        fn(arg)

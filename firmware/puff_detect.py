"""Puff detection from the controller's power demand.

Air drawn through the plug cools it and the blade, and the controller's
demand jumps by watts within a few hundred milliseconds. Slow changes of the
demand -- the plug warming up after a puff, a set-point ramp, the cell
sagging -- are followed by a reference that lags about a second behind.
A puff is the demand standing clear of that reference (frozen while the puff
lasts); it ends when the excess falls below half its peak, because the draw
has stopped and what remains is the plug warming up again.

All state is small ints: update() allocates nothing.
"""

import micropython
from micropython import const

_ON_MW = const(700)  # excess demand that starts a puff
_OFF_MW = const(300)  # below this (or half the puff's peak) it has ended
_ON_STEPS = const(15)  # 150 ms above _ON_MW to confirm
_OFF_STEPS = const(20)  # 200 ms below the end threshold
_MAX_PUFF_STEPS = const(800)  # 8 s: longer is not a puff but a changed load
_FAST_SHIFT = const(3)  # demand filter: ~80 ms at 100 Hz
_REF_SHIFT = const(7)  # reference: ~1.3 s


class PuffDetector:
    def __init__(self):
        self.reset(0)

    def reset(self, demand_mw):
        """Start afresh (at ready), with the reference at the present demand."""
        self._filt_q8 = demand_mw << 8
        self._ref_q8 = demand_mw << 8
        self.active = False
        self._armed = True
        self._n = 0
        self._len = 0
        self._peak = 0
        self.count = 0

    @micropython.native
    def update(self, demand_mw):
        """One control period. Returns True on the step a puff is confirmed."""
        f = self._filt_q8 + (((demand_mw << 8) - self._filt_q8) >> _FAST_SHIFT)
        self._filt_q8 = f
        excess = (f - self._ref_q8) >> 8
        if self.active:
            self._len += 1
            if excess > self._peak:
                self._peak = excess
            if excess < _OFF_MW or excess < self._peak >> 1:
                self._n += 1
                if self._n >= _OFF_STEPS:
                    self._end()
            else:
                self._n = 0
            if self._len >= _MAX_PUFF_STEPS:
                self._end()
            return False
        self._ref_q8 += (f - self._ref_q8) >> _REF_SHIFT
        if not self._armed:  # after a puff, wait for the excess to settle first
            self._armed = excess < _OFF_MW
            return False
        if excess > _ON_MW:
            self._n += 1
            if self._n >= _ON_STEPS:
                self.active = True
                self._n = 0
                self._len = 0
                self._peak = excess
                self.count += 1
                return True
        else:
            self._n = 0
        return False

    def _end(self):
        self.active = False
        self._armed = False
        self._n = 0

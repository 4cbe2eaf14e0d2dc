"""Puff detection from the blade's heat loss, from the start of heating.

The control step hands in the blade's loss conductance: the heat it loses
per second and kelvin above the air, from an energy balance that holds
whatever the controller does -- power in, less what went into warming the
blade -- over the blade's rise above the air (heater_ctl.loss_dmw_k). It is
flat through the preheat ramp, a set-point step or a sagging cell, and the
same in cold air as in warm; it falls slowly as the plug warms up. Air drawn
through the plug and past the blade raises it within a few hundred
milliseconds, in proportion to the draw.

A puff is the conductance standing clear of a reference that lags about a
second behind as it rises, and follows within a fifth of one as it falls
(frozen while the puff lasts): left above the conductance -- after a puff
begun in the preheat ramp, say -- it would hide the next one. A puff ends
when the excess falls below half its peak, because the draw has stopped. A puff already being
drawn when the counting starts (heating's first moments) is in the
reference: it is counted when the conductance falls back by a puff's worth
within the first seconds. For its first half second the reference follows
the conductance at once and nothing is confirmed: the preheat ramp ends
about then, and with it a short transient.

All state is small ints: update() allocates nothing.
"""

from array import array

import micropython
from micropython import const

_ON = const(25)  # excess (0.1 mW/K) that starts a puff: ~0.75 W at 300 K
_OFF = const(10)  # below this (or half the puff's peak) it has ended
_ON_STEPS = const(15)  # 150 ms above _ON to confirm
_OFF_STEPS = const(20)  # 200 ms below the end threshold
_MAX_PUFF_STEPS = const(800)  # 8 s: longer is not a puff but a changed load
_FAST_SHIFT = const(3)  # filter: ~80 ms at 100 Hz
_REF_SHIFT = const(7)  # reference: ~1.3 s rising
_REF_DOWN_SHIFT = const(4)  # ~0.16 s falling: left high (a puff's end, the ramp's) it hides the next puff
_FALL = const(60)  # a fall this large from the first seconds' peak: a puff under way ended
_FALL_STEPS = const(500)  # watched for 5 s after counting starts
_SETTLE_STEPS = const(50)  # 0.5 s: the reference follows at once (the preheat ramp's end)
_SPAN = const(4)  # periods the loss is taken over: a rise over one period is mostly ADC noise


class PuffDetector:
    def __init__(self):
        self._t = array("i", [0] * _SPAN)  # the last readings, energies and period lengths
        self._e = array("i", [0] * _SPAN)
        self._dt = array("i", [0] * _SPAN)
        self.reset()

    def reset(self):
        """A new session: nothing counted, counting not started."""
        self.active = False
        self.started = False
        self.count = 0
        self._filt = 0
        self._ref_q8 = 0
        self._armed = True
        self._n = 0
        self._len = 0
        self._peak = 0
        self._fall_n = 0  # steps left to watch for the end of a puff under way
        self._top = 0
        self._settle = 0  # steps left before puffs are confirmed
        self._k = 0  # periods fed

    @micropython.native
    def feed(self, p_mw, dt_us, temp_cc, rise_cc, k_uj_per_cc):
        """One control period: the power delivered over it (mW), its length,
        the blade's reading at its end (0.01 C), its true rise above the air
        (0.01 K, > 0) and the blade's heat capacity per 0.01 K of the
        reading. The loss conductance over the last _SPAN periods, 0.1 mW/K:
        power in less what warmed the blade, per kelvin above the air."""
        i = self._k % _SPAN
        t_old = self._t[i]
        e = p_mw * dt_us // 1000  # uJ: <= 20000 mW x 50 ms
        self._e[i] = e
        self._dt[i] = dt_us
        self._t[i] = temp_cc
        self._k += 1
        if self._k <= _SPAN:
            return
        e = self._e[0] + self._e[1] + self._e[2] + self._e[3]  # <= 4e6 uJ
        ms = (self._dt[0] + self._dt[1] + self._dt[2] + self._dt[3]) // 1000
        if ms <= 0:  # no time passed (a step called twice at one instant)
            return
        loss_mw = (e - k_uj_per_cc * (temp_cc - t_old)) // ms  # k x rise over 4 periods <= 1e6
        x = loss_mw * 1000 // rise_cc
        if self.started:
            self.update(x)
        else:
            self.start(x)

    def start(self, x):
        """Counting starts: the reference at the present conductance x."""
        self.started = True
        self._filt = x << 8
        self._ref_q8 = x << 8
        self._fall_n = _FALL_STEPS
        self._settle = _SETTLE_STEPS
        self._top = x

    def update(self, x):
        """One control period, x the loss conductance in 0.1 mW/K. Returns
        True on the step a puff is counted."""
        f = self._filt + (((x << 8) - self._filt) >> _FAST_SHIFT)
        self._filt = f
        excess = (f - self._ref_q8) >> 8
        if self._settle:  # counting has just started: follow, confirm nothing yet
            self._settle -= 1
            self._ref_q8 = f
            self._top = f >> 8
            return False
        if self.active:
            self._len += 1
            if excess > self._peak:
                self._peak = excess
            if excess < _OFF or excess < self._peak >> 1:
                self._n += 1
                if self._n >= _OFF_STEPS:
                    self._end()
            else:
                self._n = 0
            if self._len >= _MAX_PUFF_STEPS:
                self._end()
            return False
        d = f - self._ref_q8
        self._ref_q8 += d >> (_REF_SHIFT if d > 0 else _REF_DOWN_SHIFT)
        if self._fall_n:
            self._fall_n -= 1
            fx = f >> 8
            if fx > self._top:
                self._top = fx
            elif fx < self._top - _FALL:  # the draw under way at the start has stopped
                self._fall_n = 0
                self._ref_q8 = f
                self.count += 1
                return True
        if not self._armed:  # after a puff, wait for the excess to settle first
            self._armed = excess < _OFF
            return False
        if excess > _ON:
            self._n += 1
            if self._n >= _ON_STEPS:
                self.active = True
                self._fall_n = 0
                self._n = 0
                self._len = 0
                self._peak = excess
                self.count += 1
                return True
        else:
            self._n = 0
        return False

    def rescale(self, pm):
        """The air was read again: the conductances so far times pm / 1000,
        the blade's old rise above the air over its new one. The loss goes
        on as it was, so a step of the thermistor is no step of the
        conductance (a 30 K drop in the air read as the fall that ends a
        puff under way at the start)."""
        self._filt = (self._filt >> 4) * pm // 1000 << 4  # >> 4: <= 1e5 x pm <= 4400
        self._ref_q8 = (self._ref_q8 >> 4) * pm // 1000 << 4
        self._top = self._top * pm // 1000
        self._peak = self._peak * pm // 1000

    def _end(self):
        self.active = False
        self._armed = False
        self._n = 0
        # the reference follows at once for a while: after a deep draw the plug
        # is cold and the blade's loss stays up for seconds (read as a second puff)
        self._settle = _SETTLE_STEPS

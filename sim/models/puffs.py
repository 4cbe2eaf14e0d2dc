"""Puffs: air drawn through the stick with a bell (half-sine) or square flow
profile, as a smoking machine draws it."""

import math

import micropython
from micropython import const

_N = const(64)
# half a sine period in _N steps, ppm: the bell's shape in integers (no float per substep)
_SIN_PPM = tuple(int(1000000 * math.sin(math.pi * k / _N)) for k in range(_N + 1))


class PuffTrain:
    def __init__(self, p):
        self.through_ppm = int((1.0 - p["vent_bypass"]) * 1000000)  # the rest enters by the vents
        self._active = []  # [start_us, end_us, peak_ul_s, bell]
        self.active = False  # a puff is running
        self.taken = 0

    def start(self, now_us, volume_ml, duration_s, bell=True):
        dur_us = int(duration_s * 1000000)
        mean = volume_ml / duration_s
        peak = mean * math.pi / 2 if bell else mean
        self._active.append([now_us, now_us + dur_us, int(peak * 1000), bell])
        self.active = True
        self.taken += 1

    @micropython.native
    def flow_ul_s(self, t_us):
        """Draw through the plug at t_us, in microlitres per second."""
        q = 0
        keep = False
        for start, end, peak, bell in self._active:
            if start <= t_us < end:
                if bell:
                    x = (t_us - start) * (_N * 1000) // (end - start)  # table position, 1/1000 step
                    i = x // 1000
                    s = _SIN_PPM[i] + (_SIN_PPM[i + 1] - _SIN_PPM[i]) * (x - i * 1000) // 1000
                    q += peak * s // 1000000
                else:
                    q += peak
            if t_us < end:
                keep = True
        if not keep:
            self._active = []
            self.active = False
        return q * self.through_ppm // 1000000

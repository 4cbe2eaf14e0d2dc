"""ESP32 ADC (12 bit, 11 dB) and the board's thermistor dividers.

The plant sets each channel's pin voltage when it changes (set_uv) and
converts all channels once per interval (convert): quantisation to 12 bits
plus seeded noise, in one viper pass over preallocated arrays. A firmware
read then returns the latest conversion: cheap, and allocation-free, which
matters because the firmware's control step is checked under
micropython.heap_lock().
"""

import math
from array import array

import micropython
from micropython import const

# Two noise tables of coprime lengths, summed: the sequence repeats only
# after 127 * 131 conversions (14 s of a session), in 0.5 kB. Stored offset
# by 0x8000 (unsigned).
_N1 = const(127)
_N2 = const(131)


@micropython.viper
def _convert(base: ptr32, out_uv: ptr32, out_code: ptr32, t1: ptr16, t2: ptr16, st: ptr32):
    """st = [n_channels, i1, i2, max_code, fs_uv // max_code, fs_uv % max_code]"""
    n = st[0]
    i1 = st[1]
    i2 = st[2]
    max_code = st[3]
    q = st[4]
    r = st[5]
    k = 0
    while k < n:
        i1 += 1
        if i1 == _N1:
            i1 = 0
        i2 += 1
        if i2 == _N2:
            i2 = 0
        c = (base[k] + t1[i1] + t2[i2] - 0x10000) >> 8
        if c < 0:
            c = 0
        elif c > max_code:
            c = max_code
        out_code[k] = c
        out_uv[k] = c * q + c * r // max_code
        k += 1
    st[1] = i1
    st[2] = i2


class AdcBank:
    def __init__(self, p, rng, pins, n_extra=0):
        """`pins`: the direct inputs; `n_extra` more channels follow them
        (a multiplexer's inputs), reached through their own channel object."""
        self.fs = p["adc_full_scale_uv"]
        self.max_code = p["adc_max_code"]
        n = len(pins) + n_extra
        self.index = {pin: k for k, pin in enumerate(pins)}
        self._base_q8 = array("i", [128] * n)  # pin voltage in codes x256, + half a code
        self.uv = array("i", [0] * n)  # latest conversions
        self.code = array("i", [0] * n)
        self.stuck_uv = [-1] * n  # injected faults: >= 0 pins a channel's reading
        k = int(p["adc_noise_lsb"] * 100 * 0.7071)  # each table carries half the variance
        self._t1 = array("H", (0x8000 + rng.noise_q8() * k // 100 for _ in range(_N1)))
        self._t2 = array("H", (0x8000 + rng.noise_q8() * k // 100 for _ in range(_N2)))
        self._st = array("i", [n, 0, 0, self.max_code, self.fs // self.max_code, self.fs % self.max_code])
        self.channels = {pin: AdcChannel(self, k) for pin, k in self.index.items()}

    @micropython.native
    def set_uv(self, k, uv):
        if self.stuck_uv[k] < 0:
            self._base_q8[k] = uv * self.max_code * 256 // self.fs + 128

    @micropython.native
    def set3_uv(self, uv0, uv1, uv2):
        """The three fast channels (heater V, heater I, cell V) in one call."""
        b = self._base_q8
        st = self.stuck_uv
        m = self.max_code * 256
        fs = self.fs
        if st[0] < 0:
            b[0] = uv0 * m // fs + 128
        if st[1] < 0:
            b[1] = uv1 * m // fs + 128
        if st[2] < 0:
            b[2] = uv2 * m // fs + 128

    @micropython.native
    def convert(self):
        _convert(self._base_q8, self.uv, self.code, self._t1, self._t2, self._st)

    def stick(self, pin, uv):
        """Pin a channel's reading at uv (a fault), or release it with uv < 0."""
        k = self.index[pin]
        self.stuck_uv[k] = uv
        if uv >= 0:
            self._base_q8[k] = uv * self.max_code * 256 // self.fs + 128


class MuxChannel:
    """The ADC input behind the analog multiplexer: the bank's channel
    first + select, as the select pins stand (plant.mux_sel); an unused
    input reads 0."""

    def __init__(self, bank, plant, first, n):
        self._uv = bank.uv
        self._plant = plant
        self._first = first
        self._n = n

    def read_uv(self):
        sel = self._plant.mux_sel
        return self._uv[self._first + sel] if sel < self._n else 0


class AdcChannel:
    """One ADC input as the firmware's machine.ADC sees it."""

    def __init__(self, bank, k):
        self._uv = bank.uv
        self._k = k

    @micropython.native
    def read_uv(self):
        return self._uv[self._k]


class NtcTable:
    """Thermistor divider output against temperature, 2 K steps, integer
    interpolation (off the B curve by < 0.01 K): the plant updates thermistor
    inputs as cells warm without allocating a float."""

    def __init__(self, p):
        self._uv = array("i", (int(ntc_divider_v(p, -40 + 2 * k) * 1e6) for k in range(84)))  # -40..126 C

    @micropython.native
    def uv(self, t_uc):
        x = t_uc + 40000000
        i = x // 2000000
        t = self._uv
        if i < 0:
            return t[0]
        if i >= 83:
            return t[83]
        return t[i] + (t[i + 1] - t[i]) * (x - i * 2000000) // 2000000


def ntc_divider_v(p, temp_c):
    """Output of a thermistor-to-GND divider with a pull-up, at temp_c."""
    t_k = temp_c + 273.15
    r = p["ntc_r25_ohm"] * math.exp(p["ntc_b_k"] * (1.0 / t_k - 1.0 / 298.15))
    return p["ntc_supply_v"] * r / (r + p["ntc_pullup_ohm"])

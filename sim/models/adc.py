"""ESP32 ADC1 at 11 dB, read through MicroPython's ADC.read_uv(), and the
board's thermistor dividers.

What the firmware reads is not the pin voltage scaled linearly. On the ESP32
port, ADC.read_uv() converts (12 bit raw code) and then calibrates the code
with ESP-IDF's line fitting (MicroPython ports/esp32/adc.c:
madcblock_read_uv_helper -> adc_cali_raw_to_voltage, in mV, times 1000). The
ESP32's line-fitting scheme (ESP-IDF components/esp_adc/esp32/
adc_cali_line_fitting.c), with the eFuse Vref the factory burns into every
chip, is

    mV = (coeff_a * raw + 32768) / 65536 + coeff_b
    coeff_a = Vref * 196602 / 4096,  coeff_b = 142     (ADC1, 11 dB)

below raw 2880; from raw 2880 up a 20-point table (two curves, for Vref
1000 and 1200 mV, interpolated in Vref and raw) takes over, blended linearly
over the first 64 codes. So:

- a raw 0 reads coeff_b (142 mV), not 0: every pin voltage below the chip's
  first code transition reads the same -- the curve is flat at the bottom;
- the curve's slope is the unit's Vref (1000-1200 mV across chips);
- the top is where the code saturates at 4095: 3060-3209 mV depending on Vref;
  everything above reads the same;
- a chip without calibration data in eFuse has no scheme: MicroPython passes
  no default Vref, so adc_cali_create_scheme_line_fitting() fails with
  ESP_ERR_INVALID_ARG and read_uv() raises OSError(-258, ...) (check_esp_err
  in ports/esp32/mphalport.c), on every call: the calibration is made lazily
  at the first read (adc.c: ensure_adc_calibration). read_u16() still works.

The chip itself is not exactly its calibration: a residual offset and gain
per unit (adc_offset_uv, adc_gain_ppm: what the reading is off by, in the
linear part of the range). The model is therefore: pin voltage -> raw code
through the unit's true curve (the calibration curve with that residual),
plus seeded noise, then raw -> reading through the calibration as the port
computes it, to the mV.

The plant sets each channel's pin voltage when it changes (set_uv) and
converts all channels once per interval (convert), in one viper pass over
preallocated arrays. A firmware read returns the latest conversion: cheap,
and allocation-free, which matters because the firmware's control step is
checked under micropython.heap_lock().
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

# ESP-IDF components/esp_adc/esp32/adc_cali_line_fitting.c, ADC1 at 11 dB
# (atten 3): the eFuse-Vref characterisation and the high-voltage lookup
# table (readings in mV at raw 2880, 2944, ... for Vref 1000 and 1200 mV).
_VREF_SCALE = const(196602)
_VREF_OFFSET_MV = const(142)
_LUT_LOW_RAW = const(2880)
_LUT_STEP = const(64)
_LUT_VREF_LOW = const(1000)
_LUT_VREF_HIGH = const(1200)
_LUT_LOW = (2240, 2297, 2352, 2405, 2457, 2512, 2564, 2616, 2664, 2709,
            2754, 2795, 2832, 2868, 2903, 2937, 2969, 3000, 3030, 3060)  # fmt: skip
_LUT_HIGH = (2667, 2706, 2745, 2780, 2813, 2844, 2873, 2901, 2928, 2956,
             2982, 3006, 3032, 3059, 3084, 3110, 3135, 3160, 3184, 3209)  # fmt: skip
_MAX_RAW = const(4095)
_BIAS = const(0x1000000)  # added to the stored codes x256, which may be below 0
ESP_ERR_INVALID_ARG = const(0x102)


def cal_mv(raw, vref_mv):
    """The reading (mV) of a raw 12-bit code, as ESP-IDF's line fitting
    computes it on an eFuse-Vref chip (ADC1, 11 dB); integer, as in C."""
    coeff_a = vref_mv * _VREF_SCALE // 4096
    lin = (coeff_a * raw + 32768) // 65536 + _VREF_OFFSET_MV
    if raw < _LUT_LOW_RAW:
        return lin
    i = (raw - _LUT_LOW_RAW) // _LUT_STEP
    x2 = _LUT_VREF_HIGH - vref_mv
    x1 = vref_mv - _LUT_VREF_LOW
    y2 = (i + 1) * _LUT_STEP + _LUT_LOW_RAW - raw
    y1 = raw - (i * _LUT_STEP + _LUT_LOW_RAW)
    z = (_LUT_LOW[i] * x2 * y2 + _LUT_HIGH[i] * x1 * y2 + _LUT_LOW[i + 1] * x2 * y1 + _LUT_HIGH[i + 1] * x1 * y1)
    lut = (z + (_LUT_VREF_HIGH - _LUT_VREF_LOW) * _LUT_STEP // 2) // ((_LUT_VREF_HIGH - _LUT_VREF_LOW) * _LUT_STEP)
    if raw > _LUT_LOW_RAW + _LUT_STEP:
        return lut
    x = raw - _LUT_LOW_RAW  # the transition: linear to the table over 64 codes
    return (lin * _LUT_STEP + lut * x - lin * x + _LUT_STEP // 2) // _LUT_STEP


@micropython.viper
def _convert(base: ptr32, out_uv: ptr32, out_code: ptr32, t1: ptr16, t2: ptr16, st: ptr32, top: ptr16):
    """st = [n_channels, i1, i2, coeff_a]; top: the calibration's readings
    (mV) of the codes from 2880 up (the table's part, computed once)"""
    n = st[0]
    i1 = st[1]
    i2 = st[2]
    coeff_a = st[3]
    k = 0
    while k < n:
        i1 += 1
        if i1 == _N1:
            i1 = 0
        i2 += 1
        if i2 == _N2:
            i2 = 0
        x = base[k] + t1[i1] + t2[i2] - 0x10000  # stored with _BIAS: ptr32 loads unsigned on 64 bits
        if x < _BIAS:
            c = 0
        else:
            c = (x - _BIAS) >> 8
            if c > _MAX_RAW:
                c = _MAX_RAW
        out_code[k] = c
        if c < _LUT_LOW_RAW:  # the line, as adc_cali_line_fitting.c computes it
            out_uv[k] = (((coeff_a * c + 32768) >> 16) + _VREF_OFFSET_MV) * 1000
        else:
            out_uv[k] = top[c - _LUT_LOW_RAW] * 1000
        k += 1
    st[1] = i1
    st[2] = i2


class AdcBank:
    def __init__(self, p, rng, pins, n_extra=0):
        """`pins`: the direct inputs; `n_extra` more channels follow them
        (a multiplexer's inputs), reached through their own channel object."""
        n = len(pins) + n_extra
        vref = int(p["adc_vref_mv"])
        if not _LUT_VREF_LOW <= vref <= _LUT_VREF_HIGH:
            raise ValueError("adc_vref_mv must be 1000..1200 (ESP32 eFuse Vref range)")
        self.vref_mv = vref
        self.calibrated = p["adc_cal"] >= 0.5  # the chip has eFuse calibration data
        self.index = {pin: k for k, pin in enumerate(pins)}
        self._base_q8 = array("i", [0] * n)  # the pin voltage as a raw code x256 (+ half a code)
        self.uv = array("i", [0] * n)  # latest conversions, as read_uv() returns them
        self.code = array("i", [0] * n)  # ... and their raw codes
        self.stuck_uv = [-1] * n  # injected faults: >= 0 pins a channel's input voltage
        k = int(p["adc_noise_lsb"] * 100 * 0.7071)  # each table carries half the variance
        self._t1 = array("H", (0x8000 + rng.noise_q8() * k // 100 for _ in range(_N1)))
        self._t2 = array("H", (0x8000 + rng.noise_q8() * k // 100 for _ in range(_N2)))
        coeff_a = vref * _VREF_SCALE // 4096
        self._st = array("i", [n, 0, 0, coeff_a])
        # the calibration's readings of the codes the table covers (2.4 kB)
        self._top = array("H", (cal_mv(r, vref) for r in range(_LUT_LOW_RAW, _MAX_RAW + 1)))
        # the unit's true curve: knots (raw, pin uV) of pin voltage against code,
        # the calibration's curve off by the unit's residual offset and gain
        off = int(p["adc_offset_uv"])
        gain = int(p["adc_gain_ppm"]) + 1000000
        raws = [0, _LUT_LOW_RAW] + [_LUT_LOW_RAW + _LUT_STEP * (i + 1) for i in range(18)] + [_MAX_RAW]
        self._knot_raw = array("i", raws)
        self._knot_uv = array("i", ((cal_mv(r, vref) * 1000 - off) * 1000000 // gain for r in raws))
        self.floor_uv = cal_mv(0, vref) * 1000  # what a raw 0 reads
        ku = self._knot_uv
        self._lin_d = ku[1] - ku[0]  # the linear part, for set_uv's quick path
        self._lin_k0 = ku[0]
        self.err = OSError(-ESP_ERR_INVALID_ARG, "ESP_ERR_INVALID_ARG")  # raised, never built, by a read
        cls = AdcChannel if self.calibrated else UncalibratedChannel
        self.channels = {pin: cls(self, k) for pin, k in self.index.items()}
        for k in range(n):
            self._base_q8[k] = self.pin_q8(0)

    @micropython.native
    def pin_q8(self, uv):
        """The raw code (x256, + half a code, + _BIAS) of a pin voltage on
        this unit: below the first transition it goes under 0 (the noise
        cannot lift a grounded input off 0), above 4095 it saturates
        (both clamped in convert)."""
        d = uv - self._lin_k0
        if d < self._lin_d:
            q = d * (_LUT_LOW_RAW * 256) // self._lin_d + 128
            return _BIAS + (q if q > -0x800000 else -0x800000)
        ku = self._knot_uv
        kr = self._knot_raw
        j = 1
        while j < 20 and uv >= ku[j + 1]:
            j += 1
        if j == 20:
            return _BIAS + _MAX_RAW * 256 + 256 * 64  # well past the top: always 4095
        return _BIAS + kr[j] * 256 + (uv - ku[j]) * (kr[j + 1] - kr[j]) * 256 // (ku[j + 1] - ku[j]) + 128

    @micropython.native
    def set_uv(self, k, uv):
        if self.stuck_uv[k] < 0:
            self._base_q8[k] = self.pin_q8(uv)

    @micropython.native
    def set3_uv(self, uv0, uv1, uv2):
        """The three fast channels (heater V, heater I, cell V) in one call."""
        b = self._base_q8
        st = self.stuck_uv
        if st[0] < 0:
            b[0] = self.pin_q8(uv0)
        if st[1] < 0:
            b[1] = self.pin_q8(uv1)
        if st[2] < 0:
            b[2] = self.pin_q8(uv2)

    @micropython.native
    def convert(self):
        _convert(self._base_q8, self.uv, self.code, self._t1, self._t2, self._st, self._top)

    def stick(self, pin, uv):
        """Pin a channel's input at uv (a fault), or release it with uv < 0."""
        k = self.index[pin]
        self.stuck_uv[k] = uv
        if uv >= 0:
            self._base_q8[k] = self.pin_q8(uv)

    def restick(self):
        """After a reboot: the injected faults hold the inputs again."""
        for k in range(len(self.stuck_uv)):
            if self.stuck_uv[k] >= 0:
                self._base_q8[k] = self.pin_q8(self.stuck_uv[k])


def u16(raw):
    """read_u16() of a 12-bit code, as ports/esp32/machine_adc.c scales it."""
    return raw << 4 | raw >> 8


class MuxChannel:
    """The ADC input behind the analog multiplexer: the bank's channel
    first + select, as the select pins stand (plant.mux_sel); an unused
    input is grounded and reads what a raw 0 reads."""

    def __init__(self, bank, plant, first, n):
        self._bank = bank
        self._uv = bank.uv
        self._plant = plant
        self._first = first
        self._n = n

    def read_uv(self):
        b = self._bank
        if not b.calibrated:
            raise b.err
        sel = self._plant.mux_sel
        return self._uv[self._first + sel] if sel < self._n else b.floor_uv

    def read_u16(self):
        sel = self._plant.mux_sel
        return u16(self._bank.code[self._first + sel]) if sel < self._n else 0


class AdcChannel:
    """One ADC input as the firmware's machine.ADC sees it."""

    def __init__(self, bank, k):
        self._uv = bank.uv
        self._code = bank.code
        self._k = k
        self._err = bank.err

    @micropython.native
    def read_uv(self):
        return self._uv[self._k]

    def read_u16(self):
        return u16(self._code[self._k])


class UncalibratedChannel(AdcChannel):
    """A chip without eFuse calibration data: read_uv() raises as the port's
    does, every time; read_u16() (raw) still works."""

    def read_uv(self):
        raise self._err


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

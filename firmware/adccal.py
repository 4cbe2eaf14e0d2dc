"""The unit's ADC calibration, from end of line, in its own record ("adccal"),
apart from the heater's calibration record; and the corrections it gives.

On the ESP32, ADC.read_uv() is ESP-IDF's line-fitting calibration of the raw
code (docs/esp32.md):

- an input at 0 V does not read 0 uV: the line starts at its offset (142 mV
  on ADC1 at 11 dB with the eFuse Vref every chip has), and every input
  below the chip's first code transition reads that same value, the floor.
  A current sense at rest would read a few hundred mA that do not flow;
- above the floor a unit's readings are off by a residual offset and gain
  of its own (tens of mV): enough to shift the blade's measured resistance
  by about a percent (several K at the cap) and a cell's voltage by tens of mV.

The record holds what end of line measures:

- floor_uv: what a sense at rest reads (the heater's current sense, heater
  off; `adc zero`). A reading at or below floor_uv + MARGIN_UV is no signal;
- chg_i_zero_uv: the charger's bidirectional current sense at 0 A, nominally
  mid-scale (board.CHG_I_MID_UV), as read (`adc zero`); subtracted;
- offset_uv, gain_ppm: the readings' residual offset and gain against the
  station's reference (`adc cal OFFSET_UV GAIN_PPM`): fix() takes them out.

Without a record the defaults are nominal: right for the floor on every
eFuse-Vref chip, an identity for fix(). Measuring and storing it (end of
line only) is in adc_eol.py, loaded when the console's `adc` is used.
"""

import board
import store
from micropython import const

FILE = "adccal"
IDF_FLOOR_UV = const(142000)  # ESP-IDF adc_cali_line_fitting.c: coeff_b of ADC1 at 11 dB (eFuse Vref)
MARGIN_UV = const(25000)  # the noise and the first codes above raw 0, with room
DEFAULTS = {"floor_uv": IDF_FLOOR_UV, "chg_i_zero_uv": board.CHG_I_MID_UV, "offset_uv": 0, "gain_ppm": 0}
_FLOOR_MAX_UV = const(300000)  # a sense at rest reading more is not at rest
_MID_TOL_UV = const(150000)  # the charger's sense at 0 A, this close to mid-scale
_OFFSET_MAX_UV = const(100000)
_GAIN_MAX_PPM = const(60000)

# in use (set by use()): the step reads them as module globals
_rest_uv = IDF_FLOOR_UV + MARGIN_UV
_off_uv = 0
_k_q16 = 0  # 65536 * (1 / (1 + gain) - 1)


class AdcCal:
    def __init__(self, rec, stored):
        self.floor_uv = rec["floor_uv"]
        self.rest_uv = self.floor_uv + MARGIN_UV  # at or below: nothing on the input
        self.chg_i_zero_uv = rec["chg_i_zero_uv"]
        self.offset_uv = rec["offset_uv"]
        self.gain_ppm = rec["gain_ppm"]
        self.stored = stored


def valid(rec):
    return (0 <= rec["floor_uv"] <= _FLOOR_MAX_UV
            and -_MID_TOL_UV <= rec["chg_i_zero_uv"] - board.CHG_I_MID_UV <= _MID_TOL_UV
            and -_OFFSET_MAX_UV <= rec["offset_uv"] <= _OFFSET_MAX_UV
            and -_GAIN_MAX_PPM <= rec["gain_ppm"] <= _GAIN_MAX_PPM)  # fmt: skip


def load():
    rec, ok = store.load(FILE, DEFAULTS)
    if not valid(rec):
        rec, ok = dict(DEFAULTS), False
    return AdcCal(rec, ok)


def use(c):
    """Correct readings with calibration c from now on."""
    global _rest_uv, _off_uv, _k_q16
    _rest_uv = c.rest_uv
    _off_uv = c.offset_uv
    _k_q16 = (65536 * 1000000 + (1000000 + c.gain_ppm) // 2) // (1000000 + c.gain_ppm) - 65536


def fix(uv):
    """A reading above the floor, its residual offset and gain taken out.
    Small ints only: (uv >> 8) * k <= 12500 * 4000. (Bytecode: native code
    would cost the ESP32's scarce IRAM, hil/simulator/native.py.)"""
    x = uv - _off_uv
    return x + ((x >> 8) * _k_q16 >> 8)


def sense(uv):
    """A unipolar sense's reading, corrected; 0 at rest (at the floor)."""
    if uv <= _rest_uv:
        return 0
    x = uv - _off_uv
    return x + ((x >> 8) * _k_q16 >> 8)

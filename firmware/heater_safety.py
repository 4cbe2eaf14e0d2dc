"""Heater safety, independent of the controller.

It looks only at raw readings (heater volts and amps, cell volts, thermistor
microvolts, stick detector) against thresholds fixed at start-up, and never
at what the controller computed. Thresholds are in the readings' own units so
the check is a few integer comparisons: no division, nothing allocated, and
every product well inside a 30-bit small int on the ESP32.
"""

import micropython
import ntc
from board import CAL_T0_C
from faults import (
    ADC_IMPLAUSIBLE,
    AMBIENT_COLD,
    AMBIENT_HOT,
    CELL_OVERTEMP,
    CELL_UNDERVOLT,
    HEATER_OPEN,
    HEATER_SHORT,
    OVER_TEMP,
    STICK_MISSING,
)
from micropython import const

TEMP_CAP_C = const(345)  # trip point: 5 K under the 350 C product cap
_R_SHORT_PCT = const(50)  # below half the cold resistance no good track exists
_I_OPEN_MA = const(150)  # gate on but less than this flows: open circuit
_I_MAX_MA = const(6000)  # above this the shunt amplifier is near its rail
_RAIL_UV = const(3060000)  # ADC full scale less 40 mV: a reading this high is pinned
# below this a thermistor input is shorted: on the ESP32 0 V reads the ADC's
# floor, 142 mV (adccal.py), so the line is above it; 200 mV is ~103 C
_NTC_MIN_UV = const(200000)
_V_OVER_CELL_MV = const(300)  # heater volts can never exceed the cell's by this
_CELL_MIN_MV = const(3000)  # under-voltage under load
_CELL_SANE_MIN_MV = const(2200)  # below this the reading, not the cell, is wrong
_CELL_SANE_MAX_MV = const(4600)
CELL_MAX_C = const(60)
AMBIENT_MIN_C = const(0)
AMBIENT_MAX_C = const(50)
_NTC_TOL_C = 0.5  # thermistor accuracy: trip only when clearly outside a limit

_DEBOUNCE = const(2)  # samples: slow signals must be out of range twice in a row


class HeaterSafety:
    def __init__(self, cal):
        # resistance thresholds in 100 uOhm
        r0 = cal.r0_uohm
        self._r0_100u = r0 // 100
        self._dppm_cap = cal.tcr_ppm * (TEMP_CAP_C - CAL_T0_C)  # R's rise to the cap, ppm of R0
        self.r_cap_100u = 0
        self.derate(1000)
        self.r_short_100u = r0 * _R_SHORT_PCT // 10000
        # thermistor thresholds in uV (the divider voltage falls as temperature rises)
        self.cell_hot_uv = ntc.uv_at_c(CELL_MAX_C + _NTC_TOL_C)
        self.amb_cold_uv = ntc.uv_at_c(AMBIENT_MIN_C - _NTC_TOL_C)
        self.amb_hot_uv = ntc.uv_at_c(AMBIENT_MAX_C + _NTC_TOL_C)
        self.start_block = 0  # a reason to refuse a start found elsewhere (charger.py), or 0
        self.reset()

    def reset(self):
        self._uv_n = 0
        self._hot_n = 0
        self._amb_n = 0

    @micropython.native
    def check_heating(self, sampled, v_mv, i_ma, cell_mv, vh_uv, ih_uv, cell_ntc_uv, amb_ntc_uv, stick):
        """Fault code for one control period while the heater is on, else 0.
        `sampled` says the heater readings come from an on-phase (duty was > 0)."""
        if not stick:
            return STICK_MISSING
        if sampled:
            if i_ma < _I_OPEN_MA:
                return HEATER_OPEN
            if i_ma > _I_MAX_MA or v_mv * 10000 < self.r_short_100u * i_ma:
                return HEATER_SHORT
            if vh_uv >= _RAIL_UV or ih_uv >= _RAIL_UV or v_mv > cell_mv + _V_OVER_CELL_MV:
                return ADC_IMPLAUSIBLE
            if v_mv * 10000 > self.r_cap_100u * i_ma:
                return OVER_TEMP
        if not (_CELL_SANE_MIN_MV <= cell_mv <= _CELL_SANE_MAX_MV and _NTC_MIN_UV <= cell_ntc_uv < _RAIL_UV
                and _NTC_MIN_UV <= amb_ntc_uv < _RAIL_UV):  # fmt: skip
            return ADC_IMPLAUSIBLE
        # slow signals, debounced
        if cell_mv < _CELL_MIN_MV:
            self._uv_n += 1
            if self._uv_n >= _DEBOUNCE:
                return CELL_UNDERVOLT
        else:
            self._uv_n = 0
        if cell_ntc_uv < self.cell_hot_uv:
            self._hot_n += 1
            if self._hot_n >= _DEBOUNCE:
                return CELL_OVERTEMP
        else:
            self._hot_n = 0
        if amb_ntc_uv > self.amb_cold_uv or amb_ntc_uv < self.amb_hot_uv:
            self._amb_n += 1
            if self._amb_n >= _DEBOUNCE:
                return AMBIENT_COLD if amb_ntc_uv > self.amb_cold_uv else AMBIENT_HOT
        else:
            self._amb_n = 0
        return 0

    def derate(self, slope_pm):
        """The over-temperature trip where the reading, corrected by
        slope_pm (cal_check.py: 1000 none), reaches TEMP_CAP_C."""
        dppm = self._dppm_cap * 100 // slope_pm * 10  # the cap's rise, ppm of R0: <= 1.3e6
        self.r_cap_100u = self._r0_100u + self._r0_100u * (dppm // 100) // 10000

    def start_refusal(self, cell_mv, cell_ntc_uv, amb_ntc_uv):
        """Why a session may not start now (a fault code), or 0. One sample, no debounce."""
        if not (_CELL_SANE_MIN_MV <= cell_mv <= _CELL_SANE_MAX_MV and _NTC_MIN_UV <= cell_ntc_uv < _RAIL_UV
                and _NTC_MIN_UV <= amb_ntc_uv < _RAIL_UV):  # fmt: skip
            return ADC_IMPLAUSIBLE
        if cell_mv < _CELL_MIN_MV:
            return CELL_UNDERVOLT
        if cell_ntc_uv < self.cell_hot_uv:
            return CELL_OVERTEMP
        if amb_ntc_uv > self.amb_cold_uv:
            return AMBIENT_COLD
        if amb_ntc_uv < self.amb_hot_uv:
            return AMBIENT_HOT
        return self.start_block

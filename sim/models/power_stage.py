"""Heater power stage: holder cell -> load switch -> heater -> low-side MOSFET
(PWM) -> shunt. The PWM runs at 20 kHz, far faster than any thermal time
constant, so the plant sees its average; the sense amplifiers latch the
on-phase values (sample-and-hold), which is what the ADC reads.

Plant finds the on-phase current from the heater's resistance and the cell;
apply() spreads it over the duty cycle. The firmware's duty and load switch
are latched at the start of each interval. Units: uA, uV, uW, uOhm.
"""

import micropython
from micropython import const

_PPM = const(1000000)


class PowerStage:
    def __init__(self, p):
        r = p["r_shunt_ohm"] + p["r_mosfet_ohm"] + p["r_switch_ohm"] + p["r_wiring_ohm"]
        self.r_fixed_uohm = int(r * _PPM)
        self.i_q_ua = int(p["i_quiescent_a"] * _PPM)  # while the load switch is on; asleep: ~0
        self.i_in_ua = 0  # charge current from the dock
        self.duty_u16 = 0
        self.en = 0
        self.gate_stuck_on = False  # injected: MOSFET shorted drain-source
        self.i_on_ua = 0  # on-phase heater current
        self.v_on_uv = 0  # on-phase heater voltage
        self.emf_uv = 0  # cell voltage behind its R0
        self.r_cell_uohm = 0
        self.on_u16 = 0  # share of time the heater conducts, of 65535
        self.p_uw = 0  # average heater power
        self.i_cell_ua = 0  # average cell current, + discharging
        self.v_cell_uv = 0  # average cell terminal voltage

    @micropython.native
    def apply(self):
        if not self.en:
            on = 0
        elif self.gate_stuck_on:
            on = 65535
        else:
            on = self.duty_u16
        self.on_u16 = on
        i_on = self.i_on_ua
        # i * v <= 6e6 * 4.2e6: inside 63 bits, and / 1e6 before the duty
        self.p_uw = i_on * self.v_on_uv // 1000000 * on // 65535
        i_cell = i_on * on // 65535 + (self.i_q_ua if self.en else 0) - self.i_in_ua
        self.i_cell_ua = i_cell
        self.v_cell_uv = self.emf_uv - i_cell * self.r_cell_uohm // 1000000

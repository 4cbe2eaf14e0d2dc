"""The pocket charger: its cell, the USB source, the charge stage that
charges the cell from USB, the path that charges a docked holder, and the
charger's own electronics.

    USB source (5 V, current limit, cable R) --> USB stage --> charger cell
                  \\                                    |
                   +------> holder stage <--------------+ (from the cell
                                 |                        when no USB)
                                 v
                           holder cell (when docked)

Both stages are current sources set by the firmware's PWM (duty / 65535 of
the full-scale current), clamped in hardware at the over-voltage limit. The
USB input power is shared: the holder stage and the electronics first, the
USB stage gets the rest (the charger IC's dynamic power management). Without
USB the holder stage and the electronics draw on the charger cell; its
protection circuit disconnects it below its cut-off voltage.

Charge moves slowly (seconds to hours), so one explicit step per plant
interval is enough; intervals longer than a second are split.
"""

import micropython
from micropython import const

from sim.models.cell import Cell

_PPM = const(1000000)
_MAX_STEP_US = const(1000000)


class SetPoint:
    """A stage's current set-point input: the PWM (sim.mpapi.wiring) writes duty_u16."""

    def __init__(self):
        self.duty_u16 = 0


class ChargerModel:
    def __init__(self, p, ambient_c):
        self.cell = Cell(p, "chg_cell_", ambient_c)
        self.usb_uv = int(p["usb_v"] * _PPM)
        self.usb_limit_ua = int(p["usb_i_limit_a"] * _PPM)
        self.usb_r_uohm = int(p["usb_r_cable_ohm"] * _PPM)
        self.usb = p["usb_plugged"] > 0
        self.docked = p["docked"] > 0
        self.in_limit_ua = int(p["chg_in_limit_a"] * _PPM)
        self.eff_ppm = int(p["chg_eff"] * _PPM)
        self.h_eff_ppm = int(p["hchg_eff"] * _PPM)
        self.ovp_uv = int(p["v_ovp"] * _PPM)
        self.cutoff_uv = int(p["chg_cell_cutoff_v"] * _PPM)
        self.i_sys_ua = int(p["i_system_a"] * _PPM)
        self.i_led_ua = int(p["i_led_a"] * _PPM)
        self.fs_ua = int(p["iset_fs_a"] * _PPM)
        self.usb_set = SetPoint()
        self.hold_set = SetPoint()
        self.leds = 0  # bit per charger LED
        self.cell_on = True  # protection circuit closed
        # results of the last step
        self.i_chg_ua = 0  # into the charger cell (+ charging)
        self.i_hold_ua = 0  # holder stage output
        self.i_usb_ua = 0  # drawn from USB
        self.p_in_uw = 0  # power into the charger from USB
        self.vbus_uv = self.usb_uv if self.usb else 0
        self.v_cell_uv = self.cell.ocv_uv

    def advance(self, dt_us, v_hold_uv, r_hold_uohm, t_amb_uc):
        """Integrate over dt_us (0: only re-evaluate the currents) with the
        holder cell at v_hold_uv behind r_hold_uohm; returns the holder
        charge current."""
        while True:
            h = dt_us if dt_us < _MAX_STEP_US else _MAX_STEP_US
            self._step(h, v_hold_uv, r_hold_uohm, t_amb_uc)
            dt_us -= h
            if dt_us <= 0:
                return self.i_hold_ua

    @micropython.native
    def _step(self, h, v_hold_uv, r_hold_uohm, t_amb_uc):
        cell = self.cell
        r0 = cell.r0_uohm
        fs = self.fs_ua
        leds = self.leds
        i_sys = self.i_sys_ua + self.i_led_ua * ((leds & 1) + (leds >> 1 & 1) + (leds >> 2 & 1) + (leds >> 3 & 1))
        e_cell = cell.ocv() - cell.v_rc_uv  # behind R0
        # holder stage: a current source, clamped so the holder never sees more than OVP
        i_h = 0
        h_duty = self.hold_set.duty_u16
        if self.docked and h_duty:
            i_h = fs * h_duty // 65535
            i_max = (self.ovp_uv - v_hold_uv) * _PPM // r_hold_uohm
            if i_h > i_max:
                i_h = i_max if i_max > 0 else 0
        p_h = (v_hold_uv + i_h * r_hold_uohm // _PPM) * i_h // _PPM * _PPM // self.h_eff_ppm
        i_c = 0  # into the charger cell
        i_usb = 0
        vbus = 0
        if self.usb:
            lim = self.usb_limit_ua if self.usb_limit_ua < self.in_limit_ua else self.in_limit_ua
            p_avail = (self.usb_uv - lim * self.usb_r_uohm // _PPM) * lim // _PPM
            p_sys = self.usb_uv * i_sys // _PPM  # regulator from VBUS
            p_left = p_avail - p_sys - p_h
            if p_left < 0:  # the holder stage gets what the input has left
                p_hmax = p_avail - p_sys if p_avail > p_sys else 0
                i_h = i_h * p_hmax // p_h
                p_h = p_hmax
                p_left = 0
            duty = self.usb_set.duty_u16
            if duty:
                i_c = fs * duty // 65535
                i_max = (self.ovp_uv - e_cell) * _PPM // r0
                if i_c > i_max:
                    i_c = i_max if i_max > 0 else 0
                p_max = p_left * self.eff_ppm // _PPM
                if (e_cell + i_c * r0 // _PPM) * i_c // _PPM > p_max:  # input power limit
                    i_c = p_max * _PPM // (e_cell + i_c * r0 // _PPM)
            p_c = (e_cell + i_c * r0 // _PPM) * i_c // _PPM * _PPM // self.eff_ppm
            p_in = p_c + p_h + p_sys
            self.p_in_uw = p_in
            i_usb = p_in * _PPM // self.usb_uv
            vbus = self.usb_uv - i_usb * self.usb_r_uohm // _PPM
            self.cell_on = True  # the protection circuit closes on a charger
        elif self.cell_on:
            # the holder stage and the electronics run from the cell
            i_prev = -self.i_chg_ua if self.i_chg_ua < 0 else 0
            v = e_cell - i_prev * r0 // _PPM
            i_c = -(p_h * _PPM // v) - i_sys
            if v < self.cutoff_uv:
                self.cell_on = False  # cell protection: everything it fed stops
        if not self.cell_on:
            i_c = 0
            i_h = 0
        self.i_chg_ua = i_c
        self.i_hold_ua = i_h
        self.i_usb_ua = i_usb
        self.vbus_uv = vbus
        # the cell: charge, polarisation, heat
        q = cell.q_pc + i_c * h
        cell.q_pc = q if q > 0 else 0
        cell.v_rc_uv += (-i_c * cell.r1_uohm // _PPM - cell.v_rc_uv) * h // cell.tau1_us
        self.v_cell_uv = e_cell + i_c * r0 // _PPM
        i2 = i_c * i_c // _PPM
        cell.heat(i2 * (r0 + cell.r1_uohm) // _PPM, t_amb_uc, h)

"""Pocket-charger battery management, from the main loop: USB charging of
the charger's cell, charging of the docked holder, a fuel gauge for each
cell, the gate that refuses a session the holder cannot finish, and the
power telemetry.

Every TICK_MS it reads the charger's signals through the multiplexer and
the holder's cell, feeds both gauges, runs both charge loops
(charge_loop.py) and sets the two stages' current set-points (PWM). The
holder's discharge comes from the control step's heater-current sum plus the
front end's known draw; its charge from the dock's current sense.

Session gate: a session needs the charge of a 6-minute session of the
active profile (more in the cold), plus a reserve that keeps the cell above
its cut-off under the last puffs at the cell's temperature, plus the
gauge's margin. Below that, heater_ctl refuses a start with HOLDER_LOW
instead of tripping under-voltage half-way.

The power telemetry frame (framing.T_POWER, docs/power.md), once a second,
as FMT packs it, little-endian; the host decodes it by these names
(hil/wire/contract.py reads them here):
    t_ms u32, kit u8 (device.KIT_NAMES), heater_state u8, end_reason u8,
    fault u8, refused u8 (why the last start was refused),
    refusals u8 (since boot, wraps), usb_charge u8 (charge_loop.NAMES),
    holder_charge u8, flags u8 (_FLAG_*), charge_fault u8,
    chg_mv u16 (the charger's cell), chg_ma i16 (+ charging),
    chg_soc u16 (0.01 %), chg_dc i16 (0.1 C), hold_mv u16 (the holder's cell),
    hold_ma i16, hold_soc u16, hold_dc i16, vbus_mv u16, sessions u16,
    leds u8
"""

import sys
import time
from struct import pack_into

import board
import charge_loop
import faults
import framing
import machine
from adccal import fix, sense
from charge_loop import ChargeLoop
from gauge import Gauge, r_mohm_at, soc_from_ocv
from heater_ctl import CONTROL_PERIOD_MS, drawn_ma_steps
from machine import ADC, PWM, Pin
from micropython import const
from ntc import dc_from_uv
from states import COOLING, END_WARNING, HEATING, PREHEAT, SLEEP

TICK_MS = const(250)
SLOW_TICKS = const(4)  # temperatures, USB, dock, the session gate: once a second
_VBUS_MIN_MV = const(4400)
_USB_I_CC_MA = const(2000)  # 0.7 C: full in < 2 h (the 0.5 C standard charge takes ~2.6 h)
_USB_I_TERM_MA = const(58)  # 0.02 C
_HOLD_I_CC_MA = const(2100)  # 17.5 C, a high-rate cell: ~4 min from a session's end to full
_HOLD_I_TERM_MA = const(180)  # 1.5 C: ~98 % when it stops
_MIN_MS = const(60000)
_RESERVE_CPCT = const(300)  # the charger keeps 3 % for itself ...
_CHG_MIN_MV = const(3300)  # ... and stops charging the holder below this under load
_REST_CHG_MS = const(300000)  # OCV after 5 min at rest (tau1 of an 18650: 20-60 s)
_REST_HOLD_MS = const(120000)  # holder: 2 min (tau1 10-30 s)
# Charge a 6-min session takes from the holder at 20 C, uAh: HCI puffing, the
# most demanding standard regime, on the reference holder (+1 %); a colder
# holder loses more heat, 0.55 % more per K below 20 C.
SESSION_UAH = {"standard": 101000, "eco": 95000, "intense": 105500}
_COLD_PPM_PER_DK = const(550)  # per 0.1 K below 20 C
# The session's last puffs draw ~1.5 A: the cell must end above the
# under-voltage trip (heater_safety) at that current, through its resistance at
# its temperature; the OCV table turns that voltage into the SoC to keep.
_END_MA = const(1500)
_END_MV = const(3050)  # the 3.0 V trip and 50 mV of margin
_GAUGE_MARGIN_CPCT = const(100)

# the power frame's payload: its fields are listed in the module's docstring
FMT = "<IBBBBBBBBBBHhHhHhHhHHB"
PAYLOAD_LEN = const(35)
_FLAG_USB = const(0x01)
_FLAG_DOCKED = const(0x02)
_FLAG_ON = const(0x04)
_FLAG_HOLDER_LOW = const(0x08)
_FLAG_CHARGER_EMPTY = const(0x10)


class Mux:
    """The 8:1 analog multiplexer in front of the charger's ADC input."""

    def __init__(self):
        self._sel = (Pin(board.PIN_MUX_S0, Pin.OUT, value=0), Pin(board.PIN_MUX_S1, Pin.OUT, value=0),
                     Pin(board.PIN_MUX_S2, Pin.OUT, value=0))  # fmt: skip
        self._adc = ADC(Pin(board.PIN_ADC_MUX), atten=ADC.ATTN_11DB)
        self._ch = 0

    def read_uv(self, ch):
        """Input ch (select lines change only where they differ; the
        multiplexer settles within the ADC's own sampling time)."""
        d = ch ^ self._ch
        if d:
            self._ch = ch
            s = self._sel
            if d & 1:
                s[0].value(ch & 1)
            if d & 2:
                s[1].value(ch >> 1 & 1)
            if d & 4:
                s[2].value(ch >> 2)
        return self._adc.read_uv()


class Power:
    def __init__(self, heater, fault_log, event):
        self.heater = heater
        self.fault_log = fault_log
        self._event = event  # fn(text): console event
        self._mux = Mux()
        self.chg_i_zero_uv = board.CHG_I_MID_UV  # its sense at 0 A (adccal.py; the app sets the unit's)
        self._dock = Pin(board.PIN_DOCK_DET, Pin.IN)
        self._pwm = (PWM(Pin(board.PIN_CHG_ISET), freq=10000, duty_u16=0),
                     PWM(Pin(board.PIN_HCHG_ISET), freq=10000, duty_u16=0))  # USB stage, holder stage
        self.usb_loop = ChargeLoop(_USB_I_CC_MA, _USB_I_TERM_MA, board.CHARGER_R_MOHM, 240 * _MIN_MS, 30 * _MIN_MS)
        self.hold_loop = ChargeLoop(_HOLD_I_CC_MA, _HOLD_I_TERM_MA, board.HOLDER_R_MOHM, 10 * _MIN_MS, _MIN_MS)
        self.chg = Gauge(board.CHARGER_CELL_MAH, board.CHARGER_R_MOHM, _REST_CHG_MS)
        self.hold = Gauge(board.HOLDER_CELL_MAH, board.HOLDER_R_MOHM, _REST_HOLD_MS)
        self.on = True  # charger switched on (button, 4 s)
        self.usb = False
        self.docked = False
        self.holder_low = False
        self.charger_empty = False
        self.profile = "standard"
        self._last_ms = time.ticks_ms()
        self._n = 0  # ticks since the last slow one
        self._states = (0, 0)
        self.done = [0, 0]  # charges completed since boot: USB, holder
        self._buf = bytearray(PAYLOAD_LEN + framing.OVERHEAD)
        # last readings
        self.chg_mv = self.chg_ma = self.chg_dc = 0
        self.hold_mv = self.hold_ma = self.hold_dc = 0
        self.hchg_ma = self.vbus_mv = 0

    def _measure(self, slow):
        """Every tick the cells' voltages and currents; on slow ticks (1 s)
        the temperatures, USB and the dock too."""
        r = self._mux.read_uv
        # corrected by the unit's ADC calibration (adccal.py): at rest a sense reads the floor, not 0
        self.chg_mv = fix(r(board.MUX_CHG_V)) * board.CHG_V_DIV // 1000
        self.chg_ma = (r(board.MUX_CHG_I) - self.chg_i_zero_uv) // board.CHG_I_UV_PER_MA
        self.hchg_ma = sense(r(board.MUX_HCHG_I)) // board.HCHG_I_UV_PER_MA
        h = self.heater  # the holder's cell inputs, as the control step reads them
        self.hold_mv = fix(h.adc_cell.read_uv()) * board.CELL_V_DIV // 1000
        if slow:
            self.chg_dc = dc_from_uv(r(board.MUX_CHG_NTC))
            self.vbus_mv = fix(r(board.MUX_VBUS)) * board.VBUS_DIV // 1000
            self.hold_dc = dc_from_uv(h.adc_cell_ntc.read_uv())
            self.usb = self.vbus_mv >= _VBUS_MIN_MV
            self.docked = self._dock.value() == 1

    def chg_i_reader(self):
        """A read_uv of the charger's current sense (end of line: adccal.py)."""
        return lambda: self._mux.read_uv(board.MUX_CHG_I)

    def start(self):
        """At boot: both cells at rest, SoC from their voltages."""
        self._measure(True)
        self.chg.start(self.chg_mv)
        self.hold.start(self.hold_mv)
        self._gate()

    def service(self, now_ms):
        """Every TICK_MS: returns 1, or 2 on a slow tick (once a second); else 0.
        (Kept small: MicroPython puts a large function's frame on the heap at
        every call, and this one is called from every main-loop pass.)"""
        dt = time.ticks_diff(now_ms, self._last_ms)
        if dt < TICK_MS:
            return 0
        self._last_ms = now_ms
        self._n += 1
        slow = self._n >= SLOW_TICKS
        if slow:
            self._n = 0
        self._tick(now_ms, dt, slow)
        if slow:
            self._gate()
            return 2
        return 1

    def _tick(self, now_ms, dt, slow):
        self._measure(slow)
        h = self.heater
        # the holder: heater current summed by the control step, the front end, the dock
        irq = machine.disable_irq()
        steps = drawn_ma_steps[0]
        drawn_ma_steps[0] = 0
        machine.enable_irq(irq)
        hstate = h.state
        mams = -steps * CONTROL_PERIOD_MS
        if hstate == PREHEAT or hstate == HEATING or hstate == END_WARNING:
            mams -= board.HOLDER_IQ_MA * dt
        if self.docked:
            mams += self.hchg_ma * dt
        self.hold_ma = mams // dt
        self.hold.count(mams, dt, self.hold_mv, self.hold_dc)
        self.chg.count(self.chg_ma * dt, dt, self.chg_mv, self.chg_dc)
        # charger cell empty: stop feeding the holder (1 % hysteresis)
        soc = self.chg.soc()
        if self.charger_empty:
            self.charger_empty = soc < _RESERVE_CPCT + 100 or self.chg_mv < _CHG_MIN_MV + 100
        else:
            self.charger_empty = soc < _RESERVE_CPCT or self.chg_mv < _CHG_MIN_MV
        # the two charges
        ul = self.usb_loop
        iset = ul.step(self.usb, self.chg_mv, self.chg_ma, self.chg_dc, dt)
        self._pwm[0].duty_u16(iset * 65535 // board.ISET_FS_MA)
        hl = self.hold_loop
        ok = self.docked and self.on and (hstate == SLEEP or hstate == COOLING) and (self.usb or not self.charger_empty)
        iset = hl.step(ok, self.hold_mv, self.hchg_ma, self.hold_dc, dt)
        self._pwm[1].duty_u16(iset * 65535 // board.ISET_FS_MA)
        if ul.state != self._states[0] or hl.state != self._states[1]:
            self._changed(now_ms)

    def _changed(self, now_ms):
        """A charge loop changed state: report it, and mark a full cell."""
        ul = self.usb_loop
        hl = self.hold_loop
        for k, loop, gauge, name in ((0, ul, self.chg, "usb"), (1, hl, self.hold, "holder")):
            st = loop.state
            if st != self._states[k]:
                self._event("charge %s %s" % (name, charge_loop.NAMES[st]))
                if st == charge_loop.DONE:
                    self.done[k] += 1
                    gauge.full(loop.v_target_mv, loop.i_term_ma, self.hold_dc if k else self.chg_dc)
                elif st == charge_loop.FAULT:
                    self.fault_log.record(loop.fault, now_ms, k)
        self._states = (ul.state, hl.state)

    def _gate(self):
        """Refuse a session the holder cannot finish."""
        t = self.hold_dc
        uah = SESSION_UAH.get(self.profile, 105500)
        if t < 200:
            uah += uah // 1000 * _COLD_PPM_PER_DK * (200 - t) // 1000
        v_end = _END_MV + _END_MA * r_mohm_at(board.HOLDER_R_MOHM, t) // 1000
        need = uah // (self.hold.cap_mah // 10) + soc_from_ocv(v_end) + _GAUGE_MARGIN_CPCT
        self.holder_low = self.hold.soc() < need
        self.heater.safety.start_block = faults.HOLDER_LOW if self.holder_low else faults.NONE

    def frame(self, now_ms, kit, sessions, leds):
        """The power telemetry frame (framing.T_POWER, docs/power.md)."""
        flags = (_FLAG_USB if self.usb else 0) | (_FLAG_DOCKED if self.docked else 0) | (_FLAG_ON if self.on else 0)
        if self.holder_low:
            flags |= _FLAG_HOLDER_LOW
        if self.charger_empty:
            flags |= _FLAG_CHARGER_EMPTY
        ul = self.usb_loop
        hl = self.hold_loop
        h = self.heater
        b = self._buf
        pack_into(FMT, b, 3, now_ms, kit, h.state, h.end_reason, h.fault, h.refused, h.refusals & 0xFF,
                  ul.state, hl.state, flags, ul.fault if ul.state == charge_loop.FAULT else hl.fault,
                  self.chg_mv, self.chg_ma, self.chg.soc(), self.chg_dc, self.hold_mv, self.hold_ma,
                  self.hold.soc(), self.hold_dc, self.vbus_mv, sessions & 0xFFFF, leds)  # fmt: skip
        framing.seal(b, 0, framing.T_POWER, PAYLOAD_LEN)
        sys.stdout.buffer.write(b)

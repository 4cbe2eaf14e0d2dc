"""Heating control loop.

Every CONTROL_PERIOD_MS, from a machine.Timer:
  1. sample heater volts and amps (on-phase sample-and-hold), the cell, the
     thermistors and the stick detector;
  2. run the safety checks (heater_safety) on those raw readings: any fault
     cuts the heater through both the PWM and the load switch in this step;
  3. bound the time the heater is on: the session's 6:00 from the start of
     heating, the preheat's own limit (PREHEAT_TIMEOUT);
  4. compute the blade temperature from its resistance and the calibration
     record, checked against physics the record does not enter into
     (cal_check.py), and the set-point from the profile;
  5. a PI controller with anti-windup gives the power demand; dividing by the
     heater's full-on power (measured, so it follows the sagging cell) gives
     the duty: that is the cell-voltage feed-forward;
  6. puff detection from the start of heating (puff_detect.py, fed the
     blade's heat loss), the puff limit, the end warning;
  7. one telemetry record.

The step is integer-only and allocates nothing; every product below is
bounded to stay inside the ESP32's 30-bit small ints (ranges in comments).
It is compiled to native code, and keeps attribute and global lookups few:
in MicroPython each one is a dictionary lookup. State changes that must be
exact in time happen here; the main loop asks for start, stop and
fault-clear through request flags and only reads state.
"""

from array import array
from time import ticks_diff, ticks_ms, ticks_us

import micropython
from adccal import fix, sense
from attr_map import make_room
from board import (
    BLADE_HEAT_UJ_PER_CC,
    CAL_T0_C,
    CELL_V_DIV,
    HEATER_PWM_FREQ_HZ,
    HEATER_V_DIV,
    PIN_ADC_AMBIENT_NTC,
    PIN_ADC_CELL_NTC,
    PIN_ADC_CELL_V,
    PIN_ADC_HEATER_I,
    PIN_ADC_HEATER_V,
    PIN_BUTTON,
    PIN_HEATER_EN,
    PIN_HEATER_PWM,
    PIN_STICK_DET,
    UV_PER_MA,
)
from cal_check import FIRST, RISE, SLOPE_ONE, CalCheck
from faults import BLADE_WARM, CALIBRATION, GATE_STUCK, NONE, PREHEAT_TIMEOUT, STICK_MISSING
from heater_safety import HeaterSafety
from machine import ADC, PWM, Pin, Timer
from micropython import const
from ntc import dc_from_uv
from puff_detect import PuffDetector
from states import (
    COOLING,
    END_FAULT,
    END_NONE,
    END_PUFFS,
    END_TIME,
    END_USER,
    END_WARNING,
    FAULT,
    HEATING,
    PREHEAT,
    SLEEP,
)
from telemetry import FLAG_HEATER_EN, FLAG_IDLE_RATE, FLAG_PUFF, FLAG_READY, FLAG_STICK

CONTROL_PERIOD_MS = const(10)
IDLE_PERIOD_MS = const(1000)  # asleep: readings and telemetry at 1 Hz, nothing to control

SESSION_MS = const(360000)  # 6:00
SESSION_PUFFS = const(14)
WARN_BEFORE_END_MS = const(30000)
WARN_PUFFS_LEFT = const(2)
COOLING_MS = const(30000)
_PREHEAT_GRACE_MS = const(15000)  # past the profile's preheat, still not in band: PREHEAT_TIMEOUT
_PUFF_RISE_CC = const(8000)  # puffs are counted once the blade is 80 K above the air (a cold session: ~90 K)
# the heater off this long, the blade is at the air (cal_check.py): after the hottest
# session the simulated blade is 3 K above it at 2 minutes (docs/safety.md)
_COOL_US = const(120000000)
# the blade more than this above its reading when the duty fell to _DUTY_MIN
# (~4 mJ a period: it cools) while the duty stays there: the PWM does not hold
# the heater (a shorted MOSFET: 2-12 K a period). The session's first reading
# holds the least duty a period: before it the cold-blade check is blind.
_HELD_RISE_CC = const(300)
_NOT_HELD = const(-0x20000000)  # the duty above its least: below any reading (>= -2e5 cC)
_AMB_MOVE_UV = const(3000)  # the ambient thermistor moved this much (~0.1 K): the air is read again

# controller (temperatures in 0.01 C, power in mW)
_KP_MW_PER_CC = const(4)  # 400 mW per K
_KI_Q8 = const(7)  # integral gain per step and cC, x256: ~0.27 W per K.s
_FF_MW_PER_K = const(8)  # holding-loss estimate of a holder with a stick
_T_REF_C = const(20)
_P_MAX_MW = const(10000)  # preheat power cap (cell current)
_DUTY_MAX = const(65535)
_DUTY_MIN = const(1024)  # keeps the sense sample-and-hold fed while heating
_I_VALID_MA = const(50)

# Module state, not attributes: one heater, and its instance's attribute map is
# best kept as it was (a fuller map slows every lookup in the step).
drawn_ma_steps = array("i", [0])  # mean heater current summed per step, for the holder's fuel gauge
_fast = False  # stepping every CONTROL_PERIOD_MS, else IDLE_PERIOD_MS

_REQ_NONE = const(0)
_REQ_START = const(1)
_REQ_STOP = const(2)
_REQ_CLEAR = const(3)


def temp_cc(v_100uv, i_ma, r0_10u, r0tcr_uohm_k):
    """Blade temperature (0.01 C) from heater volts (100 uV units) and amps (mA).

    R = V/I in 10 uOhm: v <= 62000 (ADC rail x2), so v * 10000 <= 6.2e8.
    Clamped to 3 x R0 (far above the cap) so (R - R0) * 1000 <= 3e8.
    """
    r = v_100uv * 10000 // i_ma
    if r > 3 * r0_10u:
        r = 3 * r0_10u
    return CAL_T0_C * 100 + (r - r0_10u) * 1000 // r0tcr_uohm_k


class HeaterControl:
    def __init__(self, cal, profile, telemetry, fault_log):
        self.cal = cal
        self.profile = profile
        self.tele = telemetry
        self.fault_log = fault_log
        self.safety = HeaterSafety(cal)
        self.cal_check = CalCheck()
        self.puffs = PuffDetector()
        # the load switch off first: before MicroPython 1.26 a new PWM runs at
        # 50 % until its duty applies (docs/esp32.md), and a soft reset leaves pins as they were
        self.en = Pin(PIN_HEATER_EN, Pin.OUT, value=0)
        self.pwm = PWM(Pin(PIN_HEATER_PWM), freq=HEATER_PWM_FREQ_HZ, duty_u16=0)
        self.adc_vh = ADC(Pin(PIN_ADC_HEATER_V), atten=ADC.ATTN_11DB)
        self.adc_ih = ADC(Pin(PIN_ADC_HEATER_I), atten=ADC.ATTN_11DB)
        self.adc_cell = ADC(Pin(PIN_ADC_CELL_V), atten=ADC.ATTN_11DB)
        self.adc_cell_ntc = ADC(Pin(PIN_ADC_CELL_NTC), atten=ADC.ATTN_11DB)
        self.adc_amb_ntc = ADC(Pin(PIN_ADC_AMBIENT_NTC), atten=ADC.ATTN_11DB)
        self.stick = Pin(PIN_STICK_DET, Pin.IN)
        self.button = Pin(PIN_BUTTON, Pin.IN, Pin.PULL_UP)
        self.timer = Timer(0)
        self._cb = self.step
        global _fast
        _fast = False  # the module state above starts afresh with each heater
        drawn_ma_steps[0] = 0

        self.state = SLEEP
        self.fault = NONE
        self.end_reason = END_NONE
        self.refused = NONE  # why the last start request was refused
        self.refusals = 0
        self.ready = False
        self._req = _REQ_NONE
        self._t0_us = 0  # session (or cooling) start
        self._en = False  # load switch as commanded
        self._duty = 0
        self._integ_q8 = 0
        self._temp_cc = 0
        self._amb_uv = 0  # the ambient thermistor at the last step
        self._amb_cc = 0  # the air's temperature as the record reads it, every _AMB_EVERY steps
        self._air_off_cc = 0  # ... that is, the thermistor's plus this (a cold start's first reading)
        self._amb_seen_uv = 0  # the thermistor when the air was last read
        self._last_us = 0  # the last step that measured (session time)
        self._sp_cc = 0
        self.demand_mw = 0
        self.power_mw = 0
        self.cell_mv = 0
        self.steps = 0
        # since when the heater is off (boot: unknown before), and whether for _COOL_US yet
        self._off_us = ticks_us()
        self._cooled = False
        self._held_cc = _NOT_HELD  # the reading when the duty fell to its least, while it stays there
        # Last: room in the attribute map (attr_map.py). In the least map that
        # holds the attributes above, the step's ~50 lookups took a fifth of
        # its time (35 in 37 slots); a step adds none (tests/bench/test_attr_map.py).
        make_room(self)

    # --- main-loop side ----------------------------------------------------
    def start(self):
        self._rate(True)

    def _rate(self, fast):
        global _fast
        if fast != _fast:
            _fast = fast
            self.timer.init(mode=Timer.PERIODIC, period=CONTROL_PERIOD_MS if fast else IDLE_PERIOD_MS,
                            callback=self._cb)  # fmt: skip

    def stepping(self):
        """The step runs at CONTROL_PERIOD_MS (else at IDLE_PERIOD_MS)."""
        return _fast

    def restart(self):
        """The control step's timer, started afresh (main loop: it had stopped)."""
        global _fast
        _fast = False
        self._rate(True)

    def idle(self):
        """Asleep with nothing asked: slow the step down (main loop)."""
        if self.state == SLEEP and not self._req:
            self._rate(False)

    def request_start(self):
        self._rate(True)
        self._req = _REQ_START

    def request_stop(self):
        self._req = _REQ_STOP

    def request_clear_fault(self):
        self._req = _REQ_CLEAR

    @property
    def puff_count(self):
        return self.puffs.count

    @property
    def temp_dc(self):
        return self._temp_cc // 10

    @property
    def amb_dc(self):
        """The ambient thermistor at the last step (read now before the
        first), 0.1 C (main loop only)."""
        return dc_from_uv(self._amb_uv or self.adc_amb_ntc.read_uv())

    def cut_for_fault(self, fault):
        """Main-loop entry for faults found outside the control step."""
        self._trip(fault, 0)

    def cut_for_reset(self):
        self.timer.deinit()
        self._cut()

    def set_calibration(self, cal):
        """A new calibration record; the console allows it only while idle."""
        self.cal = cal
        self.safety = HeaterSafety(cal)
        self.cal_check = CalCheck()  # nothing measured of this record yet

    # --- the control step (timer callback) -----------------------------------
    @micropython.native
    def step(self, _timer):
        now_us = ticks_us()
        self.steps += 1
        vh_uv = self.adc_vh.read_uv()
        ih_uv = self.adc_ih.read_uv()
        cell_uv = self.adc_cell.read_uv()
        cell_ntc_uv = self.adc_cell_ntc.read_uv()
        amb_ntc_uv = self.adc_amb_ntc.read_uv()
        stick = self.stick.value()
        # the unit's ADC calibration (adccal.py): at rest a sense reads the floor, not 0
        v_100uv = fix(vh_uv) * HEATER_V_DIV // 100
        v_mv = v_100uv // 10
        i_ma = sense(ih_uv) // UV_PER_MA
        cell_mv = fix(cell_uv) * CELL_V_DIV // 1000
        self.cell_mv = cell_mv
        self._amb_uv = amb_ntc_uv
        d = self._duty
        if d:  # the last period's mean heater current, for the fuel gauge: <= 6200 * 65535
            drawn_ma_steps[0] += i_ma * d >> 16

        sampled = self._duty > 0  # the sample-and-hold saw an on-phase last period
        if not self._cooled and not self._en and ticks_diff(now_us, self._off_us) >= _COOL_US:
            self._cooled = True  # latched: the us ticks wrap after 9 minutes
        if self._req:
            self._serve_request(now_us, stick, cell_mv, cell_ntc_uv, amb_ntc_uv)
        state = self.state
        if state == PREHEAT or state == HEATING or state == END_WARNING:
            fault = self.safety.check_heating(
                sampled, v_mv, i_ma, cell_mv, vh_uv, ih_uv, cell_ntc_uv, amb_ntc_uv, stick
            )
            t_ms = ticks_diff(now_us, self._t0_us) // 1000
            if fault:
                self._trip(fault, v_mv)
            elif t_ms >= SESSION_MS:  # whatever the measurement says
                self._end(END_TIME, now_us)
            elif state == PREHEAT and t_ms >= self.profile.preheat_ms + _PREHEAT_GRACE_MS:
                self._trip(PREHEAT_TIMEOUT, self._temp_cc // 100)
            else:
                self._control(now_us, t_ms, sampled, v_100uv, i_ma)
        elif state == COOLING and ticks_diff(now_us, self._t0_us) >= COOLING_MS * 1000:
            self.state = SLEEP

        flags = FLAG_HEATER_EN if self._en else 0
        if self.puffs.active:
            flags |= FLAG_PUFF
        if stick:
            flags |= FLAG_STICK
        if self.ready:
            flags |= FLAG_READY
        if not _fast:
            flags |= FLAG_IDLE_RATE
        duty = self._duty
        self.tele.record(
            now_us, self.state, flags, self.puffs.count, self.fault, self.end_reason,
            self._sp_cc // 10, self._temp_cc // 10, duty, self.power_mw, cell_mv,
            i_ma if duty else 0, v_mv if duty else 0,
        )  # fmt: skip

    @micropython.native
    def _control(self, now_us, t_ms, sampled, v_100uv, i_ma):
        if not sampled or i_ma < _I_VALID_MA:
            # first step of a session: nothing measured yet, just feed the sample-and-hold
            self._apply(_DUTY_MIN)
            return
        cal = self.cal
        raw = temp_cc(v_100uv, i_ma, cal.r0_10u, cal.r0tcr_uohm_k)
        if not self._measure(now_us, raw):
            return
        t = self._temp_cc
        sp = self.profile.setpoint_cc(t_ms)
        self._sp_cc = sp

        # PI with feed-forward. err <= 4e4 cC; every term below stays under 2e6.
        err = sp - t
        integ = self._integ_q8
        demand = (sp // 100 - _T_REF_C) * _FF_MW_PER_K + err * _KP_MW_PER_CC + (integ >> 8)
        self.demand_mw = demand
        # full-on heater power in mW: v <= 62000, i <= 6200 -> product <= 3.9e8
        p_full = v_100uv * i_ma // 10000
        p_cap = _P_MAX_MW if p_full > _P_MAX_MW else p_full
        if demand > p_cap:
            power = p_cap
            if err < 0:  # anti-windup: integrate only towards leaving saturation
                integ += err * _KI_Q8
        elif demand < 0:
            power = 0
            if err > 0:
                integ += err * _KI_Q8
        else:
            power = demand
            integ += err * _KI_Q8
        if integ < 0:
            integ = 0
        elif integ > _P_MAX_MW << 8:
            integ = _P_MAX_MW << 8
        self._integ_q8 = integ
        # feed-forward on the cell: duty = demand / full-on power; power << 16 <= 6.6e8
        duty = (power << 16) // p_full if p_full > 0 else _DUTY_MAX
        if duty > _DUTY_MAX:
            duty = _DUTY_MAX
        if duty > _DUTY_MIN:
            self._held_cc = _NOT_HELD
        else:  # the least duty: from here the blade cannot warm (_measure: GATE_STUCK if it does)
            duty = _DUTY_MIN
            if self._held_cc == _NOT_HELD:
                self._held_cc = raw
        self.power_mw = duty * p_full >> 16
        self._duty = duty
        self.pwm.duty_u16(duty)
        self._session(now_us, t_ms, err, sp)

    @micropython.native
    def _measure(self, now_us, raw):
        """The blade's temperature from a raw reading (0.01 C): checked and
        corrected (cal_check.py), filtered, into self._temp_cc; the puff
        detector fed. False if a check tripped, or the session's first
        reading holds the least duty one more period."""
        cc = self.cal_check
        p_prev = self.power_mw  # delivered over the period that ended now
        dt_us = ticks_diff(now_us, self._last_us)
        self._last_us = now_us
        phase = cc.phase
        if phase == FIRST:  # the session's first measurement
            amb_uv = self._amb_uv
            self._amb_seen_uv = amb_uv
            amb = dc_from_uv(amb_uv) * 10
            r = cc.first(raw, amb, not self.cal.stored)
            if r == CALIBRATION:
                self._trip(CALIBRATION, raw // 100)
                return False
            if r:  # a warm blade it cannot read: wait until it has cooled
                self._cut()
                self.state = SLEEP
                self.refused = BLADE_WARM
                self.refusals += 1
                return False
            self.safety.derate(cc.slope_pm)
            t = cc.correct(raw)
            if cc.phase == RISE:  # a cold blade: the air as this record reads it
                self._air_off_cc = t - amb
            self._amb_cc = amb + self._air_off_cc
            self._temp_cc = t
            self._held_cc = raw
            return False  # held at _DUTY_MIN one more period
        held = self._held_cc
        if held != _NOT_HELD and raw - held > _HELD_RISE_CC:
            self._trip(GATE_STUCK, raw // 100)
            return False
        if dt_us > 50000:
            dt_us = 50000
        if phase == RISE:
            r = cc.rise(raw, p_prev, dt_us)
            if r == 1:
                self._trip(CALIBRATION, raw // 100)
                return False
            if r == 2:
                self.safety.derate(cc.slope_pm)
        amb_uv = self._amb_uv
        d = amb_uv - self._amb_seen_uv
        if d > _AMB_MOVE_UV or d < -_AMB_MOVE_UV:  # the air changed: read it again (a table walk)
            self._amb_seen_uv = amb_uv
            amb = dc_from_uv(amb_uv) * 10 + self._air_off_cc
            was = self._temp_cc - self._amb_cc  # the rise above the air, before and now
            now = self._temp_cc - amb
            self._amb_cc = amb
            if was >= _PUFF_RISE_CC and now >= _PUFF_RISE_CC:  # <= 3.5e4 each
                self.puffs.rescale(was * 1000 // now)
        s = cc.slope_pm
        if s != SLOPE_ONE:
            raw = cc.correct(raw)
        prev = self._temp_cc
        t = (prev + raw) >> 1  # light filter against ADC noise
        self._temp_cc = t
        k = cc.k_uj_per_cc
        rise = (t - self._amb_cc) * k // BLADE_HEAT_UJ_PER_CC  # true 0.01 K above the air: <= 1.5e7
        if rise >= _PUFF_RISE_CC:
            self.puffs.feed(p_prev, dt_us, t, rise, k)
        return True

    def _session(self, now_us, t_ms, err, sp):
        """Ready, the end warning and the puff limit (puffs count from the
        start of heating, preheat included)."""
        pd = self.puffs  # few locals: bytecode keeps its frame on the stack (objfun.c)
        if self.state == PREHEAT:
            band = self.profile.band_cc(sp)
            if t_ms >= self.profile.preheat_ms and -band <= err <= band:
                self.state = HEATING
                self.ready = True
        elif self.state == HEATING and (
            t_ms >= SESSION_MS - WARN_BEFORE_END_MS or pd.count >= SESSION_PUFFS - WARN_PUFFS_LEFT
        ):
            self.state = END_WARNING
        if pd.count >= SESSION_PUFFS and not pd.active:
            self._end(END_PUFFS, now_us)

    def _serve_request(self, now_us, stick, cell_mv, cell_ntc_uv, amb_ntc_uv):
        req = self._req
        self._req = _REQ_NONE
        state = self.state
        if req == _REQ_START and (state == SLEEP or state == COOLING):
            refusal = 0 if stick else STICK_MISSING
            if not refusal:
                refusal = self.safety.start_refusal(cell_mv, cell_ntc_uv, amb_ntc_uv)
            self.refused = refusal
            if refusal:
                self.refusals += 1
            else:
                self._begin(now_us)
        elif req == _REQ_STOP and (state == PREHEAT or state == HEATING or state == END_WARNING):
            self._end(END_USER, now_us)
        elif req == _REQ_CLEAR and state == FAULT:
            self.fault = NONE
            self.state = SLEEP

    def _begin(self, now_us):
        self.profile.rewind()
        self.safety.reset()
        self.cal_check.begin(self._cooled)
        self.puffs.reset()
        self._integ_q8 = 0
        self._temp_cc = 0
        self._t0_us = now_us
        self._last_us = now_us
        self.fault = NONE
        self.end_reason = END_NONE
        self.ready = False
        self._en = True
        self.en.value(1)
        self.state = PREHEAT
        self._apply(_DUTY_MIN)

    def _end(self, reason, now_us):
        self._cut()
        self.end_reason = reason
        self.ready = False
        self._t0_us = now_us
        self.state = COOLING

    def _trip(self, fault, detail):
        self._cut()
        self.fault = fault
        self.end_reason = END_FAULT
        self.ready = False
        self.state = FAULT
        self.fault_log.record(fault, ticks_ms(), detail)

    def _apply(self, duty):
        self._duty = duty
        self.pwm.duty_u16(duty)

    def _cut(self):
        """Heater off through both paths."""
        self.pwm.duty_u16(0)
        self.en.value(0)
        self._en = False
        self._duty = 0
        self.power_mw = 0
        self.demand_mw = 0
        self._temp_cc = 0  # unknown with no current flowing
        self._sp_cc = 0
        self._off_us = ticks_us()
        self._cooled = False

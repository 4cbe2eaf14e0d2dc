"""CC/CV charging of one cell through a current-programmed stage.

Every tick the loop gets the cell's voltage, current and temperature and
returns the stage's current set-point:

- precharge at I_pre while a deeply discharged cell is below 3.0 V;
- CC at I_cc, less in the cool window; CV at the target voltage: the
  set-point moves by half the current that would bring the voltage onto the
  target through the cell's resistance, so it never overshoots;
- termination in CV once the (filtered) current stays below I_term; a
  recharge when the cell falls 100 mV under the target;
- JEITA-style temperature windows (docs/reference.md#cells-and-charging):
  none below 0 C, 20 % of the current from 0 to 10 C, full from 10 to 45 C,
  4.0 V from 45 to 60 C, none above 60 C; 2 K of hysteresis at every edge;
- safety: a cell above 4.25 V, or a charge running longer than
  its timeout, latches FAULT until the source or the cell goes away. The
  timeout counts full-current-equivalent time, so a charge slowed by the
  cool window or a weak source is not cut short; an absolute limit stays.
"""

from faults import CHARGE_OVERVOLT, CHARGE_TIMEOUT
from gauge import r_mohm_at
from micropython import const

OFF = const(0)  # disabled, no source or no cell
PRE = const(1)
CC = const(2)
CV = const(3)
DONE = const(4)
WAIT = const(5)  # temperature outside the windows
FAULT = const(6)
NAMES = ("off", "pre", "cc", "cv", "done", "wait", "fault")

V_FULL_MV = const(4200)
V_WARM_MV = const(4000)
_V_PRE_MV = const(3000)
_V_OVER_MV = const(50)  # above the target: over-voltage
_V_RECHARGE_MV = const(100)
_HYST_DC = const(20)
_TERM_MS = const(5000)  # below I_term this long to terminate
_V_FINE_MV = const(8)


def zone(temp_dc):
    """0 cold (none), 1 cool (20 %), 2 normal, 3 warm (4.0 V), 4 hot (none)."""
    if temp_dc < 0:
        return 0
    if temp_dc < 100:
        return 1
    if temp_dc < 450:
        return 2
    if temp_dc <= 600:
        return 3
    return 4


class ChargeLoop:
    def __init__(self, i_cc_ma, i_term_ma, r20_mohm, timeout_ms, pre_timeout_ms):
        self.i_cc_ma = i_cc_ma
        self.i_term_ma = i_term_ma
        self.r20_mohm = r20_mohm
        self.timeout_ms = timeout_ms  # at full current
        self.pre_timeout_ms = pre_timeout_ms
        self.state = OFF
        self.zone = 2
        self.iset_ma = 0
        self.v_target_mv = V_FULL_MV
        self._i_q3 = 0  # measured current, filtered (x8)
        self._v_q2 = 0  # measured voltage, filtered (x4): the ADC reads whole mV (docs/esp32.md)
        self._low_ms = 0
        self._eq_ms = 0  # full-current-equivalent charge time
        self._wall_ms = 0
        self._over = 0
        self.fault = 0  # why FAULT latched (faults.py)

    def charging(self):
        return PRE <= self.state <= CV

    def step(self, enable, v_mv, i_ma, temp_dc, dt_ms):
        """One tick; returns the stage's set-point in mA."""
        if not enable:
            self.state = OFF
            self.iset_ma = 0
            return 0
        st = self.state
        if st == FAULT:
            self.iset_ma = 0
            return 0
        # temperature window: a stricter one at once, a milder one only 2 K past its edge
        z = zone(temp_dc)
        cur = self.zone
        if z != cur:
            if (z - 2) * (z - 2) < (cur - 2) * (cur - 2):
                z = zone(temp_dc - _HYST_DC if z > cur else temp_dc + _HYST_DC)
                if (z - 2) * (z - 2) >= (cur - 2) * (cur - 2):
                    z = cur
            self.zone = z
        self.v_target_mv = V_WARM_MV if z == 3 else V_FULL_MV
        i_lim = self.i_cc_ma // 5 if z == 1 else self.i_cc_ma
        if v_mv > V_FULL_MV + _V_OVER_MV:
            self._over += 1
            if self._over >= 2:
                return self._fault(CHARGE_OVERVOLT)
        else:
            self._over = 0
        if st == OFF or (st == DONE and v_mv < self.v_target_mv - _V_RECHARGE_MV):
            st = CC  # a new charge
            self.iset_ma = 0
            self._eq_ms = self._wall_ms = self._low_ms = 0
            self._i_q3 = i_lim << 3
            self._v_q2 = v_mv << 2
        if z == 0 or z == 4:
            self.state = WAIT
            self.iset_ma = 0
            return 0
        if st == DONE:
            self.state = DONE
            return 0
        self._wall_ms += dt_ms
        self._eq_ms += dt_ms * (i_ma if 0 < i_ma < self.i_cc_ma else self.i_cc_ma if i_ma > 0 else 0) // self.i_cc_ma
        if self._eq_ms > self.timeout_ms or self._wall_ms > 3 * self.timeout_ms:
            return self._fault(CHARGE_TIMEOUT)
        if v_mv < _V_PRE_MV:
            if self._wall_ms > self.pre_timeout_ms:
                return self._fault(CHARGE_TIMEOUT)
            self.state = PRE
            self.iset_ma = i_lim // 10
            return self.iset_ma
        # CC/CV
        r = r_mohm_at(self.r20_mohm, temp_dc)
        # near the target the set-point follows the filtered voltage: the ESP32
        # reads whole mV, and steps of 2 mV at the cell would keep it dithering
        self._v_q2 += v_mv - (self._v_q2 >> 2)
        err = self.v_target_mv - v_mv
        if -_V_FINE_MV < err < _V_FINE_MV and self._v_q2 > v_mv << 2:  # (never the lower: no overshoot)
            iset = self.iset_ma + ((self.v_target_mv << 2) - self._v_q2) * 125 // r
        else:
            iset = self.iset_ma + err * 500 // r
        if iset < 0:
            iset = 0
        elif iset >= i_lim:
            iset = i_lim
        self.iset_ma = iset
        self.state = CV if st == CV or iset < i_lim else CC  # once voltage-limited, CV to the end
        self._i_q3 += i_ma - (self._i_q3 >> 3)
        if self.state == CV and self._i_q3 >> 3 < self.i_term_ma:
            self._low_ms += dt_ms
            if self._low_ms >= _TERM_MS:
                self.state = DONE
                self.iset_ma = 0
                return 0
        else:
            self._low_ms = 0
        return iset

    def _fault(self, code):
        self.state = FAULT
        self.fault = code
        self.iset_ma = 0
        return 0

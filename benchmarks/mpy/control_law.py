"""The control law of firmware/heater_ctl.py (HeaterControl._control),
extracted as a function of plain ints so that each MicroPython emitter can
compile it: temperature from the heater's resistance, light filter, PI with
anti-windup, cell-voltage feed-forward to the duty. Profile lookup and session
timing stay out (the set-point comes in).

st: [integ_q8, temp_cc, duty, power_mw, demand_mw], updated in place.
tests/bench/test_step_bench.py checks it against the firmware step for step; the
benchmark compiles this file as bytecode and, with a decorator added, native.
"""

from micropython import const

_CAL_T0_C = const(20)
_KP_MW_PER_CC = const(4)
_KI_Q8 = const(7)
_FF_MW_PER_K = const(8)
_T_REF_C = const(20)
_P_MAX_MW = const(10000)
_DUTY_MAX = const(65535)
_DUTY_MIN = const(1024)


def control(st, sp, v_100uv, i_ma, r0_10u, r0tcr):
    r = v_100uv * 10000 // i_ma
    if r > 3 * r0_10u:
        r = 3 * r0_10u
    t = _CAL_T0_C * 100 + (r - r0_10u) * 1000 // r0tcr
    if st[1]:
        t = (st[1] + t) >> 1
    st[1] = t
    err = sp - t
    integ = st[0]
    demand = (sp // 100 - _T_REF_C) * _FF_MW_PER_K + err * _KP_MW_PER_CC + (integ >> 8)
    st[4] = demand
    p_full = v_100uv * i_ma // 10000
    p_cap = _P_MAX_MW if p_full > _P_MAX_MW else p_full
    if demand > p_cap:
        power = p_cap
        if err < 0:
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
    st[0] = integ
    duty = (power << 16) // p_full if p_full > 0 else _DUTY_MAX
    if duty > _DUTY_MAX:
        duty = _DUTY_MAX
    elif duty < _DUTY_MIN:
        duty = _DUTY_MIN
    st[3] = duty * p_full >> 16
    st[2] = duty

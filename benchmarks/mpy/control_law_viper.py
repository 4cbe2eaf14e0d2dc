"""control_law.control for the viper emitter: the same arithmetic on machine
words, the state in an array('i') read through a ptr32. Viper's `//` floors
and its `>>` is arithmetic, as in Python; a ptr32 reads unsigned, so the one
state value that can be negative (the temperature below 0 C) is sign-extended.
tests/bench/test_step_bench.py checks it against the firmware step for step.
"""

import micropython
from micropython import const

_CAL_T0_C = const(20)
_KP_MW_PER_CC = const(4)
_KI_Q8 = const(7)
_FF_MW_PER_K = const(8)
_T_REF_C = const(20)
_P_MAX_MW = const(10000)
_DUTY_MAX = const(65535)
_DUTY_MIN = const(1024)


@micropython.viper
def control(st_obj, sp: int, v_100uv: int, i_ma: int, r0_10u: int, r0tcr: int):
    st = ptr32(st_obj)
    r = v_100uv * 10000 // i_ma
    if r > 3 * r0_10u:
        r = 3 * r0_10u
    t = _CAL_T0_C * 100 + (r - r0_10u) * 1000 // r0tcr
    sign = 0x20000000
    sign = sign << 2  # bit 31, built at run time: a literal this big would be an object
    prev = (st[1] ^ sign) - sign
    if prev:
        t = (prev + t) >> 1
    st[1] = t
    err = sp - t
    integ = st[0]
    demand = (sp // 100 - _T_REF_C) * _FF_MW_PER_K + err * _KP_MW_PER_CC + (integ >> 8)
    st[4] = demand
    p_full = v_100uv * i_ma // 10000
    p_cap = _P_MAX_MW if p_full > _P_MAX_MW else p_full
    power = 0
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
    elif integ > (_P_MAX_MW << 8):
        integ = _P_MAX_MW << 8
    st[0] = integ
    duty = _DUTY_MAX
    if p_full > 0:
        duty = (power << 16) // p_full
    if duty > _DUTY_MAX:
        duty = _DUTY_MAX
    elif duty < _DUTY_MIN:
        duty = _DUTY_MIN
    st[3] = (duty * p_full) >> 16
    st[2] = duty

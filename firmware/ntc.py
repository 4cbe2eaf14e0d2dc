"""Board thermistors: ADC microvolts <-> degrees C.

The B-equation needs exp/log, so a table is built once at import and the
conversions are integer interpolation afterwards.
"""

import math

import board
from micropython import const

_T_MIN_C = const(-40)
_T_STEP_C = const(5)
_N = const(33)  # -40 .. +120 C


def uv_at_c(temp_c):
    """Divider output (uV) of an NTC at temp_c. Float maths: call at init only."""
    t_k = temp_c + 273.15
    r = board.NTC_R25_OHM * math.exp(board.NTC_B_K * (1.0 / t_k - 1.0 / 298.15))
    return int(board.NTC_SUPPLY_UV * r / (r + board.NTC_PULLUP_OHM))


# microvolts fall as temperature rises
_UV = [uv_at_c(_T_MIN_C + i * _T_STEP_C) for i in range(_N)]


def dc_from_uv(uv):
    """Temperature in 0.1 C for a divider reading; clamps outside the table."""
    if uv >= _UV[0]:
        return _T_MIN_C * 10
    for i in range(1, _N):
        hi = _UV[i]
        if uv >= hi:
            lo = _UV[i - 1]
            # lo > uv >= hi; fraction of the 5 K step, in 0.1 C
            return (_T_MIN_C + (i - 1) * _T_STEP_C) * 10 + (lo - uv) * _T_STEP_C * 10 // (lo - hi)
    return (_T_MIN_C + (_N - 1) * _T_STEP_C) * 10

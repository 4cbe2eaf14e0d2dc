"""Fuel gauge of one cell: coulomb counting, corrected by the open-circuit
voltage once the cell has rested, aware of temperature.

- Counting: the caller feeds the measured current (+ charging) and the time
  since its last call; charge is kept in uAh with the sub-uAh remainder, so
  nothing drifts by rounding.
- Rest: below a small current for long enough (longer in the cold, where
  the cell's polarisation relaxes more slowly), the terminal voltage is the
  OCV, and the OCV table (valid 0-50 C) gives the SoC: the count is reset
  to it. A correction happens once per rest.
- Capacity: between two anchors (an OCV correction, or the end of a charge)
  far enough apart in SoC, the charge counted over the SoC difference
  measures the capacity; an aged cell is learnt that way.
- Full: a charge that terminates in CV leaves the cell at the OCV of the
  target voltage less the termination current's drop.

All integers, units in the names: mV, mA, mOhm, uAh, 0.01 % (cpct).
"""

from micropython import const

# P: generic LiCoO2 OCV at 20 C, SoC 0..100 % in 10 % steps (docs/reference.md#cells-and-charging)
OCV_MV = (3000, 3690, 3730, 3770, 3800, 3840, 3870, 3950, 4020, 4110, 4200)
# cell resistance against temperature, % of its 20 C value, -20..60 C in 10 K steps (datasheet class)
_R_PCT = (470, 290, 190, 135, 100, 78, 63, 52, 45)

_OCV_MIN_DC = const(0)  # the OCV table holds from 0 C ...
_OCV_MAX_DC = const(500)  # ... to 50 C
_COLD_DC = const(100)  # below 10 C the rest takes twice as long
_LEARN_CPCT = const(2000)  # capacity is learnt over at least 20 % of SoC


def soc_from_ocv(mv):
    """SoC in 0.01 % at an open-circuit voltage."""
    if mv <= OCV_MV[0]:
        return 0
    for i in range(1, 11):
        hi = OCV_MV[i]
        if mv < hi:
            lo = OCV_MV[i - 1]
            return (i - 1) * 1000 + (mv - lo) * 1000 // (hi - lo)
    return 10000


def r_mohm_at(r20_mohm, temp_dc):
    """Cell resistance at temp_dc (0.1 C) from its 20 C value."""
    x = temp_dc + 200  # from -20 C, in 0.1 K
    if x <= 0:
        return r20_mohm * _R_PCT[0] // 100
    i = x // 100
    if i >= 8:
        return r20_mohm * _R_PCT[8] // 100
    pct = _R_PCT[i] + (_R_PCT[i + 1] - _R_PCT[i]) * (x - i * 100) // 100
    return r20_mohm * pct // 100


class Gauge:
    def __init__(self, cap_mah, r20_mohm, rest_ms):
        self.nom_mah = cap_mah
        self.cap_mah = cap_mah  # learnt
        self.r20_mohm = r20_mohm
        self.q_uah = 0
        self._rem = 0  # mA ms not yet a whole uAh
        self._rest_need_ms = rest_ms
        self.rest_ms = 0
        self._ocv_done = False
        self.v_q4 = 0  # terminal voltage, filtered (mV x 16)
        self._anchor = -1  # SoC of the last anchor (cpct); -1: none
        self._since_uah = 0  # charge counted since it

    def start(self, mv):
        """At boot, the cell at rest: SoC from its voltage."""
        self.v_q4 = mv << 4
        self._set_soc(soc_from_ocv(mv))
        self._anchor = -1

    def soc(self):
        """State of charge in 0.01 %."""
        s = self.q_uah // (self.cap_mah // 10 if self.cap_mah >= 10 else 1)
        return 0 if s < 0 else 10000 if s > 10000 else s

    def _set_soc(self, cpct):
        self.q_uah = self.cap_mah * cpct // 10
        self._rem = 0

    def count(self, mams, dt_ms, mv, temp_dc):
        """One measurement: charge in (mA ms, + charging) over the last dt_ms,
        terminal voltage and cell temperature now."""
        x = self._rem + mams
        d = x // 3600  # uAh (floor, also for negative x)
        self._rem = x - d * 3600
        self.q_uah += d
        self._since_uah += d
        cap_uah = self.cap_mah * 1000
        if self.q_uah > cap_uah:
            self.q_uah = cap_uah
        elif self.q_uah < 0:
            self.q_uah = 0
        self.v_q4 += mv - (self.v_q4 >> 4)
        rest = (self.nom_mah // 100 + 1) * dt_ms  # below C/100
        if -rest <= mams <= rest:
            self.rest_ms += dt_ms
        else:
            self.rest_ms = 0
            self._ocv_done = False
            self.v_q4 = mv << 4
            return
        need = self._rest_need_ms * (2 if temp_dc < _COLD_DC else 1)
        if self._ocv_done or self.rest_ms < need or not _OCV_MIN_DC <= temp_dc <= _OCV_MAX_DC:
            return
        self._ocv_done = True
        self._anchor_at(soc_from_ocv(self.v_q4 >> 4), False)

    def full(self, target_mv, term_ma, temp_dc):
        """A charge terminated in CV at target_mv with term_ma flowing."""
        self._anchor_at(soc_from_ocv(target_mv - term_ma * r_mohm_at(self.r20_mohm, temp_dc) // 1000), True)

    def _anchor_at(self, cpct, full):
        """The SoC is known: set the count to it, and learn the capacity from
        the charge counted since the last anchor far enough away."""
        a = self._anchor
        dsoc = cpct - a
        if a >= 0 and (dsoc <= -_LEARN_CPCT or dsoc >= _LEARN_CPCT):
            cap = self._since_uah * 10 // dsoc  # mAh
            nom = self.nom_mah
            if nom // 2 <= cap <= nom + nom // 10:
                self.cap_mah = (self.cap_mah + cap) // 2
            a = -1
        if a < 0 or full:
            self._anchor = cpct
            self._since_uah = 0
        self._set_soc(cpct)

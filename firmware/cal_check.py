"""Plausibility of the calibration record, from physics the record does not
enter into (docs/safety.md):

- Cold blade: a session's first measurement may not read the blade clearly
  colder than the air (the ambient thermistor). A record that overstates the
  track's cold resistance R0 reads every temperature low by a fixed offset
  -- and a blade heated to a set-point would run hotter than it reads.
- Heat capacity: from a cold start the first 25 K of the blade's
  rise takes a known energy -- the blade's heat capacity, which no record
  describes. The energy the heater delivered (its volts times amps times duty,
  not the record) per measured kelvin gives the ratio s of the record's
  dR/dT to the heater's own. A record whose dR/dT is too large (another
  heater's, say) reads the rise too small: s > 1, and the blade would run
  hotter than it reads by that factor. From then on the temperature is
  read s' times higher (s less the check's tolerance, never below 1): the
  blade runs at or below its set-point whatever the record says. A gross
  mismatch trips CALIBRATION.

A blade that reads more than 15 K above the air is either warm (heated
within the last two minutes) or read hot by a record whose R0 is too small;
the reading alone cannot tell. The heater's off-time can (heater_ctl.py):
- off two minutes or more, the blade is at the air, whatever it reads: the
  excess is the record's offset, and the start is checked as a cold one;
- warm, it keeps the slope this boot measured: its losses would swamp the
  energy of a check;
- warm with nothing measured this boot (a restart after a power cut, or a
  first session on a record that reads hot), the session is refused
  (BLADE_WARM) until the blade has had its two minutes. Guessing would
  misread the blade's rise above the air by up to 3x either way, and with
  it every puff.

Everything runs in the control step: small ints, nothing allocated. Only
correct() runs at every step (native code); the rest a few times a session.
"""

from board import BLADE_HEAT_UJ_PER_CC, CAL_T0_C
from faults import BLADE_WARM, CALIBRATION
from micropython import const

_COLD_MARGIN_CC = const(600)  # the blade reads at most 6 K colder than the air
_WARM_CC = const(1500)  # more than 15 K above the air: a warm blade, unless the heater was off long enough
_CHECK_CC = const(2500)  # the rise the energy is measured over: 25 K
# energy per measured 0.01 K over that rise, of a record that describes its
# heater: the blade's heat capacity. At the preheat's 10 W cap the rise takes
# ~50 ms, with next to no losses (measured across the unit spec and ambient
# 0-50 C: 197-203 uJ/cC; 210, as this was, let a record 25 % off pass)
_K_UJ_PER_CC = const(200)
_TOL_PM = const(20)  # that spread, per mille: s' = s less this
_TRIP_PM = const(1200)  # a record 20 % off in dR/dT: another heater's
SLOPE_ONE = const(1000)
_E_TRIP_UJ = const(600000)  # _TRIP_PM x _K_UJ_PER_CC x _CHECK_CC / 1000

IDLE = const(0)
FIRST = const(1)  # a session's first reading comes next
RISE = const(2)  # a cold start's rise is being measured


class CalCheck:
    def __init__(self):
        self.slope_pm = SLOPE_ONE  # the reading's correction, per mille: 1000 none
        self.measured_pm = 0  # s of the last check this boot (0: none yet)
        # the blade's heat capacity per 0.01 K of the corrected reading (puff_detect.py's loss)
        self.k_uj_per_cc = BLADE_HEAT_UJ_PER_CC
        self.phase = IDLE
        self._t1_cc = 0
        self._e_uj = 0
        self._fail_safe = False
        self._cooled = False

    def begin(self, cooled):
        """A session starts: its first measurement comes next. cooled: the
        heater has been off long enough for the blade to be at the air."""
        self.phase = FIRST
        self._cooled = cooled

    def first(self, temp_cc, amb_cc, fail_safe_record):
        """A session's first reading (0.01 C, uncorrected) and the air's:
        0, CALIBRATION (the blade reads colder than the air) or BLADE_WARM
        (a warm blade and no slope to read it by: refused). With the
        fail-safe record (calib.py) the blade reads hot on every unit in
        spec: neither check applies, the rise is measured for the heat
        capacity alone."""
        self._fail_safe = fail_safe_record
        self.phase = IDLE
        if fail_safe_record:
            self.slope_pm = SLOPE_ONE
        elif temp_cc < amb_cc - _COLD_MARGIN_CC:
            return CALIBRATION
        elif temp_cc > amb_cc + _WARM_CC and not self._cooled:
            return 0 if self.measured_pm else BLADE_WARM
        self.phase = RISE
        self._t1_cc = temp_cc
        self._e_uj = 0
        return 0

    def rise(self, temp_cc, p_mw, dt_us):
        """One period of a cold start's rise: temp_cc uncorrected, p_mw the
        power delivered over the period that ended. Returns 1 once the
        record is found grossly wrong, 2 once the slope is set, else 0."""
        if self.phase != RISE:
            return 0
        e = self._e_uj + p_mw * dt_us // 1000  # <= 20000 mW x 50 ms per period
        self._e_uj = e
        d = temp_cc - self._t1_cc
        if d < _CHECK_CC:
            if e > _E_TRIP_UJ:  # s > _TRIP_PM already: the rise too small for the energy
                self.phase = IDLE
                return 1
            return 0
        self.phase = IDLE
        s = (e >> 4) * 1000 // (d * _K_UJ_PER_CC >> 4)  # e <= 6.3e5 uJ and one period's: <= 1.7e6
        self.measured_pm = s
        if s > _TRIP_PM and not self._fail_safe:
            return 1
        if not self._fail_safe:
            c = s * (1000 - _TOL_PM) // 1000
            self.slope_pm = c if c > SLOPE_ONE else SLOPE_ONE
        self.k_uj_per_cc = BLADE_HEAT_UJ_PER_CC * s // self.slope_pm
        return 2

    def correct(self, temp_cc):
        """A reading (0.01 C) read with the slope: t0 + (t - t0) x s'."""
        s = self.slope_pm
        if s == SLOPE_ONE:
            return temp_cc
        return CAL_T0_C * 100 + (temp_cc - CAL_T0_C * 100) * s // 1000


"""Heating profiles: set-point tables over session time.

A profile is a list of (time_s, setpoint_c) points. The set-point is linear
between consecutive points and held after the last one: two points make a
ramp, equal set-points a plateau. The first segment is the preheat; the
device signals "ready" once PREHEAT_S has passed and the blade is in band.
"""

from micropython import const

MAX_SETPOINT_C = const(330)  # profiles stay 20 K below the 350 C cap: headroom for overshoot
_MAX_RAMP_S = const(10)  # keeps interpolation products inside 30-bit small ints

# name: (preheat_s, band_pct, points)
PROFILES = {
    # preheat hot, settle lower, then step up as the plug depletes
    "standard": (
        20,
        2,
        ((0, 320), (20, 320), (24, 300), (150, 300), (154, 310), (270, 310), (274, 320)),
    ),
    # cooler and flatter: milder taste, less energy
    "eco": (
        22,
        2,
        ((0, 300), (22, 300), (26, 285), (180, 285), (184, 295)),
    ),
    # hotter throughout
    "intense": (
        18,
        2,
        ((0, 325), (18, 325), (22, 315), (140, 315), (144, 325), (250, 325), (254, 330)),
    ),
}

DEFAULT = "standard"


def names():
    return sorted(PROFILES)


def check(name):
    """Raise ValueError if the named profile breaks a rule the controller relies on."""
    if name not in PROFILES:
        raise ValueError("unknown profile: " + name)
    preheat_s, band_pct, pts = PROFILES[name]
    if not pts or pts[0][0] != 0:
        raise ValueError(name + ": must start at t=0")
    if not 0 < band_pct <= 10 or preheat_s <= 0:
        raise ValueError(name + ": bad preheat or band")
    for i in range(len(pts)):
        t, sp = pts[i]
        if not 0 < sp <= MAX_SETPOINT_C:
            raise ValueError(name + ": set-point out of range")
        if i:
            t0, sp0 = pts[i - 1]
            if t < t0:
                raise ValueError(name + ": times must not decrease")
            if sp != sp0 and t - t0 > _MAX_RAMP_S:
                raise ValueError(name + ": ramp longer than 10 s")


class Profile:
    """A profile compiled for the control loop: lookup allocates nothing and
    is O(1) for a time that only moves forward."""

    def __init__(self, name):
        check(name)
        preheat_s, band_pct, pts = PROFILES[name]
        self.name = name
        self.preheat_ms = preheat_s * 1000
        self.band_pct = band_pct
        n = len(pts)
        self._t_ms = [p[0] * 1000 for p in pts]
        self._sp_cc = [p[1] * 100 for p in pts]
        self._n = n
        self._i = 0
        self.first_cc = self._sp_cc[0]

    def rewind(self):
        self._i = 0

    def setpoint_cc(self, t_ms):
        """Set-point in centi-degrees C at session time t_ms."""
        t = self._t_ms
        sp = self._sp_cc
        i = self._i
        if t_ms < t[i]:  # time went backwards: start over
            i = 0
        while i < self._n - 1 and t_ms >= t[i + 1]:
            i += 1
        self._i = i
        if i == self._n - 1:
            return sp[i]
        d = sp[i + 1] - sp[i]
        if d == 0:
            return sp[i]
        # |d| <= 3.3e4 cC and the segment is <= 10 s, so the product stays < 2**30
        return sp[i] + d * (t_ms - t[i]) // (t[i + 1] - t[i])

    def band_cc(self, sp_cc):
        return sp_cc * self.band_pct // 100

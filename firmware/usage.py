"""The user's limits on the holder button, and the usage history they and
the phone app read.

- lock (settings "locked"): the holder button does not start a session;
- daily limit (settings "limit", 0 none): sessions started in the rolling
  24 h; at the limit the holder button does not start one;
- data sharing (settings "sharing"): with it off no usage history is kept
  (the start times a daily limit needs excepted, never reported).

The history is the start (seconds of uptime) and the puffs of the last _N
sessions, kept on flash (store record "usage") as far as the settings allow
-- with sharing off only the start times a daily limit needs, without one
nothing -- after every session's end, when the settings change, and hourly
while it holds sessions, so that a reboot keeps it; never during a session
(tick() saves, the main loop's, once the heater is off). A session a reset
cuts short is not kept, as the lifetime counters do not keep it. The kit has
no clock: the uptime carries on from the last save, and the time the kit was
off counts as none (a limit holds the longer). The console's `start` is an
engineering command and bypasses both limits.
"""

import time
from array import array

import store
from micropython import const

_N = const(64)
_DAY_S = const(86400)
_SAVE_S = const(3600)  # the uptime reaches flash at least this often while there is history
FILE = "usage"


class Usage:
    def __init__(self, settings):
        self.settings = settings
        self._t = array("i", [0] * _N)  # session start, seconds of uptime
        self._p = bytearray(_N)  # its puffs
        self._n = 0  # sessions recorded; the ring keeps the last _N
        self._last_ms = time.ticks_ms()
        self.now_s = _DAY_S  # uptime, from a day on: an empty slot reads as older than a day
        self._saved_s = 0
        self._dirty = False  # to flash at the next tick out of a session
        self._busy = False  # a session runs
        self._load()

    def _load(self):
        rec, ok = store.load(FILE, {"t": [], "p": [], "n": 0, "now": 0})
        t, p, n = rec["t"], rec["p"], rec["n"]
        if not ok or len(t) != min(n, _N) or len(p) != len(t) or rec["now"] < _DAY_S:
            return
        for k in range(len(t)):
            self._t[k] = t[k]
            self._p[k] = min(255, max(0, p[k]))
        self._n = n
        self.now_s = self._saved_s = rec["now"]
        self.forget()  # as the settings now allow

    def save(self):
        """The history the settings allow, to flash (the main loop's)."""
        m = min(self._n, _N)
        store.save(FILE, {"t": list(self._t[:m]), "p": list(self._p[:m]), "n": self._n, "now": self.now_s})
        self._saved_s = self.now_s
        self._dirty = False

    def keep(self):
        """The history changed (the settings): to flash at the next tick out of a session."""
        self._dirty = True

    def tick(self, now_ms):
        """The uptime clock (at least every few days: the ticks wrap), and
        what is to go to flash, out of a session."""
        d = time.ticks_diff(now_ms, self._last_ms)
        if d >= 1000:
            self.now_s += d // 1000
            self._last_ms = time.ticks_add(self._last_ms, d // 1000 * 1000)
        if not self._busy and (self._dirty or (self._n and self.now_s - self._saved_s >= _SAVE_S)):
            self.save()

    def refusal(self):
        """Why the holder button may not start a session now ("locked",
        "limit"), or None."""
        s = self.settings
        if s["locked"]:
            return "locked"
        if self.limit_reached():
            return "limit"
        return None

    def limit_reached(self):
        limit = self.settings["limit"]
        return limit > 0 and self.sessions_24h() >= limit

    def sessions_24h(self):
        n = 0
        since = self.now_s - _DAY_S
        for k in range(min(self._n, _N)):
            if self._t[k] > since:
                n += 1
        return n

    def puffs_24h(self):
        p = 0
        since = self.now_s - _DAY_S
        for k in range(min(self._n, _N)):
            if self._t[k] > since:
                p += self._p[k]
        return p

    def _keeping(self):
        s = self.settings
        return s["sharing"] or s["limit"] > 0

    def started(self, now_ms):
        """A session started (in RAM: no flash while the heater runs)."""
        self._busy = True
        if self._keeping():
            d = time.ticks_diff(now_ms, self._last_ms)
            if d >= 1000:
                self.now_s += d // 1000
                self._last_ms = time.ticks_add(self._last_ms, d // 1000 * 1000)
            i = self._n % _N
            self._t[i] = self.now_s
            self._p[i] = 0
            self._n += 1

    def withdrawn(self):
        """The session that started last never ran: refused at its first
        measurement (faults.BLADE_WARM)."""
        self._busy = False
        if self._keeping() and self._n:
            self._n -= 1

    def ended(self, puffs):
        """The session that started last ended with `puffs` (to flash at the next tick)."""
        self._busy = False
        self._dirty = True
        if self._n and self.settings["sharing"]:
            self._p[(self._n - 1) % _N] = min(puffs, 255)

    def forget(self):
        """Sharing off or the limit changed: keep nothing the settings do not
        ask for (in RAM: save() takes it to flash)."""
        s = self.settings
        if not s["sharing"]:
            for k in range(_N):
                self._p[k] = 0
            if not s["limit"]:
                self._n = 0

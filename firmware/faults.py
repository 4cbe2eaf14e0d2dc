"""Fault codes and the fault log: a ring of the most recent faults, in RAM
for the control step and kept on flash by the main loop."""

import store
from micropython import const

NONE = const(0)
OVER_TEMP = const(1)  # blade above the temperature cap
HEATER_OPEN = const(2)  # no current with the gate on: broken track or connection
HEATER_SHORT = const(3)  # resistance below anything a good track can have
ADC_IMPLAUSIBLE = const(4)  # a reading at a rail or inconsistent with the others
CELL_UNDERVOLT = const(5)
CELL_OVERTEMP = const(6)
AMBIENT_COLD = const(7)
AMBIENT_HOT = const(8)
STICK_MISSING = const(9)  # stick removed while heating
SOFTWARE = const(10)  # unexpected exception in the main loop
CONTROL_OVERRUN = const(11)  # control step deadline missed
HOLDER_LOW = const(12)  # not enough charge to finish a session: refused up front
CHARGE_TIMEOUT = const(13)  # a charge ran past its safety timer
CHARGE_OVERVOLT = const(14)  # a cell above its maximum voltage while charging
CALIBRATION = const(15)  # the record does not describe this heater (a plausibility check, cal_check.py)
CALIB_RECORD = const(16)  # no usable calibration record: the fail-safe values are in use (detail: calib.NAMES)
PREHEAT_TIMEOUT = const(17)  # the blade did not reach its band in time
BLADE_WARM = const(18)  # reads warm, nothing to read it by: refused until it has cooled (cal_check.py)
GATE_STUCK = const(19)  # the blade heats with the PWM at its least: a MOSFET shorted on

NAMES = (
    "none",
    "over_temp",
    "heater_open",
    "heater_short",
    "adc_implausible",
    "cell_undervolt",
    "cell_overtemp",
    "ambient_cold",
    "ambient_hot",
    "stick_missing",
    "software",
    "control_overrun",
    "holder_low",
    "charge_timeout",
    "charge_overvolt",
    "calibration",
    "calib_record",
    "preheat_timeout",
    "blade_warm",
    "gate_stuck",
)

_LOG_SIZE = const(16)
FILE = "faults"


class FaultLog:
    """Last faults as (code, ticks_ms, detail) in preallocated arrays."""

    def __init__(self):
        self.codes = bytearray(_LOG_SIZE)
        self.ticks = [0] * _LOG_SIZE
        self.details = [0] * _LOG_SIZE
        self.count = 0  # total recorded since boot; the ring keeps the last _LOG_SIZE

    def record(self, code, ticks_ms, detail):
        i = self.count % _LOG_SIZE
        self.codes[i] = code
        self.ticks[i] = ticks_ms
        self.details[i] = detail
        self.count += 1

    def entries(self):
        """Oldest first, as a list of (code, ticks_ms, detail). Allocates: not for IRQs."""
        n = min(self.count, _LOG_SIZE)
        first = self.count - n
        out = []
        for k in range(first, self.count):
            i = k % _LOG_SIZE
            out.append((self.codes[i], self.ticks[i], self.details[i]))
        return out

    def save(self):
        """Keep the log on flash (main loop only)."""
        store.save(FILE, {"count": self.count, "log": [list(e) for e in self.entries()]})

    def load(self):
        """The log as the last boot left it."""
        rec, _ = store.load(FILE, {"count": 0, "log": []})
        for e in rec["log"]:
            if isinstance(e, list) and len(e) == 3 and 0 < e[0] < len(NAMES):
                self.record(e[0], e[1], e[2])
        if rec["count"] > self.count:
            self.count = rec["count"]

    def clear(self):
        """Empty the log (console `faults clear`); the main loop saves it."""
        self.count = 0

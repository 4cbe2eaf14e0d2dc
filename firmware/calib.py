"""The unit's calibration record: the heater track's cold resistance and
temperature coefficient, measured at end of line and stored on flash.

A record is used only if it is whole and this unit's:

    {"r0_uohm": R0, "tcr_ppm": TCR, "unit": "<machine.unique_id() in hex>",
     "v": 2, "crc": crc32 of "R0,TCR,UNIT,2"}

-- the store's slot CRC guards the bytes on flash; the record's own CRC
guards the values as one (no field silently taken from defaults); the unit
id binds it to this controller; "v" marks the format. Anything else -- no
record, a damaged copy (even with an older one behind it, which may be
stale), an older format, another unit's record, values outside the unit
spec -- and the firmware falls back to the fail-safe end
of the spec (board.CAL_FAILSAFE_*): the smallest R0 and TCR a unit in spec
can have, with which the blade reads hotter than it is (never colder) on
every unit in spec, so it runs cooler, never hotter (docs/safety.md).
"""

from binascii import crc32, hexlify

import board
import store
from micropython import const

FILE = "calib"
VERSION = const(2)

# why a record is not used (Calibration.why); NAMES as the console reports them
OK = const(0)
MISSING = const(1)
DAMAGED = const(2)  # a copy on flash is damaged (or cut short), or the values fail their own CRC
STALE = const(3)  # an older format, not bound to a unit
OTHER_UNIT = const(4)  # another controller's record
OUT_OF_SPEC = const(5)
NAMES = ("ok", "missing", "damaged", "stale", "other_unit", "out_of_spec")

_ABSENT = {"r0_uohm": -1, "tcr_ppm": -1, "unit": "", "v": -1, "crc": -1}


class Calibration:
    def __init__(self, r0_uohm, tcr_ppm, stored, why=OK):
        self.r0_uohm = r0_uohm
        self.tcr_ppm = tcr_ppm
        self.stored = stored  # False: the fail-safe values are in use
        self.why = why  # OK, or why the stored record was not used
        # derived, for the control step (see heater_ctl.temp_cc)
        self.r0_10u = r0_uohm // 10
        self.r0tcr_uohm_k = (r0_uohm // 100) * tcr_ppm // 10000  # dR/dT in uOhm per K


def unit_id():
    """This controller's id (machine.unique_id(): the ESP32's base MAC), in hex."""
    import machine  # at call time: the console imports this module before a simulator installs its machine

    return hexlify(machine.unique_id()).decode()


def check(r0_uohm, tcr_ppm, unit):
    """The record's own CRC over its values and the unit it belongs to."""
    return crc32(("%d,%d,%s,%d" % (r0_uohm, tcr_ppm, unit, VERSION)).encode())


def valid(r0_uohm, tcr_ppm):
    """Within the unit spec (board.py): what end-of-line test may store."""
    return (board.CAL_R0_MIN_UOHM <= r0_uohm <= board.CAL_R0_MAX_UOHM
            and board.CAL_TCR_MIN_PPM <= tcr_ppm <= board.CAL_TCR_MAX_PPM)  # fmt: skip


def fail_safe(why):
    return Calibration(board.CAL_FAILSAFE_R0_UOHM, board.CAL_FAILSAFE_TCR_PPM, False, why)


def save(r0_uohm, tcr_ppm):
    """Store a new calibration record for this unit (end-of-line test);
    ValueError if outside the unit spec."""
    if not valid(r0_uohm, tcr_ppm):
        raise ValueError("calibration out of range")
    unit = unit_id()
    store.save(FILE, {"r0_uohm": r0_uohm, "tcr_ppm": tcr_ppm, "unit": unit, "v": VERSION,
                      "crc": check(r0_uohm, tcr_ppm, unit)})  # fmt: skip


def load():
    """The record if it is whole and this unit's, else the fail-safe values
    and why (store.problems keeps what the store found wrong)."""
    n = len(store.problems)
    rec, ok = store.load(FILE, _ABSENT)
    # a damaged copy, even with a whole one behind it: that one may be older
    # than the record that was lost (a save cut short by a power cut too)
    damaged = [p for p in store.problems[n:] if p.startswith(FILE)]
    r0, tcr, unit = rec["r0_uohm"], rec["tcr_ppm"], rec["unit"]
    if damaged:
        why = DAMAGED
    elif not ok:
        why = MISSING
    elif rec["v"] != VERSION:
        why = STALE
    elif rec["crc"] != check(r0, tcr, unit):
        why = DAMAGED
    elif unit != unit_id():
        why = OTHER_UNIT
    elif not valid(r0, tcr):
        why = OUT_OF_SPEC
    else:
        return Calibration(r0, tcr, True)
    return fail_safe(why)

"""The unit's calibration record: the heater track's cold resistance and
temperature coefficient, measured at end of line and stored on flash."""

import board
import store

FILE = "calib"
_DEFAULTS = {"r0_uohm": board.CAL_R0_UOHM, "tcr_ppm": board.CAL_TCR_PPM}
_R0_RANGE = (400000, 1500000)
_TCR_RANGE = (2500, 4500)


class Calibration:
    def __init__(self, r0_uohm, tcr_ppm, stored):
        self.r0_uohm = r0_uohm
        self.tcr_ppm = tcr_ppm
        self.stored = stored  # False: defaults in use, temperature is only nominal
        # derived, for the control step (see heater_ctl.temp_cc)
        self.r0_10u = r0_uohm // 10
        self.r0tcr_uohm_k = (r0_uohm // 100) * tcr_ppm // 10000  # dR/dT in uOhm per K


def valid(r0_uohm, tcr_ppm):
    return _R0_RANGE[0] <= r0_uohm <= _R0_RANGE[1] and _TCR_RANGE[0] <= tcr_ppm <= _TCR_RANGE[1]


def save(r0_uohm, tcr_ppm):
    """Store a new calibration record (end-of-line test); ValueError if implausible."""
    if not valid(r0_uohm, tcr_ppm):
        raise ValueError("calibration out of range")
    store.save(FILE, {"r0_uohm": r0_uohm, "tcr_ppm": tcr_ppm})


def load():
    rec, ok = store.load(FILE, _DEFAULTS)
    if not valid(rec["r0_uohm"], rec["tcr_ppm"]):
        rec, ok = dict(_DEFAULTS), False
    return Calibration(rec["r0_uohm"], rec["tcr_ppm"], ok)

"""The console's `adc` command: the unit's ADC calibration record
(adccal.py) shown, measured and stored at end of line. Loaded only when the
command is used, so its code is not on the heap of a kit in use.

    adc                              the record in use
    adc zero                         heater off, nothing charging: the senses at rest
    adc cal OFFSET_UV GAIN_PPM       the residual offset and gain against the station
"""

import adccal
import store
from micropython import const

_SAMPLES = const(16)


def mean_uv(read):
    """The mean of _SAMPLES readings of read() (a read_uv)."""
    s = 0
    for _ in range(_SAMPLES):
        s += read()
    return s // _SAMPLES


def save(app, **values):
    """Store the record with `values` changed, and use it; ValueError if
    they are not what a unit can read."""
    cur = app.adc_cal
    rec = {"floor_uv": cur.floor_uv, "chg_i_zero_uv": cur.chg_i_zero_uv,
           "offset_uv": cur.offset_uv, "gain_ppm": cur.gain_ppm}  # fmt: skip
    rec.update(values)
    if not adccal.valid(rec):
        raise ValueError("ADC calibration out of range")
    store.save(adccal.FILE, rec)
    app.use_adc_cal(adccal.load())


def command(con, args):
    app = con.app
    if args == ["zero"]:  # end of line: heater off, nothing charging
        if not con._idle():
            return
        save(app, floor_uv=mean_uv(app.heater.adc_ih.read_uv),
             chg_i_zero_uv=mean_uv(app.power.chg_i_reader()))  # fmt: skip
    elif args and args[0] == "cal" and len(args) == 3:  # end of line: the station's reference
        off, gain = int(args[1]), int(args[2])
        if not con._idle():
            return
        save(app, offset_uv=off, gain_ppm=gain)
    elif args:
        con.error(2, "usage: adc [zero | cal OFFSET_UV GAIN_PPM]")
        return
    c = app.adc_cal
    con.reply("OK floor_uv=%d chg_i_zero_uv=%d offset_uv=%d gain_ppm=%d stored=%d"
              % (c.floor_uv, c.chg_i_zero_uv, c.offset_uv, c.gain_ppm, c.stored))  # fmt: skip

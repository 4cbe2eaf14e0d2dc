"""The self-checks of a firmware booted on trial after an update
(bootslot.py, docs/update.md). app.py calls tick() once a second while the
boot is a trial; loaded only then.

Each second: the control step runs (its count grows), no software fault,
the ADC reads the board's thermistor inside its range (neither pinned low
nor at full scale), and BLE is up where it should be. After CONFIRM_MS of
that without a reset, the boot record is written confirmed and read back
(the store works), and the firmware stays. A failed check rolls back at
once (bootslot.fail).
"""

import sys
import time

import board
import bootslot
import faults
from micropython import const

CONFIRM_MS = const(15000)
_NTC_MIN_UV = const(50000)  # below: the thermistor shorted, or the ADC pinned low
_STEP_GAP_MS = const(3000)  # the control step runs at 1 Hz at the least
_state = [None, -1, 0]  # the first tick's time; the control steps counted, when that count last grew


def failure(app, now_ms):
    """What fails now ("" nothing)."""
    h = app.heater
    if h.fault == faults.SOFTWARE:
        return "software"
    if h.steps != _state[1]:
        _state[1] = h.steps
        _state[2] = now_ms
    elif time.ticks_diff(now_ms, _state[2]) > _STEP_GAP_MS:
        return "heater"  # the control step stopped
    uv = h.adc_amb_ntc.read_uv()
    if not _NTC_MIN_UV < uv < board.ADC_FULL_SCALE_UV:
        return "adc"
    if app.settings["ble"] and "bluetooth" in sys.modules and app.ble is None:
        return "ble"
    return ""


def tick(app, now_ms):
    if _state[0] is None:
        _state[0] = now_ms
        _state[2] = now_ms
    why = failure(app, now_ms)
    if why:
        app.console.event("update selfcheck failed: " + why)
        app.heater.cut_for_reset()
        bootslot.fail("selfcheck")
    if time.ticks_diff(now_ms, _state[0]) < CONFIRM_MS:
        return
    bootslot.confirm()
    bootslot._rec = None  # read back from flash: the store works
    rec = bootslot.record()
    if rec["trial"]:
        app.console.event("update selfcheck failed: store")
        bootslot.trial = True
        bootslot.fail("selfcheck")
    _rotate_keys()
    if app.ble is not None:
        app.ble.upd.boot_state()
    app.console.event("update confirmed %s" % rec["ver"])


def _rotate_keys():
    """An image may name the keys that sign its successors: they are taken
    once it is confirmed (docs/update.md, key rotation)."""
    import json

    import store

    try:
        with open(bootslot.slot_dir(bootslot.running) + "/" + bootslot.MANIFEST) as f:
            keys = json.loads(f.read()).get("keys")
    except (OSError, ValueError):
        return
    if isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys):
        store.save("upkeys", {"keys": keys})

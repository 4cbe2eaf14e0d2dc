"""User and engineering settings kept on flash."""

import profiles
import store

FILE = "settings"
DEFAULTS = {
    "profile": profiles.DEFAULT,
    "telemetry": False,  # stream telemetry frames on the console at boot
    "power_telemetry": False,  # and power frames, once a second
    "ble": True,  # the BLE profile runs where the port has a `bluetooth` module
    # the user's, set over BLE (ble_gatt.py, usage.py)
    "locked": False,
    "limit": 0,  # sessions per rolling 24 h, 0 none
    "sharing": True,
    "haptics": 15,  # indicator.HAPTIC_* mask
    "intensity": 100,
}


def load():
    rec, _ = store.load(FILE, DEFAULTS)
    if rec["profile"] not in profiles.PROFILES:
        rec["profile"] = profiles.DEFAULT
    return rec


def save(rec):
    store.save(FILE, rec)

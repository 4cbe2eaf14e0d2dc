"""User and engineering settings kept on flash."""

import profiles
import store

FILE = "settings"
DEFAULTS = {
    "profile": profiles.DEFAULT,
    "telemetry": False,  # stream telemetry frames on the console at boot
    "power_telemetry": False,  # and power frames, once a second
}


def load():
    rec, _ = store.load(FILE, DEFAULTS)
    if rec["profile"] not in profiles.PROFILES:
        rec["profile"] = profiles.DEFAULT
    return rec


def save(rec):
    store.save(FILE, rec)

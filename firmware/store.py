"""Small JSON records on flash, written atomically (temp file, then rename).

A missing or unreadable record yields the caller's defaults, so a damaged
file never stops the device from booting.
"""

import json
import os


def load(name, defaults):
    """The record `name` merged over a copy of `defaults`; unknown keys are dropped."""
    rec = dict(defaults)
    try:
        with open(name) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return rec, False
    if not isinstance(data, dict):
        return rec, False
    for k in defaults:
        if k in data and type(data[k]) is type(defaults[k]):
            rec[k] = data[k]
    return rec, True


def save(name, rec):
    tmp = name + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f)
    os.rename(tmp, name)

"""The BLE profile's rare acts of ownership (ble_gatt.py), loaded when one
happens and dropped after, so that their code takes no heap the rest of the
time: the holder's prompt when a registration clear is armed, the clear
itself (the holder button's triple click), and unpairing every phone."""

import time

import store

# vibrations of their own, never silenced by the haptics mask (indicator.py patterns)
PROMPT = ((100, 100), (100, 100), (100, 0))  # a clear waits for the holder's triple click
CLEARED = ((600, 200), (150, 200), (600, 0))  # the registration and every bond cleared


def prompt(b, now_ms):
    b.ind.vibrate(PROMPT, now_ms)


def unpair(b):
    """Every bond removed, on flash too, and every link dropped."""
    b._bonds.clear()
    b._trusted = []
    for c in b._conns:
        b._ble.gap_disconnect(c)


def clear(b, now_ms, reg_file, rest_ms):
    """The registration cleared and saved, every bond with it (the previous
    owner's phones lose the kit); the holder tells."""
    r = b._reg
    r["registered"] = False
    r["date"] = 0
    b._clearing = False
    b._clear_until = time.ticks_add(now_ms, -rest_ms)
    b._registration()
    store.save(reg_file, r)
    unpair(b)
    b.ind.vibrate(CLEARED, now_ms)
    b.app.console.event("ble ownership cleared")

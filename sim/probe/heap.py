"""The firmware's live heap over a run, and a phone scripted on the emulated
radio: what the 32-bit heap check (hil/simulator/heap32.py) measures.

The probe collects the garbage and reads gc.mem_alloc() at a fixed virtual
period, from the kernel's events, so between the firmware's bytecodes, never
inside its timer callbacks; the simulator's own objects (allocated before
the firmware is imported) are the base it subtracts. The peak is the most the
firmware ever held live; what it allocates and drops between two samples is
garbage the collector reclaims on a board as it runs out.

A phone: scenario events "ble" carry an "@ble" line's words (docs/ble_sim.md),
handed to the emulated radio at their instant, as the host's bridge would;
a word "uuid:UUID" is replaced by that characteristic's value handle in the
table the firmware registered.
"""

import gc

from sim.kernel import K

_state = {"base": 0, "peak": 0, "samples": 0, "period_us": 0, "seq": 0}


def start(base, period_us):
    """Sample every period_us of virtual time from now; base: the simulator's heap."""
    _state["base"] = base
    _state["period_us"] = period_us
    K.schedule(K.now_us + period_us, _sample, None)


def _sample(_arg):
    sample()
    K.schedule(K.now_us + _state["period_us"], _sample, None)


def sample():
    gc.collect()
    live = gc.mem_alloc() - _state["base"]
    _state["samples"] += 1
    if live > _state["peak"]:
        _state["peak"] = live


def peak():
    return _state["peak"]


def samples():
    return _state["samples"]


def _handle(uuid):
    """The value handle of the characteristic `uuid` in the registered table."""
    from sim.mpapi import vbluetooth

    for line in vbluetooth.ble()._table:
        w = line.split()
        if w[0] == "chr" and w[2] == uuid:
            return w[1]
    raise KeyError("no characteristic " + uuid)


def ble_line(words):
    """A scenario event "ble": one "@ble" line to the emulated radio."""
    from sim.mpapi import vbluetooth

    _state["seq"] += 1
    out = [words[0], str(_state["seq"])]
    for w in words[1:]:
        out.append(_handle(w[5:]) if w.startswith("uuid:") else w)
    vbluetooth.channel(out)
    sample()  # the IRQ handler's work, live

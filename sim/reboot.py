"""A power cut or a reset, as a device has one: RAM is gone, the physics is
not. The simulation process ends with REBOOT_EXIT after writing the plant's
state (its objects' scalars and lists, the virtual clock, where the
scenario's events stand) to a snapshot file; the host starts it again on the
same flash with the snapshot, and the firmware boots on a fresh heap, as
after power-on. Loaded only when a run reboots or resumes.
"""

import json

from sim.kernel import K

REBOOT_EXIT = 5
# the plant's objects, by path from the plant: their ints, bools and lists
# are its state (tables and parameters are rebuilt identically from the run's
# configuration; outputs follow from the state)
_OBJECTS = ("", "heater", "cell", "stage", "puffs", "chg", "chg.cell", "bank")


def _obj(path):
    o = K.plant
    for name in path.split(".") if path else ():
        o = getattr(o, name)
    return o


def save(path, extra):
    """Write the snapshot: the plant, the clock, and `extra` (the run's own counts)."""
    state = {}
    for p in _OBJECTS:
        o = _obj(p)
        d = {}
        for k, v in o.__dict__.items():
            t = type(v)
            if t is int or t is bool or (t is list and not [x for x in v if type(x) not in (int, bool, list)]):
                d[k] = v
            elif k == "_st":  # the ADC noise generator's position
                d[k] = list(v)
        state[p] = d
    extra["now_us"] = K.now_us
    extra["next_sample_us"] = K._next_sample_us
    extra["fired"] = K.fired
    with open(path, "w") as f:
        json.dump({"plant": state, "run": extra}, f)


def load(path):
    """Restore the snapshot into the freshly built plant and clock; returns
    the run's own counts. Events before the instant are dropped."""
    with open(path) as f:
        snap = json.load(f)
    for p, d in snap["plant"].items():
        o = _obj(p)
        for k, v in d.items():
            if k == "_st":
                a = o._st
                for i in range(len(v)):
                    a[i] = v[i]
            else:
                setattr(o, k, v)
    run = snap["run"]
    now = run["now_us"]
    ev = K.events
    K._ev_i = len(ev)  # the scenario's events up to the cut have happened
    for i in range(len(ev)):
        if ev[i][0] > now:
            K._ev_i = i
            break
    K._next_ev_us = ev[K._ev_i][0] if K._ev_i < len(ev) else 1 << 62
    K.now_us = now
    K._next_sample_us = run["next_sample_us"]
    K.fired = run["fired"]
    pl = K.plant
    pl.bank.restick()  # injected ADC faults outlive the cut
    pl.after_change()  # currents, readings and thermistors from the restored state
    return run

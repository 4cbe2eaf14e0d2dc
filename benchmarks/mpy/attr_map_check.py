"""Attribute maps as the interpreter sizes them, observed (MicroPython); for
tests/bench/test_attr_map.py. Prints one JSON object:

  plain:      [n, slots] for an object whose n attributes were set one by one
  roomy:      [n, slots] for the same after attr_map.make_room
  controller: the HeaterControl of bench_setup -- its attributes and slots
              once built, then after every method has run (a session, its
              end, a fault and its clearing, a new session): the names it
              gained, and its slots then.

A map's slots are counted, not read: attributes are added under
micropython.heap_lock() until one needs the map to grow, which takes the
heap (MemoryError). The map holds its attributes plus those free slots.
"""

import json

import bench_setup
import faults
import micropython
from attr_map import MAP_SIZES, make_room

_PROBES = ["_probe%d" % k for k in range(2 * MAP_SIZES[-1])]


class Plain:
    pass


def _intern_probes():
    """Make the probes' names qstrs now: interning takes the heap."""
    for name in _PROBES:
        hasattr(Plain, name)


def slots(obj):
    """Slots of obj's attribute map: its attributes and the free slots after them."""
    free = 0
    micropython.heap_lock()
    try:
        for name in _PROBES:
            setattr(obj, name, None)
            free += 1
    except MemoryError:
        pass
    micropython.heap_unlock()
    for name in _PROBES[:free]:
        delattr(obj, name)
    if free == len(_PROBES):
        raise RuntimeError("the map never had to grow: more probes needed")
    return len(obj.__dict__) + free


def with_attributes(n):
    obj = Plain()
    for k in range(n):
        setattr(obj, "a%d" % k, k)
    return obj


def maps(roomy):
    out = []
    for n in range(1, (MAP_SIZES[-2] if roomy else MAP_SIZES[-1]) + 1):
        obj = with_attributes(n)
        if roomy:
            make_room(obj)
        out.append([n, slots(obj)])
    return out


def a_life(hc):
    """Every method of the controller, in the order a device would call them;
    the states it went through."""
    seen = []
    for _ in range(50):
        hc.step(None)  # heating
    seen.append(hc.state)
    hc.request_stop()
    hc.step(None)  # to cooling
    seen.append(hc.state)
    hc.cut_for_fault(faults.CALIBRATION)
    hc.step(None)
    seen.append(hc.state)
    hc.request_clear_fault()
    hc.step(None)  # to sleep
    seen.append(hc.state)
    hc.idle()
    hc.start()
    hc.request_start()
    for _ in range(50):
        hc.step(None)  # preheat
    seen.append(hc.state)
    _ = (hc.puff_count, hc.temp_dc, hc.amb_dc)
    hc.set_calibration(hc.cal)
    hc.cut_for_reset()
    return seen


def controller():
    hc = bench_setup.heating_controller()
    names = sorted(hc.__dict__)
    out = {"attrs": len(names), "slots": slots(hc)}
    out["states"] = a_life(hc)
    out["gained"] = [k for k in sorted(hc.__dict__) if k not in names]
    out["slots_after"] = slots(hc)
    return out


def main():
    _intern_probes()
    print(json.dumps({"plain": maps(False), "roomy": maps(True), "controller": controller()}))


main()

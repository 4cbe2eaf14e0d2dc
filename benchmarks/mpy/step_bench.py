"""Time the control step inside MicroPython; prints one JSON object.

    micropython step_bench.py full|step-only|count N

full: the firmware's step as built, the control-law extract under each
emitter, the telemetry record, and the cost of the stubs and of the loop;
step-only: the step alone (for a build of the firmware with other emitters);
count N: N steps untimed, for an instruction counter (callgrind) to count.
Every timed loop runs under micropython.heap_lock(): a step that allocates
fails with MemoryError and is reported as allocating (None). Each figure comes
in ns and in "calls": units of an empty function call timed in batches
interleaved with its own, which cancels the machine's speed of the moment.
"""

import json
import sys
from time import ticks_diff, ticks_us

import bench_setup  # installs the stub machine module first
import micropython

BATCHES = 200
STEP_BATCH = 50  # telemetry's ring holds 64 frames: drained between batches
CALL_BATCH = 1000

hc = bench_setup.heating_controller()
tele = hc.tele
adc = hc.adc_vh
st = None


# Each loop gets its callable bound beforehand: binding a method allocates.
def loop_call0(fn, n):
    for _ in range(n):
        fn(None)


def loop_record(rec, n):
    for _ in range(n):
        rec(123456, 2, 0x15, 3, 0, 0, 3200, 3195, 21000, 3400, 3900, 2195, 3600)


def loop_read(read, n):
    for _ in range(n):
        read()


def loop_ctl(fn, n):
    s = st
    for _ in range(n):
        fn(s, 32000, 36000, 2195, 80000, 2800)


def nop(a, b, c, d, e, f):
    pass


def _timed(loop, fn, n):
    micropython.heap_lock()
    try:
        t0 = ticks_us()
        loop(fn, n)
        dt = ticks_diff(ticks_us(), t0)
    except MemoryError:
        dt = None
    micropython.heap_unlock()
    tele.drain()
    return dt


def best_ns(loop, fn, n):
    """Best batch in ns per iteration, and the best of an empty call's batches
    interleaved with them (both see the same machine load); None if the loop
    allocated."""
    best = ref = 1 << 30
    for _ in range(BATCHES):
        dt = _timed(loop, fn, n)
        if dt is None:
            return None, None
        best = min(best, dt)
        # long enough a batch that the 1 us clock does not matter
        ref = min(ref, _timed(loop_ctl, nop, CALL_BATCH))
    return best * 1000 // n, ref * 1000 // CALL_BATCH


def timed(out, name, loop, fn, n):
    ns, ref_ns = best_ns(loop, fn, n)
    out[name + "_ns"] = ns
    out[name + "_calls"] = None if ns is None else ns / ref_ns


def main(mode):
    global st
    from array import array

    st = array("i", [0, 0, 0, 0, 0])
    if mode == "count":
        for _ in range(int(sys.argv[2]) // STEP_BATCH):
            loop_call0(hc.step, STEP_BATCH)
            tele.drain()
        print(json.dumps({"mode": mode, "state_after": hc.state}))
        return
    out = {"mode": mode}
    timed(out, "step", loop_call0, hc.step, STEP_BATCH)
    out["state_after"] = hc.state
    out["call_ns"] = best_ns(loop_ctl, nop, CALL_BATCH)[0]
    if mode == "full":
        import control_law
        import control_law_native
        import control_law_viper

        timed(out, "record", loop_record, tele.record, STEP_BATCH)
        timed(out, "adc_read", loop_read, adc.read_uv, CALL_BATCH)
        timed(out, "control_bytecode", loop_ctl, control_law.control, CALL_BATCH)
        timed(out, "control_native", loop_ctl, control_law_native.control, CALL_BATCH)
        timed(out, "control_viper", loop_ctl, control_law_viper.control, CALL_BATCH)
    print(json.dumps(out))


main(sys.argv[1] if len(sys.argv) > 1 else "full")

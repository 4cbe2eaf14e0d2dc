"""A simulated run, executed by the MicroPython unix port:

    micropython -X heapsize=128K sim/run.py RUN.json

with MICROPYPATH=<firmware>:<repo>:.frozen and the working directory as the
device's flash. RUN.json is written by the host (hil/simrun.py) from a
validated scenario. The firmware is imported unchanged after the simulated
`time` and `machine` modules are installed; it runs until the scenario's end
instant, when the kernel raises SimEnd out of the firmware's sleep.
"""

import gc
import json
import sys

import framing
import utime
from sim import params, rng, truth
from sim.kernel import K, SimEnd
from sim.plant import Plant


def info(text):
    sys.stdout.buffer.write(framing.text_frame(framing.T_PLANT_INFO, text))


def setup(cfg):
    K.reset()
    p = params.make(cfg.get("plant"))
    plant = Plant(p, rng.Rng(cfg.get("seed", 1)))
    K.plant = plant
    K.end_us = int(cfg["end_s"] * 1000000)
    K.lock_heap = cfg.get("lock_heap", False)
    handlers = {
        "button": plant.ev_button,
        "stick": plant.ev_stick,
        "puff": plant.ev_puff,
        "fault": plant.ev_fault,
        "ambient": plant.ev_ambient,
        "cell_temp": plant.ev_cell_temp,
        "cell_soc": plant.ev_cell_soc,
    }
    for t_us, kind, arg in cfg["events"]:
        K.schedule(t_us, handlers[kind], arg)
    rec = truth.Recorder(plant)
    K.set_sampler(rec.sample, cfg.get("sample_us", 10000))
    if cfg.get("pace"):
        K.start_pacing(cfg["pace"])
    if cfg.get("probe_allocating_timer"):  # proves the heap-lock check can fail
        from sim import vmachine

        vmachine.Timer(3).init(mode=vmachine.Timer.PERIODIC, period=100, callback=lambda t: [t])
    return rec


def install():
    from sim import vmachine, vtime

    sys.modules["time"] = vtime
    sys.modules["machine"] = vmachine


def main(path):
    if sys.path and sys.path[0].endswith("sim"):
        sys.path.pop(0)  # the script's own folder: sim modules are imported as the `sim` package
    with open(path) as f:
        cfg = json.load(f)
    rec = setup(cfg)
    gc.collect()
    sim_bytes = gc.mem_alloc()
    info("sim start seed=%d ticks_offset_us=%d sample_us=%d sim_heap=%d heap_free=%d" % (
        cfg.get("seed", 1), K.ticks_offset_us, K.sample_period_us, sim_bytes, gc.mem_free()))
    install()
    wall0 = utime.ticks_us()
    code = 0
    try:
        import main  # noqa: F401  the firmware's own entry point
        reason = "firmware_returned"
    except SimEnd as e:
        reason = e.reason
    except Exception as e:  # a firmware bug: show it, fail the run
        rec.flush()
        sys.print_exception(e)
        reason = "crash %s: %s" % (type(e).__name__, e)
        code = 3
    wall_us = utime.ticks_diff(utime.ticks_us(), wall0)
    rec.flush()
    info("sim end reason=%s t_us=%d wall_us=%d timer_fires=%d puffs_taken=%d" % (
        reason, K.now_us, wall_us, K.fired, K.plant.puffs.taken))
    sys.exit(code)


main(sys.argv[1])

"""A simulated run, executed by the MicroPython unix port:

    micropython -X heapsize=128K sim/run.py RUN.json

with MICROPYPATH=<firmware>:<repo>:.frozen and the working directory as the
device's flash. RUN.json is written by the host (hil/simrun.py) from a
validated scenario. The firmware is imported unchanged after the simulated
`time` and `machine` modules are installed; it runs until the scenario's end
instant, when the kernel raises SimEnd out of the firmware's sleep.

A power cut or machine.reset() ends the firmware's run the same way; the
process then leaves the plant's state for the next one (sim/reboot.py), in
which the device boots again, as from power-on, against the same plant and
flash.
"""

import gc
import json
import os
import sys

import framing
import utime
from sim import truth
from sim.kernel import K, SimEnd
from sim.plant import Plant

_REBOOTS = ("power_cut", "machine_reset")
_flash = None  # sim.flash.Flash when the scenario cuts power mid-write
_cycle = None  # sim.script.Cycle when it repeats one
_boot_heap = 0
_main = None  # the firmware's main module, once booted
_SIM_MODULES = ("board", "framing", "json", "os", "time", "machine", "utime")  # kept: shared or built in


def info(text):
    sys.stdout.buffer.write(framing.text_frame(framing.T_PLANT_INFO, text))


def _power_cut(after_bytes):
    """Cut the power now, or after_bytes into the firmware's writes to flash."""
    global _flash
    if after_bytes < 0:
        raise SimEnd("power_cut")
    if _flash is None:  # the flash behind a shim from now on (loaded only when a test needs it)
        from sim import flash

        _flash = flash.mount(os.getcwd())
    _flash.arm(after_bytes)


def _heap_after_boot(_):
    """Live heap once the firmware has booted: the figure held to the ESP32 budget."""
    global _boot_heap, _main
    _main = sys.modules.get("main")
    gc.collect()
    _boot_heap = max(_boot_heap, gc.mem_alloc())


def _drop_firmware():
    """Let go of everything the firmware had."""
    global _main
    if _main is not None:  # an import cut short stays referenced inside MicroPython:
        _main.__dict__.clear()  # its namespace would keep the whole firmware
        _main = None
    for name in list(sys.modules):
        if name not in _SIM_MODULES and not name.startswith("sim"):
            del sys.modules[name]
    K.timers = []
    K._pick_timer()
    gc.collect()


def _bind(fn, plant):
    return lambda arg: fn(plant, arg)


def setup(cfg):
    global _cycle
    K.reset()
    from sim import params, rng  # set-up only: dropped again below, the heap is the firmware's

    plant = Plant(params.make(cfg.get("plant")), rng.Rng(cfg.get("seed", 1)))
    import sim

    for name in ("params", "rng"):
        del sys.modules["sim." + name]
        delattr(sim, name)
    K.plant = plant
    K.end_us = int(cfg["end_s"] * 1000000)
    K.lock_heap = cfg.get("lock_heap", False)
    handlers = {
        "button": plant.ev_button,
        "stick": plant.ev_stick,
        "puff": plant.ev_puff,
        "usb": plant.ev_usb,
        "dock": plant.ev_dock,
        "charger_button": plant.ev_charger_button,
        "power_cut": _power_cut,
    }
    cycle = cfg.get("cycle")
    kinds = [e[1] for e in cfg["events"]] + ([e[1] for e in cycle["events"]] if cycle else [])
    if [k for k in kinds if k not in handlers]:  # conditions imposed on the plant (sim.inject)
        from sim import inject

        for k in inject.HANDLERS:
            handlers[k] = _bind(getattr(inject, k), plant)
    for t_us, kind, arg in cfg["events"]:
        K.schedule(t_us, handlers[kind], arg)
    if cycle:
        from sim.script import Cycle

        _cycle = Cycle(cycle, handlers)
    sample_us = cfg.get("sample_us", 10000)
    rec = truth.Recorder(plant, power_every=max(1, cfg.get("power_sample_us", 1000000) // sample_us))
    K.set_sampler(rec.sample, sample_us)
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
    global _boot_heap
    if sys.path and sys.path[0].endswith("sim"):
        sys.path.pop(0)  # the script's own folder: sim modules are imported as the `sim` package
    with open(path) as f:
        cfg = json.load(f)
    rec = setup(cfg)
    seed = cfg.get("seed", 1)
    off_us = int(cfg.get("power_off_s", 1.0) * 1000000)
    snapshot = cfg.get("snapshot")  # where to leave the plant's state when the device reboots
    resume = cfg.get("resume")  # the snapshot this run continues from
    cfg = None
    run = {"boots": 0, "cycle": None}
    if resume:
        from sim import reboot

        run = reboot.load(resume)
        del sys.modules["sim.reboot"]  # its work done: the heap is the firmware's
        import sim

        del sim.reboot
        _boot_heap = run["heap_boot"]
        if _cycle is not None and run["cycle"]:
            _cycle.resume(*run["cycle"])
    install()
    gc.collect()
    sim_bytes = gc.mem_alloc()
    info("sim start seed=%d ticks_offset_us=%d sample_us=%d sim_heap=%d heap_free=%d" % (
        seed, K.ticks_offset_us, K.sample_period_us, sim_bytes,
        gc.mem_free()))  # fmt: skip
    wall0 = utime.ticks_us()
    code = 0
    try:
        if run.get("reason") == "power_cut":
            K.run_until(K.now_us + off_us)  # the power comes back
        K.schedule(K.now_us, _heap_after_boot, None)  # fires when the booted firmware first sleeps
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
    boots = run["boots"] + 1
    if reason in _REBOOTS and snapshot:
        _drop_firmware()  # its RAM is gone: room to write the snapshot
        from sim import reboot

        K.plant.power_off()
        cycle = [_cycle.k, _cycle.i] if _cycle is not None else None
        reboot.save(snapshot, {"boots": boots, "heap_boot": _boot_heap, "reason": reason, "cycle": cycle})
        rec.flush()
        info("sim reboot reason=%s t_us=%d wall_us=%d" % (reason, K.now_us, wall_us))
        sys.exit(reboot.REBOOT_EXIT)
    rec.flush()
    info("sim end reason=%s t_us=%d wall_us=%d timer_fires=%d puffs_taken=%d boots=%d heap_boot=%d heap_size=%d" % (
        reason, K.now_us, wall_us, K.fired, K.plant.puffs.taken, boots, _boot_heap, gc.mem_alloc() + gc.mem_free()))  # fmt: skip
    sys.exit(code)


main(sys.argv[1])

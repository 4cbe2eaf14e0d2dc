"""A simulated run: the firmware, unchanged, against the plant, in virtual time.

Two entries, one run:

    micropython -X heapsize=400K -m sim.run RUN.json      (the simulator: hil/simulator/runner.py)
    from sim import run; run.board("run.json")            (a board, over the raw REPL)

with the working directory as the device's flash. RUN.json, written by the
host from a validated scenario, holds the plant's parameters, the seed, the
scenario's events and the end instant. The firmware is imported unchanged
after the simulated `time` and `machine` modules are installed; it runs until
the end instant, when the kernel raises SimEnd out of the firmware's sleep.

A power cut or machine.reset() ends the firmware's run the same way; the
process then leaves the plant's state for the next one (sim/reboot.py), in
which the device boots again, as from power-on, against the same plant and
flash.

Host-stepped runs ("host_stepped": true) stop the clock until the host grants
time over the "@plant" channel (sim/plant_cmd.py): interactive tests.

Without a radio (the unix port) MicroPython's `bluetooth` module is emulated
(sim/mpapi/vbluetooth.py, the "@ble" channel; the host plays the BLE stack). A run
configuration's "ble_program" (MicroPython source) runs before the firmware,
on the emulated radio, and the firmware then gets a radio nobody hears: tests
of the host's BLE bridge drive a GATT program of their own.
"""

import gc
import json
import os
import select
import sys

import framing
import utime

from sim import truth
from sim.kernel import K, SimEnd
from sim.plant import Plant

_REBOOTS = ("power_cut", "machine_reset", "watchdog_reset")
_flash = None  # sim.mpapi.vflash.Flash: the flash, once the simulated modules are installed
_board = {"flash_us": (0, 0)}  # the board's parameters the modules installed later need
_cycle = None  # sim.script.Cycle when it repeats one
_boot_heap = 0
_main = None  # the firmware's main module, once booted
_SIM_MODULES = ("attr_map", "board", "framing", "json", "os", "time", "machine", "utime")  # kept: shared or built in


def info(text):
    sys.stdout.buffer.write(framing.text_frame(framing.T_PLANT_INFO, text))


def _power_cut(after_bytes):
    """Cut the power now, or after_bytes into the firmware's writes to flash."""
    if after_bytes < 0:
        raise SimEnd("power_cut")
    _flash.arm(after_bytes)


def _mount_flash():
    """The working directory as the device's flash (sim/mpapi/vflash.py): its
    writes take their time, and the power can fail in one."""
    global _flash
    from sim.mpapi import vflash

    _flash = vflash.mount(os.getcwd(), *_board["flash_us"])


def _heap_after_boot(base):
    """The firmware's live heap once it has booted (what it holds of its budget)."""
    global _boot_heap, _main
    _main = sys.modules.get("main")
    gc.collect()
    _boot_heap = max(_boot_heap, gc.mem_alloc() - base)


def _hold_to_budget(free_bytes):
    """Leave the firmware exactly `free_bytes` of free heap -- what the ESP32
    budget leaves a program -- by taking the rest: the simulator's own modules
    and models share the process's heap but are not on a device. Returns the
    ballast (kept referenced for the run).

    The holes the simulator's setup left between its objects are taken
    first: a board's firmware starts on one free region, not on the
    simulator's scraps. The GC allocates first fit from the heap's start, so
    small links fill the holes in order, then the start of the free region
    after them; what is left is that region's end, in one piece."""
    gc.collect()
    extra = gc.mem_free() - free_bytes
    if extra < 0:
        raise MemoryError("the simulator needs %d bytes more heap than its process has" % -extra)
    held = []
    links = (extra - 4096) // (_LINK + 8)  # each with its slot in a part; the rest below
    while links > 0:
        k = 128 if links > 128 else links
        part = [None] * k  # 1 kB: held in parts, a heap with few large holes has room for them
        for i in range(k):
            part[i] = (i,)  # a link: 16-byte holes stay free
        held.append(part)
        links -= k
    gc.collect()
    extra = gc.mem_free() - free_bytes
    chunk = extra
    while extra > 64 and chunk >= 64:  # the rest in as few pieces as the heap allows
        try:
            held.append(bytearray(min(chunk, extra) - 48))  # less the allocations' overhead
        except MemoryError:
            chunk //= 2
            continue
        extra = gc.mem_free() - free_bytes
    return held


_LINK = 32  # a 1-tuple, header and one item: two GC blocks on the 64-bit unix port


def _let_main_go():
    """The firmware's main module, referenced inside MicroPython after an
    import cut short (and here): its namespace would keep the whole firmware."""
    global _main
    if _main is not None:
        _main.__dict__.clear()
        _main = None


def _drop_firmware():
    """Let go of everything the firmware had."""
    _let_main_go()
    for name in list(sys.modules):
        if name not in _SIM_MODULES and not name.startswith("sim"):
            del sys.modules[name]
    K.timers = []
    K._pick_timer()
    gc.collect()


def _bind(fn, plant):
    return lambda arg: fn(plant, arg)


def event_handlers(plant, kinds=()):
    """Scenario event names (hil/scenarios/scenario.py) -> the plant's inputs; the
    conditions imposed on the plant (sim/inject.py) only if `kinds` has any."""
    handlers = {
        "button": plant.ev_button,
        "stick": plant.ev_stick,
        "puff": plant.ev_puff,
        "usb": plant.ev_usb,
        "dock": plant.ev_dock,
        "charger_button": plant.ev_charger_button,
        "power_cut": _power_cut,
    }
    if "ble" in kinds:  # a phone scripted on the emulated radio
        from sim.probe import heap

        handlers["ble"] = heap.ble_line
    if [k for k in kinds if k not in handlers]:
        from sim import inject

        for k in inject.HANDLERS:
            handlers[k] = _bind(getattr(inject, k), plant)
    return handlers


def _wait_input():
    """Block until the host sends something; SimEnd when it has gone."""
    p = select.poll()
    p.register(sys.stdin, select.POLLIN)
    while True:
        ev = p.poll(1000)
        if ev:
            if ev[0][1] & select.POLLIN:
                return
            raise SimEnd("host_closed")


def setup(cfg):
    global _cycle
    K.reset()
    from sim.models import params, rng  # set-up only: dropped again below, the heap is the firmware's

    p = params.make(cfg.get("plant"))
    plant = Plant(p, rng.Rng(cfg.get("seed", 1)))
    _board["flash_us"] = (int(p["flash_prog_us"]), int(p["flash_erase_us"]))
    _board["mp_minor"] = int(p["mp_minor"])
    p = None
    import sim.models

    for name in ("params", "rng"):
        del sys.modules["sim.models." + name]
        delattr(sim.models, name)
    K.plant = plant
    if cfg.get("end_s") is not None:
        K.set_end(int(cfg["end_s"] * 1000000))
    K.lock_heap = cfg.get("lock_heap", False)
    cycle = cfg.get("cycle")
    kinds = [e[1] for e in cfg["events"]] + ([e[1] for e in cycle["events"]] if cycle else [])
    handlers = event_handlers(plant, kinds)
    for t_us, kind, arg in cfg["events"]:
        K.schedule(t_us, handlers[kind], arg)
    if cycle:
        from sim.script import Cycle

        _cycle = Cycle(cycle, handlers)
    sample_us = cfg.get("sample_us", 10000)  # 0: no truth samples
    every = cfg.get("power_sample_us", 1000000) // sample_us if sample_us else 1
    rec = truth.Recorder(plant, power_every=max(1, every))
    K.set_sampler(rec.sample, sample_us)
    if cfg.get("idle_sample_us") and sample_us:  # sparser while idle, and at every heater switch
        rec.idle_us = cfg["idle_sample_us"]
        rec.busy_us = sample_us
        plant.edge_samples = True
    if cfg.get("pace"):
        K.start_pacing(cfg["pace"])
    if cfg.get("timer_latency"):
        from sim.mpapi.latency import TimerLatency

        K.timer_latency = TimerLatency(*cfg["timer_latency"])
    if cfg.get("profile_steps"):
        from sim.step_profile import StepProfile

        K.step_profile = StepProfile()
    if cfg.get("probe_allocating_timer"):  # proves the heap-lock check can fail
        from sim.mpapi import vmachine

        vmachine.Timer(3).init(mode=vmachine.Timer.PERIODIC, period=100, callback=lambda t: [t])
    return rec


def plant_channel(rec, host_stepped, eager):
    """The "@plant" console channel. Loaded on its first line unless `eager`
    (the simulator, whose own modules are all loaded before the firmware's
    heap budget is set aside); a board's heap is tight."""
    chan = []

    def load():
        from sim.plant_cmd import PlantChannel

        chan.append(PlantChannel(K.plant, rec, K, host_stepped))

    def handler(words):
        if not chan:
            load()
        chan[0](words)

    if eager:
        load()
    return handler


def install_ble(eager, program=None, irq_stack=None):
    """The emulated `bluetooth` module and its "@ble" channel, on a platform
    without a radio of its own (a board's radio is kept); as from power-on.
    irq_stack: the IRQ handler's stack in bytes (None: the ESP32's)."""
    emulated = sys.modules.get("bluetooth")
    if emulated is None or emulated.__name__ != "sim.mpapi.vbluetooth":
        try:
            import bluetooth  # noqa: F401  a board's own radio
            return
        except ImportError:
            pass
    import console

    from sim.mpapi import vbluetooth

    vbluetooth.reset()
    vbluetooth.configure(irq_stack=vbluetooth.IRQ_STACK if irq_stack is None else irq_stack)
    sys.modules["bluetooth"] = vbluetooth
    console.register_channel("ble", vbluetooth.channel)
    if eager:
        vbluetooth.channel(None)
    if program:
        exec(program, {"__name__": "ble_program"})
        vbluetooth.mute()


def select_slot():
    """The firmware's bootstrap chooses its slot (firmware/bootslot.py) before
    the simulator imports any firmware module (the console, for its channels):
    they come from the slot the device would run."""
    import bootslot

    bootslot.select()
    # a slot's modules imported from the host's folder itself: on the flash
    # VFS (a Python object) an import's many stat() calls leave garbage the
    # board's LittleFS (C) does not; reads cost no flash time here anyway
    first = sys.path[0] if sys.path else ""
    if _flash is not None and first.startswith(bootslot.DIR):
        sys.path[0] = _flash.host_path(first)


def install(rec, host_stepped, eager=False, ble_program=None, ble_irq_stack=None):
    """The simulated modules in place of the hardware ones, and the plant's
    console channel; from here on, imports see the simulated hardware."""
    from sim.mpapi import vmachine, vstdin, vtime

    sys.modules["time"] = vtime
    sys.modules["machine"] = vmachine
    vmachine.MP_MINOR = _board["mp_minor"]
    if _flash is None:
        _mount_flash()
    else:  # a board that stays up between runs (the virtual board): this run's times
        _flash.prog_us, _flash.erase_us = _board["flash_us"]
    select_slot()
    import console

    vstdin.install(console)
    console.register_channel("plant", plant_channel(rec, host_stepped, eager))
    install_ble(eager, ble_program, ble_irq_stack)
    if host_stepped:

        def paused(now_us):
            rec.flush()
            info("paused t_us=%d" % now_us)

        K.on_pause = paused
        K.wait_input = _wait_input
        K.grant(0)


def run(cfg):
    """Run the firmware to the end of the scenario or its next reboot;
    (reason, exit code)."""
    global _boot_heap
    rec = setup(cfg)
    host_stepped = cfg.get("host_stepped", False)
    seed = cfg.get("seed", 1)
    off_us = int(cfg.get("power_off_s", 1.0) * 1000000)
    snapshot = cfg.get("snapshot")  # where to leave the plant's state when the device reboots
    resume = cfg.get("resume")  # the snapshot this run continues from
    budget = cfg.get("heap_budget")  # the firmware's free heap at boot; None: all there is
    ble_program = cfg.get("ble_program")
    probe_us = cfg.get("heap_probe_us", 0)
    if probe_us:
        from sim.probe import heap  # noqa: F401  loaded now: the base is measured after it
    ble_irq_stack = cfg.get("ble_irq_stack")  # bytes of stack for the BLE IRQ handler (0: no limit)
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
    install(rec, host_stepped, budget is not None, ble_program, ble_irq_stack)
    ble_program = None
    gc.collect()
    sim_bytes = gc.mem_alloc()
    _ballast = _hold_to_budget(budget) if budget else None  # held (never read) until the run ends
    gc.collect()
    info("sim start seed=%d ticks_offset_us=%d sample_us=%d sim_heap=%d heap_free=%d" % (
        seed, K.ticks_offset_us, K.sample_period_us, sim_bytes,
        gc.mem_free()))  # fmt: skip
    base = gc.mem_alloc()
    if probe_us:  # the firmware's live heap over the run (sim/probe/heap.py)
        sys.modules["sim.probe.heap"].start(base, probe_us)
    wall0 = utime.ticks_us()
    code = 0
    try:
        if run.get("reason") == "power_cut":
            K.run_until(K.now_us + off_us)  # the power comes back
        K.schedule(K.now_us, _heap_after_boot, base)  # fires when the booted firmware first sleeps
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
    if _ballast is not None:  # emptied, not only dropped: a stale word on the C stack
        _ballast.clear()  # that still points at it must not keep it for the board's next run
    boots = run["boots"] + 1
    if reason in _REBOOTS and snapshot:
        _drop_firmware()  # its RAM is gone: room to write the snapshot
        from sim import reboot

        K.plant.power_off()
        cycle = [_cycle.k, _cycle.i] if _cycle is not None else None
        reboot.save(snapshot, {"boots": boots, "heap_boot": _boot_heap, "reason": reason, "cycle": cycle})
        rec.flush()
        info("sim reboot reason=%s t_us=%d wall_us=%d" % (reason, K.now_us, wall_us))
        return reason, reboot.REBOOT_EXIT
    rec.flush()
    if K.step_profile is not None:
        info("sim steps " + K.step_profile.summary())
    info("sim end reason=%s t_us=%d wall_us=%d timer_fires=%d puffs_taken=%d boots=%d heap_boot=%d heap_budget=%d"
         " flash_busy_us=%d flash_stall_max_us=%d stdin_lost=%d%s" % (
        reason, K.now_us, wall_us, K.fired, K.plant.puffs.taken, boots, _boot_heap,
        budget or gc.mem_alloc() + gc.mem_free(), _flash.busy_us, K.stall_max_us,
        sys.modules["sim.mpapi.vstdin"].lost, _probe_info(probe_us)))  # fmt: skip
    return reason, code


def _probe_info(probe_us):
    if not probe_us:
        return ""
    heap = sys.modules["sim.probe.heap"]
    return " heap_peak=%d heap_samples=%d" % (heap.peak(), heap.samples())


def _forget_modules():
    """Drop every module a previous run or the boot imported (the firmware's,
    bound to other `time`/`machine` modules); keep the simulator's."""
    _let_main_go()  # a board's last run: not kept through this one's set-up
    ble = sys.modules.get("sim.mpapi.vbluetooth")
    if ble is not None:
        ble.reset()  # the radio: its handler (the last firmware's), tables, connections
    for name in list(sys.modules):
        if not name.startswith("sim"):
            del sys.modules[name]
    gc.collect()


def board(path="run.json"):
    """A run on a board (or the virtual board), started over the raw REPL.
    Returns to the REPL at the end; a machine.reset() by the firmware resets
    the board for real."""
    _forget_modules()
    with open(path) as f:
        cfg = json.load(f)
    reason, _ = run(cfg)
    K.reset()  # the run is over: the REPL's file writes (on the flash, vflash) stall no run
    sys.modules.pop("machine", None)
    if reason == "machine_reset":
        import umachine

        if hasattr(umachine, "reset"):
            umachine.reset()
        umachine.soft_reset()  # the unix port: the process ends, the virtual board boots again


def main(path):
    if sys.path and sys.path[0].endswith("sim"):
        sys.path.pop(0)  # the script's own folder: sim modules are imported as the `sim` package
    with open(path) as f:
        cfg = json.load(f)
    _, code = run(cfg)
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1])

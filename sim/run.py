"""A simulated run: the firmware, unchanged, against the plant, in virtual time.

Two entries, one run:

    micropython -X heapsize=128K -m sim.run RUN.json      (the simulator: hil/simrun.py)
    from sim import run; run.board("run.json")            (a board, over the raw REPL)

with the working directory as the device's flash. RUN.json, written by the
host from a validated scenario, holds the plant's parameters, the seed, the
scenario's events and the end instant. The firmware is imported unchanged
after the simulated `time` and `machine` modules are installed; it runs until
the end instant, when the kernel raises SimEnd out of the firmware's sleep.

Host-stepped runs ("host_stepped": true) stop the clock until the host grants
time over the "@plant" channel (sim/plant_cmd.py): interactive tests.
"""

import gc
import json
import select
import sys

import framing
import utime
from sim import params, rng, truth
from sim.kernel import K, SimEnd
from sim.plant import Plant


def info(text):
    sys.stdout.buffer.write(framing.text_frame(framing.T_PLANT_INFO, text))


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


def event_handlers(plant):
    """Scenario event names (hil/scenario.py) -> the plant's inputs."""
    return {
        "button": plant.ev_button,
        "stick": plant.ev_stick,
        "puff": plant.ev_puff,
        "fault": plant.ev_fault,
        "ambient": plant.ev_ambient,
        "cell_temp": plant.ev_cell_temp,
        "cell_soc": plant.ev_cell_soc,
    }


def setup(cfg):
    K.reset()
    p = params.make(cfg.get("plant"))
    plant = Plant(p, rng.Rng(cfg.get("seed", 1)))
    K.plant = plant
    if cfg.get("end_s") is not None:
        K.set_end(int(cfg["end_s"] * 1000000))
    K.lock_heap = cfg.get("lock_heap", False)
    handlers = event_handlers(plant)
    for t_us, kind, arg in cfg["events"]:
        K.schedule(t_us, handlers[kind], arg)
    rec = truth.Recorder(plant)
    K.set_sampler(rec.sample, cfg.get("sample_us", 10000))
    if cfg.get("pace"):
        K.start_pacing(cfg["pace"])
    if cfg.get("timer_latency"):
        from sim.latency import TimerLatency

        K.timer_latency = TimerLatency(*cfg["timer_latency"])
    if cfg.get("profile_steps"):
        from sim.step_profile import StepProfile

        K.step_profile = StepProfile()
    if cfg.get("probe_allocating_timer"):  # proves the heap-lock check can fail
        from sim import vmachine

        vmachine.Timer(3).init(mode=vmachine.Timer.PERIODIC, period=100, callback=lambda t: [t])
    return rec


def plant_channel(rec, host_stepped):
    """The "@plant" console channel, loaded on its first line: a batch run
    never uses it, and the heap is tight."""
    chan = []

    def handler(words):
        if not chan:
            from sim.plant_cmd import PlantChannel

            chan.append(PlantChannel(K.plant, rec, K, host_stepped))
        chan[0](words)

    return handler


def install(rec, host_stepped):
    """The simulated modules in place of the hardware ones, and the plant's
    console channel; from here on, imports see the simulated hardware."""
    import console
    from sim import vmachine, vtime

    sys.modules["time"] = vtime
    sys.modules["machine"] = vmachine
    console.register_channel("plant", plant_channel(rec, host_stepped))
    if host_stepped:

        def paused(now_us):
            rec.flush()
            info("paused t_us=%d" % now_us)

        K.on_pause = paused
        K.wait_input = _wait_input
        K.grant(0)


def run(cfg):
    """Run the firmware to the end of the scenario; (reason, exit code)."""
    rec = setup(cfg)
    gc.collect()
    sim_bytes = gc.mem_alloc()
    info("sim start seed=%d ticks_offset_us=%d sample_us=%d sim_heap=%d heap_free=%d" % (
        cfg.get("seed", 1), K.ticks_offset_us, K.sample_period_us, sim_bytes, gc.mem_free()))
    install(rec, cfg.get("host_stepped", False))
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
    if K.step_profile is not None:
        info("sim steps " + K.step_profile.summary())
    info("sim end reason=%s t_us=%d wall_us=%d timer_fires=%d puffs_taken=%d" % (
        reason, K.now_us, wall_us, K.fired, K.plant.puffs.taken))
    return reason, code


def _forget_modules():
    """Drop every module a previous run or the boot imported (the firmware's,
    bound to other `time`/`machine` modules); keep the simulator's."""
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

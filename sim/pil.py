"""Processor in the loop: a board without heater hardware runs the firmware,
unchanged, against the plant models, in real time. /boot.py (sim/boot_pil.py)
calls boot() before main.py starts the firmware.

On an ESP32 the firmware keeps the board's own timers and watchdog
(sim/mpapi/rtmachine.py). The unix port has no hardware timers: there (the virtual
board) the simulator's virtual clock is paced to the wall clock instead.
An optional /pil.json sets the plant: {"seed", "plant", "events", "sample_us"}
as in a run configuration (sim/run.py); by default a stick is inserted at boot
and no truth samples are sent (they would crowd a 115200-baud link).
"""

import json
import sys

DEFAULTS = {"seed": 1, "plant": None, "events": [[0, "stick", True]], "sample_us": 0}


def _config():
    cfg = dict(DEFAULTS)
    try:
        with open("pil.json") as f:
            cfg.update(json.load(f))
    except (OSError, ValueError):
        pass
    return cfg


def boot():
    cfg = _config()
    import umachine

    if hasattr(umachine, "Timer"):
        _boot_real_time(cfg)
    else:
        from sim import run

        cfg["pace"] = 1.0
        rec = run.setup(cfg)
        run.install(rec, False)


def _boot_real_time(cfg):
    from sim.run import select_slot

    select_slot()  # the firmware's modules from the slot it runs (firmware/bootslot.py)
    import console

    from sim import truth
    from sim.models import params, rng
    from sim.mpapi import rtmachine
    from sim.plant import Plant
    from sim.plant_cmd import PlantChannel
    from sim.run import event_handlers

    plant = Plant(params.make(cfg["plant"]), rng.Rng(cfg["seed"]))
    rec = truth.Recorder(plant)
    handlers = event_handlers(plant, [e[1] for e in cfg["events"]])
    events = [(t, handlers[kind], arg) for t, kind, arg in cfg["events"]]
    events.sort(key=lambda e: e[0])
    clock = rtmachine.RtClock(plant, events, cfg["sample_us"], rec.sample)
    rtmachine.install(clock)
    sys.modules["machine"] = rtmachine
    console.register_channel("plant", PlantChannel(plant, rec, clock, False))

"""Processor in the loop on a board's real clock (sim/mpapi/rtmachine.py, sim/pil.py),
exercised in the unix port with a stand-in for the board's own `machine`
module (the unix port has no Pin, ADC or Timer): the wired pins reach the
plant, which follows the wall clock and fires its events on time."""

from __future__ import annotations

import textwrap
from typing import Any

from conftest import run_mpy

FAKE_UMACHINE = """
import sys
class _Pin:
    IN = 1; OUT = 3; OPEN_DRAIN = 7; PULL_UP = 2; PULL_DOWN = 1; IRQ_RISING = 1; IRQ_FALLING = 2
    def __init__(self, id, mode=-1, pull=-1):
        self.id = id
        self.level = 0
    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v
class _ADC:
    ATTN_0DB = 0; ATTN_2_5DB = 1; ATTN_6DB = 2; ATTN_11DB = 3
class _Timer:
    pass
class _M:
    pass
def _nothing(*a):
    return 0
m = _M()
m.Pin = _Pin; m.ADC = _ADC; m.Timer = _Timer; m.WDT = _Timer
for name in ("reset", "soft_reset", "freq", "unique_id", "reset_cause", "idle", "lightsleep",
             "disable_irq", "enable_irq"):
    setattr(m, name, _nothing)
sys.modules["umachine"] = m
"""


def mpy(code: str) -> dict[str, Any]:
    script = FAKE_UMACHINE + "import json\nout = {}\n" + textwrap.dedent(code)
    return run_mpy(script + "\nprint(json.dumps(out))\n")


def test_the_plant_follows_the_wall_clock_behind_the_wired_pins() -> None:
    out = mpy(
        """
        import utime, board
        from sim.models import params, rng
        from sim.mpapi import rtmachine
        from sim.plant import Plant
        plant = Plant(params.make(), rng.Rng(1))
        events = [(0, plant.ev_stick, True), (150000, plant.ev_stick, False)]
        clock = rtmachine.RtClock(plant, events)
        rtmachine.install(clock)
        Pin = rtmachine.Pin
        stick = Pin(board.PIN_STICK_DET, Pin.IN)
        out["stick_at_start"] = stick.value()
        Pin(board.PIN_HEATER_EN, Pin.OUT, value=1)
        pwm = rtmachine.PWM(Pin(board.PIN_HEATER_PWM), freq=20000, duty_u16=20000)
        amps = rtmachine.ADC(Pin(board.PIN_ADC_HEATER_I), atten=rtmachine.ADC.ATTN_11DB)
        t0 = plant.heater.t_blade_uc
        utime.sleep_ms(300)
        out["heater_uv"] = amps.read_uv()
        out["heated_uc"] = plant.heater.t_blade_uc - t0
        out["stick_after"] = stick.value()
        out["plant_us"] = clock.now_us
        out["spare_pin_is_hardware"] = Pin(5, Pin.OUT)._hw is not None
        """
    )
    assert out["stick_at_start"] == 1 and out["stick_after"] == 0  # the 150 ms event fired
    assert out["heater_uv"] > 0  # the duty reached the plant, the ADC reads its current
    assert out["heated_uc"] > 5_000_000  # more than 5 K in 0.3 s
    assert 250_000 < out["plant_us"] < 1_000_000  # the plant's clock is the wall clock
    assert out["spare_pin_is_hardware"]


def test_pil_boot_wires_the_plant_in_before_the_firmware() -> None:
    out = mpy(
        """
        import sys
        from sim import pil
        from sim.mpapi import rtmachine
        pil.boot()
        import machine, console
        out["machine_is_rtmachine"] = machine is rtmachine
        out["plant_channel"] = "plant" in console._channels
        """
    )
    assert out == {"machine_is_rtmachine": True, "plant_channel": True}

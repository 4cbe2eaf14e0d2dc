"""The simulator's `time` and `machine` modules, exercised inside MicroPython."""

from __future__ import annotations

import textwrap
from typing import Any

from conftest import run_mpy


def mpy(code: str) -> dict[str, Any]:
    """Run code in the unix port with the simulator's modules installed; the
    code sets `out`, which comes back as JSON."""
    prelude = textwrap.dedent(
        """
        import sys, json
        from sim.kernel import K, SimEnd
        K.reset()
        from sim.mpapi import vtime as time, vmachine as machine
        out = {}
        """
    )
    return run_mpy(prelude + textwrap.dedent(code) + "\nprint(json.dumps(out))\n")


def test_ticks_wrap_like_the_esp32() -> None:
    out = mpy(
        """
        a = time.ticks_ms()
        time.sleep_ms(250000)  # across the 30-bit wrap
        b = time.ticks_ms()
        out["a"], out["b"] = a, b
        out["diff"] = time.ticks_diff(b, a)
        out["add"] = time.ticks_add(0x3FFFFFFF, 2)
        """
    )
    assert out["b"] < out["a"]  # wrapped
    assert out["diff"] == 250000
    assert out["add"] == 1


def test_timers_fire_at_their_virtual_instants() -> None:
    out = mpy(
        """
        seen = []
        P, O = machine.Timer.PERIODIC, machine.Timer.ONE_SHOT
        t0 = machine.Timer(0)
        t0.init(mode=P, period=10, callback=lambda t: seen.append(("p", K.now_us)))
        t1 = machine.Timer(1)
        t1.init(mode=O, period=25, callback=lambda t: seen.append(("o", K.now_us)))
        time.sleep_ms(45)
        t0.deinit()
        time.sleep_ms(50)
        out["seen"] = seen
        out["now"] = K.now_us
        """
    )
    assert out["seen"] == [["p", 10000], ["p", 20000], ["o", 25000], ["p", 30000], ["p", 40000]]
    assert out["now"] == 95000


def test_sleep_never_waits_for_the_wall_clock() -> None:
    out = mpy(
        """
        import utime
        w0 = utime.ticks_ms()
        time.sleep(3600)
        out["wall_ms"] = utime.ticks_diff(utime.ticks_ms(), w0)
        out["virtual_s"] = K.now_us // 1000000
        """
    )
    assert out["virtual_s"] == 3600
    assert out["wall_ms"] < 1000


def test_an_unfed_watchdog_resets_the_device() -> None:
    out = mpy(
        """
        wdt = machine.WDT(timeout=500)
        for _ in range(3):
            time.sleep_ms(400)
            wdt.feed()
        try:
            time.sleep_ms(600)
            out["reset"] = None
        except SimEnd as e:
            out["reset"] = e.reason
            out["at_us"] = K.now_us
        """
    )
    assert out["reset"] == "watchdog_reset"
    assert out["at_us"] == 1700000


def test_pwm_and_adc_keep_the_esp32_conventions() -> None:
    out = mpy(
        """
        p = machine.PWM(machine.Pin(5), freq=20000, duty_u16=1000)
        out["duty"] = p.duty_u16()
        out["freq"] = p.freq()
        try:
            p.duty_u16(70000)
        except ValueError as e:
            out["err"] = str(e)
        a = machine.ADC(machine.Pin(33), atten=machine.ADC.ATTN_11DB)
        out["unconnected"] = a.read_uv()
        try:
            machine.ADC(machine.Pin(5))
        except ValueError as e:
            out["adc5"] = str(e)
        """
    )
    # an input at 0 V reads the calibration's floor, 142 mV (sim/models/adc.py);
    # GPIO 5 has no ADC (ports/esp32/machine_adc.c)
    assert out == {
        "duty": 1000, "freq": 20000, "err": "duty must be 0-65535", "unconnected": 142000,
        "adc5": "invalid pin",
    }  # fmt: skip

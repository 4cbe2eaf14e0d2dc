"""The simulator's emulation of the ESP32 port where it differs from a plain
model (docs/esp32.md), exercised inside MicroPython: the ADC as read_uv()
calibrates it, soft timers held back by a flash write, the console's
260-byte input ring, PWM start-up before MicroPython 1.26."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from conftest import run_mpy
from test_sim_hal import mpy

# ESP-IDF components/esp_adc/esp32/adc_cali_line_fitting.c, ADC1 at 11 dB
# (eFuse Vref): written out again here, apart from sim/models/adc.py, so that
# the model is checked against the formula and not against itself
LOW = (2240, 2297, 2352, 2405, 2457, 2512, 2564, 2616, 2664, 2709,
       2754, 2795, 2832, 2868, 2903, 2937, 2969, 3000, 3030, 3060)  # fmt: skip
HIGH = (2667, 2706, 2745, 2780, 2813, 2844, 2873, 2901, 2928, 2956,
        2982, 3006, 3032, 3059, 3084, 3110, 3135, 3160, 3184, 3209)  # fmt: skip


def idf_mv(raw: int, vref: int) -> int:
    a = vref * 196602 // 4096
    linear = (a * raw + 32768) // 65536 + 142
    if raw < 2880:
        return linear
    i = (raw - 2880) // 64
    x2, x1 = 1200 - vref, vref - 1000
    y2, y1 = (i + 1) * 64 + 2880 - raw, raw - (i * 64 + 2880)
    z = LOW[i] * x2 * y2 + HIGH[i] * x1 * y2 + LOW[i + 1] * x2 * y1 + HIGH[i + 1] * x1 * y1
    lut = (z + 6400) // 12800
    if raw > 2944:
        return lut
    x = raw - 2880
    return (linear * 64 + lut * x - linear * x + 32) // 64


def bank(code: str, plant: dict[str, float] | None = None) -> dict[str, Any]:
    """An ADC bank of one channel (GPIO 36) on the given parameters, noise off."""
    p = {"adc_noise_lsb": 0.0, **(plant or {})}
    prelude = textwrap.dedent(
        f"""
        import json
        from sim.models import params, rng
        from sim.models.adc import AdcBank
        _BIAS = 0x1000000  # sim/models/adc.py: the stored codes' bias
        b = AdcBank(params.make({p!r}), rng.Rng(1), (36,))
        ch = b.channels[36]
        def read(uv):
            b.set_uv(0, uv)
            b.convert()
            return b.code[0], ch.read_uv()
        out = {{}}
        """
    )
    return run_mpy(prelude + textwrap.dedent(code) + "\nprint(json.dumps(out))\n")


@pytest.mark.parametrize("vref", [1000, 1100, 1163, 1200])
def test_every_code_reads_what_esp_idf_computes(vref: int) -> None:
    out = bank(
        """
        got = []
        for r in range(4096):
            b._base_q8[0] = _BIAS + r * 256 + 128
            b.convert()
            got.append(ch.read_uv())
        out["uv"] = got
        """,
        {"adc_vref_mv": float(vref)},
    )
    assert out["uv"] == [idf_mv(r, vref) * 1000 for r in range(4096)]


def test_zero_volts_reads_the_offset_and_the_top_is_flat() -> None:
    out = bank(
        """
        out["low"] = [read(uv) for uv in (0, 50000, 100000, 140000)]
        out["top"] = [read(uv) for uv in (3150000, 3300000, 5000000)]
        out["mid"] = read(1500000)
        """
    )
    assert out["low"] == [[0, 142000]] * 4  # the calibration's offset, whatever is below it
    assert out["top"] == [[4095, 3134000]] * 3  # saturated: Vref 1100's top
    assert out["mid"][1] == 1500000  # a nominal unit reads true in the linear range


@pytest.mark.parametrize(("off", "gain"), [(20000, 20000), (-20000, -20000), (7000, -15000)])
def test_a_units_residual_offset_and_gain_shift_the_linear_range(off: int, gain: int) -> None:
    out = bank(
        'out["r"] = [read(uv)[1] for uv in (300000, 1000000, 2000000)]',
        {"adc_offset_uv": float(off), "adc_gain_ppm": float(gain)},
    )
    for uv, got in zip((300000, 1000000, 2000000), out["r"], strict=True):
        assert abs(got - (uv * (1e6 + gain) / 1e6 + off)) <= 2000  # the code and the mV


def test_a_chip_without_calibration_data_raises_like_the_port() -> None:
    out = bank(
        """
        b.set_uv(0, 1000000)
        b.convert()
        for k in range(2):
            try:
                ch.read_uv()
                out["raised%d" % k] = None
            except OSError as e:
                out["raised%d" % k] = list(e.args)
        out["u16"] = ch.read_u16()
        """,
        {"adc_cal": 0.0},
    )
    assert out["raised0"] == out["raised1"] == [-258, "ESP_ERR_INVALID_ARG"]
    assert out["u16"] > 0  # raw reads need no calibration


def test_a_flash_write_holds_the_timer_back_and_its_lost_periods_stay_lost() -> None:
    out = mpy(
        """
        seen = []
        t = machine.Timer(0)
        t.init(mode=machine.Timer.PERIODIC, period=10, callback=lambda t: seen.append(K.now_us))
        time.sleep_ms(25)
        K.stall(45000)  # a sector erase, at 25 ms
        out["at_stall_end"] = list(seen)
        time.sleep_ms(30)
        out["seen"] = seen
        """
    )
    assert out["at_stall_end"] == [10000, 20000, 70000]  # the 30-60 ms alarms: one, late
    assert out["seen"] == [10000, 20000, 70000, 80000, 90000]  # the phase kept


def test_a_short_write_delays_the_step_by_its_length() -> None:
    out = mpy(
        """
        seen = []
        t = machine.Timer(0)
        t.init(mode=machine.Timer.PERIODIC, period=10, callback=lambda t: seen.append(K.now_us))
        time.sleep_ms(8)
        K.stall(3000)  # a page program at 8 ms, past the alarm at 10 ms
        time.sleep_ms(20)
        out["seen"] = seen
        """
    )
    assert out["seen"] == [11000, 20000, 30000]


def test_the_console_ring_keeps_259_bytes_a_pass_and_drops_the_rest() -> None:
    argv_input = b"a" * 250 + b"b" * 50 + b"\n"
    out = run_mpy(
        textwrap.dedent(
            """
            import json
            from sim.mpapi import vstdin, vtime
            import console
            vstdin.install(console)
            p = console.select.poll()
            p.register(console.sys.stdin, 1)
            out = {"first": len(console.sys.stdin.buffer.read())}
            vtime.naps += 1  # a main-loop pass
            p.poll(0)
            got = console.sys.stdin.buffer.read()
            out["got"], out["lost"] = len(got), vstdin.lost
            out["tail"] = got[-3:].decode()
            print(json.dumps(out))
            """
        ),
        stdin=argv_input,
    )
    assert out["first"] == 0
    assert (out["got"], out["lost"]) == (259, 301 - 259)
    assert out["tail"] == "bbb"


@pytest.mark.parametrize(("minor", "energy"), [(25, True), (26, False)])
def test_pwm_starts_at_half_duty_before_micropython_1_26(minor: int, energy: bool) -> None:
    """The load switch left on (a soft reset keeps pins), then a PWM made
    with duty 0: before 1.26 the heater gets a pulse at 50 %."""
    out = mpy(
        f"""
        import board
        from sim.models import params, rng
        from sim.plant import Plant
        K.plant = Plant(params.make(), rng.Rng(1))
        machine.MP_MINOR = {minor}
        machine.Pin(board.PIN_HEATER_EN, machine.Pin.OUT, value=1)
        e0 = K.plant.energy_pj
        machine.PWM(machine.Pin(board.PIN_HEATER_PWM), freq=20000, duty_u16=0)
        time.sleep_ms(10)
        out["energy_uj"] = (K.plant.energy_pj - e0) // 1000000
        """
    )
    assert (out["energy_uj"] > 0) == energy


def test_the_firmware_drives_the_load_switch_low_before_it_makes_the_pwm() -> None:
    """The same board state (1.25, the load switch left on): the firmware's
    heater driver turns the switch off first, so no pulse reaches the blade."""
    out = mpy(
        """
        import board, sys
        from sim.models import params, rng
        from sim.plant import Plant
        K.plant = Plant(params.make(), rng.Rng(1))
        machine.MP_MINOR = 25
        sys.modules["machine"] = machine
        sys.modules["time"] = time
        machine.Pin(board.PIN_HEATER_EN, machine.Pin.OUT, value=1)
        e0 = K.plant.energy_pj
        import calib, profiles, telemetry
        from heater_ctl import HeaterControl
        class Log:
            def record(self, *a):
                pass
        tele = telemetry.Telemetry(out=bytearray())
        HeaterControl(calib.load(), profiles.Profile("standard"), tele, Log())
        time.sleep_ms(10)
        out["energy_uj"] = (K.plant.energy_pj - e0) // 1000000
        """
    )
    assert out["energy_uj"] == 0

"""The `machine` module for the simulator: the ESP32 port's names and argument
conventions, backed by the plant (through sim.mpapi.wiring) and the virtual clock.

Only what the firmware uses, plus what a reader would expect next to it.
Installed as sys.modules["machine"] before the firmware is imported.
"""

from binascii import unhexlify

import micropython

from sim.kernel import K, Kernel, SimEnd
from sim.mpapi import wiring

_N_GPIO = 40  # ESP32: GPIO 0..39
# machine.unique_id() in hex: on the ESP32 the base MAC (ports/esp32/modmachine.c,
# esp_efuse_mac_get_default); this one has Espressif's prefix. A unit's
# calibration record names it (firmware/calib.py).
UNIT_ID = "240ac4000001"
_levels = bytearray(_N_GPIO)  # each GPIO's level, as an output or the pull left it
_outs = bytearray(b"\xff" * _N_GPIO)  # the plant signal each drives (wiring.OUTPUTS), 255: none


def reset_pins():
    """Power-on: every GPIO an input again, its level gone."""
    for i in range(_N_GPIO):
        _levels[i] = 0


class Pin:
    """A GPIO. Like the ESP32's, the state belongs to the pin, not to the
    object: Pin(5) twice is the same GPIO, and an object costs the firmware
    no more than it would on the chip."""

    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        if not 0 <= id < _N_GPIO:
            raise ValueError("invalid pin")
        self.id = id
        out = wiring.output_for(K.plant, id)
        _outs[id] = 255 if out < 0 else out
        read = wiring.input_for(K.plant, id)
        if read is not None:
            self.value = read  # a wired input reads the plant directly (one call, not two)
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        if pull != -1:
            _levels[self.id] = 1 if pull == Pin.PULL_UP else 0
        if value is not None:
            self.value(value)

    def value(self, v=None):
        i = self.id
        if v is None:
            return _levels[i]
        v = 1 if v else 0
        _levels[i] = v
        k = _outs[i]
        if k != 255:
            K.plant.set_out(k, v)

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


MP_MINOR = 28  # the board's MicroPython 1.x (sim/run.py sets it from the board's parameters)
_LEDC_CONFIG_US = 100  # E: the C calls between configuring a channel and its duty taking effect


class PWM:
    """machine.PWM as ports/esp32/machine_pwm.c has it: with no duty given,
    50 %. Before MicroPython 1.26 a new channel was configured at 50 % and
    the requested duty applied after (configure_channel, then set_duty_*):
    the pin runs at 50 % for the configuration and up to a PWM period (LEDC
    latches a duty at the period's end). From 1.26 the channel starts at its
    duty (apply_duty)."""

    def __init__(self, dest, *, freq=5000, duty_u16=None, duty_ns=None, invert=False):
        self._freq = freq
        self._duty = 32768
        self._sink = wiring.pwm_for(K.plant, dest.id if isinstance(dest, Pin) else dest)  # has a duty_u16
        if MP_MINOR < 26 and self._sink is not None:
            self._sink.duty_u16 = 32768
            K.stall(_LEDC_CONFIG_US + 1000000 // freq)
        self.duty_u16(duty_u16 if duty_u16 is not None else 32768)

    def freq(self, value=None):
        if value is None:
            return self._freq
        self._freq = value

    @micropython.native
    def duty_u16(self, value=None):
        if value is None:
            return self._duty
        if not 0 <= value <= 65535:
            raise ValueError("duty must be 0-65535")
        self._duty = value
        if self._sink is not None:
            self._sink.duty_u16 = value

    def deinit(self):
        self.duty_u16(0)


# ADC-capable GPIOs of the ESP32: ADC1 32-39, ADC2 0, 2, 4, 12-15, 25-27
# (ports/esp32/machine_adc.c, madc_obj[]): any other pin is a ValueError
_ADC_PINS = (36, 37, 38, 39, 32, 33, 34, 35, 4, 0, 2, 15, 13, 12, 14, 27, 25, 26)


class ADC:
    """machine.ADC as ports/esp32/machine_adc.c has it: 11 dB unless told
    otherwise, read_uv() through the calibration (sim/models/adc.py), raw
    read_u16(). Only 11 dB is modelled: a wired input at another attenuation
    is refused rather than read on a curve nobody checked."""

    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_12BIT = 12

    def __init__(self, pin, *, atten=ATTN_11DB):
        pid = pin.id if isinstance(pin, Pin) else pin
        if pid not in _ADC_PINS:
            raise ValueError("invalid pin")
        ch = wiring.adc_for(K.plant, pid)
        if ch is not None:  # a wired channel converts in the plant (one call, not two)
            if atten != ADC.ATTN_11DB:
                raise ValueError("the simulator models the ADC at 11 dB only")
            self.read_uv = ch.read_uv
            self.read_u16 = ch.read_u16

    def atten(self, value):
        if value != ADC.ATTN_11DB:
            raise ValueError("the simulator models the ADC at 11 dB only")

    def read_uv(self):
        return 142000  # an unconnected input, grounded: a raw 0 (sim/models/adc.py)

    def read_u16(self):
        return 0


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id, *args, **kwargs):
        self.id = id
        self.due_us = 0
        self.period_us = 0
        self.callback = None
        if args or kwargs:
            self.init(*args, **kwargs)

    def init(self, *, mode=PERIODIC, period=-1, freq=-1, callback=None):
        if freq > 0:
            period_us = 1000000 // freq
        elif period > 0:
            period_us = period * 1000
        else:
            raise ValueError("period or freq required")
        self.period_us = period_us if mode == Timer.PERIODIC else 0
        self.due_us = K.now_us + period_us
        self.callback = callback
        K.add_timer(self)  # also re-sorts when a running timer is re-initialised

    def deinit(self):
        K.remove_timer(self)

    def value(self):
        return max(0, (self.due_us - K.now_us) // 1000)


_feed_wdt = Kernel.feed_wdt  # through the class: see sim/mpapi/vtime.py


class WDT:
    def __init__(self, id=0, timeout=5000):
        K.wdt_timeout_us = timeout * 1000
        K.feed_wdt()

    @micropython.native
    def feed(self):
        _feed_wdt(K)


def idle():
    K.run_until(K.next_due())


def lightsleep(ms=None):
    K.run_until(K.next_due() if ms is None else K.now_us + ms * 1000)


def reset():
    raise SimEnd("machine_reset")


soft_reset = reset


def freq(hz=None):
    return 240000000


def unique_id():
    return unhexlify(UNIT_ID)


def reset_cause():
    return 1  # PWRON_RESET


def disable_irq():
    return 0


def enable_irq(state=0):
    pass

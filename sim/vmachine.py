"""The `machine` module for the simulator: the ESP32 port's names and argument
conventions, backed by the plant (through sim.wiring) and the virtual clock.

Only what the firmware uses, plus what a reader would expect next to it.
Installed as sys.modules["machine"] before the firmware is imported.
"""

import micropython
from sim import wiring
from sim.kernel import K, SimEnd


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self.id = id
        self._level = 0
        self._read = None
        self._write = None
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        if mode != -1:
            self.mode = mode
        if pull != -1:
            self.pull = pull
            self._level = 1 if pull == Pin.PULL_UP else 0
        self._read = wiring.input_for(K.plant, self.id)
        self._write = wiring.output_for(K.plant, self.id)
        if self._read is not None:
            self.value = self._read  # a wired input reads the plant directly (one call, not two)
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if self._read is not None:
                return self._read()
            return self._level
        self._level = 1 if v else 0
        if self._write is not None:
            self._write(self._level)

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class PWM:
    def __init__(self, dest, *, freq=5000, duty_u16=None, duty_ns=None, invert=False):
        self._pin = dest if isinstance(dest, Pin) else Pin(dest)
        self._freq = freq
        self._duty = 0
        self._sink = wiring.pwm_for(K.plant, self._pin.id)  # object with a duty_u16 attribute
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

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


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_12BIT = 3

    def __init__(self, pin, *, atten=ATTN_0DB):
        self._pin = pin if isinstance(pin, Pin) else Pin(pin)
        self._atten = atten
        ch = wiring.adc_for(K.plant, self._pin.id)
        if ch is not None:  # a wired channel converts in the plant (one call, not two)
            self.read_uv = ch.read_uv
            self.read_u16 = ch.read_u16

    def atten(self, value):
        self._atten = value

    def read_uv(self):
        return 0  # an unconnected input

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


class WDT:
    def __init__(self, id=0, timeout=5000):
        K.wdt_timeout_us = timeout * 1000
        K.feed_wdt()

    def feed(self):
        K.feed_wdt()


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
    return b"\x24\x0a\xc4\x00\x00\x01"


def reset_cause():
    return 1  # PWRON_RESET


def disable_irq():
    return 0


def enable_irq(state=0):
    pass

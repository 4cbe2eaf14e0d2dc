"""The `machine` module on a board without heater hardware, in real time
(processor in the loop on an ESP32).

The board's own Timer, WDT, reset and the rest are the real ones; the pins of
board.py that lead to the heater stage, the button, the stick detector, the
LEDs and the ADC inputs are wired (sim.mpapi.wiring) to the plant models instead.
The plant lives on the wall clock: whenever the firmware touches a wired pin,
RtClock integrates it up to the present and fires the scenario events that
have come due. Installed as sys.modules["machine"] by sim/pil.py at boot.
"""

import micropython
import umachine
import utime

from sim.mpapi import wiring

_MIN_STEP_US = 500  # the five ADC reads of a control step share one integration

_clock = None  # RtClock, set by install()


class RtClock:
    """Run time in us since boot, kept by summing tick differences (the
    30-bit ticks wrap every 17.9 min; a session is longer than half that)."""

    def __init__(self, plant, events, sample_us=0, sampler=None):
        self.plant = plant
        self.events = events  # [(t_us, fn, arg)], sorted
        self._i = 0
        self.now_us = 0
        self._last = utime.ticks_us()
        self.sampler = sampler
        self.sample_period_us = sample_us
        self._next_sample_us = 0 if sample_us > 0 else -1

    def set_sampler(self, fn, period_us):
        self.sampler = fn
        self.sample_period_us = period_us
        self._next_sample_us = self.now_us if period_us > 0 else -1

    @micropython.native
    def sync(self):
        t = utime.ticks_us()
        dt = utime.ticks_diff(t, self._last)
        now = self.now_us + dt
        ev = self.events
        if dt < _MIN_STEP_US and (self._i >= len(ev) or ev[self._i][0] > now):
            return
        self._last = t
        while self._i < len(ev) and ev[self._i][0] <= now:
            t_ev, fn, arg = ev[self._i]
            self._i += 1
            if t_ev > self.now_us:
                self.plant.advance(t_ev - self.now_us)
                self.now_us = t_ev
            fn(arg)
        if now > self.now_us:
            self.plant.advance(now - self.now_us)
            self.now_us = now
        if 0 <= self._next_sample_us <= now:
            self._next_sample_us = now + self.sample_period_us
            self.sampler(now)


def install(clock):
    global _clock
    _clock = clock


class Pin:
    IN = umachine.Pin.IN
    OUT = umachine.Pin.OUT
    OPEN_DRAIN = umachine.Pin.OPEN_DRAIN
    PULL_UP = umachine.Pin.PULL_UP
    PULL_DOWN = umachine.Pin.PULL_DOWN
    IRQ_RISING = umachine.Pin.IRQ_RISING
    IRQ_FALLING = umachine.Pin.IRQ_FALLING

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self.id = id
        plant = _clock.plant
        self._read = wiring.input_for(plant, id)
        self._out = wiring.output_for(plant, id)  # the plant signal it drives, -1: none
        self._level = 1 if pull == Pin.PULL_UP else 0
        self._hw = None
        if self._read is None and self._out < 0:
            self._hw = umachine.Pin(id, mode, pull) if pull != -1 else umachine.Pin(id, mode)
        if value is not None:
            self.value(value)

    def init(self, mode=-1, pull=-1, *, value=None):
        if self._hw is not None:
            self._hw.init(mode, pull)
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if self._read is not None:
                _clock.sync()
                return self._read()
            if self._hw is not None:
                return self._hw.value()
            return self._level
        self._level = 1 if v else 0
        if self._out >= 0:
            _clock.sync()
            _clock.plant.set_out(self._out, self._level)
        elif self._hw is not None:
            self._hw.value(self._level)

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
        self._sink = wiring.pwm_for(_clock.plant, self._pin.id)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def freq(self, value=None):
        if value is None:
            return self._freq
        self._freq = value

    def duty_u16(self, value=None):
        if value is None:
            return self._duty
        if not 0 <= value <= 65535:
            raise ValueError("duty must be 0-65535")
        if self._sink is not None:
            _clock.sync()  # the old duty up to now, the new one from now on
            self._sink.duty_u16 = value
        self._duty = value

    def deinit(self):
        self.duty_u16(0)


class ADC:
    ATTN_0DB = umachine.ADC.ATTN_0DB
    ATTN_2_5DB = umachine.ADC.ATTN_2_5DB
    ATTN_6DB = umachine.ADC.ATTN_6DB
    ATTN_11DB = umachine.ADC.ATTN_11DB

    def __init__(self, pin, *, atten=ATTN_0DB):
        self._pin = pin if isinstance(pin, Pin) else Pin(pin)
        self._ch = wiring.adc_for(_clock.plant, self._pin.id)

    def atten(self, value):
        pass

    def read_uv(self):
        if self._ch is None:
            return 0
        _clock.sync()
        return self._ch.read_uv()

    def read_u16(self):
        if self._ch is None:
            return 0
        _clock.sync()
        return self._ch.read_u16()


Timer = umachine.Timer
WDT = umachine.WDT
reset = umachine.reset
soft_reset = umachine.soft_reset
freq = umachine.freq
unique_id = umachine.unique_id
reset_cause = umachine.reset_cause
idle = umachine.idle
lightsleep = umachine.lightsleep
disable_irq = umachine.disable_irq
enable_irq = umachine.enable_irq

"""Stub hardware for timing the control step on the unix port (MicroPython).

The smallest objects with the API the firmware's control step calls: an ADC
returns the microvolts set for its pin, an input Pin the level set for it,
PWM and output pins remember what they are told. Their cost (a bytecode
method call each) is measured separately and reported beside the step time.
"""


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 1
    level_by_pin = {}  # input pin -> level it reads, set by the bench

    def __init__(self, pin_id, mode=-1, pull=-1, value=None):
        self.id = pin_id
        self.v = value if value is not None else Pin.level_by_pin.get(pin_id, 0)

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


class ADC:
    ATTN_11DB = 3
    uv_by_pin = {}  # pin -> microvolts, set by the bench before it builds the controller

    def __init__(self, pin, atten=0):
        self.uv = ADC.uv_by_pin.get(pin.id, 0)

    def read_uv(self):
        return self.uv


class PWM:
    def __init__(self, pin, freq=0, duty_u16=0):
        self.duty = duty_u16

    def duty_u16(self, d=None):
        if d is None:
            return self.duty
        self.duty = d


class Timer:
    PERIODIC = 1

    def __init__(self, timer_id):
        pass

    def init(self, mode=1, period=0, callback=None):
        pass

    def deinit(self):
        pass

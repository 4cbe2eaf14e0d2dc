"""Indications: the holder's vibration patterns and two LEDs, played without
blocking from the main loop, and the charger's four level LEDs."""

import time

import board
from machine import Pin

# vibration patterns: (on_ms, off_ms) pairs
BUZZ_ONCE = ((250, 0),)
BUZZ_TWICE = ((200, 150), (200, 0))
BUZZ_LONG = ((800, 0),)

# LED modes
LED_OFF = 0
LED_ON = 1
LED_BLINK_SLOW = 2  # 1 Hz
LED_BLINK_FAST = 3  # 4 Hz


class Indicator:
    def __init__(self):
        self.motor = Pin(board.PIN_VIBRATION, Pin.OUT, value=0)
        self.led = Pin(board.PIN_LED_STATUS, Pin.OUT, value=0)
        self.led_fault = Pin(board.PIN_LED_FAULT, Pin.OUT, value=0)
        self.bat = [Pin(p, Pin.OUT, value=0) for p in (board.PIN_LED_BAT1, board.PIN_LED_BAT2,
                                                         board.PIN_LED_BAT3, board.PIN_LED_BAT4)]  # fmt: skip
        self.bat_bits = 0
        self._pattern = ()
        self._i = 0
        self._phase_end = 0
        self._on = False
        self.led_mode = LED_OFF
        self.fault_mode = LED_OFF
        self._led_level = 0
        self._fault_level = 0

    def vibrate(self, pattern, now_ms):
        self._pattern = pattern
        self._i = 0
        self._on = True
        self._phase_end = time.ticks_add(now_ms, pattern[0][0])
        self.motor.value(1)

    def bat_leds(self, bits):
        """The charger's four level LEDs, bit 0 the bottom one."""
        self.bat_bits = bits
        for k in range(4):
            self.bat[k].value(bits >> k & 1)

    def service(self, now_ms):
        if self._pattern and time.ticks_diff(now_ms, self._phase_end) >= 0:
            on_ms, off_ms = self._pattern[self._i]
            if self._on and off_ms:
                self._on = False
                self.motor.value(0)
                self._phase_end = time.ticks_add(now_ms, off_ms)
            else:
                self._i += 1
                if self._i < len(self._pattern):
                    self._on = True
                    self.motor.value(1)
                    self._phase_end = time.ticks_add(now_ms, self._pattern[self._i][0])
                else:
                    self._pattern = ()
                    self.motor.value(0)
        level = _led_level(self.led_mode, now_ms)
        if level != self._led_level:
            self._led_level = level
            self.led.value(level)
        level = _led_level(self.fault_mode, now_ms)
        if level != self._fault_level:
            self._fault_level = level
            self.led_fault.value(level)


def _led_level(mode, now_ms):
    if mode == LED_ON:
        return 1
    if mode == LED_BLINK_SLOW:
        return (now_ms // 500) & 1
    if mode == LED_BLINK_FAST:
        return (now_ms // 125) & 1
    return 0

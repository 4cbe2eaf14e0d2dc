"""Indications: the holder's vibration patterns and two LEDs, played without
blocking from the main loop, and the charger's four level LEDs.

Vibrations the user may turn off (the haptics mask, set over BLE) go through
buzz(); "find my device" pulses the motor until stopped or its time is up;
the holder LED blinks fast while the BLE pairing window is open."""

import time

import board
from machine import Pin

# vibration patterns: (on_ms, off_ms) pairs
BUZZ_ONCE = ((250, 0),)
BUZZ_TWICE = ((200, 150), (200, 0))
BUZZ_LONG = ((800, 0),)
FIND_PULSE = ((500, 500),)

# the haptics mask: which vibrations buzz() plays
HAPTIC_START = 0x01  # heating start
HAPTIC_READY = 0x02
HAPTIC_END_WARNING = 0x04
HAPTIC_REFUSAL = 0x08
HAPTICS_ALL = 0x0F

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
        self.haptics = HAPTICS_ALL
        self.intensity = 100  # %: the reference board's motor is on/off, 0 silences buzz()
        self.pairing = False  # the holder LED blinks fast
        self._find_until = 0
        self.finding = False

    def vibrate(self, pattern, now_ms):
        self._pattern = pattern
        self._i = 0
        self._on = True
        self._phase_end = time.ticks_add(now_ms, pattern[0][0])
        self.motor.value(1)

    def buzz(self, bit, pattern, now_ms):
        """A vibration the haptics mask may have turned off."""
        if self.haptics & bit and self.intensity:
            self.vibrate(pattern, now_ms)

    def find(self, ms, now_ms):
        """Pulse 500 ms on / 500 ms off for ms; 0 stops."""
        if ms > 0:
            self._find_until = time.ticks_add(now_ms, ms)
            self.finding = True
            self.vibrate(FIND_PULSE, now_ms)
        elif self.finding:
            self.finding = False
            if self._pattern is FIND_PULSE:
                self._pattern = ()
                self.motor.value(0)

    def find_left_ms(self, now_ms):
        if not self.finding:
            return 0
        return max(0, time.ticks_diff(self._find_until, now_ms))

    def bat_leds(self, bits):
        """The charger's four level LEDs, bit 0 the bottom one."""
        self.bat_bits = bits
        for k in range(4):
            self.bat[k].value(bits >> k & 1)

    def service(self, now_ms):
        if self._pattern and time.ticks_diff(now_ms, self._phase_end) >= 0:
            _on_ms, off_ms = self._pattern[self._i]
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
                elif self.finding and time.ticks_diff(self._find_until, now_ms) > 0:
                    self.vibrate(FIND_PULSE, now_ms)  # again, or after another pattern
                else:
                    self.finding = False
                    self._pattern = ()
                    self.motor.value(0)
        level = _led_level(LED_BLINK_FAST if self.pairing else self.led_mode, now_ms)
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

"""Device state machine on the main loop: button gestures in, indications out.

Time-critical transitions (ready, end warning, session end, faults) happen in
the control step (heater_ctl); this module turns user actions into requests
and state changes into vibrations and LEDs.
"""

import time

import indicator
import states
from micropython import const

HOLD_START_MS = const(1000)  # press and hold to start (accidental-activation guard)
_DEBOUNCE_MS = const(30)


class Device:
    def __init__(self, heater, ind):
        self.heater = heater
        self.ind = ind
        self._pressed = False
        self._press_ms = 0
        self._held_fired = False
        self._raw = 1
        self._raw_ms = 0
        self._state = states.SLEEP
        self._ready = False
        self._refusals_seen = 0

    def service(self, now_ms):
        self._button(now_ms)
        self._follow_state(now_ms)
        self.ind.service(now_ms)

    # --- button --------------------------------------------------------------
    def _button(self, now_ms):
        raw = self.heater.button.value()
        if raw != self._raw:
            self._raw = raw
            self._raw_ms = now_ms
            return
        if time.ticks_diff(now_ms, self._raw_ms) < _DEBOUNCE_MS:
            return
        pressed = raw == 0
        if pressed and not self._pressed:
            self._pressed = True
            self._press_ms = now_ms
            self._held_fired = False
        elif pressed and not self._held_fired and time.ticks_diff(now_ms, self._press_ms) >= HOLD_START_MS:
            self._held_fired = True
            self._on_hold()
        elif not pressed and self._pressed:
            self._pressed = False
            if not self._held_fired:
                self._on_click()

    def _on_hold(self):
        state = self.heater.state
        if state == states.SLEEP or state == states.COOLING:
            self.heater.request_start()
        elif state in (states.PREHEAT, states.HEATING, states.END_WARNING):
            self.heater.request_stop()

    def _on_click(self):
        if self.heater.state == states.FAULT:
            self.heater.request_clear_fault()

    # --- indications -------------------------------------------------------------
    def _follow_state(self, now_ms):
        h = self.heater
        state = h.state
        ind = self.ind
        if h.refusals != self._refusals_seen:
            self._refusals_seen = h.refusals
            ind.vibrate(indicator.BUZZ_LONG, now_ms)
            ind.fault_mode = indicator.LED_BLINK_FAST
        if state == self._state and h.ready == self._ready:
            return
        prev = self._state
        self._state = state
        if h.ready and not self._ready:
            ind.vibrate(indicator.BUZZ_TWICE, now_ms)
        self._ready = h.ready
        if state == states.PREHEAT and prev != states.PREHEAT:
            ind.vibrate(indicator.BUZZ_ONCE, now_ms)
        elif state == states.END_WARNING:
            ind.vibrate(indicator.BUZZ_TWICE, now_ms)
        ind.led_mode = _LED_FOR_STATE[state]
        ind.fault_mode = indicator.LED_BLINK_FAST if state == states.FAULT else indicator.LED_OFF


_LED_FOR_STATE = (
    indicator.LED_OFF,  # sleep
    indicator.LED_BLINK_SLOW,  # preheat
    indicator.LED_ON,  # heating
    indicator.LED_BLINK_SLOW,  # end warning
    indicator.LED_OFF,  # cooling
    indicator.LED_OFF,  # fault (red LED blinks)
)

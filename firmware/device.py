"""Device state machine on the main loop: button gestures in, the kit's state
and its indications out.

Time-critical transitions (ready, end warning, session end, faults) happen in
the control step (heater_ctl); charging decisions in charger.py. This module
turns user actions into requests, and the holder's and the charger's states
into the kit's state (KIT_NAMES, docs/power.md), vibrations and LEDs.

Gestures: holder button held 1 s starts (or stops) a session, a click
clears a fault, a triple click (three clicks, each released within 600 ms
of the one before) confirms a pending clear of the BLE registration;
charger button click shows the charge level, a double click (two clicks,
the second released within 600 ms of the first) opens the BLE pairing
window, held 4 s switches the charger off or on (on release), held 10 s
resets the device.

A start from the holder button passes the user's gate first (usage.py: the
lock, the daily limit); a refusal vibrates BUZZ_LONG and is reported as the
console event "refused locked" / "refused limit".
"""

import time

import indicator
from charge_loop import FAULT as CHG_FAULT
from micropython import const
from states import COOLING, END_WARNING, FAULT, HEATING, PREHEAT, SLEEP

HOLD_START_MS = const(1000)  # press and hold to start (accidental-activation guard)
HOLD_ONOFF_MS = const(4000)
HOLD_RESET_MS = const(10000)
_DEBOUNCE_MS = const(30)
_SHOW_MS = const(5000)  # charger level shown after a click, docking or undocking
_READY_MS = const(30000)  # holder out and charged: ready this long, then asleep
_REFUSED_MS = const(3000)
_DOUBLE_CLICK_MS = const(600)

# the kit as a whole, holder and charger (docs/power.md)
_KIT_SLEEP = const(0)  # holder out of the charger, idle
_KIT_DOCKED = const(1)  # holder in the charger, nothing to charge
_KIT_CHARGING = const(2)  # the holder in the dock, or the charger from USB
_KIT_READY = const(3)  # holder out, charged for a session, just woken
_KIT_IN_SESSION = const(4)
_KIT_COOLING = const(5)
_KIT_FAULT = const(6)
_KIT_OFF = const(7)  # charger switched off (button, 4 s)
KIT_NAMES = ("sleep", "docked", "charging", "ready", "in_session", "cooling", "fault", "off")


class Button:
    """Debounced button to GND: poll() returns 1 on press, 2 on release."""

    def __init__(self, pin):
        self.pin = pin
        self._raw = 1
        self._raw_ms = 0
        self.pressed = False
        self.press_ms = 0
        self.fired = False  # the hold action ran during this press

    def poll(self, now_ms):
        raw = self.pin.value()
        if raw == self._raw:
            if (raw == 0) == self.pressed or time.ticks_diff(now_ms, self._raw_ms) < _DEBOUNCE_MS:
                return 0  # steady (the usual case), or still bouncing
            self.pressed = raw == 0
            if self.pressed:
                self.press_ms = now_ms
                self.fired = False
                return 1
            return 2
        self._raw = raw
        self._raw_ms = now_ms
        return 0

    def held_ms(self, now_ms):
        return time.ticks_diff(now_ms, self.press_ms) if self.pressed else 0


class Device:
    def __init__(self, heater, ind, power=None, charger_button=None, reset=None):
        self.heater = heater
        self.ind = ind
        self.power = power
        self.button = Button(heater.button)
        self.cbutton = Button(charger_button) if charger_button is not None else None
        self._reset = reset
        self.kit = _KIT_SLEEP
        self._state = SLEEP
        self._ready = False
        self._refusals_seen = 0
        now = time.ticks_ms()  # deadlines start in the past (ticks wrap: 0 need not be)
        self._refused_until = now
        self._show_until = now
        self._ready_until = now
        self._docked = False
        self._bat = -1
        self._click_ms = time.ticks_add(now, -10 * _DOUBLE_CLICK_MS)  # the charger button's last click
        self._hclick_ms = self._click_ms  # the holder button's last click
        self._hclicks = 0  # clicks of the holder button in a row
        # hooks (app.py): the start gate (-> reason or None), console events,
        # the holder button's triple click and the charger button's double click
        self.gate = None
        self.event = None
        self.on_triple_click = None
        self.on_double_click = None

    def service(self, now_ms):
        # the usual pass (no button, nothing new) is kept to small frames:
        # MicroPython puts a large function's frame on the heap at each call
        b = self.button
        ev = b.poll(now_ms)
        if ev or b.pressed:
            self._holder_button(ev, now_ms)
        c = self.cbutton
        if c is not None:
            ev = c.poll(now_ms)
            if ev or c.pressed:
                self._charger_button(ev, now_ms)
        h = self.heater
        if h.state != self._state or h.ready != self._ready or h.refusals != self._refusals_seen:
            self._follow_state(now_ms)
        self.ind.service(now_ms)

    # --- buttons ---------------------------------------------------------------
    def _holder_button(self, ev, now_ms):
        b = self.button
        h = self.heater
        state = h.state
        if b.pressed and not b.fired and b.held_ms(now_ms) >= HOLD_START_MS:
            b.fired = True
            if state == SLEEP or state == COOLING:
                why = self.gate() if self.gate is not None else None
                if why is None:
                    h.request_start()
                else:
                    self._refuse(why, now_ms)
            elif state == PREHEAT or state == HEATING or state == END_WARNING:
                h.request_stop()
        elif ev == 2 and not b.fired:  # a click
            if state == FAULT:
                h.request_clear_fault()
            self._ready_until = time.ticks_add(now_ms, _READY_MS)
            self._holder_clicks(now_ms)

    def _holder_clicks(self, now_ms):
        n = self._hclicks + 1 if time.ticks_diff(now_ms, self._hclick_ms) <= _DOUBLE_CLICK_MS else 1
        self._hclick_ms = now_ms
        self._hclicks = 0 if n >= 3 else n  # a fourth click starts afresh
        if n >= 3 and self.on_triple_click is not None:
            self.on_triple_click(now_ms)

    def _refuse(self, why, now_ms):
        """The user's gate refused a start."""
        ind = self.ind
        ind.buzz(indicator.HAPTIC_REFUSAL, indicator.BUZZ_LONG, now_ms)
        ind.fault_mode = indicator.LED_BLINK_FAST  # for _REFUSED_MS (kit_update)
        self._refused_until = time.ticks_add(now_ms, _REFUSED_MS)
        if self.event is not None:
            self.event("refused " + why)

    def _charger_button(self, ev, now_ms):
        c = self.cbutton
        if c is None:
            return
        held = c.held_ms(now_ms)
        if held >= HOLD_RESET_MS:
            self._reset()
        elif held >= HOLD_ONOFF_MS and not c.fired:
            c.fired = True
            self.ind.vibrate(indicator.BUZZ_ONCE, now_ms)  # the user may let go now
        elif ev == 2:
            if c.fired:
                self.power.on = not self.power.on
            elif time.ticks_diff(now_ms, self._click_ms) <= _DOUBLE_CLICK_MS and self.on_double_click is not None:
                self._click_ms = time.ticks_add(now_ms, -10 * _DOUBLE_CLICK_MS)  # a third click starts afresh
                self.on_double_click(now_ms)
            else:
                self._click_ms = now_ms
            self._show_until = time.ticks_add(now_ms, _SHOW_MS)

    # --- holder indications ----------------------------------------------------
    def _follow_state(self, now_ms):
        h = self.heater
        state = h.state
        ind = self.ind
        if h.refusals != self._refusals_seen:
            self._refusals_seen = h.refusals
            ind.buzz(indicator.HAPTIC_REFUSAL, indicator.BUZZ_LONG, now_ms)
            ind.fault_mode = indicator.LED_BLINK_FAST  # for _REFUSED_MS (kit_update)
            self._refused_until = time.ticks_add(now_ms, _REFUSED_MS)
        if state == self._state and h.ready == self._ready:
            return
        prev = self._state
        self._state = state
        if h.ready and not self._ready:
            ind.buzz(indicator.HAPTIC_READY, indicator.BUZZ_TWICE, now_ms)
        self._ready = h.ready
        if state == PREHEAT and prev != PREHEAT:
            ind.buzz(indicator.HAPTIC_START, indicator.BUZZ_ONCE, now_ms)
        elif state == END_WARNING:
            ind.buzz(indicator.HAPTIC_END_WARNING, indicator.BUZZ_TWICE, now_ms)
        ind.led_mode = _LED_FOR_STATE[state]
        ind.fault_mode = indicator.LED_BLINK_FAST if state == FAULT else indicator.LED_OFF

    # --- the kit --------------------------------------------------------------------
    def kit_update(self, now_ms):
        """At each charger tick: the kit's state, the holder LED outside a
        session, and the charger's four LEDs: a quarter of its charge each,
        shown on USB and for a while after a click or (un)docking; while
        charging, the full quarters lit and the next one blinking; else one LED
        per started quarter; the bottom one blinking when empty; all blinking
        on a charge fault."""
        p = self.power
        ind = self.ind
        state = self.heater.state
        if p.docked != self._docked:
            self._docked = p.docked
            self._show_until = time.ticks_add(now_ms, _SHOW_MS)
            if not p.docked:
                self._ready_until = time.ticks_add(now_ms, _READY_MS)
        chg_fault = p.usb_loop.state == CHG_FAULT or p.hold_loop.state == CHG_FAULT
        usb_charging = p.usb_loop.charging()
        if state == FAULT or chg_fault:
            kit = _KIT_FAULT
        elif PREHEAT <= state <= END_WARNING:
            kit = _KIT_IN_SESSION
        elif state == COOLING:
            kit = _KIT_COOLING
        elif not p.on:
            kit = _KIT_OFF
        elif usb_charging or p.hold_loop.charging():
            kit = _KIT_CHARGING
        elif p.docked:
            kit = _KIT_DOCKED
        elif not p.holder_low and time.ticks_diff(self._ready_until, now_ms) > 0:
            kit = _KIT_READY
        else:
            kit = _KIT_SLEEP
        self.kit = kit
        if state == SLEEP:
            ind.led_mode = (indicator.LED_BLINK_SLOW if kit == _KIT_CHARGING and p.docked
                            else indicator.LED_ON if kit == _KIT_READY else indicator.LED_OFF)  # fmt: skip
        if state != FAULT and ind.fault_mode and time.ticks_diff(self._refused_until, now_ms) <= 0:
            ind.fault_mode = indicator.LED_OFF
        bits = 0
        blink = now_ms // 500 & 1
        if chg_fault:
            bits = 0xF * (now_ms // 250 & 1)
        elif p.on and (p.usb or time.ticks_diff(self._show_until, now_ms) > 0):
            soc = p.chg.soc()
            if usb_charging:
                n = soc // 2500
                bits = (1 << n) - 1 | (blink << n if n < 4 else 0)
            elif p.charger_empty:
                bits = blink
            else:
                bits = (1 << (soc + 2499) // 2500) - 1
        if bits != self._bat:
            self._bat = bits
            ind.bat_leds(bits)


_LED_FOR_STATE = (
    indicator.LED_OFF,  # sleep
    indicator.LED_BLINK_SLOW,  # preheat
    indicator.LED_ON,  # heating
    indicator.LED_BLINK_SLOW,  # end warning
    indicator.LED_OFF,  # cooling
    indicator.LED_OFF,  # fault (red LED blinks)
)

"""Wires the firmware together and runs the main loop.

The control step runs from machine.Timer (heater_ctl); the main loop below
serves everything that may take its time: buttons and indications, the
console, charging and fuel gauges (charger.py), telemetry output, what goes
to flash (counters, the fault log) and the watchdog.

BLE (ble_gatt.py) runs where the port has a `bluetooth` module and the
setting "ble" is on; without it the firmware runs as it always did. Its
work is done at the charger's ticks, never on a main-loop pass of its own.
"""

import gc
import sys
import time

import adccal
import board
import boot_hold
import bootslot
import calib
import faults
import machine
import settings
import states
import store
from charger import Power
from console import Console
from device import KIT_NAMES, Device
from heater_ctl import HeaterControl
from indicator import LED_BLINK_SLOW, LED_OFF, Indicator
from machine import WDT, Pin
from micropython import const
from profiles import Profile
from telemetry import Telemetry
from usage import Usage
from version import FIRMWARE_VERSION

MAIN_PERIOD_MS = const(50)
STEP_STALL_MS = const(40)  # no step in a main-loop pass this long after one: it has stopped (found within 2 passes)
WDT_TIMEOUT_MS = const(2000)

# lifetime counters, on flash: what diagnostics and the phone app report
COUNTERS = "counters"
COUNTER_DEFAULTS = {
    "sessions": 0,
    "puffs": 0,
    "heater_on_s": 0,
    "charge_cycles": 0,  # USB charges of the charger cell that completed
    "holder_charges": 0,
    "boots": 0,
}


class App:
    def __init__(self):
        # MicroPython's heap does not compact: collect the imports' garbage (and
        # the records' parsing below) before each batch of long-lived objects,
        # so they pack into its holes instead of fragmenting fresh memory
        gc.collect()
        self.settings = settings.load()
        self.cal = calib.load()
        self.counters, _ = store.load(COUNTERS, COUNTER_DEFAULTS)
        self.fault_log = faults.FaultLog()
        self.fault_log.load()
        self._faults_saved = self.fault_log.count
        if not self.cal.stored:  # the fail-safe values in use: a fault code, and the red LED below
            self.fault_log.record(faults.CALIB_RECORD, time.ticks_ms(), self.cal.why)
        gc.collect()
        self.tele = Telemetry(ring=self.settings["telemetry"])
        self.tele.enabled = self.settings["telemetry"]
        self.heater = HeaterControl(self.cal, Profile(self.settings["profile"]), self.tele, self.fault_log)
        gc.collect()
        self.console = Console(self)
        self.power = Power(self.heater, self.fault_log, self.console.event)
        self.power.profile = self.settings["profile"]
        self.use_adc_cal(adccal.load())
        charger_button = Pin(board.PIN_CHARGER_BUTTON, Pin.IN, Pin.PULL_UP)
        self.device = Device(self.heater, Indicator(), self.power, charger_button, self.reset)
        self.usage = Usage(self.settings)
        d = self.device
        d.gate = self.usage.refusal
        d.event = self.console.event
        d.ind.haptics = self.settings["haptics"]
        d.ind.notice = LED_OFF if self.cal.stored else LED_BLINK_SLOW
        d.ind.intensity = self.settings["intensity"]
        self.session_ms = 0
        self.upd = None  # an update's main-loop work (update.py, ble_update.py), while there is one
        self.ble = None
        self._ble_error = ""
        if self.settings["ble"]:
            self._start_ble()
        self._state = states.SLEEP
        self._fault = faults.NONE
        self._refusals = 0
        self._kit = -1
        self._done = [0, 0]  # charges completed: USB, holder
        store.hold = self._heating  # no flash write while heating: it stalls the control step
        self._steps = -1  # the control step's count when it last moved, and when (below)
        self._steps_ms = 0
        self._puffs = 0

    def _start_ble(self):
        try:
            import bluetooth  # noqa: F401  the port has it, or there is no BLE
        except ImportError:
            return
        gc.collect()
        try:
            from ble_gatt import Ble

            self.ble = Ble(self)
        except Exception as e:  # the radio failing must not stop the kit
            self._ble_error = "ble error %s" % e
            return
        d = self.device
        d.on_double_click = self.ble.open_pairing
        d.on_triple_click = self.ble.confirm

    def select_profile(self, name):
        self.heater.profile = Profile(name)
        self.power.profile = name
        self.settings["profile"] = name
        settings.save(self.settings)

    def set_telemetry_at_boot(self, on):
        self.settings["telemetry"] = on
        settings.save(self.settings)

    def set_calibration(self, r0_uohm, tcr_ppm):
        """Store a calibration record and use it from the next session on."""
        calib.save(r0_uohm, tcr_ppm)
        self.cal = calib.load()
        self.heater.set_calibration(self.cal)
        self.device.ind.notice = LED_OFF if self.cal.stored else LED_BLINK_SLOW

    def use_adc_cal(self, c):
        """Correct the ADC's readings with calibration c (adccal.py) from now on."""
        self.adc_cal = c
        adccal.use(c)
        self.power.chg_i_zero_uv = c.chg_i_zero_uv

    def _heating(self):
        return states.PREHEAT <= self.heater.state <= states.END_WARNING

    def _arm_watchdog(self):
        """The ADC checked first (adc_boot.py): without it, a fault, not a reset loop."""
        import adc_boot

        bad = adc_boot.check(self.heater)
        wdt = WDT(timeout=WDT_TIMEOUT_MS)
        if bad:
            adc_boot.halt(self, bad, wdt)  # does not return
        del sys.modules["adc_boot"]  # boot only: its code leaves the heap
        return wdt

    def reset(self, hold=False):
        """Heater off, then a hardware reset, as from power-on (every record is
        on flash): the button held 10 s, or the console's `reset`; hold: the
        next boot stays in the REPL."""
        self.console.event("reset")
        self.heater.cut_for_reset()
        if self.ble is not None:
            self.ble.serve_now()  # what a phone wrote before the reset reaches flash
        store.flush()  # and what waited for the heater to be off
        if hold:
            boot_hold.request()
        time.sleep_ms(20)  # lets the UART send the reply before the reset
        machine.reset()

    def run(self):
        c = self.counters
        c["boots"] += 1
        self.console.event(
            "boot heatrig %s profile=%s calibrated=%d r0_uohm=%d tcr_ppm=%d boots=%d sessions=%d puffs=%d"
            % (FIRMWARE_VERSION, self.heater.profile.name, self.cal.stored, self.cal.r0_uohm, self.cal.tcr_ppm,
               c["boots"], c["sessions"], c["puffs"])
        )  # fmt: skip
        if not self.cal.stored:
            self.console.event("calib fail_safe " + calib.NAMES[self.cal.why])
        if self._ble_error:
            self.console.event(self._ble_error)
        self._report_boot_slot()
        for p in store.problems:  # a damaged record: reported, never fatal
            self.console.event("store " + p)
        del store.problems[:]
        wdt = self._arm_watchdog()
        self.heater.start()
        self.power.start()
        store.save(COUNTERS, c)
        while True:
            try:
                self.service(time.ticks_ms())
            except Exception as e:  # keep serving, heater safe
                self.heater.cut_for_fault(faults.SOFTWARE)
                self.console.event("error %s" % e)
            wdt.feed()
            time.sleep_ms(MAIN_PERIOD_MS)

    def service(self, now_ms):
        self._watch_control(now_ms)
        self.device.service(now_ms)
        self.console.poll()
        tick = self.power.service(now_ms)
        if tick:
            self.device.kit_update(now_ms)
            if tick == 2:  # once a second
                self.heater.idle()
                self.usage.tick(now_ms)
                if self.settings["power_telemetry"]:
                    self.power.frame(now_ms, self.device.kit, self.counters["sessions"], self.device.ind.bat_bits)
                if bootslot.trial:
                    self._trial(now_ms)
            if self.ble is not None:
                self.ble.tick(now_ms, tick == 2)
        if self.upd is not None:
            self.upd.service(now_ms)
        self._report_changes(now_ms)
        self.tele.drain()
        if store.waiting() and not self._heating():
            store.flush()

    def _watch_control(self, now_ms):
        """No control step for STEP_STALL_MS while it should run every 10 ms:
        it has stopped. With the heater on, cut it (CONTROL_OVERRUN); either
        way, start the step again. (Time, not passes: a host-stepped clock
        serves the console many times at one instant.)"""
        h = self.heater
        if not h.stepping():
            self._steps = -1
        elif h.steps != self._steps:
            self._steps = h.steps
            self._steps_ms = now_ms
        elif time.ticks_diff(now_ms, self._steps_ms) >= STEP_STALL_MS:
            if states.PREHEAT <= h.state <= states.END_WARNING:
                h.cut_for_fault(faults.CONTROL_OVERRUN)
            h.restart()
            self._steps = -1

    def _report_boot_slot(self):
        """A trial boot after an update, or the rollback of one (bootslot.py)."""
        r = bootslot.record()
        if bootslot.trial:
            self.console.event("update trial %s slot=%s" % (r["ver"], r["slot"] or "-"))
        elif bootslot.rolled_back:
            self.console.event("update rollback from %s: %s" % (r["from"], r["why"]))

    def _trial(self, now_ms):
        import selfcheck

        selfcheck.tick(self, now_ms)

    def _report_changes(self, now_ms):
        h = self.heater
        if (h.state != self._state or h.fault != self._fault or h.refusals != self._refusals
                or self.device.kit != self._kit or self.power.done != self._done
                or self.fault_log.count != self._faults_saved or h.puff_count != self._puffs):  # fmt: skip
            self._report(now_ms)

    def _report(self, now_ms):
        h = self.heater
        c = self.counters
        if h.state != self._state:
            prev = self._state
            self._state = h.state
            msg = "state " + states.NAMES[h.state]
            if h.state == states.COOLING:
                msg += " end=" + states.END_NAMES[h.end_reason]
            self.console.event(msg)
            if h.state == states.PREHEAT:
                self.session_ms = now_ms
                self.usage.started(now_ms)
            elif prev == states.PREHEAT and h.refused == faults.BLADE_WARM:
                self.usage.withdrawn()  # refused at its first reading: it never ran
            elif states.PREHEAT <= prev <= states.END_WARNING and not states.PREHEAT <= h.state <= states.END_WARNING:
                self.console.event("session puffs=%d" % h.puff_count)
                self.usage.ended(h.puff_count)
                c["sessions"] += 1
                c["puffs"] += h.puff_count
                c["heater_on_s"] += time.ticks_diff(now_ms, self.session_ms) // 1000
                store.save(COUNTERS, c)
        if h.puff_count != self._puffs:
            self._puffs = h.puff_count
            if self._puffs:
                self.console.event("puff %d" % self._puffs)
        if h.fault != self._fault:
            self._fault = h.fault
            if h.fault:
                self.console.event("fault " + faults.NAMES[h.fault])
        if h.refusals != self._refusals:
            self._refusals = h.refusals
            self.console.event("refused " + faults.NAMES[h.refused])
        p = self.power
        if p.done != self._done:
            c["charge_cycles"] += p.done[0] - self._done[0]
            c["holder_charges"] += p.done[1] - self._done[1]
            self._done = list(p.done)
            store.save(COUNTERS, c)
        if self.device.kit != self._kit:
            self._kit = self.device.kit
            self.console.event("kit " + KIT_NAMES[self._kit])
        if self.fault_log.count != self._faults_saved:
            self._faults_saved = self.fault_log.count
            self.fault_log.save()

def main():
    App().run()


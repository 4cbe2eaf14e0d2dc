"""Wires the firmware together and runs the main loop.

The control step runs from machine.Timer (heater_ctl); the main loop below
serves everything that may take its time: button and indications, the
console, telemetry output and the watchdog.
"""

import time

import boot_hold
import calib
import faults
import settings
import states
from console import Console
from device import Device
from heater_ctl import HeaterControl
from indicator import Indicator
from machine import WDT, reset
from micropython import const
from profiles import Profile
from telemetry import Telemetry
from version import FIRMWARE_VERSION

MAIN_PERIOD_MS = const(50)
WDT_TIMEOUT_MS = const(2000)


class App:
    def __init__(self):
        self.settings = settings.load()
        self.cal = calib.load()
        self.fault_log = faults.FaultLog()
        self.tele = Telemetry()
        self.tele.enabled = self.settings["telemetry"]
        self.heater = HeaterControl(self.cal, Profile(self.settings["profile"]), self.tele, self.fault_log)
        self.device = Device(self.heater, Indicator())
        self.console = Console(self)
        self._state = states.SLEEP
        self._fault = faults.NONE
        self._refusals = 0

    def select_profile(self, name):
        self.heater.profile = Profile(name)
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

    def reset(self, hold):
        """Heater off, then a hardware reset; hold: the next boot stays in the REPL."""
        self.heater.cut_for_reset()
        if hold:
            boot_hold.request()
        time.sleep_ms(20)  # lets the UART send the reply before the reset
        reset()

    def run(self):
        self.console.event(
            "boot heatrig %s profile=%s calibrated=%d r0_uohm=%d tcr_ppm=%d"
            % (FIRMWARE_VERSION, self.heater.profile.name, self.cal.stored, self.cal.r0_uohm, self.cal.tcr_ppm)
        )
        wdt = WDT(timeout=WDT_TIMEOUT_MS)
        self.heater.start()
        while True:
            try:
                self.service(time.ticks_ms())
            except Exception as e:  # keep serving, heater safe
                self.heater.cut_for_fault(faults.SOFTWARE)
                self.console.event("error %s" % e)
            wdt.feed()
            time.sleep_ms(MAIN_PERIOD_MS)

    def service(self, now_ms):
        self.device.service(now_ms)
        self.console.poll()
        self._report_changes()
        self.tele.drain()

    def _report_changes(self):
        h = self.heater
        if h.state != self._state:
            self._state = h.state
            msg = "state " + states.NAMES[h.state]
            if h.state == states.COOLING:
                msg += " end=" + states.END_NAMES[h.end_reason]
            self.console.event(msg)
        if h.fault != self._fault:
            self._fault = h.fault
            if h.fault:
                self.console.event("fault " + faults.NAMES[h.fault])
        if h.refusals != self._refusals:
            self._refusals = h.refusals
            self.console.event("refused " + faults.NAMES[h.refused])


def main():
    App().run()


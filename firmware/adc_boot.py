"""The ADC checked at boot, before the watchdog is armed (app.py): on the
ESP32 a chip without ADC calibration data in eFuse raises OSError at every
read_uv() (ports/esp32/adc.c, docs/esp32.md); the
firmware must stop with a fault then, not reset every WDT_TIMEOUT_MS.
Loaded for the boot only: app.py drops it from sys.modules afterwards."""

import time

import faults


def check(h):
    """One read of each heater input; "" or why the ADC is unusable. (The
    calibration is per ADC unit and attenuation: every input here is on
    ADC1 at 11 dB, so one failing read means they all fail.)"""
    try:
        for adc in (h.adc_vh, h.adc_ih, h.adc_cell, h.adc_cell_ntc, h.adc_amb_ntc):
            adc.read_uv()
    except OSError as e:
        return "adc check failed: %s (no ADC calibration in eFuse?)" % e
    return ""


def halt(app, why, wdt):
    """No usable ADC: the heater stays off and cannot start; the console and
    the watchdog keep running, so the unit reports its fault."""
    from app import MAIN_PERIOD_MS

    app.heater.cut_for_fault(faults.ADC_IMPLAUSIBLE)
    app.console.event(why)
    while True:
        try:
            app.console.poll()
            app._report_changes(time.ticks_ms())
            app.tele.drain()
        except Exception as e:  # keep serving
            app.console.event("error %s" % e)
        wdt.feed()
        time.sleep_ms(MAIN_PERIOD_MS)

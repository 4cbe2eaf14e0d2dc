"""A HeaterControl built on stub hardware, heating at its set-point (MicroPython).

Shared by step_bench.py (timing) and step_equiv.py (the extract against
the firmware). Import this first: it installs the stub `machine` module.
"""

import sys

import fake_machine

sys.modules["machine"] = fake_machine

import board  # noqa: E402
import ntc  # noqa: E402

# steady heating at the 300 C plateau on a nominal unit: R = 0.8 x (1 + 0.0035 x 280) = 1.584 ohm
HEATER_MV = 3600
HEATER_MA = 2273
CELL_MV = 3900

fake_machine.Pin.level_by_pin = {board.PIN_STICK_DET: 1, board.PIN_BUTTON: 1}

fake_machine.ADC.uv_by_pin = {
    board.PIN_ADC_HEATER_V: HEATER_MV * 1000 // board.HEATER_V_DIV,
    board.PIN_ADC_HEATER_I: HEATER_MA * board.UV_PER_MA,
    board.PIN_ADC_CELL_V: CELL_MV * 1000 // board.CELL_V_DIV,
    board.PIN_ADC_CELL_NTC: ntc.uv_at_c(25),
    board.PIN_ADC_AMBIENT_NTC: ntc.uv_at_c(25),
}

from time import ticks_add, ticks_us  # noqa: E402

import calib  # noqa: E402
import faults  # noqa: E402
import heater_ctl  # noqa: E402
import profiles  # noqa: E402
import states  # noqa: E402
import telemetry  # noqa: E402


class NullOut:
    def write(self, b):
        return len(b)


def heating_controller(r0_uohm=board.CAL_R0_UOHM, tcr_ppm=board.CAL_TCR_PPM):
    """A controller 30 s into a session (the 300 C plateau), ready, with
    telemetry on: every step takes the path of steady heating."""
    tele = telemetry.Telemetry(NullOut())
    tele.enabled = True
    cal = calib.Calibration(r0_uohm, tcr_ppm, True)
    hc = heater_ctl.HeaterControl(cal, profiles.Profile("standard"), tele, faults.FaultLog())
    hc.state = states.HEATING
    hc.ready = True
    hc._en = True
    hc._duty = 20000
    hc._temp_cc = 30000  # measured before: the session's first-sample check is behind it
    hc.cal_check.measured_pm = 1000  # and its cold start's heat-capacity check (cal_check.py)
    hc._amb_uv = fake_machine.ADC.uv_by_pin[board.PIN_ADC_AMBIENT_NTC]
    hc._t0_us = ticks_add(ticks_us(), -30000000)
    return hc

"""Conditions a scenario imposes on the plant rather than a user's actions:
injected faults, ambient and cell temperatures, a cell's charge.

Loaded only by scenarios that use them: the heap the firmware is measured
in is not spent on code a run never calls.
"""

import board

from sim.plant import ADC_PINS, IO_FAULT_INJECTED

_PPM = 1000000
ADC_NAMES = {
    "heater_v": board.PIN_ADC_HEATER_V,
    "heater_i": board.PIN_ADC_HEATER_I,
    "cell_v": board.PIN_ADC_CELL_V,
    "cell_ntc": board.PIN_ADC_CELL_NTC,
    "ambient_ntc": board.PIN_ADC_AMBIENT_NTC,
}


def ambient(plant, temp_c):
    plant.before_change()
    plant.ambient_uc = int(temp_c * _PPM)
    plant.after_change()


def cell_temp(plant, temp_c):
    plant.before_change()
    plant.cell.set_temp(temp_c)
    plant.after_change()


def cell_soc(plant, soc):
    plant.before_change()
    plant.cell.set_soc(soc)
    plant.after_change()


def charger_temp(plant, temp_c):
    plant.before_change()
    plant.chg.cell.set_temp(temp_c)
    plant.after_change()


def charger_soc(plant, soc):
    plant.before_change()
    plant.chg.cell.set_soc(soc)
    plant.after_change()


def _stop_control_timer():
    """The heater's control-step timer (machine.Timer(0)) stops firing, as a
    timer deinitialised by mistake would; a new init() starts it again."""
    from sim.kernel import K

    for tm in [t for t in K.timers if t.id == 0]:
        K.remove_timer(tm)


def fault(plant, args):
    """heater_open | heater_short | gate_stuck_on | adc_stuck (channel, uV) |
    timer_stop | clear"""
    kind, value = args
    h = plant.heater
    st = plant.stage
    bank = plant.bank
    if kind == "heater_open":
        h.open = True
    elif kind == "heater_short":
        h.short = True
    elif kind == "gate_stuck_on":
        st.gate_stuck_on = True
    elif kind == "adc_stuck":
        bank.stick(ADC_NAMES[value[0]], value[1])
    elif kind == "timer_stop":
        _stop_control_timer()
    elif kind == "clear":
        h.open = h.short = st.gate_stuck_on = False
        for pin in ADC_PINS:
            bank.stick(pin, -1)
    else:
        raise ValueError("unknown fault " + kind)
    stuck = False
    for uv in bank.stuck_uv:
        stuck = stuck or uv >= 0
    plant._set_io(IO_FAULT_INJECTED, h.open or h.short or st.gate_stuck_on or stuck)
    plant.after_change()


HANDLERS = ("ambient", "cell_temp", "cell_soc", "charger_temp", "charger_soc", "fault")

"""The schematic: which plant signal sits on which pin of board.py.

The firmware's drivers (vmachine) ask here what their pin is connected to;
an unconnected pin simply floats at its pull level.
"""

import board


def input_for(plant, pin):
    if plant is None:
        return None
    if pin == board.PIN_BUTTON:
        return plant.button_level
    if pin == board.PIN_STICK_DET:
        return plant.stick_level
    if pin == board.PIN_CHARGER_BUTTON:
        return plant.charger_button_level
    if pin == board.PIN_DOCK_DET:
        return plant.dock_level
    return None


# the controller's outputs, by the plant's index of the signal each drives (Plant.set_out)
OUTPUTS = (
    board.PIN_HEATER_EN,
    board.PIN_VIBRATION,
    board.PIN_LED_STATUS,
    board.PIN_LED_FAULT,
    board.PIN_MUX_S0,
    board.PIN_MUX_S1,
    board.PIN_MUX_S2,
    board.PIN_LED_BAT1,
    board.PIN_LED_BAT2,
    board.PIN_LED_BAT3,
    board.PIN_LED_BAT4,
)


def output_for(plant, pin):
    """The plant's index of the signal an output pin drives, or -1."""
    if plant is None or pin not in OUTPUTS:
        return -1
    return OUTPUTS.index(pin)


def pwm_for(plant, pin):
    """What a PWM output drives: an object whose duty_u16 it sets."""
    if plant is None:
        return None
    if pin == board.PIN_HEATER_PWM:
        return plant.stage  # the gate of the heater MOSFET
    if pin == board.PIN_CHG_ISET:
        return plant.chg.usb_set
    if pin == board.PIN_HCHG_ISET:
        return plant.chg.hold_set
    return None


def adc_for(plant, pin):
    if plant is None:
        return None
    return plant.adc.get(pin)

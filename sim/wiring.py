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
    return None


def output_for(plant, pin):
    if plant is None:
        return None
    if pin == board.PIN_HEATER_EN:
        return plant.set_heater_en
    if pin == board.PIN_VIBRATION:
        return plant.set_vibration
    if pin == board.PIN_LED_STATUS:
        return plant.set_led_status
    if pin == board.PIN_LED_FAULT:
        return plant.set_led_fault
    return None


def pwm_for(plant, pin):
    """What a PWM output drives: an object whose duty_u16 it sets."""
    if plant is not None and pin == board.PIN_HEATER_PWM:
        return plant.stage  # the gate of the heater MOSFET
    return None


def adc_for(plant, pin):
    if plant is None:
        return None
    return plant.adc.get(pin)

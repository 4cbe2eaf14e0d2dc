# Firmware-style code that uses machine.PWM wrongly: the ESP32 type check
# must reject it (tests/firmware/test_esp32_api.py). Never deployed.
from machine import PWM, Pin

heater = PWM(Pin(25), freq=20000, duty_u16=0)
heater.duty_u16("half")  # a duty is an int 0..65535
heater.duty_percent(50)  # no such method

"""Pin map and hardware constants of the heatrig reference board (ESP32-WROOM-32).

This is the schematic as the firmware sees it. The simulator wires its plant
models to the same pin numbers, and reads the same bill-of-materials values
(divider ratios, shunt, thermistor part) to model the analog front end.
"""

from micropython import const

# --- GPIO ----------------------------------------------------------------
PIN_HEATER_PWM = const(25)  # gate driver of the low-side heater MOSFET (LEDC PWM)
PIN_HEATER_EN = const(26)  # high-side load switch: a second, independent heater cut
PIN_BUTTON = const(27)  # holder button to GND, internal pull-up: pressed reads 0
PIN_STICK_DET = const(14)  # optical stick detector: 1 = stick inserted
PIN_VIBRATION = const(13)  # vibration motor driver
PIN_LED_STATUS = const(2)  # holder LED, white
PIN_LED_FAULT = const(4)  # holder LED, red

# ADC1 only: ADC2 cannot be read while the radio is on.
PIN_ADC_HEATER_V = const(36)  # Kelvin sense across the heater, 1:2 divider
PIN_ADC_HEATER_I = const(39)  # shunt amplifier output
PIN_ADC_CELL_V = const(34)  # holder cell, 1:2 divider
PIN_ADC_CELL_NTC = const(35)  # NTC on the holder cell
PIN_ADC_AMBIENT_NTC = const(32)  # NTC on the board, away from the blade

# --- analog front end ----------------------------------------------------
# The heater sense amplifiers have a sample-and-hold latched during the PWM
# on-phase, so the ADC reads on-state values whenever the duty is non-zero.
HEATER_PWM_FREQ_HZ = const(20000)
ADC_FULL_SCALE_UV = const(3100000)  # ESP32 ADC at 11 dB attenuation
ADC_MAX_CODE = const(4095)  # 12-bit
HEATER_V_DIV = const(2)  # heater volts = ADC volts x 2
CELL_V_DIV = const(2)  # cell volts = ADC volts x 2
SHUNT_UOHM = const(10000)  # 10 mOhm heater current shunt
SHUNT_GAIN = const(50)  # current-sense amplifier gain
UV_PER_MA = const(500)  # = SHUNT_UOHM * SHUNT_GAIN / 1000: ADC uV per mA of heater current

# NTC thermistors (cell and ambient): 10 k, B25/85 = 3950, to GND, 10 k pull-up
NTC_R25_OHM = const(10000)
NTC_B_K = const(3950)
NTC_PULLUP_OHM = const(10000)
NTC_SUPPLY_UV = const(3300000)

# --- heater blade ------------------------------------------------------------
BLADE_HEAT_UJ_PER_CC = const(200)  # heat capacity of the ceramic blade: 0.020 J/K (E: docs/reference.md)

# --- calibration: the unit spec of the heater track (docs/safety.md) -----
CAL_R0_UOHM = const(800000)  # nominal track resistance at CAL_T0_C
CAL_TCR_PPM = const(3500)  # nominal temperature coefficient, ppm/K
CAL_T0_C = const(20)
CAL_R0_MIN_UOHM = const(720000)  # R0 0.80 ohm +-10 %
CAL_R0_MAX_UOHM = const(880000)
CAL_TCR_MIN_PPM = const(3000)  # thick-film platinum, 0.0030-0.0038 /K
CAL_TCR_MAX_PPM = const(3800)
# With no usable record: the fail-safe end of the spec. The smallest R0 and
# TCR make the blade read hotter than it is on every unit in spec.
CAL_FAILSAFE_R0_UOHM = const(720000)
CAL_FAILSAFE_TCR_PPM = const(3000)

# --- holder ----------------------------------------------------------------
HOLDER_CELL_MAH = const(120)
HOLDER_R_MOHM = const(100)  # cell R0 + R1 at 20 C (datasheet class of a 15 C cell)
HOLDER_IQ_MA = const(20)  # front end while the heater is enabled

# --- pocket charger ----------------------------------------------------------
# One controller sees the holder and the charger. Its last ADC1 input reads
# the charger's analog signals through an 8:1 multiplexer.
PIN_CHARGER_BUTTON = const(0)  # to GND, internal pull-up (the devkit's BOOT button)
PIN_DOCK_DET = const(15)  # 1 = holder in the charger
PIN_CHG_ISET = const(5)  # PWM: USB charge current set-point; duty 0 = stage off
PIN_HCHG_ISET = const(12)  # PWM: holder charge current set-point; duty 0 = off
PIN_MUX_S0 = const(16)  # multiplexer select, LSB first
PIN_MUX_S1 = const(17)
PIN_MUX_S2 = const(18)
PIN_ADC_MUX = const(33)
PIN_LED_BAT1 = const(19)  # charger level LEDs, bottom to top
PIN_LED_BAT2 = const(21)
PIN_LED_BAT3 = const(22)
PIN_LED_BAT4 = const(23)
MUX_CHG_V = const(0)  # charger cell, 1:2 divider
MUX_CHG_I = const(1)  # charger cell current, bidirectional: mid-scale at 0 A, + charging
MUX_CHG_NTC = const(2)  # NTC on the charger cell
MUX_HCHG_I = const(3)  # holder charge current
MUX_VBUS = const(4)  # USB input, 1:2 divider
CHG_V_DIV = const(2)
VBUS_DIV = const(2)
CHG_I_MID_UV = const(1550000)
CHG_I_UV_PER_MA = const(500)  # 10 mOhm shunt x 50
HCHG_I_UV_PER_MA = const(1000)  # 10 mOhm shunt x 100
ISET_FS_MA = const(3000)  # charge current of either stage at full PWM duty
CHARGER_CELL_MAH = const(2900)
CHARGER_R_MOHM = const(55)

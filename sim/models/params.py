"""Every plant parameter, in one place, with where its value comes from.

P = published, D = derived from published numbers, E = engineering estimate
(docs/reference.md#kinds-of-numbers). A scenario may override any of them
by name (scenario [plant] table); the unit tolerances (R0, TCR) are the usual
ones to change.
"""

import board

DEFAULTS = {
    # --- heater: platinum thick-film track on a ceramic blade ---------------
    "r0_ohm": 0.80,  # E: cold resistance at 20 C, 0.5-1.0 ohm, +-10 % per unit
    "tcr_per_k": 0.0035,  # E: thick-film Pt 0.0030-0.0038 (wire grade 0.00385, P)
    "t0_c": 20.0,  # reference temperature of r0
    # --- thermal network (two nodes: blade, tobacco plug) -------------------
    "c_blade_j_per_k": 0.020,  # E: blade alone tau = C/G ~ 2.9 s (1-3 s)
    "g_blade_amb_w_per_k": 0.007,  # E: blade to holder and air; ~2.1 W at 320 C with no stick
    "c_plug_j_per_k": 0.25,  # E: the heated part of the plug
    "g_blade_plug_w_per_k": 0.015,  # E: blade to plug; plug tau ~13 s (10-20 s)
    "g_plug_amb_w_per_k": 0.0035,  # E: plug to paper, filter and air; holding ~2.9 W at 320 C
    # --- puffs: air drawn through the plug ----------------------------------
    "air_density_g_per_ml": 0.0012,  # P
    "air_cp_j_per_g_k": 1.005,  # P
    "puff_eff_plug": 0.8,  # E: share of the air reaching plug temperature
    "puff_eff_blade": 0.3,  # E: share of the air sweeping the blade
    "puff_latent_j_per_ml": 0.08,  # E: evaporation of water and glycerol, ~4 J per 55 mL puff
    "vent_bypass": 0.0,  # share of the air that bypasses the plug (set by the regime)
    # --- power stage -------------------------------------------------------
    "r_shunt_ohm": board.SHUNT_UOHM / 1e6,  # BOM
    "r_mosfet_ohm": 0.012,  # E: logic-level MOSFET on-resistance
    "r_switch_ohm": 0.015,  # E: load switch
    "r_wiring_ohm": 0.010,  # E: contacts and traces
    "shunt_gain": board.SHUNT_GAIN,  # BOM
    "heater_v_div": board.HEATER_V_DIV,  # BOM
    "cell_v_div": board.CELL_V_DIV,  # BOM
    # --- ADC1 at 11 dB through MicroPython's read_uv (sim/models/adc.py, docs/esp32.md;
    # docs/reference.md#the-esp32-and-micropythons-port) ----------------------------------
    "adc_cal": 1.0,  # P: 1 = the chip has eFuse Vref calibration data; 0 = none: read_uv() raises OSError
    "adc_vref_mv": 1100.0,  # P: the unit's eFuse Vref, 1000-1200 mV across chips (ESP-IDF ADC calibration guide)
    "adc_offset_uv": 0.0,  # E: residual offset of the unit's readings against its calibration (worst case +-20 mV)
    "adc_gain_ppm": 0.0,  # E: residual gain error of its readings (worst case +-2 %)
    "adc_noise_lsb": 1.5,  # E: rms noise of a single conversion
    # --- the board's flash and MicroPython port (sim/mpapi/vflash.py, vmachine.py) -------------
    "flash_prog_us": 400.0,  # P: page program (256 B), typical, W25Q32JV-class SPI NOR (max 3 ms)
    "flash_erase_us": 45000.0,  # P: 4 kB sector erase, typical (max 400 ms)
    "mp_minor": 28.0,  # MicroPython 1.x on the board: before 1.26 a PWM starts at 50 % duty (machine_pwm.c)
    # --- holder cell: 1RC Thevenin model ------------------------------------
    "cell_capacity_mah": 120.0,  # E: 100-150 mAh high-rate Li-ion
    "cell_r0_ohm": 0.08,  # E: 80-200 mOhm; the low end: a cell that takes a 4-min charge
    "cell_r1_ohm": 0.02,  # E
    "cell_tau1_s": 15.0,  # E: 10-30 s
    "cell_heat_j_per_k": 4.0,  # E: ~3 g pouch cell and its mount
    "cell_cool_w_per_k": 0.04,  # E: to the holder's shell; tau ~100 s
    "cell_fade": 0.0,  # share of the capacity lost to ageing
    "cell_r_growth": 1.0,  # resistance against a new cell
    "cell_soc": 1.0,  # initial state of charge, 0..1
    "i_quiescent_a": 0.02,  # E: holder front end while the heater is enabled (asleep: uA, neglected)
    # P: generic LiCoO2 OCV at 20 C, SoC 0..100 % in 10 % steps (both cells)
    "ocv_table_v": (3.000, 3.690, 3.730, 3.770, 3.800, 3.840, 3.870, 3.950, 4.020, 4.110, 4.200),
    "r_activation_k": 2500.0,  # E: R(T) = R(20 C) exp(B (1/T - 1/293 K)): x1.9 at 0 C, x0.6 at 45 C
    # --- pocket charger cell: 1RC Thevenin model -----------------------------
    "chg_cell_capacity_mah": 2900.0,  # E: 2.5-3.0 Ah
    "chg_cell_r0_ohm": 0.04,  # E: 40-60 mOhm
    "chg_cell_r1_ohm": 0.015,  # E: 15-30 mOhm
    "chg_cell_tau1_s": 30.0,  # E: 20-60 s
    "chg_cell_heat_j_per_k": 45.0,  # E: 18650, ~45 g at ~1 J/(g K)
    "chg_cell_cool_w_per_k": 0.15,  # E: inside the charger's case; tau ~5 min
    "chg_cell_fade": 0.0,
    "chg_cell_r_growth": 1.0,
    "chg_cell_soc": 1.0,
    "chg_cell_cutoff_v": 2.5,  # E: protection circuit opens (cell cut-off 2.75 V, P)
    # --- USB source and the charger's electronics -----------------------------
    "usb_v": 5.0,  # P: USB
    "usb_i_limit_a": 2.0,  # E: the charger's adapter, 5 V 1.5-2 A
    "usb_r_cable_ohm": 0.15,  # E: cable and connectors
    "usb_plugged": 0.0,  # 1: plugged at the start
    "docked": 0.0,  # 1: holder in the charger at the start
    "chg_in_limit_a": 2.0,  # E: charger IC input current limit
    "chg_eff": 0.90,  # E: USB buck charger
    "hchg_eff": 0.88,  # E: buck-boost from the charger cell (or USB) to the holder
    "v_ovp": 4.35,  # E: hardware over-voltage clamp of both charge stages
    "i_system_a": 0.004,  # E: charger electronics, controller mostly in light sleep
    "i_led_a": 0.002,  # E: each charger LED
    "iset_fs_a": board.ISET_FS_MA / 1000,  # BOM: either stage's current at full duty
    # --- thermistors (BOM) --------------------------------------------------
    "ntc_r25_ohm": board.NTC_R25_OHM,
    "ntc_b_k": board.NTC_B_K,
    "ntc_pullup_ohm": board.NTC_PULLUP_OHM,
    "ntc_supply_v": board.NTC_SUPPLY_UV / 1e6,
    # --- environment -------------------------------------------------------
    "ambient_c": 20.0,
    # --- integration ---------------------------------------------------------
    "max_step_s": 0.01,  # explicit Euler step; the fastest node has tau ~0.5 s
    "idle_step_s": 0.1,  # with the heater off and no puff: blade and plug relax (tau > 0.9 s)
    "slow_step_s": 0.1,  # charging and cell temperatures move over seconds
}


# parameters that may be negative (a scenario's [plant] table checks the rest for >= 0)
SIGNED = ("adc_offset_uv", "adc_gain_ppm")


def make(overrides=None):
    """A parameter dict: the defaults with `overrides` applied (unknown names raise)."""
    p = dict(DEFAULTS)
    if overrides:
        for k in overrides:
            if k not in p:
                raise KeyError("unknown plant parameter: " + k)
            p[k] = overrides[k]
    return p

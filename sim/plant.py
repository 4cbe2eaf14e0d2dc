"""The simulated holder: heater, plug, puffs, power stage, cell, thermistors,
button, stick detector, vibration motor and LEDs, integrated between kernel
events. Inputs come from the firmware's pins (through sim.wiring) and from
scenario events; outputs are ADC readings and pin levels, plus the true
values that only a simulator knows (for the telemetry record).

advance() is the one hot path: it integrates the equations documented in
heater_model, cell_model and power_stage with explicit Euler steps, holding
everything in locals (in MicroPython every attribute access is a dictionary
lookup, and this runs 100 times per simulated second).
"""

import board
import micropython
from micropython import const
from sim.adc_model import AdcBank, ntc_divider_v
from sim.cell_model import Cell
from sim.heater_model import Heater
from sim.power_stage import PowerStage
from sim.puff_model import PuffTrain

# pin levels and injected faults, as recorded in each truth sample
IO_BUTTON = 0x01
IO_STICK = 0x02
IO_VIBRATION = 0x04
IO_LED_STATUS = 0x08
IO_LED_FAULT = 0x10
IO_HEATER_EN = 0x20
IO_FAULT_INJECTED = 0x40

FAULT_KINDS = ("heater_open", "heater_short", "gate_stuck_on", "adc_stuck", "clear")
ADC_NAMES = {
    "heater_v": board.PIN_ADC_HEATER_V,
    "heater_i": board.PIN_ADC_HEATER_I,
    "cell_v": board.PIN_ADC_CELL_V,
    "cell_ntc": board.PIN_ADC_CELL_NTC,
    "ambient_ntc": board.PIN_ADC_AMBIENT_NTC,
}
# bank order (MicroPython dicts do not keep insertion order, so spelled out)
_ADC_PINS = (
    board.PIN_ADC_HEATER_V,
    board.PIN_ADC_HEATER_I,
    board.PIN_ADC_CELL_V,
    board.PIN_ADC_CELL_NTC,
    board.PIN_ADC_AMBIENT_NTC,
)
_K_VH = const(0)
_K_IH = const(1)
_K_CELL = const(2)
_K_CELL_NTC = const(3)
_K_AMB_NTC = const(4)


_PPM = const(1000000)


class Plant:
    def __init__(self, p, rng):
        self.p = p
        self.t_us = 0
        self.ambient_uc = int(p["ambient_c"] * _PPM)
        self.heater = Heater(p)
        self.cell = Cell(p)
        self.stage = PowerStage(p)
        self.puffs = PuffTrain(p)
        self.bank = AdcBank(p, rng, _ADC_PINS)
        self.adc = self.bank.channels  # pin -> channel, for sim.wiring
        self.air_uj_per_ml_k = int(p["air_density_g_per_ml"] * p["air_cp_j_per_g_k"] * _PPM)
        self.max_step_us = int(p["max_step_s"] * _PPM)
        self.heater_v_div = p["heater_v_div"]
        self.cell_v_div = p["cell_v_div"]
        self.shunt_uv_per_a = int(p["r_shunt_ohm"] * p["shunt_gain"] * _PPM)
        self.button_pressed = False
        self.vibration = 0
        self.led_status = 0
        self.led_fault = 0
        self.io = 0  # IO_* bits, kept current by the setters below
        self.flow_ul_s = 0
        self.energy_pj = 0  # delivered to the heater
        self.vibration_on_us = 0  # total time the motor ran
        self._ocv_q_pc = -1  # charge at which the cell's OCV was last evaluated
        self._update_ntcs()
        self._solve()
        self._update_outputs()

    @property
    def ambient_c(self):
        return self.ambient_uc / _PPM

    # --- pins (called by vmachine drivers) ------------------------------------
    def button_level(self, _v=None):
        return 0 if self.button_pressed else 1  # to GND, pulled up

    def stick_level(self, _v=None):
        return 1 if self.heater.stick else 0

    def set_heater_en(self, level):
        self.stage.en = level  # takes effect from the next interval (advance)
        self._set_io(IO_HEATER_EN, level)

    def set_vibration(self, level):
        self.vibration = level
        self._set_io(IO_VIBRATION, level)

    def set_led_status(self, level):
        self.led_status = level
        self._set_io(IO_LED_STATUS, level)

    def set_led_fault(self, level):
        self.led_fault = level
        self._set_io(IO_LED_FAULT, level)

    def _set_io(self, bit, on):
        self.io = self.io | bit if on else self.io & ~bit

    # --- time ---------------------------------------------------------------------
    @micropython.native
    def advance(self, dt_us):
        """Integrate over dt_us, in explicit Euler steps of at most max_step.

        Fixed point: temperatures in uC, powers in uW, conductances in uW/K,
        heat capacities in uJ/K, so dT[uC] = (P - Q)[uW] * dt[us] / C[uJ/K]
        and Q[uW] = G[uW/K] * dT[uC] / 1e6. Products stay below 2**62.
        """
        n = (dt_us + self.max_step_us - 1) // self.max_step_us
        h_us = dt_us // n
        ht = self.heater
        cell = self.cell
        st = self.stage
        puffs = self.puffs
        t_amb = self.ambient_uc
        tb = ht.t_blade_uc
        tp = ht.t_plug_uc
        stick = ht.stick
        g_ba = ht.g_ba_uw_per_k
        g_bp = ht.g_bp_uw_per_k
        g_pa = ht.g_pa_uw_per_k
        c_b = ht.c_b_uj_per_k
        c_p = ht.c_p_uj_per_k
        q_pc = cell.q_pc
        v_rc = cell.v_rc_uv
        r1 = cell.r1_uohm
        tau1 = cell.tau1_us
        energy = self.energy_pj
        q = 0
        st.apply()  # the duty and load switch as the firmware left them
        for k in range(n):
            if k:  # later substeps: new resistance and cell state
                ht.t_blade_uc = tb
                cell.q_pc = q_pc
                cell.v_rc_uv = v_rc
                self._solve()
            p_uw = st.p_uw
            i_cell = st.i_cell_ua
            if puffs.active:
                q = puffs.flow_ul_s(self.t_us + k * h_us + h_us // 2)
            # heater: blade and plug (heater_model)
            q_b = g_ba * (tb - t_amb) // _PPM
            q_p = g_pa * (tp - t_amb) // _PPM
            if q > 0:
                w = q * self.air_uj_per_ml_k // 1000  # uW/K
                q_b += w * ht.eff_b_ppm // _PPM * (tb - t_amb) // _PPM
                q_p += w * ht.eff_p_ppm // _PPM * (tp - t_amb) // _PPM
                if tp > 100 * _PPM:  # water and glycerol leave only a hot plug
                    q_p += q * ht.latent_uj_per_ml // 1000
            if stick:
                q_bp = g_bp * (tb - tp) // _PPM
                tp += (q_bp - q_p) * h_us // c_p
                q_b += q_bp
            tb += (p_uw - q_b) * h_us // c_b
            # cell: charge drawn and RC polarisation (cell_model)
            q_pc -= i_cell * h_us
            v_rc += (i_cell * r1 // _PPM - v_rc) * h_us // tau1
            energy += p_uw * h_us
        if q_pc < 0:
            q_pc = 0
        cell.drawn_pc += cell.q_pc - q_pc
        ht.t_blade_uc = tb
        ht.t_plug_uc = tp
        cell.q_pc = q_pc
        cell.v_rc_uv = v_rc
        self.energy_pj = energy
        self.flow_ul_s = q
        if self.vibration:
            self.vibration_on_us += dt_us
        self.t_us += dt_us
        self._solve()
        self._update_outputs()

    @micropython.native
    def _solve(self):
        """On-phase current and voltages for the present state (power_stage)."""
        st = self.stage
        cell = self.cell
        r_cell = cell.r0_uohm
        if cell.q_pc != self._ocv_q_pc:  # OCV only moves with the charge
            self._ocv_q_pc = cell.q_pc
            cell.ocv()
        emf = cell.ocv_uv - cell.v_rc_uv
        e = emf - st.i_q_ua * r_cell // _PPM
        ht = self.heater
        if ht.open:
            st.i_on_ua = 0
            st.v_on_uv = e
        else:
            r_h = ht.resistance_uohm()
            i_on = e * _PPM // (r_h + st.r_fixed_uohm + r_cell)
            st.i_on_ua = i_on
            st.v_on_uv = i_on * r_h // _PPM
        st.emf_uv = emf
        st.r_cell_uohm = r_cell
        st.apply()

    @micropython.native
    def _update_outputs(self):
        """ADC pin voltages, then one conversion of every channel."""
        st = self.stage
        bank = self.bank
        if st.on_u16:  # sample-and-hold of the last on-phase
            bank.set3_uv(st.v_on_uv // self.heater_v_div, st.i_on_ua * self.shunt_uv_per_a // _PPM,
                         st.v_cell_uv // self.cell_v_div)  # fmt: skip
        else:
            bank.set3_uv(0, 0, st.v_cell_uv // self.cell_v_div)
        bank.convert()

    def _update_ntcs(self):
        self.bank.set_uv(_K_CELL_NTC, int(ntc_divider_v(self.p, self.cell.temp_c) * _PPM))
        self.bank.set_uv(_K_AMB_NTC, int(ntc_divider_v(self.p, self.ambient_c) * _PPM))

    # --- scenario events ------------------------------------------------------------
    def ev_button(self, pressed):
        self.button_pressed = bool(pressed)
        self._set_io(IO_BUTTON, pressed)

    def ev_stick(self, present):
        if present and not self.heater.stick:
            self.heater.insert_stick(self.ambient_uc)
        elif not present:
            self.heater.remove_stick(self.ambient_uc)
        self._set_io(IO_STICK, present)

    def ev_puff(self, args):
        volume_ml, duration_s, bell = args
        self.puffs.start(self.t_us, volume_ml, duration_s, bell)

    def ev_ambient(self, temp_c):
        self.ambient_uc = int(temp_c * _PPM)
        self._update_ntcs()
        self._update_outputs()

    def ev_cell_temp(self, temp_c):
        self.cell.temp_c = temp_c
        self._update_ntcs()
        self._update_outputs()

    def ev_cell_soc(self, soc):
        self.cell.set_soc(soc)
        self._solve()
        self._update_outputs()

    def ev_fault(self, args):
        kind, value = args
        if kind == "heater_open":
            self.heater.open = True
        elif kind == "heater_short":
            self.heater.short = True
        elif kind == "gate_stuck_on":
            self.stage.gate_stuck_on = True
        elif kind == "adc_stuck":
            self.bank.stick(ADC_NAMES[value[0]], value[1])
        elif kind == "clear":
            self.heater.open = self.heater.short = self.stage.gate_stuck_on = False
            for pin in _ADC_PINS:
                self.bank.stick(pin, -1)
            self._update_ntcs()
        else:
            raise ValueError("unknown fault " + kind)
        h = self.heater
        self._set_io(IO_FAULT_INJECTED, h.open or h.short or self.stage.gate_stuck_on or self.bank.any_stuck())
        self._solve()
        self._update_outputs()

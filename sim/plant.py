"""The simulated holder: heater, plug, puffs, power stage, cell, thermistors,
button, stick detector, vibration motor and LEDs, integrated between kernel
events. Inputs come from the firmware's pins (through sim.mpapi.wiring) and from
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

from sim.kernel import K, make_room
from sim.models.adc import AdcBank, MuxChannel, NtcTable
from sim.models.cell import Cell
from sim.models.charger import ChargerModel
from sim.models.heater import Heater
from sim.models.power_stage import PowerStage
from sim.models.puffs import PuffTrain

# pin levels and injected faults, as recorded in each truth sample
IO_BUTTON = 0x01
IO_STICK = 0x02
IO_VIBRATION = 0x04
IO_LED_STATUS = 0x08
IO_LED_FAULT = 0x10
IO_HEATER_EN = 0x20
IO_FAULT_INJECTED = 0x40
_OUT_IO = (IO_HEATER_EN, IO_VIBRATION, IO_LED_STATUS, IO_LED_FAULT)
# the charger's, in power truth samples
IO2_USB = 0x01
IO2_DOCKED = 0x02
IO2_CHARGER_BUTTON = 0x04
IO2_CELL_ON = 0x08  # charger cell protection closed
IO2_LED_SHIFT = 4  # charger LEDs, bits 4..7

# bank order (MicroPython dicts do not keep insertion order, so spelled out);
# the multiplexer's inputs follow the direct ones, in board.MUX_* order
ADC_PINS = (
    board.PIN_ADC_HEATER_V,
    board.PIN_ADC_HEATER_I,
    board.PIN_ADC_CELL_V,
    board.PIN_ADC_CELL_NTC,
    board.PIN_ADC_AMBIENT_NTC,
)
_K_CELL_NTC = const(3)
_K_AMB_NTC = const(4)
_K_MUX = const(5)
_N_MUX = const(5)
# the charger's analog front end (board.py)
_MUX_CHG_V = board.MUX_CHG_V
_MUX_CHG_I = board.MUX_CHG_I
_MUX_CHG_NTC = board.MUX_CHG_NTC
_MUX_HCHG_I = board.MUX_HCHG_I
_MUX_VBUS = board.MUX_VBUS
_CHG_V_DIV = board.CHG_V_DIV
_VBUS_DIV = board.VBUS_DIV
_CHG_I_MID_UV = board.CHG_I_MID_UV
_CHG_I_UV_PER_MA = board.CHG_I_UV_PER_MA
_HCHG_I_UV_PER_MA = board.HCHG_I_UV_PER_MA


_PPM = const(1000000)


class Plant:
    def __init__(self, p, rng):
        self.t_us = 0
        self.ambient_uc = int(p["ambient_c"] * _PPM)
        self.heater = Heater(p)
        self.cell = Cell(p, "cell_", p["ambient_c"])
        self.chg = ChargerModel(p, p["ambient_c"])
        self.stage = PowerStage(p)
        self.puffs = PuffTrain(p)
        self.bank = AdcBank(p, rng, ADC_PINS, _N_MUX)
        self.adc = self.bank.channels  # pin -> channel, for sim.mpapi.wiring
        self.adc[board.PIN_ADC_MUX] = MuxChannel(self.bank, self, _K_MUX, _N_MUX)
        self.ntc = NtcTable(p)
        self.mux_sel = 0
        self.charger_button_pressed = False
        self.idle_step_us = int(p["idle_step_s"] * _PPM)
        self.slow_step_us = int(p["slow_step_s"] * _PPM)
        self._slow_dt_us = 0  # plant time the slow processes have not integrated yet
        self._slow_due_us = 0  # ... integrated once it reaches this
        self.i_in_ua = 0  # into the holder cell from the dock
        self._ntc_uc = [0, 0]  # holder cell, charger cell: the temperatures last converted
        self.air_uj_per_ml_k = int(p["air_density_g_per_ml"] * p["air_cp_j_per_g_k"] * _PPM)
        self.max_step_us = int(p["max_step_s"] * _PPM)
        self.heater_v_div = p["heater_v_div"]
        self.cell_v_div = p["cell_v_div"]
        self.shunt_uv_per_a = int(p["r_shunt_ohm"] * p["shunt_gain"] * _PPM)
        self.button_pressed = False
        self.edge_samples = False  # a truth sample whenever the load switch moves (sim/run.py)
        self._en_level = 0
        self.vibration = 0
        self.io = 0  # IO_* bits, kept current by the setters below
        self.flow_ul_s = 0
        self.energy_pj = 0  # delivered to the heater
        self.vibration_on_us = 0  # total time the motor ran
        self._ocv_q_pc = -1  # charge at which the cell's OCV was last evaluated
        self._update_ntcs()
        self._solve()
        self._slow(0)
        self._update_outputs()
        for obj in (self, self.heater, self.cell, self.stage, self.puffs, self.bank):
            make_room(obj)  # read at every interval (sim/kernel.py)

    # --- pins (called by vmachine drivers) ------------------------------------
    def button_level(self, _v=None):
        return 0 if self.button_pressed else 1  # to GND, pulled up

    def stick_level(self, _v=None):
        return 1 if self.heater.stick else 0

    def set_out(self, k, level):
        """The controller set output sim.mpapi.wiring.OUTPUTS[k] to level."""
        if k < 4:  # load switch, motor, holder LEDs: IO bits of the truth record
            self._set_io(_OUT_IO[k], level)
            if k == 0:
                self.stage.en = level  # takes effect from the next interval (advance)
                if self.edge_samples and level != self._en_level:
                    K.sample_now()  # the truth at the instant the load switch moves
                self._en_level = level
            elif k == 1:
                self.vibration = level
        elif k < 7:  # multiplexer select
            bit = 1 << (k - 4)
            self.mux_sel = self.mux_sel | bit if level else self.mux_sel & ~bit
        else:  # charger level LEDs
            bit = 1 << (k - 7)
            c = self.chg
            c.leds = c.leds | bit if level else c.leds & ~bit

    def _set_io(self, bit, on):
        self.io = self.io | bit if on else self.io & ~bit

    def charger_button_level(self, _v=None):
        return 0 if self.charger_button_pressed else 1

    def dock_level(self, _v=None):
        return 1 if self.chg.docked else 0

    def io2(self):
        c = self.chg
        return ((IO2_USB if c.usb else 0) | (IO2_DOCKED if c.docked else 0) | (IO2_CELL_ON if c.cell_on else 0)
                | (IO2_CHARGER_BUTTON if self.charger_button_pressed else 0) | c.leds << IO2_LED_SHIFT)  # fmt: skip

    # --- time ---------------------------------------------------------------------
    @micropython.native
    def advance(self, dt_us):
        """Integrate over dt_us, in explicit Euler steps of at most max_step
        while the heater is on or a puff is drawn, idle_step otherwise.

        Fixed point: temperatures in uC, powers in uW, conductances in uW/K,
        heat capacities in uJ/K, so dT[uC] = (P - Q)[uW] * dt[us] / C[uJ/K]
        and Q[uW] = G[uW/K] * dT[uC] / 1e6. Products stay below 2**62.
        """
        st = self.stage
        st.apply()  # the duty and load switch as the firmware left them
        puffs = self.puffs
        step = self.max_step_us if st.on_u16 or puffs.active else self.idle_step_us
        self._slow_dt_us += dt_us
        if self._slow_dt_us >= self._slow_due_us:
            self._slow(self._slow_dt_us)
        n = (dt_us + step - 1) // step
        h_us = dt_us // n
        ht = self.heater
        cell = self.cell
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
        elif q_pc > cell.q_full_pc + cell.q_full_pc // 20:
            q_pc = cell.q_full_pc + cell.q_full_pc // 20  # plating, not storing: the OVP stops this first
        ht.t_blade_uc = tb
        ht.t_plug_uc = tp
        cell.q_pc = q_pc
        cell.v_rc_uv = v_rc
        self.energy_pj = energy
        self.flow_ul_s = q
        if self.vibration:
            self.vibration_on_us += dt_us
        self.t_us += dt_us
        self._solve(True)

    @micropython.native
    def _solve(self, outputs=False):
        """On-phase current and voltages for the present state (power_stage),
        spread over the duty cycle as PowerStage.apply() does; with
        `outputs`, also the ADC readings that follow (_update_outputs).
        One function on the hot path: every call and attribute lookup
        saved counts here."""
        st = self.stage
        cell = self.cell
        r_cell = cell.r0_uohm
        q = cell.q_pc
        if q != self._ocv_q_pc:  # OCV only moves with the charge
            self._ocv_q_pc = q
            cell.ocv()
        emf = cell.ocv_uv - cell.v_rc_uv
        i_q = st.i_q_ua
        i_in = st.i_in_ua
        e = emf - (i_q - i_in) * r_cell // _PPM
        ht = self.heater
        if ht.open:
            i_on = 0
            v_on = e
        else:
            r_h = ht.resistance_uohm()
            i_on = e * _PPM // (r_h + st.r_fixed_uohm + r_cell)
            v_on = i_on * r_h // _PPM
        st.i_on_ua = i_on
        st.v_on_uv = v_on
        st.emf_uv = emf
        st.r_cell_uohm = r_cell
        # st.apply(), on the values at hand
        en = st.en
        if not en:
            on = 0
        elif st.gate_stuck_on:
            on = 65535
        else:
            on = st.duty_u16
        st.on_u16 = on
        st.p_uw = i_on * v_on // 1000000 * on // 65535
        i_cell = i_on * on // 65535 + (i_q if en else 0) - i_in
        st.i_cell_ua = i_cell
        v_cell = emf - i_cell * r_cell // 1000000
        st.v_cell_uv = v_cell
        if outputs:  # self._update_outputs(), on the values at hand
            bank = self.bank
            if on:  # sample-and-hold of the last on-phase
                bank.set3_uv(v_on // self.heater_v_div, i_on * self.shunt_uv_per_a // _PPM, v_cell // self.cell_v_div)
            else:
                bank.set3_uv(0, 0, v_cell // self.cell_v_div)
            bank.convert()

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

    @micropython.native
    def _slow(self, dt_us):
        """Integrate what moves over seconds -- the charger, the cells'
        temperatures -- over dt_us (0: only re-evaluate the charger's currents
        after an input changed), and set the inputs that follow them."""
        self._slow_dt_us = 0
        c = self.chg
        cell = self.cell
        st = self.stage
        st.i_in_ua = c.advance(dt_us, cell.ocv_uv - cell.v_rc_uv, cell.r0_uohm, self.ambient_uc)
        st.apply()
        # the holder cell's own heat: I^2 R of the heater's on-phase current and of the dock's
        i_on = st.i_on_ua
        on = st.on_u16
        i_dc = st.i_cell_ua - i_on * on // 65535
        i2 = (i_on * i_on // _PPM) * on // 65535 + i_dc * i_dc // _PPM
        cell.heat(i2 * (cell.r0_uohm + cell.r1_uohm) // _PPM, self.ambient_uc, dt_us)
        b = self.bank
        ntc = self._ntc_uc
        t = cell.t_uc
        if not -50000 < t - ntc[0] < 50000:
            ntc[0] = t
            b.set_uv(_K_CELL_NTC, self.ntc.uv(t))
        t = c.cell.t_uc
        if not -50000 < t - ntc[1] < 50000:
            ntc[1] = t
            b.set_uv(_K_MUX + _MUX_CHG_NTC, self.ntc.uv(t))
        b.set_uv(_K_MUX + _MUX_CHG_V, c.v_cell_uv // _CHG_V_DIV)
        b.set_uv(_K_MUX + _MUX_CHG_I, _CHG_I_MID_UV + c.i_chg_ua * _CHG_I_UV_PER_MA // 1000)
        b.set_uv(_K_MUX + _MUX_HCHG_I, c.i_hold_ua * _HCHG_I_UV_PER_MA // 1000)
        b.set_uv(_K_MUX + _MUX_VBUS, c.vbus_uv // _VBUS_DIV)
        # a charge stage on: its CC/CV dynamics want the short step; else 10 times longer
        self._slow_due_us = self.slow_step_us * (1 if c.usb_set.duty_u16 or c.hold_set.duty_u16 else 10)

    def _update_ntcs(self):
        ntc = self._ntc_uc
        ntc[0] = self.cell.t_uc
        ntc[1] = self.chg.cell.t_uc
        b = self.bank
        b.set_uv(_K_CELL_NTC, self.ntc.uv(ntc[0]))
        b.set_uv(_K_AMB_NTC, self.ntc.uv(self.ambient_uc))
        b.set_uv(_K_MUX + _MUX_CHG_NTC, self.ntc.uv(ntc[1]))

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

    def before_change(self):
        """An input of the slow processes is about to change: integrate them
        up to now with the old one."""
        self._slow(self._slow_dt_us)

    def after_change(self):
        """An input changed: re-evaluate currents and readings at once."""
        self._update_ntcs()
        self._slow(0)
        self._solve(True)

    def power_off(self):
        """The controller lost power: its outputs fall to their reset state."""
        self.before_change()
        self.stage.duty_u16 = 0
        for k in range(11):
            self.set_out(k, 0)
        c = self.chg
        c.usb_set.duty_u16 = 0
        c.hold_set.duty_u16 = 0
        self.after_change()

    def ev_usb(self, args):
        plugged, limit_a = args
        self.before_change()
        c = self.chg
        c.usb = bool(plugged)
        if limit_a:
            c.usb_limit_ua = int(limit_a * _PPM)
        self.after_change()

    def ev_dock(self, docked):
        self.before_change()
        self.chg.docked = bool(docked)
        self.after_change()

    def ev_charger_button(self, pressed):
        self.charger_button_pressed = bool(pressed)

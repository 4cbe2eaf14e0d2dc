"""A Li-ion cell: open-circuit voltage from a SoC table, a first-order RC
(Thevenin) model, a thermal node, and ageing:

    V = OCV(SoC) - V1 - I R0,    dV1/dt = (I R1 - V1) / tau1,
    dQ/dt = -I,  SoC = Q / Q_full,  Q_full = Q_new (1 - fade)
    C_th dT/dt = I^2 (R0 + R1) - G_th (T - T_amb)
    R(T) = R_20 growth exp(B (1/T - 1/293.15 K))

I > 0 discharges. The same class models the holder's cell and the pocket
charger's; `pre` picks its parameters ("cell_" or "chg_cell_"). State is in
fixed point (charge in pC, voltages in uV, currents in uA, temperature in
uC): the plant integrates it without allocating.
"""

import math

import micropython
from micropython import const

_PPM = const(1000000)
_T_MIN_C = const(-40)
_T_STEP_C = const(5)
_N_T = const(26)  # -40 .. +85 C
_STEPS = const(10)  # the OCV table: 0..100 % in 10 % steps


_shared = []


def _tables(p):
    """The OCV table (uV) and the resistance factor against temperature (ppm,
    every 5 K): the same for both cells, made once."""
    if not _shared:
        ocv = tuple(int(v * _PPM) for v in p["ocv_table_v"])
        if len(ocv) != _STEPS + 1:
            raise ValueError("ocv_table_v: 11 points, 0..100 % SoC")
        b = p["r_activation_k"]
        r = tuple(int(_PPM * math.exp(b * (1.0 / (_T_MIN_C + 273.15 + k * _T_STEP_C) - 1.0 / 293.15)))
                  for k in range(_N_T))
        _shared.append((ocv, r))
    return _shared[0]


class Cell:
    def __init__(self, p, pre, temp_c):
        cap = p[pre + "capacity_mah"] * (1.0 - p[pre + "fade"])
        self.q_full_pc = int(cap * 3.6e12)
        self.q_full_ppm = self.q_full_pc // _PPM  # charge per ppm of SoC
        self.q_pc = int(self.q_full_pc * p[pre + "soc"])
        g = p[pre + "r_growth"]
        self._r0_20 = int(p[pre + "r0_ohm"] * g * _PPM)
        self._r1_20 = int(p[pre + "r1_ohm"] * g * _PPM)
        self.tau1_us = int(p[pre + "tau1_s"] * _PPM)
        self.c_th_uj_per_k = int(p[pre + "heat_j_per_k"] * _PPM)
        self.g_th_uw_per_k = int(p[pre + "cool_w_per_k"] * _PPM)
        self.table_uv, self._r_ppm = _tables(p)
        self.v_rc_uv = 0
        self.ocv_uv = 0  # the last ocv() result
        self.t_uc = int(temp_c * _PPM)
        self.r0_uohm = self.r1_uohm = 0
        self.resistances()
        self.ocv()

    def set_temp(self, temp_c):
        self.t_uc = int(temp_c * _PPM)
        self.resistances()

    def set_soc(self, soc):
        self.q_pc = int(self.q_full_pc * soc)

    @micropython.native
    def resistances(self):
        """R0 and R1 at the present temperature."""
        x = (self.t_uc - _T_MIN_C * _PPM) // _T_STEP_C  # table position, ppm of a step
        i = x // _PPM
        f = self._r_ppm
        if i < 0:
            m = f[0]
        elif i >= _N_T - 1:
            m = f[_N_T - 1]
        else:
            m = f[i] + (f[i + 1] - f[i]) * (x - i * _PPM) // _PPM
        self.r0_uohm = self._r0_20 * m // _PPM
        self.r1_uohm = self._r1_20 * m // _PPM

    @micropython.native
    def ocv(self):
        """OCV (uV) at the present charge, linear between the table's 10 % points."""
        t = self.table_uv
        x = self.q_pc // self.q_full_ppm * _STEPS  # table position, ppm of a step
        i = x // _PPM
        if i >= _STEPS:
            v = t[_STEPS]
        elif x <= 0:
            v = t[0]
        else:
            v = t[i] + (t[i + 1] - t[i]) * (x - i * _PPM) // _PPM
        self.ocv_uv = v
        return v

    @micropython.native
    def heat(self, loss_uw, t_amb_uc, dt_us):
        """Self-heating by loss_uw and cooling towards t_amb_uc over dt_us."""
        q = loss_uw - self.g_th_uw_per_k * (self.t_uc - t_amb_uc) // _PPM
        self.t_uc += q * dt_us // self.c_th_uj_per_k
        self.resistances()

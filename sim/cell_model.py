"""Holder cell: open-circuit voltage from a SoC table, plus a first-order RC
(Thevenin) model, so the terminal voltage sags under load and recovers at
rest:

    V = OCV(SoC) - V1 - I R0,    dV1/dt = (I R1 - V1) / tau1,
    dQ/dt = -I,  SoC = Q / Q_full

Plant.advance integrates these equations in fixed point (charge in
picocoulombs, voltages in microvolts, currents in microamps); this class
holds the parameters, the state and the OCV table.
"""

import micropython
from micropython import const

_PPM = const(1000000)


class Cell:
    def __init__(self, p):
        self.q_full_pc = int(p["cell_capacity_mah"] * 3.6 * 1e12)
        self.q_full_ppm = self.q_full_pc // _PPM  # charge per ppm of SoC
        self.q_pc = int(self.q_full_pc * p["cell_soc"])  # charge left
        self.r0_uohm = int(p["cell_r0_ohm"] * _PPM)
        self.r1_uohm = int(p["cell_r1_ohm"] * _PPM)
        self.tau1_us = int(p["cell_tau1_s"] * _PPM)
        self.table_uv = tuple(int(v * _PPM) for v in p["ocv_table_v"])
        self._n = len(self.table_uv) - 1
        self.v_rc_uv = 0
        self.ocv_uv = 0  # the last ocv() result
        self.temp_c = p["ambient_c"]
        self.drawn_pc = 0  # charge drawn since start

    def soc_ppm(self):
        return self.q_pc // self.q_full_ppm

    def set_soc(self, soc):
        self.q_pc = int(self.q_full_pc * soc)

    @micropython.native
    def ocv(self):
        """OCV (uV) at the present charge, linear between the table's 10 % points."""
        t = self.table_uv
        x = self.soc_ppm() * self._n  # table position, ppm of a step
        i = x // _PPM
        if i >= self._n:
            v = t[self._n]
        elif x <= 0:
            v = t[0]
        else:
            v = t[i] + (t[i + 1] - t[i]) * (x - i * _PPM) // _PPM
        self.ocv_uv = v
        return v

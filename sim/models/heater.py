"""Blade heater: a platinum track whose resistance follows its temperature,
on a ceramic blade coupled to the tobacco plug (two thermal nodes):

    C_b dTb/dt = P - G_ba (Tb - Ta) - G_bp (Tb - Tp) - e_b W (Tb - Ta)
    C_p dTp/dt =     G_bp (Tb - Tp) - G_pa (Tp - Ta) - e_p W (Tp - Ta) - L q

W = q rho cp is the heat-capacity rate of the puff air (q in mL/s) and L the
latent heat carried off per mL while the plug is above 100 C. With no stick
the plug node is absent: the blade alone is a much smaller, faster load.

Plant.advance integrates these equations in fixed point (temperatures in
micro-degrees C, powers in microwatts): small ints never allocate in
MicroPython, floats always do. This class turns the SI parameters into those
units and holds the state.
"""

import micropython
from micropython import const

_PPM = const(1000000)


class Heater:
    def __init__(self, p):
        self.r0_uohm = int(p["r0_ohm"] * _PPM)
        self.tcr_ppm = int(p["tcr_per_k"] * _PPM)
        self.t0_uc = int(p["t0_c"] * _PPM)
        self.c_b_uj_per_k = int(p["c_blade_j_per_k"] * _PPM)
        self.c_p_uj_per_k = int(p["c_plug_j_per_k"] * _PPM)
        self.g_ba_uw_per_k = int(p["g_blade_amb_w_per_k"] * _PPM)
        self.g_bp_uw_per_k = int(p["g_blade_plug_w_per_k"] * _PPM)
        self.g_pa_uw_per_k = int(p["g_plug_amb_w_per_k"] * _PPM)
        self.eff_b_ppm = int(p["puff_eff_blade"] * _PPM)
        self.eff_p_ppm = int(p["puff_eff_plug"] * _PPM)
        self.latent_uj_per_ml = int(p["puff_latent_j_per_ml"] * _PPM)
        self.t_blade_uc = int(p["ambient_c"] * _PPM)
        self.t_plug_uc = self.t_blade_uc
        self.stick = False
        self.open = False  # injected: broken track
        self.short = False  # injected: track shorted

    @micropython.native
    def resistance_uohm(self):
        if self.short:
            return 20000
        # tcr * dT is the change in ppm of R0 (x1e6); small ints all the way
        return self.r0_uohm + self.r0_uohm * (self.tcr_ppm * (self.t_blade_uc - self.t0_uc) // _PPM) // _PPM

    def insert_stick(self, ambient_uc):
        self.stick = True
        self.t_plug_uc = ambient_uc  # a fresh stick

    def remove_stick(self, ambient_uc):
        self.stick = False
        self.t_plug_uc = ambient_uc  # no plug: the node rests at ambient

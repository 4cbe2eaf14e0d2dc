"""Records what only the simulator knows (true temperatures, power, cell
state, pin levels) as frames on the same stream as the firmware's telemetry,
one every sample period. The host joins the two by time.

Truth samples (T_PLANT): FMT packs these fields, little-endian, in the
plant's own fixed-point units, named as the host decodes them
(hil/wire/contract.py reads them here):
    t_us u64 (virtual time), blade_uc i64, plug_uc i64, power_uw i64 (heater),
    energy_pj i64 (heater energy), ocv_uv i32 (cell OCV),
    cell_uv i32 (cell terminal voltage), soc_ppm i32, flow_ul_s i32 (draw),
    ambient_mc i32, io u8 (plant.IO_* bits)

Power samples (T_PLANT_POWER), every `power_every`-th sample, as POWER_FMT
packs them: the charger's cell, the holder's cell (currents + charging), the
USB input and the holder's charge current:
    t_us u64, chg_ocv_uv i32, chg_uv i32 (terminal), chg_ua i32,
    chg_soc_ppm i32, chg_mc i32 (temperature), hold_ocv_uv i32,
    hold_uv i32 (terminal), hold_ua i32, hold_soc_ppm i32,
    hold_mc i32 (temperature), vbus_uv i32, usb_ua i32, hchg_ua i32,
    io u8 (plant.IO2_* bits)
"""

import sys
from struct import pack_into

import micropython
from framing import OVERHEAD, T_PLANT, T_PLANT_POWER, seal

from sim.kernel import K, make_room
from sim.plant import IO_HEATER_EN

FMT = "<QqqqqiiiiiB"
PAYLOAD_LEN = 61
_FRAME_LEN = PAYLOAD_LEN + OVERHEAD
# frames written at once: each write is a system call (and, on a pipe, wakes
# the reader). A board's heap is tight; the unix port's is not.
_BATCH = 32 if sys.platform == "linux" else 4
POWER_FMT = "<Q13iB"
POWER_LEN = 61
_POWER_FRAME_LEN = POWER_LEN + OVERHEAD

class Recorder:
    def __init__(self, plant, out=None, power_every=100):
        self.plant = plant
        self._out = out if out is not None else sys.stdout.buffer
        self._buf = bytearray(_FRAME_LEN * _BATCH)
        self._n = 0
        self._pbuf = bytearray(_POWER_FRAME_LEN)
        self.power_every = power_every
        self._pn = 0
        # idle_us > 0: samples this far apart while the heater is off and
        # nothing is drawn (the kernel's period while it is on, or a puff is)
        self.idle_us = 0
        self.busy_us = 0
        make_room(self)  # sampled 100 times a second (sim/kernel.py)

    @micropython.native
    def sample(self, now_us):
        pl = self.plant
        ht = pl.heater
        cell = pl.cell
        st = pl.stage
        off = self._n * _FRAME_LEN
        buf = self._buf
        pack_into(
            FMT, buf, off + 3, now_us, ht.t_blade_uc, ht.t_plug_uc, st.p_uw, pl.energy_pj,
            cell.ocv_uv, st.v_cell_uv, cell.q_pc // cell.q_full_ppm, pl.flow_ul_s, pl.ambient_uc // 1000, pl.io,
        )  # fmt: skip
        seal(buf, off, T_PLANT, PAYLOAD_LEN)
        if self.idle_us:
            busy = pl.io & IO_HEATER_EN or pl.puffs.active
            K._next_sample_us = now_us + (self.busy_us if busy else self.idle_us)
        self._n += 1
        if self._n == _BATCH:
            self.flush()
        self._pn -= 1
        if self._pn > 0:
            return
        self._pn = self.power_every
        c = pl.chg
        cc = c.cell
        hc = pl.cell
        st = pl.stage
        buf = self._pbuf
        pack_into(
            POWER_FMT, buf, 3, now_us, cc.ocv_uv, c.v_cell_uv, c.i_chg_ua, cc.q_pc // cc.q_full_ppm, cc.t_uc // 1000,
            hc.ocv_uv, st.v_cell_uv, -st.i_cell_ua, hc.q_pc // hc.q_full_ppm, hc.t_uc // 1000,
            c.vbus_uv, c.i_usb_ua, c.i_hold_ua, pl.io2(),
        )  # fmt: skip
        seal(buf, 0, T_PLANT_POWER, POWER_LEN)
        self.flush()
        self._out.write(buf)

    def flush(self):
        if self._n:
            self._out.write(memoryview(self._buf)[: self._n * _FRAME_LEN])
            self._n = 0

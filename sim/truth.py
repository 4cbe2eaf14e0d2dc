"""Records what only the simulator knows (true temperatures, power, cell
state, pin levels) as frames on the same stream as the firmware's telemetry,
one every sample period. The host joins the two by time.

Payload, little-endian, the plant's own fixed-point units: t_us u64
(virtual time), blade i64 (uC), plug i64 (uC), heater power i64 (uW), heater
energy i64 (pJ), cell OCV i32 (uV), cell terminal i32 (uV), SoC i32 (ppm),
draw i32 (uL/s), ambient i32 (mC), io u8 (plant.IO_* bits).
"""

import micropython


import sys
from struct import pack_into

from framing import OVERHEAD, T_PLANT, seal

FMT = "<QqqqqiiiiiB"
PAYLOAD_LEN = 61
_FRAME_LEN = PAYLOAD_LEN + OVERHEAD
_BATCH = 16

class Recorder:
    def __init__(self, plant, out=None):
        self.plant = plant
        self._out = out if out is not None else sys.stdout.buffer
        self._buf = bytearray(_FRAME_LEN * _BATCH)
        self._n = 0

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
        self._n += 1
        if self._n == _BATCH:
            self.flush()

    def flush(self):
        if self._n:
            self._out.write(memoryview(self._buf)[: self._n * _FRAME_LEN])
            self._n = 0

"""Telemetry: one frame per control step, packed in the timer callback into a
preallocated ring and written out by the main loop.

Payload v1, little-endian (see docs/console_protocol.md), as FMT packs it;
the host decodes it by these names (hil/wire/contract.py reads them here):
    seq u16, t_us u32 (ticks_us), state u8 (states.py), flags u8 (FLAG_*),
    puffs u8, fault u8 (faults.py), end_reason u8, setpoint_dc i16 (0.1 C),
    temp_dc i16 (0.1 C), duty u16, power_mw u16, cell_mv u16,
    heater_ma u16 (on-phase current), heater_mv u16 (on-phase voltage)
"""

import sys
from struct import pack_into

import micropython
from framing import T_TELEMETRY, seal
from micropython import const

FMT = "<HIBBBBBhhHHHHH"
PAYLOAD_LEN = const(25)
_FRAME_LEN = const(30)  # PAYLOAD_LEN + framing.OVERHEAD
_SLOTS = const(32)  # the main loop drains every 50 ms: 5 frames

FLAG_HEATER_EN = const(0x01)
FLAG_PUFF = const(0x02)
FLAG_STICK = const(0x04)
FLAG_BUTTON = const(0x08)
FLAG_READY = const(0x10)  # the session has signalled ready
FLAG_IDLE_RATE = const(0x20)  # stepped at the idle rate (1 Hz), not the control rate


class Telemetry:
    def __init__(self, out=None, ring=True):
        """`ring`: make the ring now; else when telemetry is first enabled
        (drain), so that a device that never streams does not spend 1 kB on it."""
        self.enabled = False
        self._buf = None
        self._mv = None
        if ring:
            self._make()
        self._w = 0  # next slot to fill
        self._r = 0  # next slot to send
        self.seq = 0
        self.dropped = 0
        self._out = out if out is not None else sys.stdout.buffer

    @micropython.native
    def record(self, t_us, state, flags, puffs, fault, end_reason, setpoint_dc, temp_dc, duty, power_mw, cell_mv,
               heater_ma, heater_mv):
        """Called from the control step: allocates nothing. The arguments are
        named as the docstring names the payload's fields."""
        buf = self._buf
        if not self.enabled or buf is None:
            return
        w = self._w
        nxt = (w + 1) % _SLOTS
        seq = self.seq
        self.seq = (seq + 1) & 0xFFFF
        if nxt == self._r:  # ring full: the sequence gap tells the reader
            self.dropped += 1
            return
        off = w * _FRAME_LEN
        pack_into(FMT, buf, off + 3, seq, t_us, state, flags, puffs, fault, end_reason,
                         setpoint_dc, temp_dc, duty, power_mw, cell_mv, heater_ma, heater_mv)
        seal(buf, off, T_TELEMETRY, PAYLOAD_LEN)
        self._w = nxt

    def _make(self):
        self._buf = bytearray(_FRAME_LEN * _SLOTS)
        self._mv = memoryview(self._buf)

    def drain(self):
        """Write pending frames (main loop only)."""
        mv = self._mv
        if mv is None:
            if self.enabled:
                self._make()
            return
        w = self._w
        r = self._r
        if r == w:
            return
        if w > r:
            self._out.write(mv[r * _FRAME_LEN : w * _FRAME_LEN])
        else:
            self._out.write(mv[r * _FRAME_LEN :])
            if w:
                self._out.write(mv[: w * _FRAME_LEN])
        self._r = w

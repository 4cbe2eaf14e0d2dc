"""Decoding the device's output stream: frames (firmware/framing.py) and the
payloads the firmware and the simulator put in them. Frame types, lengths
and payload layouts are read from the device's source (contract.py).

The decoder is incremental and never raises on bad input: it skips to the
next sync byte after garbage or a cut frame, counts what it skipped, and hands
unframed bytes back as text (a MicroPython traceback, a REPL banner).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from typing import NamedTuple

from hil.wire import contract

_FRAMING = contract.firmware("framing")
SYNC = _FRAMING.integer("SYNC")
OVERHEAD = _FRAMING.integer("OVERHEAD")
MAX_PAYLOAD = _FRAMING.integer("MAX_PAYLOAD")
FRAME_TYPES = _FRAMING.prefixed("T_")  # name (T_ removed): type byte

T_TELEMETRY = _FRAMING.integer("T_TELEMETRY")
T_REPLY = _FRAMING.integer("T_REPLY")
T_EVENT = _FRAMING.integer("T_EVENT")
T_POWER = _FRAMING.integer("T_POWER")
T_PLANT = _FRAMING.integer("T_PLANT")
T_PLANT_INFO = _FRAMING.integer("T_PLANT_INFO")
T_PLANT_REPLY = _FRAMING.integer("T_PLANT_REPLY")
T_PLANT_POWER = _FRAMING.integer("T_PLANT_POWER")
T_BLE = _FRAMING.integer("T_BLE")  # the emulated BLE controller's text (docs/ble_sim.md)

TEXT_TYPES = {T_REPLY, T_EVENT, T_PLANT_INFO, T_PLANT_REPLY, T_BLE}

# the binary payloads, as the device packs them
TELEMETRY = contract.firmware("telemetry").layout("FMT", "PAYLOAD_LEN")
PLANT = contract.sim("truth").layout("FMT", "PAYLOAD_LEN")
POWER = contract.firmware("charger").layout("FMT", "PAYLOAD_LEN")
PLANT_POWER = contract.sim("truth").layout("POWER_FMT", "POWER_LEN")

TELEMETRY_FMT = TELEMETRY.as_struct()
PLANT_FMT = PLANT.as_struct()
POWER_FMT = POWER.as_struct()
PLANT_POWER_FMT = PLANT_POWER.as_struct()
KNOWN_LENGTHS = {
    T_TELEMETRY: TELEMETRY.size,
    T_PLANT: PLANT.size,
    T_POWER: POWER.size,
    T_PLANT_POWER: PLANT_POWER.size,
}


def crc16(data: bytes | memoryview) -> int:
    """CRC-16/CCITT-FALSE, as the firmware computes it."""
    return binascii.crc_hqx(data, 0xFFFF)


def encode(ftype: int, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload longer than {MAX_PAYLOAD} bytes")
    body = bytes([ftype, len(payload)]) + payload
    crc = crc16(body)
    return bytes([SYNC]) + body + bytes([crc & 0xFF, crc >> 8])


class Frame(NamedTuple):
    ftype: int
    payload: bytes


@dataclass
class DecodeStats:
    frames: int = 0
    bad_crc: int = 0
    skipped_bytes: int = 0
    text_bytes: int = 0
    resyncs: int = 0  # partial frames given up on because nothing more came


@dataclass
class Decoder:
    """Feed bytes, get frames and stray text. Holds at most one partial frame."""

    stats: DecodeStats = field(default_factory=DecodeStats)
    _buf: bytearray = field(default_factory=bytearray)
    _consumed: bytes = b""  # the bytes the last scan's spans index into

    def feed(self, data: bytes) -> tuple[list[Frame], bytes]:
        """Frames completed by `data`, and the bytes between them that are not frames."""
        spans, text = self._scan(data)
        buf = self._consumed
        return [Frame(t, bytes(buf[a:b])) for t, a, b in spans], text

    def feed_grouped(self, data: bytes) -> tuple[dict[int, list[memoryview]], bytes]:
        """Payloads by frame type, for bulk decoding (no object per frame)."""
        spans, text = self._scan(data)
        mv = memoryview(self._consumed)
        out: dict[int, list[memoryview]] = {}
        for t, a, b in spans:
            out.setdefault(t, []).append(mv[a:b])
        return out, text

    def _scan(self, data: bytes) -> tuple[list[tuple[int, int, int]], bytes]:
        """(type, payload start, payload end) of each whole frame in what has
        arrived; keeps a trailing partial frame for the next call."""
        self._buf += data
        buf = self._buf
        mv = memoryview(buf)
        spans: list[tuple[int, int, int]] = []
        text = bytearray()
        i = 0
        n = len(buf)
        stats = self.stats
        while i < n:
            if buf[i] != SYNC:
                j = buf.find(SYNC, i)
                j = n if j < 0 else j
                text += buf[i:j]
                i = j
                continue
            if i + 3 > n:
                break  # header not complete yet
            ftype, length = buf[i + 1], buf[i + 2]
            expected = KNOWN_LENGTHS.get(ftype)
            if (expected is not None and length != expected) or (
                expected is None and ftype not in TEXT_TYPES
            ):
                self._skip(text, buf, i)
                i += 1
                continue
            end = i + OVERHEAD + length
            if end > n:
                break  # wait for the rest
            if crc16(mv[i + 1 : i + 3 + length]) != buf[end - 2] | (buf[end - 1] << 8):
                stats.bad_crc += 1
                self._skip(text, buf, i)
                i += 1
                continue
            spans.append((ftype, i + 3, i + 3 + length))
            i = end
        mv.release()
        stats.frames += len(spans)
        stats.text_bytes += len(text)
        self._consumed = bytes(buf[:i])
        # a new buffer for the rest, not `del buf[:i]`: resizing fails while any view
        # of it lives on, and a sampling profiler (Dask's workers run one) may hold the
        # frame of a call that had a slice of it a moment longer than the call
        self._buf = buf[i:]
        return spans, bytes(text)

    def _skip(self, text: bytearray, buf: bytearray, i: int) -> None:
        self.stats.skipped_bytes += 1
        text.append(buf[i])

    def resync(self) -> tuple[list[Frame], bytes]:
        """Give up on the partial frame held back (the rest never came: the
        frame was cut): skip its sync byte and scan what followed it again."""
        if not self._buf:
            return [], b""
        self.stats.resyncs += 1
        self.stats.skipped_bytes += 1
        first = bytes(self._buf[:1])
        self._buf = self._buf[1:]
        got, text = self.feed(b"")
        return got, first + text

    def pending(self) -> bytes:
        """Bytes held back as a possible partial frame."""
        return bytes(self._buf)


class TelemetryFrame(NamedTuple):
    seq: int
    t_us: int
    state: int
    flags: int
    puffs: int
    fault: int
    end_reason: int
    setpoint_dc: int
    temp_dc: int
    duty: int
    power_mw: int
    cell_mv: int
    heater_ma: int
    heater_mv: int


class PlantSample(NamedTuple):
    """A truth sample in the plant's fixed-point units (see sim/truth.py)."""

    t_us: int
    blade_uc: int
    plug_uc: int
    power_uw: int
    energy_pj: int
    ocv_uv: int
    cell_uv: int
    soc_ppm: int
    flow_ul_s: int
    ambient_mc: int
    io: int


# typed views of two payloads: their fields must be the device's
TELEMETRY.check_names(TelemetryFrame._fields, "hil/wire/frames.py TelemetryFrame")
PLANT.check_names(PlantSample._fields, "hil/wire/frames.py PlantSample")


def telemetry(payload: bytes) -> TelemetryFrame:
    return TelemetryFrame(*TELEMETRY_FMT.unpack(payload))


def plant_sample(payload: bytes) -> PlantSample:
    return PlantSample(*PLANT_FMT.unpack(payload))


def text(payload: bytes) -> str:
    return payload.decode("utf-8", errors="replace")

"""A device's flash as the host prepares it: records in the firmware's store
format (firmware/store.py), as end-of-line test or a previous boot would
have left them."""

from __future__ import annotations

import binascii
import json
import struct
from typing import Any

from hil.wire import contract

CALIB_VERSION = contract.firmware("calib").integer("VERSION")
# the unit id the simulator's machine.unique_id() gives (sim/mpapi/vmachine.py)
SIM_UNIT_ID = contract.sim("mpapi/vmachine").text("UNIT_ID")
OTHER_UNIT_ID = "240ac4000002"  # a neighbour's controller


def slot_file(payload: dict[str, Any], seq: int = 1) -> bytes:
    """One slot file: magic, CRC-32 of (seq, len, payload), seq, len, JSON payload."""
    data = json.dumps(payload).encode()
    head = struct.pack("<IH", seq, len(data))
    crc = binascii.crc32(head + data)
    return struct.pack("<4sI", b"HRS1", crc) + head + data


def calibration(r0_uohm: int, tcr_ppm: int, unit: str = SIM_UNIT_ID) -> dict[str, Any]:
    """A calibration record as end-of-line test stores it (firmware/calib.py):
    the values, the unit they belong to, the format, and the record's own CRC."""
    text = f"{r0_uohm},{tcr_ppm},{unit},{CALIB_VERSION}".encode()
    return {
        "r0_uohm": r0_uohm,
        "tcr_ppm": tcr_ppm,
        "unit": unit,
        "v": CALIB_VERSION,
        "crc": binascii.crc32(text),
    }


def damaged(slot: bytes, byte: int = -1) -> bytes:
    """The slot with one payload byte's bits flipped: its CRC no longer matches."""
    out = bytearray(slot)
    out[byte] ^= 0x5A
    return bytes(out)

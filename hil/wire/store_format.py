"""A device's flash as the host prepares it: records in the firmware's store
format (firmware/store.py), as end-of-line test or a previous boot would
have left them."""

from __future__ import annotations

import binascii
import json
import struct
from typing import Any


def slot_file(payload: dict[str, Any], seq: int = 1) -> bytes:
    """One slot file: magic, CRC-32 of (seq, len, payload), seq, len, JSON payload."""
    data = json.dumps(payload).encode()
    head = struct.pack("<IH", seq, len(data))
    crc = binascii.crc32(head + data)
    return struct.pack("<4sI", b"HRS1", crc) + head + data

"""Wire framing shared by everything the device sends to the host.

    0xA5 | type | len | payload[len] | crc16 (little-endian)

The CRC is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over type, len and
payload. A reader that loses sync skips to the next 0xA5 and accepts a frame
only if its CRC matches, so it recovers after garbage or a cut frame.
"""

import micropython
from micropython import const

SYNC = const(0xA5)
OVERHEAD = const(5)  # sync, type, len, crc16
MAX_PAYLOAD = const(255)

# frame types: 0x0_ firmware, 0x1_ simulated plant (never sent by a product build)
T_TELEMETRY = const(0x01)
T_REPLY = const(0x02)  # text reply to a console command
T_EVENT = const(0x03)  # text event: state changes, faults, boot banner
T_POWER = const(0x04)  # power telemetry: cells, charging, device state (charger.py)
T_PLANT = const(0x10)  # plant truth sample
T_PLANT_INFO = const(0x11)  # plant/simulator text: run metadata, end of run
T_PLANT_REPLY = const(0x12)  # plant/simulator text: the reply to an "@plant" line
T_PLANT_POWER = const(0x13)  # plant truth sample of the cells and chargers
T_BLE = const(0x14)  # emulated BLE controller -> host (sim/mpapi/vbluetooth.py, docs/ble_sim.md)


def _crc_table():
    t = bytearray(512)  # 256 little-endian u16
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
        t[2 * i] = c & 0xFF
        t[2 * i + 1] = c >> 8
    return t


_CRC_TABLE = _crc_table()


@micropython.viper
def crc16(buf: ptr8, start: int, end: int) -> int:
    """CRC of buf[start:end], table-driven."""
    t = ptr16(_CRC_TABLE)
    crc = 0xFFFF
    i = start
    while i < end:
        crc = ((crc << 8) & 0xFF00) ^ t[((crc >> 8) ^ buf[i]) & 0xFF]
        i += 1
    return crc


def seal(buf, off, ftype, n):
    """Write header and CRC around the n-byte payload already at buf[off+3:].
    Returns the frame length. Allocates nothing."""
    buf[off] = SYNC
    buf[off + 1] = ftype
    buf[off + 2] = n
    crc = crc16(buf, off + 1, off + 3 + n)
    buf[off + 3 + n] = crc & 0xFF
    buf[off + 4 + n] = crc >> 8
    return n + OVERHEAD


def text_frame(ftype, text):
    """A whole frame carrying text (truncated to MAX_PAYLOAD bytes). Allocates."""
    data = text.encode()[:MAX_PAYLOAD]
    n = len(data)
    buf = bytearray(n + OVERHEAD)
    buf[3 : 3 + n] = data
    seal(buf, 0, ftype, n)
    return buf

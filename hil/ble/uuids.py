"""UUIDs as the host's BLE code writes them: lower-case 128-bit text, 16-bit
ones on the Bluetooth base; and Bumble's UUIDs from that text."""

from __future__ import annotations

from bumble.core import UUID

BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"

UuidLike = str | int


def uuid128(u: UuidLike | UUID) -> str:
    """Canonical text: 128-bit, lower case; 16-bit ones on the Bluetooth base."""
    if isinstance(u, UUID):
        raw = u.to_bytes(force_128=True)[::-1].hex()
        return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    if isinstance(u, int):
        return f"{u:08x}{BASE_UUID_TAIL}"
    s = u.lower().removeprefix("0x")
    if len(s) in (4, 8):
        return s.rjust(8, "0") + BASE_UUID_TAIL
    if len(s) == 36:
        return s
    raise ValueError(f"not a UUID: {u!r}")


def bumble_uuid(text: str) -> UUID:
    """Bumble's UUID of a table's text ("2a19", or 128-bit)."""
    return UUID(text) if len(text) == 36 else UUID.from_16_bits(int(text, 16))

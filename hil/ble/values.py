"""The kit's GATT profile as the phone sees it: UUIDs, and each
characteristic's bytes decoded into values with units (docs/ble_profile.md;
the firmware's side is firmware/ble_table.py). Little-endian throughout;
structured values start with a format version byte."""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from datetime import datetime, timezone

from hil.wire import contract

BASE_16 = "0000{:04x}-0000-1000-8000-00805f9b34fb"
CUSTOM_BASE = "7e1a{:04x}-5c1d-4b8e-9f2a-6b3c4d5e6f70"
FORMAT_VERSION = 1

DEVICE_INFO = BASE_16.format(0x180A)
BATTERY = BASE_16.format(0x180F)
KIT = CUSTOM_BASE.format(0)

MANUFACTURER = BASE_16.format(0x2A29)
MODEL = BASE_16.format(0x2A24)
SERIAL = BASE_16.format(0x2A25)
HARDWARE_REV = BASE_16.format(0x2A27)
FIRMWARE_REV = BASE_16.format(0x2A26)
SOFTWARE_REV = BASE_16.format(0x2A28)
BATTERY_LEVEL = BASE_16.format(0x2A19)

STATUS = CUSTOM_BASE.format(0x01)
HEATING = CUSTOM_BASE.format(0x02)
COUNTERS = CUSTOM_BASE.format(0x03)
FAULTS = CUSTOM_BASE.format(0x04)
HAPTICS = CUSTOM_BASE.format(0x05)
FIND = CUSTOM_BASE.format(0x06)
LOCK = CUSTOM_BASE.format(0x07)
USAGE = CUSTOM_BASE.format(0x08)
LIMIT = CUSTOM_BASE.format(0x09)
SHARING = CUSTOM_BASE.format(0x0A)
ALERTS = CUSTOM_BASE.format(0x0B)
REGISTRATION = CUSTOM_BASE.format(0x0C)
IDS = CUSTOM_BASE.format(0x0D)
CONTROL = CUSTOM_BASE.format(0x0E)
UPDATE_SERVICE = CUSTOM_BASE.format(0x10)  # firmware update (docs/update.md)
UPDATE_CONTROL = CUSTOM_BASE.format(0x11)
UPDATE_DATA = CUSTOM_BASE.format(0x12)
RESULT = CUSTOM_BASE.format(0x0F)

DEVICE_INFO_CHARS = {
    "manufacturer": MANUFACTURER,
    "model": MODEL,
    "serial": SERIAL,
    "hardware": HARDWARE_REV,
    "firmware": FIRMWARE_REV,
    "software": SOFTWARE_REV,
}

# reachable without bonding; every other custom characteristic needs an encrypted, bonded link
OPEN = frozenset({STATUS, HEATING, ALERTS, BATTERY_LEVEL, *DEVICE_INFO_CHARS.values()})
PROTECTED = (COUNTERS, FAULTS, HAPTICS, FIND, LOCK, USAGE, LIMIT, SHARING,
             REGISTRATION, IDS, CONTROL, RESULT)  # fmt: skip

# ATT errors the kit answers with
ATT_WRITE_NOT_PERMITTED = 0x03
ATT_INSUFFICIENT_AUTHENTICATION = 0x05
_TABLE = contract.firmware("ble_table")
ATT_INSUFFICIENT_ENCRYPTION = _TABLE.integer("ATT_ENCRYPTION")
ATT_INVALID_LENGTH = _TABLE.integer("ATT_LENGTH")
ATT_VALUE_NOT_ALLOWED = _TABLE.integer("ATT_VALUE")
ATT_APP_STATE = _TABLE.integer("ATT_STATE")
SECURITY_ERRORS = (ATT_INSUFFICIENT_AUTHENTICATION, ATT_INSUFFICIENT_ENCRYPTION)

# the firmware's state names (firmware/states.py, firmware/device.py), by index
HEATING_STATES = contract.firmware("states").names("NAMES")
KIT_STATES = contract.firmware("device").names("KIT_NAMES")

CONTROL_RESET = 1
CONTROL_UNPAIR = 2
CONTROL_CLEAR_FAULTS = 3

HAPTIC_EVENTS = ("heating_start", "ready", "end_warning", "refusal")


class ProfileError(ValueError):
    """Bytes that do not decode as the profile says."""


def _unpack(fmt: str, data: bytes, what: str, versioned: bool = True) -> tuple[int, ...]:
    """The fields of a fixed-size value; a structured one starts with its format version."""
    size = struct.calcsize(fmt)
    if len(data) != size:
        raise ProfileError(f"{what}: {len(data)} bytes, the profile says {size}")
    fields = struct.unpack(fmt, data)
    if versioned and fields[0] != FORMAT_VERSION:
        raise ProfileError(f"{what}: format version {fields[0]}, this host knows {FORMAT_VERSION}")
    return fields


def _name(names: tuple[str, ...], i: int) -> str:
    return names[i] if i < len(names) else f"#{i}"


@dataclass(frozen=True)
class Status:
    docked: bool
    holder_charged: bool
    in_session: bool
    usb: bool
    charging: bool
    locked: bool
    limit_reached: bool
    pairing_open: bool
    holder_pct: int
    charger_pct: int
    kit: str


def status(data: bytes) -> Status:
    _, f, holder, charger, kit = _unpack("<BBBBB", data, "status")
    b = [bool(f >> k & 1) for k in range(8)]
    return Status(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], holder, charger,
                  _name(KIT_STATES, kit))  # fmt: skip


@dataclass(frozen=True)
class Heating:
    state: str
    puffs: int
    puffs_max: int
    elapsed_s: int
    remaining_s: int
    end_reason: int


def heating(data: bytes) -> Heating:
    _, state, puffs, puffs_max, elapsed, remaining, end = _unpack("<BBBBHHB", data, "heating")
    return Heating(_name(HEATING_STATES, state), puffs, puffs_max, elapsed, remaining, end)


@dataclass(frozen=True)
class Counters:
    sessions: int
    puffs: int
    heater_on_s: int
    charge_cycles: int
    holder_charges: int
    boots: int


def counters(data: bytes) -> Counters:
    return Counters(*_unpack("<BIIIIII", data, "counters")[1:])


@dataclass(frozen=True)
class Faults:
    active: int
    total: int
    history: list[tuple[int, int]]  # (code, detail), oldest first


def faults(data: bytes) -> Faults:
    if len(data) < 5:
        raise ProfileError(f"faults: {len(data)} bytes, at least 5 expected")
    _, active, total, n = _unpack("<BBHB", data[:5], "faults")
    entries = _unpack("<" + "Bi" * n, data[5:], "faults history", False) if n else ()
    history = [(entries[2 * k], entries[2 * k + 1]) for k in range(n)]
    return Faults(active, total, history)


@dataclass(frozen=True)
class Haptics:
    events: tuple[str, ...]
    intensity_pct: int


def haptics(data: bytes) -> Haptics:
    _, mask, intensity = _unpack("<BBB", data, "haptics")
    events = tuple(e for k, e in enumerate(HAPTIC_EVENTS) if mask >> k & 1)
    return Haptics(events, intensity)


def haptics_value(events: tuple[str, ...], intensity_pct: int) -> bytes:
    mask = sum(1 << HAPTIC_EVENTS.index(e) for e in events)
    return bytes((FORMAT_VERSION, mask, intensity_pct))


@dataclass(frozen=True)
class Usage:
    sessions_24h: int
    puffs_24h: int
    limit: int
    sharing: bool


def usage(data: bytes) -> Usage:
    _, sessions, puffs, lim, sharing = _unpack("<BBHBB", data, "usage")
    return Usage(sessions, puffs, lim, bool(sharing))


@dataclass(frozen=True)
class Alerts:
    too_cold: bool
    too_hot: bool
    ambient_c: int


def alerts(data: bytes) -> Alerts:
    _, f, ambient = _unpack("<BBb", data, "alerts")
    return Alerts(bool(f & 1), bool(f & 2), ambient)


@dataclass(frozen=True)
class Registration:
    registered: bool
    date: datetime | None
    clear_pending: bool


def registration(data: bytes) -> Registration:
    _, reg, date, pending = _unpack("<BBIB", data, "registration")
    when = datetime.fromtimestamp(date, timezone.utc) if reg else None
    return Registration(bool(reg), when, bool(pending))


def register_value(date: datetime) -> bytes:
    return struct.pack("<BBI", FORMAT_VERSION, 1, int(date.timestamp()))


CLEAR_REGISTRATION = bytes((FORMAT_VERSION, 0))


@dataclass(frozen=True)
class Ids:
    holder: str
    charger: str
    box: str


def ids(data: bytes) -> Ids:
    if len(data) != 29 or data[0] != FORMAT_VERSION:
        raise ProfileError(f"ids: {len(data)} bytes (version {data[:1].hex()}), expected 29 (v1)")
    text = data[1:].decode("ascii", "replace")
    return Ids(text[:8], text[8:16], text[16:])


def result(data: bytes) -> tuple[int, int]:
    """(characteristic number of the last handled write, ATT code; 0 = accepted)."""
    op, code = _unpack("<BB", data, "result", versioned=False)
    return op, code


def level(data: bytes) -> int:
    return _unpack("<B", data, "u8", versioned=False)[0]


def text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


DECODERS = {
    STATUS: status,
    HEATING: heating,
    COUNTERS: counters,
    FAULTS: faults,
    HAPTICS: haptics,
    USAGE: usage,
    ALERTS: alerts,
    REGISTRATION: registration,
    IDS: ids,
    RESULT: result,
    BATTERY_LEVEL: level,
    FIND: level,
    LOCK: level,
    LIMIT: level,
    SHARING: level,
    **{u: text for u in DEVICE_INFO_CHARS.values()},
}

NAMES = {
    v: k.lower()
    for k, v in globals().items()
    if isinstance(v, str)
    and k.isupper()
    and k not in ("BASE_16", "CUSTOM_BASE")
    and (v.startswith("7e1a") or v.startswith("00002a"))
}


def describe(u: str, data: bytes) -> str:
    """One characteristic's value for people: decoded where the profile knows it."""
    dec = DECODERS.get(u)
    if dec is None:
        return data.hex()
    try:
        value = dec(data)
    except ProfileError as e:
        return f"{data.hex()} ({e})"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return " ".join(f"{k}={v}" for k, v in dataclasses.asdict(value).items())
    return str(value)

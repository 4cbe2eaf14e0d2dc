"""Small records on flash that survive a power cut at any instant.

Each record has two slot files, NAME.a and NAME.b. A save writes the slot
that does NOT hold the newest valid copy, in one write:

    magic "HRS1" | crc32 u32 | seq u32 | len u16 | payload (JSON, len bytes)

The CRC covers seq, len and payload. A load reads both slots and takes the
valid one with the higher seq. A write cut short by a power cut leaves its
slot short or torn (length or CRC mismatch), and the other slot, holding the
previous record, still loads: after a cut the record is either the new one,
complete, or the previous one, never a mix. Nothing relies on rename being
atomic.

A missing, short or corrupt record yields the caller's defaults and never
stops the device from booting; what was found wrong is kept in `problems`
for the boot report.
"""

import json
import struct
from binascii import crc32

from micropython import const

_MAGIC = b"HRS1"
_HDR = "<4sIIH"
_HDR_LEN = const(14)
_MAX_LEN = const(4096)

_newest = {}  # type: dict[str, tuple[int, str]]  # name -> (seq, slot) of the newest copy
problems = []  # type: list[str]  # "settings.b: crc" and the like, found since boot
# While hold() is true a save waits in RAM (the newest record of each name)
# until flush(): on the ESP32 a flash write or erase stops the soft timers,
# the control step with them, for up to hundreds of ms (docs/esp32.md).
hold = None  # type: object  # fn() -> bool, or None: never wait
_held = {}  # type: dict[str, dict]


def _read_slot(path):
    """(seq, payload) of a valid slot file; None if absent or invalid. Reads
    the header, then exactly the length it gives: no big buffer on a tight heap."""
    try:
        f = open(path, "rb")  # noqa: SIM115  apart, so that only its OSError means absent; closed by `with f`
    except OSError:
        return None
    with f:
        hdr = f.read(_HDR_LEN)
        why = "short"
        if len(hdr) == _HDR_LEN:
            magic, crc, seq, n = struct.unpack(_HDR, hdr)
            why = "not a record"
            if magic == _MAGIC:
                payload = f.read(n + 1) if n <= _MAX_LEN else b""
                why = "length"
                if len(payload) == n:
                    if crc32(payload, crc32(memoryview(hdr)[8:])) == crc:
                        return seq, payload
                    why = "crc"
    problems.append(path + ": " + why)
    return None


def _decode(name, payload, defaults):
    try:
        data = json.loads(payload)
    except ValueError:
        problems.append(name + ": not JSON")
        return None
    if not isinstance(data, dict):
        problems.append(name + ": not a record")
        return None
    rec = dict(defaults)
    for k in defaults:
        if k in data and type(data[k]) is type(defaults[k]):
            rec[k] = data[k]
    return rec


def load(name, defaults):
    """(record, ok): the newest valid record `name` merged over a copy of
    `defaults` (unknown keys dropped), or a copy of the defaults and False."""
    if name in _held:  # saved, waiting for flush(): the newest
        rec = dict(defaults)
        held = _held[name]
        for k in defaults:
            if k in held:
                rec[k] = held[k]
        return rec, True
    found = []
    for slot in "ab":
        got = _read_slot(name + "." + slot)
        if got:
            found.append((got[0], slot, got[1]))
    found.sort(reverse=True)  # newest first
    for seq, slot, payload in found:
        _newest[name] = (seq, slot)
        rec = _decode(name + "." + slot, payload, defaults)
        if rec is not None:
            return rec, True
    return dict(defaults), False


def save(name, rec):
    """Write `rec` (a JSON-able dict) as the newest copy of record `name`;
    while hold() is true, keep it for flush() instead."""
    if hold is not None and hold():  # type: ignore[operator]
        _held[name] = rec
        return
    _write(name, rec)


def waiting():
    return bool(_held)


def flush():
    """Write the records kept while hold() was true."""
    while _held:
        name, rec = _held.popitem()
        _write(name, rec)


def _write(name, rec):
    if name not in _newest:
        load(name, {})  # learn which slot holds the newest copy
    seq, slot = _newest.get(name, (0, "b"))
    slot = "b" if slot == "a" else "a"
    seq += 1
    payload = json.dumps(rec)  # written as it is (a str is a buffer here): no copies on a tight heap
    n = len(memoryview(payload))  # type: ignore[arg-type]  # bytes, not characters
    if n > _MAX_LEN:
        raise ValueError(name + ": record too long")
    crc = crc32(payload, crc32(struct.pack("<IH", seq, n)))
    with open(name + "." + slot, "wb") as f:
        f.write(struct.pack(_HDR, _MAGIC, crc, seq, n))
        f.write(payload)
    _newest[name] = (seq, slot)

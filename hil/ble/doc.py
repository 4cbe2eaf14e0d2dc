"""docs/ble_profile.md, rendered from the firmware's GATT table (firmware/ble_table.py).

    heatrig ble doc > docs/ble_profile.md

tests/ble/test_ble_table.py fails when the committed page and the table differ.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import types
from typing import Any

from hil.paths import FIRMWARE_DIR

_PROPS = (
    ("READ", "read"),
    ("WRITE", "write"),
    ("WRITE_NO_RESPONSE", "write without response"),
    ("NOTIFY", "notify"),
)
_TYPES = {
    "u8": "u8",
    "i8": "i8",
    "u16": "u16 LE",
    "u32": "u32 LE",
    "i32": "i32 LE",
    "utf8": "UTF-8",
}
_ATT = {
    0x0D: "0x0D invalid attribute value length",
    0x13: "0x13 value not allowed",
    0x80: "0x80 not in this state",
}


def load_table() -> types.ModuleType:
    """firmware/ble_table.py in CPython (its `micropython.const` shimmed)."""
    if "micropython" not in sys.modules:
        mp = types.ModuleType("micropython")
        mp.const = lambda x: x  # type: ignore[attr-defined]
        sys.modules["micropython"] = mp
    path = FIRMWARE_DIR / "ble_table.py"
    spec = importlib.util.spec_from_file_location("heatrig_ble_table", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _uuid(t: types.ModuleType, n: int, custom: bool) -> str:
    return str(t.custom_uuid(n)) if custom else f"0x{n:04X}"


def _type(name: str) -> str:
    if name.startswith("a") and name[1:].isdigit():
        return f"{name[1:]} ASCII bytes"
    return _TYPES[name]


def _range(f: tuple[Any, ...]) -> str:
    lo, hi = f[3], f[4]
    if f[1] == "utf8" or (f[1].startswith("a") and lo is None):
        return ""
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f">= {lo}"
    return str(lo) if lo == hi else f"{lo}..{hi}"


def _fields(fields: tuple[tuple[Any, ...], ...], indent: str = "") -> list[str]:
    rows = []
    for f in fields:
        name, typ, unit, _lo, _hi, desc = f
        rows.append(f"| {indent}{name} | {_type(typ)} | {unit} | {_range(f)} | {desc} |")
    return rows


def _size(t: types.ModuleType, ch: tuple[Any, ...]) -> str:
    fields, rep = ch[4], ch[5]
    if not fields or fields[0][1] == "utf8":
        return "variable"
    n = int(t.field_fmt(fields)[1])
    if rep:
        k = int(t.field_fmt(rep[1])[1])
        return f"{n} + n x {k} bytes (at most {n + rep[0] * k})"
    return f"{n} bytes"


def _errors(ch: tuple[Any, ...]) -> str:
    if not ch[6]:
        return "-"
    codes = [0x0D, 0x13]
    if ch[1] == "registration":
        codes.append(0x80)
    return "; ".join(_ATT[c] for c in codes)


def render() -> str:
    t = load_table()
    out = [
        "# BLE profile",
        "",
        "Generated from `firmware/ble_table.py` by `heatrig ble doc > docs/ble_profile.md`;",
        "do not edit by hand (tests/ble/test_ble_table.py compares the two).",
        "",
        "",
        f"The device advertises as `{t.NAME}` with the heatrig service's 128-bit UUID, "
        f"connectable, every {t.ADV_INTERVAL_MS} ms, and again after every disconnection. "
        "Every multi-byte field is little-endian. `enc`: the characteristic needs an "
        "encrypted link (a bonded central); on an open one the stack answers ATT 0x0F "
        "insufficient encryption. New bonds are accepted only while the pairing window "
        "is open (double click of the charger button; 60 s; the holder LED blinks fast; "
        "it closes when a bond is stored).",
        "A refused write changes nothing: the simulator's stack answers it with the ATT "
        "error below; on the ESP32 (whose stack cannot return it) the write succeeds at "
        "the ATT level, the previous value is restored, and `result` holds the code. "
        "Notifications are sent only when a value changes.",
    ]
    out = out[:5] + [p for para in out[6:] for p in (textwrap.fill(para, 80), "")]
    for uuid, sname, first, end in t.SERVICES:
        custom = uuid <= t.CUSTOM_MAX
        out.append(f"## {sname} ({_uuid(t, uuid, custom)})")
        out.append("")
        for ch in t.CHARS[first:end]:
            cu, name, props, enc, fields, rep, writes, desc = ch
            plist = [p for flag, p in _PROPS if props & getattr(t, flag)]
            out.append(f"### {name} ({_uuid(t, cu, custom)})")
            out.append("")
            out.append(f"- properties: {', '.join(plist)}")
            out.append(f"- security: {'enc (encrypted, bonded link)' if enc else 'open'}")
            if fields:
                out.append(f"- value: {_size(t, ch)}")
            out.append(f"- ATT errors on write: {_errors(ch)}")
            out.append("")
            out.append(textwrap.fill(desc, 80))
            out.append("")
            if fields:
                out.append("| field | type | unit | range | meaning |")
                out.append("|---|---|---|---|---|")
                out.extend(_fields(fields))
                if rep:
                    out.append(f"| then n (at most {rep[0]}) times: | | | | |")
                    out.extend(_fields(rep[1], indent="- "))
                out.append("")
            for i, form in enumerate(writes or ()):
                n = int(t.field_fmt(form)[1])
                out.append(f"Write form {i + 1} ({n} bytes):")
                out.append("")
                out.append("| field | type | unit | range | meaning |")
                out.append("|---|---|---|---|---|")
                out.extend(_fields(form))
                out.append("")
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()

"""The BLE profile's table, its documentation, and the firmware's pure BLE
parts: write checks, the advertisement, ids, the usage gate (CPython, see
fw_harness), and the bond store (the unix port, on a scratch flash)."""

from __future__ import annotations

import itertools
import re
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import fw_harness as fw
import pytest
from conftest import run_mpy

from hil.ble import doc as ble_doc
from hil.paths import FIRMWARE_DIR, ROOT

DOC = ROOT / "docs" / "ble_profile.md"
T = ble_doc.load_table()


def _gatt() -> types.ModuleType:
    """firmware/ble_gatt.py for its pure functions: `bluetooth` is only named."""
    sys.modules.setdefault("bluetooth", types.ModuleType("bluetooth"))
    return fw.firmware("ble_gatt")


def test_the_committed_doc_is_the_table() -> None:
    assert DOC.read_text() == ble_doc.render(), (
        "docs/ble_profile.md differs from firmware/ble_table.py: "
        "heatrig ble doc > docs/ble_profile.md"
    )


def test_the_doc_names_every_characteristic() -> None:
    text = DOC.read_text()
    for ch in T.CHARS:
        assert f"### {ch[1]} (" in text
    assert T.custom_uuid(0) in text


def test_ble_gatt_indices_are_the_tables() -> None:
    """ble_gatt.py numbers the characteristics with its own const()s (a
    const is not shared between modules): they must follow the table."""
    src = (FIRMWARE_DIR / "ble_gatt.py").read_text()
    consts = {m[1]: int(m[2]) for m in re.finditer(r"^_([A-Z0-9_]+) = const\((\d+)\)", src, re.M)}
    names = [ch[1] for ch in T.CHARS]
    for const, name in {
        "SERIAL": "serial",
        "FIRMWARE_REV": "firmware_rev",
        "BATTERY": "battery_level",
        "STATUS": "status",
        "HEATING": "heating",
        "COUNTERS": "counters",
        "FAULTS": "faults",
        "HAPTICS": "haptics",
        "FIND": "find",
        "LOCK": "lock",
        "USAGE": "usage",
        "LIMIT": "limit",
        "SHARING": "sharing",
        "ALERTS": "alerts",
        "REGISTRATION": "registration",
        "IDS": "ids",
        "CONTROL": "control",
        "RESULT": "result",
    }.items():
        assert names[consts[const]] == name, const
    assert (
        consts["N"] == T.SERVICES[2][3]
    )  # the kit's own; the update service's are ble_update.py's
    for k, ch in enumerate(T.CHARS[7:22], start=7):
        assert k == consts["NN0"] + ch[0]  # custom characteristic NN at _NN0 + NN


@pytest.mark.parametrize(
    "name",
    ["status", "heating", "counters", "haptics", "usage", "alerts", "registration", "ids"],
)
def test_ble_gatt_packs_the_tables_formats(name: str) -> None:
    ch = next(c for c in T.CHARS if c[1] == name)
    fmt = T.field_fmt(ch[4])[0]
    src = (FIRMWARE_DIR / "ble_gatt.py").read_text()
    assert f'pack_into("{fmt}", self._alt[_{name.upper()}]' in src or (
        f'pack_into("{fmt}", self._val[_{name.upper()}]' in src
    ), f"{name}: ble_gatt.py packs it otherwise than {fmt}"


def test_the_services_cover_the_characteristics_in_order() -> None:
    ends = [(s[2], s[3]) for s in T.SERVICES]
    assert ends[0][0] == 0 and ends[-1][1] == len(T.CHARS)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ends))
    assert [ch[0] for ch in T.CHARS[7:22]] == list(range(1, 16))
    assert [ch[0] for ch in T.CHARS[22:]] == [0x11, 0x12]  # the update service (0x10)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("status", 5),
        ("heating", 9),
        ("counters", 25),
        ("haptics", 3),
        ("usage", 6),
        ("alerts", 3),
        ("registration", 7),
        ("ids", 29),
        ("result", 2),
        ("find", 1),
        ("lock", 1),
    ],
)
def test_value_sizes_are_the_contracts(name: str, size: int) -> None:
    ch = next(c for c in T.CHARS if c[1] == name)
    assert T.field_fmt(ch[4])[1] == size


def _check(name: str, data: bytes) -> tuple[int, Any]:
    ch = next(c for c in T.CHARS if c[1] == name)
    return _gatt().check(T.compile_forms(ch[6]), data)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("haptics", bytes([1, 0x0F, 100]), 0),
        ("haptics", bytes([2, 0x0F, 100]), 0x13),
        ("haptics", bytes([1, 0x10, 100]), 0x13),
        ("haptics", bytes([1, 0x0F, 101]), 0x13),
        ("haptics", bytes([1, 0x0F]), 0x0D),
        ("find", bytes([0]), 0),
        ("find", bytes([120]), 0),
        ("find", bytes([121]), 0x13),
        ("find", bytes([1, 0]), 0x0D),
        ("lock", bytes([1]), 0),
        ("lock", bytes([2]), 0x13),
        ("limit", bytes([30]), 0),
        ("limit", bytes([31]), 0x13),
        ("sharing", bytes([0]), 0),
        ("sharing", bytes([2]), 0x13),
        ("control", bytes([3]), 0),
        ("control", bytes([0]), 0x13),
        ("control", bytes([4]), 0x13),
        ("control", b"", 0x0D),
        ("registration", bytes([1, 1, 0, 0x10, 0, 0x68]), 0),
        ("registration", bytes([1, 1, 0, 0, 0, 0]), 0x13),  # no date
        ("registration", bytes([1, 0]), 0),
        ("registration", bytes([1, 1]), 0x13),
        ("registration", bytes([1, 0, 0]), 0x0D),
    ],
)
def test_writes_are_checked_as_the_contract_says(name: str, data: bytes, code: int) -> None:
    assert _check(name, data)[0] == code


def test_the_advertisement_fits_and_names_the_service() -> None:
    g = _gatt()
    adv = g.adv_payload(T.NAME, T.custom_uuid(0))
    assert len(adv) <= 31
    assert b"\x08\x09heatrig" in adv
    uuid_le = bytes(reversed(bytes.fromhex(T.custom_uuid(0).replace("-", ""))))
    assert bytes([17, 0x07]) + uuid_le in adv


def test_ids_come_from_the_factory_record_or_the_address() -> None:
    g = _gatt()
    rec = {"holder": "HA000001", "charger": "CB000002", "box": "123456789012"}
    assert g.ids_for(rec, b"\x24\x0a\xc4\x12\x34\x56") == ("HA000001", "CB000002", "123456789012")
    holder, charger, box = g.ids_for(g.IDS_DEFAULTS, b"\x24\x0a\xc4\x12\x34\x56")
    assert holder == charger == "C4123456"
    assert len(box) == 12 and box.isdigit()


def _usage(**kw: Any) -> Any:
    s = {"locked": False, "limit": 0, "sharing": True}
    s.update(kw)
    return fw.firmware("usage").Usage(s)


def test_lock_and_daily_limit_gate_the_holder_button() -> None:
    u = _usage()
    assert u.refusal() is None
    u.settings["locked"] = True
    assert u.refusal() == "locked"
    u.settings["locked"] = False
    u.settings["limit"] = 2
    u.started(0)
    assert u.refusal() is None
    u.started(0)
    assert u.refusal() == "limit" and u.limit_reached()
    u.now_s += 86400  # a day later the window has rolled past both
    assert u.refusal() is None and u.sessions_24h() == 0


def test_usage_history_counts_sessions_and_puffs() -> None:
    u = _usage()
    for puffs in (12, 14, 9):
        u.started(0)
        u.ended(puffs)
    assert (u.sessions_24h(), u.puffs_24h()) == (3, 35)


def test_opting_out_keeps_no_history() -> None:
    u = _usage()
    u.started(0)
    u.ended(12)
    u.settings["sharing"] = False
    u.forget()
    assert (u.sessions_24h(), u.puffs_24h()) == (0, 0)
    u.started(0)  # nothing to keep: no limit
    assert u.sessions_24h() == 0
    u.settings["limit"] = 1  # a limit needs the start times, and only those
    u.started(0)
    u.ended(10)
    assert (u.sessions_24h(), u.puffs_24h()) == (1, 0)
    assert u.refusal() == "limit"


_BONDS = """
import os, json
from binascii import hexlify
os.chdir(DIR)
import bonds
b = bonds.Bonds()
out = {}
ok = [b.set(1, bytes([0, 1, 2, 3, 4, 5, k]), bytes([k]) * 64) for k in range(14)]
ok.append(b.set(2, bytes([0, 1, 2, 3, 4, 5, 13]), b"peer" * 16))
out["ok"] = ok
out["too_long"] = [b.set(1, bytes(17), b"x"), b.set(1, b"k", bytes(129)), b.set(4, b"k", b"x")]
again = bonds.Bonds()  # as the next boot reads them
out["peers"] = [hexlify(k).decode() for k in again.peers()]
last = bytes([0, 1, 2, 3, 4, 5, 13])
out["get"] = [hexlify(again.get(1, 0, None)).decode(), hexlify(again.get(2, 0, last)).decode()]
out["missing"] = again.get(1, 0, bytes([0, 1, 2, 3, 4, 5, 0])) is None
again.set(1, last, None)
out["deleted"] = again.get(1, 0, last) is None and bonds.Bonds().known(last)
again.clear()
out["cleared"] = bonds.Bonds().entries == []
print(json.dumps(out))
"""


def test_bonds_keep_twelve_peers_on_flash(tmp_path: Path) -> None:
    out = run_mpy(f"DIR = {str(tmp_path)!r}\n" + textwrap.dedent(_BONDS))
    assert out["ok"] == [True] * 15
    assert out["too_long"] == [False, False, False]
    assert out["peers"] == [f"000102030405{k:02x}" for k in range(2, 14)]  # the oldest two dropped
    assert out["get"] == ["02" * 64, (b"peer" * 16).hex()]
    assert out["missing"]
    assert out["deleted"]  # one secret of the peer gone, its other one kept
    assert out["cleared"]

"""Records on flash survive a power cut at any byte of a write.

In the unix port, with the firmware's own modules on the simulator's flash
(sim/mpapi/vflash.py): for every record the firmware keeps -- settings, calibration,
lifetime counters, fault log, BLE bonds -- the power is cut at every byte
offset of a save, the device "reboots" (its modules are loaded afresh) and
reads everything back. Each record must be the previous one or, once the
write is complete, the new one; the others untouched; and nothing may raise.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import sim_scenario

from hil.simulator import toolchain
from hil.wire import store_format

# Runs in MicroPython, in a fresh flash directory. Prints one JSON line.
_CUT_SCRIPT = """
import sys, json
from binascii import hexlify
from sim.mpapi import vflash
from sim.kernel import SimEnd

fs = vflash.mount(FLASH)
FIRMWARE = ("store", "settings", "calib", "faults", "bonds")  # the state a reboot loses
FILES = {"settings": "settings", "calib": "calib", "counters": "counters", "faults": "faults",
         "bonds": "bonds"}


def boot():
    for m in FIRMWARE:
        sys.modules.pop(m, None)
    import store, settings, calib, faults, bonds
    return store, settings, calib, faults, bonds


def state():
    # everything a booting device reads back
    store, settings, calib, faults, bonds = boot()
    fl = faults.FaultLog()
    fl.load()
    c = calib.load()
    cnt, _ = store.load("counters", {"sessions": 0, "puffs": 0})
    return {
        "settings": settings.load(),
        "calib": [c.r0_uohm, c.tcr_ppm, c.stored],
        "counters": cnt,
        "faults": [list(e) for e in fl.entries()],
        "bonds": [[e[0], hexlify(e[1]).decode(), hexlify(e[2]).decode()] for e in bonds.load()],
    }


def write(kind, k):
    # the k-th version of one record, through the firmware's own API
    store, settings, calib, faults, bonds = boot()
    if kind == "settings":
        settings.save({"profile": ("standard", "eco", "intense")[k % 3], "telemetry": k % 2 == 1,
                       "power_telemetry": False})
    elif kind == "calib":
        calib.save(800000 + 1000 * k, 3500 + k)
    elif kind == "counters":
        store.save("counters", {"sessions": k, "puffs": 12 * k})
    elif kind == "faults":
        fl = faults.FaultLog()
        fl.load()
        fl.record(1 + k % 11, 1000 * k, k)
        fl.save()
    else:
        bonds.Bonds().set(1 + k % 2, bytes([0, 0xC0, 0xFF, 0xEE, 0, 0, k]), bytes(range(k, k + 16)))


def size_of(kind, k):
    # bytes a save writes: arm past them, save, count what the shim passed
    fs.arm(1 << 30)
    write(kind, k)
    n = (1 << 30) - fs.cut_after
    fs.arm(-1)
    return n


def snapshot(kind):
    # straight on the host's directory, around the shim
    files = {}
    for slot in ("a", "b"):
        try:
            with open(FLASH + "/" + FILES[kind] + "." + slot, "rb") as f:
                files[slot] = f.read()
        except OSError:
            files[slot] = None
    return files


def restore(kind, files):
    import os
    for slot, data in files.items():
        path = FLASH + "/" + FILES[kind] + "." + slot
        if data is None:
            try:
                os.remove(path)
            except OSError:
                pass
        else:
            with open(path, "wb") as f:
                f.write(data)


out = {}
for kind in KINDS:
    for k in (1, 2):  # history: both slots hold a copy
        write(kind, k)
    saved = snapshot(kind)
    n_bytes = size_of(kind, 3)  # bytes the third version takes
    restore(kind, saved)
    before = state()
    results = []
    for n in range(n_bytes + 1):
        fs.arm(n)
        try:
            write(kind, 3)
            cut = False
        except SimEnd:
            cut = True
        fs.dead = False  # the next boot
        try:
            now = state()
        except Exception as e:
            results.append(["crash", n, repr(e)])
            break
        others = all(now[x] == before[x] for x in now if x != kind)
        results.append([n, cut, now[kind] == before[kind], others])
        last = now[kind]
        restore(kind, saved)  # the previous version is the newest again, for the next offset
    out[kind] = {"bytes": n_bytes, "results": results, "before": before[kind], "last": last}
json.dump(out, sys.stdout)  # streamed: no one 6 kB string on a heap the re-imports fragment
print()
"""

KINDS = ("settings", "calib", "counters", "faults", "bonds")


def _run_in_micropython(code: str, flash: Path) -> Any:
    argv, env = toolchain.micropython_command(
        ["-c", code],
        heap="512K",  # compiles the script too
        modules=toolchain.sim_modules(),
    )
    r = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=flash,
        env=env,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cuts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    flash = tmp_path_factory.mktemp("flash")
    code = f"FLASH = {str(flash)!r}\nKINDS = {KINDS!r}\n" + textwrap.dedent(_CUT_SCRIPT)
    return _run_in_micropython(code, flash)  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", KINDS)
def test_power_cut_at_every_byte_keeps_the_previous_record(cuts: dict[str, Any], kind: str) -> None:
    res = cuts[kind]
    rows = res["results"]
    assert not [r for r in rows if r[0] == "crash"], rows
    n_bytes = res["bytes"]
    assert n_bytes > 20  # a header and a JSON payload
    assert [r[0] for r in rows] == list(range(n_bytes + 1)), "an offset was skipped"
    for n, cut, kept_previous, others_intact in rows:
        assert cut, f"{kind}: the power did not fail at byte {n}"
        assert others_intact, f"{kind}: a cut at byte {n} changed another record"
        if n < n_bytes:
            assert kept_previous, f"{kind}: a cut at byte {n} of {n_bytes} lost the previous record"
    # cut after the last byte: the new record is complete, and it is the one read
    assert not rows[-1][2]


def test_the_cut_write_is_the_only_loss(cuts: dict[str, Any]) -> None:
    """Across all the cuts, every record read back is one the firmware wrote."""
    assert cuts["counters"]["before"] == {"sessions": 2, "puffs": 24}
    assert cuts["calib"]["before"] == [802000, 3502, True]
    assert cuts["faults"]["last"][-1][0] == 4  # the new entry, after the previous ones
    assert cuts["counters"]["last"] == {"sessions": 3, "puffs": 36}


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated", "bad_crc"])
def test_a_damaged_record_is_reported_and_the_device_boots(damage: str) -> None:
    """The newest copy of the counters is damaged on flash: the firmware boots,
    says so, and uses the previous copy."""
    good = store_format.slot_file({"sessions": 7, "puffs": 80}, 7)
    newest = store_format.slot_file({"sessions": 8, "puffs": 92}, 8)
    bad = {
        "garbage": b"\x00\xff" * 40,
        "empty": b"",
        "truncated": newest[:-5],
        "bad_crc": newest[:-1] + bytes([newest[-1] ^ 1]),
    }[damage]
    res = sim_scenario(
        """
        [scenario]
        name = "damaged"
        duration_s = 3.0
        [start]
        session = false
        """,
        flash_files={"counters.a": good, "counters.b": bad},
    )
    boot = next(c for c in res.console if c.startswith("boot "))
    assert "sessions=7 puffs=80" in boot
    assert any(c.startswith("store counters.b: ") for c in res.console), res.console


def test_unreadable_settings_fall_back_to_defaults_and_say_so() -> None:
    res = sim_scenario(
        """
        [scenario]
        name = "bad settings"
        duration_s = 3.0
        [start]
        session = false
        """,
        flash_files={"settings.a": b"HRS1" + b"\x00" * 30, "settings.b": b"{not a record"},
    )
    assert any(c.startswith("boot ") and "profile=standard" in c for c in res.console)
    assert any(c.startswith("store settings.a: ") for c in res.console)
    assert any(c.startswith("store settings.b: ") for c in res.console)


def _session_with_cut(at_byte: int | None, t_s: float = 355.0) -> Any:
    """A session and a power cut: armed at t_s for at_byte bytes into the next
    flash write (the counters at the session's end), or at t_s itself."""
    arm = f"at_write_byte = {at_byte}" if at_byte is not None else ""
    return sim_scenario(
        f"""
        [scenario]
        name = "cut"
        duration_s = 400.0
        [puffing]
        regime = "hci"
        [record]
        telemetry = false
        [[events]]
        t_s = {t_s}
        action = "power_cut"
        {arm}
        """
    )


def _boots(res: Any) -> list[str]:
    return [c for c in res.console if c.startswith("boot ")]


@pytest.mark.parametrize("at_byte", [0, 13, 14, 30])
def test_a_cut_counters_write_loses_only_that_session(at_byte: int) -> None:
    res = _session_with_cut(at_byte)
    assert res.info["boots"] == "2" and len(res.reboots) == 1, res.reboots
    first, second = _boots(res)
    assert "boots=1 sessions=0 puffs=0" in first
    assert "boots=2 sessions=0 puffs=0" in second  # the session in flight is the only loss
    assert any(c.startswith("store counters.") for c in res.console)  # the torn copy, reported


def test_a_cut_after_the_write_keeps_the_new_counters() -> None:
    res = _session_with_cut(None, t_s=370.0)  # the session ended and was counted at 363 s
    assert "boots=2 sessions=1 puffs=12" in _boots(res)[1]


def test_holding_the_charger_button_10_s_resets_with_nothing_lost() -> None:
    res = sim_scenario(
        """
        [scenario]
        name = "reset"
        duration_s = 420.0
        [puffing]
        regime = "hci"
        [[events]]
        t_s = 400.0
        action = "charger_button"
        hold_s = 11.0
        """
    )
    assert "reset" in res.console
    assert res.reboots and "reason=machine_reset" in res.reboots[0]
    assert "boots=2 sessions=1 puffs=12" in _boots(res)[1]

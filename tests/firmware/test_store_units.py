"""The record store's format checks, each at its edge, in CPython (fw_harness):
the magic, the header's length, the payload's length, the CRC over seq,
length and payload -- each one alone decides, with everything else valid --
the newest copy chosen by its sequence number, and what a load reports.
(tests/firmware/test_store.py cuts the power at every byte of a write on
the simulator.)"""

from __future__ import annotations

import json
import struct
from binascii import crc32
from pathlib import Path
from typing import Any

import fw_harness as fw
import pytest
from fw_edges import limit

from hil.wire import store_format

store = fw.firmware("store")
HDR = struct.Struct(store._HDR)
HDR_LEN = limit(store, "_HDR_LEN")
MAX_LEN = limit(store, "_MAX_LEN")
DEFAULTS = {"sessions": 0, "puffs": 0}


@pytest.fixture(autouse=True)
def flash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory is the flash; the store's memory starts afresh."""
    monkeypatch.chdir(tmp_path)
    store._newest.clear()
    del store.problems[:]
    return tmp_path


def slot(payload: bytes, seq: int, *, magic: bytes = b"HRS1", n: int | None = None,
         crc: int | None = None) -> bytes:  # fmt: skip
    """A slot file as store.save writes it, any field overridden."""
    n = len(payload) if n is None else n
    if crc is None:
        crc = crc32(payload, crc32(struct.pack("<IH", seq, n)))
    return HDR.pack(magic, crc, seq, n) + payload


def record(d: dict[str, Any]) -> bytes:
    return json.dumps(d).encode()


def load() -> tuple[dict[str, Any], bool]:
    rec, ok = store.load("counters", DEFAULTS)
    return dict(rec), bool(ok)


def test_the_header_is_what_the_host_reads() -> None:
    assert HDR.size == HDR_LEN == 14
    assert store._MAGIC == b"HRS1"
    data = record({"sessions": 3, "puffs": 9})
    assert slot(data, 5) == store_format.slot_file({"sessions": 3, "puffs": 9}, 5)


def test_a_valid_slot_loads(flash: Path) -> None:
    (flash / "counters.a").write_bytes(slot(record({"sessions": 3, "puffs": 9}), 1))
    assert load() == ({"sessions": 3, "puffs": 9}, True)
    assert store.problems == []


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ("header one byte short", "short"),
        ("magic", "not a record"),
        ("one byte missing", "length"),
        ("one byte too many", "length"),
        ("length past the limit", "length"),
        ("crc of the payload", "crc"),
        ("crc of seq", "crc"),
        ("crc of the length", "crc"),
    ],
)
def test_each_check_alone_rejects_a_slot(flash: Path, damage: str, why: str) -> None:
    """The newest copy (seq 2) damaged in one way, its JSON still valid: the
    previous copy (seq 1) is the one loaded, and the damage is reported."""
    old = record({"sessions": 1, "puffs": 5})
    new = record({"sessions": 2, "puffs": 9})
    good = slot(new, 2)
    right = crc32(new, crc32(struct.pack("<IH", 2, len(new))))  # the CRC of the good copy
    longer = new + b" "  # still the same JSON
    bad = {
        "header one byte short": good[: HDR_LEN - 1],
        "magic": slot(new, 2, magic=b"HRS2"),
        "one byte missing": good[:-1],
        "one byte too many": good + b" ",
        "length past the limit": slot(new, 2, n=MAX_LEN + 1),
        "crc of the payload": slot(new.replace(b"9", b"8"), 2, crc=right),
        "crc of seq": slot(new, 3, crc=right),
        "crc of the length": slot(
            longer, 2, crc=crc32(longer, crc32(struct.pack("<IH", 2, len(new))))
        ),
    }[damage]
    (flash / "counters.a").write_bytes(slot(old, 1))
    (flash / "counters.b").write_bytes(bad)
    assert load() == ({"sessions": 1, "puffs": 5}, True)
    assert store.problems == [f"counters.b: {why}"]


def test_the_longest_payload_loads_and_one_byte_more_is_refused(flash: Path) -> None:
    pad = MAX_LEN - len(record({"sessions": 1, "puffs": 2, "x": ""}))
    longest = {"sessions": 1, "puffs": 2, "x": "y" * pad}
    assert len(record(longest)) == MAX_LEN
    store.save("counters", longest)
    rec, ok = store.load("counters", {**DEFAULTS, "x": ""})
    assert ok and rec["x"] == "y" * pad
    with pytest.raises(ValueError, match="record too long"):
        store.save("counters", {**longest, "x": "y" * (pad + 1)})
    assert store.load("counters", {**DEFAULTS, "x": ""})[0]["x"] == "y" * pad  # unchanged


def test_the_newest_valid_copy_wins_by_its_sequence_number(flash: Path) -> None:
    (flash / "counters.a").write_bytes(slot(record({"sessions": 7, "puffs": 0}), 7))
    (flash / "counters.b").write_bytes(slot(record({"sessions": 8, "puffs": 0}), 8))
    assert load()[0]["sessions"] == 8
    (flash / "counters.a").write_bytes(slot(record({"sessions": 9, "puffs": 0}), 9))
    store._newest.clear()
    assert load()[0]["sessions"] == 9
    assert store.problems == []


def test_a_save_writes_the_other_slot_with_the_next_sequence_number(flash: Path) -> None:
    store.save("counters", {"sessions": 1, "puffs": 0})
    store.save("counters", {"sessions": 2, "puffs": 0})
    store.save("counters", {"sessions": 3, "puffs": 0})
    a = HDR.unpack((flash / "counters.a").read_bytes()[:HDR_LEN])
    b = HDR.unpack((flash / "counters.b").read_bytes()[:HDR_LEN])
    assert (a[2], b[2]) == (3, 2)  # seq 1 in a, 2 in b, 3 in a again
    store._newest.clear()  # a reboot: it learns the newest from flash
    store.save("counters", {"sessions": 4, "puffs": 0})
    b = HDR.unpack((flash / "counters.b").read_bytes()[:HDR_LEN])
    assert b[2] == 4
    assert load()[0]["sessions"] == 4


def test_a_record_that_is_no_json_or_no_dict_falls_back(flash: Path) -> None:
    (flash / "counters.a").write_bytes(slot(record({"sessions": 1, "puffs": 1}), 1))
    (flash / "counters.b").write_bytes(slot(b"{not json", 2))
    assert load() == ({"sessions": 1, "puffs": 1}, True)
    assert store.problems == ["counters.b: not JSON"]
    del store.problems[:]
    (flash / "counters.b").write_bytes(slot(b"[1, 2]", 2))
    store._newest.clear()
    assert load() == ({"sessions": 1, "puffs": 1}, True)
    assert store.problems == ["counters.b: not a record"]


def test_nothing_valid_gives_a_copy_of_the_defaults(flash: Path) -> None:
    rec, ok = load()
    assert (rec, ok) == (DEFAULTS, False)
    assert store.problems == []  # absent is no problem
    got, _ = store.load("counters", DEFAULTS)
    got["sessions"] = 5
    assert DEFAULTS["sessions"] == 0  # a copy, not the caller's dict
    (flash / "counters.a").write_bytes(b"HRS1")
    assert load() == (DEFAULTS, False)
    assert store.problems == ["counters.a: short"]


def test_fields_of_the_wrong_type_or_unknown_keep_the_defaults(flash: Path) -> None:
    data = record({"sessions": "7", "puffs": 4, "extra": 1})
    (flash / "counters.a").write_bytes(slot(data, 1))
    assert load() == ({"sessions": 0, "puffs": 4}, True)
    data = record({"sessions": True, "puffs": 4.0})
    (flash / "counters.a").write_bytes(slot(data, 2))
    store._newest.clear()
    assert load() == ({"sessions": 0, "puffs": 0}, True)  # a bool or a float is no int here


# --- the calibration record -------------------------------------------------------------------

calib = fw.firmware("calib")
board = fw.firmware("board")
UNIT = "240ac4123456"  # fw_harness's machine.unique_id(), in hex


def _ranges() -> tuple[tuple[int, int], tuple[int, int]]:
    """The unit spec (board.py): what a record may hold."""
    b = board
    return (b.CAL_R0_MIN_UOHM, b.CAL_R0_MAX_UOHM), (b.CAL_TCR_MIN_PPM, b.CAL_TCR_MAX_PPM)


def _just_outside() -> list[tuple[int, int]]:
    """(R0, TCR) one past the spec, each of its four edges."""
    (r0_lo, r0_hi), (tcr_lo, tcr_hi) = _ranges()
    return [(r0_lo - 1, tcr_lo), (r0_hi + 1, tcr_hi), (r0_lo, tcr_lo - 1), (r0_hi, tcr_hi + 1)]


def cal_record(r0: int, tcr: int, *, unit: str = UNIT, v: int = 2, crc: int | None = None,
               **more: Any) -> bytes:  # fmt: skip
    """A calibration record as calib.save writes it, any field overridden."""
    if crc is None:
        crc = crc32(f"{r0},{tcr},{unit},{v}".encode())
    return record({"r0_uohm": r0, "tcr_ppm": tcr, "unit": unit, "v": v, "crc": crc, **more})


def fail_safe(c: Any, why: int) -> bool:
    return (c.r0_uohm, c.tcr_ppm, c.stored, c.why) == (
        board.CAL_FAILSAFE_R0_UOHM, board.CAL_FAILSAFE_TCR_PPM, False, why,
    )  # fmt: skip


def load_cal(flash: Path, *slots: bytes) -> Any:
    """calib.load() with these slot files (a, then b) on flash."""
    for name in ("calib.a", "calib.b"):
        (flash / name).unlink(missing_ok=True)
    for name, data in zip(("calib.a", "calib.b"), slots, strict=False):
        (flash / name).write_bytes(data)
    store._newest.clear()
    del store.problems[:]
    return calib.load()


def test_calibration_is_valid_up_to_either_end_of_its_ranges() -> None:
    (r0_lo, r0_hi), (tcr_lo, tcr_hi) = _ranges()
    tcr = (tcr_lo + tcr_hi) // 2
    r0 = (r0_lo + r0_hi) // 2
    for r, t, ok in (
        (r0_lo, tcr, True), (r0_lo - 1, tcr, False), (r0_hi, tcr, True), (r0_hi + 1, tcr, False),
        (r0, tcr_lo, True), (r0, tcr_lo - 1, False), (r0, tcr_hi, True), (r0, tcr_hi + 1, False),
    ):  # fmt: skip
        assert calib.valid(r, t) is ok, (r, t)
    assert (r0_lo, r0_hi, tcr_lo, tcr_hi) == (720_000, 880_000, 3000, 3800)  # 0.80 ohm +-10 %


def test_an_implausible_calibration_is_not_stored(flash: Path) -> None:
    (_, r0_hi), (_, tcr_hi) = _ranges()
    for r, t in _just_outside():
        with pytest.raises(ValueError, match="out of range"):
            calib.save(r, t)
        assert not list(flash.iterdir())
    calib.save(r0_hi, tcr_hi)
    c = calib.load()
    assert (c.r0_uohm, c.tcr_ppm, c.stored, c.why) == (r0_hi, tcr_hi, True, calib.OK)


def test_a_stored_record_outside_the_ranges_falls_back_to_the_fail_safe_values(
    flash: Path,
) -> None:
    """A whole record of this unit, its own CRC right, one past the spec
    either way: the fail-safe values, why out_of_spec; at the edge, used."""
    (r0_lo, r0_hi), (tcr_lo, tcr_hi) = _ranges()
    for r, t in _just_outside():
        assert fail_safe(load_cal(flash, slot(cal_record(r, t), 1)), calib.OUT_OF_SPEC), (r, t)
    for r, t in ((r0_lo, tcr_lo), (r0_hi, tcr_hi)):
        c = load_cal(flash, slot(cal_record(r, t), 1))
        assert (c.r0_uohm, c.tcr_ppm, c.stored, c.why) == (r, t, True, calib.OK)


def test_no_record_is_the_fail_safe_values_not_stored(flash: Path) -> None:
    c = calib.load()
    assert fail_safe(c, calib.MISSING)
    # the fail-safe corner: the smallest R0 and TCR of the spec (reads hot)
    assert (c.r0_uohm, c.tcr_ppm) == (_ranges()[0][0], _ranges()[1][0])


def test_each_check_of_the_record_alone_refuses_it(flash: Path) -> None:
    """The format, the record's own CRC, the unit: each one changed, with
    everything else right, gives the fail-safe values and its reason."""
    r, t = 800_000, 3500
    good = cal_record(r, t)
    c = load_cal(flash, slot(good, 1))
    assert (c.r0_uohm, c.tcr_ppm, c.stored, c.why) == (r, t, True, calib.OK)
    right = crc32(f"{r},{t},{UNIT},2".encode())
    for data, why in (
        (cal_record(r, t, v=1), calib.STALE),  # an older format (its CRC its own)
        (cal_record(r, t, crc=right ^ 1), calib.DAMAGED),  # one bit of the record's CRC
        (cal_record(r, t, crc=right, unit=UNIT), calib.OK),
        (
            record({"r0_uohm": r, "tcr_ppm": t + 1, "unit": UNIT, "v": 2, "crc": right}),
            calib.DAMAGED,
        ),
        (cal_record(r, t, unit="240ac4123457"), calib.OTHER_UNIT),  # another controller's
        (record({"r0_uohm": r, "tcr_ppm": t}), calib.STALE),  # the first format: no unit
    ):
        c = load_cal(flash, slot(data, 1))
        if why == calib.OK:
            assert c.stored and c.why == calib.OK
        else:
            assert fail_safe(c, why), (data, why)


def test_a_damaged_copy_distrusts_the_whole_record(flash: Path) -> None:
    """A whole, newer-looking copy beside a damaged one is not used: the one
    that was lost may have been newer (a save cut short)."""
    good = slot(cal_record(800_000, 3500), 1)
    torn = slot(cal_record(810_000, 3500), 2)[:-3]  # cut short
    assert fail_safe(load_cal(flash, good, torn), calib.DAMAGED)
    crc_off = bytearray(slot(cal_record(810_000, 3500), 2))
    crc_off[-2] ^= 1  # one bit of the payload: the slot's CRC fails
    assert fail_safe(load_cal(flash, good, bytes(crc_off)), calib.DAMAGED)
    c = load_cal(flash, good)
    assert c.stored and c.r0_uohm == 800_000


@pytest.mark.parametrize(("r0", "tcr"), [(800_000, 3500), (720_000, 3000), (880_000, 3800)])
def test_the_derived_values_of_a_calibration(r0: int, tcr: int) -> None:
    """What the control step reads: R0 in 10 uOhm, dR/dT in uOhm per K."""
    c = calib.Calibration(r0, tcr, True)
    assert c.r0_10u == r0 // 10
    assert c.r0tcr_uohm_k == (r0 // 100) * tcr // 10000
    assert abs(c.r0tcr_uohm_k - r0 * tcr / 1e6) <= 1  # R0 x TCR, to a microohm


# --- writes held while the heater is on (on the ESP32 a flash write stalls the control step) ---


def test_a_save_while_held_waits_for_the_flush_and_loads_as_the_newest(
    flash: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save("counters", {"sessions": 1, "puffs": 2})
    holding = [True]
    monkeypatch.setattr(store, "hold", lambda: holding[0])
    monkeypatch.setattr(store, "_held", {})
    store.save("counters", {"sessions": 2, "puffs": 5})
    assert store.waiting()
    assert json.loads((flash / "counters.a").read_bytes()[HDR_LEN:]) == {"sessions": 1, "puffs": 2}
    assert not (flash / "counters.b").exists()  # nothing written while held
    # the held copy is the newest: a load gets it (unknown keys dropped, defaults kept)
    store._held["counters"] = {"sessions": 2, "puffs": 5, "extra": 9}
    assert store.load("counters", {**DEFAULTS, "more": 7}) == (
        {"sessions": 2, "puffs": 5, "more": 7}, True,
    )  # fmt: skip
    holding[0] = False
    store.save("other", {"x": 1})  # not held: written at once
    assert (flash / "other.a").exists()
    store.flush()
    assert not store.waiting()
    store._newest.clear()
    assert load() == ({"sessions": 2, "puffs": 5}, True)  # the held copy, now on flash


def test_every_held_record_is_written_at_the_flush(
    flash: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "hold", lambda: True)
    monkeypatch.setattr(store, "_held", {})
    for name in ("a1", "a2", "a3"):
        store.save(name, {"n": len(name)})
    assert sorted(store._held) == ["a1", "a2", "a3"] and not list(flash.iterdir())
    store.flush()
    assert sorted(p.name for p in flash.iterdir()) == ["a1.a", "a2.a", "a3.a"]
    assert not store.waiting()

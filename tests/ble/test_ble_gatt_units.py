"""The GATT server (firmware/ble_gatt.py) in CPython, on a stand-in of
MicroPython's `bluetooth` module that keeps what the server writes and lets
a test raise the stack's events: every value as the table lays it out, every
write checked at the edges of its form, the pairing window and the
registration's clear window at their edges, bonds only inside the window.
Fast enough to judge every mutant of ble_gatt.py (mutation/plan.toml); the
same behaviour end to end, with Bumble phones on the simulator, is
tests/ble/test_ble_firmware.py."""

from __future__ import annotations

import struct
import types
from pathlib import Path
from typing import Any

import fw_harness as fw
import pytest
from fw_edges import Heater, limit

_IRQ = {"connect": 1, "disconnect": 2, "write": 3, "read": 4, "enc": 28, "get": 29, "set": 30}
MAC = b"\x00\xc0\xff\xee\x12\x34"


class FakeBle:
    """bluetooth.BLE as the server uses it: values by handle, notifications."""

    def __init__(self) -> None:
        self.values: dict[int, bytes] = {}
        self.notified: list[tuple[int, bytes]] = []
        self.notified_to: list[int] = []  # the links protected values were notified to
        self.adverts: list[tuple[int, bytes]] = []
        self.dropped: list[int] = []
        self.buffers: dict[int, int] = {}
        self.config_set: dict[str, Any] = {}
        self.handler: Any = None
        self.services: Any = None

    def active(self, on: bool | None = None) -> bool:
        return True

    def config(self, *name: str, **kw: Any) -> Any:
        if name:
            assert name == ("mac",)
            return (0, MAC)
        self.config_set.update(kw)
        return None

    def irq(self, handler: Any) -> None:
        self.handler = handler

    def gatts_register_services(self, svcs: Any) -> tuple[tuple[int, ...], ...]:
        self.services = svcs
        out, h = [], 10
        for _uuid, chars in svcs:
            hs = []
            for _c in chars:
                hs.append(h)
                h += 2
            out.append(tuple(hs))
        return tuple(out)

    def gatts_set_buffer(self, handle: int, n: int, append: bool = False) -> None:
        self.buffers[handle] = n

    def gatts_write(self, handle: int, data: Any, send_update: bool = False) -> None:
        self.values[handle] = bytes(data)
        if send_update:
            self.notified.append((handle, bytes(data)))

    def gatts_notify(self, conn: int, handle: int, data: Any = None) -> None:
        self.notified.append(
            (handle, self.values.get(handle, b"") if data is None else bytes(data))
        )
        self.notified_to.append(conn)

    def gatts_read(self, handle: int) -> bytes:
        return self.values.get(handle, b"")

    def gap_advertise(self, interval_us: int, adv_data: Any = None) -> None:
        self.adverts.append((interval_us, bytes(adv_data or b"")))

    def gap_disconnect(self, conn: int) -> None:
        self.dropped.append(conn)


_RADIO = FakeBle()
_bt = types.ModuleType("bluetooth")
_bt.BLE = lambda: _RADIO  # type: ignore[attr-defined]
_bt.UUID = lambda v: v  # type: ignore[attr-defined]
fw.provide("bluetooth", _bt)
ble_gatt = fw.firmware("ble_gatt")
ble_table = fw.firmware("ble_table")
charger = fw.firmware("charger")
device = fw.firmware("device")
indicator = fw.firmware("indicator")
usage = fw.firmware("usage")
faults = fw.firmware("faults")
settings = fw.firmware("settings")
states = fw.firmware("states")
store = fw.firmware("store")
version = fw.firmware("version")

PAIRING_MS = limit(ble_gatt, "_PAIRING_MS")
CLEAR_MS = limit(ble_gatt, "_CLEAR_MS")
CLEAR_REST_MS = limit(ble_gatt, "_CLEAR_REST_MS")
PENDING_MS = limit(ble_gatt, "_PENDING_MS")
LAUNCH_S, LIFE_S, TOL_S = ble_gatt.LAUNCH_S, ble_gatt.LIFE_S, ble_gatt.CLOCK_TOL_S
REFUSED = 0x05  # ATT insufficient authentication: not a trusted link


def sec_record(sc: bool = True) -> bytes:
    """NimBLE's security record as the ESP32 lays it out (88 bytes): an LTK,
    from LE Secure Connections pairing or not."""
    v = bytearray(88)
    v[40] = 1  # ltk_present
    v[80] = 0x02 if sc else 0  # the sc flag
    return bytes(v)


NN = {c[1]: k for k, c in enumerate(ble_table.CHARS)}  # name -> index in CHARS


class Kit:
    """The firmware's objects the server reads, on stand-in hardware."""

    def __init__(self) -> None:
        h = Heater()
        self.events: list[str] = []
        self.calls: list[str] = []
        self.heater = h.hc
        self.fault_log = faults.FaultLog()
        self.power = charger.Power(h.hc, self.fault_log, self.events.append)
        self.settings = dict(settings.DEFAULTS)
        self.usage = usage.Usage(self.settings)
        self.device = device.Device(h.hc, indicator.Indicator(), self.power, fw._Pin(0, value=1))
        self.counters = {"sessions": 3, "puffs": 40, "heater_on_s": 1080, "charge_cycles": 2,
                         "holder_charges": 5, "boots": 9}  # fmt: skip
        self.session_ms = 0
        self.console = types.SimpleNamespace(event=self.events.append)
        self.power.chg._set_soc(7350)
        self.power.hold._set_soc(9100)

    def reset(self) -> None:
        self.calls.append("reset")


@pytest.fixture
def kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Kit, FakeBle]:
    """The server at boot: no bond, nobody connected."""
    monkeypatch.chdir(tmp_path)  # the flash
    store._newest.clear()
    del store.problems[:]
    _RADIO.__init__()  # type: ignore[misc]
    # ble_owner.py, imported at its rare acts: against the stand-ins (a plain
    # import at call time would bind CPython's time)
    monkeypatch.setattr(ble_gatt, "_owner", lambda: fw.firmware("ble_owner"))
    k = Kit()
    fw.clock().us = 50_000_000
    return ble_gatt.Ble(k), k, _RADIO


def bond(b: Any, radio: FakeBle, conn: int, key: bytes, now_ms: int) -> None:
    """A phone bonded in the pairing window, as NimBLE does it: connect, the
    keys stored, the link encrypted: trusted from then on."""
    fw.clock().us = now_ms * 1000
    b.open_pairing(now_ms)
    radio.handler(_IRQ["connect"], (conn, 0, MAC))
    assert radio.handler(_IRQ["set"], (1, key, sec_record())) is True
    radio.handler(_IRQ["enc"], (conn, 1, 0, 1, 16))
    assert conn in b.trusted()


@pytest.fixture
def owned(kit: tuple[Any, Kit, FakeBle]) -> tuple[Any, Kit, FakeBle]:
    """The server with its owner's phone bonded and connected on link 1
    (trusted), the pairing window closed, the console's events read."""
    b, k, radio = kit
    bond(b, radio, 1, b"owner", 50_000)
    b.tick(50_000, False)
    assert not b._pairing and "ble bonded" in k.events
    k.events.clear()
    radio.notified.clear()
    return kit


def handle(b: Any, name: str) -> int:
    return int(b._h[NN[name]])


def value(radio: FakeBle, b: Any, name: str) -> bytes:
    return radio.values[handle(b, name)]


def write(radio: FakeBle, b: Any, name: str, data: bytes, conn: int = 1) -> int:
    """A write from link `conn` (1: the owner's, in the fixture `owned`)."""
    h = handle(b, name)
    radio.values[h] = data
    return int(radio.handler(_IRQ["write"], (conn, h)))


# --- at boot --------------------------------------------------------------------------------


def test_every_value_at_boot(kit: tuple[Any, Kit, FakeBle]) -> None:
    b, _, radio = kit
    assert radio.config_set == {"gap_name": "heatrig", "mtu": 251, "bond": True, "le_secure": True,
                                "mitm": False, "io": 3}  # fmt: skip

    def v(name: str) -> bytes:
        return value(radio, b, name)

    assert v("manufacturer") == b"heatrig" and v("model") == b"HR-1"
    assert v("hardware_rev") == b"A" and v("software_rev") == b"ble 1.0"
    assert v("firmware_rev") == version.FIRMWARE_VERSION.encode()
    low = MAC[2:].hex().upper()
    assert v("serial") == f"H{low}-C{low}".encode()
    assert v("battery_level") == bytes([73])
    assert v("status") == bytes([1, 0b10, 91, 73, 0])  # holder charged, asleep
    assert v("heating") == struct.pack("<BBBBHHB", 1, 0, 0, 14, 0, 0, 0)
    assert v("counters") == struct.pack("<B6I", 1, 3, 40, 1080, 2, 5, 9)
    assert v("haptics") == bytes([1, 15, 100])
    assert v("find") == b"\x00" and v("lock") == b"\x00"
    assert v("usage") == struct.pack("<BBHBB", 1, 0, 0, 0, 1)
    assert v("limit") == b"\x00" and v("sharing") == b"\x01"
    assert v("alerts") == struct.pack("<BBb", 1, 0, 20)
    assert v("registration") == struct.pack("<BBIB", 1, 0, 0, 0)
    n = int.from_bytes(MAC, "big") % 10**12
    assert v("ids") == struct.pack("<B8s8s12s", 1, low.encode(), low.encode(), b"%012d" % n)
    assert v("faults") == struct.pack("<BBHB", 1, 0, 0, 0)
    notifying = {handle(b, c[1]) for c in ble_table.CHARS if c[2] & ble_table.NOTIFY}
    assert {h for h, _ in radio.notified} <= notifying  # to whoever subscribed: nobody yet
    interval, adv = radio.adverts[-1]
    assert interval == 500_000
    assert adv == ble_gatt.adv_payload("heatrig", ble_table.custom_uuid(0))
    assert adv[:5] == bytes([2, 1, 6, 8, 9]) and adv[5:12] == b"heatrig"
    # values longer than the stack's default 20 bytes get a buffer their size
    # (and the update's data a buffer for an offset and a chunk: ble_update.py)
    assert radio.buffers == {handle(b, "counters"): 25, handle(b, "faults"): 5 + 8 * 5,
                             handle(b, "ids"): 29, handle(b, "update_data"): 4 + 244}  # fmt: skip


def test_ids_from_a_provisioned_record() -> None:
    rec = {"holder": "AB12CD34", "charger": "EF56GH78", "box": "123456789012"}
    assert ble_gatt.ids_for(rec, MAC) == ("AB12CD34", "EF56GH78", "123456789012")
    assert ble_gatt.ids_for({**rec, "box": "1234"}, MAC)[0] == MAC[2:].hex().upper()
    assert ble_gatt.ids_for({**rec, "holder": "X"}, MAC)[1] != "EF56GH78"
    assert ble_gatt.ids_for({**rec, "charger": ""}, MAC)[2] != "123456789012"


# --- writes: each form at its edges ----------------------------------------------------------


def _forms() -> list[tuple[str, tuple[Any, ...]]]:
    out = []
    for c in ble_table.CHARS:
        if c[6] and not c[1].startswith("update_"):  # ble_update.py serves these (tests/update/)
            for form in ble_table.compile_forms(c[6]):
                out.append((c[1], form))
    return out


def dates_ok(date: int, now: int, floor: int = 0) -> bool:
    """A registration's dates as docs/ble_profile.md states them: the phone's
    clock within the product's life and at most a day behind the latest one
    accepted; the date from the first day of sale to the clock plus a day."""
    return bool(
        LAUNCH_S <= now <= LAUNCH_S + LIFE_S
        and now >= floor - TOL_S
        and (LAUNCH_S <= date <= now + TOL_S)
    )


@pytest.mark.parametrize(("name", "form"), _forms(), ids=lambda x: x if isinstance(x, str) else "")
def test_a_write_is_checked_at_the_edges_of_its_form(
    owned: tuple[Any, Kit, FakeBle], name: str, form: tuple[Any, ...]
) -> None:
    """From the owner's trusted link: every field one past either end of its
    range is refused (0x13) and nothing changes; at the end it is taken."""
    b, _, radio = owned
    n, fmt, los, his = form
    nn = ble_table.CHARS[NN[name]][0]
    lo = [x if x is not None else 0 for x in los]
    hi = [h if h is not None else (lo[i] + 1) for i, h in enumerate(his)]
    good = lo if name != "control" else [3]  # (a reset or an unpair acts on the next tick)
    for i in range(len(lo)):
        for bad, ok in ((lo[i] - 1, los[i] is None), (hi[i] + 1, his[i] is None), (hi[i], True)):
            vals = list(good)
            vals[i] = bad
            if bad < 0 and fmt[i + 1] in "BHI":
                continue  # not packable: an unsigned field
            before = radio.values.get(handle(b, name))
            registered, floor = b._reg["registered"], b._reg["clock"]
            code = write(radio, b, name, struct.pack(fmt, *vals))
            if ok and name == "registration" and len(vals) == 4:
                # registered by the first: then in the wrong state; else the dates decide
                want = 0x80 if registered else 0 if dates_ok(vals[2], vals[3], floor) else 0x13
                assert code == want, (name, i, bad)
            elif ok and name == "registration":
                assert code in (0, 0x80), (name, i, bad)
            else:
                assert code == (0 if ok else 0x13), (name, i, bad)
            assert radio.values[handle(b, "result")][:2] == bytes([nn, code])
            if code and name != "control":
                assert radio.values.get(handle(b, name)) == before  # put back: unchanged
    for size in (n - 1, n + 1):
        if size == 0:
            continue
        assert write(radio, b, name, bytes(size)) in (0x0D, 0)  # no form of that length
    assert write(radio, b, name, bytes(max(n + 7, 8))) == 0x0D


def test_registration_dates_at_their_edges() -> None:
    """date_ok: the phone's clock within the product's life, at most a day
    behind the latest accepted; the date from the first day of sale to the
    clock plus a day. Each edge just inside and just outside."""
    now = LAUNCH_S + 100 * 86400
    ok = ble_gatt.date_ok
    assert ok(LAUNCH_S, now, 0) and not ok(LAUNCH_S - 1, now, 0)
    assert ok(now + TOL_S, now, 0) and not ok(now + TOL_S + 1, now, 0)
    assert ok(LAUNCH_S, LAUNCH_S, 0) and not ok(LAUNCH_S, LAUNCH_S - 1, 0)
    top = LAUNCH_S + LIFE_S
    assert ok(top, top, 0) and not ok(top, top + 1, 0)
    assert ok(now, now, now + TOL_S) and not ok(now, now, now + TOL_S + 1)  # a clock set back
    assert (LAUNCH_S, LIFE_S, TOL_S) == (
        ble_table.LAUNCH_S,
        ble_table.LIFE_S,
        ble_table.CLOCK_TOL_S,
    )


def test_a_link_not_trusted_is_refused_every_protected_value(
    kit: tuple[Any, Kit, FakeBle],
) -> None:
    """No accepted bond: a protected read or write gets ATT 0x05, the value is
    put back and `result` untouched; an open value is served."""
    b, k, radio = kit
    radio.handler(_IRQ["connect"], (2, 0, MAC))
    radio.handler(_IRQ["enc"], (2, 1, 0, 0, 16))  # encrypted, but with no bond of ours
    result = radio.values.get(handle(b, "result"))
    for c in ble_table.CHARS:
        name, enc = c[1], c[3]
        h = handle(b, name) if name in NN else None
        if h is None or name.startswith("update_"):
            continue
        assert radio.handler(_IRQ["read"], (2, h)) == (REFUSED if enc else 0), name
        if c[6]:
            before = radio.values.get(h)
            assert write(radio, b, name, bytes(8), conn=2) == (REFUSED if enc else 0), name
            if enc and name != "control":
                assert radio.values.get(h) == before, name
    assert radio.values.get(handle(b, "result")) == result
    assert k.settings == settings.DEFAULTS | {}


def test_the_write_codes_are_the_tables() -> None:
    assert ble_gatt.check(((1, "<B", (0,), (5,)),), b"\x05") == (0, (5,))
    assert ble_gatt.check(((1, "<B", (0,), (5,)),), b"\x06") == (0x13, None)
    assert ble_gatt.check(((1, "<B", (1,), (5,)),), b"\x00") == (0x13, None)
    assert ble_gatt.check(((1, "<B", (None,), (None,)),), b"\xff") == (0, (255,))
    assert ble_gatt.check(((1, "<B", (0,), (5,)),), b"\x01\x02") == (0x0D, None)
    two = ((1, "<B", (0,), (1,)), (2, "<BB", (0, 0), (1, 9)))
    assert ble_gatt.check(two, b"\x01\x09") == (0, (1, 9))
    assert ble_gatt.check(two, b"\x01\x0a") == (0x13, None)


def test_settings_written_apply_and_reach_flash_at_the_next_tick(
    owned: tuple[Any, Kit, FakeBle],
) -> None:
    b, k, radio = owned
    ind = k.device.ind
    assert write(radio, b, "haptics", bytes([1, 5, 40])) == 0
    assert (k.settings["haptics"], k.settings["intensity"]) == (5, 40)
    assert value(radio, b, "haptics") == bytes([1, 5, 40])
    assert write(radio, b, "lock", b"\x01") == 0 and k.settings["locked"] is True
    assert write(radio, b, "limit", b"\x03") == 0 and k.settings["limit"] == 3
    assert write(radio, b, "sharing", b"\x00") == 0 and k.settings["sharing"] is False
    assert settings.load()["limit"] == 0  # not yet on flash
    b.tick(60_000, False)
    assert (ind.haptics, ind.intensity) == (5, 40)  # the indications at the tick
    assert settings.load() | {} == {**settings.DEFAULTS, "haptics": 5, "intensity": 40,
                                     "locked": True, "limit": 3, "sharing": False}  # fmt: skip
    assert value(radio, b, "usage") == struct.pack("<BBHBB", 1, 0, 0, 3, 0)
    assert value(radio, b, "lock") == b"\x01"


def test_find_runs_the_motor_for_the_seconds_written(owned: tuple[Any, Kit, FakeBle]) -> None:
    b, k, radio = owned
    assert write(radio, b, "find", bytes([5])) == 0
    assert value(radio, b, "find") == b"\x05"
    b.tick(60_000, False)
    assert k.device.ind.find_left_ms(60_000) == 5000
    b.tick(62_000, True)
    assert value(radio, b, "find") == b"\x03"
    assert write(radio, b, "find", b"\x00") == 0
    b.tick(62_250, True)
    assert k.device.ind.find_left_ms(62_250) == 0 and value(radio, b, "find") == b"\x00"


def test_control_resets_unpairs_and_clears_the_fault_log(owned: tuple[Any, Kit, FakeBle]) -> None:
    b, k, radio = owned
    k.fault_log.record(faults.OVER_TEMP, 100, 7)
    radio.handler(_IRQ["connect"], (4, 0, MAC))
    assert b._bonds.peers() == [b"owner"]
    assert write(radio, b, "control", b"\x03") == 0
    assert k.fault_log.count == 1  # at the next tick
    b.tick(60_000, False)
    assert k.fault_log.count == 0
    assert write(radio, b, "control", b"\x02") == 0
    b.tick(60_250, False)
    assert b._bonds.peers() == [] and "ble unpaired" in k.events and radio.dropped == [1, 4]
    assert b.trusted() == [] and bonds_on_flash() == []
    assert write(radio, b, "control", b"\x01") == REFUSED  # the link no longer trusted
    bond(b, radio, 5, b"owner", 61_000)
    assert write(radio, b, "control", b"\x01", conn=5) == 0 and k.calls == []
    b.tick(61_500, False)
    assert k.calls == ["reset"]
    b.serve_now()
    assert k.calls == ["reset"]


def bonds_on_flash() -> list[Any]:
    store._newest.clear()
    return list(fw.firmware("bonds").load())


# --- registration and its clear window -------------------------------------------------------

DATE = LAUNCH_S + 30 * 86400


def register(radio: FakeBle, b: Any, date: int = DATE, now: int = DATE) -> int:
    return write(radio, b, "registration", struct.pack("<BBII", 1, 1, date, now))


def ask_clear(radio: FakeBle, b: Any) -> int:
    return write(radio, b, "registration", struct.pack("<BB", 1, 0))


def test_registration_and_its_clear_window(owned: tuple[Any, Kit, FakeBle]) -> None:
    b, k, radio = owned
    assert ask_clear(radio, b) == 0x80  # nothing to clear
    assert register(radio, b, now=DATE - 1 - TOL_S) == 0x13  # the date past the clock and a day
    assert register(radio, b) == 0
    assert value(radio, b, "registration") == struct.pack("<BBIB", 1, 1, DATE, 0)
    assert register(radio, b) == 0x80
    b.tick(60_000, False)
    defaults = {"registered": False, "date": 0, "clock": 0}
    assert store.load("registration", defaults)[0] == {"registered": True, "date": DATE,
                                                       "clock": DATE}  # fmt: skip
    # a clear asked for, confirmed by a click just inside the window
    now = 60_000
    fw.clock().us = now * 1000
    assert ask_clear(radio, b) == 0
    assert value(radio, b, "registration")[-1] == 1
    assert ask_clear(radio, b) == 0x80  # armed already
    b.confirm(now + CLEAR_MS)  # the window has closed: nothing
    assert b._reg["registered"]
    b.confirm(now + CLEAR_MS - 1)
    assert value(radio, b, "registration") == struct.pack("<BBIB", 1, 0, 0, 0)
    assert "ble ownership cleared" in k.events
    assert b._bonds.peers() == [] and 1 in radio.dropped  # every bond goes with it
    store._newest.clear()
    assert store.load("registration", defaults)[0]["registered"] is False


def test_a_clear_lapses_at_its_window_and_rests_before_the_next(
    owned: tuple[Any, Kit, FakeBle],
) -> None:
    b, _, radio = owned
    assert register(radio, b) == 0
    t0 = 100_000
    fw.clock().us = t0 * 1000
    assert ask_clear(radio, b) == 0
    b.tick(t0 + CLEAR_MS - 1, True)
    assert value(radio, b, "registration")[-1] == 1
    b.tick(t0 + CLEAR_MS, True)  # lapsed at the first tick past the window
    assert value(radio, b, "registration")[-1] == 0
    b.confirm(t0 + CLEAR_MS + 10)
    assert b._reg["registered"]
    # a new clear is refused for CLEAR_REST after the window, taken at its end
    fw.clock().us = (t0 + CLEAR_MS + CLEAR_REST_MS - 1) * 1000
    assert ask_clear(radio, b) == 0x80
    fw.clock().us = (t0 + CLEAR_MS + CLEAR_REST_MS) * 1000
    assert ask_clear(radio, b) == 0
    assert (CLEAR_MS, CLEAR_REST_MS) == (30_000, 30_000)


# --- the pairing window and bonds ----------------------------------------------------------


def test_the_pairing_window_opens_for_its_time(kit: tuple[Any, Kit, FakeBle]) -> None:
    b, k, radio = kit
    now = 70_000
    b.open_pairing(now)
    assert k.device.ind.pairing and b._pairing
    b.tick(now + 1, False)
    assert k.events == ["ble pairing open"]
    assert value(radio, b, "status")[1] & 0x80
    b.tick(now + PAIRING_MS - 1, True)
    assert b._pairing
    b.open_pairing(now + 30_000)  # a second double click: the window runs from it
    b.tick(now + PAIRING_MS, True)
    assert b._pairing and k.events == ["ble pairing open"]
    b.tick(now + 30_000 + PAIRING_MS, True)
    assert not b._pairing and not k.device.ind.pairing
    b.tick(now + 30_000 + PAIRING_MS + 250, False)
    assert k.events[-1] == "ble pairing closed"
    assert not value(radio, b, "status")[1] & 0x80
    assert PAIRING_MS == 60_000


def test_a_bond_is_kept_only_while_the_window_is_open(kit: tuple[Any, Kit, FakeBle]) -> None:
    b, k, radio = kit
    irq = radio.handler
    fw.clock().us = 10_000_000
    irq(_IRQ["connect"], (1, 0, MAC))
    assert irq(_IRQ["set"], (1, b"peer-a", sec_record())) is False  # no window
    assert radio.dropped == [1] and b._bonds.peers() == []
    irq(_IRQ["disconnect"], (1, 0, MAC))
    b.tick(10_000, False)
    assert k.events.count("ble pairing refused") == 1
    # in the window: legacy pairing refused, LE Secure Connections kept
    b.open_pairing(20_000)
    irq(_IRQ["connect"], (2, 0, MAC))
    assert irq(_IRQ["set"], (1, b"peer-a", sec_record(sc=False))) is False
    assert radio.dropped == [1, 2] and b._bonds.peers() == []
    irq(_IRQ["disconnect"], (2, 0, MAC))
    irq(_IRQ["connect"], (3, 0, MAC))
    irq(_IRQ["enc"], (3, 1, 0, 0, 16))  # NimBLE may report the encryption first
    assert 3 not in b.trusted()
    assert irq(_IRQ["set"], (1, b"peer-a", sec_record())) is True
    assert b.trusted() == [3]
    assert irq(_IRQ["set"], (2, b"peer-a", sec_record())) is True  # the pairing's second record
    b.tick(20_250, False)
    assert not b._pairing and "ble bonded" in k.events and "ble pairing closed" in k.events
    assert [e[1] for e in bonds_on_flash()] == [b"peer-a", b"peer-a"]
    assert irq(_IRQ["get"], (1, 0, b"peer-a")) == sec_record()
    assert irq(_IRQ["get"], (2, 0, None)) == sec_record()
    assert irq(_IRQ["get"], (3, 0, b"peer-a")) is None
    # the window closed: a new peer's bond is refused, its link dropped
    irq(_IRQ["connect"], (4, 0, MAC))
    assert irq(_IRQ["set"], (1, b"peer-b", sec_record())) is False
    assert 4 in radio.dropped and 3 not in radio.dropped


def test_a_bonded_phone_is_trusted_again_when_it_encrypts_with_its_bond(
    owned: tuple[Any, Kit, FakeBle],
) -> None:
    b, _, radio = owned
    irq = radio.handler
    irq(_IRQ["disconnect"], (1, 0, MAC))
    assert b.trusted() == []
    irq(_IRQ["connect"], (6, 0, MAC))
    assert write(radio, b, "lock", b"\x01", conn=6) == REFUSED  # not encrypted yet
    assert irq(_IRQ["get"], (1, 0, b"owner")) == sec_record()  # the stack reads our LTK
    irq(_IRQ["enc"], (6, 1, 0, 1, 16))
    assert b.trusted() == [6]
    assert write(radio, b, "lock", b"\x01", conn=6) == 0


def test_an_encrypted_link_without_a_bond_is_dropped_after_its_time(
    kit: tuple[Any, Kit, FakeBle],
) -> None:
    """Encrypted, and no bond accepted within PENDING: dropped at the first
    slow tick from then on, not before."""
    b, _, radio = kit
    t0 = 40_000
    fw.clock().us = t0 * 1000
    radio.handler(_IRQ["connect"], (7, 0, MAC))
    radio.handler(_IRQ["enc"], (7, 1, 0, 0, 16))
    b.tick(t0 + PENDING_MS - 1, True)
    assert radio.dropped == []
    b.tick(t0 + PENDING_MS, True)
    assert radio.dropped == [7]
    assert PENDING_MS == 1000


def test_a_bond_accepted_before_the_encryption_trusts_it_only_within_its_time(
    kit: tuple[Any, Kit, FakeBle],
) -> None:
    """NimBLE stores the keys, then reports the encryption: that link is the
    pairing's if it comes within PENDING of the bond; later, it is not."""
    for late, trusted in ((PENDING_MS - 1, True), (PENDING_MS, False)):
        b, _, radio = kit
        t0 = 80_000 + 10 * late
        fw.clock().us = t0 * 1000
        b.open_pairing(t0)
        radio.handler(_IRQ["connect"], (8, 0, MAC))
        assert radio.handler(_IRQ["set"], (1, b"peer-%d" % late, sec_record())) is True
        fw.clock().us = (t0 + late) * 1000
        radio.handler(_IRQ["enc"], (8, 1, 0, 1, 16))
        assert (8 in b.trusted()) is trusted, late
        radio.handler(_IRQ["disconnect"], (8, 0, MAC))


def test_links_come_and_go(kit: tuple[Any, Kit, FakeBle]) -> None:
    b, k, radio = kit
    irq = radio.handler
    irq(_IRQ["connect"], (3, 0, MAC))
    irq(_IRQ["connect"], (5, 0, MAC))
    assert b._conns == [3, 5]
    adverts = len(radio.adverts)
    irq(_IRQ["disconnect"], (3, 0, MAC))
    assert b._conns == [5] and len(radio.adverts) == adverts + 1
    irq(_IRQ["disconnect"], (9, 0, MAC))  # unknown: nothing to remove
    assert b._conns == [5]
    irq(_IRQ["disconnect"], (5, 0, MAC))
    assert b._conns == [] and b.trusted() == []
    assert irq(_IRQ["read"], (5, handle(b, "battery_level"))) == 0  # an open value
    b.tick(1000, False)
    assert k.events == ["ble connect", "ble connect", "ble disconnect", "ble disconnect",
                        "ble disconnect"]  # fmt: skip


# --- values while connected -------------------------------------------------------------------


def test_heating_is_notified_at_changes_and_every_10_s(kit: tuple[Any, Kit, FakeBle]) -> None:
    b, k, radio = kit
    radio.handler(_IRQ["connect"], (1, 0, MAC))
    h = k.heater
    h.state = states.HEATING
    k.session_ms = 100_000
    radio.notified.clear()
    b.tick(100_000 + 25_400, False)  # a state change: notified at once
    hh = handle(b, "heating")
    assert (hh, struct.pack("<BBBBHHB", 1, 2, 0, 14, 25, 335, 0)) in radio.notified
    n = len(radio.notified)
    b.tick(100_000 + 26_000, True)  # the same 10 s bucket: quietly updated
    assert [x for x in radio.notified[n:] if x[0] == hh] == []
    assert value(radio, b, "heating")[4:8] == struct.pack("<HH", 26, 334)
    b.tick(100_000 + 30_000, True)  # a new 10 s bucket: notified
    assert (hh, value(radio, b, "heating")) in radio.notified[n:]
    h.puffs.count = 4
    b.tick(100_000 + 31_000, False)
    assert value(radio, b, "heating")[2] == 4
    b.tick(100_000 + 500_000, True)  # past the session's time: held at its end
    assert value(radio, b, "heating")[4:8] == struct.pack("<HH", 360, 0)
    h.state = states.PREHEAT
    k.session_ms = 1_000_000
    b.tick(1_000_000, False)
    assert value(radio, b, "heating")[4:8] == struct.pack("<HH", 0, 360)  # preheat: all to go
    h.state = states.COOLING
    h.end_reason = states.END_TIME
    b.tick(1_000_500, False)
    assert value(radio, b, "heating") == struct.pack("<BBBBHHB", 1, 4, 4, 14, 0, 0, 1)


def test_status_battery_counters_and_usage_follow_the_kit(kit: tuple[Any, Kit, FakeBle]) -> None:
    b, k, radio = kit
    radio.handler(_IRQ["connect"], (1, 0, MAC))
    p = k.power
    p.docked, p.usb, p.holder_low = True, True, True
    p.chg._set_soc(2500)
    k.settings["locked"] = True
    k.settings["limit"] = 1
    k.usage.started(0)
    k.device.kit = 2
    k.counters["sessions"] = 4
    b.tick(2000, True)
    flags = 0b1 | 0b1000 | 0b10_0000 | 0b100_0000  # docked, USB, locked, limit reached
    assert value(radio, b, "status") == bytes([1, flags, 91, 25, 2])
    assert value(radio, b, "battery_level") == bytes([25])
    assert struct.unpack("<B6I", value(radio, b, "counters"))[1] == 4
    assert value(radio, b, "usage") == struct.pack("<BBHBB", 1, 1, 0, 1, 1)
    p.usb_loop.state = 2  # charging
    k.heater.state = states.HEATING
    b.tick(3000, True)
    assert value(radio, b, "status")[1] & 0b1_0100 == 0b1_0100  # in session, charging
    k.settings["sharing"] = False
    b.tick(4000, True)
    assert value(radio, b, "usage") == struct.pack("<BBHBB", 1, 0, 0, 1, 0)


def test_the_fault_log_as_the_phone_reads_it(kit: tuple[Any, Kit, FakeBle]) -> None:
    b, k, radio = kit
    radio.handler(_IRQ["connect"], (1, 0, MAC))
    log = k.fault_log
    for i in range(10):
        log.record(1 + i % 9, 1000 * i, 100 + i)
    k.heater.fault = faults.HEATER_OPEN
    b.tick(2000, True)
    got = value(radio, b, "faults")
    v, active, total, n = struct.unpack_from("<BBHB", got)
    assert (v, active, total, n) == (1, faults.HEATER_OPEN, 10, 8)
    entries = [struct.unpack_from("<Bi", got, 5 + 5 * j) for j in range(n)]
    assert entries == [(1 + i % 9, 100 + i) for i in range(2, 10)]  # the last 8, oldest first
    assert len(got) == 5 + 5 * 8
    log.clear()
    b.tick(3000, True)
    assert value(radio, b, "faults") == struct.pack("<BBHB", 1, faults.HEATER_OPEN, 0, 0)


@pytest.mark.parametrize(
    ("amb_c", "shown", "flags"),
    [(20.0, 20, 0), (-1.0, -1, 1), (51.0, 51, 2), (50.0, 50, 0), (0.0, 0, 0)],
)
def test_ambient_alerts(
    kit: tuple[Any, Kit, FakeBle], amb_c: float, shown: int, flags: int
) -> None:
    b, k, radio = kit
    radio.handler(_IRQ["connect"], (1, 0, MAC))
    fw_edges_set_ambient(k, amb_c)
    b.tick(2000, True)
    assert value(radio, b, "alerts") == struct.pack("<BBb", 1, flags, shown)


def test_ambient_is_shown_in_whole_degrees_with_hysteresis(kit: tuple[Any, Kit, FakeBle]) -> None:
    b, k, radio = kit
    radio.handler(_IRQ["connect"], (1, 0, MAC))
    shown = []
    for dc in (200, 207, 208, 215, 212, 199, 198):  # 0.1 C: it moves only 0.7 C past a degree
        k.heater._amb_uv = 0
        b.heater = types.SimpleNamespace(amb_dc=dc, state=k.heater.state, puffs=k.heater.puffs,
                                         fault=0, end_reason=0)  # fmt: skip
        b.tick(2000, True)
        shown.append(struct.unpack("<BBb", value(radio, b, "alerts"))[2])
    assert shown == [20, 20, 21, 21, 21, 20, 20]
    # from 0: a move of more than 0.7 C shows the nearest degree, halves away from 0
    for dc, c in ((-7, 0), (-8, -1), (-14, -1), (-15, -2), (15, 2), (1400, 127), (-1400, -128)):
        b._amb_c = 0 if abs(dc) < 1000 else b._amb_c
        b.heater = types.SimpleNamespace(amb_dc=dc, state=0, puffs=k.heater.puffs, fault=0,
                                         end_reason=0)  # fmt: skip
        b.tick(2000, True)
        assert struct.unpack("<BBb", value(radio, b, "alerts"))[2] == c, dc


def fw_edges_set_ambient(k: Kit, c: float) -> None:
    ntc = fw.firmware("ntc")
    k.heater._amb_uv = ntc.uv_at_c(c)

"""The BLE bridge (hil/ble/bridge.py), phones (hil/ble/phone.py) and client
(hil/ble/client.py) against the emulated radio (sim/mpapi/vbluetooth.py),
driven by a small GATT program of the tests' own (tests/ble/ble_program.py)
that uses MicroPython's `bluetooth` API as firmware does. Host-stepped: the
clock stands still while the program answers, so every time below is exact.
On the simulator and the virtual board."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Generator
from pathlib import Path

import pytest

from hil.ble.bridge import SEC_SIZE, SecRecord, records
from hil.ble.client import (
    AttError,
    BleClient,
    BleError,
    NoAdapter,
    Notification,
    PairingFailed,
)
from hil.ble.phone import VirtualAir
from hil.ble.uuids import uuid128
from hil.rig.dut import Dut
from hil.simulator import toolchain
from hil.wire import frames

PROGRAM = (Path(__file__).parent / "ble_program.py").read_text()
CUSTOM = "7e1a0000-5c1d-4b8e-9f2a-6b3c4d5e6f70"


def char(nn: str) -> str:
    return f"7e1a00{nn}-5c1d-4b8e-9f2a-6b3c4d5e6f70"


STATUS, HAPTICS, FIND, CONTROL, WINDOW, BLOB, ECHO = (
    char(n) for n in ("01", "05", "06", "0e", "f0", "f1", "f2")
)
LEVEL = 0x2A19


@pytest.fixture
def ble(dut: Dut) -> Generator[VirtualAir, None, None]:
    if dut.target.capabilities().radio:
        pytest.skip("a real radio: the bridge serves emulated ones")
    dut.target.remove_files("ble_bonds.json")  # a board's flash outlives the test: no old bonds
    dut.start(ble_program=PROGRAM)
    yield dut.ble()


@pytest.fixture
def phone(ble: VirtualAir) -> BleClient:
    return ble.phone()


def connected(ble: VirtualAir) -> BleClient:
    p = ble.phone()
    p.connect()
    return p


pytestmark = pytest.mark.plant  # host-stepped time needs the simulated plant's clock


# --- the emulated radio, alone ----------------------------------------------------------------
def run_emulation(script: str) -> tuple[dict[str, object], list[str]]:
    """A script against the emulation alone: its JSON (last line) and the T_BLE frames."""
    argv, env = toolchain.micropython_command(["-c", script], modules=toolchain.sim_modules())
    r = subprocess.run(argv, capture_output=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    got, text = frames.Decoder().feed(r.stdout)
    ble = [frames.text(f.payload) for f in got if f.ftype == frames.T_BLE]
    return json.loads(text.strip().splitlines()[-1]), ble


def test_emulation_numbers_handles_as_nimble_and_chunks_long_values() -> None:
    out, ble = run_emulation(
        """
import sys, json
from sim.mpapi import vbluetooth as bt
b = bt.BLE()
b.active(True)
s = (bt.UUID(0x180F), ((bt.UUID(0x2A19), 0x12), (bt.UUID(0x2A1A), 0x0A, ((bt.UUID(0x2901), 1),))))
c = (bt.UUID("7e1a0000-5c1d-4b8e-9f2a-6b3c4d5e6f70"), ((bt.UUID(0x2A00), 0x02),))
h = b.gatts_register_services((s, c))
got = []
b.irq(lambda e, d: got.append(e) or (0x13 if e == 3 else None))
b.gatts_write(h[0][0], b"ab")
bt.channel(["conn", "1", "0", "0", "c00000000001"])
bt.channel(["wr", "2", "0", str(h[0][1]), "01"])
v = b.gatts_read(h[0][1])
b.gatts_notify(0, h[0][0], bytes(150))
print(json.dumps({"h": h, "irqs": got, "kept": len(v), "same": b.BLE() is b.BLE()}))
""".replace("b.BLE()", "bt.BLE()")
    )
    # service 1, 2A19 decl 2 value 3 CCCD 4, 2A1A decl 5 value 6, its 2901 at 7; service 8, 9/10
    assert out["h"] == [[3, 6, 7], [10]]
    assert out["irqs"] == [1, 3]
    assert out["kept"] == 0  # the refused write was undone
    assert out["same"]
    assert ble[:8] == ["act 1", "reg 2", "svc 180f", "chr 3 2a19 12", "dsc 4 2902 a",
                       "chr 6 2a1a a", "dsc 7 2901 1", "svc " + CUSTOM]  # fmt: skip
    assert ble[-3] == "ok 2 19"  # refused with 0x13
    assert ble[-2:] == ["+ " + "00" * 100, "ntf 0 0 3 " + "00" * 50]  # 150 bytes, 2 frames


_IRQ_MODEL = """
import json, os, sys
from sim.mpapi import vbluetooth as bt
b = bt.BLE()
b.active(True)
out = {}
def deep(n):
    return deep(n - 1) if n else 0
calls = []
def handler(event, data):
    calls.append(event)
    if event == 3:  # a write: as deep as the data says
        return deep(data[1])
    if event == 4:  # a read: writes the flash
        with open("f.txt", "w") as f:
            f.write("x")
        return 0
    if event == 21:
        raise ValueError("boom")
    return None
b.irq(handler)
bt.channel(["conn", "1", "0", "0", "c00000000001"])
out["shallow"] = b._call(3, (0, 3))
out["flash"] = [b._call(4, (0, 1)), bt.flash_writes()]
out["deep"] = b._call(3, (0, 40))  # RuntimeError past the 4 kB: the handler is disabled
out["disabled"] = b.disabled
out["after"] = [b._call(3, (0, 1)), b._call(1, (2, 0, bytes(6)))]  # unanswered from now on
out["calls"] = calls
b2 = bt.Radio(False)
b2.irq(handler)
b2._call(21, (0, 0))
out["raised"] = b2.disabled
os.remove("f.txt")
print(json.dumps(out))
"""


def test_the_irq_handler_is_held_to_the_esp32s_stack_and_disabled_by_an_exception(
    tmp_path: Path,
) -> None:
    """sim/mpapi/vbluetooth.py _Task: the handler runs with 4 kB of stack as
    on the NimBLE host task; past it MicroPython's RuntimeError, which, let
    out, disables the handler for good (modbluetooth.c), as any exception
    does; flash writes from inside it are counted."""
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        out, _ble = run_emulation(_IRQ_MODEL)
    finally:
        os.chdir(cwd)
    assert out["shallow"] == 0
    assert out["flash"] == [0, 1]
    assert out["deep"] is None and out["disabled"] == 1
    assert out["after"] == [None, None]
    assert out["calls"] == [1, 3, 4, 3, 21]  # none after it was disabled (21: the second radio)
    assert out["raised"] == 1


_STORE_LOOPS = """
import json
from sim.mpapi import vbluetooth as bt
b = bt.BLE()
b.active(True)
seen = []
KEY = bytes([1, 1, 2, 3, 4, 5, 0xC0])
REC = KEY + bytes(bt.SEC_SIZE - 7)
def stubborn(event, data):
    seen.append((event, data[0], None if data[-1] is None else len(data[-1])))
    if event == 29:
        return REC if data[2] is not None and bytes(data[2]) == KEY else None
    if event == 30:
        return data[2] is None  # every delete "succeeds", the key never goes
    return None
b.irq(stubborn)
bt.channel(["conn", "1", "0", "1", "c00504030201"])
go = b._pair_request(0, KEY)
out = {"go": go, "stalled": b.stalled, "calls": len(seen)}
seen[:] = []
b.stalled = ""
order = []
def store(event, data):
    order.append(event)
    if event == 29:
        return None  # nothing: the iteration (a zero key) finds no one to unpair
    if event == 30:
        return False  # refused
    return None
b.irq(store)
out["writes"] = b._paired(0, "enc", True, False, True, 16, REC, REC)
out["order_enc"] = order[:]
order[:] = []
b._paired(0, "keys", True, False, True, 16, REC, REC)
out["order_keys"] = order
print(json.dumps(out))
"""


def test_the_emulation_runs_nimbles_store_sequences() -> None:
    """A delete that never runs dry keeps NimBLE's repeat-pairing check
    looping: the emulation stops and says so. A refused write gets the
    overflow policy's turn (an iteration of our records with a zero key, as
    the ESP32 port passes BLE_ADDR_ANY), then fails; the encryption update
    comes before the records ("enc") or after them ("keys")."""
    out, _ = run_emulation(_STORE_LOOPS)
    assert out["go"] is False and "delete" in str(out["stalled"])
    assert out["writes"] == [5, 5]
    assert out["order_enc"] == [28, 30, 29, 30, 29]
    assert out["order_keys"] == [30, 29, 30, 29, 28]


def test_wire_frames_decode_as_text() -> None:
    payload = b"ntf 1000000 0 3 0102"
    f = frames.encode(frames.T_BLE, payload)
    got, text = frames.Decoder().feed(b"junk" + f)
    assert got == [frames.Frame(frames.T_BLE, payload)] and text == b"junk"


def test_uuids_and_bond_records() -> None:
    from bumble import hci
    from bumble.keys import PairingKeys

    assert uuid128(0x2A19) == "00002a19-0000-1000-8000-00805f9b34fb"
    assert uuid128("0x2A19") == uuid128("2a19") == uuid128(0x2A19)
    assert uuid128(CUSTOM.upper()) == CUSTOM
    addr = hci.Address("C0:11:22:33:44:55")
    keys = PairingKeys(
        ltk=PairingKeys.Key(bytes(range(16)), authenticated=False),
        irk=PairingKeys.Key(bytes(range(16, 32))),
    )
    both = records(addr, keys, sc=True, authenticated=False)
    assert len(both) == 2 * SEC_SIZE == 176  # NimBLE's struct ble_store_value_sec, twice
    ours, peer = SecRecord.decode(both[:SEC_SIZE]), SecRecord.decode(both[SEC_SIZE:])
    assert both[:7] == b"\x01" + bytes(addr)  # the key: ble_addr_t, the address little-endian
    assert both[80] == 0b10 and both[40] == 1  # sc, not authenticated; ltk_present
    assert ours.address == addr and ours.ltk == bytes(range(16)) and ours.irk is None
    assert (ours.ediv, ours.rand, ours.sc, ours.authenticated) == (0, 0, True, False)
    assert peer.ltk == ours.ltk and peer.irk == bytes(range(16, 32)) and peer.csrk is None
    legacy = PairingKeys(
        ltk_central=PairingKeys.Key(bytes(16), authenticated=False, ediv=7, rand=bytes(range(8))),
        ltk_peripheral=PairingKeys.Key(bytes([9] * 16), authenticated=False, ediv=8, rand=bytes(8)),
    )
    ours = SecRecord.decode(records(addr, legacy, sc=False, authenticated=False)[:SEC_SIZE])
    assert not ours.sc and ours.ediv == 7 and ours.rand == int.from_bytes(bytes(range(8)), "little")


def test_bleak_without_an_adapter_says_so() -> None:
    try:
        client = BleClient.bleak()
        client.scan(0.5)
    except NoAdapter as e:
        assert "adapter" in str(e)
    except BleError:  # an adapter is there, but something else went wrong: still no traceback
        pass


# --- discovery ----------------------------------------------------------------------------------
def test_scan_finds_the_advertised_name_and_service(ble: VirtualAir, phone: BleClient) -> None:
    ads = phone.scan()
    assert [(a.name, a.service_uuids) for a in ads] == [("heatrig", [CUSTOM])]
    phone.connect(ads[0].address)
    assert phone.connected
    svcs = phone.services()
    assert svcs[uuid128(0x180F)] == [uuid128(LEVEL)]
    assert svcs[CUSTOM] == [STATUS, HAPTICS, FIND, CONTROL, WINDOW, BLOB, ECHO]
    assert phone.mtu == 185  # the phone asks 247, the program's config allows 185
    assert ble.device is not None


def test_connect_and_mtu_reach_the_program(dut: Dut, ble: VirtualAir, phone: BleClient) -> None:
    phone.connect()
    dut.expect_event(r"^ble connect$", timeout_s=0.1)
    dut.expect_event(r"^ble mtu 185$", timeout_s=0.1)
    assert phone.read(STATUS) == b"\x01"  # the program counted the connection


# --- reads and writes ---------------------------------------------------------------------------
def test_writes_accepted_and_refused_with_the_programs_att_code(ble: VirtualAir) -> None:
    phone = connected(ble)
    phone.write(FIND, b"\x05")
    assert phone.read(FIND) == b"\x05"
    with pytest.raises(AttError) as e:
        phone.write(FIND, b"\x79")  # 121 s
    assert e.value.code == 0x13
    with pytest.raises(AttError) as e:
        phone.write(FIND, b"\x01\x02")
    assert e.value.code == 0x0D
    phone.write(FIND, b"\x7a", response=False)  # refused, silently
    assert phone.read(FIND) == b"\x05"  # a refused write changes nothing


def test_long_values_cross_in_pieces(ble: VirtualAir) -> None:
    phone = connected(ble)
    assert phone.read(BLOB) == bytes(range(150))  # "+" frames, and long reads
    with pytest.raises(AttError) as e:  # 60 bytes: staged in "more" lines, cut to 20 by the buffer
        phone.write(FIND, bytes(60))
    assert e.value.code == 0x0D


# --- notifications ------------------------------------------------------------------------------
def test_notifications_arrive_in_order_with_virtual_times(dut: Dut, ble: VirtualAir) -> None:
    phone = connected(ble)
    phone.subscribe(LEVEL)
    t0 = dut.now_s
    dut.advance(5.0)
    notes = phone.notifications(LEVEL)
    assert [n.t_s for n in notes] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert 0.0 <= t0 <= 0.001  # the boot's one flash write (sim/mpapi/vflash.py)
    assert [n.value[0] for n in notes] == [51, 52, 53, 54, 55]
    assert phone.read(LEVEL) == b"\x37"


def test_indications_and_updates_reach_the_subscribed(dut: Dut, ble: VirtualAir) -> None:
    phone = connected(ble)
    dut.advance(0.5)
    t = dut.now_s  # 0.5 s after the boot (its flash write took 0.4 ms)
    phone.write(WINDOW, b"\x01")  # status updated with send_update: nobody subscribed yet
    phone.subscribe(STATUS)
    phone.subscribe(ECHO)
    phone.write(FIND, b"\x07")  # indicated from the write's IRQ
    dut.expect_event(r"^ble indicated 0$", timeout_s=0.1)  # _IRQ_GATTS_INDICATE_DONE, status 0
    with pytest.raises(AttError):
        phone.write(FIND, b"\x79")  # refused: nothing indicated
    phone.write(WINDOW, b"\x01")
    assert phone.notifications(ECHO) == [Notification(t, b"\x07")]
    assert phone.notifications(STATUS) == [Notification(t, b"\x65")]  # 100 + 1 connect


def test_two_phones_each_get_their_own(dut: Dut, ble: VirtualAir) -> None:
    first = connected(ble)
    first.subscribe(LEVEL)
    second = ble.phone()
    assert second.scan(0.2) == []  # a peripheral stops advertising when a central connects
    first.disconnect()
    dut.expect_event(r"^ble disconnect$", timeout_s=0.1)
    assert not first.connected
    assert [a.name for a in second.scan()] == ["heatrig"]  # the program advertises again
    second.connect()
    second.subscribe(LEVEL)
    dut.advance(2.0)
    assert [n.t_s for n in second.notifications(LEVEL)] == [1.0, 2.0]
    assert first.notifications(LEVEL) == []


# --- security -----------------------------------------------------------------------------------
def test_encrypted_characteristics_refused_until_paired(dut: Dut, ble: VirtualAir) -> None:
    phone = connected(ble)
    t_start = dut.now_s
    for op in (lambda: phone.read(HAPTICS), lambda: phone.write(HAPTICS, b"\x01\x00\x00")):
        with pytest.raises(AttError) as e:
            op()
        assert e.value.code in (0x0F, 0x05)  # insufficient encryption (or authentication)
    phone.pair()
    # NimBLE (the model's "enc" order): the encryption update first, Just Works (not
    # authenticated), bonded (the procedure's flag), then our keys and the peer's stored
    dut.expect_event(r"^ble enc 1 0 1$", timeout_s=0.1)
    dut.expect_event(r"^ble bonded$", timeout_s=0.1)
    dut.expect_event(r"^ble bonded$", timeout_s=0.1)
    assert phone.read(HAPTICS) == b"\x01\x0f\x50"
    phone.write(HAPTICS, b"\x01\x03\x10")
    assert phone.read(HAPTICS) == b"\x01\x03\x10"
    with pytest.raises(AttError) as e:
        phone.write(HAPTICS, b"\x02\x03\x10")
    assert e.value.code == 0x13
    assert dut.now_s == t_start  # no device time passed


def test_authenticated_is_what_smp_established(dut: Dut) -> None:
    """Bumble calls every paired link authenticated; the firmware hears what
    SMP established: numeric comparison (both sides display and confirm) is,
    Just Works (test above) is not."""
    from bumble.pairing import PairingDelegate
    from hostile import Hostile

    program = PROGRAM.replace("mitm=False, io=3", "mitm=True, io=1")  # DisplayYesNo
    assert program != PROGRAM
    dut.target.remove_files("ble_bonds.json")
    dut.start(ble_program=program)
    ble = dut.ble()
    h = Hostile(
        ble, "C0:00:00:00:C0:01", mitm=True, io=PairingDelegate.DISPLAY_OUTPUT_AND_YES_NO_INPUT
    )
    h.run(h.connect())
    assert h.run(h.pair())
    dut.expect_event(r"^ble enc 1 1 1$", timeout_s=0.1)  # encrypted, authenticated, bonded
    recs = [ble.record(sec, h.address) for sec in (1, 2)]
    assert all(r is not None and r.authenticated and r.sc for r in recs)


def test_bonds_live_on_the_device_and_go_with_unpair(dut: Dut, ble: VirtualAir) -> None:
    phone = connected(ble)
    phone.pair()
    bonds = ble.run(ble.keystore.get_all())
    assert len(bonds) == 1
    assert bonds[0][1].ltk is not None
    phone.write(CONTROL, b"\x02")  # unpair: the program deletes every bond and drops the link
    dut.expect_event(r"^ble unpaired$", timeout_s=0.1)
    assert not phone.connected
    assert ble.run(ble.keystore.get_all()) == []
    phone.connect()  # its key is refused: the phone forgets the bond
    with pytest.raises(AttError):
        phone.read(HAPTICS)
    phone.pair()  # and pairs anew
    assert phone.read(HAPTICS) == b"\x01\x0f\x50"


def test_bond_refused_outside_the_pairing_window(dut: Dut, ble: VirtualAir) -> None:
    phone = connected(ble)
    phone.write(WINDOW, b"\x00")
    with pytest.raises(PairingFailed):
        phone.pair()
    dut.expect_event(r"^ble enc 1 0 1$", timeout_s=0.1)  # NimBLE reports it bonded ...
    dut.expect_event(r"^ble bond refused$", timeout_s=0.1)  # ... before the store refuses
    assert not phone.connected  # the program dropped the link at the refusal
    assert ble.run(ble.keystore.get_all()) == []


def test_bonds_survive_a_reset_the_link_does_not(dut: Dut, ble: VirtualAir) -> None:
    phone = connected(ble)
    phone.pair()
    dut.reset()
    assert not phone.connected
    assert len(ble.run(ble.keystore.get_all())) == 1  # on the device's flash
    phone.connect()  # the phone encrypts with its bond; the new boot finds its own on flash
    dut.expect_event(r"^ble enc 1 0 1$", timeout_s=0.1)
    assert phone.read(HAPTICS) == b"\x01\x0f\x50"


def test_a_device_gone_quiet_fails_the_call_at_once(dut: Dut, ble: VirtualAir) -> None:
    if not dut.target.capabilities().link_ends_with_run:
        pytest.skip("ends the run under the bridge: needs a link that ends with it")
    phone = connected(ble)
    assert dut.live is not None
    dut.live.link.send_line("@plant end")  # the run ends: nobody answers the bridge any more
    with pytest.raises(BleError) as e:
        phone.read(FIND)
    # the bridge's own answer (the link closed or gone, as the race with the
    # process's exit falls; or its reply timeout), not a GATT timeout
    assert re.search(r"link closed|link is gone|no answer to .* within", str(e.value)), str(e.value)

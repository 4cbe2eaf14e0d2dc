"""The kit against a hostile phone, on the simulated radio: Bumble centrals
driven PDU by PDU (tests/ble/hostile.py) against the firmware's GATT server
(firmware/ble_gatt.py), with the bridge answering as NimBLE on the ESP32
(hil/ble/bridge.py NimbleModel: the encryption reported before or after the
keys are stored; CCCDs open or inheriting their characteristic's security).

Each test sets the kit up as its owner would -- bonded in the pairing window,
registered, locked, a limit set -- then attacks it, and checks on what the
device holds that the attack changed nothing: every protected value as the
owner reads it, the bond store record by record, and the owner still in
control. docs/ble_profile.md, "Security", says what a phone gets."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from bumble import att
from conftest import open_pairing, triple_click
from hostile import NO_ANSWER, Hostile, off_the_air, phone_address

from hil.ble import values as P
from hil.ble.bridge import NimbleModel
from hil.ble.client import AttError, BleClient
from hil.ble.phone import VirtualAir
from hil.rig.dut import Dut

pytestmark = pytest.mark.plant  # host-stepped time needs the simulated plant's clock

ATTACKER = "C0:00:00:00:A0:02"
WHEN = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
# what the kit answers an untrusted link: insufficient authentication (no bond
# accepted), insufficient encryption (a bond for its address, not encrypted)
REFUSED = (P.ATT_INSUFFICIENT_AUTHENTICATION, P.ATT_INSUFFICIENT_ENCRYPTION)
READABLE = [u for u in P.PROTECTED if u != P.CONTROL] + [P.UPDATE_CONTROL]
WRITES = {  # a valid value for every protected writable characteristic
    P.HAPTICS: P.haptics_value((), 0),
    P.FIND: b"\x78",
    P.LOCK: b"\x00",
    P.LIMIT: b"\x00",
    P.SHARING: b"\x00",
    P.REGISTRATION: P.CLEAR_REGISTRATION,
    P.CONTROL: bytes([P.CONTROL_UNPAIR]),
    P.UPDATE_CONTROL: bytes([4]),  # the update's status request
    P.UPDATE_DATA: bytes(8),
}
NOTIFYING = (P.FAULTS, P.LOCK, P.RESULT, P.UPDATE_CONTROL)  # protected, with a CCCD


@dataclass
class Kit:
    dut: Dut
    air: VirtualAir
    owner: BleClient

    def store(self) -> list[str]:
        """Every record of the bond store, ours then the peers', as NimBLE iterates them."""
        out = []
        for sec in (1, 2):
            for i in range(32):
                got = self.air.request("sget", sec, i, "-")
                if got[0] == "-":
                    break
                out.append(f"{sec}:{got[0]}")
        return out

    def values(self) -> dict[str, bytes]:
        """Every protected value, as the owner reads it (and the owner's trust with it)."""
        o = self.owner
        if not o.connected:
            o.connect()
        assert o.backend.reencrypted, "the owner's phone encrypts with its bond"  # type: ignore[attr-defined]
        got = {P.NAMES[u]: o.read(u) for u in READABLE if u != P.FIND}
        o.disconnect()
        self.dut.advance(0.3)
        return got

    def stats(self) -> dict[str, int]:
        return stats(self.air)

    def owner_read(self, uuid: str) -> bytes:
        o = self.owner
        o.connect()
        got = o.read(uuid)
        o.disconnect()
        self.dut.advance(0.3)
        return got


def stats(air: VirtualAir) -> dict[str, int]:
    """The emulation's IRQ figures ("@ble stats"): irqs, disabled, flash_writes, stack, step."""
    w = air.request("stats")
    return {w[i]: int(w[i + 1]) for i in range(0, len(w) - 1, 2)}


def make_kit(dut: Dut, model: NimbleModel | None = None) -> Kit:
    dut.start()
    air = dut.ble()
    air.model = model or NimbleModel()
    owner = air.phone("owner")
    owner.connect()
    open_pairing(dut)
    owner.pair()
    dut.expect_event(r"^ble bonded$", timeout_s=1.0)
    dut.expect_event(r"^ble pairing closed$", timeout_s=1.0)
    owner.write(P.REGISTRATION, P.register_value(WHEN))
    owner.write(P.LOCK, b"\x01")
    owner.write(P.LIMIT, b"\x05")
    owner.write(P.HAPTICS, P.haptics_value(("ready",), 40))
    owner.disconnect()
    dut.advance(0.5)
    return Kit(dut, air, owner)


@pytest.fixture
def kit(dut: Dut) -> Iterator[Kit]:
    yield make_kit(dut)


def after(kit: Kit, store: list[str], values: dict[str, bytes], boots: int) -> None:
    """Nothing the attack did stayed: the bond store record by record, every
    protected value, no reset; the IRQ handler never disabled, never at the flash."""
    assert kit.store() == store, "the bond store changed"
    assert kit.values() == values, "a protected value changed"
    assert P.counters(kit.owner_read(P.COUNTERS)).boots == boots, "the kit was reset"
    got = kit.stats()
    assert got["disabled"] == 0 and got["flash_writes"] == 0, got


def baseline(kit: Kit) -> tuple[list[str], dict[str, bytes], int]:
    store = kit.store()
    assert len(store) == 2, "the owner's bond: our record and the phone's"
    return store, kit.values(), P.counters(kit.owner_read(P.COUNTERS)).boots


async def everything(h: Hostile) -> dict[str, int]:
    """Every protected read, write and subscription, one after another: the
    ATT code each got (0: granted)."""
    got: dict[str, int] = {}
    for u in READABLE:
        got["read " + P.NAMES[u]] = (await h.read(u))[0]
    for u, value in WRITES.items():
        if u != P.CONTROL:
            got["write " + P.NAMES[u]] = await h.write(u, value)
    for u in NOTIFYING:
        got["subscribe " + P.NAMES[u]] = await h.subscribe(u)
    got["write control unpair"] = await h.write(P.CONTROL, bytes([P.CONTROL_UNPAIR]))
    got["write control reset"] = await h.write(P.CONTROL, bytes([P.CONTROL_RESET]))
    return got


# --- pairing outside the window --------------------------------------------------------------
@pytest.mark.parametrize("order", ["enc", "keys"])
def test_a_phone_pairing_outside_the_window_gets_nothing_before_it_is_dropped(
    dut: Dut, order: str
) -> None:
    kit = make_kit(dut, NimbleModel(order=order))
    store, values, boots = baseline(kit)
    h = Hostile(kit.air, ATTACKER)
    h.run(h.connect())

    async def attack() -> tuple[bool, dict[str, int]]:
        paired = await h.pair()
        got: dict[str, int] = {}
        if h.connected:  # what it can do before the kit's disconnection reaches it
            got = await everything(h)
        return paired, got

    _paired, got = h.run(attack())
    dut.expect_event(r"^ble pairing refused$", timeout_s=1.0)
    dut.advance(0.5)
    assert not h.connected, "a refused pairing drops the link"
    granted = {k: v for k, v in got.items() if v == 0 and not k.startswith("subscribe")}
    assert granted == {}, f"granted to a phone the kit refused: {granted}"
    assert not [n for n in h.notes if n[0] in {h.handle(u) for u in NOTIFYING}]
    after(kit, store, values, boots)


def test_the_race_is_real_the_phone_was_still_encrypted_when_it_asked(dut: Dut) -> None:
    """The attack above is not empty: in the same exchange as its pairing the
    phone reaches the firmware with an encrypted link, and is refused by it
    (not by the stack)."""
    kit = make_kit(dut)
    h = Hostile(kit.air, ATTACKER)
    h.run(h.connect())

    async def attack() -> tuple[bool, int, bool]:
        await h.pair()
        encrypted = h.conn is not None and bool(h.conn.encryption)
        code = (await h.read(P.COUNTERS))[0] if h.connected else NO_ANSWER
        return encrypted, code, h.connected

    encrypted, code, still = h.run(attack())
    assert encrypted and still, "the phone asked on its encrypted link, before the drop"
    assert code == P.ATT_INSUFFICIENT_AUTHENTICATION  # the firmware's answer: not a trusted link


# --- a bonded phone's address ------------------------------------------------------------------
@pytest.mark.parametrize("order", ["enc", "keys"])
def test_a_phone_using_the_owners_address_cannot_replace_the_bond(dut: Dut, order: str) -> None:
    kit = make_kit(dut, NimbleModel(order=order))
    store, values, boots = baseline(kit)
    owner_at = phone_address(kit.owner)
    with off_the_air(kit.air, owner_at):
        h = Hostile(kit.air, owner_at, name="spoofer")
        h.run(h.connect())
        codes = [h.run(h.read(P.LOCK))[0], h.run(h.write(P.LOCK, b"\x00"))]
        assert codes == [P.ATT_INSUFFICIENT_ENCRYPTION] * 2, "NimBLE: a bond exists, encrypt first"
        assert not h.run(h.encrypt(bytes(16))), "a guessed key does not encrypt"
        assert not h.connected  # the controllers' MIC check failed: the link is gone
        h.run(h.connect())

        async def attack() -> dict[str, int]:
            await h.pair()  # NimBLE deletes the bond it has for the address, then pairs
            return await everything(h) if h.connected else {}

        got = h.run(attack())
        dut.expect_event(r"^ble pairing refused$", timeout_s=1.0)
        dut.advance(0.5)
        assert not h.connected
        assert [k for k, v in got.items() if v == 0 and not k.startswith("subscribe")] == []
        h.run(h.connect())
        assert not h.run(h.encrypt()), "the keys of the refused pairing are not the kit's"
        h.leave()
    after(kit, store, values, boots)


def test_a_second_bond_for_an_address_needs_the_window(kit: Kit) -> None:
    """The owner's phone lost its keys: pairing again is a new pairing, refused
    outside the window, accepted in it (replacing the old bond)."""
    store = kit.store()
    o = kit.owner
    o.backend.device.keystore = type(o.backend.device.keystore)()  # type: ignore[attr-defined]
    o.connect()
    with pytest.raises(Exception):  # noqa: B017  refused: PairingFailed, or the link dropped
        o.pair()
    kit.dut.advance(0.5)
    assert kit.store() == store
    if not o.connected:
        o.connect()
    open_pairing(kit.dut)
    o.pair()
    kit.dut.expect_event(r"^ble bonded$", timeout_s=1.0)
    new = kit.store()
    assert len(new) == 2 and new != store, "replaced, not added"
    assert P.registration(o.read(P.REGISTRATION)).registered


# --- legacy pairing -------------------------------------------------------------------------
@pytest.mark.parametrize("window", [False, True])
def test_legacy_pairing_is_refused_even_in_the_window(kit: Kit, window: bool) -> None:
    store, values, boots = baseline(kit)
    h = Hostile(kit.air, ATTACKER, sc=False)
    h.run(h.connect())
    if window:
        open_pairing(kit.dut)
    got = h.run(everything_after_pairing(h))
    kit.dut.expect_event(r"^ble pairing refused legacy$", timeout_s=1.0)
    kit.dut.advance(0.5)
    assert not h.connected
    assert [k for k, v in got.items() if v == 0 and not k.startswith("subscribe")] == []
    h.leave()
    kit.dut.advance(61)  # the window lapses
    after(kit, store, values, boots)


async def everything_after_pairing(h: Hostile) -> dict[str, int]:
    await h.pair()
    return await everything(h) if h.connected else {}


# --- subscriptions ----------------------------------------------------------------------------
@pytest.mark.parametrize("cccd", ["open", "inherit"])
def test_an_unencrypted_phone_subscribing_to_protected_values_hears_nothing(
    dut: Dut, cccd: str
) -> None:
    kit = make_kit(dut, NimbleModel(cccd=cccd))
    h = Hostile(kit.air, ATTACKER)
    h.run(h.connect())
    codes = {P.NAMES[u]: h.run(h.subscribe(u)) for u in (*NOTIFYING, P.STATUS)}
    if cccd == "open":  # esp-nimble: the stack takes any CCCD write
        assert set(codes.values()) == {0}
    else:  # NimBLE since 2026-07: a CCCD needs its characteristic's security
        assert set(codes.values()) == {0x05, 0} and codes["status"] == 0
        assert [k for k, v in codes.items() if v == 0] == ["status"]
    dut.command("start")  # engineering: past the owner's lock
    dut.wait_state("heating", timeout_s=40)
    dut.fault("heater_open")  # the faults value changes
    dut.wait_state("fault", timeout_s=0.5)
    dut.advance(2.0)
    h.run(h.write(P.LOCK, b"\x00"))  # refused: `result` does not change
    h.run(h.disconnect())
    dut.advance(0.5)
    protected = {h.handle(u) for u in NOTIFYING}
    heard = [n for n in h.notes if n[0] in protected]
    assert heard == [], f"protected notifications reached an untrusted phone: {heard}"
    assert any(n[0] == h.handle(P.STATUS) for n in h.notes), "the open ones do"
    h.leave()
    o = kit.owner  # the owner hears of both
    o.connect()
    o.subscribe(P.LOCK)
    o.write(P.LOCK, b"\x00")
    dut.advance(0.5)
    assert [P.level(n.value) for n in o.notifications(P.LOCK)] == [0]
    assert P.faults(o.read(P.FAULTS)).total == 1


# --- every ATT request type on an untrusted link --------------------------------------------------
async def every_request(h: Hostile) -> dict[str, object]:
    got: dict[str, object] = {}
    got["read"] = (await h.read(P.COUNTERS))[0]
    got["read blob"] = (await h.read_blob(P.FAULTS, 0))[0]
    got["read by type"] = (await h.read_by_type(P.IDS))[0]
    got["read multiple"] = (await h.read_multiple([P.STATUS, P.COUNTERS]))[0]
    got["read multiple variable"] = (await h.read_multiple([P.STATUS, P.USAGE], True))[0]
    got["write"] = await h.write(P.LOCK, b"\x00")
    got["prepared write"] = await h.prepared_write(P.LIMIT, b"\x00")
    await h.write_command(P.SHARING, b"\x00")
    got["open read multiple"] = (await h.read_multiple([P.STATUS, P.HEATING]))[0]
    return got


def expect_refused(got: dict[str, object], code: int, prepared: tuple[int, int]) -> None:
    assert got.pop("open read multiple") == 0, "open values stay readable together"
    assert got.pop("prepared write") == prepared
    assert NO_ANSWER not in got.values(), f"a request left unanswered: {got}"
    assert set(got.values()) == {code}, got


def test_every_request_type_is_refused_on_an_open_link(kit: Kit) -> None:
    store, values, boots = baseline(kit)
    h = Hostile(kit.air, ATTACKER)
    h.run(h.connect())
    got = h.run(every_request(h))
    expect_refused(got, P.ATT_INSUFFICIENT_AUTHENTICATION, (P.ATT_INSUFFICIENT_AUTHENTICATION, -2))
    h.run(h.disconnect())
    h.leave()
    after(kit, store, values, boots)


def test_every_request_type_is_refused_to_a_bonded_address_not_encrypting(kit: Kit) -> None:
    store, values, boots = baseline(kit)
    owner_at = phone_address(kit.owner)
    with off_the_air(kit.air, owner_at):
        h = Hostile(kit.air, owner_at, name="spoofer")
        h.run(h.connect())
        got = h.run(every_request(h))
        expect_refused(got, P.ATT_INSUFFICIENT_ENCRYPTION, (P.ATT_INSUFFICIENT_ENCRYPTION, -2))
        h.run(h.disconnect())
        h.leave()
    after(kit, store, values, boots)


def test_every_request_type_is_refused_on_an_encrypted_link_not_trusted(kit: Kit) -> None:
    store, values, boots = baseline(kit)
    h = Hostile(kit.air, ATTACKER)
    h.run(h.connect())

    async def attack() -> dict[str, object]:
        await h.pair()
        assert h.connected and h.conn is not None and h.conn.encryption
        return await every_request(h)

    got = h.run(attack())
    # NimBLE passes the prepare (the link is encrypted); the kit refuses the execute
    expect_refused(got, P.ATT_INSUFFICIENT_AUTHENTICATION, (0, P.ATT_INSUFFICIENT_AUTHENTICATION))
    kit.dut.advance(0.5)
    assert not h.connected
    h.leave()
    after(kit, store, values, boots)


def test_a_read_multiple_with_a_protected_handle_is_answered_at_once(kit: Kit) -> None:
    """Bumble's own server leaves it unanswered (the phone waits 30 s); NimBLE
    answers the first refused handle's error: the bridge does too."""
    h = Hostile(kit.air, ATTACKER)
    h.run(h.connect())
    handles = [h.handle(P.STATUS), h.handle(P.LOCK), h.handle(P.IDS)]
    rsp = h.run(h.request(att.ATT_Read_Multiple_Request(set_of_handles=handles)))
    assert isinstance(rsp, att.ATT_Error_Response), f"answered with an error: {rsp}"
    assert rsp.error_code == P.ATT_INSUFFICIENT_AUTHENTICATION
    assert rsp.attribute_handle_in_error == h.handle(P.LOCK)


# --- ownership -----------------------------------------------------------------------------
def test_a_registration_clear_arms_once_and_lapses(kit: Kit) -> None:
    o = kit.owner
    o.connect()
    o.write(P.REGISTRATION, P.CLEAR_REGISTRATION)
    t0 = kit.dut.now_s
    kit.dut.advance(20)
    with pytest.raises(AttError) as e:
        o.write(P.REGISTRATION, P.CLEAR_REGISTRATION)  # re-sent while armed: refused ...
    assert e.value.code == P.ATT_APP_STATE
    kit.dut.advance(t0 + 30.5 - kit.dut.now_s)  # ... and not extended: it lapses at 30 s
    assert not P.registration(o.read(P.REGISTRATION)).clear_pending
    triple_click(kit.dut)  # too late
    kit.dut.advance(0.5)
    assert o.connected and P.registration(o.read(P.REGISTRATION)).registered
    kit.dut.advance(t0 + 59.5 - kit.dut.now_s)  # resting: 30 s after the lapse
    with pytest.raises(AttError):
        o.write(P.REGISTRATION, P.CLEAR_REGISTRATION)
    kit.dut.advance(1.0)
    o.write(P.REGISTRATION, P.CLEAR_REGISTRATION)  # armed again
    assert P.registration(o.read(P.REGISTRATION)).clear_pending


def test_a_handover_needs_the_holder_and_leaves_the_old_phone_nothing(kit: Kit) -> None:
    old = kit.owner
    old.connect()
    old.write(P.REGISTRATION, P.CLEAR_REGISTRATION)
    for _ in range(5):  # routine clicks do nothing
        kit.dut.press(0.2)
        kit.dut.advance(0.8)
    assert P.registration(old.read(P.REGISTRATION)).registered
    triple_click(kit.dut)  # the holder in hand
    kit.dut.expect_event(r"^ble ownership cleared$", timeout_s=1.0)
    kit.dut.advance(0.5)
    assert not old.connected and kit.store() == []
    new = kit.air.phone("new owner")
    new.connect()
    open_pairing(kit.dut)  # the kit in hand
    new.pair()
    kit.dut.expect_event(r"^ble bonded$", timeout_s=1.0)
    later = datetime(2026, 7, 1, 9, 0, tzinfo=timezone.utc)
    new.write(P.REGISTRATION, P.register_value(later))
    new.write(P.LOCK, b"\x00")
    new.disconnect()
    kit.dut.advance(0.5)
    # the old phone: its keys are refused, and everything protected with them
    old_at = phone_address(old)
    with off_the_air(kit.air, old_at):
        h = Hostile(kit.air, old_at, name="old phone")
        h.run(h.connect())
        assert not h.run(h.encrypt(bytes(range(16)))), "the kit has no key for it any more"
        if not h.connected:
            h.run(h.connect())
        got = h.run(everything(h))
        assert [k for k, v in got.items() if v == 0 and not k.startswith("subscribe")] == []
        assert set(got.values()) - {0} <= set(REFUSED)
        h.run(everything_after_pairing(h))  # pairing again: the window is closed
        kit.dut.expect_event(r"^ble pairing refused$", timeout_s=1.0)
        h.leave()
    kit.dut.advance(0.5)
    new.connect()
    reg = P.registration(new.read(P.REGISTRATION))
    assert reg.registered and reg.date == later
    assert P.status(new.read(P.STATUS)).locked is False


@pytest.mark.parametrize(
    ("date", "now", "code"),
    [
        (datetime(1970, 1, 1, tzinfo=timezone.utc), WHEN, P.ATT_VALUE_NOT_ALLOWED),
        (datetime(2106, 2, 7, tzinfo=timezone.utc), WHEN, P.ATT_VALUE_NOT_ALLOWED),
        (datetime(2025, 12, 31, 23, 59, 59, tzinfo=timezone.utc), WHEN, P.ATT_VALUE_NOT_ALLOWED),
        (datetime(2026, 1, 1, tzinfo=timezone.utc), WHEN, 0),  # the first day of sale
        (datetime(2026, 6, 2, 9, 0, tzinfo=timezone.utc), WHEN, 0),  # a day ahead: tolerated
        (datetime(2026, 6, 2, 9, 0, 1, tzinfo=timezone.utc), WHEN, P.ATT_VALUE_NOT_ALLOWED),
    ],
)
def test_registration_dates_are_checked(dut: Dut, date: datetime, now: datetime, code: int) -> None:
    dut.start()
    o = dut.ble().phone()
    o.connect()
    open_pairing(dut)
    o.pair()
    value = struct.pack("<BBII", 1, 1, int(date.timestamp()), int(now.timestamp()))
    if code:
        with pytest.raises(AttError) as e:
            o.write(P.REGISTRATION, value)
        assert e.value.code == code
        assert not P.registration(o.read(P.REGISTRATION)).registered
    else:
        o.write(P.REGISTRATION, value)
        assert P.registration(o.read(P.REGISTRATION)).date == date


def test_a_phone_clock_behind_the_kits_is_refused(kit: Kit) -> None:
    o = kit.owner
    o.connect()
    o.write(P.REGISTRATION, P.CLEAR_REGISTRATION)
    triple_click(kit.dut)
    kit.dut.advance(0.5)
    o.connect()
    open_pairing(kit.dut)
    o.pair()
    behind = datetime(2026, 5, 30, 9, 0, tzinfo=timezone.utc)  # two days before WHEN
    with pytest.raises(AttError) as e:
        o.write(P.REGISTRATION, P.register_value(behind))
    assert e.value.code == P.ATT_VALUE_NOT_ALLOWED
    o.write(P.REGISTRATION, P.register_value(datetime(2026, 5, 31, 9, 1, tzinfo=timezone.utc)))


# --- the IRQ handler ------------------------------------------------------------------------------
IRQ_TIGHT = 2560  # bytes: 5/8 of the ESP32's 4096 for the handler


def test_the_handler_fits_5_8_of_the_ports_stack_and_never_writes_flash(dut: Dut) -> None:
    """The whole profile -- bonding, every read, write and subscription, the
    registration, unpair, a refused pairing -- with the IRQ handler held to
    5/8 of the ESP32's stack: it never fails, is never disabled, never reaches
    for the flash."""
    dut.start(ble_irq_stack=IRQ_TIGHT)
    air = dut.ble()
    o = air.phone()
    o.connect()
    open_pairing(dut)
    o.pair()
    dut.expect_event(r"^ble bonded$", timeout_s=1.0)
    for u in READABLE:
        o.read(u)
    for u in NOTIFYING:
        o.subscribe(u)
    for u, value in WRITES.items():
        if u not in (P.CONTROL, P.REGISTRATION):
            o.write(u, value)
    o.write(P.REGISTRATION, P.register_value(WHEN))
    o.write(P.REGISTRATION, P.CLEAR_REGISTRATION)
    dut.advance(1.0)
    o.write(P.CONTROL, bytes([P.CONTROL_CLEAR_FAULTS]))
    o.write(P.CONTROL, bytes([P.CONTROL_UNPAIR]))
    dut.expect_event(r"^ble unpaired$", timeout_s=1.0)
    dut.advance(0.5)
    h = Hostile(air, ATTACKER)
    h.run(h.connect())
    h.run(everything_after_pairing(h))
    dut.advance(0.5)
    got = stats(air)
    assert got["stack"] == IRQ_TIGHT and got["irqs"] > 50
    assert got["disabled"] == 0 and got["flash_writes"] == 0, got
    assert not [e for e in dut.events() if e.startswith("ble error")]


def test_an_exception_in_the_handler_refuses_and_does_not_disable_it(dut: Dut) -> None:
    """With half the ESP32's stack the refresh a connection brings overflows
    (RuntimeError, as on the ESP32): it is caught and reported, and the
    handler stays -- the next events are served, and nothing is granted that
    would not be."""
    dut.start(ble_irq_stack=2048)
    air = dut.ble()
    h = Hostile(air, ATTACKER)
    h.run(h.connect())
    dut.advance(0.5)
    assert "ble error irq 1" in dut.events(), "the connection's refresh did not fit"
    assert h.run(h.read(P.LOCK))[0] == P.ATT_INSUFFICIENT_AUTHENTICATION
    h.run(everything_after_pairing(h))  # outside the window: refused as ever
    dut.expect_event(r"^ble pairing refused$", timeout_s=1.0)
    dut.advance(0.5)
    assert not h.connected
    h.leave()
    o = air.phone()
    o.connect()
    open_pairing(dut)
    o.pair()
    dut.expect_event(r"^ble bonded$", timeout_s=1.0)
    assert P.level(o.read(P.LOCK)) == 0  # trusted: served
    assert stats(air)["disabled"] == 0, "caught: the handler was never disabled"

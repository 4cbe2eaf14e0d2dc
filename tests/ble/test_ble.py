"""The kit's BLE profile, with a phone on Bumble's host stack over a virtual
link: real ATT PDUs, MTU exchange, notifications and LE Secure Connections
pairing, at the device's virtual instant (hil/ble/bridge.py). The firmware's side
is firmware/ble_gatt.py, unchanged from the ESP32's."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator

import pytest
from conftest import open_pairing, triple_click

from hil.ble import values as P
from hil.ble.client import AttError, BleClient
from hil.rig.dut import Dut
from hil.wire import series

pytestmark = pytest.mark.plant  # host-stepped time needs the simulated plant

HOLD_START_S = 1.2  # the holder button held past its 1 s start threshold


@pytest.fixture
def phone(dut: Dut) -> Iterator[BleClient]:
    dut.start()
    client = dut.ble().phone()
    client.connect()
    yield client
    client.close()


def pair(dut: Dut, client: BleClient) -> None:
    open_pairing(dut)
    client.pair()
    dut.expect_event(r"^ble bonded", timeout_s=1.0)


def states_in(events: list[str]) -> list[str]:
    return [e.split()[1] for e in events if e.startswith("state ")]


def dedup(seq: list[str]) -> list[str]:
    return [s for i, s in enumerate(seq) if i == 0 or seq[i - 1] != s]


# --- discovery, battery, heating -------------------------------------------------------
def test_discovery_finds_the_standard_and_the_kit_services(dut: Dut, phone: BleClient) -> None:
    services = phone.services()
    assert {P.DEVICE_INFO, P.BATTERY, P.KIT} <= set(services)
    assert set(P.DEVICE_INFO_CHARS.values()) <= set(services[P.DEVICE_INFO])
    assert P.BATTERY_LEVEL in services[P.BATTERY]
    custom = {P.STATUS, P.HEATING, P.COUNTERS, P.FAULTS, P.HAPTICS, P.FIND, P.LOCK, P.USAGE}
    custom |= {P.LIMIT, P.SHARING, P.ALERTS, P.REGISTRATION, P.IDS, P.CONTROL, P.RESULT}
    assert custom <= set(services[P.KIT])
    assert P.text(phone.read(P.MANUFACTURER)) == "heatrig"
    assert re.match(r"^\d+\.\d+", P.text(phone.read(P.FIRMWARE_REV)))
    assert phone.mtu >= 23


def test_scan_sees_the_kit_advertising_its_service(dut: Dut) -> None:
    dut.start()
    adverts = dut.ble().phone().scan(timeout_s=1.0)
    kits = [a for a in adverts if a.name == "heatrig"]
    assert kits, f"no kit among {adverts}"
    assert P.KIT in kits[0].service_uuids


def test_battery_level_is_notified_as_the_charger_cell_drains(dut: Dut, phone: BleClient) -> None:
    first = P.level(phone.read(P.BATTERY_LEVEL))
    phone.subscribe(P.BATTERY_LEVEL)
    dut.press(HOLD_START_S)  # a session empties the holder ...
    dut.wait_state("cooling", timeout_s=400)
    dut.dock(True)  # ... which the charger then refills from its own cell
    dut.advance(300)
    levels = [P.level(n.value) for n in phone.notifications(P.BATTERY_LEVEL)]
    assert len(levels) >= 2, f"battery level {first} %, notified {levels}"
    assert levels == sorted(levels, reverse=True), "the level only falls while discharging"
    assert levels[-1] < first
    assert all(a != b for a, b in itertools.pairwise(levels)), "notified only on change"
    assert P.level(phone.read(P.BATTERY_LEVEL)) == levels[-1]


def test_every_state_change_of_a_session_is_notified(dut: Dut, phone: BleClient) -> None:
    phone.subscribe(P.HEATING)
    dut.press(HOLD_START_S)
    for _ in range(5):
        dut.advance(30)
        dut.puff()
    for state in ("end_warning", "cooling", "sleep"):
        dut.wait_state(state, timeout_s=400)
    dut.advance(2)
    notes = phone.notifications(P.HEATING)
    states = dedup([P.heating(n.value).state for n in notes])
    assert states == dedup(["sleep", *states_in(dut.events())])[1:]
    assert states[:3] == ["preheat", "heating", "end_warning"]
    assert states[-1] == "sleep"
    puffs = [P.heating(n.value).puffs for n in notes]
    assert max(puffs) == 5
    times = [n.t_s for n in notes]
    assert times == sorted(times), "notifications arrive in device-time order"


# --- security -----------------------------------------------------------------------------
def protected_refusals(client: BleClient) -> dict[str, int]:
    """Every protected read and write, with the ATT error each got (none: accepted)."""
    got: dict[str, int] = {}
    for u in P.PROTECTED:
        try:
            if u == P.CONTROL:
                client.write(u, bytes([P.CONTROL_CLEAR_FAULTS]))
            else:
                client.read(u)
        except AttError as e:
            got[P.NAMES[u]] = e.code
    writes = {P.LOCK: b"\x00", P.LIMIT: b"\x00", P.SHARING: b"\x01", P.FIND: b"\x00"}
    writes[P.HAPTICS] = P.haptics_value(P.HAPTIC_EVENTS, 80)
    for u, value in writes.items():
        try:
            client.write(u, value)
        except AttError as e:
            got[P.NAMES[u] + " write"] = e.code
    return got


def test_protected_characteristics_need_a_bond_and_lose_it_on_unpair(
    dut: Dut, phone: BleClient
) -> None:
    before = protected_refusals(phone)
    expected = len(P.PROTECTED) + 5
    assert len(before) == expected, f"refused only {sorted(before)}"
    assert set(before.values()) <= set(P.SECURITY_ERRORS), before
    for u in (P.STATUS, P.HEATING, P.ALERTS, P.BATTERY_LEVEL):
        phone.read(u)  # the open ones stay open
    pair(dut, phone)
    assert protected_refusals(phone) == {}
    P.counters(phone.read(P.COUNTERS))
    P.ids(phone.read(P.IDS))

    with contextlib.suppress(AttError):  # the link may drop before the response
        phone.write(P.CONTROL, bytes([P.CONTROL_UNPAIR]))
    dut.expect_event(r"^ble unpaired", timeout_s=1.0)
    dut.advance(1.0)
    assert not phone.connected, "unpair drops the link"
    phone.connect()
    after = protected_refusals(phone)
    assert len(after) == expected and set(after.values()) <= set(P.SECURITY_ERRORS), after


def test_several_phones_can_be_bonded(dut: Dut, phone: BleClient) -> None:
    pair(dut, phone)
    phone.disconnect()  # one phone at a time: the kit advertises while none is connected
    dut.advance(1.0)
    second = dut.ble().phone()
    second.connect()
    pair(dut, second)
    second.disconnect()
    dut.advance(1.0)
    for client in (phone, second, phone):  # each comes back with its own bond
        client.connect()
        P.counters(client.read(P.COUNTERS))
        client.disconnect()
        dut.advance(1.0)
    second.close()


# --- features -------------------------------------------------------------------------------
def test_a_locked_kit_does_not_heat_until_unlocked(dut: Dut, phone: BleClient) -> None:
    pair(dut, phone)
    phone.write(P.LOCK, b"\x01")
    dut.advance(0.5)  # the kit's status follows at its next tick
    assert P.status(phone.read(P.STATUS)).locked
    dut.press(HOLD_START_S)
    dut.expect_event(r"^refused locked", timeout_s=1.0)
    dut.advance(5)
    assert "preheat" not in states_in(dut.events())
    phone.write(P.LOCK, b"\x00")
    dut.press(HOLD_START_S)
    dut.wait_state("preheat", timeout_s=1.0)


def test_the_lock_survives_a_reset(dut: Dut, phone: BleClient) -> None:
    pair(dut, phone)
    phone.write(P.LOCK, b"\x01")
    dut.reset()  # at once: what was written reaches flash before the reset
    dut.press(HOLD_START_S)
    dut.expect_event(r"^refused locked", timeout_s=1.0)


def motor(dut: Dut, after_s: float) -> list[int]:
    """The vibration motor at each truth sample after device time after_s."""
    assert dut.live is not None
    tr = series.truth_array(dut.live.link.truth)
    on = (tr["io"] & series.IO_VIBRATION) > 0
    return [int(x) for x in on[tr["t_us"] > after_s * 1e6]]


def test_find_my_device_runs_the_motor_until_stopped(dut: Dut, phone: BleClient) -> None:
    pair(dut, phone)
    dut.advance(1.0)  # the bonding buzz is over
    t0 = dut.now_s
    phone.write(P.FIND, bytes([60]))
    dut.advance(3)
    assert P.level(phone.read(P.FIND)) > 0
    during = motor(dut, t0)
    phone.write(P.FIND, b"\x00")
    t_stop = dut.now_s
    dut.advance(3)
    assert sum(during) > 0 and during.count(0) > 0, "the motor pulses while finding"
    assert sum(motor(dut, t_stop + 0.1)) == 0, "and stops when told"
    assert P.level(phone.read(P.FIND)) == 0


def test_opting_out_of_sharing_keeps_no_usage_history(dut: Dut, phone: BleClient) -> None:
    pair(dut, phone)
    phone.write(P.SHARING, b"\x00")
    dut.press(HOLD_START_S)
    dut.wait_state("preheat", timeout_s=1.0)
    dut.press(HOLD_START_S)
    dut.wait_state("cooling", timeout_s=2.0)
    usage = P.usage(phone.read(P.USAGE))
    assert (usage.sessions_24h, usage.puffs_24h, usage.sharing) == (0, 0, False)


def test_registration_survives_a_reset_and_clears_only_with_the_holder_in_hand(
    dut: Dut, phone: BleClient
) -> None:
    from datetime import datetime, timezone

    pair(dut, phone)
    when = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    phone.write(P.REGISTRATION, P.register_value(when))
    assert P.registration(phone.read(P.REGISTRATION)).date == when
    with pytest.raises(AttError) as e:
        phone.write(P.REGISTRATION, P.register_value(when))  # registered once
    assert e.value.code == P.ATT_APP_STATE
    dut.reset()
    phone.connect()
    assert phone.backend.reencrypted  # type: ignore[attr-defined]  # its bond outlived the reset
    phone.write(P.REGISTRATION, P.CLEAR_REGISTRATION)
    reg = P.registration(phone.read(P.REGISTRATION))
    assert reg.registered and reg.clear_pending, "nobody pressed the button yet"
    dut.advance(31)
    reg = P.registration(phone.read(P.REGISTRATION))
    assert reg.registered and not reg.clear_pending, "the request lapses"
    with pytest.raises(AttError) as e:
        phone.write(P.REGISTRATION, P.CLEAR_REGISTRATION)  # not again at once
    assert e.value.code == P.ATT_APP_STATE
    dut.advance(30)
    phone.write(P.REGISTRATION, P.CLEAR_REGISTRATION)
    dut.press(0.2)  # a routine click does not confirm
    dut.advance(0.5)
    assert P.registration(phone.read(P.REGISTRATION)).registered
    triple_click(dut)  # the deliberate gesture does
    dut.expect_event(r"^ble ownership cleared$", timeout_s=1.0)
    dut.advance(0.5)
    assert not phone.connected, "clearing ownership removes every bond and drops the links"
    phone.connect()
    assert not phone.backend.reencrypted  # type: ignore[attr-defined]
    with pytest.raises(AttError) as e:
        phone.read(P.REGISTRATION)
    assert e.value.code == P.ATT_INSUFFICIENT_AUTHENTICATION
    pair(dut, phone)
    assert not P.registration(phone.read(P.REGISTRATION)).registered


# --- robustness ------------------------------------------------------------------------------
WRITABLE = {
    P.HAPTICS: (P.haptics_value(("ready",), 50), [bytes((1, 0x10, 50)), bytes((1, 1, 101))]),
    P.FIND: (b"\x00", [b"\x79", b"\xff"]),
    P.LOCK: (b"\x00", [b"\x02", b"\xff"]),
    P.LIMIT: (b"\x00", [b"\x1f", b"\xff"]),
    P.SHARING: (b"\x01", [b"\x02", b"\xff"]),
    P.REGISTRATION: (None, [bytes((1, 2, 0, 0, 0, 0)), bytes((2, 1, 0, 0, 0, 0))]),
    P.CONTROL: (None, [b"\x00", b"\x04", b"\xff"]),
}


def test_malformed_writes_are_refused_and_change_nothing(dut: Dut, phone: BleClient) -> None:
    pair(dut, phone)
    services = phone.services()
    writable = {u for chars in services.values() for u in chars if u in WRITABLE}
    assert writable == set(WRITABLE), "every writable characteristic is covered"
    for u, (_, bad_values) in WRITABLE.items():
        before = phone.read(u) if u != P.CONTROL else None
        length = len(before) if before is not None else 1
        cases = [b"", bytes(length + 1), bytes(40), *bad_values]
        for value in cases:
            with pytest.raises(AttError) as e:
                phone.write(u, value)
            assert e.value.code in (P.ATT_INVALID_LENGTH, P.ATT_VALUE_NOT_ALLOWED), (
                P.NAMES[u],
                value.hex(),
                e.value.code,
            )
            if before is not None:
                assert phone.read(u) == before, f"{P.NAMES[u]} changed by {value.hex()}"
        op, code = P.result(phone.read(P.RESULT))
        assert op == int(u[4:8], 16), "the result names the refused characteristic"
        assert code in (P.ATT_INVALID_LENGTH, P.ATT_VALUE_NOT_ALLOWED)
    for u in P.OPEN:  # the read-only ones refuse writes at the ATT layer
        with pytest.raises(AttError) as e:
            phone.write(u, b"\x00")
        assert e.value.code == P.ATT_WRITE_NOT_PERMITTED, P.NAMES.get(u, u)
    dut.press(HOLD_START_S)  # and the kit still works
    dut.wait_state("preheat", timeout_s=1.0)
    dut.advance(0.5)  # the heating characteristic follows at the kit's next tick (4 Hz)
    assert P.heating(phone.read(P.HEATING)).state == "preheat"


def test_a_disconnect_mid_session_changes_nothing_in_the_heating(dut: Dut) -> None:
    def session(drop_at_s: float | None) -> tuple[list[str], list[int]]:
        dut.start()
        client = dut.ble().phone()
        client.connect()
        client.subscribe(P.HEATING)
        dut.press(HOLD_START_S)
        for k in range(4):
            dut.advance(25)
            if drop_at_s is not None and k == 1:
                client.disconnect()
            dut.puff()
        dut.advance(30)
        events = [e for e in dut.events() if e.startswith(("state", "puff", "fault"))]
        temps = [round(x * 10) for x in dut.telemetry().cols["temp_c"]]
        client.close()
        dut.stop()
        return events, temps

    kept = session(None)
    dropped = session(50.0)
    assert dropped[0] == kept[0]
    assert dropped[1] == kept[1], "the heating curve is the same, sample for sample"
    assert "preheat" in " ".join(kept[0])


# --- the command line ---------------------------------------------------------------------
def test_the_cli_talks_to_a_simulated_kit(capsys: pytest.CaptureFixture[str]) -> None:
    from hil import cli

    assert cli.main(["ble", "info", "--sim"]) == 0
    out = capsys.readouterr().out
    assert "manufacturer   heatrig" in out and "kit=sleep" in out
    assert cli.main(["ble", "lock", "--sim"]) == 0
    assert capsys.readouterr().out.strip().endswith("locked")
    assert cli.main(["ble", "watch", "--sim", "--watch-s", "25"]) == 0
    assert "state=preheat" in capsys.readouterr().out


def test_the_cli_says_what_is_missing_without_an_adapter(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hil import cli

    try:
        import bleak  # noqa: F401
    except ImportError:
        pytest.skip("bleak is not installed")
    code = cli.main(["ble", "scan", "--timeout", "0.5"])
    err = capsys.readouterr().err
    if code == 0:
        pytest.skip("this host has a BLE adapter")
    assert code == 2 and "--sim" in err and "Traceback" not in err

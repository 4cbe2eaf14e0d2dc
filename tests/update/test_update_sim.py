"""Firmware updates end to end on the simulated kit: over BLE (a bonded
Bumble phone on the virtual link) and over the console, through the one
client (hil/update/transfer.py); the switch, the trial boot, its
confirmation, and the rollback of three broken images."""

from __future__ import annotations

import struct
from collections.abc import Generator
from pathlib import Path

import pytest
from conftest import open_pairing, parse
from harness import provision, run_device
from update_images import images, test_key, trusted_flash  # noqa: F401  fixtures

from hil.ble import values as P
from hil.ble.client import AttError, BleClient
from hil.rig.dut import Dut
from hil.rig.targets import SimTarget
from hil.simulator import runner
from hil.update import image, transfer
from hil.update.transfer import BlePort, ConsolePort, Status, UpdateError

pytestmark = pytest.mark.plant  # host-stepped time: the simulated plant's clock


@pytest.fixture
def kit(dut: Dut) -> Generator[Dut, None, None]:
    if not dut.target.capabilities().link_ends_with_run:
        # a board's reset boots it in real time, and the rig's next run in virtual
        # time is a second boot: a trial would see a reset. The virtual board's
        # update: tests/update/test_update_vboard.py (make update-sweep)
        pytest.skip("the simulator's kit: its reset is the rig's")
    dut.start(flash_files=trusted_flash())
    yield dut


def bonded(dut: Dut) -> BleClient:
    phone = dut.ble().phone()
    phone.connect()
    open_pairing(dut)
    phone.pair()
    dut.expect_event(r"^ble bonded$", timeout_s=0.5)
    return phone


def ble_port(dut: Dut, phone: BleClient) -> BlePort:
    return BlePort(
        phone, P.UPDATE_CONTROL, P.UPDATE_DATA, advance=dut.advance, clock=lambda: dut.now_s
    )


def console_port(dut: Dut) -> ConsolePort:
    return ConsolePort(
        lambda line: dut.command(line, check=False),
        send_line=dut.send_line,
        next_reply=dut.next_reply,
        clock=lambda: dut.now_s,
    )


def switched(dut: Dut, port: transfer.Port) -> None:
    port.commit()
    dut.follow_reset()


def test_a_full_update_over_ble(kit: Dut, images: dict[str, bytes]) -> None:
    img = image.parse(images["new"])
    phone = bonded(kit)
    port = ble_port(kit, phone)
    st = transfer.send_image(port, img)
    assert (st.state, st.offset, st.total) == ("ready", len(img.data), len(img.data))
    assert (
        st.chunk == phone.mtu - 7 == 240
    )  # the negotiated MTU (247) less the ATT and offset headers
    s = port.stats
    print(
        f"BLE update: {len(img.data)} bytes, {s.messages} writes at MTU {phone.mtu}, "
        f"{s.wire_bytes} ATT bytes on the air, device {s.device_s:.2f} s, wall {s.wall_s:.2f} s"
    )
    switched(kit, port)
    kit.expect_event(r"^update trial 0\.2\.0 slot=a$", timeout_s=5.0)
    assert kit.command("ver").startswith("OK heatrig 0.2.0")
    kit.advance(16.0)
    kit.expect_event(r"^update confirmed 0\.2\.0$", timeout_s=5.0)
    # the phone's bond survived: it encrypts again with its stored key, no window needed
    phone.connect()
    phone.pair()
    st2 = Status.from_ble(phone.read(P.UPDATE_CONTROL))
    assert (st2.trial, st2.rollback) == (False, "none")
    assert "boots=2" in next(e for e in kit.events() if e.startswith("boot "))


def test_a_full_update_over_the_console(kit: Dut, images: dict[str, bytes]) -> None:
    img = image.parse(images["new"])
    port = console_port(kit)
    st = transfer.send_image(port, img)
    assert st.state == "ready" and st.chunk == transfer.CONSOLE_DATA_BYTES
    blocks = -(-len(img.data) // 2048)  # a block's last message is short: 2048 = 28 * 72 + 32
    assert port.stats.messages == blocks * 29 - (29 - -(-(len(img.data) % 2048 or 2048) // 72))
    switched(kit, port)
    kit.expect_event(r"^update trial 0\.2\.0", timeout_s=5.0)
    kit.advance(16.0)
    kit.expect_event(r"^update confirmed 0\.2\.0$", timeout_s=5.0)
    assert "trial=0" in kit.command("update status")


def test_a_transfer_resumes_after_a_disconnect(kit: Dut, images: dict[str, bytes]) -> None:
    img = image.parse(images["new"])
    phone = bonded(kit)
    port = ble_port(kit, phone)
    st = port.begin(len(img.data), img.image_id)
    for _ in range(5):  # five blocks, and half of the sixth
        for i in range(0, st.window, st.chunk):
            port.send(
                st.offset + i, img.data[st.offset + i : st.offset + min(st.window, i + st.chunk)]
            )
        st = port.taken(st)
    half = st.window // 2
    for i in range(0, half, st.chunk):
        port.send(st.offset + i, img.data[st.offset + i : st.offset + min(half, i + st.chunk)])
    taken = st.offset
    phone.disconnect()
    kit.advance(2.0)
    phone.connect()
    phone.pair()
    port = ble_port(kit, phone)
    st = transfer.send_image(port, img)  # begins again: the kit says where to go on from
    assert port.stats.resumes == 1
    assert port.stats.payload_bytes == len(img.data) - taken  # from the last block taken
    assert st.state == "ready"


def test_an_unbonded_phone_cannot_reach_the_service(kit: Dut, images: dict[str, bytes]) -> None:
    phone = kit.ble().phone()
    phone.connect()
    for uuid, value in ((P.UPDATE_CONTROL, struct.pack("<BI8s", 1, 100, b"12345678")),
                        (P.UPDATE_DATA, b"\x00" * 8)):  # fmt: skip
        with pytest.raises(AttError) as e:
            phone.write(uuid, value)
        assert e.value.code == 0x0F  # insufficient encryption: the stack refuses it
    with pytest.raises(AttError):
        phone.read(P.UPDATE_CONTROL)
    assert not [e for e in kit.events() if e.startswith("update")]


def test_refused_during_a_heating_session(kit: Dut, images: dict[str, bytes]) -> None:
    img = image.parse(images["new"])
    phone = bonded(kit)
    kit.command("start")
    kit.wait_state("preheat", timeout_s=2.0)
    port = ble_port(kit, phone)
    with pytest.raises(UpdateError) as e:
        transfer.send_image(port, img)
    assert e.value.code == "busy"
    reply = kit.command("update begin 1000 0011223344556677", check=False)
    assert reply.startswith("ERR 8 update busy"), reply


SWITCH = """
app = App()
boot()
transfer(app, read_image(CFG['img']), b'broken00')
try:
    commit(app)
except SimEnd:
    pass
print(json.dumps(boot_record_only()))
"""


def switched_flash(tmp: Path, data: bytes) -> Path:
    """A kit's flash just after it switched to `data` (the firmware's own
    update code did it, tests/update/device_harness.py): on trial at the next boot."""
    flash = tmp / "flash"
    provision(flash)
    (tmp / "image.bin").write_bytes(data)
    rec = run_device(flash, SWITCH, img=str(tmp / "image.bin"))
    assert rec["trial"] == 1 and rec["slot"] == "a", rec
    return flash


@pytest.mark.parametrize(("name", "why"), [
    ("raises", "exception"),  # raises at import
    ("hangs", "timeout"),  # never confirms
    ("selfcheck", "selfcheck"),  # its radio never comes up
])  # fmt: skip
def test_a_broken_image_rolls_back(
    tmp_path: Path, images: dict[str, bytes], name: str, why: str
) -> None:
    """Switched to a broken image (signed, whole, verified), the kit boots it
    on trial, and goes back to the firmware it ran; it says so on the
    console, and over BLE to a bonded phone."""
    flash = switched_flash(tmp_path, images[name])
    res = runner.run(
        parse("""
        [scenario]
        name = "trial"
        duration_s = 140.0
        [start]
        session = false
        """),
        flash=flash,
    )
    events = [c for c in res.console if c.startswith(("boot ", "update "))]
    assert f"update rollback from 0.3.0: {why}" in events, events
    assert res.reboots, events
    last_boot = [e for e in events if e.startswith("boot ")][-1]
    assert last_boot.startswith("boot heatrig 0.1.0")
    assert not any(e.startswith("update confirmed") for e in events)
    # the records survived; the phone learns of the rollback (a live kit on the same flash)
    files = {
        p.relative_to(flash).as_posix(): p.read_bytes() for p in flash.rglob("*") if p.is_file()
    }
    files.pop("run.json", None)
    dut = Dut(SimTarget(), log_path=tmp_path / "live.log")
    try:
        dut.start(flash_files=files)
        boot = next(e for e in dut.events() if e.startswith("boot "))
        assert "sessions=7 puffs=84" in boot and "r0_uohm=801000" in boot
        assert f"rollback={why}" in dut.command("update status")
        phone = bonded(dut)
        st = Status.from_ble(phone.read(P.UPDATE_CONTROL))
        assert (st.rollback, st.trial) == (why, False)
    finally:
        dut.close()
        dut.target.close()

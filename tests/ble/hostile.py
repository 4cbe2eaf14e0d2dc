"""Hostile phones: Bumble centrals driven directly, PDU by PDU, on the
simulated device's virtual link (hil/ble/phone.py's air), for the BLE
security tests (test_ble_hostile.py) and their seeded fuzz (test_ble_fuzz.py).

A phone's coroutines run on the bridge's loop; everything awaited inside one
`Hostile.run()` happens in one exchange: the frames the device sends (a
disconnection, say) reach Bumble only when it ends. That is how a phone
races a kit that is about to drop it: its requests are on the air before
the disconnection is.

    h = Hostile(air, address="C0:00:00:00:10:01")     a phone, with its own keys
    h.run(h.connect())                                 connect, discover the table
    ok = h.run(h.pair())                               pair (LE Secure Connections, Just Works)
    code, value = h.run(h.read(P.LOCK))                ATT code (0 ok) and value
    h.notes                                            every notification, (handle, value)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

from bumble import att, gatt, hci
from bumble.controller import Controller
from bumble.device import Connection, Device, DeviceConfiguration, Peer
from bumble.host import Host
from bumble.keys import MemoryKeyStore, PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from hil.ble.phone import VirtualAir
from hil.ble.uuids import uuid128

T = TypeVar("T")
ANSWER_S = 5.0  # a request not answered by then is a failure (a GATT timeout would be 30 s)
NO_ANSWER = -1  # the code of a request left unanswered
PAIR_S = 2.0  # a pairing takes ~10 ms on the virtual link; one not done by then never will be


class Hostile:
    """A phone that does what a phone can: see the module's doc."""

    def __init__(
        self,
        air: VirtualAir,
        address: str,
        *,
        sc: bool = True,
        bonding: bool = True,
        mitm: bool = False,
        io: int = PairingDelegate.NO_OUTPUT_NO_INPUT,
        name: str = "hostile",
    ):
        self.air = air
        self.mitm = mitm
        self.io = io
        self.address = hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS)
        self.sc = sc
        self.bonding = bonding
        self.conn: Connection | None = None
        self.handles: dict[str, int] = {}  # characteristic UUID -> value handle
        self.cccds: dict[str, int] = {}  # characteristic UUID -> its CCCD's handle
        self.notes: list[tuple[int, bytes]] = []  # every notification and indication
        self.keystore = MemoryKeyStore()
        self._ctrl: Controller | None = None
        self.device: Device = air.run(self._make(name))

    async def _make(self, name: str) -> Device:
        self._ctrl = Controller(name, link=self.air.air)
        cfg = DeviceConfiguration(name=name, address=self.address)
        dev = Device(config=cfg, host=Host(self._ctrl, AsyncPipeSink(self._ctrl)))
        dev.keystore = self.keystore
        dev.pairing_config_factory = lambda _c: PairingConfig(
            sc=self.sc,
            mitm=self.mitm,
            bonding=self.bonding,
            delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability(self.io)),
        )
        await dev.power_on()
        return dev

    def run(self, coro: Awaitable[T]) -> T:
        """One exchange (see the module's doc), between the device's frames."""

        async def go() -> T:
            return await coro

        self.air.pump()  # what the device sent before
        try:
            return self.air.run(go())
        finally:
            self.air.pump()

    def leave(self) -> None:
        """Off the air (its controller leaves the link)."""
        if self._ctrl is not None and self._ctrl in self.air.air.controllers:
            self.air.air.remove_controller(self._ctrl)

    def rejoin(self) -> None:
        """Back on the air, after leave()."""
        if self._ctrl is not None and self._ctrl not in self.air.air.controllers:
            self.air.air.add_controller(self._ctrl)

    # --- the link -------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.conn is not None

    async def connect(self, discover: bool = True) -> None:
        conn = await asyncio.wait_for(self.device.connect(self.air.mac, timeout=5.0), 5.0)
        self.conn = conn
        conn.on(conn.EVENT_DISCONNECTION, lambda _r: self._gone())
        client = conn.gatt_client
        for kind in ("notification", "indication"):
            name = f"on_att_handle_value_{kind}"
            original = getattr(client, name)

            def heard(pdu: Any, original: Any = original) -> None:
                self.notes.append((int(pdu.attribute_handle), bytes(pdu.attribute_value)))
                original(pdu)

            setattr(client, name, heard)
        if discover:
            await self._discover(conn)

    async def _discover(self, conn: Connection) -> None:
        peer = Peer(conn)
        await peer.discover_services()
        for s in peer.services:
            await s.discover_characteristics()
            for c in s.characteristics:
                u = uuid128(c.uuid)
                self.handles[u] = c.handle
                await c.discover_descriptors()
                d = c.get_descriptor(gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR)
                if d is not None:
                    self.cccds[u] = d.handle

    def _gone(self) -> None:
        self.conn = None

    async def disconnect(self) -> None:
        if self.conn is not None:
            await self.conn.disconnect()

    def _need(self) -> Connection:
        if self.conn is None:
            raise ConnectionError("the kit dropped the link")
        return self.conn

    async def pair(self) -> bool:
        """Pairs as configured; True if the stack's pairing completed (the kit
        may still refuse the bond and drop the link)."""
        try:
            await asyncio.wait_for(self._need().pair(), PAIR_S)
        except (Exception, asyncio.CancelledError):  # refused, dropped, failed: all the same
            return False
        return True

    async def encrypt(self, ltk: bytes | None = None) -> bool:
        """Encrypts with the keys this phone keeps for the kit, or with `ltk`
        (a guess); True if the link is encrypted afterwards."""
        conn = self._need()
        if ltk is not None:
            await self.keystore.update(str(self.air.mac), PairingKeys(ltk=PairingKeys.Key(ltk)))
        try:
            await asyncio.wait_for(conn.encrypt(), ANSWER_S)
        except (Exception, asyncio.CancelledError):  # refused, or the link dropped
            return False
        return bool(self.conn is not None and conn.encryption)

    # --- ATT, PDU by PDU ----------------------------------------------------------
    async def request(self, pdu: att.ATT_PDU) -> att.ATT_PDU | None:
        """The response to a request; None if none came (ANSWER_S)."""
        client = self._need().gatt_client
        try:
            rsp: att.ATT_PDU = await asyncio.wait_for(client.send_request(pdu), ANSWER_S)
        except (asyncio.TimeoutError, TimeoutError):
            return None
        return rsp

    async def _value(self, pdu: att.ATT_PDU) -> tuple[int, bytes]:
        rsp = await self.request(pdu)
        if rsp is None:
            return NO_ANSWER, b""
        if isinstance(rsp, att.ATT_Error_Response):
            return int(rsp.error_code), b""
        for field in ("attribute_value", "part_attribute_value", "set_of_values"):
            if hasattr(rsp, field):
                return 0, bytes(getattr(rsp, field))
        if isinstance(rsp, att.ATT_Read_By_Type_Response):
            return 0, bytes(rsp.attribute_data_list)
        if isinstance(rsp, att.ATT_Read_Multiple_Variable_Response):
            return 0, b"".join(v for _n, v in rsp.length_value_tuple_list)
        return 0, b""

    def handle(self, uuid: str) -> int:
        return self.handles[uuid128(uuid)]

    async def read(self, uuid: str) -> tuple[int, bytes]:
        return await self._value(att.ATT_Read_Request(attribute_handle=self.handle(uuid)))

    async def read_blob(self, uuid: str, offset: int = 0) -> tuple[int, bytes]:
        h = self.handle(uuid)
        return await self._value(att.ATT_Read_Blob_Request(attribute_handle=h, value_offset=offset))

    async def read_by_type(self, uuid: str) -> tuple[int, bytes]:
        pdu = att.ATT_Read_By_Type_Request(
            starting_handle=1, ending_handle=0xFFFF, attribute_type=core_uuid(uuid)
        )
        return await self._value(pdu)

    async def read_multiple(self, uuids: list[str], variable: bool = False) -> tuple[int, bytes]:
        hs = [self.handle(u) for u in uuids]
        pdu: att.ATT_PDU
        if variable:
            pdu = att.ATT_Read_Multiple_Variable_Request(set_of_handles=hs)
        else:
            pdu = att.ATT_Read_Multiple_Request(set_of_handles=hs)
        return await self._value(pdu)

    async def write(self, uuid: str, value: bytes) -> int:
        pdu = att.ATT_Write_Request(attribute_handle=self.handle(uuid), attribute_value=value)
        return (await self._value(pdu))[0]

    async def write_command(self, uuid: str, value: bytes) -> None:
        pdu = att.ATT_Write_Command(attribute_handle=self.handle(uuid), attribute_value=value)
        await self._need().gatt_client.send_command(pdu)

    async def prepared_write(self, uuid: str, value: bytes) -> tuple[int, int]:
        """(the prepare's code, the execute's code; -2 if not sent)."""
        h = self.handle(uuid)
        prep = att.ATT_Prepare_Write_Request(
            attribute_handle=h, value_offset=0, part_attribute_value=value
        )
        first = (await self._value(prep))[0]
        if first != 0:
            return first, -2
        return first, (await self._value(att.ATT_Execute_Write_Request(flags=1)))[0]

    async def subscribe(self, uuid: str) -> int:
        h = self.cccds[uuid128(uuid)]
        pdu = att.ATT_Write_Request(attribute_handle=h, attribute_value=b"\x01\x00")
        return (await self._value(pdu))[0]


def core_uuid(uuid: str) -> Any:
    from hil.ble.uuids import bumble_uuid

    return bumble_uuid(uuid128(uuid))


@contextlib.contextmanager
def off_the_air(air: VirtualAir, address: str) -> Iterator[None]:
    """The phones at `address` leave the link meanwhile (another takes the address)."""
    a = hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS)
    gone = [c for c in air.air.controllers if c.random_address == a]
    for c in gone:
        air.air.remove_controller(c)
    try:
        yield
    finally:
        for c in gone:
            air.air.add_controller(c)


def phone_address(phone: Any) -> str:
    """The address of a client-API phone (hil/ble/phone.py)."""
    return str(phone.backend.device.random_address)

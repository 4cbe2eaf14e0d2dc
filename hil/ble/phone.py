"""Phones on the simulated device's virtual link: Bumble centrals behind the
client API (hil/ble/client.py), next to the device's own stack (hil/ble/bridge.py).

    air = dut.ble()          a VirtualAir: the device's BleBridge, with phones
    phone = air.phone()      a BleClient on a BumbleBackend

A phone runs on the bridge's event loop, driven by its synchronous calls;
every call first pumps the frames the device sent. Notification times are
the device's virtual time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bumble import hci
from bumble.controller import Controller
from bumble.core import AdvertisingData, ProtocolError
from bumble.device import Device, DeviceConfiguration, Peer
from bumble.host import Host
from bumble.keys import MemoryKeyStore
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from hil.ble.bridge import ADV_INTERVAL_MS, BleBridge, BridgeError
from hil.ble.client import (
    Advert,
    AttError,
    Backend,
    BleClient,
    BleError,
    Notification,
    PairingFailed,
)
from hil.ble.uuids import uuid128
from hil.rig.link import Link

PHONE_MTU = 247  # what the simulated phone asks for (Android asks 517, iOS 185..527)


class VirtualAir(BleBridge):
    """The device's BLE stack (BleBridge) and the phones around it on its
    virtual link: what `Dut.ble()` gives."""

    def __init__(self, link: Callable[[], Link], log: Callable[[str], None] | None = None):
        super().__init__(link, log)
        self.phones: list[BleClient] = []

    def phone(self, name: str = "phone") -> BleClient:
        """A new central on the virtual link."""
        client = BleClient(BumbleBackend(self, name, len(self.phones)))
        self.phones.append(client)
        return client

    def close(self) -> None:
        if not self.loop.is_closed():
            for p in self.phones:
                p.close()
        super().close()


class BumbleBackend(Backend):
    """A phone: a Bumble central with a key store of its own, on the bridge's
    virtual link and event loop."""

    def __init__(self, bridge: BleBridge, name: str, index: int):
        self.bridge = bridge
        self.notes: dict[str, list[Notification]] = {}
        self.conn: Any = None
        self.peer: Any = None
        self._chars: dict[str, Any] = {}
        self._seen: dict[str, Any] = {}  # address text -> bumble Address, from scans
        self.reencrypted = False  # the last connect encrypted the link with a stored bond
        addr = hci.Address(f"C0:00:00:00:{0x10 + index:02X}:01")  # random static

        async def make() -> Any:
            ctrl = Controller(name, link=bridge.air)
            cfg = DeviceConfiguration(name=name, address=addr)
            dev = Device(config=cfg, host=Host(ctrl, AsyncPipeSink(ctrl)))
            dev.keystore = MemoryKeyStore()
            dev.pairing_config_factory = lambda _c: self._pairing_config()
            await dev.power_on()
            return dev

        self.device = bridge.run(make())

    def _pairing_config(self) -> Any:
        return PairingConfig(
            sc=True,
            mitm=False,
            bonding=True,
            delegate=PairingDelegate(io_capability=PairingDelegate.NO_OUTPUT_NO_INPUT),
        )

    def _run(self, coro: Any) -> Any:
        try:
            try:
                return self.bridge.run(coro)
            finally:
                self.bridge.pump()
        except BridgeError as e:
            raise BleError(f"the device's side failed: {e}") from None

    def pump(self) -> None:
        try:
            self.bridge.pump()
        except BridgeError as e:
            raise BleError(f"the device's side failed: {e}") from None

    def scan(self, timeout_s: float) -> list[Advert]:
        found: dict[str, Advert] = {}

        def on_adv(adv: Any) -> None:
            data = adv.data
            name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(
                AdvertisingData.SHORTENED_LOCAL_NAME
            )
            uuids: list[str] = []
            for t in (
                AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
            ):
                for u in data.get(t) or []:
                    uuids.append(uuid128(u))
            text = adv.address.to_string()
            self._seen[text] = adv.address
            old = found.get(text)
            if old is not None:  # a scan response adds to the advertisement
                name = name or old.name
                uuids = old.service_uuids + [u for u in uuids if u not in old.service_uuids]
            found[text] = Advert(str(name) if name else "", text, uuids)

        async def go() -> None:
            dev = self.device
            dev.on(dev.EVENT_ADVERTISEMENT, on_adv)
            await dev.start_scanning(filter_duplicates=False)
            # the virtual link has no air time: one advertising interval shows every advertiser
            await asyncio.sleep(min(timeout_s, 2.5 * ADV_INTERVAL_MS / 1000))
            await dev.stop_scanning()
            dev.remove_listener(dev.EVENT_ADVERTISEMENT, on_adv)

        self._run(go())
        return list(found.values())

    def connect(self, address: str | None, timeout_s: float) -> None:
        if self.connected:
            raise BleError("already connected")
        if address is None:
            target = self.bridge.mac
        else:
            target = self._seen.get(address) or hci.Address(address)

        async def go() -> Any:
            # bumble does not always honour its own connect timeout
            conn = await asyncio.wait_for(self.device.connect(target, timeout=timeout_s), timeout_s)
            peer = Peer(conn)
            await peer.request_mtu(PHONE_MTU)  # as phones do
            await peer.discover_services()
            for s in peer.services:
                await s.discover_characteristics()
            return conn, peer

        try:
            self.conn, self.peer = self._run(go())
        except asyncio.TimeoutError:
            raise BleError(
                f"no connection to {target} within {timeout_s:g} s: is the kit advertising? "
                f"(it stops while a phone is connected)"
            ) from None
        except Exception as e:  # bumble: a refused connection
            raise BleError(f"could not connect to {target}: {e!r}") from None
        self.conn.on(self.conn.EVENT_DISCONNECTION, lambda _r: self._gone())
        self._reencrypt()
        if self.conn is None:  # its key failed the link (the device keeps another): once more
            self.conn, self.peer = self._run(go())
            self.conn.on(self.conn.EVENT_DISCONNECTION, lambda _r: self._gone())
            self.reencrypted = False
        self._chars = {}
        for s in self.peer.services:
            for c in s.characteristics:
                self._chars.setdefault(uuid128(c.uuid), c)

    def _reencrypt(self) -> None:
        """A bonded phone encrypts the link with its stored key on connecting
        (as phones do); if the device has lost the bond, the phone forgets it."""
        conn = self.conn
        name = str(conn.peer_address)

        async def go() -> bool:
            if await self.device.keystore.get(name) is None:
                return False
            try:
                await conn.encrypt()
                return True
            except (Exception, asyncio.CancelledError):  # its key is not ours (or none): forgotten
                await self.device.keystore.delete(name)
                return False

        self.reencrypted = bool(self._run(go())) if conn is not None else False

    def _gone(self) -> None:
        self.conn = None
        self.peer = None

    def disconnect(self) -> None:
        conn = self.conn
        if conn is None:
            return
        self._run(conn.disconnect())

    @property
    def connected(self) -> bool:
        return self.conn is not None

    def _need(self) -> Any:
        if self.conn is None or self.peer is None:
            raise BleError("not connected")
        return self.peer

    def services(self) -> dict[str, list[str]]:
        peer = self._need()
        return {
            uuid128(s.uuid): [uuid128(c.uuid) for c in s.characteristics] for s in peer.services
        }

    def _char(self, uuid: str) -> Any:
        self._need()
        c = self._chars.get(uuid)
        if c is None:
            raise BleError(f"no characteristic {uuid} on the device")
        return c

    def read(self, uuid: str) -> bytes:
        c = self._char(uuid)
        try:
            return bytes(self._run(self.peer.read_value(c)))
        except ProtocolError as e:
            raise AttError(int(e.error_code or 0), f"read {uuid}") from None

    def write(self, uuid: str, data: bytes, response: bool) -> None:
        c = self._char(uuid)
        try:
            self._run(self.peer.write_value(c, data, with_response=response))
        except ProtocolError as e:
            raise AttError(int(e.error_code or 0), f"write {uuid}") from None

    def subscribe(self, uuid: str) -> None:
        c = self._char(uuid)
        notes = self.notes.setdefault(uuid, [])
        bridge = self.bridge

        def got(value: bytes) -> None:
            notes.append(Notification(bridge.t_us / 1e6, bytes(value)))

        try:
            self._run(self.peer.subscribe(c, got))
        except ProtocolError as e:
            raise AttError(int(e.error_code or 0), f"subscribe {uuid}") from None

    def pair(self) -> None:
        conn = self.conn
        if conn is None:
            raise PairingFailed("not connected")
        t0 = time.perf_counter()
        try:
            self._run(conn.pair())
        except (Exception, asyncio.CancelledError) as e:  # refused, or the link dropped
            raise PairingFailed(f"pairing failed: {e!r}") from None
        self.pair_wall_s = time.perf_counter() - t0
        if self.conn is None:
            raise PairingFailed("the device dropped the link after pairing (bond refused?)")
        if not conn.encryption:
            raise PairingFailed("the link is not encrypted after pairing")

    @property
    def mtu(self) -> int:
        return int(self.conn.att_mtu) if self.conn is not None else 23

    def close(self) -> None:
        if self.conn is not None and not self.bridge.loop.is_closed():
            try:
                self.disconnect()
            except Exception:  # closing: the device may be gone already
                self.conn = None

"""One synchronous BLE client for tests, over two backends:

- Bumble: a phone on the simulator's virtual link (`dut.ble().phone()`,
  hil/ble/bridge.py); notification times are the device's virtual time;
- bleak: a real board over the host's adapter (`BleClient.bleak()`);
  notification times are host time.

    phone.scan(timeout_s=2.0) -> [Advert(name, address, service_uuids)]
    phone.connect(address=None)      the first advertiser that names a service, by default
    phone.services() -> {service_uuid: [char_uuid, ...]}
    phone.read(uuid) -> bytes        phone.write(uuid, data, response=True)  (AttError)
    phone.subscribe(uuid)            phone.notifications(uuid) -> [Notification(t_s, value)]
    phone.pair()                     (PairingFailed)
    phone.mtu  phone.connected       phone.disconnect()  phone.close()

UUIDs are lower-case 128-bit text; 16-bit ones are accepted as ints (0x2A19)
or short text ("2a19", "0x2A19") and expanded on the Bluetooth base.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from hil.ble.bridge import uuid128

if TYPE_CHECKING:
    from hil.ble.bridge import BleBridge

UuidLike = str | int
PHONE_MTU = 247  # what the simulated phone asks for (Android asks 517, iOS 185..527)


class Advert(NamedTuple):
    name: str
    address: str
    service_uuids: list[str]


class Notification(NamedTuple):
    t_s: float
    value: bytes


class BleError(AssertionError):
    """A BLE operation failed; the message says what and why."""


class AttError(BleError):
    """The device answered with an ATT error; `.code` is its code."""

    def __init__(self, code: int, what: str = ""):
        super().__init__(f"ATT error 0x{code:02X}" + (f" on {what}" if what else ""))
        self.code = code


class PairingFailed(BleError):
    """Pairing did not end with an encrypted, bonded link."""


class NoAdapter(BleError):
    """No BLE adapter on this host: real boards need one (the simulator does not)."""


class Backend(ABC):
    """What a client needs of a BLE stack; every call is synchronous."""

    @abstractmethod
    def scan(self, timeout_s: float) -> list[Advert]: ...
    @abstractmethod
    def connect(self, address: str | None, timeout_s: float) -> None: ...
    @abstractmethod
    def disconnect(self) -> None: ...
    @property
    @abstractmethod
    def connected(self) -> bool: ...
    @abstractmethod
    def services(self) -> dict[str, list[str]]: ...
    @abstractmethod
    def read(self, uuid: str) -> bytes: ...
    @abstractmethod
    def write(self, uuid: str, data: bytes, response: bool) -> None: ...
    @abstractmethod
    def subscribe(self, uuid: str) -> None: ...
    @abstractmethod
    def pair(self) -> None: ...
    @property
    @abstractmethod
    def mtu(self) -> int: ...
    @abstractmethod
    def pump(self) -> None: ...
    @abstractmethod
    def close(self) -> None: ...


class BleClient:
    """The API tests use (see the module's doc)."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self._notes: dict[str, list[Notification]] = {}
        backend_notes = getattr(backend, "notes", None)
        if isinstance(backend_notes, dict):
            self._notes = backend_notes

    @classmethod
    def bleak(cls) -> BleClient:
        """A client on the host's own adapter, for a real board."""
        return cls(BleakBackend())

    def scan(self, timeout_s: float = 2.0) -> list[Advert]:
        self.backend.pump()
        return self.backend.scan(timeout_s)

    def connect(self, address: str | None = None, timeout_s: float = 5.0) -> None:
        self.backend.pump()
        self.backend.connect(address, timeout_s)

    def disconnect(self) -> None:
        self.backend.pump()
        self.backend.disconnect()

    @property
    def connected(self) -> bool:
        self.backend.pump()
        return self.backend.connected

    def services(self) -> dict[str, list[str]]:
        self.backend.pump()
        return self.backend.services()

    def read(self, uuid: UuidLike) -> bytes:
        self.backend.pump()
        return self.backend.read(uuid128(uuid))

    def write(self, uuid: UuidLike, data: bytes, response: bool = True) -> None:
        self.backend.pump()
        self.backend.write(uuid128(uuid), bytes(data), response)

    def subscribe(self, uuid: UuidLike) -> None:
        self.backend.pump()
        self.backend.subscribe(uuid128(uuid))

    def notifications(self, uuid: UuidLike) -> list[Notification]:
        """Every notification (and indication) of the characteristic so far, in order."""
        self.backend.pump()
        return list(self._notes.get(uuid128(uuid), []))

    def pair(self) -> None:
        self.backend.pump()
        self.backend.pair()

    @property
    def mtu(self) -> int:
        return self.backend.mtu

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> BleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Bumble: a phone on the simulator's virtual link ---------------------------------------
class BumbleBackend(Backend):
    def __init__(self, bridge: BleBridge, name: str, index: int):
        from bumble import hci
        from bumble.controller import Controller
        from bumble.device import Device, DeviceConfiguration
        from bumble.host import Host
        from bumble.keys import MemoryKeyStore
        from bumble.transport.common import AsyncPipeSink

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
        from bumble.pairing import PairingConfig, PairingDelegate

        return PairingConfig(
            sc=True,
            mitm=False,
            bonding=True,
            delegate=PairingDelegate(io_capability=PairingDelegate.NO_OUTPUT_NO_INPUT),
        )

    def _run(self, coro: Any) -> Any:
        from hil.ble.bridge import BridgeError

        try:
            try:
                return self.bridge.run(coro)
            finally:
                self.bridge.pump()
        except BridgeError as e:
            raise BleError(f"the device's side failed: {e}") from None

    def pump(self) -> None:
        from hil.ble.bridge import BridgeError

        try:
            self.bridge.pump()
        except BridgeError as e:
            raise BleError(f"the device's side failed: {e}") from None

    def scan(self, timeout_s: float) -> list[Advert]:
        from bumble.core import AdvertisingData

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
            await asyncio.sleep(min(timeout_s, 2.5 * bridge_interval_s()))
            await dev.stop_scanning()
            dev.remove_listener(dev.EVENT_ADVERTISEMENT, on_adv)

        self._run(go())
        return list(found.values())

    def connect(self, address: str | None, timeout_s: float) -> None:
        from bumble import hci
        from bumble.device import Peer

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
        self._reencrypt()
        self._chars = {}
        for s in self.peer.services:
            for c in s.characteristics:
                self._chars.setdefault(uuid128(c.uuid), c)
        self.conn.on(self.conn.EVENT_DISCONNECTION, lambda _r: self._gone())

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
            except Exception:  # the device has no key for us any more
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
        from bumble.core import ProtocolError

        c = self._char(uuid)
        try:
            return bytes(self._run(self.peer.read_value(c)))
        except ProtocolError as e:
            raise AttError(int(e.error_code or 0), f"read {uuid}") from None

    def write(self, uuid: str, data: bytes, response: bool) -> None:
        from bumble.core import ProtocolError

        c = self._char(uuid)
        try:
            self._run(self.peer.write_value(c, data, with_response=response))
        except ProtocolError as e:
            raise AttError(int(e.error_code or 0), f"write {uuid}") from None

    def subscribe(self, uuid: str) -> None:
        from bumble.core import ProtocolError

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
        except Exception as e:
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


def bridge_interval_s() -> float:
    from hil.ble.bridge import ADV_INTERVAL_MS

    return ADV_INTERVAL_MS / 1000


# --- bleak: a real board ---------------------------------------------------------------------
@dataclass
class _BleakState:
    client: Any = None
    loop: asyncio.AbstractEventLoop | None = None


class BleakBackend(Backend):
    """A board's radio, over the host's adapter (BlueZ, CoreBluetooth, WinRT)."""

    def __init__(self) -> None:
        try:
            import bleak  # noqa: F401
        except ImportError as e:
            raise NoAdapter(f"bleak is not installed: {e}") from None
        self.st = _BleakState(loop=asyncio.new_event_loop())
        self.notes: dict[str, list[Notification]] = {}
        self._mtu = 23

    def _run(self, coro: Any) -> Any:
        assert self.st.loop is not None
        try:
            return self.st.loop.run_until_complete(coro)
        except BleError:
            raise
        except Exception as e:
            name = type(e).__name__
            text = str(e)
            if _no_adapter(name, text):
                raise NoAdapter(
                    f"no BLE adapter on this host (bleak: {name}: {text or 'no details'}): "
                    "real boards need one (`heatrig ble ... --sim`, or dut.ble().phone() "
                    "in tests, talk to the simulated kit)"
                ) from None
            raise BleError(f"bleak: {name}: {text}") from None

    def pump(self) -> None:
        pass

    def scan(self, timeout_s: float) -> list[Advert]:
        from bleak import BleakScanner

        async def go() -> list[Advert]:
            found = await BleakScanner.discover(timeout=timeout_s, return_adv=True)
            return [
                Advert(adv.local_name or dev.name or "", dev.address,
                       [uuid128(u) for u in adv.service_uuids])
                for dev, adv in found.values()
            ]  # fmt: skip

        out: list[Advert] = self._run(go())
        return out

    def connect(self, address: str | None, timeout_s: float) -> None:
        from bleak import BleakClient

        if address is None:
            named = [a for a in self.scan(timeout_s) if a.service_uuids]
            if not named:
                raise BleError("no advertiser with a service found: give an address")
            address = named[0].address

        async def go() -> Any:
            client = BleakClient(address, timeout=timeout_s)
            await client.connect()
            return client

        self.st.client = self._run(go())
        self._mtu = int(getattr(self.st.client, "mtu_size", 23))

    def disconnect(self) -> None:
        if self.st.client is not None:
            self._run(self.st.client.disconnect())
            self.st.client = None

    @property
    def connected(self) -> bool:
        return bool(self.st.client is not None and self.st.client.is_connected)

    def _need(self) -> Any:
        if self.st.client is None:
            raise BleError("not connected")
        return self.st.client

    def services(self) -> dict[str, list[str]]:
        client = self._need()
        return {
            uuid128(s.uuid): [uuid128(c.uuid) for c in s.characteristics] for s in client.services
        }

    def read(self, uuid: str) -> bytes:
        client = self._need()
        try:
            return bytes(self._run(client.read_gatt_char(uuid)))
        except BleError as e:
            raise _att_from(e, f"read {uuid}") from None

    def write(self, uuid: str, data: bytes, response: bool) -> None:
        client = self._need()
        try:
            self._run(client.write_gatt_char(uuid, data, response=response))
        except BleError as e:
            raise _att_from(e, f"write {uuid}") from None

    def subscribe(self, uuid: str) -> None:
        client = self._need()
        notes = self.notes.setdefault(uuid, [])
        t0 = time.monotonic()

        def got(_char: Any, value: bytearray) -> None:
            notes.append(Notification(time.monotonic() - t0, bytes(value)))

        self._run(client.start_notify(uuid, got))

    def pair(self) -> None:
        client = self._need()
        try:
            self._run(client.pair())
        except BleError as e:
            raise PairingFailed(str(e)) from None

    @property
    def mtu(self) -> int:
        return self._mtu

    def close(self) -> None:
        with contextlib.suppress(BleError):
            self.disconnect()
        if self.st.loop is not None:
            self.st.loop.close()
            self.st.loop = None


def _no_adapter(name: str, text: str) -> bool:
    t = (name + " " + text).lower()
    return any(
        k in t
        for k in ("bleakbluetoothnotavailable", "no bluetooth adapter", "dbus", "bluez",
                  "no such file or directory", "adapter", "not available")
    )  # fmt: skip


def _att_from(e: BleError, what: str) -> BleError:
    """bleak reports ATT errors in its message ("... ATT error: 0x0f ..." on BlueZ,
    "Protocol Error 0x0F" on WinRT): an AttError when a code is there."""
    import re

    m = re.search(r"(?:att error|protocol error)[^0-9a-fx]*(0x[0-9a-f]{2}|\d+)", str(e).lower())
    if m:
        return AttError(int(m.group(1), 0), what)
    return e


__all__ = [
    "Advert",
    "AttError",
    "BleClient",
    "BleError",
    "BleakBackend",
    "BumbleBackend",
    "NoAdapter",
    "Notification",
    "PairingFailed",
]

"""One synchronous BLE client for tests, over two backends:

- Bumble: a phone on the simulator's virtual link (`dut.ble().phone()`,
  hil/ble/phone.py); notification times are the device's virtual time;
- bleak: a real board over the host's adapter (`BleClient.bleak()`, here);
  notification times are host time.

    phone.scan(timeout_s=2.0) -> [Advert(name, address, service_uuids)]
    phone.connect(address=None)      the first advertiser that names a service, by default
    phone.services() -> {service_uuid: [char_uuid, ...]}
    phone.read(uuid) -> bytes        phone.write(uuid, data, response=True)  (AttError)
    phone.subscribe(uuid)            phone.notifications(uuid) -> [Notification(t_s, value)]
    phone.pair()                     (PairingFailed)
    phone.mtu  phone.connected       phone.disconnect()  phone.close()

UUIDs are lower-case 128-bit text; 16-bit ones are accepted as ints (0x2A19)
or short text ("2a19", "0x2A19") and expanded on the Bluetooth base
(hil/ble/uuids.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, NamedTuple

from hil.ble.uuids import UuidLike, uuid128


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
    """What a client needs of a BLE stack; every call is synchronous.
    `notes` holds each characteristic's notifications as they come."""

    notes: dict[str, list[Notification]]

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
        return list(self.backend.notes.get(uuid128(uuid), []))

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
    "NoAdapter",
    "Notification",
    "PairingFailed",
]

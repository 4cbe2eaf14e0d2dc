"""The BLE stack of a simulated device, played by Bumble on the host.

The firmware runs MicroPython's `bluetooth` API against an emulation
(sim/mpapi/vbluetooth.py) that holds its GATT table and values and reports what it
does as T_BLE frames; this bridge mirrors that table in the GATT server of a
Bumble peripheral on a virtual link (bumble.link.LocalLink) and forwards what
centrals do back as "@ble" console lines (docs/ble_sim.md):

- reads and writes of a mirrored value call the firmware synchronously (a
  host-stepped clock stands still while it answers); a write the firmware
  refuses is answered with its ATT error;
- READ/WRITE_ENCRYPTED become Bumble's READ/WRITE_REQUIRES_ENCRYPTION, so
  Bumble refuses them on an unencrypted link with INSUFFICIENT_ENCRYPTION;
- the peripheral's key store is the firmware's (_IRQ_GET_SECRET /
  _IRQ_SET_SECRET), so bonds live on the device's flash;
- pairing: LE Secure Connections with bonding, Just Works (the firmware's
  config: bond, le_secure, mitm, io);
- advertising follows gap_advertise, gap_disconnect drops the link, and
  notifications go to the centrals in order, each stamped with the device's
  virtual time.

Phones are Bumble centrals on the same link (hil/ble/phone.py: the bridge
knows nothing of them). Everything runs on one private event loop, in the
caller's thread, driven by the client's synchronous calls; every call first
pumps the frames the device sent.

The bridge uses nothing but the device's link, so it works over every target
whose firmware runs the emulation: the simulator and the virtual board.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bumble import gatt, hci
from bumble.att import ATT_Error, Attribute
from bumble.controller import Controller
from bumble.device import Connection, Device, DeviceConfiguration
from bumble.host import Host
from bumble.keys import KeyStore, PairingKeys
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from hil.ble.uuids import bumble_uuid
from hil.rig.link import Link
from hil.rig.transport import LinkClosed
from hil.wire import contract
from hil.wire.ble_flags import (
    F_INDICATE,
    F_NOTIFY,
    F_READ,
    F_READ_AUTHENTICATED,
    F_READ_ENCRYPTED,
    F_WRITE,
    F_WRITE_AUTHENTICATED,
    F_WRITE_ENCRYPTED,
    F_WRITE_NO_RESPONSE,
)

T = TypeVar("T")

REPLY_TIMEOUT_S = 5.0  # wall time for the firmware's answer to an "@ble" line
MAX_LINE = contract.firmware("console").integer("MAX_LINE")
ADV_INTERVAL_MS = 20.0  # the virtual link does not model air time: advertise fast
SEC_PEER = 2  # MicroPython's sec_type of a peer's keys (NimBLE's BLE_STORE_OBJ_TYPE_PEER_SEC)


_PERMS = (
    (F_READ, Attribute.READABLE),
    (F_WRITE | F_WRITE_NO_RESPONSE, Attribute.WRITEABLE),
    (F_READ_ENCRYPTED, Attribute.READ_REQUIRES_ENCRYPTION),
    (F_READ_AUTHENTICATED, Attribute.READ_REQUIRES_AUTHENTICATION),
    (F_WRITE_ENCRYPTED, Attribute.WRITE_REQUIRES_ENCRYPTION),
    (F_WRITE_AUTHENTICATED, Attribute.WRITE_REQUIRES_AUTHENTICATION),
)


class BridgeError(AssertionError):
    """The device did not answer the bridge as the wire says it must."""


def permissions(flags: int) -> Attribute.Permissions:
    p = Attribute.Permissions(0)
    for f, perm in _PERMS:
        if flags & f:
            p |= perm
    return p


def encode_keys(address: hci.Address, keys: PairingKeys) -> bytes:
    """A bond as the firmware stores it (<= 64 bytes): address type, address,
    flags (b0 LTK authenticated, b1 LTK, b2 IRK, b3 CSRK), then the keys."""
    flags = 0
    body = b""
    if keys.ltk is not None:
        flags |= 2 | (1 if keys.ltk.authenticated else 0)
        body += keys.ltk.value
    if keys.irk is not None:
        flags |= 4
        body += keys.irk.value
    if keys.csrk is not None:
        flags |= 8
        body += keys.csrk.value
    return bytes([int(address.address_type)]) + bytes(address) + bytes([flags]) + body


def decode_keys(value: bytes) -> tuple[hci.Address, PairingKeys]:
    address = hci.Address(bytes(value[1:7]), hci.AddressType(value[0]))
    flags = value[7]
    keys = PairingKeys(address_type=hci.AddressType(value[0]))
    i = 8
    if flags & 2:
        keys.ltk = PairingKeys.Key(bytes(value[i : i + 16]), authenticated=bool(flags & 1))
        i += 16
    if flags & 4:
        keys.irk = PairingKeys.Key(bytes(value[i : i + 16]))
        i += 16
    if flags & 8:
        keys.csrk = PairingKeys.Key(bytes(value[i : i + 16]))
    return address, keys


def _key(address: hci.Address) -> bytes:
    return bytes([int(address.address_type)]) + bytes(address)


class FirmwareKeyStore(KeyStore):
    """Bumble's key store, kept by the firmware: _IRQ_GET_SECRET /
    _IRQ_SET_SECRET (sec_type 2, key: address type + address)."""

    def __init__(self, bridge: BleBridge):
        super().__init__()
        self.bridge = bridge
        self.refused: set[str] = set()  # addresses whose bond the firmware would not store

    async def update(self, name: str, keys: PairingKeys) -> None:
        address = hci.Address(name)
        value = encode_keys(address, keys)
        ok = self.bridge.request("sset", SEC_PEER, _key(address).hex(), value=value)
        if ok == ["1"]:
            self.refused.discard(name)
        else:
            self.refused.add(name)

    async def get(self, name: str) -> PairingKeys | None:
        return self.load(name)

    def load(self, name: str) -> PairingKeys | None:
        got = self.bridge.request("sget", SEC_PEER, 0, _key(hci.Address(name)).hex())
        if not got or got[0] == "-":
            return None
        return decode_keys(bytes.fromhex(got[0]))[1]

    async def delete(self, name: str) -> None:
        self.bridge.request("sset", SEC_PEER, _key(hci.Address(name)).hex(), "-")

    async def get_all(self) -> list[tuple[str, PairingKeys]]:
        out: list[tuple[str, PairingKeys]] = []
        for i in range(64):
            got = self.bridge.request("sget", SEC_PEER, i, "-")
            if not got or got[0] == "-":
                break
            address, keys = decode_keys(bytes.fromhex(got[0]))
            out.append((address.to_string(), keys))
        return out


@dataclass
class Mirrored:
    """One value of the emulated table: handle, UUID, flags, its Bumble attribute."""

    handle: int
    uuid: str
    flags: int
    attribute: Attribute[bytes] | None = None


@dataclass
class GattTable:
    services: list[tuple[str, list[Mirrored]]] = field(default_factory=list)
    descriptors: dict[int, list[Mirrored]] = field(default_factory=dict)  # by characteristic

    def values(self) -> dict[int, Mirrored]:
        out = {c.handle: c for _, chars in self.services for c in chars}
        for ds in self.descriptors.values():
            out.update((d.handle, d) for d in ds)
        return out


class BleBridge:
    """The device's BLE stack and the air around it (see the module's doc).
    `link()` gives the device's current link (a new one after every boot)."""

    def __init__(self, link: Callable[[], Link], log: Callable[[str], None] | None = None):
        self._link_of = link
        self._log = log or (lambda _m: None)
        self.loop = asyncio.new_event_loop()
        self.air = LocalLink()  # type: ignore[no-untyped-call]
        self.device: Device | None = None
        self._ctrl: Controller | None = None
        self.keystore = FirmwareKeyStore(self)
        self.cfg: dict[str, str] = {}
        self.active = False
        self.table = GattTable()
        self._building: GattTable | None = None
        self.adv: tuple[int, bool, bytes, bytes] | None = None  # interval, connectable, data
        self.t_us = 0  # the virtual time of the notification being delivered
        # the emulation's public address (sim/mpapi/vbluetooth.py MAC) with its two top bits
        # set: Bumble's virtual link routes LE traffic by random (static) address only
        self.mac = hci.Address("E4:0A:C4:00:B1:E5", hci.Address.RANDOM_DEVICE_ADDRESS)
        self.address = self.mac.to_string()
        self._seq = 0
        self._cont = ""
        self._pending: deque[str] = deque()  # frames that came while waiting for a reply
        self._pairing: set[int] = set()  # connections pairing now
        self._in_loop = False
        self.failure: BridgeError | None = None  # what went wrong inside a Bumble callback
        self.stats = {"requests": 0, "notifications": 0}
        self.run(self._first_device())

    # --- the loop ---------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine to its end on the bridge's loop (the phones' calls);
        a failure of the device's side inside it is raised here."""
        if self._in_loop:
            raise BridgeError("the BLE bridge was called from inside its own loop")
        self._in_loop = True
        try:
            out = self.loop.run_until_complete(coro)
        except Exception:
            self._raise_failure()
            raise
        finally:
            self._in_loop = False
        self._raise_failure()
        return out

    def _raise_failure(self) -> None:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    async def settle(self) -> None:
        """Let the virtual link deliver everything in flight (no air time)."""
        ready = getattr(self.loop, "_ready", None)
        for _ in range(2000):
            await asyncio.sleep(0)
            if ready is not None and not ready:
                await asyncio.sleep(0)
                if not ready:
                    return

    def pump(self) -> None:
        """Bring Bumble up to date with what the device sent (every client call does)."""
        if self._in_loop:
            return
        self.run(self.apump())

    async def apump(self) -> None:
        link = self._link_of()
        try:
            while link.pump(0):
                pass
        except LinkClosed:
            pass
        while True:
            text = self._pending.popleft() if self._pending else self._next(link)
            if text is None:
                break
            await self._handle(text)
        await self.settle()

    def _next(self, link: Link) -> str | None:
        """The next whole frame: "+ HEX" frames joined to the one they precede."""
        while link.ble:
            text = link.ble.popleft()
            if text.startswith("+ "):
                self._cont += text[2:]
                continue
            if self._cont:
                head, _, last = text.rpartition(" ")
                text = f"{head} {self._cont + (last if last != '-' else '')}"
                self._cont = ""
            return text
        return None

    # --- requests to the firmware --------------------------------------------------------
    def request(self, cmd: str, *args: object, value: bytes | None = None) -> list[str]:
        """An "@ble" line and the firmware's answer (its words after the sequence
        number); synchronous: called from Bumble's callbacks too."""
        link = self._link_of()
        words = [str(a) for a in args]
        if value is not None:
            h = value.hex() or "-"
            head = f"@ble {cmd} {self._seq + 1} {' '.join(words)} "
            room = MAX_LINE - len(head) - 8
            while len(h) > room:
                cut = room - room % 2
                self._exchange(link, "more", [h[:cut]])
                h = h[cut:]
            words.append(h)
        return self._exchange(link, cmd, words)

    def _exchange(self, link: Link, cmd: str, words: list[str]) -> list[str]:
        self._seq += 1
        seq = str(self._seq)
        self.stats["requests"] += 1
        line = f"@ble {cmd} {seq} {' '.join(words)}".rstrip()
        if len(line) > MAX_LINE:
            raise BridgeError(f"line too long for the console: {line!r}")
        try:
            link.send_line(line)
        except (LinkClosed, OSError) as e:
            raise BridgeError(f"the device's link is gone, {line!r} not sent: {e}") from None
        end = time.monotonic() + REPLY_TIMEOUT_S
        while True:
            text = self._next(link)
            if text is None:
                if time.monotonic() > end:
                    raise BridgeError(f"no answer to {line!r} within {REPLY_TIMEOUT_S:g} s")
                try:
                    link.pump(0.02)
                except LinkClosed as e:
                    raise BridgeError(f"the link closed while waiting for {line!r}: {e}") from None
                continue
            w = text.split()
            if w[0] in ("ok", "err") and len(w) > 1 and w[1] == seq:
                if w[0] == "err":
                    raise BridgeError(f"the device refused {line!r}: {text}")
                return w[2:]
            if w[0] in ("ok", "err"):
                self._log(f"ble: stray answer {text!r}")
                continue
            self._pending.append(text)

    # --- what the device sent ------------------------------------------------------------
    async def _handle(self, text: str) -> None:
        w = text.split()
        kind = w[0]
        if kind == "reg":
            if w[1] == "end":
                if self._building is not None:
                    self.table = self._building
                    self._building = None
                    await self._rebuild()
            else:
                self._building = GattTable()
        elif kind == "svc" and self._building is not None:
            self._building.services.append((w[1], []))
        elif kind == "chr" and self._building is not None:
            self._building.services[-1][1].append(Mirrored(int(w[1]), w[2], int(w[3], 16)))
        elif kind == "dsc" and self._building is not None:
            if w[2] != "2902":  # the CCCD is Bumble's own
                last = self._building.services[-1][1][-1]
                d = Mirrored(int(w[1]), w[2], int(w[3], 16))
                self._building.descriptors.setdefault(last.handle, []).append(d)
        elif kind == "act":
            self.active = w[1] == "1"
            if not self.active:
                await self._drop_all()
                await self._advertise(None)
        elif kind == "cfg":
            self.cfg[w[1]] = w[2]
            if w[1] == "mtu" and self.device is not None:
                self.device.gatt_server.max_mtu = int(w[2])
        elif kind == "adv":
            if w[1] == "off":
                await self._advertise(None)
            else:
                await self._advertise(
                    (int(w[1]), w[2] == "1", _unhex(w[3]), _unhex(w[4]) if len(w) > 4 else b"")
                )
        elif kind in ("ntf", "ind"):
            await self._notify(kind, int(w[1]), int(w[2]), int(w[3]), _unhex(w[4]))
        elif kind == "upd":
            await self._update(int(w[1]), int(w[2]), _unhex(w[3]))
        elif kind == "disc":
            conn = self._connection(int(w[1]))
            if conn is not None:
                await conn.disconnect()
                await self.settle()
        else:
            self._log(f"ble: unexpected frame {text!r}")

    async def _first_device(self) -> None:
        await self._new_device()

    async def _new_device(self) -> None:
        """A peripheral with the current table (Bumble's GATT server is built once)."""
        if self.device is not None:
            old = self.device
            self.device = None
            await old.stop_advertising()
            if self._ctrl is not None:
                self.air.remove_controller(self._ctrl)
        ctrl = Controller("heatrig", link=self.air)
        self._ctrl = ctrl
        name = bytes.fromhex(self.cfg.get("gap_name", "")).decode(errors="replace") or "heatrig"
        config = DeviceConfiguration(name=name, address=self.mac)
        dev = Device(config=config, host=Host(ctrl, AsyncPipeSink(ctrl)))
        dev.keystore = self.keystore
        dev.pairing_config_factory = self._pairing_config
        dev.add_services(self._services())
        if "mtu" in self.cfg:  # the firmware's preferred MTU caps the exchange
            dev.gatt_server.max_mtu = int(self.cfg["mtu"])
        dev.on(dev.EVENT_CONNECTION, self._on_connection)
        self.device = dev
        await dev.power_on()

    def _services(self) -> list[gatt.Service]:
        out = []
        for suuid, chars in self.table.services:
            items = []
            for c in chars:
                descs = []
                for d in self.table.descriptors.get(c.handle, []):
                    d.attribute = gatt.Descriptor(
                        bumble_uuid(d.uuid), permissions(d.flags), self._value(d.handle)
                    )
                    descs.append(d.attribute)
                props = gatt.Characteristic.Properties(c.flags & 0xFF)
                ch: gatt.Characteristic[bytes] = gatt.Characteristic(
                    bumble_uuid(c.uuid),
                    props,
                    permissions(c.flags),
                    self._value(c.handle),
                    descriptors=descs,
                )
                c.attribute = ch
                items.append(ch)
            out.append(gatt.Service(bumble_uuid(suuid), items))
        return out

    def _tell(self, cmd: str, *args: object) -> None:
        """A request from one of Bumble's event handlers (which must not raise)."""
        try:
            self.request(cmd, *args)
        except BridgeError as e:
            self.failure = self.failure or e

    def _guarded(self, cmd: str, *args: object, value: bytes | None = None) -> list[str]:
        """A request from inside Bumble: a device that does not answer becomes
        an ATT "unlikely error" at once (not a GATT timeout 30 s later), and
        the failure is kept for the client to raise."""
        try:
            return self.request(cmd, *args, value=value)
        except BridgeError as e:
            self.failure = self.failure or e
            raise ATT_Error(0x0E) from None

    def _value(self, handle: int) -> gatt.CharacteristicValue[bytes]:
        def read(conn: Connection) -> bytes:
            got = self._guarded("rd", conn.handle, handle)
            if got[0] != "0":
                raise ATT_Error(int(got[0]))
            return _unhex(got[1]) if len(got) > 1 else b""

        def write(conn: Connection, value: bytes) -> None:
            got = self._guarded("wr", conn.handle, handle, value=bytes(value))
            if got[0] != "0":
                raise ATT_Error(int(got[0]))

        return gatt.CharacteristicValue(read=read, write=write)

    async def _rebuild(self) -> None:
        await self._drop_all()
        await self._new_device()
        if self.adv is not None:
            await self._advertise(self.adv)

    def _pairing_config(self, _conn: Connection) -> PairingConfig:
        io = int(self.cfg.get("io", "3"))
        return PairingConfig(
            sc=self.cfg.get("le_secure", "1") == "1",
            mitm=self.cfg.get("mitm", "0") == "1",
            bonding=self.cfg.get("bond", "1") == "1",
            delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability(io)),
        )

    async def _advertise(self, adv: tuple[int, bool, bytes, bytes] | None) -> None:
        self.adv = adv
        dev = self.device
        if dev is None:
            return
        await dev.stop_advertising()
        if adv is None:
            return
        from bumble.device import AdvertisingType

        kind = (
            AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE
            if adv[1]
            else AdvertisingType.UNDIRECTED_SCANNABLE
        )
        await dev.start_advertising(
            advertising_type=kind,
            own_address_type=hci.OwnAddressType.RANDOM,
            advertising_data=adv[2],
            scan_response_data=adv[3],
            advertising_interval_min=ADV_INTERVAL_MS,
            advertising_interval_max=ADV_INTERVAL_MS,
        )

    def _connection(self, handle: int) -> Connection | None:
        dev = self.device
        return dev.lookup_connection(handle) if dev is not None else None

    async def _drop_all(self) -> None:
        dev = self.device
        if dev is None:
            return
        for conn in list(dev.connections.values()):
            conn.remove_all_listeners(conn.EVENT_DISCONNECTION)  # the firmware is not told
            await conn.disconnect()
        await self.settle()

    def _attr(self, handle: int) -> Attribute[bytes] | None:
        m = self.table.values().get(handle)
        return m.attribute if m is not None else None

    async def _notify(self, kind: str, t_us: int, conn_h: int, handle: int, value: bytes) -> None:
        dev = self.device
        conn = self._connection(conn_h)
        attr = self._attr(handle)
        if dev is None or conn is None or attr is None:
            self._log(f"ble: {kind} for conn {conn_h} handle {handle} dropped (no such)")
            return
        self.t_us = t_us
        self.stats["notifications"] += 1
        if kind == "ntf":
            await dev.notify_subscriber(conn, attr, value, force=True)
            await self.settle()
        else:
            await dev.indicate_subscriber(conn, attr, value, force=True)
            await self.settle()
            self._tell("idone", conn_h, handle, 0)

    async def _update(self, t_us: int, handle: int, value: bytes) -> None:
        dev = self.device
        m = self.table.values().get(handle)
        if dev is None or m is None or m.attribute is None:
            return
        self.t_us = t_us
        if m.flags & F_NOTIFY:
            await dev.notify_subscribers(m.attribute, value)
        elif m.flags & F_INDICATE:
            await dev.indicate_subscribers(m.attribute, value)
        await self.settle()

    # --- connections ---------------------------------------------------------------------
    def _on_connection(self, conn: Connection) -> None:
        h = conn.handle
        peer = conn.peer_address
        self.adv = None  # advertising stops when a central connects
        self._tell("conn", h, 0 if peer.is_public else 1, bytes(peer).hex())
        conn.on(conn.EVENT_DISCONNECTION, lambda _reason: self._on_disconnection(h))
        conn.on(conn.EVENT_CONNECTION_ATT_MTU_UPDATE, lambda: self._on_mtu(conn))
        conn.on(conn.EVENT_CONNECTION_ENCRYPTION_CHANGE, lambda: self._on_encryption(conn))
        conn.on(conn.EVENT_PAIRING_START, lambda: self._pairing.add(h))
        conn.on(conn.EVENT_PAIRING, lambda keys: self._on_paired(conn, keys))
        conn.on(conn.EVENT_PAIRING_FAILURE, lambda _r: self._on_pairing_failed(conn))

    def _on_disconnection(self, handle: int) -> None:
        self._pairing.discard(handle)
        self._tell("disc", handle)

    def _on_mtu(self, conn: Connection) -> None:
        self._tell("mtu", conn.handle, conn.att_mtu)

    def _on_encryption(self, conn: Connection) -> None:
        if conn.handle in self._pairing:
            return  # told once the keys are stored, as NimBLE does
        try:  # a bonded central encrypting with its stored key
            keys = self.keystore.load(str(conn.peer_address)) if conn.encryption else None
        except BridgeError as e:
            self.failure = self.failure or e
            return
        auth = keys is not None and keys.ltk is not None and keys.ltk.authenticated
        self._enc(conn, bonded=keys is not None, auth=auth)

    def _enc(self, conn: Connection, bonded: bool, auth: bool | None = None) -> None:
        enc = 1 if conn.encryption else 0
        authenticated = bool(conn.authenticated) if auth is None else auth
        auth_flag = 1 if enc and authenticated else 0
        self._tell("enc", conn.handle, enc, auth_flag, int(bonded), 16 if enc else 0)

    def _on_paired(self, conn: Connection, keys: PairingKeys) -> None:
        self._pairing.discard(conn.handle)
        stored = self.cfg.get("bond", "1") == "1" and str(conn.peer_address) not in (
            self.keystore.refused
        )
        if keys.ltk is not None and not keys.ltk.authenticated:
            conn.authenticated = False  # Just Works: Bumble marks the link authenticated
        self._enc(conn, bonded=stored)

    def _on_pairing_failed(self, conn: Connection) -> None:
        self._pairing.discard(conn.handle)
        if conn.encryption:
            self._enc(conn, bonded=False)

    # --- the device's life -----------------------------------------------------------------
    def rebooted(self) -> None:
        """The device booted again: its radio starts from nothing."""
        self._pending.clear()
        self._cont = ""
        self._building = None
        self.table = GattTable()
        self.cfg = {}
        self.active = False
        self.adv = None
        self.run(self._rebuild())

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.close()


def _unhex(word: str) -> bytes:
    return b"" if word == "-" else bytes.fromhex(word)

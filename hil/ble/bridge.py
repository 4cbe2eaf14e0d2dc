"""The BLE stack of a simulated device, played by Bumble on the host.

The firmware runs MicroPython's `bluetooth` API against an emulation
(sim/mpapi/vbluetooth.py) that holds its GATT table and values and reports what it
does as T_BLE frames; this bridge mirrors that table in the GATT server of a
Bumble peripheral on a virtual link (bumble.link.LocalLink) and forwards what
centrals do back as "@ble" console lines (docs/ble_sim.md).

It answers centrals as NimBLE on the ESP32 does (`NimbleModel`), not as
Bumble would on its own:

- reads and writes of a mirrored value call the firmware synchronously (a
  host-stepped clock stands still while it answers); a write the firmware
  refuses is answered with its ATT error;
- the security of READ/WRITE_ENCRYPTED (and _AUTHENTICATED) is checked as
  ble_att_svr_check_perms does: on an unencrypted link ATT 0x0F when the
  store has a key for the peer, 0x05 when it has none; every request type
  (Read Multiple and Read Multiple Variable, Read By Type, Read Blob,
  prepared writes, Find By Type Value) answers an error where Bumble's own
  server would leave the central waiting;
- a CCCD is writable on any link (esp-nimble), or needs its characteristic's
  security (NimBLE since 2026-07), as the model says;
- the store is the firmware's (_IRQ_GET_SECRET / _IRQ_SET_SECRET), in NimBLE's
  record layout; the security manager's sequences around it (the
  repeat-pairing check at a pairing request, the encryption update and the
  persisting of the keys at the end of a pairing, in the model's order) run
  in the emulation; `authenticated` is what SMP established (Just Works is
  not, whatever Bumble's connection says);
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
import struct
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bumble import att, gatt, hci
from bumble.att import ATT_Error, Attribute
from bumble.controller import Controller
from bumble.device import Connection, Device, DeviceConfiguration
from bumble.host import Host
from bumble.keys import KeyStore, PairingKeys
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.smp import PairingMethod, Session
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
SEC_SIZE = contract.sim("mpapi/vbluetooth").integer("SEC_SIZE")  # a store record's bytes
SEC_OUR = 1  # NimBLE's BLE_STORE_OBJ_TYPE_OUR_SEC: our keys for a peer
SEC_PEER = 2  # BLE_STORE_OBJ_TYPE_PEER_SEC: the peer's keys

# ATT errors (Core Vol 3 Part F 3.4.1.1)
ATT_INVALID_HANDLE = 0x01
ATT_READ_NOT_PERMITTED = 0x02
ATT_WRITE_NOT_PERMITTED = 0x03
ATT_INSUFFICIENT_AUTHENTICATION = 0x05
ATT_INSUFFICIENT_ENCRYPTION = 0x0F

# struct ble_store_value_sec of esp-nimble (nimble/host/include/host/ble_store.h,
# branches nimble-1.5.0-idf and nimble-1.6.0-idf), as GCC lays it out on the ESP32:
# peer_addr (type, address little-endian) @0, bond_count @8, key_size @10, ediv
# @12, rand_num @16, ltk @24, ltk_present @40, irk @41, irk_present @57, csrk @58,
# csrk_present @74, sign_counter @76, authenticated (bit 0) and sc (bit 1) @80; 88 bytes
_SEC = struct.Struct("<B6sxHBxHxxQ16sB16sB16sBxIB7x")
assert _SEC.size == SEC_SIZE, "the record layout and the emulation's SEC_SIZE differ"


@dataclass
class NimbleModel:
    """Which NimBLE the bridge plays, where versions differ (docs/ble_sim.md).

    order  "enc": the encryption update reaches the firmware before the keys
           are persisted (NimBLE up to 1.9, esp-nimble before 2024-08, commit
           b10b1203: ESP-IDF releases of that time); "keys": after them
    cccd   "open": a CCCD is writable on any link (esp-nimble; NimBLE before
           2026-07); "inherit": it needs its characteristic's encryption or
           authentication (NimBLE commit bfde0dce9)
    """

    order: str = "enc"
    cccd: str = "open"


class BridgeError(AssertionError):
    """The device did not answer the bridge as the wire says it must."""


@dataclass(frozen=True)
class SecRecord:
    """One store record (NimBLE's struct ble_store_value_sec)."""

    address: hci.Address
    key_size: int = 16
    ediv: int = 0
    rand: int = 0
    ltk: bytes | None = None
    irk: bytes | None = None
    csrk: bytes | None = None
    authenticated: bool = False
    sc: bool = False

    def encode(self) -> bytes:
        z = bytes(16)
        return _SEC.pack(
            int(self.address.address_type), bytes(self.address), 0, self.key_size, self.ediv,
            self.rand, self.ltk or z, 1 if self.ltk else 0, self.irk or z, 1 if self.irk else 0,
            self.csrk or z, 1 if self.csrk else 0, 0,
            (1 if self.authenticated else 0) | (2 if self.sc else 0),
        )  # fmt: skip

    @classmethod
    def decode(cls, value: bytes) -> SecRecord:
        f = _SEC.unpack(value)
        return cls(
            hci.Address(f[1], hci.AddressType(f[0])), f[3], f[4], f[5],
            f[6] if f[7] & 1 else None, f[8] if f[9] & 1 else None, f[10] if f[11] & 1 else None,
            bool(f[13] & 1), bool(f[13] & 2),
        )  # fmt: skip


def records(address: hci.Address, keys: PairingKeys, sc: bool, authenticated: bool) -> bytes:
    """Our record and the peer's for a finished pairing, as ble_sm_persist_keys
    fills them (ble_sm_fill_store_value): the LTK with its EDIV and Rand (zero
    with LE Secure Connections, which derive it), `authenticated` and `sc` kept
    with the LTK; the peer's IRK and CSRK. In legacy pairing each side
    distributes an LTK of its own: Bumble names ours ltk_central and the
    peer's ltk_peripheral when it is the responder."""

    def ltk(k: PairingKeys.Key | None) -> dict[str, Any]:
        if k is None:
            return {}
        rand = int.from_bytes(k.rand or bytes(8), "little")
        return {"ltk": k.value, "ediv": k.ediv or 0, "rand": rand, "authenticated": authenticated,
                "sc": sc}  # fmt: skip

    ours_ltk = keys.ltk if sc else keys.ltk_central
    peer_ltk = keys.ltk if sc else keys.ltk_peripheral
    ours = SecRecord(address, **ltk(ours_ltk))
    peer = SecRecord(
        address,
        irk=keys.irk.value if keys.irk else None,
        csrk=keys.csrk.value if keys.csrk else None,
        **ltk(peer_ltk),
    )
    return ours.encode() + peer.encode()


def store_key(address: hci.Address) -> bytes:
    """A store key: NimBLE's ble_addr_t (type, address little-endian)."""
    return bytes([int(address.address_type)]) + bytes(address)


class FirmwareKeyStore(KeyStore):
    """Bumble's key store, kept by the firmware through the emulation: what
    NimBLE reads and writes (ble_store_read/write_our_sec/_peer_sec), with
    the records in NimBLE's layout."""

    def __init__(self, bridge: BleBridge):
        super().__init__()
        self.bridge = bridge

    async def update(self, name: str, keys: PairingKeys) -> None:
        """The end of a pairing: the emulation runs NimBLE's sequence."""
        self.bridge.paired(name, keys)

    async def get(self, name: str) -> PairingKeys | None:
        """The LTK a reconnecting central encrypts with: our record
        (ble_sm_ltk_req_rx -> ble_sm_retrieve_ltk -> ble_store_read_our_sec)."""
        rec = self.bridge.record(SEC_OUR, hci.Address(name))
        if rec is None or rec.ltk is None:
            return None
        self.bridge.restoring[name] = rec
        key = PairingKeys.Key(rec.ltk, authenticated=rec.authenticated)
        keys = PairingKeys(address_type=rec.address.address_type)
        if rec.sc:
            keys.ltk = key
        else:
            key.ediv = rec.ediv
            key.rand = rec.rand.to_bytes(8, "little")
            keys.ltk_peripheral = key
        return keys

    async def delete(self, name: str) -> None:
        key = store_key(hci.Address(name)).hex()
        for sec in (SEC_OUR, SEC_PEER):
            self.bridge.request("sset", sec, key, "-")

    async def get_all(self) -> list[tuple[str, PairingKeys]]:
        """The peers' records, as NimBLE iterates them (index, no key)."""
        out: list[tuple[str, PairingKeys]] = []
        for i in range(64):
            got = self.bridge.request("sget", SEC_PEER, i, "-")
            if not got or got[0] == "-":
                break
            rec = SecRecord.decode(bytes.fromhex(got[0]))
            keys = PairingKeys(address_type=rec.address.address_type)
            if rec.ltk is not None:
                keys.ltk = PairingKeys.Key(rec.ltk, authenticated=rec.authenticated)
            if rec.irk is not None:
                keys.irk = PairingKeys.Key(rec.irk)
            out.append((rec.address.to_string(), keys))
        return out

    async def get_resolving_keys(self) -> list[tuple[bytes, hci.Address]]:
        """None: the simulated phones use static addresses (and NimBLE keeps
        its resolving list in the controller, without reading the store)."""
        return []


@dataclass
class Mirrored:
    """One value of the emulated table: handle, UUID, flags, its Bumble attribute."""

    handle: int
    uuid: str
    flags: int
    attribute: Attribute[bytes] | None = None
    cccd: Attribute[bytes] | None = None  # its CCCD, when it notifies or indicates


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

    def __init__(
        self,
        link: Callable[[], Link],
        log: Callable[[str], None] | None = None,
        model: NimbleModel | None = None,
    ):
        self._link_of = link
        self._log = log or (lambda _m: None)
        self.model = model or NimbleModel()
        self.restoring: dict[str, SecRecord] = {}  # our record served for an LTK, by peer address
        self._auth: dict[int, bool] = {}  # per connection: authenticated, as SMP established it
        self._attrs: dict[int, tuple[Mirrored, bool]] = {}  # Bumble handle -> (mirrored, its CCCD?)
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
        made: list[tuple[Mirrored, bool]] = []
        dev.add_services(self._services(dev.gatt_server, made))
        self._attrs = {}  # by Bumble's handles, assigned now
        for m, cccd in made:
            a = m.cccd if cccd else m.attribute
            if a is not None:
                self._attrs[a.handle] = (m, cccd)
        _nimble_requests(dev.gatt_server, self)
        if "mtu" in self.cfg:  # the firmware's preferred MTU caps the exchange
            dev.gatt_server.max_mtu = int(self.cfg["mtu"])
        dev.on(dev.EVENT_CONNECTION, self._on_connection)
        self.device = dev
        await dev.power_on()

    def _services(self, server: Any, made: list[tuple[Mirrored, bool]]) -> list[gatt.Service]:
        """The mirrored table as Bumble services: attributes as open as the
        ATT layer lets them be (READABLE/WRITEABLE), the security checked in
        the callbacks as NimBLE checks it; a CCCD of our own (first among the
        descriptors, where NimBLE puts it) for each notifying characteristic."""
        out = []
        for suuid, chars in self.table.services:
            items = []
            for c in chars:
                descs = []
                if c.flags & (F_NOTIFY | F_INDICATE):
                    c.cccd = gatt.Descriptor(
                        gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
                        Attribute.READABLE | Attribute.WRITEABLE,
                        self._cccd_value(server, c),
                    )
                    descs.append(c.cccd)
                    made.append((c, True))
                for d in self.table.descriptors.get(c.handle, []):
                    d.attribute = gatt.Descriptor(
                        bumble_uuid(d.uuid), _perms(d.flags), self._value(d)
                    )
                    descs.append(d.attribute)
                    made.append((d, False))
                props = gatt.Characteristic.Properties(c.flags & 0xFF)
                ch: gatt.Characteristic[bytes] = gatt.Characteristic(
                    bumble_uuid(c.uuid), props, _perms(c.flags), self._value(c), descriptors=descs
                )
                c.attribute = ch
                made.append((c, False))
                items.append(ch)
            out.append(gatt.Service(bumble_uuid(suuid), items))
        return out

    # --- NimBLE's checks ---------------------------------------------------------------------
    def record(self, sec_type: int, address: hci.Address) -> SecRecord | None:
        """A store record of the peer (ble_store_read via _IRQ_GET_SECRET), or None."""
        got = self.request("sget", sec_type, 0, store_key(address).hex())
        if not got or got[0] == "-":
            return None
        return SecRecord.decode(bytes.fromhex(got[0]))

    def permit(self, conn: Connection, flags: int, write: bool) -> None:
        """ble_att_svr_check_perms (nimble/host/src/ble_att_svr.c): raises the
        ATT error NimBLE answers with. The property first (read/write not
        permitted); then, for an encrypted or authenticated attribute on an
        unencrypted link, 0x0F (insufficient encryption) if the store holds an
        LTK for the peer -- it could encrypt -- and 0x05 (insufficient
        authentication) if not; on an encrypted link, 0x05 where
        authentication is needed and SMP did not establish it."""
        if write:
            if not flags & (F_WRITE | F_WRITE_NO_RESPONSE):
                raise ATT_Error(ATT_WRITE_NOT_PERMITTED)
            enc, authen = flags & F_WRITE_ENCRYPTED, flags & F_WRITE_AUTHENTICATED
        else:
            if not flags & F_READ:
                raise ATT_Error(ATT_READ_NOT_PERMITTED)
            enc, authen = flags & F_READ_ENCRYPTED, flags & F_READ_AUTHENTICATED
        if not (enc or authen):
            return
        if not conn.encryption:
            try:
                rec = self.record(SEC_PEER, conn.peer_address)
            except BridgeError as e:
                self.failure = self.failure or e
                raise ATT_Error(0x0E) from None
            bonded = rec is not None and rec.ltk is not None
            raise ATT_Error(
                ATT_INSUFFICIENT_ENCRYPTION if bonded else ATT_INSUFFICIENT_AUTHENTICATION
            )
        if authen and not self._auth.get(conn.handle, False):
            raise ATT_Error(ATT_INSUFFICIENT_AUTHENTICATION)

    def _value(self, m: Mirrored) -> gatt.CharacteristicValue[bytes]:
        handle = m.handle

        def read(conn: Connection) -> bytes:
            self.permit(conn, m.flags, write=False)
            got = self._guarded("rd", conn.handle, handle)
            if got[0] != "0":
                raise ATT_Error(int(got[0]))
            return _unhex(got[1]) if len(got) > 1 else b""

        def write(conn: Connection, value: bytes) -> None:
            self.permit(conn, m.flags, write=True)
            got = self._guarded("wr", conn.handle, handle, value=bytes(value))
            if got[0] != "0":
                raise ATT_Error(int(got[0]))

        return gatt.CharacteristicValue(read=read, write=write)

    def _cccd_flags(self, m: Mirrored) -> int:
        """A CCCD's access (ble_gatts_register_clt_cfg_dsc): read and write; with
        the model's "inherit", the characteristic's encryption and authentication
        for writing."""
        f = F_READ | F_WRITE
        if self.model.cccd == "inherit":
            if m.flags & (F_READ_ENCRYPTED | F_WRITE_ENCRYPTED):
                f |= F_WRITE_ENCRYPTED
            if m.flags & (F_READ_AUTHENTICATED | F_WRITE_AUTHENTICATED):
                f |= F_WRITE_AUTHENTICATED
        return f

    def _cccd_value(self, server: Any, m: Mirrored) -> att.AttributeValueV2[bytes]:
        def read(bearer: att.Bearer) -> bytes:
            self.permit(_conn_of(bearer), self._cccd_flags(m), write=False)
            return bytes(server.read_cccd(bearer, m.attribute))

        def write(bearer: att.Bearer, value: bytes) -> None:
            self.permit(_conn_of(bearer), self._cccd_flags(m), write=True)
            server.write_cccd(bearer, m.attribute, value)

        return att.AttributeValueV2(read, write=write)

    def check(self, bearer: att.Bearer, handle: int, write: bool) -> None:
        """NimBLE's check of a Bumble attribute (for the request handlers that
        Bumble's server does not route through a value's callbacks)."""
        got = self._attrs.get(handle)
        if got is None:
            return
        m, cccd = got
        self.permit(_conn_of(bearer), self._cccd_flags(m) if cccd else m.flags, write)

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

    async def _rebuild(self) -> None:
        await self._drop_all()
        await self._new_device()
        if self.adv is not None:
            await self._advertise(self.adv)

    def _pairing_config(self, conn: Connection) -> PairingConfig:
        """The firmware's config (bond, le_secure, mitm, io), as NimBLE takes it
        from ble_hs_cfg: LE Secure Connections preferred, legacy pairing still
        answered (MicroPython's ESP32 build has no SC-only mode)."""
        io = int(self.cfg.get("io", "3"))
        return PairingConfig(
            sc=self.cfg.get("le_secure", "1") == "1",
            mitm=self.cfg.get("mitm", "0") == "1",
            bonding=self.cfg.get("bond", "1") == "1",
            delegate=_Delegate(self, conn, PairingDelegate.IoCapability(io)),
        )

    def pair_request(self, conn: Connection) -> bool:
        """A pairing request arrived: NimBLE's repeat-pairing check, in the
        emulation. False (the request refused) only where NimBLE would hang."""
        self._pairing.add(conn.handle)
        try:
            got = self.request("pairreq", conn.handle, store_key(conn.peer_address).hex())
        except BridgeError as e:
            self.failure = self.failure or e
            return False
        return self._stalled(got, "a pairing request") and got[0] == "1"

    def _stalled(self, got: list[str], what: str) -> bool:
        if "stall" in got:
            why = " ".join(got[got.index("stall") + 1 :])
            self.failure = self.failure or BridgeError(
                f"NimBLE on the ESP32 would hang at {what}: {why} (the firmware's store answers)"
            )
            return False
        return True

    def _session(self, name: str) -> Session | None:
        dev = self.device
        if dev is None:
            return None
        sessions = list(dev.smp_manager.sessions.values())
        for s in sessions:
            peer = s.peer_bd_addr if s.peer_bd_addr is not None else s.connection.peer_address
            if str(peer) == name:
                return s
        return sessions[0] if len(sessions) == 1 else None

    def paired(self, name: str, keys: PairingKeys) -> None:
        """A pairing ended (Bumble stores the keys): the emulation reports the
        encryption and persists the records in the model's order."""
        s = self._session(name)
        if s is None:
            self.failure = self.failure or BridgeError(f"a pairing with {name} ended, no session")
            return
        conn = s.connection
        self._pairing.discard(conn.handle)
        auth = s.pairing_method != PairingMethod.JUST_WORKS  # Bumble calls every link authenticated
        self._auth[conn.handle] = auth
        recs = records(hci.Address(name), keys, s.sc, auth)
        enc = 1 if conn.encryption else 0
        try:
            got = self.request(
                "paired", conn.handle, self.model.order, enc, int(auth), int(s.bonding), 16,
                value=recs,
            )  # fmt: skip
        except BridgeError as e:
            self.failure = self.failure or e
            return
        self._stalled(got, "the end of a pairing")

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
        self._auth[h] = False
        # MicroPython's CONNECT event gives the address big-endian (reverse_addr_byte_order)
        self._tell("conn", h, 0 if peer.is_public else 1, bytes(reversed(bytes(peer))).hex())
        conn.on(conn.EVENT_DISCONNECTION, lambda _reason: self._on_disconnection(h))
        conn.on(conn.EVENT_CONNECTION_ATT_MTU_UPDATE, lambda: self._on_mtu(conn))
        conn.on(conn.EVENT_CONNECTION_ENCRYPTION_CHANGE, lambda: self._on_encryption(conn))
        conn.on(
            conn.EVENT_CONNECTION_ENCRYPTION_FAILURE, lambda _e: self._on_encryption_failed(conn)
        )
        conn.on(conn.EVENT_PAIRING_FAILURE, lambda _r: self._on_pairing_failed(conn))

    def _on_disconnection(self, handle: int) -> None:
        self._pairing.discard(handle)
        self._auth.pop(handle, None)
        self._tell("disc", handle)

    def _on_mtu(self, conn: Connection) -> None:
        self._tell("mtu", conn.handle, conn.att_mtu)

    def _on_encryption(self, conn: Connection) -> None:
        """The link was encrypted. During a pairing the firmware hears of it at
        the pairing's end (paired()); else a bonded central encrypted with the
        LTK our record gave (NimBLE's ENC_RESTORE: bonded, authenticated as
        stored)."""
        if conn.handle in self._pairing:
            return
        rec = self.restoring.pop(str(conn.peer_address), None)
        if rec is None:  # encrypted without our store (cannot happen with NimBLE): as it is
            self._tell("enc", conn.handle, 1 if conn.encryption else 0, 0, 0, 16)
            return
        self._auth[conn.handle] = rec.authenticated
        self._tell("enc", conn.handle, 1, int(rec.authenticated), 1, rec.key_size)

    def _on_encryption_failed(self, conn: Connection) -> None:
        """The encryption failed (no LTK in the store, or the central's is
        another): the ENC_CHANGE event with an error status, which MicroPython
        passes on with the link's state, unencrypted."""
        self.restoring.pop(str(conn.peer_address), None)
        self._tell("enc", conn.handle, 0, 0, 0, 0)

    def _on_pairing_failed(self, conn: Connection) -> None:
        self._pairing.discard(conn.handle)
        if conn.encryption:
            self._tell("enc", conn.handle, 1, 0, 0, 16)

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


def _perms(flags: int) -> Attribute.Permissions:
    """Bumble's permissions of an attribute: readable, writeable as its
    properties say; security is the bridge's own check (BleBridge.permit)."""
    p = Attribute.Permissions(0)
    if flags & F_READ:
        p |= Attribute.READABLE
    if flags & (F_WRITE | F_WRITE_NO_RESPONSE):
        p |= Attribute.WRITEABLE
    return p


def _conn_of(bearer: att.Bearer) -> Connection:
    return bearer.connection if att.is_enhanced_bearer(bearer) else bearer


class _Delegate(PairingDelegate):
    """The peripheral's pairing delegate: a pairing request first passes
    NimBLE's repeat-pairing check (in the emulation)."""

    def __init__(self, bridge: BleBridge, conn: Connection, io: PairingDelegate.IoCapability):
        super().__init__(io_capability=io)
        self.bridge = bridge
        self.conn = conn

    async def accept(self) -> bool:
        return self.bridge.pair_request(self.conn)


def _error(bearer: att.Bearer, server: Any, request: att.ATT_PDU, handle: int, code: int) -> None:
    rsp = att.ATT_Error_Response(
        request_opcode_in_error=request.op_code, attribute_handle_in_error=handle, error_code=code
    )
    server.send_response(bearer, rsp)


_tasks: set[asyncio.Task[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    """Run a request's answer as a task of its own (as Bumble's server does),
    kept referenced until it ends."""
    task = asyncio.get_running_loop().create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _nimble_requests(server: Any, bridge: BleBridge) -> None:
    """The ATT requests Bumble's server (0.0.236) answers otherwise than
    NimBLE, or not at all, answered as ble_att_svr.c does:

    - Read Multiple / Read Multiple Variable: Bumble reads without catching
      the attribute's error, so a protected handle leaves the request
      unanswered (the central times out after 30 s); NimBLE answers the first
      failing handle's error (0x01 for a handle that is not there);
    - Prepare Write: Bumble queues anything; NimBLE checks the attribute's
      write permission first (ble_att_svr_rx_prep_write);
    - Find By Type Value: an error reading a candidate ends the request with
      that error (ble_att_svr_fill_type_value), not a lost task.
    """

    async def read_multiple(bearer: att.Bearer, handles: list[int], req: att.ATT_PDU) -> None:
        variable = isinstance(req, att.ATT_Read_Multiple_Variable_Request)
        mtu = bearer.att_mtu
        out = b""
        for h in handles:
            a = server.get_attribute(h)
            if a is None:
                _error(bearer, server, req, h, ATT_INVALID_HANDLE)
                return
            try:
                v = bytes(await a.read_value(bearer))
            except ATT_Error as e:
                _error(bearer, server, req, h, e.error_code)
                return
            out += struct.pack("<H", len(v)) + v if variable else v
            if len(out) >= mtu - 1:
                break
        rsp: att.ATT_PDU
        if variable:
            rsp = _read_multiple_variable_response(out[: mtu - 1])
        else:
            rsp = att.ATT_Read_Multiple_Response(set_of_values=out[: mtu - 1])
        server.send_response(bearer, rsp)

    def on_read_multiple(bearer: att.Bearer, req: att.ATT_Read_Multiple_Request) -> None:
        _spawn(read_multiple(bearer, list(req.set_of_handles), req))

    def on_read_multiple_variable(
        bearer: att.Bearer, req: att.ATT_Read_Multiple_Variable_Request
    ) -> None:
        _spawn(read_multiple(bearer, list(req.set_of_handles), req))

    original_prepare = server.on_att_prepare_write_request

    def on_prepare_write(bearer: att.Bearer, req: att.ATT_Prepare_Write_Request) -> None:
        h = req.attribute_handle
        if server.get_attribute(h) is not None:
            try:
                bridge.check(bearer, h, write=True)
            except ATT_Error as e:
                _error(bearer, server, req, h, e.error_code)
                return
        original_prepare(bearer, req)

    async def find_by_type_value(
        bearer: att.Bearer, req: att.ATT_Find_By_Type_Value_Request
    ) -> None:
        found = []
        room = bearer.att_mtu - 1
        for a in server.attributes:
            if not req.starting_handle <= a.handle <= req.ending_handle:
                continue
            if a.type != req.attribute_type:
                continue
            try:
                v = bytes(await a.read_value(bearer))
            except ATT_Error as e:
                _error(bearer, server, req, a.handle, e.error_code)
                return
            if v != req.attribute_value or room < 4:
                continue
            end = a.end_group_handle if a.type in _GROUPS else a.handle
            found.append(struct.pack("<HH", a.handle, end))
            room -= 4
        if not found:
            _error(bearer, server, req, req.starting_handle, att.ATT_ATTRIBUTE_NOT_FOUND_ERROR)
            return
        rsp = att.ATT_Find_By_Type_Value_Response(handles_information_list=b"".join(found))
        server.send_response(bearer, rsp)

    def on_find_by_type_value(bearer: att.Bearer, req: att.ATT_Find_By_Type_Value_Request) -> None:
        _spawn(find_by_type_value(bearer, req))

    server.on_att_read_multiple_request = on_read_multiple
    server.on_att_read_multiple_variable_request = on_read_multiple_variable
    server.on_att_prepare_write_request = on_prepare_write
    server.on_att_find_by_type_value_request = on_find_by_type_value


_GROUPS = (
    gatt.GATT_PRIMARY_SERVICE_ATTRIBUTE_TYPE,
    gatt.GATT_SECONDARY_SERVICE_ATTRIBUTE_TYPE,
    gatt.GATT_CHARACTERISTIC_ATTRIBUTE_TYPE,
)


def _read_multiple_variable_response(tuples: bytes) -> att.ATT_PDU:
    """An ATT_Read_Multiple_Variable_Response of (length, value) tuples, already packed."""
    pairs = []
    i = 0
    while i + 2 <= len(tuples):
        n = int.from_bytes(tuples[i : i + 2], "little")
        pairs.append((n, tuples[i + 2 : i + 2 + n]))
        i += 2 + n
    return att.ATT_Read_Multiple_Variable_Response(length_value_tuple_list=pairs)

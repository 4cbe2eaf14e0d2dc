"""MicroPython's `bluetooth` module, emulated: the subset the firmware uses
(the BLE contract), for the simulator and the virtual board, which have no
radio. sim/run.py installs it as sys.modules["bluetooth"] before the firmware
is imported, and registers the "@ble" console channel.

There is no radio and no BLE stack here: the host plays both (hil/ble/bridge.py,
a Bumble peripheral whose GATT server mirrors this one). What the firmware
does goes to the host as T_BLE frames (0x14); what a central does comes back
as "@ble" console lines, served by the firmware's console, so IRQs run in the
firmware's main loop, as MicroPython schedules them. The wire is described in
docs/ble_sim.md.

    T_BLE frames (device -> host), text, the first word the kind:
      reg N | svc UUID | chr VH UUID FLAGS | dsc H UUID FLAGS | reg end   (a GATT table)
      adv INTERVAL_US CONNECTABLE ADVHEX RESPHEX | adv off
      cfg KEY VALUE            act 0|1            disc CONN
      ntf T_US CONN VH HEX     ind T_US CONN VH HEX     upd T_US VH HEX
      ok SEQ [WORDS]           err SEQ CODE MESSAGE     + HEX (more of the next frame's HEX)
    "@ble" lines (host -> device): see BleChannel.

Extension honoured (the contract): a non-zero int returned by the
_IRQ_GATTS_WRITE handler is the ATT error the write is answered with, and the
previous value is restored.
"""

import sys
from binascii import hexlify, unhexlify

import framing
from micropython import const

from sim.kernel import K

FLAG_READ = const(0x0002)
FLAG_WRITE_NO_RESPONSE = const(0x0004)
FLAG_WRITE = const(0x0008)
FLAG_NOTIFY = const(0x0010)
FLAG_INDICATE = const(0x0020)
FLAG_READ_ENCRYPTED = const(0x0200)
FLAG_READ_AUTHENTICATED = const(0x0400)
FLAG_READ_AUTHORIZED = const(0x0800)
FLAG_WRITE_ENCRYPTED = const(0x1000)
FLAG_WRITE_AUTHENTICATED = const(0x2000)
FLAG_WRITE_AUTHORIZED = const(0x4000)

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_READ_REQUEST = const(4)
_IRQ_GATTS_INDICATE_DONE = const(20)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_CONNECTION_UPDATE = const(27)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)

_CCCD = const(0x2902)
_WRITABLE = const(0x000C)  # FLAG_WRITE | FLAG_WRITE_NO_RESPONSE
_ATT_WRITE_NOT_PERMITTED = const(0x03)
_DEFAULT_BUF = const(20)  # MicroPython's default value buffer: longer writes are cut
_HEX_CHUNK = const(200)  # hex characters per frame (a payload is at most 255 bytes)
MAC = b"\x24\x0a\xc4\x00\xb1\xe5"  # public, an Espressif OUI

_BASE = b"\x00\x00\x10\x00\x80\x00\x00\x80\x5f\x9b\x34\xfb"  # Bluetooth base UUID, bytes 4..15


def _out(text):
    sys.stdout.buffer.write(framing.text_frame(framing.T_BLE, text))


def _hex(data):
    return hexlify(data).decode() if data else "-"


def _send(head, data):
    """`head` and the hex of `data` as the last word; long values go ahead in
    "+ HEX" frames that the host joins to it."""
    h = _hex(data)
    while len(h) > _HEX_CHUNK:
        _out("+ " + h[:_HEX_CHUNK])
        h = h[_HEX_CHUNK:]
    _out(head + " " + h)


def _unhex(word):
    return b"" if word == "-" else unhexlify(word)


class UUID:
    """A 16-bit (int or "0x180F") or 128-bit ("7e1a0001-...") UUID; str()
    gives its canonical text, lower case, as the host writes it."""

    def __init__(self, value):
        if isinstance(value, UUID):
            self._s = value._s
            return
        if isinstance(value, int):
            if not 0 <= value <= 0xFFFF:
                raise ValueError("invalid UUID")
            self._s = "%04x" % value
            return
        if isinstance(value, (bytes, bytearray, memoryview)):
            b = bytes(value)
            if len(b) == 2:
                self._s = "%04x" % (b[0] | b[1] << 8)
                return
            if len(b) == 16:  # little-endian, as MicroPython stores it
                h = hexlify(bytes(reversed(b))).decode()
                self._s = "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])
                return
            raise ValueError("invalid UUID")
        s = str(value).lower()
        if s.startswith("0x"):
            s = s[2:]
        if len(s) == 4:
            int(s, 16)
            self._s = s
            return
        if len(s) != 36 or s[8] != "-" or s[13] != "-" or s[18] != "-" or s[23] != "-":
            raise ValueError("invalid UUID")
        unhexlify(s.replace("-", ""))
        self._s = s

    def __str__(self):
        return self._s

    def __repr__(self):
        return "UUID(%s)" % (("0x" + self._s) if len(self._s) == 4 else "'%s'" % self._s)

    def __eq__(self, other):
        return isinstance(other, UUID) and other._s == self._s

    def __hash__(self):
        return hash(self._s)

    def __len__(self):
        return 2 if len(self._s) == 4 else 16


class Radio:
    """The radio: BLE() returns the one instance, as on MicroPython."""

    def __init__(self, live=True):
        self._live = live  # False: a radio nobody hears (see mute())
        self.reset()

    def reset(self):
        """As after power-on: inactive, no table, no connection, no handler."""
        self._active = False
        self._irq = None
        self._values = {}  # value handle -> bytearray
        self._bufs = {}  # value handle -> [max len, append]
        self._readonly = set()  # value handles without a write property: the stack refuses writes
        self._conns = {}  # conn handle -> (addr_type, addr)
        self._adv = None
        self._staged = bytearray()
        self._cfg = {"gap_name": b"MPY NIMBLE", "mtu": 256, "bond": False, "le_secure": False,
                     "mitm": False, "io": 3, "rxbuf": 256, "addr_mode": 0}  # fmt: skip
        self._table = []  # the registration's frames, kept for "@ble dump"

    def _emit(self, text):
        if self._live:
            _out(text)

    # --- the documented API ---------------------------------------------------------
    def active(self, *change):
        if change:
            on = bool(change[0])
            if on != self._active:
                if not on:
                    self._drop_all()
                    self._adv = None
                self._active = on
                self._emit("act %d" % on)
        return self._active

    def config(self, *args, **kw):
        if args:
            if len(args) != 1 or kw:
                raise TypeError("config takes one name, or keywords")
            name = args[0]
            if name == "mac":
                return (0, MAC)
            if name not in self._cfg:
                raise ValueError("unknown config param")
            return self._cfg[name]
        for name, value in kw.items():
            if name not in self._cfg:
                raise ValueError("unknown config param")
            if name == "gap_name":
                value = bytes(value, "utf-8") if isinstance(value, str) else bytes(value)
                self._emit("cfg gap_name " + _hex(value))
            elif name in ("mtu", "io", "rxbuf", "addr_mode"):
                value = int(value)
                self._emit("cfg %s %d" % (name, value))
            else:
                value = bool(value)
                self._emit("cfg %s %d" % (name, value))
            self._cfg[name] = value
        return None

    def irq(self, handler):
        self._irq = handler

    def gatts_register_services(self, services):
        self._need_active()
        if self._conns:
            raise OSError(16)  # EBUSY: NimBLE refuses while connected
        self._values = {}
        self._bufs = {}
        self._readonly = set()
        table = ["reg %d" % len(services)]
        h = 0  # NimBLE numbers from 1: service, then per characteristic declaration, value, CCCD
        out = []
        for svc in services:
            suuid, chars = svc[0], svc[1]
            h += 1
            table.append("svc %s" % UUID(suuid))
            handles = []
            for ch in chars:
                cuuid, flags = ch[0], ch[1]
                h += 2
                vh = h
                handles.append(vh)
                self._values[vh] = bytearray()
                self._bufs[vh] = [_DEFAULT_BUF, False]
                if not flags & _WRITABLE:
                    self._readonly.add(vh)
                table.append("chr %d %s %x" % (vh, UUID(cuuid), flags))
                if flags & (FLAG_NOTIFY | FLAG_INDICATE):
                    h += 1  # the CCCD: the stack's own (the host's, here)
                    table.append("dsc %d %04x %x" % (h, _CCCD, FLAG_READ | FLAG_WRITE))
                for d in ch[2] if len(ch) > 2 else ():
                    h += 1
                    handles.append(h)
                    self._values[h] = bytearray()
                    self._bufs[h] = [_DEFAULT_BUF, False]
                    if not d[1] & _WRITABLE:
                        self._readonly.add(h)
                    table.append("dsc %d %s %x" % (h, UUID(d[0]), d[1]))
            out.append(tuple(handles))
        table.append("reg end")
        self._table = table
        for line in table:
            self._emit(line)
        return tuple(out)

    def gatts_read(self, value_handle):
        return bytes(self._value(value_handle))

    def gatts_write(self, value_handle, data, send_update=False):
        v = self._value(value_handle)
        v[:] = data
        buf = self._bufs[value_handle]
        if len(v) > buf[0]:
            buf[0] = len(v)
        if send_update and self._conns and self._live:
            _send("upd %d %d" % (K.now_us, value_handle), v)  # the host notifies the subscribed

    def gatts_notify(self, conn_handle, value_handle, data=None):
        self._notify("ntf", conn_handle, value_handle, data)

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        self._notify("ind", conn_handle, value_handle, data)

    def gatts_set_buffer(self, value_handle, length, append=False):
        self._value(value_handle)
        self._bufs[value_handle] = [length, bool(append)]

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        self._need_active()
        if interval_us is None:
            if self._adv is not None:
                self._adv = None
                self._emit("adv off")
            return
        old = self._adv
        if adv_data is None:
            adv_data = old[1] if old else b""
        if resp_data is None:
            resp_data = old[2] if old else b""
        self._adv = (int(interval_us), bytes(adv_data), bytes(resp_data), bool(connectable))
        self._emit("adv %d %d %s %s" % (self._adv[0], connectable, _hex(adv_data), _hex(resp_data)))

    def gap_disconnect(self, conn_handle):
        if conn_handle not in self._conns:
            return False
        self._emit("disc %d" % conn_handle)
        return True

    # --- helpers ----------------------------------------------------------------------
    def _need_active(self):
        if not self._active:
            raise OSError(19)  # ENODEV, as MicroPython when the radio is off

    def _value(self, handle):
        v = self._values.get(handle)
        if v is None:
            raise ValueError("invalid handle")
        return v

    def _notify(self, kind, conn, handle, data):
        if conn not in self._conns:
            raise OSError(128)  # ENOTCONN
        v = self._value(handle) if data is None else data
        if self._live:
            _send("%s %d %d %d" % (kind, K.now_us, conn, handle), v)

    def _call(self, event, data):
        h = self._irq
        return h(event, data) if h is not None else None

    def _drop_all(self):
        for conn in list(self._conns):
            addr_type, addr = self._conns.pop(conn)
            self._call(_IRQ_CENTRAL_DISCONNECT, (conn, addr_type, memoryview(addr)))

    # --- what the host's central does (the "@ble" channel) ------------------------------
    def _connect(self, conn, addr_type, addr):
        self._conns[conn] = (addr_type, addr)
        self._adv = None  # a peripheral stops advertising when a central connects
        self._call(_IRQ_CENTRAL_CONNECT, (conn, addr_type, memoryview(addr)))

    def _disconnect(self, conn):
        if conn in self._conns:
            addr_type, addr = self._conns.pop(conn)
            self._call(_IRQ_CENTRAL_DISCONNECT, (conn, addr_type, memoryview(addr)))

    def _write(self, conn, handle, data):
        """A central's write; the ATT code it is answered with (0: accepted)."""
        v = self._value(handle)
        if handle in self._readonly:
            return _ATT_WRITE_NOT_PERMITTED  # as NimBLE: the firmware never hears of it
        max_len, append = self._bufs[handle]
        old = bytes(v)
        if append:
            data = old + data
        v[:] = data[:max_len]
        rc = self._call(_IRQ_GATTS_WRITE, (conn, handle))
        rc = rc if isinstance(rc, int) and not isinstance(rc, bool) else 0
        if rc:
            v[:] = old  # a refused write changes nothing
        return rc & 0xFF

    def _read(self, conn, handle):
        self._value(handle)
        rc = self._call(_IRQ_GATTS_READ_REQUEST, (conn, handle))
        rc = rc if isinstance(rc, int) and not isinstance(rc, bool) else 0
        return rc & 0xFF, bytes(self._values[handle])


_ble = Radio()
_mute = None


def ble():
    """The emulated radio itself (the "@ble" channel's, and a test program's)."""
    return _ble


def mute():
    """From now on BLE() gives the firmware a radio nobody hears: a test
    program (hil/ble tests) drives the emulated one in its place."""
    global _mute
    if _mute is None:
        _mute = Radio(False)


def reset():
    """A new boot: a radio as from power-on, nothing of the last run kept."""
    global _mute
    _ble.reset()
    _mute = None


def BLE():
    """The radio (always the same one)."""
    return _mute if _mute is not None else _ble


# --- the "@ble" console channel ----------------------------------------------------------
E_UNKNOWN = const(1)
E_ARGS = const(2)
E_STATE = const(3)


class BleChannel:
    """Lines "@ble CMD SEQ ARGS", each answered by one "ok SEQ ..." or
    "err SEQ CODE MESSAGE" frame (after the frames the IRQ handler caused):

        more SEQ HEX                 stage HEX ahead of the next command's value
        conn SEQ CONN ADDR_TYPE ADDRHEX     -> ok SEQ
        disc SEQ CONN                       -> ok SEQ
        wr SEQ CONN VH HEX|-                -> ok SEQ ATT_CODE
        rd SEQ CONN VH                      -> ok SEQ ATT_CODE HEX|-
        mtu SEQ CONN MTU                    -> ok SEQ
        enc SEQ CONN ENCRYPTED AUTHENTICATED BONDED KEY_SIZE -> ok SEQ
        cupd SEQ CONN INTERVAL LATENCY TIMEOUT STATUS        -> ok SEQ
        idone SEQ CONN VH STATUS            -> ok SEQ
        sget SEQ SEC_TYPE INDEX KEYHEX|-    -> ok SEQ HEX|- (-: none)
        sset SEQ SEC_TYPE KEYHEX HEX|-      -> ok SEQ 0|1 (HEX - deletes)
        dump SEQ                            the table, advertising and config again -> ok SEQ
    """

    def __init__(self, radio):
        self.ble = radio
        self.cmds = {
            "more": self._more,
            "conn": self._conn,
            "disc": self._disc,
            "wr": self._wr,
            "rd": self._rd,
            "mtu": self._mtu,
            "enc": self._enc,
            "cupd": self._cupd,
            "idone": self._idone,
            "sget": self._sget,
            "sset": self._sset,
            "dump": self._dump,
        }

    def __call__(self, words):
        seq = words[1] if len(words) > 1 else "0"
        fn = self.cmds.get(words[0]) if words else None
        if fn is None:
            _out("err %s %d unknown ble command %s" % (seq, E_UNKNOWN, words[0] if words else "-"))
            return
        try:
            fn(seq, words[2:])
        except (ValueError, KeyError, IndexError, TypeError) as e:
            self.ble._staged = bytearray()
            _out("err %s %d %s: %s" % (seq, E_ARGS, words[0], e))

    def _value(self, word):
        b = self.ble
        data = bytes(b._staged) + _unhex(word)
        b._staged = bytearray()
        return data

    def _more(self, seq, w):
        self.ble._staged += _unhex(w[0])
        _out("ok " + seq)

    def _conn(self, seq, w):
        self.ble._connect(int(w[0]), int(w[1]), _unhex(w[2]))
        _out("ok " + seq)

    def _disc(self, seq, w):
        self.ble._disconnect(int(w[0]))
        _out("ok " + seq)

    def _wr(self, seq, w):
        rc = self.ble._write(int(w[0]), int(w[1]), self._value(w[2]))
        _out("ok %s %d" % (seq, rc))

    def _rd(self, seq, w):
        rc, v = self.ble._read(int(w[0]), int(w[1]))
        _send("ok %s %d" % (seq, rc), b"" if rc else v)

    def _mtu(self, seq, w):
        self.ble._call(_IRQ_MTU_EXCHANGED, (int(w[0]), int(w[1])))
        _out("ok " + seq)

    def _enc(self, seq, w):
        conn, enc, auth, bonded, size = [int(x) for x in w[:5]]
        self.ble._call(_IRQ_ENCRYPTION_UPDATE, (conn, bool(enc), bool(auth), bool(bonded), size))
        _out("ok " + seq)

    def _cupd(self, seq, w):
        self.ble._call(_IRQ_CONNECTION_UPDATE, tuple(int(x) for x in w[:5]))
        _out("ok " + seq)

    def _idone(self, seq, w):
        self.ble._call(_IRQ_GATTS_INDICATE_DONE, tuple(int(x) for x in w[:3]))
        _out("ok " + seq)

    def _sget(self, seq, w):
        key = _unhex(w[2])
        got = self.ble._call(_IRQ_GET_SECRET, (int(w[0]), int(w[1]), memoryview(key) if key else None))
        _send("ok " + seq, bytes(got) if got else b"")

    def _sset(self, seq, w):
        key = _unhex(w[1])
        staged = bool(self.ble._staged)
        value = self._value(w[2])
        val = None if w[2] == "-" and not staged else memoryview(value)
        ok = self.ble._call(_IRQ_SET_SECRET, (int(w[0]), memoryview(key), val))
        _out("ok %s %d" % (seq, 1 if ok else 0))

    def _dump(self, seq, w):
        b = self.ble
        _out("act %d" % b._active)
        for name in ("gap_name", "mtu", "bond", "le_secure", "mitm", "io"):
            v = b._cfg[name]
            _out("cfg %s %s" % (name, _hex(v) if name == "gap_name" else "%d" % v))
        for line in b._table:
            _out(line)
        a = b._adv
        if a is not None:
            _out("adv %d %d %s %s" % (a[0], a[3], _hex(a[1]), _hex(a[2])))
        _out("ok " + seq)


_channel = []


def channel(words):
    """The "@ble" console handler (console.register_channel); None only loads it."""
    if not _channel:
        _channel.append(BleChannel(_ble))
    if words is not None:
        _channel[0](words)

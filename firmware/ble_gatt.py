"""The BLE GATT profile (docs/ble_profile.md), on MicroPython's `bluetooth`
module: Device Information, Battery, and the heatrig service, as
ble_table.py lays them out.

Only the bluetooth module's documented API is used. One extension, which
the simulator's emulation honours and the ESP32's NimBLE port ignores: the
_IRQ_GATTS_WRITE handler returns the ATT error a refused write gets (0:
accepted). So that a refused write changes nothing on either, the firmware
itself also puts the previous value back (gatts_write) and reports the
outcome in the `result` characteristic.

Costs to the device: nothing runs on the control timer, and nothing on a
main-loop pass. tick() runs at the charger's ticks (4 Hz): actions that BLE
interrupts asked for (flash writes, reset, unpair, console events), and,
only while a central is connected, the values' change checks -- the
heating state and puffs at every tick, the rest once a second. Values are
packed into buffers allocated at boot and written to the stack (and
notified) only when they changed. On a connection every value is brought up
to date at once.

Security: the stack enforces encryption on the characteristics marked enc
(READ_ENCRYPTED / WRITE_ENCRYPTED). Bonds are the stack's secrets, kept by
bonds.py. A new bond is stored only while the pairing window is open (the
charger button's double click, 60 s, the holder LED blinking fast; it
closes when a bond is stored); outside it _IRQ_SET_SECRET returns False, and
the link is dropped at its _IRQ_ENCRYPTION_UPDATE, as is a link encrypted
without a bond while the window is closed.
"""

import gc
import sys
import time
from binascii import unhexlify
from struct import pack_into, unpack_from

import ble_update
import bluetooth
import bonds
import settings
import states
import store
from micropython import const
from version import FIRMWARE_VERSION

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_READ_REQUEST = const(4)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_CONNECTION_UPDATE = const(27)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)

_IO_NO_INPUT_OUTPUT = const(3)
_MTU = const(251)  # update data in writes of 244 bytes (ble_update.py); faults (45 bytes) in one notification
_ADV_INTERVAL_US = const(500000)
_PAIRING_MS = const(60000)
_CLEAR_MS = const(30000)  # a registration clear waits this long for the holder button
_HEATING_NOTIFY_S = const(10)
_PUFFS_MAX = const(14)  # heater_ctl.SESSION_PUFFS
_SESSION_S = const(360)  # heater_ctl.SESSION_MS

_ATT_VALUE = const(0x13)
_ATT_STATE = const(0x80)

# value indices: ble_table.CHARS in order (tests/ble/test_ble_table.py checks them)
_SERIAL = const(2)
_FIRMWARE_REV = const(4)
_BATTERY = const(6)
_NN0 = const(6)  # custom characteristic NN is index _NN0 + NN
_STATUS = const(7)
_HEATING = const(8)
_COUNTERS = const(9)
_FAULTS = const(10)
_HAPTICS = const(11)
_FIND = const(12)
_LOCK = const(13)
_USAGE = const(14)
_LIMIT = const(15)
_SHARING = const(16)
_ALERTS = const(17)
_REGISTRATION = const(18)
_IDS = const(19)
_CONTROL = const(20)
_RESULT = const(21)
_N = const(22)  # the values served here; the update service's follow (ble_update.py)

# requests from interrupts, served by tick()
_DO_EVENTS = const(0x01)
_DO_SETTINGS = const(0x02)
_DO_REGISTRATION = const(0x04)
_DO_FIND = const(0x08)
_DO_RESET = const(0x10)
_DO_UNPAIR = const(0x20)
_DO_CLEAR_FAULTS = const(0x40)
_DO_DISCONNECT = const(0x80)  # links refused at pairing

REG_FILE = "registration"
REG_DEFAULTS = {"registered": False, "date": 0}
IDS_FILE = "ids"
IDS_DEFAULTS = {"holder": "", "charger": "", "box": ""}

_FAULT_MAX = const(8)


def check(forms, data):
    """(ATT code, values) of a write's value against its forms
    (ble_table.compile_forms): the form of its length, every field in range."""
    for n, fmt, los, his in forms:
        if len(data) == n:
            vals = unpack_from(fmt, data)
            for i in range(len(los)):
                lo = los[i]
                hi = his[i]
                if (lo is not None and vals[i] < lo) or (hi is not None and vals[i] > hi):
                    return _ATT_VALUE, None
            return 0, vals
    return 0x0D, None


def ids_for(rec, mac):
    """(holder, charger, box) codes: the factory record's, or, for a unit
    never provisioned, from its 6-byte BLE address."""
    h, c, b = rec["holder"], rec["charger"], rec["box"]
    if len(h) == 8 and len(c) == 8 and len(b) == 12:
        return h, c, b
    low = "%02X%02X%02X%02X" % (mac[2], mac[3], mac[4], mac[5])
    n = 0
    for x in mac:
        n = n * 256 + x
    return low, low, "%012d" % (n % 1000000000000)


def adv_payload(name, uuid128):
    """Flags, the complete name, the complete list of 128-bit service UUIDs
    (the UUID's bytes little-endian)."""
    u = bytes(reversed(unhexlify(uuid128.replace("-", ""))))
    nb = name.encode()
    return bytes((2, 0x01, 0x06, len(nb) + 1, 0x09)) + nb + bytes((len(u) + 1, 0x07)) + u


def _plan():
    """What the server takes from the table (ble_table.py, set-up only): the
    services to register, each value's size, which notify, the write forms,
    the faults entry's format, the Device Information texts (None: the
    serial, the unit's), the name and the custom service's UUID."""
    import ble_table as t

    svcs = []
    for uuid, _name, first, end in t.SERVICES:
        chars = []
        for k in range(first, end):
            c = t.CHARS[k]
            chars.append((_uuid(t, c[0], uuid <= t.CUSTOM_MAX), _flags(t, c[2], c[3])))
        svcs.append((_uuid(t, uuid, uuid <= t.CUSTOM_MAX), tuple(chars)))
    sizes = [0] * _N
    ntf = bytearray(_N)  # 1: the characteristic notifies
    forms = {}
    entry_fmt = ""
    for k in range(_BATTERY, _N):
        c = t.CHARS[k]
        ntf[k] = 1 if c[2] & t.NOTIFY else 0
        if c[4]:
            n = t.field_fmt(c[4])[1]
            rep = c[5]
            if rep:  # the repeated group (faults): room for the most entries
                entry_fmt, size = t.field_fmt(rep[1])
                n += rep[0] * size
            sizes[k] = n
        if c[6]:
            forms[k] = t.compile_forms(c[6])
    texts = (t.MANUFACTURER, t.MODEL, None, t.HARDWARE_REV, FIRMWARE_VERSION, t.SOFTWARE_REV)
    return tuple(svcs), sizes, ntf, forms, entry_fmt, texts, t.NAME, t.custom_uuid(0)


class Ble:
    def __init__(self, app):
        self.app = app
        self.heater = app.heater
        self.power = app.power
        self.ind = app.device.ind
        self.usage = app.usage
        self.settings = app.settings
        self._events = []  # console events from interrupts, sent by tick()
        self._do = 0
        self._conns = []
        self._pairing = False
        self._pair_until = time.ticks_ms()
        self._refused = False  # a new bond was refused since the last encryption update
        self._bonded_now = 0  # >0: a new bond was stored within the last 1-2 s
        self._clear_until = time.ticks_ms()
        self._clearing = False
        self._find_req = 0
        self._hstate = -1
        self._puffs = -1
        self._bucket = -1
        self._amb_c = 0
        # the table first, alone: its ~20 KB go before anything lasting is allocated,
        # so they leave no holes among the server's buffers
        svcs, sizes, self._ntf, self._forms, self._entry_fmt, texts, name, uuid = _plan()
        del sys.modules["ble_table"]
        gc.collect()
        self._bonds = bonds.Bonds()
        self._reg, _ = store.load(REG_FILE, REG_DEFAULTS)
        ids_rec = store.load(IDS_FILE, IDS_DEFAULTS)[0]
        gc.collect()  # the records' parsing garbage, too

        ble = bluetooth.BLE()
        self._ble = ble
        ble.active(True)
        ble.config(gap_name=name, mtu=_MTU, bond=True, le_secure=True, mitm=False, io=_IO_NO_INPUT_OUTPUT)
        ble.irq(self._irq)
        handles = ble.gatts_register_services(svcs)
        self._h = [h for hs in handles for h in hs]  # in CHARS order
        # value buffers: the value as written to the stack, and a second to pack the next into
        # (the pack_into formats below are the table's: tests/ble/test_ble_table.py)
        self._val = [None] * _N  # type: list
        self._alt = [None] * _N  # type: list
        for k in range(_BATTERY, _N):
            n = sizes[k]
            if n:
                self._val[k] = bytearray(n)
                self._alt[k] = bytearray(n)
                if n > 20:  # the default; writes longer than the longest valid one (6 bytes) fit it
                    ble.gatts_set_buffer(self._h[k], n)
        ids = ids_for(ids_rec, ble.config("mac")[1])
        for k, text in enumerate(texts):
            ble.gatts_write(self._h[k], (text or "H%s-C%s" % (ids[0], ids[1])).encode())
        self._adv = adv_payload(name, uuid)
        self.upd = ble_update.Service(ble, app, self._h[_N], self._h[_N + 1])

        pack_into("<B8s8s12s", self._val[_IDS], 0, 1, ids[0].encode(), ids[1].encode(), ids[2].encode())
        self._settings_values()
        self._registration()
        self._refresh_all(time.ticks_ms())
        for k in range(_BATTERY, _N):  # every value in the stack, changed or not
            if self._val[k] is not None and k != _FAULTS:
                self._write(k)
        self._advertise()

    # --- radio ---------------------------------------------------------------------
    def _advertise(self):
        self._ble.gap_advertise(_ADV_INTERVAL_US, self._adv)

    def _say(self, text):
        """A console event, from an interrupt: sent at the next tick."""
        self._events.append(text)
        self._do |= _DO_EVENTS

    def _irq(self, event, data):
        if event == _IRQ_GATTS_WRITE:
            if data[1] >= self._h[_N]:
                return self.upd.write(data[0], data[1])
            return self._on_write(data[1])
        if event == _IRQ_GATTS_READ_REQUEST:
            return 0
        if event == _IRQ_GET_SECRET:
            key = data[2]
            return self._bonds.get(data[0], data[1], bytes(key) if key is not None else None)
        if event == _IRQ_SET_SECRET:
            return self._set_secret(data[0], bytes(data[1]), bytes(data[2]) if data[2] is not None else None)
        if event == _IRQ_CENTRAL_CONNECT:
            self._conns.append(data[0])
            self._say("ble connect")
            self._refresh_all(time.ticks_ms())
        elif event == _IRQ_MTU_EXCHANGED:
            self.upd.on_mtu(data[0], data[1])
        elif event == _IRQ_CENTRAL_DISCONNECT:
            self.upd.on_disconnect(data[0])
            if data[0] in self._conns:
                self._conns.remove(data[0])
            if not self._conns:
                self._refused = False  # a pairing refused died with its link
                self._bonded_now = 0
            self._say("ble disconnect")
            self._advertise()
        elif event == _IRQ_ENCRYPTION_UPDATE:
            # (conn, encrypted, authenticated, bonded, key_size). NimBLE stores
            # the keys first, then reports; a stack that reports first is
            # covered by the window still being open then.
            if self._refused or (data[1] and not data[3] and not self._pairing and not self._bonded_now):
                if not self._refused:
                    self._say("ble pairing refused")  # encrypted, no bond, the window closed
                self._refused = False
                self._ble.gap_disconnect(data[0])
            self._bonded_now = 0
        return None

    def _set_secret(self, sec_type, key, value):
        b = self._bonds
        if value is None or b.known(key):  # a delete, or a secret of a peer bonded already
            return b.set(sec_type, key, value)
        if not self._pairing:
            if not self._refused:
                self._refused = True
                self._say("ble pairing refused")
            return False
        if not b.set(sec_type, key, value):
            return False
        self._bonded_now = 2  # for this link's encryption update (_expire counts it down)
        self._say("ble bonded")
        self._close_pairing()
        return True

    # --- the pairing window (the charger button's double click) ----------------------
    def open_pairing(self, now_ms):
        self._pair_until = time.ticks_add(now_ms, _PAIRING_MS)
        if not self._pairing:
            self._pairing = True
            self.ind.pairing = True
            self._say("ble pairing open")
            self._status()

    def _close_pairing(self):
        if self._pairing:
            self._pairing = False
            self.ind.pairing = False
            self._say("ble pairing closed")
            self._status()

    # --- writes ---------------------------------------------------------------------------
    def _on_write(self, handle):
        k = _BATTERY
        h = self._h
        while k < _N and h[k] != handle:
            k += 1
        if k == _N or k not in self._forms:
            return 0
        code, vals = check(self._forms[k], self._ble.gatts_read(handle))
        if not code:
            code = self._apply(k, vals)
        if k != _CONTROL:
            self._ble.gatts_write(handle, self._val[k])  # as it is now: unchanged if refused
        pack_into("<BB", self._alt[_RESULT], 0, k - _NN0, code)
        self._commit(_RESULT)
        return code

    def _apply(self, k, vals):
        """A valid write: act on it; an ATT code (0 ok)."""
        s = self.settings
        if k == _HAPTICS:
            s["haptics"] = vals[1]
            s["intensity"] = vals[2]
        elif k == _LOCK:
            s["locked"] = vals[0] == 1
        elif k == _LIMIT:
            s["limit"] = vals[0]
            self.usage.forget()
        elif k == _SHARING:
            s["sharing"] = vals[0] == 1
            self.usage.forget()
        elif k == _FIND:
            self._find_req = vals[0]
            pack_into("<B", self._alt[_FIND], 0, vals[0])
            self._commit(_FIND)
            self._do |= _DO_FIND
            return 0
        elif k == _REGISTRATION:
            return self._register(vals)
        elif k == _CONTROL:
            self._do |= (_DO_RESET, _DO_UNPAIR, _DO_CLEAR_FAULTS)[vals[0] - 1]
            return 0
        self._settings_values()
        self._usage()
        self._do |= _DO_SETTINGS
        return 0

    def _settings_values(self):
        s = self.settings
        self.ind.haptics = s["haptics"]
        self.ind.intensity = s["intensity"]
        pack_into("<BBB", self._alt[_HAPTICS], 0, 1, s["haptics"], s["intensity"])
        self._commit(_HAPTICS)
        for k, v in ((_LOCK, s["locked"]), (_LIMIT, s["limit"]), (_SHARING, s["sharing"])):
            self._alt[k][0] = int(v)
            self._commit(k)

    def _register(self, vals):
        r = self._reg
        if len(vals) == 3:
            if r["registered"]:
                return _ATT_STATE
            r["registered"] = True
            r["date"] = vals[2]
        else:
            if not r["registered"]:
                return _ATT_STATE
            self._clearing = True
            self._clear_until = time.ticks_add(time.ticks_ms(), _CLEAR_MS)
        self._do |= _DO_REGISTRATION
        self._registration()
        return 0

    def _registration(self):
        r = self._reg
        pack_into("<BBIB", self._alt[_REGISTRATION], 0, 1, r["registered"], r["date"], self._clearing)
        self._commit(_REGISTRATION)

    def confirm(self, now_ms):
        """The holder button's click: clears the registration if asked to."""
        if self._clearing and time.ticks_diff(self._clear_until, now_ms) > 0:
            self._reg["registered"] = False
            self._reg["date"] = 0
            self._clearing = False
            self._registration()
            store.save(REG_FILE, self._reg)

    # --- the main loop's side ------------------------------------------------------------
    def tick(self, now_ms, slow):
        """At the charger's ticks (4 Hz; slow: once a second)."""
        if self._do:
            self._serve(now_ms)
        if slow:
            self._expire(now_ms)
        if self._conns:
            h = self.heater
            if h.state != self._hstate or h.puffs.count != self._puffs:
                self._heating(now_ms, True)
                self._status()
            if slow:
                self._refresh(now_ms)

    def serve_now(self):
        """Do what the interrupts asked for now, not at the next tick (before a reset)."""
        self._serve(time.ticks_ms())

    def _serve(self, now_ms):
        do = self._do
        self._do = 0
        if do & _DO_EVENTS:
            ev = self._events
            while ev:
                self.app.console.event(ev.pop(0))
        if do & _DO_SETTINGS:
            settings.save(self.settings)
        if do & _DO_REGISTRATION:
            store.save(REG_FILE, self._reg)
        if do & _DO_FIND:
            self.ind.find(self._find_req * 1000, now_ms)
        if do & _DO_CLEAR_FAULTS:
            self.app.fault_log.clear()
            self._faults()
        if do & _DO_UNPAIR:
            self._bonds.clear()
            self.app.console.event("ble unpaired")
            for c in self._conns:
                self._ble.gap_disconnect(c)
        if do & _DO_RESET:
            self.app.reset()

    def _expire(self, now_ms):
        if self._bonded_now:
            self._bonded_now -= 1
        if self._pairing and time.ticks_diff(self._pair_until, now_ms) <= 0:
            self._close_pairing()
        if self._clearing and time.ticks_diff(self._clear_until, now_ms) <= 0:
            self._clearing = False  # lapsed
            self._registration()
        self._find(now_ms)

    def _find(self, now_ms):
        self._alt[_FIND][0] = (self.ind.find_left_ms(now_ms) + 999) // 1000
        self._commit(_FIND)

    def _refresh_all(self, now_ms):
        self._heating(now_ms, True)
        self._refresh(now_ms)
        self._usage()

    def _refresh(self, now_ms):
        """Once a second, connected: whatever may have changed."""
        self._status()
        self._heating(now_ms, False)
        self._alt[_BATTERY][0] = self.power.chg.soc() // 100
        self._commit(_BATTERY)
        c = self.app.counters
        pack_into("<BIIIIII", self._alt[_COUNTERS], 0, 1, c["sessions"], c["puffs"], c["heater_on_s"],
                  c["charge_cycles"], c["holder_charges"], c["boots"])  # fmt: skip
        self._commit(_COUNTERS)
        self._faults()
        self._alerts()
        self._usage()

    # --- values ------------------------------------------------------------------------------
    def _write(self, k):
        self._ble.gatts_write(self._h[k], self._val[k])

    def _commit(self, k, n=-1):
        """The value packed into _alt[k] (its first n bytes): to the stack if
        it changed, and notified to the centrals subscribed to it."""
        a = self._alt[k]
        v = self._val[k]
        if a == v:
            return
        self._alt[k] = v
        self._val[k] = a
        data = a if n < 0 else memoryview(a)[:n]
        self._ble.gatts_write(self._h[k], data, self._ntf[k] == 1)  # type: ignore[arg-type]

    def _status(self):
        p = self.power
        h = self.heater
        flags = (
            p.docked
            | (not p.holder_low) << 1
            | (states.PREHEAT <= h.state <= states.END_WARNING) << 2
            | p.usb << 3
            | (p.usb_loop.charging() or p.hold_loop.charging()) << 4
            | self.settings["locked"] << 5
            | self.usage.limit_reached() << 6
            | self._pairing << 7
        )
        pack_into("<BBBBB", self._alt[_STATUS], 0, 1, flags, p.hold.soc() // 100, p.chg.soc() // 100,
                  self.app.device.kit)  # fmt: skip
        self._commit(_STATUS)

    def _heating(self, now_ms, changed):
        h = self.heater
        state = h.state
        elapsed = 0
        if states.PREHEAT <= state <= states.END_WARNING:
            elapsed = min(_SESSION_S, max(0, time.ticks_diff(now_ms, self.app.session_ms) // 1000))
        bucket = elapsed // _HEATING_NOTIFY_S
        if changed or bucket != self._bucket:
            self._hstate = state
            self._puffs = h.puffs.count
            self._bucket = bucket
            pack_into("<BBBBHHB", self._alt[_HEATING], 0, 1, state, min(self._puffs, 255), _PUFFS_MAX, elapsed,
                      _SESSION_S - elapsed if elapsed or state == states.PREHEAT else 0, h.end_reason)  # fmt: skip
            self._commit(_HEATING)
        elif elapsed:  # read between notifications: the second as it is, quietly
            a = self._val[_HEATING]
            pack_into("<HH", a, 4, elapsed, _SESSION_S - elapsed)
            self._ble.gatts_write(self._h[_HEATING], a)

    def _faults(self):
        log = self.app.fault_log
        a = self._alt[_FAULTS]
        n = min(log.count, _FAULT_MAX)
        pack_into("<BBHB", a, 0, 1, self.heater.fault, log.count & 0xFFFF, n)
        codes = log.codes
        size = len(codes)
        off = 5
        for j in range(log.count - n, log.count):
            i = j % size
            pack_into(self._entry_fmt, a, off, codes[i], log.details[i])
            off += 5
        end = len(a)
        while off < end:  # the rest zeroed: the buffers compare whole
            a[off] = 0
            off += 1
        self._commit(_FAULTS, off - 5 * (_FAULT_MAX - n))

    def _alerts(self):
        dc = self.heater.amb_dc
        c = self._amb_c
        if dc - c * 10 > 7 or c * 10 - dc > 7:  # 0.5 C rounding and 0.2 C hysteresis
            c = (dc + 5) // 10 if dc >= 0 else -((5 - dc) // 10)
            self._amb_c = c
        c = max(-128, min(127, c))
        pack_into("<BBb", self._alt[_ALERTS], 0, 1, (c < 0) | (c > 50) << 1, c)
        self._commit(_ALERTS)

    def _usage(self):
        u = self.usage
        s = self.settings
        share = s["sharing"]
        pack_into("<BBHBB", self._alt[_USAGE], 0, 1, min(255, u.sessions_24h()) if share else 0,
                  min(65535, u.puffs_24h()) if share else 0, s["limit"], share)  # fmt: skip
        self._commit(_USAGE)


def _uuid(t, n, custom):
    return bluetooth.UUID(t.custom_uuid(n) if custom else n)


def _flags(t, props, enc):
    f = props
    if enc:
        if props & t.READ:
            f |= t.READ_ENCRYPTED
        if props & (t.WRITE | t.WRITE_NO_RESPONSE):
            f |= t.WRITE_ENCRYPTED
    return f

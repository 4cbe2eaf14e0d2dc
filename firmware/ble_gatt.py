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
main-loop pass. tick() runs at the charger's ticks (4 Hz): what BLE
interrupts asked for (flash writes, reset, unpair, console events), and,
only while a central is connected, the values' change checks -- the
heating state and puffs at every tick, the rest once a second. Values are
packed into buffers allocated at boot and written to the stack (and
notified) only when they changed. On a connection every value is brought up
to date at once.

Security: a link is trusted once the firmware has accepted its bond (a new
one, inside the pairing window: the charger button's double click, 60 s,
the holder LED blinking fast, closed when a bond is stored) or recognised
one it keeps (bonds.py: the stack's LTK came from this store). Trust, not
encryption, opens the characteristics marked enc: until then their reads
are refused at _IRQ_GATTS_READ_REQUEST and their writes undone, both with
ATT 0x05 (the stack itself refuses them on an unencrypted link), and their
notifications go to trusted links only. A new bond is accepted only in the
window and only with LE Secure Connections (the record's `sc` flag); a bond
refused drops the link at once. NimBLE reports the encryption before or
after it stores the keys, depending on its version: either order ends the
same way. The stack's deletes of a peer's keys (before it pairs with it
again) only hide them until the new bond is accepted or the link is gone.

IRQ discipline: the handler (on the ESP32 it runs on the NimBLE host task,
with ~4 kB of stack, and an exception it lets out disables it for good)
catches every exception, keeps its calls shallow, allocates little, never
writes flash or JSON, and hands the rest to tick() through flags in a
bytearray and a ring of event codes.
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
_CLEAR_MS = const(30000)  # a registration clear waits this long for the holder's triple click
_CLEAR_REST_MS = const(30000)  # after a clear lapsed, a new one is refused this long
_PENDING_MS = const(1000)  # an encrypted link without an accepted bond is dropped after this
_HEATING_NOTIFY_S = const(10)
_PUFFS_MAX = const(14)  # heater_ctl.SESSION_PUFFS
_SESSION_S = const(360)  # heater_ctl.SESSION_MS

# registration dates (unix seconds UTC): the product's life, and the phone's clock
# (plain ints: past 2**30 they are not a 32-bit port's small ints, which const() needs)
LAUNCH_S = 1767225600  # 2026-01-01, the first day of sale of this hardware (A)
LIFE_S = 315360000  # 10 years of sale and use
CLOCK_TOL_S = 86400  # a phone's clock a day off (a zone, set by hand) still passes

_ATT_AUTHENTICATION = const(0x05)  # insufficient authentication: not a trusted link
_ATT_UNLIKELY = const(0x0E)
_ATT_VALUE = const(0x13)
_ATT_STATE = const(0x80)

# NimBLE's security record (struct ble_store_value_sec, esp-nimble host/ble_store.h,
# as laid out on the ESP32): ltk_present at byte 40, authenticated and sc bits at 80
_SEC_LTK = const(40)
_SEC_FLAGS = const(80)
_SEC_SC = const(0x02)
_SEC_OUR = const(1)  # sec_type of our keys for a peer (BLE_STORE_OBJ_TYPE_OUR_SEC)

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

# requests from interrupts to tick(): one byte each (a byte store is atomic where the
# handler runs on another task, as on the ESP32; a bit in a shared int would not be)
_R_SETTINGS = const(0)
_R_REGISTRATION = const(1)
_R_FIND = const(2)
_R_RESET = const(3)
_R_UNPAIR = const(4)
_R_CLEAR_FAULTS = const(5)
_R_BONDS = const(6)  # the bonds changed: to flash
_R_BONDED = const(7)  # a new bond: the window closes
_R_FORGET = const(8)  # sharing or the limit changed: usage keeps what they allow
_R_PROMPT = const(9)  # a registration clear armed: the holder prompts
_R_N = const(10)

# console events from interrupts: codes in a ring, words by tick()
_EVENTS = ("", "ble connect", "ble disconnect", "ble pairing refused", "ble bonded",
           "ble pairing refused legacy", "ble error irq")  # fmt: skip
_EV_CONNECT = const(1)
_EV_DISCONNECT = const(2)
_EV_REFUSED = const(3)
_EV_BONDED = const(4)
_EV_LEGACY = const(5)
_EV_ERROR = const(6)
_EVQ = const(16)

REG_FILE = "registration"
REG_DEFAULTS = {"registered": False, "date": 0, "clock": 0}  # clock: the latest phone time accepted
IDS_FILE = "ids"
IDS_DEFAULTS = {"holder": "", "charger": "", "box": ""}

_FAULT_MAX = const(8)


def date_ok(date, now, floor):
    """A registration's warranty start `date`, given with the phone's clock
    `now` (unix seconds): the clock within the product's life and not behind
    the latest one the kit accepted (`floor`) by more than CLOCK_TOL_S, and the
    date from the first day of sale to the clock's now, give or take the
    tolerance."""
    if now < LAUNCH_S or now > LAUNCH_S + LIFE_S or now < floor - CLOCK_TOL_S:
        return False
    return LAUNCH_S <= date <= now + CLOCK_TOL_S


def sc_record(value):
    """A security record with an LTK from LE Secure Connections pairing."""
    return len(value) > _SEC_FLAGS and value[_SEC_LTK] & 1 and value[_SEC_FLAGS] & _SEC_SC


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
    enc = bytearray(_N)  # 1: for trusted links only
    forms = {}
    entry_fmt = ""
    for k in range(_BATTERY, _N):
        c = t.CHARS[k]
        ntf[k] = 1 if c[2] & t.NOTIFY else 0
        enc[k] = 1 if c[3] else 0
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
    return tuple(svcs), sizes, ntf, enc, forms, entry_fmt, texts, t.NAME, t.custom_uuid(0)


class Ble:
    def __init__(self, app):
        self.app = app
        self.heater = app.heater
        self.power = app.power
        self.ind = app.device.ind
        self.usage = app.usage
        self.settings = app.settings
        self._req = bytearray(_R_N)  # requests from interrupts, served by tick()
        self._evq = bytearray(_EVQ)  # console event codes, a ring: interrupts write at _evw
        self._evw = 0
        self._evr = 0
        self._irq_error = 0  # the last event whose handling raised (0 none)
        self._conns = []
        self._trusted = []  # conns of accepted or recognised bonds
        self._pend = []  # encrypted conns without an accepted bond (yet)
        self._pend_ms = time.ticks_ms()
        self._acc = None  # the key of the bond accepted in the pairing going on
        self._acc_ms = time.ticks_ms()
        self._trust_next = False  # a bond accepted before its link's encryption update
        self._served = None  # the key whose LTK the stack just read (a bonded peer re-encrypting)
        self._refused = None  # the key of the last bond refused (one event a pairing)
        self._pairing = False
        self._pair_until = time.ticks_ms()
        self._clear_until = time.ticks_add(time.ticks_ms(), -_CLEAR_REST_MS)
        self._clearing = False
        self._find_req = 0
        self._usage_stale = False
        self._hstate = -1
        self._puffs = -1
        self._bucket = -1
        self._amb_c = 0
        # the table first, alone: its ~20 KB go before anything lasting is allocated,
        # so they leave no holes among the server's buffers
        svcs, sizes, self._ntf, self._enc, self._forms, self._entry_fmt, texts, name, uuid = _plan()
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
                if n > 20:  # the default; writes longer than the longest valid one (10 bytes) fit it
                    ble.gatts_set_buffer(self._h[k], n)
        ids = ids_for(ids_rec, ble.config("mac")[1])
        for k, text in enumerate(texts):
            ble.gatts_write(self._h[k], (text or "H%s-C%s" % (ids[0], ids[1])).encode())
        self._adv = adv_payload(name, uuid)
        self.upd = ble_update.Service(ble, app, self._h[_N], self._h[_N + 1], self.trusted)

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

    def _say(self, code):
        """A console event, from an interrupt: its code in the ring, sent by tick()."""
        w = self._evw
        if (w + 1) % _EVQ != self._evr:  # full: dropped
            self._evq[w] = code
            self._evw = (w + 1) % _EVQ

    def _irq(self, event, data):
        """Every BLE event. Shallow and short (see the module's doc); nothing
        it does may let an exception out, which would disable it for good."""
        try:
            if event == _IRQ_GATTS_READ_REQUEST:
                return self._on_read(data[0], data[1])
            if event == _IRQ_GATTS_WRITE:
                if data[1] >= self._h[_N]:  # the update service's (ble_update.py)
                    return self._update_write(data[0], data[1])
                code = self._on_write(data[0], data[1])
                if self._usage_stale:  # sharing or the limit changed: the value follows now
                    self._usage_stale = False
                    self._usage()
                return code
            if event == _IRQ_GET_SECRET:
                return self._get_secret(data[0], data[1], data[2])
            if event == _IRQ_SET_SECRET:
                return self._set_secret(data[0], data[1], data[2])
            if event == _IRQ_ENCRYPTION_UPDATE:
                self._on_encryption(data[0], data[1])
            elif event == _IRQ_CENTRAL_CONNECT:
                self._conns.append(data[0])
                self._say(_EV_CONNECT)
                now = time.ticks_ms()  # every value current for the phone's first reads
                self._heating(now, True)
                self._status()  # (called one by one, not through _refresh: a frame less deep)
                self._battery()
                self._counters()
                self._faults()
                self._alerts()
                self._usage()
            elif event == _IRQ_CENTRAL_DISCONNECT:
                self.upd.on_disconnect(data[0])
                self._on_disconnect(data[0])
            elif event == _IRQ_MTU_EXCHANGED:
                self.upd.on_mtu(data[0], data[1])
        except Exception:  # refuse, drop the untrusted, tell the console: never raise
            self._irq_error = event
            self._say(_EV_ERROR)
            return self._failed(event, data)
        return None

    def _failed(self, event, data):
        """What an event whose handling failed gets: nothing granted, the
        links not trusted dropped."""
        try:
            if event == _IRQ_GATTS_WRITE or event == _IRQ_GATTS_READ_REQUEST:
                if event == _IRQ_GATTS_WRITE:
                    k = self._index(data[1])
                    if k < _N and self._val[k] is not None:
                        self._ble.gatts_write(self._h[k], self._val[k])
                return _ATT_UNLIKELY
            if event == _IRQ_SET_SECRET or event == _IRQ_ENCRYPTION_UPDATE:
                for c in self._conns:
                    if c not in self._trusted:
                        self._ble.gap_disconnect(c)
        except Exception:  # already failing: the main loop drops what it must
            pass
        return False if event == _IRQ_SET_SECRET else None

    def _index(self, handle):
        k = _BATTERY
        h = self._h
        while k < _N and h[k] != handle:
            k += 1
        return k

    def _on_disconnect(self, conn):
        for lst in (self._conns, self._trusted, self._pend):
            if conn in lst:
                lst.remove(conn)
        self._served = None  # an LTK read for a link that failed to encrypt with it
        if not self._pend:
            self._bonds.resume()  # a new pairing that hid a bond died with its link
            self._acc = None
            self._trust_next = False
            self._refused = None
        self._say(_EV_DISCONNECT)
        self._ble.gap_advertise(_ADV_INTERVAL_US, self._adv)

    # --- trust -----------------------------------------------------------------------
    def _on_encryption(self, conn, encrypted):
        """_IRQ_ENCRYPTION_UPDATE: trusted if the LTK came from our store (a
        bonded peer re-encrypting) or the bond was just accepted; else it waits
        for the keys (NimBLE may report the encryption first), and tick()
        drops it if none are accepted."""
        served = self._served
        self._served = None
        if conn not in self._conns or conn in self._trusted:
            return
        if not encrypted:
            if conn in self._pend:
                self._pend.remove(conn)
            return
        if served is not None and self._bonds.has(served):
            self._trusted.append(conn)
        elif self._trust_next and time.ticks_diff(time.ticks_ms(), self._acc_ms) < _PENDING_MS:
            self._trust_next = False
            self._trusted.append(conn)
        elif conn not in self._pend:
            self._pend.append(conn)
            self._pend_ms = time.ticks_ms()

    def _get_secret(self, sec_type, index, key):
        if key is None:
            return self._bonds.get(sec_type, index, None)
        key = bytes(key)
        got = self._bonds.get(sec_type, 0, key)
        if got is not None and sec_type == _SEC_OUR:
            self._served = key  # the stack reads our LTK for a peer: it is encrypting with it
        return got

    def _set_secret(self, sec_type, key, value):
        """A record the stack stores (value None: deletes). A new one is
        accepted in the pairing window, with LE Secure Connections; the
        second record of an accepted pairing follows the first."""
        key = bytes(key)
        b = self._bonds
        if value is None:
            return b.hide(key)  # true once, then "none": the stack's delete loop ends
        value = bytes(value)
        if b.same(sec_type, key, value):
            return True
        now = time.ticks_ms()
        again = self._acc == key and time.ticks_diff(now, self._acc_ms) < _PENDING_MS
        if not sc_record(value):
            return self._refuse(key, _EV_LEGACY)
        if not (self._pairing or again) or not b.put(sec_type, key, value):
            return self._refuse(key, _EV_REFUSED)
        self._req[_R_BONDS] = 1
        if not again:
            self._acc = key
            self._acc_ms = now
            self._req[_R_BONDED] = 1
            self._say(_EV_BONDED)
            if self._pend:  # NimBLE reported the encryption first: that link is the pairing's
                for c in self._pend:
                    self._trusted.append(c)
                self._pend = []
            else:
                self._trust_next = True
        return True

    def _refuse(self, key, code):
        """A bond refused: nothing stored, and every link not trusted dropped now."""
        if key != self._refused:
            self._refused = key
            self._say(code)
        for c in self._conns:
            if c not in self._trusted:
                self._ble.gap_disconnect(c)
        return False

    # --- the pairing window (the charger button's double click) ----------------------
    def open_pairing(self, now_ms):
        self._pair_until = time.ticks_add(now_ms, _PAIRING_MS)
        if not self._pairing:
            self._pairing = True
            self.ind.pairing = True
            self.app.console.event("ble pairing open")
            self._status()

    def _close_pairing(self):
        if self._pairing:
            self._pairing = False
            self.ind.pairing = False
            self.app.console.event("ble pairing closed")
            self._status()

    # --- reads and writes ---------------------------------------------------------------
    def _on_read(self, conn, handle):
        """_IRQ_GATTS_READ_REQUEST: a protected value only for a trusted link
        (the update service's are all protected)."""
        k = self._index(handle)
        protected = handle >= self._h[_N] if k == _N else self._enc[k]
        if protected and conn not in self._trusted:
            return _ATT_AUTHENTICATION
        return 0

    def _update_write(self, conn, handle):
        """A write to the update service: its own, from a trusted link only
        (else undone, as the values here are)."""
        u = self.upd
        if conn in self._trusted:
            return u.write(conn, handle)
        if handle == u.ctl:
            self._ble.gatts_write(handle, u.val)  # type: ignore[arg-type]  # (a buffer: the stubs say bytes)
        return _ATT_AUTHENTICATION

    def trusted(self):
        """The trusted links now (the update service notifies them only)."""
        return self._trusted

    def _on_write(self, conn, handle):
        k = self._index(handle)
        if k == _N or k not in self._forms:
            return 0
        if self._enc[k] and conn not in self._trusted:
            if k != _CONTROL:  # (control keeps no value: nobody can read what was written)
                self._ble.gatts_write(handle, self._val[k])  # undone; `result` untouched
            return _ATT_AUTHENTICATION
        code, vals = check(self._forms[k], self._ble.gatts_read(handle))
        if not code:
            code = self._register(vals) if k == _REGISTRATION else self._apply(k, vals)
            if not code and k != _CONTROL:
                self._commit(k)  # the new value (packed by _apply), notified
        if k != _CONTROL:
            self._ble.gatts_write(handle, self._val[k])  # as it is now: unchanged if refused
        pack_into("<BB", self._alt[_RESULT], 0, k - _NN0, code)
        self._commit(_RESULT)
        return code

    def _apply(self, k, vals):
        """A valid write from a trusted link: the setting in RAM and its value
        packed (committed by the caller); the rest (flash, indications,
        derived values) at the next tick. An ATT code (0 ok)."""
        s = self.settings
        a = self._alt[k]
        if k == _HAPTICS:
            s["haptics"] = vals[1]
            s["intensity"] = vals[2]
            pack_into("<BBB", self._alt[_HAPTICS], 0, 1, vals[1], vals[2])
        elif k == _LOCK:
            s["locked"] = vals[0] == 1
            a[0] = vals[0]
        elif k == _LIMIT or k == _SHARING:
            if k == _LIMIT:
                s["limit"] = vals[0]
            else:
                s["sharing"] = vals[0] == 1
            a[0] = vals[0]
            self.usage.forget()  # RAM: what the new settings do not allow goes now
            self._usage_stale = True
            self._req[_R_FORGET] = 1
        elif k == _FIND:
            self._find_req = vals[0]
            a[0] = vals[0]
            self._req[_R_FIND] = 1
            return 0
        elif k == _CONTROL:
            self._req[(_R_RESET, _R_UNPAIR, _R_CLEAR_FAULTS)[vals[0] - 1]] = 1
            return 0
        self._req[_R_SETTINGS] = 1
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

    # --- ownership: the registration, cleared with the holder in hand -------------------
    def _register(self, vals):
        r = self._reg
        now = time.ticks_ms()
        if len(vals) == 4:  # registers: (v, 1, date, the phone's clock)
            if r["registered"]:
                return _ATT_STATE
            if not date_ok(vals[2], vals[3], r["clock"]):
                return _ATT_VALUE
            r["registered"] = True
            r["date"] = vals[2]
            r["clock"] = max(r["clock"], vals[3])
        else:  # asks to clear: armed once, for _CLEAR_MS; not again while armed or resting
            if not r["registered"] or time.ticks_diff(now, self._clear_until) < _CLEAR_REST_MS:
                return _ATT_STATE
            self._clearing = True
            self._clear_until = time.ticks_add(now, _CLEAR_MS)
            self._req[_R_PROMPT] = 1
        self._req[_R_REGISTRATION] = 1
        pack_into("<BBIB", self._alt[_REGISTRATION], 0, 1, r["registered"], r["date"], self._clearing)
        return 0

    def _registration(self):
        r = self._reg
        pack_into("<BBIB", self._alt[_REGISTRATION], 0, 1, r["registered"], r["date"], self._clearing)
        self._commit(_REGISTRATION)

    def confirm(self, now_ms):
        """The holder button's triple click: clears the registration if a
        clear is armed, and with it every bond (the previous owner's phones
        lose the kit), then tells with a vibration of its own."""
        if self._clearing and time.ticks_diff(self._clear_until, now_ms) > 0:
            _owner().clear(self, now_ms, REG_FILE, _CLEAR_REST_MS)
            _drop_owner()

    # --- the main loop's side ------------------------------------------------------------
    def tick(self, now_ms, slow):
        """At the charger's ticks (4 Hz; slow: once a second)."""
        self._serve(now_ms)
        if self._clearing and time.ticks_diff(self._clear_until, now_ms) <= 0:
            self._clearing = False  # lapsed
            self._registration()
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

    def _take(self, i):
        """Request i, taken (cleared before it is served: one arriving meanwhile is served next)."""
        if self._req[i]:
            self._req[i] = 0
            return True
        return False

    def _serve(self, now_ms):
        con = self.app.console
        while self._evr != self._evw:
            code = self._evq[self._evr]
            self._evr = (self._evr + 1) % _EVQ
            con.event(_EVENTS[code] + (" %d" % self._irq_error if code == _EV_ERROR else ""))
        req = self._req
        if not any(req):
            return
        if self._take(_R_BONDS) and not self._bonds.save():
            con.event("ble bonds not saved")
        if self._take(_R_BONDED):
            self._close_pairing()
        if self._take(_R_SETTINGS):
            settings.save(self.settings)
            self._settings_values()
            self._status()
        if self._take(_R_FORGET):
            self.usage.keep()
        if self._take(_R_REGISTRATION):
            store.save(REG_FILE, self._reg)
        if self._take(_R_PROMPT):
            _owner().prompt(self, now_ms)
            _drop_owner()
        if self._take(_R_FIND):
            self.ind.find(self._find_req * 1000, now_ms)
        if self._take(_R_CLEAR_FAULTS):
            self.app.fault_log.clear()
            self._faults()
        if self._take(_R_UNPAIR):
            _owner().unpair(self)
            _drop_owner()
            con.event("ble unpaired")
        if self._take(_R_RESET):
            self.app.reset()

    def _expire(self, now_ms):
        if self._pairing and time.ticks_diff(self._pair_until, now_ms) <= 0:
            self._close_pairing()
        if self._pend and time.ticks_diff(now_ms, self._pend_ms) >= _PENDING_MS:
            for c in self._pend:  # encrypted, and no bond came: not a link of this kit's
                self._ble.gap_disconnect(c)
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
        self._battery()
        self._counters()
        self._faults()
        self._alerts()
        self._usage()

    def _battery(self):
        self._alt[_BATTERY][0] = self.power.chg.soc() // 100
        self._commit(_BATTERY)

    def _counters(self):
        c = self.app.counters
        pack_into("<BIIIIII", self._alt[_COUNTERS], 0, 1, c["sessions"], c["puffs"], c["heater_on_s"],
                  c["charge_cycles"], c["holder_charges"], c["boots"])  # fmt: skip
        self._commit(_COUNTERS)

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
        h = self._h[k]
        if not self._enc[k]:  # the stack notifies every subscriber
            self._ble.gatts_write(h, data, self._ntf[k] == 1)  # type: ignore[arg-type]
            return
        self._ble.gatts_write(h, data)  # type: ignore[arg-type]
        if self._ntf[k]:  # protected: only trusted links hear of it (their CCCD is the stack's)
            for c in self._trusted:
                try:
                    self._ble.gatts_notify(c, h)
                except OSError:  # gone meanwhile
                    pass

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


def _owner():
    """ble_owner.py, for one of its rare acts (see there)."""
    import ble_owner

    return ble_owner


def _drop_owner():
    sys.modules.pop("ble_owner", None)


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

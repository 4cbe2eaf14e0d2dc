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

What the ESP32's stack does around the handler is modelled as its source
shows it (docs/ble_sim.md, "NimBLE as modelled"):

- the handler runs as on the NimBLE host task: a C stack limit of 4 kB for
  Python, and an uncaught exception disables it for good (_Task);
- the security manager's calls into the store: the repeat-pairing check at
  a pairing request, the persisting of the keys at the end of a pairing
  (after or before the encryption update, as the NimBLE version orders
  them), the store's overflow policy and its delete loops (_Sm).
"""

import os
import sys
from binascii import hexlify, unhexlify

import framing
import micropython
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

SEC_SIZE = const(88)  # sizeof(struct ble_store_value_sec), esp-nimble (host/ble_store.h) on the ESP32
_SEC_OUR = const(1)  # NimBLE's BLE_STORE_OBJ_TYPE_OUR_SEC (host/ble_store.h)
_SEC_PEER = const(2)  # BLE_STORE_OBJ_TYPE_PEER_SEC
_LOOP_MAX = const(16)  # NimBLE loops for ever where a store keeps answering the same: we stop here
IRQ_STACK = const(4096)  # bytes of C stack the handler has on the ESP32 (see _Task)

_CCCD = const(0x2902)
_WRITABLE = const(0x000C)  # FLAG_WRITE | FLAG_WRITE_NO_RESPONSE
_ATT_WRITE_NOT_PERMITTED = const(0x03)
_DEFAULT_BUF = const(20)  # MicroPython's default value buffer: longer writes are cut
_HEX_CHUNK = const(200)  # hex characters per frame (a payload is at most 255 bytes)
MAC = b"\x24\x0a\xc4\x00\xb1\xe5"  # public, an Espressif OUI

_BASE = b"\x00\x00\x10\x00\x80\x00\x00\x80\x5f\x9b\x34\xfb"  # Bluetooth base UUID, bytes 4..15


# While the IRQ handler runs, what the emulated API sends waits here (head,
# value or None) and goes out when it returns, in order: on the ESP32 those
# calls are C, a frame or two of stack, and the handler's 4 kB are its own.
_held = []
_holding = [False]
_depth = [0, 0]  # where the handler's frames begin (stack use); the deepest an API call found them


def _probe():
    """An emulated API call from inside the handler: how deep its frames are."""
    if _holding[0]:
        d = micropython.stack_use() - _depth[0]
        if d > _depth[1]:
            _depth[1] = d


def _out(text):
    if _holding[0]:
        _held.append((text, None))
        return
    sys.stdout.buffer.write(framing.text_frame(framing.T_BLE, text))


def _release():
    _holding[0] = False
    while _held:
        head, data = _held.pop(0)
        if data is None:
            _out(head)
        else:
            _send(head, data)


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


# --- the IRQ handler, as the ESP32 port runs it ----------------------------------------------
# extmod/modbluetooth.c (invoke_irq_handler, ..._run_protected): with
# MICROPY_PY_BLUETOOTH_USE_SYNC_EVENTS_WITH_INTERLOCK (ports/esp32/mpconfigport.h)
# the handler runs on the NimBLE host task, which NimBLE's own events call
# into, under the GIL and mp_sched_lock(). Its C stack limit is set by
# mp_thread_init_state(&ts, MICROPY_PY_BLUETOOTH_SYNC_EVENT_STACK_SIZE) =
# CONFIG_BT_NIMBLE_TASK_STACK_SIZE 6144 (ports/esp32/boards/sdkconfig.ble) - 1024,
# less MICROPY_STACK_CHECK_MARGIN 1024 (py/cstack.h mp_cstack_init_with_top):
# 4096 bytes, past which a call raises RuntimeError "maximum recursion depth
# exceeded". An exception the handler does not catch is printed ("Unhandled
# exception in IRQ callback handler") and the handler set to None: from then
# on every event goes unanswered, as if no handler had been given.
#
# Here the handler runs on a thread of its own (the unix port's _thread), its
# stack first filled by a padding recursion to within IRQ_STACK bytes of the
# thread's limit, so MicroPython's own stack check stops it where the board's
# would. Python calls cost about the same C stack on the unix port (x86-64,
# ~400 bytes a call) as on the ESP32 (about ten nested calls exhaust the 4 kB:
# github.com/antirez/freakwan/issues/21); the padding's granularity is one
# call, so the handler gets at most IRQ_STACK bytes, at least one call less.
# While it runs, the flash is seen through a guard that counts writes: the
# firmware's handler must leave flash to its main loop.
_THREAD_STACK = const(16384)  # the smallest the unix port gives a thread (PTHREAD_STACK_MIN)


class _FlashGuard:
    """The flash as the IRQ handler sees it (a VFS mounted over the working
    directory while it runs): every file opened for writing, removed or
    renamed is counted, then done."""

    MOUNT = "/bleirq"

    def __init__(self):
        self.root = ""
        self.writes = 0

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def chdir(self, path):
        pass

    def getcwd(self):
        return ""

    def _p(self, path):
        return self.root + "/" + path.lstrip("/")

    def open(self, path, mode):
        if "w" in mode or "a" in mode or "+" in mode:
            self.writes += 1
        return open(self._p(path), mode)

    def stat(self, path):
        return os.stat(self._p(path))

    def ilistdir(self, path):
        return os.ilistdir(self._p(path))

    def remove(self, path):
        self.writes += 1
        os.remove(self._p(path))

    def rename(self, a, b):
        self.writes += 1
        os.rename(self._p(a), self._p(b))


class _Task:
    """The NimBLE host task's side of an IRQ (see above): one thread for the
    process, which call(fn, event, data) hands the handler to; it runs it
    with at most `budget` bytes of C stack and returns (result, exception)."""

    def __init__(self):
        self.budget = IRQ_STACK
        self.limit = 0  # the deepest stack use the thread reached before its limit stopped it
        self.step = 0  # what one Python call costs there
        self.start = 0  # where the handler's frames begin: limit + step - budget
        self.flash = None
        self._job = None
        self._out = None
        self._ok = False
        import _thread

        self._go = _thread.allocate_lock()
        self._done = _thread.allocate_lock()
        self._go.acquire()
        self._done.acquire()
        for _ in range(_LOOP_MAX):
            old = _thread.stack_size(_THREAD_STACK)
            _thread.start_new_thread(self._serve, ())
            _thread.stack_size(old)
            self._done.acquire()  # until it has measured its stack
            if self._ok:
                return
        raise RuntimeError("no thread with the unix port's stack limit")

    def set_budget(self, budget):
        self.budget = budget
        self.start = self.limit + self.step - budget

    def _dig(self, cap):
        u = micropython.stack_use()
        if u > self.limit:
            self.step = u - self.limit
            self.limit = u
        if u > cap:
            return False
        return self._dig(cap)

    def _serve(self):
        # The unix port's thread_entry (py/modthread.c) reads its stack size
        # before mp_thread_create takes off THREAD_STACK_OVERFLOW_MARGIN (8192):
        # now and then a thread starts with a limit past its stack. Such a one
        # is found before it can overflow (no limit met by the margin) and ends.
        self.limit = self.step = 0
        try:
            self._ok = False
            self._dig(_THREAD_STACK - 8192 + 1024)
        except RuntimeError:  # the limit, where it belongs: measured
            self._ok = True
        if not self._ok:
            self._done.release()
            return
        self.set_budget(self.budget)
        self._done.release()
        while True:
            self._go.acquire()
            try:
                self._pad()
            except BaseException as e:  # the padding's own failure: the caller's to see
                self._out = (None, e)
            self._done.release()

    def _pad(self):
        if micropython.stack_use() < self.start:
            return self._pad()
        fn, event, data = self._job
        _depth[0] = micropython.stack_use()
        try:
            self._out = (fn(event, data), None)
        except BaseException as e:  # SimEnd and the rest: told apart by the caller
            self._out = (None, e)
        return None

    def call(self, fn, event, data):
        guard = self.flash
        cwd = None
        if guard is not None:
            cwd = os.getcwd()
            guard.root = cwd
            os.chdir(_FlashGuard.MOUNT)
        self._job = (fn, event, data)
        self._out = (None, None)
        try:
            self._go.release()
            self._done.acquire()
        finally:
            if cwd is not None:
                os.chdir(cwd)
        out = self._out
        self._job = self._out = None
        return out


_task = []  # the one _Task (made at the first IRQ), kept for the process
_settings = {"irq_stack": IRQ_STACK, "flash_guard": True}
_guard = []  # the one _FlashGuard, mounted once a process


def configure(irq_stack=None, flash_guard=None):
    """The IRQ model's parameters (a run configuration's "ble_irq_stack"):
    bytes of stack for the handler (0: the handler runs inline, unlimited),
    and whether flash writes from it are counted."""
    if irq_stack is not None:
        _settings["irq_stack"] = int(irq_stack)
    if flash_guard is not None:
        _settings["flash_guard"] = bool(flash_guard)


def _the_task():
    """The task for the next IRQ as configured; None: inline."""
    budget = _settings["irq_stack"]
    if budget <= 0:
        return None
    if not _task:
        _task.append(_Task())
    t = _task[0]
    if t.budget != budget:
        t.set_budget(budget)
    t.flash = None
    if _settings["flash_guard"]:
        if not _guard:
            g = _FlashGuard()
            os.mount(g, _FlashGuard.MOUNT)
            _guard.append(g)
        t.flash = _guard[0]
    return t


def flash_writes():
    """Files written, removed or renamed by the IRQ handler so far (this process)."""
    return _guard[0].writes if _guard else 0


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
        self.irqs = 0  # events the handler was called with
        self.disabled = 0  # 1: an uncaught exception disabled the handler
        self.stalled = ""  # where NimBLE would have looped for ever, if it did

    def _emit(self, text):
        if self._live:
            if _holding[0]:
                _held.append((text, None))
            else:
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
        _probe()
        return bytes(self._value(value_handle))

    def gatts_write(self, value_handle, data, send_update=False):
        _probe()
        v = self._value(value_handle)
        v[:] = data
        buf = self._bufs[value_handle]
        if len(v) > buf[0]:
            buf[0] = len(v)
        if send_update and self._conns and self._live:  # the host notifies the subscribed
            if _holding[0]:
                _held.append(("upd %d %d" % (K.now_us, value_handle), bytes(v)))
            else:
                _send("upd %d %d" % (K.now_us, value_handle), v)

    def gatts_notify(self, conn_handle, value_handle, data=None):
        self._notify("ntf", conn_handle, value_handle, data)

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        self._notify("ind", conn_handle, value_handle, data)

    def gatts_set_buffer(self, value_handle, length, append=False):
        self._value(value_handle)
        self._bufs[value_handle] = [length, bool(append)]

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        _probe()
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
        _probe()
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
        _probe()
        if conn not in self._conns:
            raise OSError(128)  # ENOTCONN
        v = self._value(handle) if data is None else data
        if self._live:
            if _holding[0]:
                _held.append(("%s %d %d %d" % (kind, K.now_us, conn, handle), bytes(v)))
            else:
                _send("%s %d %d %d" % (kind, K.now_us, conn, handle), v)

    def _call(self, event, data):
        """The handler, as the ESP32 port calls it (see _Task)."""
        h = self._irq
        if h is None:
            return None
        self.irqs += 1
        t = _the_task()
        if t is None or _holding[0]:  # no limit; or called back from inside the handler
            try:
                return h(event, data)
            except Exception as e:  # as modbluetooth.c: printed, the handler disabled
                self._disable(e)
                return None
        _holding[0] = True
        K.irq_depth += 1
        try:
            got, exc = t.call(h, event, data)
        finally:
            K.irq_depth -= 1
            _release()
        K.irq_done()  # the flash time it spent (sim/kernel.py)
        if exc is not None:
            if not isinstance(exc, Exception):
                raise exc  # the run ends (SimEnd): not the handler's failure
            self._disable(exc)
            return None
        return got

    def _disable(self, e):
        """extmod/modbluetooth.c invoke_irq_handler_run_protected: an uncaught
        exception is printed and the handler set to None, for good."""
        self._irq = None
        self.disabled = 1
        if self._live:
            sys.stdout.write("Unhandled exception in IRQ callback handler\n")
            sys.print_exception(e, sys.stdout)

    # --- NimBLE's security manager and store, around the handler ---------------------------
    # MicroPython's store callbacks (extmod/nimble/modbluetooth_nimble.c,
    # ble_secret_store_read/_write/_delete) are the handler's _IRQ_GET_SECRET /
    # _IRQ_SET_SECRET: a read returns its buffer (anything else, or a length
    # other than the record's, reads as none); a write or delete succeeds when
    # it returns true (a refused write is BLE_HS_ESTORE_CAP, a refused delete
    # BLE_HS_ENOENT). The key is the record's peer address (ble_addr_t: type,
    # then the address little-endian), taken from the record on a write.
    def _get(self, sec_type, index, key):
        got = self._call(_IRQ_GET_SECRET, (sec_type, index, memoryview(key) if key is not None else None))
        if not isinstance(got, (bytes, bytearray, memoryview)) or len(got) != SEC_SIZE:
            return None
        return bytes(got)

    def _set(self, sec_type, key, value):
        val = memoryview(value) if value is not None else None
        return bool(self._call(_IRQ_SET_SECRET, (sec_type, memoryview(key), val)))

    def _stall(self, where):
        """NimBLE would loop here for ever (its host task spinning, the BLE
        stack dead, the main loop starved): kept, and reported to the host."""
        if not self.stalled:
            self.stalled = where
        return False

    def _delete_all(self, sec_type, key):
        """ble_store_util_delete_all (host/src/ble_store_util.c): delete until
        the store answers BLE_HS_ENOENT."""
        for _ in range(_LOOP_MAX):
            if not self._set(sec_type, key, None):
                return True
        return self._stall("delete_all: the store deletes the same record again and again")

    def _delete_peer(self, key):
        """ble_store_util_delete_peer: our keys, the peer's (CCCDs never reach the handler)."""
        return self._delete_all(_SEC_OUR, key) and self._delete_all(_SEC_PEER, key)

    def _conn_of(self, key):
        """The connection with the peer of a store key, if any (the CONNECT
        event's address is big-endian, the key's little-endian)."""
        for conn, (addr_type, addr) in self._conns.items():
            if key[0] == addr_type and bytes(reversed(addr)) == bytes(key[1:7]):
                return conn
        return None

    def _unpair_oldest(self):
        """The overflow policy MicroPython installs (ble_hs_cfg.store_status_cb
        = ble_store_util_status_rr): ble_gap_unpair_oldest_peer. It iterates
        our keys (ble_store_iterate with BLE_ADDR_ANY, which the port's read
        callback passes on as a key of seven zero bytes: its assert is compiled
        out, ports/esp32/boards/sdkconfig.base), terminates the oldest peer's
        connection and deletes its keys. 0: one unpaired; 1: none to unpair."""
        got = self._get(_SEC_OUR, 0, bytes(7))
        if got is None:
            return 1
        key = got[:7]
        conn = self._conn_of(key)
        if conn is not None:
            self.gap_disconnect(conn)
        return 0 if self._delete_peer(key) else 1

    def _write_sec(self, sec_type, value):
        """ble_store_write: a refused write gives the overflow policy a turn,
        then is tried again; 0 stored, else NimBLE's error (ignored by the
        security manager: ble_sm_persist_keys does not look at it)."""
        key = value[:7]
        for _ in range(_LOOP_MAX):
            if self._set(sec_type, key, value):
                return 0
            if self._unpair_oldest():
                return 5  # BLE_HS_ENOENT from the overflow: the write fails
        self._stall("ble_store_write: the store refuses while unpairing frees nothing")
        return 5

    def _pair_request(self, conn, key):
        """ble_sm_pair_req_rx -> ble_sm_chk_repeat_pairing (host/src/ble_sm.c):
        a pairing request from a peer the store has a bond for raises
        BLE_GAP_EVENT_REPEAT_PAIRING, to which MicroPython (central_gap_event_cb)
        answers by deleting the peer's keys and BLE_GAP_REPEAT_PAIRING_RETRY; the
        check then runs again. True: the pairing goes on."""
        for _ in range(_LOOP_MAX):
            if self._get(_SEC_PEER, 0, key) is None:
                return True
            if not self._delete_peer(key):
                return False
        return self._stall("repeat pairing: the bond is still there after it was deleted")

    def _paired(self, conn, order, enc, auth, bonding, key_size, ours, peers):
        """The end of a pairing (ble_sm_process_result): the encryption update
        (ble_gap_enc_event -> _IRQ_ENCRYPTION_UPDATE with the connection's
        security state: encrypted, authenticated, bonded, key size) and, when
        bonding, the keys persisted (ble_sm_persist_keys: ours, then the
        peer's). NimBLE up to 1.9 and esp-nimble before 2024-08 (commit b10b1203)
        report the encryption first ("enc"); later ones persist first ("keys")."""
        out = []
        if order == "enc":
            self._call(_IRQ_ENCRYPTION_UPDATE, (conn, enc, auth, bonding, key_size))
        if bonding and conn in self._conns:
            out.append(self._write_sec(_SEC_OUR, ours))
            out.append(self._write_sec(_SEC_PEER, peers))
        if order != "enc" and conn in self._conns:
            self._call(_IRQ_ENCRYPTION_UPDATE, (conn, enc, auth, bonding, key_size))
        return out

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
        pairreq SEQ CONN KEYHEX             a pairing request (the repeat-pairing check)
                                            -> ok SEQ 1 (goes on) | ok SEQ 0 | ok SEQ stall
        paired SEQ CONN ORDER ENC AUTH BONDING KEY_SIZE HEX
                                            the end of a pairing: HEX is our record then the
                                            peer's (SEC_SIZE bytes each; staged with "more")
                                            -> ok SEQ W_OURS W_PEER (0 stored) [stall]
        stats SEQ                           -> ok SEQ irqs N disabled 0|1 flash_writes N stack B
                                            step S deepest D (bytes below the handler's entry
                                            at the deepest API call it made)
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
            "pairreq": self._pairreq,
            "paired": self._paired,
            "stats": self._stats,
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
        got = self.ble._get(int(w[0]), int(w[1]), key if key else None)
        _send("ok " + seq, got or b"")

    def _stalled(self, seq, words):
        b = self.ble
        if b.stalled:
            _out("ok %s %s stall %s" % (seq, words, b.stalled))
        else:
            _out("ok %s %s" % (seq, words))

    def _pairreq(self, seq, w):
        go = self.ble._pair_request(int(w[0]), _unhex(w[1]))
        self._stalled(seq, "1" if go else "0")

    def _paired(self, seq, w):
        conn = int(w[0])
        order = w[1]
        enc, auth, bonding, size = [int(x) for x in w[2:6]]
        recs = self._value(w[6])
        if len(recs) != 2 * SEC_SIZE:
            raise ValueError("%d bytes of records, not 2 x %d" % (len(recs), SEC_SIZE))
        out = self.ble._paired(conn, order, bool(enc), bool(auth), bool(bonding), size,
                               recs[:SEC_SIZE], recs[SEC_SIZE:])  # fmt: skip
        self._stalled(seq, " ".join(str(x) for x in out) or "-")

    def _stats(self, seq, w):
        b = self.ble
        t = _the_task()
        _out("ok %s irqs %d disabled %d flash_writes %d stack %d step %d deepest %d" % (
            seq, b.irqs, b.disabled, flash_writes(), t.budget if t else 0, t.step if t else 0,
            _depth[1]))  # fmt: skip

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

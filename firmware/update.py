"""A firmware update: a signed image received block by block into the
inactive slot, verified, then switched to (bootslot.py). One protocol for
its two transports, the console (update_cmd.py) and BLE (ble_update.py);
docs/update.md. Loaded only while an update runs.

The image (hil/update/image.py writes it):

    "HRI1" | manifest length u16 | signature length u16 | manifest | signature | files

The manifest (JSON) names the version, the lowest hardware revision, the
.mpy format (sys.implementation._mpy), the payload's size and SHA-256, and
every file with its size and SHA-256, in payload order. The signature is
RSASSA-PKCS1-v1_5 / SHA-256 over the manifest (sigcheck.py), by one of the
public keys in the record "upkeys" on flash.

The client sends the image from `offset` in blocks of `window` bytes; a
block is taken whole or not at all, in the main loop (service()): written
to the slot, hashed, and only then is `offset` advanced -- that is the
device's flow control, and where a transfer resumes after a disconnect
(begin() again with the same image id). Nothing is written before the
manifest's signature and checks pass; a refusal leaves the running
firmware, the boot record and every other record as they were.
"""

import gc
import json
import os
import sys
import time
from binascii import hexlify
from hashlib import sha256

import bootslot
import states
import store
from micropython import const
from version import FIRMWARE_VERSION

BLOCK = const(2048)  # taken whole: one buffer (a running firmware's heap has few larger holes)
MAX_HEADER = const(8192)
MAX_SIGNATURE = const(512)
TMP = "update.tmp"  # the manifest while it is checked (streamed: the heap holds no copy of it)
MAX_IMAGE = const(1048576)
MAX_FILES = const(64)
IDLE_TIMEOUT_MS = const(300000)  # a session nobody feeds for this long is dropped
_HEAD = const(8)  # magic and the two lengths

# states (the status's `state`)
IDLE = const(0)
RECEIVING = const(1)
PAUSED = const(2)  # a heating session runs: no block is taken
READY = const(3)  # received and verified: commit() switches to it
SWITCHING = const(4)
REFUSED = const(5)
STATE_NAMES = ("idle", "receiving", "paused", "ready", "switching", "refused")

# reason codes (the status's `code`), also those of a rollback (bootslot.py)
OK = const(0)
BUSY = const(1)  # a heating session runs
STATE = const(2)  # not in this state (no transfer, not ready, ...)
SIZE = const(3)  # the image's size is not the manifest's, or too large
HEADER = const(4)  # not an image, or its manifest is malformed
SIGNATURE = const(5)  # no trusted key verifies the signature
HARDWARE = const(6)  # for a later hardware revision
VERSION = const(7)  # older than the running firmware (anti-rollback)
FORMAT = const(8)  # compiled for another architecture or .mpy version
FILE_HASH = const(9)  # a file's SHA-256 is not the manifest's
IMAGE_HASH = const(10)  # the whole payload's SHA-256 is not the manifest's
FLASH = const(11)  # the flash refused a write, or reads back wrong
OFFSET = const(12)  # data not at the offset expected (ignored)
TRIAL = const(13)  # the running firmware is on trial: confirm it first
ABORTED = const(14)
TIMEOUT = const(15)  # nobody fed the transfer for IDLE_TIMEOUT_MS
NO_KEY = const(16)  # no public key is provisioned
MEMORY = const(17)  # not enough heap for the transfer now
CODE_NAMES = ("ok", "busy", "state", "size", "header", "signature", "hardware", "version", "format", "file_hash",
              "image_hash", "flash", "offset", "trial", "aborted", "timeout", "no_key", "memory")  # fmt: skip

KEYS = "upkeys"  # store record: {"keys": [modulus hex, ...]} (e = 65537)
HW = "hw"  # store record: {"rev": "A"}, the unit's hardware revision (factory)
HW_DEFAULT = "A"
_BOOTSTRAP = ("main.py", "bootslot.mpy", "boot_hold.mpy")  # never in an image

_session = []  # type: list  # the one session, while there is one


def rollback_name():
    """The last rollback's reason (since the last switch), or "none"."""
    return bootslot.WHY_NAMES[bootslot.why_code()] or "none"


# --- BLE: the main loop's side of ble_update.py --------------------------------------------
_BLE_STATUS = "<BBBBIIHHB"  # ble_update.STATUS_LEN bytes


def ble_service(glue, now_ms):
    op = glue.op
    if op is not None:
        glue.op = None
        try:
            _ble_serve(glue, op[0], op[1], now_ms)
        except MemoryError:
            gc.collect()
            ble_status(glue, MEMORY)
    s = current()
    if s is not None:
        s.service(now_ms)


def _ble_serve(glue, conn, d, now_ms):
    from struct import unpack_from

    s = open_session(glue.app)
    s.on_status = lambda: ble_status(glue)
    code = OK
    if d[0] == 1:  # begin
        total, image_id = unpack_from("<I8s", d, 1)
        s.chunk = min(244, glue.mtu.get(conn, 23) - 7)  # ble_update.DATA_MAX; 23: no exchange
        code = s.begin(total, image_id, now_ms)
        if not code:
            glue.conn = conn
    elif d[0] == 2:
        code = s.abort()
    elif d[0] == 3:
        code = s.can_commit()
        if not code:
            s.commit()  # resets
            return
    ble_status(glue, code)


def ble_status(glue, code=-1):
    """The status value, notified to the trusted links (code: a refused
    request's, in place of the session's)."""
    from struct import pack_into

    s = current()
    st, scode, off, total, w, chunk = s.status() if s is not None else (0, 0, 0, 0, 0, 0)
    why = bootslot.why_code()
    flags = (1 if bootslot.trial else 0) | (2 if why else 0)
    pack_into(_BLE_STATUS, glue.val, 0, 1, st, scode if code < 0 else code, flags, off, total, w, chunk, why)
    glue.publish()


def current():
    return _session[0] if _session else None


def open_session(app):
    """The session (a new one if there is none); the main loop serves it."""
    if not _session:
        _session.append(Session(app))
    s = _session[0]
    if app.upd is None:
        app.upd = s
    return s


def version_tuple(text):
    parts = text.split(".")
    if len(parts) != 3:
        raise ValueError("version " + text)
    return tuple(int(p) for p in parts)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _clean(path):
    """Empty a slot's folder (its manifest first): what an earlier transfer left."""
    try:
        names = os.listdir(path)
    except OSError:
        os.mkdir(path)
        return
    if bootslot.MANIFEST in names:
        os.remove(path + "/" + bootslot.MANIFEST)
    for n in names:
        if n != bootslot.MANIFEST:
            os.remove(path + "/" + n)


class Session:
    def __init__(self, app):
        self.app = app
        self.state = IDLE
        self.code = OK
        self.total = 0
        self.image_id = b""
        self.offset = 0  # bytes taken: written and hashed (the next block starts here)
        self.fill = 0  # bytes of the next block received so far
        self.buf = None
        self.chunk = 72  # data bytes per message (BLE: its MTU; the console: 72, base64 in a line of 120)
        self.on_status = None  # fn(), when the status changed (BLE notifies)
        self.version = ""
        self._hdr = None
        self._hdr_len = 0
        self._ml = 0
        self._mh = None
        self._man = None
        self._files = None
        self._fi = 0
        self._fpos = 0
        self._f = None
        self._fh = None
        self._whole = None
        self._whole_hex = ""
        self._slot = ""
        self._last_ms = 0

    # --- the protocol --------------------------------------------------------------
    def status(self):
        """(state, code, offset, total, window, chunk): window is what the
        client may send from offset now (0: wait)."""
        w = 0
        if self.state == RECEIVING:
            w = min(BLOCK, self.total - self.offset)
        return self.state, self.code, self.offset, self.total, w, self.chunk

    def status_text(self):
        st, code, off, total, w, chunk = self.status()
        return "state=%s code=%s offset=%d total=%d window=%d chunk=%d version=%s running=%s slot=%s trial=%d " \
               "rollback=%s" % (STATE_NAMES[st], CODE_NAMES[code], off, total, w, chunk, self.version or "-",
                                FIRMWARE_VERSION, bootslot.running or "-", bootslot.trial, rollback_name())  # fmt: skip

    def _busy(self):
        return self.app.heater.state not in (states.SLEEP, states.COOLING, states.FAULT)

    def begin(self, total, image_id, now_ms):
        """Start a transfer of `total` bytes, or resume it (the same image id
        and size) from its last block taken. A code; OK when accepted."""
        self._last_ms = now_ms
        if self.state in (RECEIVING, PAUSED, READY) and image_id == self.image_id and total == self.total:
            if self.state != READY:  # (ready: all of it was taken already)
                self.fill = 0  # the block in flight when the link dropped: sent again
                self.state = PAUSED if self._busy() else RECEIVING
            return OK
        if self.state in (RECEIVING, PAUSED, SWITCHING):
            return self._answer(STATE)
        if self._busy():
            return self._answer(BUSY)
        if bootslot.trial:
            return self._answer(TRIAL)
        if not 16 <= total <= MAX_IMAGE:
            return self._answer(SIZE)
        self._reset()
        gc.collect()
        try:
            self.buf = bytearray(BLOCK)
        except MemoryError:
            return self._answer(MEMORY)
        self.total = total
        self.image_id = bytes(image_id)
        self.state = RECEIVING
        self.code = OK
        return OK

    def _answer(self, code):
        """A refused request: the transfer (if any) goes on; the reply says why."""
        return code

    def feed(self, offset, data):
        """Bytes of the image at `offset` (an interrupt may call this: it
        only copies). A code: OFFSET if not where the block stands."""
        if self.state != RECEIVING:
            return STATE
        n = len(data)
        want = min(BLOCK, self.total - self.offset)
        if offset != self.offset + self.fill or self.fill + n > want:
            return OFFSET
        self.buf[self.fill : self.fill + n] = data
        self.fill += n
        return OK

    def abort(self):
        if self.state in (RECEIVING, PAUSED, READY, REFUSED):
            self._end(IDLE, ABORTED)
            self.app.console.event("update aborted")
            return OK
        return STATE

    def can_commit(self):
        if self.state != READY:
            return STATE
        if self._busy():
            return BUSY
        return OK

    def commit(self):
        """Switch to the verified image and reset into it (on trial). Never
        while heating; the heater is stopped for good before the switch."""
        code = self.can_commit()
        if code:
            return code
        app = self.app
        self.state = SWITCHING
        app.heater.cut_for_reset()  # no control step from here: the heater cannot start
        bootslot.switch(self._slot, self.version, FIRMWARE_VERSION)
        app.console.event("update switch %s %s" % (self._slot, self.version))
        self._notify()
        app.reset()
        return OK

    # --- the main loop's side ---------------------------------------------------------
    def service(self, now_ms):
        st = self.state
        if st == RECEIVING or st == PAUSED:
            busy = self._busy()
            if busy != (st == PAUSED):
                self.state = PAUSED if busy else RECEIVING
                self._notify()
            if not busy:
                want = min(BLOCK, self.total - self.offset)
                if self.fill == want:
                    self._last_ms = now_ms
                    self._take()
                    self._notify()
                    return
            if time.ticks_diff(now_ms, self._last_ms) > IDLE_TIMEOUT_MS:
                self._end(IDLE, TIMEOUT)
                self._notify()

    def _notify(self):
        if self.on_status is not None:
            self.on_status()

    def _take(self):
        """The block received: to the slot, hashed; the next one asked for."""
        n = self.fill
        mv = memoryview(self.buf)[:n]
        try:
            code = self._consume(mv)
        except OSError:
            code = FLASH
        except MemoryError:
            code = MEMORY
        if code:
            self._refuse(code)
            return
        self.offset += n
        self.fill = 0
        if self.offset == self.total:
            code = self._finish()
            if code:
                self._refuse(code)
                return
            self.state = READY
            self.app.console.event("update ready %s" % self.version)

    def _consume(self, mv):
        i = 0
        n = len(mv)
        at = self.offset
        while i < n:
            if self._man is None:  # the header
                k = self._header_bytes(mv[i:], at + i)
                i += k
                if self._hdr_len < 0:
                    return HEADER
                if self._hdr_len and at + i == self._hdr_len:
                    code = self._check_header()
                    if code:
                        return code
                continue
            k = self._file_bytes(mv[i:])
            if k < 0:
                return FILE_HASH
            i += k
        return OK

    def _header_bytes(self, mv, at):
        """Header bytes: the manifest streamed to TMP (and hashed), the
        signature kept; its lengths from its first 8 bytes."""
        if at < _HEAD:
            k = min(_HEAD - at, len(mv))
            if self._hdr is None:
                self._hdr = bytearray(_HEAD)
            self._hdr[at : at + k] = mv[:k]
            if at + k == _HEAD:
                h = self._hdr
                self._ml = h[4] | h[5] << 8
                sl = h[6] | h[7] << 8
                if bytes(h[:4]) != b"HRI1" or not 0 < self._ml + sl <= MAX_HEADER or sl > MAX_SIGNATURE:
                    self._hdr_len = -1
                    return k
                self._hdr_len = _HEAD + self._ml + sl
                self._hdr = bytearray(sl)
                self._mh = sha256()
                self._f = open(TMP, "wb")  # noqa: SIM115  written across blocks, closed when whole
            return k
        end_man = _HEAD + self._ml
        if at < end_man:
            k = min(end_man - at, len(mv))
            part = mv[:k]
            self._f.write(part)
            self._mh.update(part)
            if at + k == end_man:
                self._f.close()
                self._f = None
            return k
        k = min(self._hdr_len - at, len(mv))
        o = at - end_man
        self._hdr[o : o + k] = mv[:k]
        return k

    def _check_header(self):
        code = self._header_code()
        if code:
            _remove(TMP)
        return code

    def _header_code(self):
        sig = bytes(self._hdr)
        digest = self._mh.digest()
        self._hdr = None
        self._mh = None
        keys = store.load(KEYS, {"keys": []})[0]["keys"]
        if not keys:
            return NO_KEY
        from binascii import unhexlify

        import sigcheck

        ok = False
        for k in keys:
            try:
                if sigcheck.verify(unhexlify(k), sig, digest):
                    ok = True
                    break
            except (ValueError, TypeError):
                pass
        del sys.modules["sigcheck"]
        if not ok:
            return SIGNATURE
        gc.collect()
        try:
            with open(TMP) as f:
                man = json.load(f)
            files = man["files"]
            size = 0
            for f in files:
                name, fsize, fhash = f
                if ("/" in name or name in _BOOTSTRAP or name == bootslot.MANIFEST or not name
                        or fsize < 0 or len(fhash) != 64):  # fmt: skip
                    return HEADER
                size += fsize
            hw_min = man["hw_min"]
            new = version_tuple(man["version"])
            mpy = man["mpy"]
            whole = man["sha256"]
            if len(files) > MAX_FILES or man["format"] != 1:
                return HEADER
        except (ValueError, KeyError, TypeError):
            return HEADER
        if self._hdr_len + size != self.total or man["size"] != size:
            return SIZE
        if mpy != getattr(sys.implementation, "_mpy", 0):
            return FORMAT
        if hw_min > store.load(HW, {"rev": HW_DEFAULT})[0]["rev"]:
            return HARDWARE
        if new < version_tuple(FIRMWARE_VERSION):
            return VERSION
        # accepted: only now is the slot not running written
        self.version = man["version"]
        self._slot = "b" if bootslot.running == "a" else "a"
        _clean(bootslot.slot_dir(self._slot))
        self._man = True
        self._files = files
        self._whole = sha256()
        self._whole_hex = whole
        self._fi = 0
        self._fpos = 0
        self.app.console.event("update receiving %s into slot %s" % (self.version, self._slot))
        self._open_next()
        gc.collect()
        return OK

    def _open_next(self):
        """Open the next file to write (files of size 0 are written at once)."""
        while self._fi < len(self._files):
            name, size, _ = self._files[self._fi]
            self._f = open(bootslot.slot_dir(self._slot) + "/" + name, "wb")  # noqa: SIM115  across blocks
            self._fh = sha256()
            self._fpos = 0
            if size:
                return
            if not self._close_file():
                return

    def _close_file(self):
        want = self._files[self._fi][2]
        self._f.close()
        self._f = None
        got = hexlify(self._fh.digest()).decode()
        self._fh = None
        if got != want:
            return False
        self._fi += 1
        return True

    def _file_bytes(self, mv):
        """Bytes of the current file; -1 if it turns out wrong."""
        if self._f is None:
            return len(mv)  # past the last file: cannot happen (sizes add up)
        size = self._files[self._fi][1]
        k = min(size - self._fpos, len(mv))
        part = mv[:k]
        self._f.write(part)
        self._fh.update(part)
        self._whole.update(part)
        self._fpos += k
        if self._fpos == size:
            if not self._close_file():
                return -1
            self._open_next()
        return k

    def _finish(self):
        """All received: the payload's hash, then every file read back from flash."""
        if self._files is None:
            return SIZE  # cut short inside the header
        if self._fi != len(self._files) or hexlify(self._whole.digest()).decode() != self._whole_hex:
            return IMAGE_HASH
        self.buf = None
        gc.collect()
        d = bootslot.slot_dir(self._slot) + "/"
        buf = bytearray(512)
        for name, size, want in self._files:
            h = sha256()
            got = 0
            with open(d + name, "rb") as f:
                while True:
                    k = f.readinto(buf)
                    if not k:
                        break
                    h.update(memoryview(buf)[:k])
                    got += k
            if got != size or hexlify(h.digest()).decode() != want:
                return FLASH
        os.rename(TMP, d + bootslot.MANIFEST)  # the slot is complete
        return OK

    def _refuse(self, code):
        self._end(REFUSED, code)
        self.app.console.event("update refused %s" % CODE_NAMES[code])

    def _reset(self):
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
        self._f = None
        _remove(TMP)
        self._hdr = None
        self._hdr_len = 0
        self._man = None
        self._files = None
        self._fh = None
        self._whole = None
        self.buf = None
        self.offset = 0
        self.fill = 0
        self.version = ""

    def _end(self, state, code):
        self._reset()
        self.state = state
        self.code = code
        gc.collect()


"""The update service over BLE (docs/update.md; its characteristics are in
ble_table.py): the update protocol (update.py) on a control point and a data
characteristic, both for bonded, encrypted links only.

    control  write  1 BEGIN total u32, image id 8 bytes | 2 ABORT | 3 COMMIT | 4 STATUS
             read / notify: the status (below), notified at every change
    data     write without response: offset u32, then at most `chunk` bytes

    status   v u8, state u8, code u8, flags u8 (b0 on trial, b1 rolled back),
             offset u32, total u32, window u16, chunk u16, rollback u8

Flow control is the device's: the phone sends `window` bytes from `offset`
in writes of `chunk` bytes (the negotiated MTU less the ATT and offset
headers), then waits for a status with a new offset. A write at another
offset is dropped; after a disconnect, BEGIN with the same image resumes.

Interrupts only copy data and note a control write; the main loop
(service(), through app.upd) does the rest. update.py is loaded at the
first control write, not at boot.
"""

import gc
import sys

import bootslot
from micropython import const

_BEGIN = const(1)
_STATUS = const(4)
_ATT_LENGTH = const(0x0D)
_ATT_VALUE = const(0x13)
DATA_MAX = const(244)  # data bytes of the largest write (MTU 251 less 3 + 4)
STATUS_LEN = const(17)


class Service:
    """What stays loaded: the handles, the links' MTUs, and the interrupts'
    side. The main loop's side is update.ble_service(), loaded on demand."""

    def __init__(self, ble, app, ctl_h, data_h):
        self.ble = ble
        self.app = app
        self.ctl = ctl_h
        self.data = data_h
        self.mtu = {}  # conn -> MTU its exchange gave
        self.op = None  # (conn, value) of a control write, for the main loop
        self.conn = -1  # the link the transfer came from
        self.val = bytearray(STATUS_LEN)
        ble.gatts_set_buffer(data_h, 4 + DATA_MAX)
        self.val[0] = 1
        self.boot_state()

    def boot_state(self):
        """The trial and rollback flags, as the boot record has them (at boot,
        and when a trial is confirmed), notified."""
        why = bootslot.why_code()
        self.val[3] = (1 if bootslot.trial else 0) | (2 if why else 0)
        self.val[16] = why
        self.ble.gatts_write(self.ctl, self.val, True)

    # --- interrupts ----------------------------------------------------------------
    def on_mtu(self, conn, mtu):
        self.mtu[conn] = mtu

    def on_disconnect(self, conn):
        self.mtu.pop(conn, None)

    def write(self, conn, handle):
        """A write to one of the service's values; its ATT code."""
        d = self.ble.gatts_read(handle)
        if handle == self.data:
            m = sys.modules.get("update")
            s = m.current() if m is not None else None
            if s is not None and len(d) > 4 and conn == self.conn:
                s.feed(d[0] | d[1] << 8 | d[2] << 16 | d[3] << 24, memoryview(d)[4:])
            return 0
        op = d[0] if d else 0
        if not _BEGIN <= op <= _STATUS:
            return _ATT_VALUE
        if len(d) != (13 if op == _BEGIN else 1):
            return _ATT_LENGTH
        self.op = (conn, bytes(d))
        self.app.upd = self  # served by the main loop from now on
        return 0

    def service(self, now_ms):
        if "update" not in sys.modules:
            gc.collect()  # the update's code and buffers: room made first
        import update

        update.ble_service(self, now_ms)

# A small GATT program for the BLE bridge's tests (tests/ble/test_ble_bridge.py):
# MicroPython, run by the simulator on the emulated radio before the firmware
# boots (run configuration "ble_program", sim/run.py); it uses the `bluetooth`
# API as firmware does. Its bonds live on the device's flash (ble_bonds.json).
#
#   battery 0x180F: 0x2A19 level (read, notify; notified every second, +1 each time)
#   7e1a0000-...:  ...01 status  read notify        u8, the number of connects
#                  ...05 haptics read write (enc)   3 bytes: len != 3 -> 0x0D, v != 1 -> 0x13
#                  ...06 find    read write         u8: len != 1 -> 0x0D, > 120 -> 0x13
#                  ...0e control write (enc)        2: unpair (every bond removed, link dropped)
#                  ...f0 window  read write         u8 1: bonds may be stored (the pairing window)
#                  ...f1 blob    read               150 bytes 0, 1, 2, ...
#                  ...f2 echo    read indicate      each accepted find write, indicated
# A write to window also updates status (100 + connects) with send_update=True.
# Events (T_EVENT): "ble connect", "ble disconnect", "ble enc E A B", "ble bonded",
# "ble bond refused", "ble unpaired", "ble mtu N", "ble indicated STATUS".
# A bond refused (the window closed) drops the link: NimBLE keeps the link
# encrypted whatever the store answers.
import json
import sys

import bluetooth
import framing
import machine

_BASE = "-5c1d-4b8e-9f2a-6b3c4d5e6f70"
_R, _W, _N = 0x0002, 0x0008, 0x0010
_RE, _WE = 0x0200, 0x1000
_SVC = bluetooth.UUID("7e1a0000" + _BASE)
_BAT = (bluetooth.UUID(0x180F), ((bluetooth.UUID(0x2A19), _R | _N),))
_CUSTOM = (
    _SVC,
    (
        (bluetooth.UUID("7e1a0001" + _BASE), _R | _N),
        (bluetooth.UUID("7e1a0005" + _BASE), _R | _W | _RE | _WE),
        (bluetooth.UUID("7e1a0006" + _BASE), _R | _W),
        (bluetooth.UUID("7e1a000e" + _BASE), _W | _WE),
        (bluetooth.UUID("7e1a00f0" + _BASE), _R | _W),
        (bluetooth.UUID("7e1a00f1" + _BASE), _R),
        (bluetooth.UUID("7e1a00f2" + _BASE), _R | 0x0020),
    ),
)


def _event(text):
    sys.stdout.buffer.write(framing.text_frame(framing.T_EVENT, text))


def _load():
    try:
        with open("ble_bonds.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


class Program:
    def __init__(self):
        self.ble = bluetooth.BLE()
        self.ble.active(True)
        self.ble.config(gap_name="heatrig", mtu=185, bond=True, le_secure=True, mitm=False, io=3)
        self.ble.irq(self.irq)
        (
            (self.h_level,),
            (self.h_status, self.h_hapt, self.h_find, self.h_ctl, self.h_win, h_blob, self.h_echo),
        ) = self.ble.gatts_register_services((_BAT, _CUSTOM))
        self.ble.gatts_write(self.h_level, b"\x32")
        self.ble.gatts_write(self.h_status, b"\x00")
        self.ble.gatts_write(self.h_hapt, b"\x01\x0f\x50")
        self.ble.gatts_write(self.h_find, b"\x00")
        self.ble.gatts_write(self.h_win, b"\x01")
        self.ble.gatts_write(h_blob, bytes(range(150)))
        self.conns = set()
        self.connects = 0
        self.level = 50
        self.bonds = _load()
        self.advertise()
        self.timer = machine.Timer(7)
        self.timer.init(mode=machine.Timer.PERIODIC, period=1000, callback=self.tick)

    def advertise(self):
        name = b"heatrig"
        adv = bytes([2, 1, 6, len(name) + 1, 9]) + name
        uuid = bytes(reversed(bytes.fromhex(("7e1a0000" + _BASE).replace("-", ""))))
        adv += bytes([17, 7]) + uuid
        self.ble.gap_advertise(500000, adv)

    def tick(self, _t):
        self.level = self.level + 1 if self.level < 100 else 0
        self.ble.gatts_write(self.h_level, bytes([self.level]))
        for c in self.conns:
            self.ble.gatts_notify(c, self.h_level)

    def save(self):
        with open("ble_bonds.json", "w") as f:
            json.dump(self.bonds, f)

    def irq(self, event, data):
        if event == 1:
            self.conns.add(data[0])
            self.connects += 1
            self.ble.gatts_write(self.h_status, bytes([self.connects]))
            _event("ble connect")
        elif event == 2:
            self.conns.discard(data[0])
            _event("ble disconnect")
            self.advertise()
        elif event == 3:
            return self.write(data[0], data[1])
        elif event == 4:
            return 0
        elif event == 20:
            _event(f"ble indicated {data[2]}")
        elif event == 21:
            _event(f"ble mtu {data[1]}")
        elif event == 28:
            conn, enc, auth, bonded, _size = data
            _event(f"ble enc {int(enc)} {int(auth)} {int(bonded)}")
            if enc and not bonded:
                self.ble.gap_disconnect(conn)
        elif event == 29:
            sec_type, index, key = data
            if key is None:
                items = sorted(v for k, v in self.bonds.items() if k[0] == str(sec_type))
                return bytes.fromhex(items[index]) if index < len(items) else None
            v = self.bonds.get(f"{sec_type}:{bytes(key).hex()}")
            return bytes.fromhex(v) if v else None
        elif event == 30:
            sec_type, key, value = data
            k = f"{sec_type}:{bytes(key).hex()}"
            if value is None:
                self.bonds.pop(k, None)
                self.save()
                return True
            if self.ble.gatts_read(self.h_win) != b"\x01":
                _event("ble bond refused")
                for c in self.conns:  # NimBLE goes on with the keys it has: drop the link
                    self.ble.gap_disconnect(c)
                return False
            self.bonds[k] = bytes(value).hex()
            self.save()
            _event("ble bonded")
            return True
        return None

    def write(self, conn, handle):
        v = self.ble.gatts_read(handle)
        if handle == self.h_hapt:
            if len(v) != 3:
                return 0x0D
            if v[0] != 1:
                return 0x13
        elif handle == self.h_find:
            if len(v) != 1:
                return 0x0D
            if v[0] > 120:
                return 0x13
            self.ble.gatts_indicate(conn, self.h_echo, v)
        elif handle == self.h_win:
            self.ble.gatts_write(self.h_status, bytes([100 + self.connects]), True)
        elif handle == self.h_ctl:
            if len(v) != 1:
                return 0x0D
            if v[0] != 2:
                return 0x13
            self.bonds = {}
            self.save()
            _event("ble unpaired")
            self.ble.gap_disconnect(conn)
        return 0


Program()

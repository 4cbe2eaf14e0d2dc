"""The device's flash as a MicroPython VFS over a host directory, with power
cuts.

Mounted at /flash and made the working directory when a scenario arms a cut,
so the firmware's own open() reaches it exactly as it reaches LittleFS on the
ESP32: no firmware change, no builtin replaced. Only what the firmware's
store and the update use is there (open, read, readinto, write, close; the
folder operations, which LittleFS commits atomically: a power cut happens
before or after one, and only a file's bytes are counted towards a cut).

arm(n) cuts the power once n more bytes have been written through it: the
write in flight stops there, the byte after them torn (half-programmed: some
bits of the new value, some of the erased state), and SimEnd("power_cut")
leaves the firmware; n = the write's length cuts just after its last byte.
Until the next boot (a new process, sim/reboot.py) the flash is dead: no
`finally` or `with` can finish the write afterwards.
"""

import os

from sim.kernel import SimEnd

MOUNT = "/flash"


class _File:
    def __init__(self, fs, f):
        self._fs = fs
        self._f = f

    def write(self, b):
        fs = self._fs
        if fs.dead:
            raise SimEnd("power_cut")
        b = memoryview(b)  # bytes of a str too
        n = len(b)
        left = fs.cut_after
        if left < 0 or n < left:
            if left > 0:
                fs.cut_after = left - n
            return self._f.write(b)
        # the power fails in this write: `left` bytes reach the flash intact
        if left:
            self._f.write(b[:left])
        if left < n:
            self._f.write(bytes((b[left] | 0xF0,)))  # torn: programming only clears bits
        self._f.close()  # what reached the flash stays; the host's file is released
        fs.dead = True  # until the next boot (a new process): nothing can finish the write
        fs.cut_after = -1
        raise SimEnd("power_cut")

    def read(self, n=-1):
        return self._f.read(n)

    def readinto(self, buf):
        return self._f.readinto(buf)

    def close(self):
        if not self._fs.dead:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Flash:
    """A VFS object (the mount protocol of MicroPython's os.mount)."""

    def __init__(self, root):
        self._v = os.VfsPosix(root)
        self.cut_after = -1  # bytes written intact before the power fails; -1: never
        self.dead = False

    def arm(self, after_bytes):
        self.cut_after = after_bytes

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        if self.dead:
            raise SimEnd("power_cut")
        f = self._v.open(path, mode)
        if "w" not in mode and "a" not in mode and "+" not in mode:
            return f  # a read: the file itself, a stream (imports and json.load need one)
        return _File(self, f)

    def _alive(self):
        if self.dead:
            raise SimEnd("power_cut")
        return self._v

    def chdir(self, path):
        self._v.chdir(path)

    def ilistdir(self, path):
        return self._alive().ilistdir(path)

    def mkdir(self, path):
        self._alive().mkdir(path)

    def remove(self, path):
        self._alive().remove(path)

    def rmdir(self, path):
        self._alive().rmdir(path)

    def rename(self, old, new):
        self._alive().rename(old, new)

    def stat(self, path):
        return self._alive().stat(path)

    def statvfs(self, path):
        return self._alive().statvfs(path)

    def getcwd(self):
        return self._v.getcwd()


def mount(root):
    fs = Flash(root)
    os.mount(fs, MOUNT)
    os.chdir(MOUNT)
    return fs

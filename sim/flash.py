"""The device's flash as a MicroPython VFS over a host directory, with power
cuts.

Mounted at /flash and made the working directory before the firmware boots,
so the firmware's own open(), os.rename() and friends reach it exactly as
they reach LittleFS on the ESP32: no firmware change, no builtin replaced.

arm(n) cuts the power once n more bytes have been written through it: the
write in flight stops there, the byte after them torn (half-programmed: some
bits of the new value, some of the erased state), and SimEnd("power_cut")
leaves the firmware; n = the write's length cuts just after its last byte. Until the next boot the flash is dead: every operation raises
again, so no `finally` or `with` can finish the write afterwards.
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
        fs.check()
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
        fs.power_fail()

    def read(self, n=-1):
        self._fs.check()
        return self._f.read(n)

    def readinto(self, buf):
        self._fs.check()
        return self._f.readinto(buf)

    def readline(self):
        self._fs.check()
        return self._f.readline()

    def flush(self):
        self._fs.check()

    def close(self):
        if not self._fs.dead:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Flash:
    """A VFS object (mount protocol of MicroPython's os.mount)."""

    def __init__(self, root):
        self._v = os.VfsPosix(root)
        self.cut_after = -1  # bytes written intact before the power fails; -1: never
        self.dead = False

    def arm(self, after_bytes):
        self.cut_after = after_bytes

    def power_fail(self):
        self.dead = True
        self.cut_after = -1
        raise SimEnd("power_cut")

    def check(self):
        if self.dead:
            raise SimEnd("power_cut")

    def revive(self):
        """Power is back: the next boot sees what reached the flash."""
        self.dead = False

    # --- VFS protocol ------------------------------------------------------
    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        self.check()
        return _File(self, self._v.open(path, mode))

    def stat(self, path):
        self.check()
        return self._v.stat(path)

    def ilistdir(self, path):
        self.check()
        return self._v.ilistdir(path)

    def rename(self, a, b):
        self.check()
        self._v.rename(a, b)

    def remove(self, path):
        self.check()
        self._v.remove(path)

    def mkdir(self, path):
        self.check()
        self._v.mkdir(path)

    def rmdir(self, path):
        self.check()
        self._v.rmdir(path)

    def chdir(self, path):
        self._v.chdir(path)

    def getcwd(self):
        return self._v.getcwd()

    def statvfs(self, path):
        return self._v.statvfs(path)


def mount(root):
    fs = Flash(root)
    os.mount(fs, MOUNT)
    os.chdir(MOUNT)
    return fs

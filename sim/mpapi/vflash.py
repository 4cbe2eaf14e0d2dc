"""The device's flash as a MicroPython VFS over a host directory: the time a
write takes, and power cuts.

Mounted at /flash and made the working directory (sim/run.py), so the
firmware's own open() reaches it exactly as it reaches LittleFS on the
ESP32: no firmware change, no builtin replaced. Only what the firmware's
store and the update use is there (open, read, readinto, write, close; the
folder operations, which LittleFS commits atomically: a power cut happens
before or after one, and only a file's bytes are counted towards a cut).

Time. On the ESP32 a flash program or erase runs with the caches off: the
calling task is in C throughout, and interrupts not in IRAM (the timers'
among them) wait for it to end (ESP-IDF spi_flash). MicroPython's soft
timers therefore run late by the whole operation (sim/kernel.py: stall).
What the firmware's small records cost, modelled on LittleFS as MicroPython
configures it (extmod/vfs_lfs.c: read and prog size 32, so a 128-byte cache;
a file up to that size lives inline in its directory's metadata log):

- closing a file written: one metadata commit (a page program); a file over
  INLINE_MAX bytes also takes a fresh block: a sector erase and its pages;
- the metadata log fills; when a block is full, LittleFS compacts it into
  its pair: a sector erase and the live metadata programmed again;
- removing a file: one metadata commit. Reads cost nothing here.

Page program and sector erase times come from the board's parameters
(flash_prog_us, flash_erase_us: sim/models/params.py, docs/reference.md).

Power cuts. arm(n) cuts the power once n more bytes have been written
through it: the write in flight stops there, the byte after them torn
(half-programmed: some bits of the new value, some of the erased state), and
SimEnd("power_cut") leaves the firmware; n = the write's length cuts just
after its last byte. Until the next boot (a new process, sim/reboot.py) the
flash is dead: no `finally` or `with` can finish the write afterwards.
"""

import io
import os

from sim.kernel import K, SimEnd

MOUNT = "/flash"
INLINE_MAX = 128  # LittleFS's cache with MicroPython's prog size: larger files get a block
BLOCK = 4096  # a sector: LittleFS's block on the ESP32's flash
PAGE = 256
_COMMIT = 32  # a commit's tags and CRC in the metadata log
_ENTRY = 40  # a file's live metadata (name, struct), compacted


class _File(io.IOBase):
    """A file on the flash; an IOBase, so that imports can read modules from
    it (the virtual board keeps its .mpy files there)."""

    def __init__(self, fs, f, writing):
        self._fs = fs
        self._f = f
        self._n = 0 if writing else -1  # bytes written; -1: opened for reading

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
            self._n += n
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

    def ioctl(self, op, arg):
        if op == 4:  # MP_STREAM_CLOSE
            self.close()
        return 0

    def close(self):
        fs = self._fs
        if fs.dead or self._f is None:
            return
        self._f.close()
        self._f = None
        if self._n >= 0:
            fs.committed(self._n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Flash:
    """A VFS object (the mount protocol of MicroPython's os.mount)."""

    def __init__(self, root, prog_us=0, erase_us=0):
        self._root = root.rstrip("/")
        self._cwd = "/"
        self.prog_us = prog_us
        self.erase_us = erase_us
        self.cut_after = -1  # bytes written intact before the power fails; -1: never
        self.dead = False
        self._log = 0  # bytes in the metadata block being appended to
        self.files = len(os.listdir(self._root))  # live files (the compaction's size)
        self.busy_us = 0  # flash time so far, and the longest single operation
        self.busy_max_us = 0

    def arm(self, after_bytes):
        self.cut_after = after_bytes

    # --- time ---------------------------------------------------------------------
    def committed(self, n):
        """A file of n bytes written and closed: LittleFS's cost of it, spent."""
        us = self.prog_us  # the metadata commit
        if n > INLINE_MAX:
            us += self.erase_us * ((n + BLOCK - 1) // BLOCK) + self.prog_us * ((n + PAGE - 1) // PAGE)
            n = 0  # only its reference in the log
        us += self._append(n + _COMMIT)
        self._spend(us)

    def _append(self, n):
        """Metadata appended; when the block is full, the compaction's cost."""
        self._log += n
        if self._log < BLOCK:
            return 0
        live = self.files * _ENTRY + INLINE_MAX
        self._log = live
        return self.erase_us + self.prog_us * ((live + PAGE - 1) // PAGE)

    def _spend(self, us):
        if us <= 0:
            return
        self.busy_us += us
        if us > self.busy_max_us:
            self.busy_max_us = us
        K.stall(us)

    # --- the VFS protocol ----------------------------------------------------------
    def host_path(self, path):
        """The host's path of a path on the flash."""
        return self._real(path)

    def _real(self, path):
        if not path.startswith("/"):
            path = self._cwd.rstrip("/") + "/" + path
        return self._root + path

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        if self.dead:
            raise SimEnd("power_cut")
        real = self._real(path)
        if "w" not in mode and "a" not in mode and "+" not in mode:
            return open(real, mode)  # a read: the host's file itself, a stream (imports, json.load)
        try:
            os.stat(real)
        except OSError:
            self.files += 1
        return _File(self, open(real, mode), True)

    def _alive(self, path):
        """The host path of a folder operation's argument; none once the power is off."""
        if self.dead:
            raise SimEnd("power_cut")
        return self._real(path)

    def remove(self, path):
        os.remove(self._alive(path))
        self.files -= 1
        self._spend(self.prog_us + self._append(_COMMIT))

    def rename(self, old, new):
        real_new = self._alive(new)
        try:
            os.stat(real_new)
            self.files -= 1  # the one replaced
        except OSError:
            pass
        os.rename(self._real(old), real_new)
        self._spend(self.prog_us + self._append(_COMMIT))

    def stat(self, path):
        return os.stat(self._alive(path))

    def ilistdir(self, path):
        return os.ilistdir(self._alive(path))

    def mkdir(self, path):
        os.mkdir(self._alive(path))
        self._spend(self.prog_us + self._append(_COMMIT))

    def rmdir(self, path):
        os.rmdir(self._alive(path))
        self._spend(self.prog_us + self._append(_COMMIT))

    def chdir(self, path):
        self._cwd = path if path.startswith("/") else self._cwd.rstrip("/") + "/" + path

    def getcwd(self):
        return self._cwd

    def statvfs(self, path):
        return os.statvfs(self._root)


def mount(root, prog_us=0, erase_us=0):
    fs = Flash(root, prog_us, erase_us)
    os.mount(fs, MOUNT)
    os.chdir(MOUNT)
    return fs

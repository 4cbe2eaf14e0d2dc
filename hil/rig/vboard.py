"""A virtual board for CI: the MicroPython unix port behind a pseudo-terminal,
its working directory as the board's flash.

pyserial and mpremote see its port (/dev/pts/N) as they would see an ESP32's
USB serial port, so the rig deploys to it and runs tests through the very
serial path it uses for a board. Two pty pairs and a relay thread (no socat):

    rig --pyserial--> host pty  <-relay->  device pty --stdio--> micropython

Like a board, it boots: it runs boot.py and main.py from its flash if they
are there, then the REPL. When the process exits (a machine.reset() or a
soft reset in the unix port ends it) the relay starts it again, as a board
resets; the host side of the link stays, as a USB-UART bridge does.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import subprocess
import threading
import tty
from pathlib import Path

from hil.simulator import toolchain

# The board holds the REPL, the plant and the firmware; a run there sets aside
# all but the firmware's budget (runner.ESP32_HEAP: the ESP32's in the 64-bit
# unix port's object sizes; sim/run.py), as the simulator does.
HEAP = "512K"  # the firmware's 156K; the simulator's modules (the BLE emulation's), the REPL
MAX_BUFFERED = 1 << 24  # held for a host that does not read; more is dropped, as by a UART

# The boot ROM of the virtual board: sys.path as on an ESP32, then boot.py and
# main.py as pyexec_file runs them. A reset requested on the way ends the
# process (a SystemExit would not: -i goes on to the REPL), and the relay
# boots it again.
BOOT = """\
import sys, os
sys.path[:] = ['', '.frozen', 'lib']
for _f in ('boot.py', 'main.py'):
    try:
        os.stat(_f)
    except OSError:
        continue
    try:
        exec(open(_f).read(), {'__name__': '__main__'})
    except SystemExit:
        raise
    except BaseException as _e:
        if getattr(_e, 'reason', None) in ('machine_reset', 'watchdog_reset'):
            os.system('kill $PPID')
        sys.print_exception(_e)
del _f
"""


class VirtualBoard:
    """Start with `with VirtualBoard(flash) as vb:`; vb.port is the serial port."""

    def __init__(self, flash: Path, heap: str = HEAP):
        self.flash = flash
        self.heap = heap
        self.boots = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dev_fd = -1
        self._host_fd = -1
        self._host_slave_fd = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._exe = ""  # the unix port, found at start
        self._boot_script: Path | None = None  # the boot ROM, written next to the flash at start
        self.port = ""

    def __enter__(self) -> VirtualBoard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        self.flash.mkdir(parents=True, exist_ok=True)
        self._boot_script = self.flash.parent / f".{self.flash.name}-rom.py"
        self._argv, self._env = toolchain.micropython_command(
            ["-i", str(self._boot_script)], heap=self.heap
        )
        self._boot_script.write_text(BOOT)
        self._host_fd, self._host_slave_fd = pty.openpty()
        tty.setraw(self._host_slave_fd)  # no echo, no line discipline until pyserial opens it
        self.port = os.ttyname(self._host_slave_fd)
        self._boot()
        self._thread = threading.Thread(target=self._relay, name="vboard-relay", daemon=True)
        self._thread.start()
        return self.port

    def _boot(self) -> None:
        dev_fd, dev_slave = pty.openpty()
        tty.setraw(dev_slave)  # binary frames pass untouched: no echo, no CR/LF mapping
        self._proc = subprocess.Popen(
            self._argv,
            cwd=self.flash,
            env=self._env,
            stdin=dev_slave,
            stdout=dev_slave,
            stderr=dev_slave,
            close_fds=True,
        )
        os.close(dev_slave)
        os.set_blocking(dev_fd, False)
        self._dev_fd = dev_fd
        self.boots += 1

    def _relay(self) -> None:
        """Copy both ways without ever blocking on one side: a side that does
        not read (the rig busy writing, say) only fills its buffer."""
        to_dev = bytearray()
        to_host = bytearray()
        os.set_blocking(self._host_fd, False)
        while not self._stop.is_set():
            dev = self._dev_fd
            rlist = [self._host_fd, dev]
            wlist = ([dev] if to_dev else []) + ([self._host_fd] if to_host else [])
            readable, writable, _ = select.select(rlist, wlist, [], 0.1)
            if self._host_fd in readable:
                with contextlib.suppress(BlockingIOError):
                    to_dev += os.read(self._host_fd, 1 << 16)
            if dev in readable:
                try:
                    data = os.read(dev, 1 << 16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # EIO: the process has gone
                    data = b""
                if not data:
                    to_dev.clear()  # a resetting board drops what it was sent
                    self._reboot()
                    continue
                if len(to_host) < MAX_BUFFERED:
                    to_host += data
            if to_host and self._host_fd in writable:
                with contextlib.suppress(BlockingIOError):
                    del to_host[: os.write(self._host_fd, to_host)]
            if to_dev and dev in writable:
                with contextlib.suppress(BlockingIOError):
                    del to_dev[: os.write(dev, to_dev)]

    def _reboot(self) -> None:
        if self._proc is not None:
            self._proc.wait()
        os.close(self._dev_fd)
        self._dev_fd = -1
        if not self._stop.is_set():
            self._boot()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for fd in (self._dev_fd, self._host_fd, self._host_slave_fd):
            if fd >= 0:
                os.close(fd)
        self._dev_fd = self._host_fd = self._host_slave_fd = -1
        if self._boot_script is not None:
            self._boot_script.unlink(missing_ok=True)

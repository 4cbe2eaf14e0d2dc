"""Byte pipes to a device under test: one small interface, one class per kind
of link. The device-under-test API (hil/rig/dut.py) never knows which it has.

- SubprocessTransport: the MicroPython unix port as a child process, its
  stdin and stdout as the link (the simulator);
- SerialTransport: pyserial, for a board on a USB serial port or for the
  virtual board's pty (hil/rig/vboard.py).
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import serial

from hil.rig import urlhandler

urlhandler.install()  # rfc2217:// ports as the rig needs them


class LinkClosed(ConnectionError):
    """The other end has gone: the process exited, the port disappeared."""


class Transport(ABC):
    """A bidirectional byte stream to a device."""

    name: str

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def read(self, timeout_s: float) -> bytes:
        """What arrives within timeout_s (b"" if nothing); LinkClosed at the end."""

    @abstractmethod
    def close(self) -> None: ...


class SubprocessTransport(Transport):
    """A child process; its stderr joins stdout (MicroPython prints tracebacks
    on stdout anyway), so everything it says lands in one ordered stream."""

    def __init__(self, argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None):
        self.name = f"process {Path(argv[0]).name}"
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin
        self._out_fd = self.proc.stdout.fileno()
        self._eof = False

    def write(self, data: bytes) -> None:
        try:
            self._in.write(data)
        except (BrokenPipeError, ValueError, OSError):
            raise LinkClosed(f"{self.name} exited (code {self.proc.poll()})") from None

    def read(self, timeout_s: float) -> bytes:
        if self._eof:
            raise LinkClosed(f"{self.name} exited (code {self.proc.wait()})")
        ready, _, _ = select.select([self._out_fd], [], [], max(0.0, timeout_s))
        if not ready:
            return b""
        data = os.read(self._out_fd, 1 << 16)
        if not data:
            self._eof = True
            raise LinkClosed(f"{self.name} exited (code {self.proc.wait()})")
        return data

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._in.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class SerialTransport(Transport):
    """A serial port (a board, or a pty) through pyserial."""

    def __init__(self, port: serial.Serial):
        self.port = port
        self.name = f"serial {port.port}"

    @classmethod
    def open(cls, path: str, baud: int) -> SerialTransport:
        return cls(serial.serial_for_url(path, baudrate=baud, timeout=0))

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as e:
            raise LinkClosed(f"{self.name}: {e}") from None

    def read(self, timeout_s: float) -> bytes:
        try:
            self.port.timeout = max(0.0, timeout_s)
            first = self.port.read(1)
            if not first:
                return b""
            self.port.timeout = 0
            return bytes(first + self.port.read(self.port.in_waiting or 0))
        except (serial.SerialException, OSError) as e:
            raise LinkClosed(f"{self.name}: {e}") from None

    def close(self) -> None:
        self.port.close()


def drain(t: Transport, quiet_s: float, limit_s: float) -> bytes:
    """Read until the link has been quiet for quiet_s (at most limit_s)."""
    out = bytearray()
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        data = t.read(min(quiet_s, max(0.0, end - time.monotonic())))
        if not data:
            break
        out += data
    return bytes(out)

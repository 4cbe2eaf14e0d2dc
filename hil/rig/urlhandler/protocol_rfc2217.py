"""rfc2217://host:port -- pyserial's RFC 2217 client, made fit for a stream.

Two things in pyserial's client (serial/rfc2217.py) cost the rig dearly:

- it sends every line setting to the server again, and sleeps at least 50 ms
  for the answer, whenever any port attribute changes (_reconfigure_port) --
  a read timeout too, which the rig sets on every read. A timeout is the
  client's own business (RFC 2217 has no such option): here the line settings
  are negotiated when they change, and only then;
- its reader thread passes the received data on one byte at a time through a
  queue, each byte a put() and a get(): a six-minute run's 3.5 MB through it
  takes most of a minute. Here the reader hands on each run of data between
  two telnet commands whole, into a buffer that read() takes from at once;
  the telnet commands themselves go to pyserial's own handlers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from serial import SerialException, rfc2217
from serial.serialutil import PortNotOpenError

IAC = rfc2217.IAC[0]
SB = rfc2217.SB[0]
SE = rfc2217.SE[0]
OPTION_VERBS = (rfc2217.DO[0], rfc2217.DONT[0], rfc2217.WILL[0], rfc2217.WONT[0])


class Serial(rfc2217.Serial):
    _negotiated: tuple[object, ...] | None = None
    # pyserial's own (serial/rfc2217.py), which its stubs leave out
    _socket: socket.socket
    _telnet_negotiate_option: Callable[[bytes, bytes], None]
    _telnet_process_subnegotiation: Callable[[bytes], None]
    _telnet_process_command: Callable[[bytes], None]

    def open(self) -> None:
        self._negotiated = None
        self._data = bytearray()
        self._arrived = threading.Condition()
        self._lost = False
        super().open()

    # --- line settings: negotiated when they change ---------------------------------------
    def _line_settings(self) -> tuple[object, ...]:
        return (self.baudrate, self.bytesize, self.parity, self.stopbits, self.rtscts, self.xonxoff)

    def _reconfigure_port(self) -> None:
        wanted = self._line_settings()
        if wanted == self._negotiated:
            return
        super()._reconfigure_port()  # type: ignore[misc]  # pyserial's own, not in its stubs
        self._negotiated = wanted

    # --- receiving: data in runs, commands to pyserial's handlers ---------------------------
    def _telnet_read_loop(self) -> None:
        state = "data"  # "data", "iac" (after IAC), "option" (after DO/DONT/WILL/WONT)
        verb = b""
        sub: bytearray | None = None  # a subnegotiation being read
        while self.is_open:
            try:
                chunk = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            i = 0
            while i < len(chunk):
                if state == "data":
                    j = chunk.find(IAC, i)
                    end = len(chunk) if j < 0 else j
                    if end > i:
                        if sub is not None:
                            sub += chunk[i:end]
                        else:
                            self._take(chunk[i:end])
                    i = end
                    if j >= 0:
                        state = "iac"
                        i += 1
                    continue
                byte = chunk[i]
                i += 1
                if state == "option":
                    self._telnet_negotiate_option(verb, bytes([byte]))
                    state = "data"
                elif byte == IAC:  # doubled: the byte itself
                    if sub is not None:
                        sub.append(IAC)
                    else:
                        self._take(bytes([IAC]))
                    state = "data"
                elif byte == SB:
                    sub = bytearray()
                    state = "data"
                elif byte == SE:
                    if sub is not None:
                        self._telnet_process_subnegotiation(bytes(sub))
                    sub = None
                    state = "data"
                elif byte in OPTION_VERBS:
                    verb = bytes([byte])
                    state = "option"
                else:
                    self._telnet_process_command(bytes([byte]))
                    state = "data"
        with self._arrived:
            self._lost = True
            self._arrived.notify_all()

    def _take(self, data: bytes) -> None:
        with self._arrived:
            self._data += data
            self._arrived.notify_all()

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        return len(self._data)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        timeout = self.timeout
        end = None if timeout is None else time.monotonic() + timeout
        with self._arrived:
            while len(self._data) < size and not self._lost:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._arrived.wait(left)
            if not self._data and self._lost:
                raise SerialException("connection lost (the port server closed it)")
            out = bytes(self._data[:size])
            del self._data[:size]
        return out

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        self.rfc2217_send_purge(rfc2217.PURGE_RECEIVE_BUFFER)
        with self._arrived:
            self._data.clear()

"""A board's serial port on the network, as board farms share theirs (ser2net,
LabGrid's exporters): an RFC 2217 server -- pyserial's PortManager does the
protocol's server side (serial/rfc2217.py) -- or, `raw`, bytes over TCP as
ser2net's raw mode sends them (socket://). One client at a time; the device
is opened when a client connects and closed when it leaves, as ser2net does.

    heatrig share --port /dev/ttyUSB0 --listen 127.0.0.1:2217
    pytest --target serial --port rfc2217://127.0.0.1:2217

It listens on loopback unless told otherwise: RFC 2217 has no
authentication, so a port shared wider belongs behind an SSH tunnel or a
firewall (docs/rig.md).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
from typing import Any, cast

import serial
from serial import rfc2217

IAC = rfc2217.IAC  # telnet's "interpret as command", 0xFF: doubled in data
NO_LINES = (errno.ENOTTY, errno.EINVAL)  # a pty, or a UART without modem lines
READ_SLICE_S = 0.05  # how often the device reader looks whether its client has gone


class _Port:
    """The device as PortManager drives it, less what it lacks: a pseudo-
    terminal (the virtual board) has no RTS, DTR or modem-status lines, and
    refuses their ioctls; they read False and setting them does nothing."""

    _LINES_OUT = ("rts", "dtr", "break_condition")
    _LINES_IN = ("cts", "dsr", "ri", "cd")

    def __init__(self, port: serial.Serial):
        object.__setattr__(self, "_port", port)

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self._port, name)
        except OSError as e:
            if name in self._LINES_IN and e.errno in NO_LINES:
                return False
            raise

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            setattr(self._port, name, value)
        except OSError as e:
            if not (name in self._LINES_OUT and e.errno in NO_LINES):
                raise


class _Client:
    """One connection: PortManager's `connection` (its write() sends telnet
    replies), and the two copying loops."""

    def __init__(self, sock: socket.socket, port: serial.Serial, raw: bool, log: logging.Logger):
        self.sock = sock
        self.port = port
        self.raw = raw
        self.alive = True
        self._lock = threading.Lock()
        # PortManager takes any object with a Serial's attributes, and any with write()
        # as its connection (its stubs say Serial for both)
        self.manager = None if raw else rfc2217.PortManager(cast(Any, _Port(port)), cast(Any, self))
        self.log = log

    def write(self, data: bytes) -> None:
        with self._lock:
            self.sock.sendall(data)

    def device_to_network(self) -> None:
        try:
            while self.alive:
                data = self.port.read(self.port.in_waiting or 1)
                if not data:
                    continue
                if self.manager is not None:  # IAC doubled, as PortManager.escape() does
                    data = data.replace(IAC, IAC + IAC)  # byte by byte
                self.write(data)
        except (OSError, serial.SerialException) as e:
            self.log.info("device -> network ended: %s", e)
        finally:
            self.alive = False

    def network_to_device(self) -> None:
        try:
            while self.alive:
                data = self.sock.recv(4096)
                if not data:
                    break
                if self.manager is not None:
                    data = b"".join(self.manager.filter(data))
                if data:
                    self.port.write(data)
        except (OSError, serial.SerialException) as e:
            self.log.info("network -> device ended: %s", e)
        finally:
            self.alive = False


class PortServer:
    """Serve `device` (a path or a pyserial URL) on host:port (0: any free
    port); `url` is what a client opens. Use as a context manager."""

    def __init__(
        self,
        device: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        raw: bool = False,
        baud: int = 115200,
    ):
        self.device = device
        self.raw = raw
        self.baud = baud
        self.log = logging.getLogger("heatrig.share")
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = threading.Lock()
        self.clients = 0  # connections served

    @property
    def url(self) -> str:
        scheme = "socket" if self.raw else "rfc2217"
        return f"{scheme}://{self.host}:{self.port}"

    def __enter__(self) -> PortServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, name="share-accept", daemon=True)
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        """Serve in this thread until KeyboardInterrupt."""
        self.start()
        try:
            while not self._stop.wait(3600):
                pass
        finally:
            self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._busy.acquire(blocking=False):
                self.log.warning("%s refused: the port is in use", peer)
                sock.close()
                continue
            threading.Thread(
                target=self._serve, args=(sock, peer), name="share-client", daemon=True
            ).start()

    def _serve(self, sock: socket.socket, peer: object) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                port = serial.serial_for_url(self.device, self.baud, timeout=READ_SLICE_S)
            except (OSError, serial.SerialException) as e:
                self.log.warning("%s: cannot open %s: %s", peer, self.device, e)
                return
            self.clients += 1
            client = _Client(sock, port, self.raw, self.log)
            reader = threading.Thread(target=client.device_to_network, daemon=True)
            reader.start()
            client.network_to_device()
            client.alive = False
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            reader.join(timeout=2)
            port.close()
        finally:
            sock.close()
            self._busy.release()

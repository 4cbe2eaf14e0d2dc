"""rfc2217://host:port -- pyserial's RFC 2217 client, a timeout kept on this side.

pyserial's client (serial/rfc2217.py Serial._reconfigure_port) sends every
line setting to the server again and sleeps at least 50 ms waiting for the
answer whenever any attribute changes, a read timeout included. The rig sets
the timeout on every read, so each read would cost a network round trip and
50 ms. A timeout is the client's own business (RFC 2217 has no such option):
here the line settings are negotiated when they change, and only then.
"""

from __future__ import annotations

from serial import rfc2217


class Serial(rfc2217.Serial):
    _negotiated: tuple[object, ...] | None = None

    def open(self) -> None:
        self._negotiated = None
        super().open()

    def _line_settings(self) -> tuple[object, ...]:
        return (self.baudrate, self.bytesize, self.parity, self.stopbits, self.rtscts, self.xonxoff)

    def _reconfigure_port(self) -> None:
        wanted = self._line_settings()
        if wanted == self._negotiated:
            return
        super()._reconfigure_port()  # type: ignore[misc]  # pyserial's own, not in its stubs
        self._negotiated = wanted

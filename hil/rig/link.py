"""The device's link, decoded: a transport, the frame decoder, and a log of
everything that crossed it.

Frames are sorted as they arrive: telemetry and truth samples into lists,
replies (firmware and plant) into queues, events and plant notes into the
log. Bytes outside frames -- a traceback, a REPL banner, line noise -- are
kept, counted and logged; a partial frame that is never completed is given
up on after a quiet spell, so the decoder resynchronises even when nothing
follows the damage.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import TextIO

from hil.rig.transport import Transport
from hil.wire import events, frames

STALE_PARTIAL_S = 0.2  # a frame still incomplete after this long without data was cut
STRAY_KEEP = 1 << 16  # unframed bytes kept for error messages


class LinkLog:
    """A text log, one line per thing that crossed the link, with host times."""

    def __init__(self, path: Path | None):
        self.path = path
        self._f: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._f = path.open("a", encoding="utf-8", buffering=1)
        self._t0 = time.monotonic()

    def write(self, tag: str, text: str) -> None:
        if self._f is not None:
            self._f.write(f"{time.monotonic() - self._t0:9.3f} {tag:<6} {text}\n")

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def preview(data: bytes, n: int = 60) -> str:
    head = data[:n].decode("latin-1").encode("unicode_escape").decode()
    return head + ("..." if len(data) > n else "")


class Link:
    def __init__(self, transport: Transport, log: LinkLog):
        self.transport = transport
        self.log = log
        self.decoder = frames.Decoder()
        self.telemetry: list[bytes] = []
        self.truth: list[bytes] = []
        self.replies: deque[str] = deque()
        self.plant_replies: deque[str] = deque()
        self.events: list[str] = []
        self.plant_info: list[str] = []
        self.ble: deque[str] = deque()  # T_BLE frames, for the BLE bridge (hil/ble/bridge.py)
        self.stray = bytearray()  # the last STRAY_KEEP unframed bytes
        self.last: frames.TelemetryFrame | None = None
        self.paused_us: int | None = None  # host-stepped: where the clock stands
        self.end_info: dict[str, str] | None = None  # the simulator's "sim end" words
        self.closed = False
        self._last_rx = time.monotonic()
        self.rx_bytes = 0
        self.frame_bytes: dict[int, int] = {}  # by frame type, framing included

    # --- sending ---------------------------------------------------------------------
    def send_line(self, line: str) -> None:
        self.log.write("tx", line)
        self.transport.write(line.encode() + b"\n")

    def send_raw(self, data: bytes) -> None:
        self.log.write("tx", f"{len(data)} raw bytes: {preview(data)}")
        self.transport.write(data)

    # --- receiving -------------------------------------------------------------------
    def pump(self, timeout_s: float) -> bool:
        """Read what arrives within timeout_s and sort it; True if anything came."""
        data = self.transport.read(timeout_s)
        now = time.monotonic()
        if data:
            self._last_rx = now
            self.rx_bytes += len(data)
            got, text = self.decoder.feed(data)
        elif self.decoder.pending() and now - self._last_rx > STALE_PARTIAL_S:
            n = len(self.decoder.pending())
            got, text = self.decoder.resync()
            self.log.write("noise", f"a frame was cut: gave up on it after {n} bytes, resynced")
        else:
            return False
        for f in got:
            self._sort(f)
        if text:
            self._stray(text)
        return True

    def _sort(self, f: frames.Frame) -> None:
        t = f.ftype
        self.frame_bytes[t] = self.frame_bytes.get(t, 0) + len(f.payload) + frames.OVERHEAD
        if t == frames.T_TELEMETRY:
            self.telemetry.append(f.payload)
            self.last = frames.telemetry(f.payload)
        elif t == frames.T_PLANT:
            self.truth.append(f.payload)
        elif t == frames.T_REPLY:
            text = frames.text(f.payload)
            self.log.write("reply", text)
            self.replies.append(text)
        elif t == frames.T_PLANT_REPLY:
            text = frames.text(f.payload)
            self.log.write("plant", text)
            self.plant_replies.append(text)
        elif t == frames.T_EVENT:
            text = frames.text(f.payload)
            self.log.write("event", text)
            self.events.append(text)
        elif t == frames.T_BLE:
            text = frames.text(f.payload)
            self.log.write("ble", text)
            self.ble.append(text)
        elif t == frames.T_PLANT_INFO:
            text = frames.text(f.payload)
            self.plant_info.append(text)
            if text.startswith(events.PAUSED):
                self.paused_us = int(text.split("=", 1)[1])
            else:
                self.log.write("sim", text)
            if text.startswith(events.SIM_END):
                self.end_info = dict(w.split("=", 1) for w in text.split()[2:] if "=" in w)

    def _stray(self, text: bytes) -> None:
        self.stray += text
        del self.stray[:-STRAY_KEEP]
        self.log.write("text", f"{len(text)} unframed bytes: {preview(text)}")

    def noise_report(self) -> str:
        s = self.decoder.stats
        return (
            f"{s.frames} frames, {s.text_bytes} unframed bytes, {s.bad_crc} frames with a bad "
            f"CRC, {s.resyncs} cut frames given up on"
        )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.log.write("note", "link: " + self.noise_report())
            self.transport.close()

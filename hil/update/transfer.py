"""The update protocol's client (docs/update.md): one implementation, two
ports -- the console (`heatrig update --port PORT IMAGE`) and BLE (`heatrig
ble update [--sim] IMAGE`).

The device leads: it says from which offset to send and how much (the
window, one block), the client sends that in pieces of `chunk` bytes, then
waits for the status that takes the block. A paused device (a heating
session) is waited for; a refusal ends the transfer with its reason code.
"""

from __future__ import annotations

import base64
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from hil.ble.client import BleClient
from hil.update.image import Image
from hil.wire import contract

_FW = contract.firmware("update")
STATES = _FW.names("STATE_NAMES")
CODES = _FW.names("CODE_NAMES")
WHY = contract.firmware("bootslot").names("WHY_NAMES")
STATUS = struct.Struct("<BBBBIIHHB")  # the update_control value (firmware/ble_update.py)
CONSOLE_DATA_BYTES = 72  # base64: 96 characters; "update data OFFSET B64" fits the console's 120
CONSOLE_LINES_IN_FLIGHT = 2  # an ESP32's stdin ring holds 260 bytes: two data lines
WAIT_S = 30.0  # for one block's status (wall time on a board, device time in the simulator)


class UpdateError(RuntimeError):
    """The update did not complete; the message says why and what to do."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


@dataclass
class Status:
    state: str
    code: str
    offset: int
    total: int
    window: int
    chunk: int
    trial: bool = False
    rollback: str = "none"

    @classmethod
    def from_ble(cls, value: bytes) -> Status:
        if len(value) != STATUS.size:
            raise UpdateError(f"the update status has {len(value)} bytes, not {STATUS.size}")
        _v, st, code, flags, off, total, w, chunk, why = STATUS.unpack(value)
        return cls(
            STATES[st], CODES[code], off, total, w, chunk, bool(flags & 1), WHY[why] or "none"
        )

    @classmethod
    def from_console(cls, reply: str) -> Status:
        words = dict(w.split("=", 1) for w in reply.split() if "=" in w)
        try:
            return cls(
                words["state"],
                words.get("code", "ok"),
                int(words.get("offset", "0")),
                int(words.get("total", "0")),
                int(words.get("window", "0")),
                int(words.get("chunk", "0")),
                words.get("trial", "0") == "1",
                words.get("rollback", "none"),
            )
        except (KeyError, ValueError):
            raise UpdateError(f"not an update status: {reply!r}") from None


@dataclass
class Stats:
    payload_bytes: int = 0  # image bytes sent (a resumed block counts twice)
    messages: int = 0  # data writes or lines
    wire_bytes: int = 0  # what the transport carried both ways (ATT payloads, or console bytes)
    device_s: float = 0.0
    wall_s: float = 0.0
    resumes: int = 0
    events: list[str] = field(default_factory=list)


class Port(ABC):
    """One transport of the update protocol."""

    name: str
    stats: Stats

    @abstractmethod
    def begin(self, total: int, image_id: bytes) -> Status: ...

    @abstractmethod
    def send(self, offset: int, data: bytes) -> None:
        """One piece of a window (no answer awaited)."""

    @abstractmethod
    def taken(self, before: Status) -> Status:
        """The status once the device has taken the window sent (or changed state)."""

    @abstractmethod
    def request(self, op: str) -> Status:
        """ "status" or "abort"."""

    @abstractmethod
    def commit(self) -> None:
        """Switch: the device resets into the new firmware."""

    @abstractmethod
    def device_time_s(self) -> float: ...


Progress = Callable[[int, int, Status], None]


def send_image(port: Port, img: Image, progress: Progress | None = None) -> Status:
    """The image, from wherever the device stands (a resume continues), to a
    verified, ready image; UpdateError if refused."""
    data = img.data
    t0 = time.monotonic()
    d0 = port.device_time_s()
    st = port.begin(len(data), img.image_id)
    if st.code != "ok" or st.state not in ("receiving", "paused", "ready"):
        raise refusal(st)
    if st.offset:
        port.stats.resumes += 1
    while st.state in ("receiving", "paused"):
        if st.state == "receiving" and st.window:
            chunk = max(1, st.chunk)
            for i in range(0, st.window, chunk):
                piece = data[st.offset + i : st.offset + min(st.window, i + chunk)]
                port.send(st.offset + i, piece)
                port.stats.payload_bytes += len(piece)
        st = port.taken(st)
        if progress is not None:
            progress(st.offset, st.total, st)
    port.stats.wall_s += time.monotonic() - t0
    port.stats.device_s += port.device_time_s() - d0
    if st.state != "ready":
        raise refusal(st)
    return st


def refusal(st: Status) -> UpdateError:
    hints = {
        "busy": "a heating session runs: update when it has ended",
        "signature": "the image is not signed with a key this kit trusts",
        "no_key": "the kit has no update key provisioned (heatrig deploy --update-key)",
        "version": "the image is older than the firmware the kit runs",
        "hardware": "the image is for a later hardware revision",
        "format": "the image is compiled for another architecture or MicroPython",
        "size": "the image is cut short or padded",
        "header": "not a heatrig image, or a damaged one",
        "file_hash": "the image is damaged (a file's hash differs): build or copy it again",
        "image_hash": "the image is damaged: build or copy it again",
        "trial": "the kit runs a new firmware on trial: wait until it has confirmed itself",
        "state": "another transfer is in progress: abort it first",
        "flash": "the kit's flash refused a write: free space, or a failing flash",
    }
    why = hints.get(st.code, "")
    return UpdateError(
        f"update refused: {st.code} (state {st.state}){': ' + why if why else ''}", st.code
    )


# --- the console --------------------------------------------------------------------------
class ConsolePort(Port):
    """Console commands `update ...` over any link that sends a line and
    returns its reply (hil.rig.dut.Dut.command, or a board's link)."""

    def __init__(
        self,
        command: Callable[[str], str],
        *,
        send_line: Callable[[str], None] | None = None,
        next_reply: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "console",
    ):
        self._command = command
        self._send_line = send_line
        self._next_reply = next_reply
        self._clock = clock
        self._in_flight = 0
        self._last = ""
        self.name = name
        self.stats = Stats()

    def device_time_s(self) -> float:
        return self._clock()

    def _ask(self, line: str) -> Status:
        reply = self._command(line)
        self.stats.wire_bytes += len(line) + 1 + len(reply) + 8  # a reply frame's 8 bytes
        return self._status(reply)

    def _status(self, reply: str) -> Status:
        if not reply.startswith(("OK update", "ERR 8 update")):
            raise UpdateError(f"the console refused the update: {reply!r}")
        st = Status.from_console(reply)
        if reply.startswith("ERR"):
            st.code = reply.split()[3]
        return st

    def begin(self, total: int, image_id: bytes) -> Status:
        st = self._ask(f"update begin {total} {image_id.hex()}")
        return st

    def send(self, offset: int, data: bytes) -> None:
        line = f"update data {offset} {base64.b64encode(data).decode()}"
        self.stats.messages += 1
        self.stats.wire_bytes += len(line) + 1
        if self._send_line is None or self._next_reply is None:
            self._last = self._command(line)
            self.stats.wire_bytes += len(self._last) + 8
            return
        if self._in_flight >= CONSOLE_LINES_IN_FLIGHT:
            self._collect()
        self._send_line(line)
        self._in_flight += 1

    def _collect(self) -> None:
        assert self._next_reply is not None
        self._last = self._next_reply()
        self.stats.wire_bytes += len(self._last) + 8
        self._in_flight -= 1

    def taken(self, before: Status) -> Status:
        while self._in_flight:
            self._collect()
        if self._last:
            st = self._status(self._last)
            self._last = ""
            if st.offset != before.offset or st.state != before.state:
                return st
        return self._ask("update status")

    def request(self, op: str) -> Status:
        return self._ask(f"update {op}")

    def commit(self) -> None:
        reply = self._command("update commit")
        if not reply.startswith("OK"):
            raise refusal(self._status(reply))

    @property
    def chunk(self) -> int:
        return CONSOLE_DATA_BYTES


# --- BLE ------------------------------------------------------------------------------------
class BlePort(Port):
    """The update service of a bonded phone (hil.ble.client.BleClient); on
    the simulator, `advance` lets device time pass while waiting."""

    def __init__(
        self,
        phone: BleClient,
        control: str,
        data: str,
        *,
        advance: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        step_s: float = 0.05,
    ):
        self.phone = phone
        self.control = control
        self.data = data
        self._advance = advance
        self._clock = clock
        self._step_s = step_s
        self._seen = 0
        self.name = "ble"
        self.stats = Stats()
        phone.subscribe(control)
        self._seen = len(phone.notifications(control))

    def device_time_s(self) -> float:
        return self._clock()

    def _write_control(self, value: bytes) -> Status:
        self.phone.write(self.control, value)
        self.stats.wire_bytes += 3 + len(value) + 1  # ATT write request and its response
        return self._next_status(WAIT_S)

    def _next_status(self, timeout_s: float) -> Status:
        end = self._clock() + timeout_s
        wall_end = time.monotonic() + max(timeout_s, 10.0)
        while True:
            notes = self.phone.notifications(self.control)
            if len(notes) > self._seen:
                value = notes[-1].value
                self.stats.wire_bytes += (len(notes) - self._seen) * (3 + STATUS.size)
                self._seen = len(notes)
                return Status.from_ble(value)
            if self._clock() > end or time.monotonic() > wall_end:
                raise UpdateError(f"no update status from the kit within {timeout_s:g} s")
            if self._advance is not None:
                self._advance(self._step_s)
            else:
                time.sleep(self._step_s)  # notifications() lets the client's stack deliver

    def begin(self, total: int, image_id: bytes) -> Status:
        return self._write_control(struct.pack("<BI8s", 1, total, image_id))

    def send(self, offset: int, data: bytes) -> None:
        value = struct.pack("<I", offset) + data
        self.phone.write(self.data, value, response=False)
        self.stats.messages += 1
        self.stats.wire_bytes += 3 + len(value)  # ATT write command: opcode, handle, value

    def taken(self, before: Status) -> Status:
        return self._next_status(WAIT_S)

    def request(self, op: str) -> Status:
        return self._write_control(bytes([{"abort": 2, "status": 4}[op]]))

    def read_status(self) -> Status:
        return Status.from_ble(self.phone.read(self.control))

    def commit(self) -> None:
        self.phone.write(self.control, b"\x03")

"""A MicroPython board on a serial port, driven over the raw REPL.

mpremote's SerialTransport does the raw-REPL work (exec, file writes); this
class adds what a test rig needs around it: getting to the REPL from any
state within a bounded time (a running heatrig firmware has Ctrl-C off and is
asked with its console command `reset repl`), reading what the board is, file
hashes computed on the board, and starting a program whose output then
streams on the same port.

Every failure is a BoardError whose message says what to do.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import serial
import serial.tools.list_ports
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from hil.rig import urlhandler

urlhandler.install()  # rfc2217:// ports as the rig needs them

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"  # the ">" prompt is left for mpremote
FRIENDLY_PROMPT = b">>> "
PROGRAM_END = b"\x04>"
# getting to the REPL: a REPL answers at once; a board that resets (ESP32: ~1-2 s
# of boot) has REBOOT_S; then the raw REPL must answer within RAW_S
PROBE_S = 1.0
REBOOT_S = 4.0
RAW_S = 1.5
QUIET_S = 0.1  # the raw REPL's tail after a program: stdout EOF, stderr, EOF, prompt
# what the README and docs/rig.md state: a port with nothing behind it, or
# something that is not a MicroPython REPL, fails within this (the waits above,
# and the process's start; benchmarks/test_board_failures.py measures it)
FAILS_WITHIN_S = 10

# the native architectures of sys.implementation._mpy (MicroPython's mpyfiles reference)
ARCHS = (
    None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
    "xtensa", "xtensawin", "rv32imc", "rv64imc",
)  # fmt: skip

ESP32_FLASH_HINT = (
    "flash MicroPython onto the board first (ESP32: download the firmware from "
    "https://micropython.org/download/ESP32_GENERIC/ and write it with "
    "`esptool.py --port PORT write_flash -z 0x1000 FIRMWARE.bin`)"
)


# The board's stored state: every record of the firmware's store (firmware/store.py
# keeps NAME.a and NAME.b in the flash's root: settings, calibration, counters,
# the fault log, bonds, registration, ...), the files the rig leaves there (a
# run's configuration, the one-boot REPL hold) and what a cut write left (.part)
STATE_NAME = re.compile(r"^[A-Za-z0-9_]+\.[ab]$")
RIG_FILES = ("run.json", "repl.hold")


def is_state_file(name: str) -> bool:
    return bool(STATE_NAME.match(name)) or name in RIG_FILES or name.endswith(".part")


class BoardError(RuntimeError):
    """Talking to the board failed; the message says what to do."""


@dataclass(frozen=True)
class BoardInfo:
    platform: str  # sys.platform: "esp32", "linux" (the virtual board), ...
    version: str  # MicroPython version
    mpy_version: tuple[int, int]  # .mpy format the board loads, e.g. (6, 3)
    arch: str | None  # native code architecture for mpy-cross -march

    @property
    def is_virtual(self) -> bool:
        return self.platform == "linux"


def available_ports() -> str:
    ports = [p.device for p in serial.tools.list_ports.comports()]
    return ", ".join(ports) if ports else "none found"


def _hash_code(paths: list[str]) -> str:
    return (
        "import hashlib,binascii\n"
        "def _h(p):\n"
        " try:\n  f=open(p,'rb')\n except OSError:\n  return None\n"
        " h=hashlib.sha256();b=bytearray(512);m=memoryview(b)\n"
        " while True:\n  n=f.readinto(b)\n  if not n:\n   break\n  h.update(m[:n])\n"
        " f.close()\n return binascii.hexlify(h.digest()).decode()\n"
        f"print(repr([_h(p) for p in {paths!r}]))\n"
        "del _h\n"
    )


def _url_failure(url: str, baud: int) -> str:
    """Why a pyserial URL does not open (mpremote keeps only that it did not)."""
    try:
        serial.serial_for_url(url, baud).close()
    except (OSError, ValueError, serial.SerialException) as e:
        return str(e) or type(e).__name__
    return "it opens now"


def _read_code(paths: list[str]) -> str:
    """Print each file's bytes as one line of base64 ("-" for an empty file)."""
    return (
        "import binascii\n"
        "def _r(p):\n f=open(p,'rb')\n d=f.read()\n f.close()\n"
        " return binascii.b2a_base64(d).decode().strip() or '-'\n"
        f"for _p in {paths!r}:\n print(_r(_p))\n"
        "del _r\n"
    )


class Board:
    def __init__(self, port: str, baud: int, log: Callable[[str], None] | None = None):
        self.port = port
        self.baud = baud
        self.log = log or (lambda _msg: None)
        try:
            self.tr = SerialTransport(port, baud)
        except ValueError as e:  # pyserial: a URL of no protocol it has
            raise BoardError(
                f"{port}: {e}; give a serial port's path (/dev/ttyUSB0) or a pyserial URL "
                f"(rfc2217://HOST:PORT, socket://HOST:PORT)"
            ) from None
        except TransportError:
            if "://" in port:
                raise BoardError(
                    f"cannot reach {port} ({_url_failure(port, baud)}): check that the port "
                    f"server (ser2net, `heatrig share`) runs there, on that port, and that no "
                    f"one else holds the board"
                ) from None
            raise BoardError(
                f"cannot open {port}: no such serial port, or another program holds it "
                f"(a serial monitor, mpremote). Plug the board in and pass its port with "
                f"--port (ports found: {available_ports()})"
            ) from None
        self.serial: serial.Serial = self.tr.serial
        self._info: BoardInfo | None = None

    def close(self) -> None:
        with contextlib.suppress(OSError, serial.SerialException):
            self.tr.close()

    # --- getting to the REPL -----------------------------------------------------
    def _read_for(
        self, until: bytes, timeout_s: float, seen: bytearray, quiet_s: float | None = None
    ) -> bool:
        """Read into `seen` until `until` has come (True), timeout_s has
        passed, or (quiet_s) nothing has come for that long."""
        now = time.monotonic()
        end = now + timeout_s
        last = now
        start = len(seen)
        while now < end:
            self.serial.timeout = min(0.05, max(0.0, end - now))
            data = self.serial.read(max(1, self.serial.in_waiting))
            now = time.monotonic()
            if data:
                last = now
                seen += data
                if until and until in seen[max(start, len(seen) - len(data) - len(until)) :]:
                    return True
            elif quiet_s is not None and now - last >= quiet_s:
                return False
        return False

    def _settle_raw(self) -> None:
        """In the raw REPL: let what is still coming arrive (a busy board may
        still be sending the first banner) and drop it, then ask for the banner
        once more and read exactly up to it, leaving the ">" prompt for
        mpremote's next exec."""
        self._read_for(b"", QUIET_S, bytearray(), quiet_s=QUIET_S)
        self.serial.reset_input_buffer()
        self.serial.write(b"\r\x01")
        data = self.tr.read_until(1, RAW_BANNER, timeout=2)
        if not data.endswith(RAW_BANNER):
            raise BoardError(f"{self.port}: the raw REPL stopped answering ({data[-80:]!r})")
        self.tr.in_raw_repl = True

    def to_repl(self) -> None:
        """Stop whatever runs and enter the raw REPL, within PROBE_S + REBOOT_S + RAW_S."""
        seen = bytearray()
        self.serial.reset_input_buffer()
        # a REPL, or a program that Ctrl-C stops
        self.serial.write(b"\r\x03\x03\r\x01")
        if self._read_for(RAW_BANNER, PROBE_S, seen):
            self._settle_raw()
            return
        # the heatrig firmware (Ctrl-C is off while its console runs): it resets
        # the board into the REPL on request
        self.log("no REPL answered; asking a running heatrig firmware for `reset repl`")
        self.serial.write(b"\r\nreset repl\r\n")
        before = len(seen)
        self._read_for(FRIENDLY_PROMPT, REBOOT_S, seen)
        if not seen:
            raise BoardError(
                f"no response from {self.port} within {PROBE_S + REBOOT_S:.0f} s: nothing seems "
                f"to be behind it. Check that the board is connected and powered and that this "
                f"is its port (ports found: {available_ports()}); if it runs MicroPython, press "
                f"its reset button and retry"
            )
        self.serial.write(b"\r\x03\x03\r\x01")
        if self._read_for(RAW_BANNER, RAW_S, seen):
            self._settle_raw()
            return
        preview = bytes(seen[before:][-120:] or seen[-120:])
        raise BoardError(
            f"{self.port} answers, but not as a MicroPython REPL (last bytes: {preview!r}). "
            f"Check the baud rate (--baud, now {self.baud}), or {ESP32_FLASH_HINT}"
        )

    # --- running code -------------------------------------------------------------
    def exec(self, code: str) -> bytes:
        """Run code in the raw REPL; its output. If the raw REPL lost step
        (a late banner on a busy machine), enter it again and retry once."""
        for attempt in (1, 2):
            try:
                return bytes(self.tr.exec(code))
            except TransportExecError as e:
                raise BoardError(f"on {self.port}: {e.error_output.strip()}") from None
            except TransportError as e:
                if attempt == 2:
                    raise BoardError(f"{self.port} stopped answering the raw REPL: {e}") from None
                self.log(f"raw REPL out of step ({e}); entering it again")
                self.to_repl()
        raise AssertionError("unreachable")

    def eval(self, expr: str) -> object:
        out = self.exec(f"print(repr({expr}))").decode().strip()
        return ast.literal_eval(out)

    def info(self) -> BoardInfo:
        if self._info is None:
            got = self.eval(
                "(__import__('sys').platform, "
                "'.'.join(str(x) for x in __import__('sys').implementation.version[:3]), "
                "getattr(__import__('sys').implementation, '_mpy', 0))"
            )
            if not isinstance(got, tuple) or len(got) != 3:
                raise BoardError(f"{self.port}: unexpected answer about the board: {got!r}")
            platform, version, mpy = got
            arch_i = (int(mpy) >> 10) & 0x0F
            self._info = BoardInfo(
                platform=str(platform),
                version=str(version),
                mpy_version=(int(mpy) & 0xFF, (int(mpy) >> 8) & 3),
                arch=ARCHS[arch_i] if arch_i < len(ARCHS) else None,
            )
        return self._info

    def start(self, code: str) -> None:
        """Run code without waiting: its output now streams on the port; the
        raw REPL's tail (PROGRAM_END) follows when it ends."""
        try:
            self.tr.exec_raw_no_follow(code)
        except TransportError as e:
            raise BoardError(f"{self.port}: could not start the program: {e}") from None

    def wait_program_end(self, timeout_s: float, seen: bytearray | None = None) -> bool:
        return self._read_for(PROGRAM_END, timeout_s, seen if seen is not None else bytearray())

    def hard_reset(self) -> None:
        """Reset the board: it boots (boot.py, main.py) as at power-on."""
        self.start(
            "import sys\nsys.modules.pop('machine', None)\nimport machine\n"
            "machine.reset() if hasattr(machine, 'reset') else machine.soft_reset()\n"
        )
        self.tr.in_raw_repl = False

    # --- files ---------------------------------------------------------------------------
    def hashes(self, paths: Iterable[str]) -> dict[str, str | None]:
        """sha256 (hex) of each file as stored on the board; None if missing."""
        plist = list(paths)
        out: dict[str, str | None] = {}
        for i in range(0, len(plist), 24):  # keeps each reply short
            chunk = plist[i : i + 24]
            got = ast.literal_eval(self.exec(_hash_code(chunk)).decode().strip())
            out.update(zip(chunk, got, strict=True))
        return out

    def write(self, path: str, data: bytes) -> None:
        """Write a file atomically: a cut transfer leaves the old file in place."""
        tmp = path + ".part"
        for attempt in (1, 2):
            try:
                self.tr.fs_writefile(tmp, data, chunk_size=1024)
                break
            except (TransportError, OSError) as e:
                if attempt == 2:
                    raise BoardError(f"writing {path} on {self.port} failed: {e}") from None
                self.log(f"writing {path}: raw REPL out of step ({e}); entering it again")
                self.to_repl()
        self.exec(f"import os\nos.rename({tmp!r}, {path!r})")

    def mkdir(self, path: str) -> None:
        self.exec(f"import os\ntry:\n os.mkdir({path!r})\nexcept OSError:\n pass")

    def remove(self, *paths: str) -> None:
        """Remove files from the board's flash (those not there are no error)."""
        self.exec(
            f"import os\nfor p in {list(paths)!r}:\n try:\n  os.remove(p)\n except OSError:\n  pass"
        )

    def files(self) -> list[str]:
        """The regular files in the flash's root."""
        got = self.eval(
            "[n for n in __import__('os').listdir() if __import__('os').stat(n)[0] & 0x8000]"
        )
        if not isinstance(got, list):
            raise BoardError(f"{self.port}: unexpected answer listing its files: {got!r}")
        return sorted(str(n) for n in got)

    def state(self) -> dict[str, bytes]:
        """The board's stored state (is_state_file): name -> its bytes."""
        names = [n for n in self.files() if is_state_file(n)]
        out: dict[str, bytes] = {}
        for i in range(0, len(names), 8):  # keeps each reply short
            chunk = names[i : i + 8]
            lines = self.exec(_read_code(chunk)).decode().split()
            if len(lines) != len(chunk):
                raise BoardError(f"{self.port}: reading {', '.join(chunk)} gave {len(lines)} files")
            for name, b64 in zip(chunk, lines, strict=True):
                out[name] = b"" if b64 == "-" else base64.b64decode(b64)
        return out

    def restore_state(self, saved: dict[str, bytes]) -> list[str]:
        """Put the stored state back as `saved` has it (from state()): files
        that differ are written again (atomically), files it did not have are
        removed. Returns the names it changed."""
        extra = [n for n in self.files() if is_state_file(n) and n not in saved]
        now = self.hashes(sorted(saved))
        changed = [n for n, data in saved.items() if now[n] != hashlib.sha256(data).hexdigest()]
        for name in changed:
            self.write(name, saved[name])
        if extra:
            self.remove(*extra)
        return sorted(changed + extra)

    def read_text(self, path: str) -> str | None:
        try:
            return bytes(self.tr.fs_readfile(path)).decode()
        except (TransportError, OSError):
            return None

"""A command against a virtual board that holds a user's stored state, and a
check that the command left that state as it found it.

    python -m tests.board_session [--rfc2217 | --socket] [--interrupt-after N]
        [--flash DIR] -- COMMAND ... {port} ...

The board's flash gets a user's records first (settings, its own unit's
calibration, counters, a fault log, a bond, a registration: seed()); the
virtual board starts on it, optionally behind an RFC 2217 (or raw TCP)
server on loopback; `{port}` in the command becomes the board's port -- its
pty path, or the server's URL -- and the command runs. --interrupt-after N
sends it SIGINT (Ctrl-C) once N test results have been printed (run pytest
with -v). Afterwards every state file on the flash (hil/rig/board.py
is_state_file) is compared, byte for byte, with what was there before.

Exit status: the command's, or 1 if it changed the board's stored state, or
if an interrupted command was not interrupted. `make test` runs the `dut`
suite through it, exactly as the README writes the command for a board.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from hil.farm.share import PortServer
from hil.rig.board import is_state_file
from hil.rig.vboard import VirtualBoard
from hil.wire.store_format import slot_file

RESULT = re.compile(rb" (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b")


def seed(flash: Path) -> None:
    """A user's board: records as the firmware (firmware/store.py) writes them,
    some with both slots, none of them a fresh unit's defaults."""
    flash.mkdir(parents=True, exist_ok=True)
    settings = {
        "profile": "eco",
        "telemetry": False,
        "power_telemetry": False,
        "ble": True,
        "locked": False,
        "limit": 20,
        "sharing": False,
        "haptics": 7,
        "intensity": 60,
    }
    records = {
        "settings.a": slot_file({**settings, "profile": "standard"}, seq=4),
        "settings.b": slot_file(settings, seq=5),
        "calib.a": slot_file({"r0_uohm": 801200, "tcr_ppm": 3490}, seq=1),
        "counters.a": slot_file(
            {
                "sessions": 41,
                "puffs": 480,
                "heater_on_s": 12100,
                "charge_cycles": 12,
                "holder_charges": 40,
                "boots": 57,
            },
            seq=98,
        ),
        "counters.b": slot_file({"sessions": 41, "puffs": 480, "boots": 56}, seq=97),
        "faults.a": slot_file({"count": 1, "log": [[9, 123456, 0]]}, seq=2),
        "bonds.a": slot_file({"bonds": [[1, "AQIDBAUG", "c2VjcmV0LWtleQ=="]]}, seq=3),
        "registration.a": slot_file({"registered": True, "date": 20261201}, seq=1),
    }
    for name, data in records.items():
        (flash / name).write_bytes(data)


def state_files(flash: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(flash.iterdir())
        if p.is_file() and is_state_file(p.name)
    }


def compare(before: dict[str, bytes], after: dict[str, bytes]) -> list[str]:
    """What differs, one line each (empty: byte-identical)."""
    out = []
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        if a is None:
            out.append(f"{name}: left behind ({len(b or b'')} bytes)")
        elif b is None:
            out.append(f"{name}: removed")
        else:
            out.append(f"{name}: changed ({len(a)} -> {len(b)} bytes)")
    return out


def digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name, data in sorted(files.items()):
        h.update(name.encode() + b"\0" + data)
    return h.hexdigest()[:16]


@contextlib.contextmanager
def board_port(flash: Path, server: str | None) -> Iterator[str]:
    with VirtualBoard(flash) as vb:
        if server is None:
            yield vb.port
            return
        with PortServer(vb.port, raw=server == "socket") as srv:
            yield srv.url


def run(command: list[str], interrupt_after: int | None) -> tuple[int, int]:
    """The command's exit status, and how many test results it printed."""
    if interrupt_after is None:
        return subprocess.call(command), -1
    proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    seen = 0
    sent = False
    for line in proc.stdout:
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
        seen += len(RESULT.findall(line))
        if not sent and seen >= interrupt_after:
            time.sleep(0.5)  # into the next test
            proc.send_signal(signal.SIGINT)
            sent = True
    return proc.wait(), seen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="board_session", description=__doc__)
    net = p.add_mutually_exclusive_group()
    net.add_argument("--rfc2217", action="store_true", help="serve the board over RFC 2217")
    net.add_argument("--socket", action="store_true", help="serve the board over raw TCP")
    p.add_argument("--interrupt-after", type=int, metavar="N", help="Ctrl-C after N results")
    p.add_argument("--flash", type=Path, help="the board's flash (default: a temporary one)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ... {port} ...")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the command after --")
    own = args.flash is None  # a temporary flash, removed afterwards
    flash = args.flash or Path(tempfile.mkdtemp(prefix="heatrig-found-")) / "flash"
    try:
        return _session(args, command, flash)
    finally:
        if own:
            shutil.rmtree(flash.parent, ignore_errors=True)


def _session(args: argparse.Namespace, command: list[str], flash: Path) -> int:
    if not flash.exists() or not state_files(flash):
        seed(flash)
    before = state_files(flash)
    server = "rfc2217" if args.rfc2217 else "socket" if args.socket else None
    t0 = time.monotonic()
    with board_port(flash, server) as port:
        print(f"board_session: {port}, flash {flash}", flush=True)
        rc, results = run([w.replace("{port}", port) for w in command], args.interrupt_after)
    wall = time.monotonic() - t0
    after = state_files(flash)
    diff = compare(before, after)
    print(
        f"board_session: {len(before)} state files before ({digest(before)}), "
        f"{len(after)} after ({digest(after)}): "
        + ("byte-identical" if not diff else "CHANGED: " + "; ".join(diff))
        + f"; command exit status {rc}, {wall:.1f} s",
        flush=True,
    )
    if args.interrupt_after is not None:
        print(f"board_session: interrupted after {args.interrupt_after} of {results} results")
        if rc != 2:  # pytest's exit status for an interrupted session
            print("board_session: the command was not interrupted", flush=True)
            return 1
        return 1 if diff else 0
    return 1 if diff else rc


if __name__ == "__main__":
    sys.exit(main())

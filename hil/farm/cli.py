"""`heatrig flash` and `heatrig share`: a bare board made ready, a board's
port shared on the network."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from hil.farm import flash, share


def add_parser(sub: Any) -> None:
    f = sub.add_parser(
        "flash",
        help="put MicroPython on a bare ESP32 with esptool (erase, write, verify), then deploy",
    )
    f.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyUSB0")
    f.add_argument("--image", required=True, type=Path, help="MicroPython's firmware .bin")
    f.add_argument("--chip", default="esp32", choices=sorted(flash.CHIP_OFFSETS))
    f.add_argument("--baud", type=int, default=flash.BAUD, help="flashing speed")
    f.add_argument(
        "--hardware", action="store_true", help="then deploy the firmware alone, no plant models"
    )
    f.add_argument("--no-deploy", action="store_true", help="MicroPython only")
    f.add_argument(
        "--dry-run", action="store_true", help="check the image, print esptool's steps, stop"
    )
    f.set_defaults(fn=cmd_flash)

    s = sub.add_parser(
        "share", help="share a board's serial port on the network (RFC 2217, or raw TCP)"
    )
    s.add_argument("--port", required=True, help="the board's serial port (or a virtual one)")
    s.add_argument(
        "--listen",
        default="127.0.0.1:2217",
        metavar="HOST:PORT",
        help="where to listen (default 127.0.0.1:2217: this machine only)",
    )
    s.add_argument("--raw", action="store_true", help="raw TCP (socket://) instead of RFC 2217")
    s.add_argument("--baud", type=int, default=115200)
    s.set_defaults(fn=cmd_share)


def cmd_flash(args: argparse.Namespace) -> int:
    if args.dry_run:
        flash.check_image(args.image, args.chip)
        for step in flash.FlashPlan(args.port, args.image, args.chip, args.baud).steps():
            print("esptool " + " ".join(step))
        return 0
    report = flash.flash(
        args.port,
        args.image,
        chip=args.chip,
        baud=args.baud,
        then_deploy=not args.no_deploy,
        plant=not args.hardware,
    )
    print(report.summary())
    return 0


def cmd_share(args: argparse.Namespace) -> int:
    host, _, port = args.listen.rpartition(":")
    logging.basicConfig(level=logging.INFO, format="heatrig share: %(message)s")

    def stop(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    srv = share.PortServer(args.port, host or "127.0.0.1", int(port), raw=args.raw, baud=args.baud)
    print(f"{args.port} shared as {srv.url}; Ctrl-C stops it", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        srv.serve_forever()
    return 0

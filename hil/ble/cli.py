"""`heatrig ble ...`: the phone app's view of a kit, from the command line.

    heatrig ble scan                      kits advertising nearby
    heatrig ble info [--address A]        device information, battery, status
    heatrig ble watch [--seconds N]       status, heating and battery notifications
    heatrig ble lock | unlock             the device lock (pairs first)
    heatrig ble find [SECONDS] | find 0   vibrate the holder, or stop it
    heatrig ble doc                       the profile (docs/ble_profile.md)
    heatrig ble update IMAGE              a signed firmware image (pairs first; docs/update.md)

With --sim, the kit is the simulator's, and the phone a Bumble central on a
virtual link: `watch --sim` runs a heating session and prints what the phone
is told, stamped with device time. Without it, bleak talks to a real kit
through this computer's Bluetooth adapter.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from hil.ble import values as P
from hil.ble.client import BleClient, BleError
from hil.rig.dut import Dut

WATCHED = (P.STATUS, P.HEATING, P.BATTERY_LEVEL, P.ALERTS)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    b = sub.add_parser("ble", help="talk to a kit over BLE, as the phone app does")
    b.add_argument(
        "action", choices=("scan", "info", "watch", "lock", "unlock", "find", "doc", "update")
    )
    b.add_argument(
        "seconds", nargs="?", help="find: how long to vibrate (0 stops); update: the image file"
    )
    b.add_argument("--address", help="the kit's BLE address (default: the first kit found)")
    b.add_argument("--sim", action="store_true", help="a simulated kit instead of a real one")
    b.add_argument("--timeout", type=float, default=5.0, help="scan time in seconds")
    b.add_argument("--watch-s", type=float, default=400.0, help="watch: how long (device time)")
    b.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "doc":
        from hil.ble import doc

        print(doc.render(), end="")
        return 0
    if args.action == "update":
        return _update(args)
    with _kit(args.sim) as (phone, sim):
        if args.action == "scan":
            for a in phone.scan(args.timeout):
                print(f"  {a.address}  {a.name or '?':<12} {' '.join(a.service_uuids)}")
            return 0
        phone.connect(args.address)
        if args.action == "info":
            _info(phone)
        elif args.action == "watch":
            _watch(phone, sim, args.watch_s)
        else:
            _pair(phone, sim)
            if args.action in ("lock", "unlock"):
                phone.write(P.LOCK, bytes([args.action == "lock"]))
                print("locked" if P.level(phone.read(P.LOCK)) else "unlocked")
            else:
                seconds = 30 if args.seconds is None else _seconds(args.seconds)
                phone.write(P.FIND, bytes([seconds]))
                print(f"finding: vibrating for {seconds} s" if seconds else "find stopped")
    return 0


def _seconds(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BleError(f"find SECONDS: a whole number of seconds, not {text!r}") from None


def _update(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hil.update import cli as update_cli
    from hil.update import image, transfer
    from hil.wire import store_format

    if args.seconds is None:
        raise BleError("heatrig ble update IMAGE: the signed image to send")
    img = image.read(Path(args.seconds))
    trusted = image.keys_record(image.load_public_key(image.TEST_PUBLIC_KEY))
    files = {"upkeys.a": store_format.slot_file(trusted)} if args.sim else None
    with _kit(args.sim, files) as (phone, sim):
        phone.connect(args.address)
        _pair(phone, sim)
        port = transfer.BlePort(
            phone,
            P.UPDATE_CONTROL,
            P.UPDATE_DATA,
            advance=sim.advance if sim is not None else None,
            clock=(lambda: sim.now_s) if sim is not None else __import__("time").monotonic,
        )
        update_cli.run_update(port, img, commit=True)
        s = port.stats
        print(
            f"  on the air: {s.wire_bytes} bytes of ATT ({s.messages} data writes, MTU {phone.mtu})"
        )
        if sim is not None:
            print(f"  device time {s.device_s:.2f} s")
            sim.follow_reset()
            print("  " + sim.expect_event(r"^update trial ", timeout_s=5.0))
            sim.advance(20.0)
            print("  " + sim.expect_event(r"^update (confirmed|selfcheck failed)", timeout_s=5.0))
    return 0


def _info(phone: BleClient) -> None:
    for name, u in P.DEVICE_INFO_CHARS.items():
        print(f"  {name:<14} {P.text(phone.read(u))}")
    print(f"  {'battery':<14} {P.level(phone.read(P.BATTERY_LEVEL))} %")
    for u in (P.STATUS, P.HEATING, P.ALERTS):
        print(f"  {P.NAMES[u]:<14} {P.describe(u, phone.read(u))}")


def _watch(phone: BleClient, sim: Dut | None, seconds: float) -> None:
    for u in WATCHED:
        phone.subscribe(u)
    if sim is None:
        import time

        end = time.monotonic() + seconds
        seen = 0
        while time.monotonic() < end:
            time.sleep(0.5)
            seen = _print_new(phone, seen)
        return
    sim.press(1.2)  # a session, as a user starts it
    sim.advance(seconds)
    _print_new(phone, 0)


def _print_new(phone: BleClient, seen: int) -> int:
    notes = sorted(
        ((n.t_s, u, n.value) for u in WATCHED for n in phone.notifications(u)),
        key=lambda x: x[0],
    )
    for t, u, value in notes[seen:]:
        print(f"  {t:9.3f} s  {P.NAMES[u]:<14} {P.describe(u, value)}")
    return len(notes)


def _pair(phone: BleClient, sim: Dut | None) -> None:
    if sim is not None:
        sim.charger_double_click()  # the user opens the pairing window
    else:
        print("double-click the charger button to open the pairing window", flush=True)
    phone.pair()


@contextmanager
def _kit(
    sim: bool, flash_files: dict[str, bytes] | None = None
) -> Iterator[tuple[BleClient, Dut | None]]:
    if not sim:
        client = BleClient.bleak()
        try:
            yield client, None
        finally:
            client.close()
        return
    import tempfile
    from pathlib import Path

    from hil.rig.targets import SimTarget

    target = SimTarget()
    with tempfile.TemporaryDirectory(prefix="heatrig-ble-") as tmp:
        dut = Dut(target, log_path=Path(tmp) / "link.log")
        try:
            dut.start(flash_files=flash_files or {})
            client = dut.ble().phone()
            try:
                yield client, dut
            finally:
                client.close()
        finally:
            dut.close()
            target.close()  # its flash


__all__ = ["BleError", "add_parser", "run"]

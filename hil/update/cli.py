"""`heatrig image ...` and `heatrig update ...`: signed update images, and
updating a kit over its console (docs/update.md).

    heatrig image keygen OUT.pem             a key pair (OUT.pem private, OUT.pub.pem)
    heatrig image build --key KEY.pem [-o OUT] [--arch xtensawin] [--hw-min A] [--firmware DIR]
    heatrig image show IMAGE [--trust PUB.pem]
    heatrig update --port PORT IMAGE         over a board's console (a cable)

`heatrig ble update [--sim] IMAGE` sends it over BLE (hil/ble/cli.py), through
the same client (hil/update/transfer.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hil.paths import FIRMWARE_DIR
from hil.update import image, transfer


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    i = sub.add_parser("image", help="signed firmware update images: keygen, build, show")
    i.add_argument("action", choices=("keygen", "build", "show"))
    i.add_argument(
        "path", nargs="?", type=Path, help="keygen: the private key's file; show: the image"
    )
    i.add_argument("--key", type=Path, help="build: the private key (PEM) that signs")
    i.add_argument(
        "-o", "--out", type=Path, help="build: the image file (default build/heatrig-VERSION.hri)"
    )
    i.add_argument("--arch", default="xtensawin", help="build: the target's architecture")
    i.add_argument("--hw-min", default="A", help="build: the lowest hardware revision it runs on")
    i.add_argument("--firmware", type=Path, default=FIRMWARE_DIR, help="build: the firmware tree")
    i.add_argument(
        "--next-key",
        type=Path,
        action="append",
        default=[],
        help="build: a public key that signs the next images (key rotation)",
    )
    i.add_argument("--trust", type=Path, help="show: check the signature with this public key")
    i.add_argument("--bits", type=int, default=3072, help="keygen: RSA key size")
    i.set_defaults(fn=cmd_image)

    u = sub.add_parser("update", help="update a kit's firmware over its console (serial port)")
    u.add_argument("image", type=Path, help="the signed image (heatrig image build)")
    u.add_argument("--port", required=True, help="the kit's serial port, or `virtual`")
    u.add_argument("--baud", type=int, default=115200)
    u.add_argument("--no-commit", action="store_true", help="send and verify only, do not switch")
    u.set_defaults(fn=cmd_update)


def cmd_image(args: argparse.Namespace) -> int:
    if args.action == "keygen":
        if args.path is None:
            raise image.ImageError("heatrig image keygen OUT.pem: where to write the private key")
        priv, pub = image.keygen(args.path, args.bits)
        print(f"private key {priv} (keep it off the repository and off shared disks)")
        print(f"public key  {pub} (provision kits with it: heatrig deploy --update-key)")
        return 0
    if args.action == "build":
        if args.key is None:
            raise image.ImageError("heatrig image build --key KEY.pem: the private key that signs")
        key = image.load_private_key(args.key)
        data = image.build(
            key,
            tree=args.firmware,
            arch=args.arch,
            hw_min=args.hw_min,
            next_keys=[image.load_public_key(p) for p in args.next_key],
        )
        img = image.parse(data)
        out = args.out or Path("build") / f"heatrig-{img.version}-{args.arch}.hri"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        print(f"{out}: heatrig {img.version} for {args.arch}, hardware >= {args.hw_min}, "
              f"{len(img.files())} files, {len(data)} bytes, signed")  # fmt: skip
        return 0
    if args.path is None:
        raise image.ImageError("heatrig image show IMAGE")
    img = image.read(args.path)
    m = img.manifest
    print(f"{args.path}: heatrig {m['version']}, hardware >= {m['hw_min']}, mpy {m['mpy']:#x}, "
          f"{len(data_files := img.files())} files, payload {m['size']} bytes")  # fmt: skip
    for name, size, h in data_files:
        print(f"  {name:<20} {size:>7}  {h[:16]}")
    if args.trust is not None:
        ok = img.verify(image.load_public_key(args.trust))
        print("  signature: " + ("valid" if ok else "NOT valid for this key"))
        return 0 if ok else 1
    return 0


class ProgressBar:
    """One line, redrawn: how much the kit has taken."""

    def __init__(self, out: object = sys.stderr, width: int = 30):
        self.out = out
        self.width = width
        self.last = -1

    def __call__(self, offset: int, total: int, st: transfer.Status) -> None:
        pct = offset * 100 // total if total else 0
        if pct == self.last and st.state == "receiving":
            return
        self.last = pct
        fill = self.width * pct // 100
        note = " (paused: a session heats)" if st.state == "paused" else ""
        print(f"\r  [{'#' * fill}{'.' * (self.width - fill)}] {pct:3d} %  {offset}/{total} B{note}",
              end="", file=self.out, flush=True)  # type: ignore[call-overload]  # fmt: skip

    def done(self) -> None:
        print(file=self.out)  # type: ignore[call-overload]


def run_update(port: transfer.Port, img: image.Image, commit: bool) -> transfer.Status:
    """The transfer with a progress bar, then the switch; prints the end state."""
    print(f"updating to heatrig {img.version} over {port.name} ({len(img.data)} bytes)")
    bar = ProgressBar()
    try:
        st = transfer.send_image(port, img, bar)
    finally:
        bar.done()
    s = port.stats
    print(f"  received and verified by the kit: {s.payload_bytes} bytes in {s.messages} messages, "
          f"{s.wall_s:.1f} s")  # fmt: skip
    if commit:
        port.commit()
        print(
            "  switched: the kit restarts on the new firmware, on trial until its self-checks pass"
        )
    else:
        print("  not switched (--no-commit): `update commit` on the console switches")
    return st


def cmd_update(args: argparse.Namespace) -> int:
    from hil.rig.board import Board
    from hil.rig.link import Link, LinkLog
    from hil.rig.transport import SerialTransport

    img = image.read(args.image)
    vb = None
    port_name = args.port
    if port_name == "virtual":
        raise transfer.UpdateError(
            "--port virtual: start one with `heatrig vboard` and give its port"
        )
    board = Board(port_name, args.baud)
    try:
        link = Link(SerialTransport(board.serial), LinkLog(None))
        console = _LinkConsole(link)
        console.sync()
        run_update(transfer.ConsolePort(console.command, name=f"console {port_name}"), img,
                   not args.no_commit)  # fmt: skip
        if not args.no_commit:
            print("  " + console.wait_event("update trial", 30.0))
    finally:
        board.close()
        del vb
    return 0


class _LinkConsole:
    """Commands and events on a running firmware's console (wall-clock timeouts)."""

    def __init__(self, link: object):
        from hil.rig.link import Link

        assert isinstance(link, Link)
        self.link = link
        self._events = 0

    def command(self, line: str, timeout_s: float = 10.0) -> str:
        import time

        link = self.link
        link.replies.clear()
        link.send_line(line)
        end = time.monotonic() + timeout_s
        while not link.replies:
            if time.monotonic() > end:
                raise transfer.UpdateError(f"no reply to {line!r} within {timeout_s:g} s")
            link.pump(0.05)
        return str(link.replies.popleft())

    def sync(self) -> None:
        reply = self.command("ver")
        if not reply.startswith("OK heatrig"):
            raise transfer.UpdateError(f"not a heatrig console: {reply!r}")
        self._events = len(self.link.events)

    def wait_event(self, prefix: str, timeout_s: float) -> str:
        import time

        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            for e in list(self.link.events)[self._events :]:
                if e.startswith(prefix):
                    return str(e)
            try:
                self.link.pump(0.1)
            except Exception:  # the port drops while the board resets
                time.sleep(0.1)
        raise transfer.UpdateError(f"no {prefix!r} from the kit within {timeout_s:g} s")

"""Deploy the firmware to a board over the raw REPL.

Compile for the board's own architecture (read from the board), copy only the
files whose hash on the board differs, verify every file's hash on the board,
remove what an earlier deploy left that is no longer part of it, then reset
the board and wait for the firmware's boot event.

A board without heater hardware gets the plant models too (processor in the
loop): sim/ and a /boot.py that wires them in before main.py starts the
firmware. `plant=False` deploys the firmware alone, for a board with the real
power stage.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hil.paths import FIRMWARE_DIR, SIM_DIR, firmware_version
from hil.rig.board import Board, BoardError, BoardInfo
from hil.simulator import native, toolchain
from hil.wire import events, frames

MANIFEST = "heatrig.json"  # on the board: what the last deploy put there
BOOT_TIMEOUT_S = 10.0

# The MicroPython releases heatrig runs on: from the first that loads the .mpy
# format mpy-cross emits (v6.3, MicroPython 1.23) up to the newest the firmware
# is checked against (the ESP32 stubs of pyproject.toml's [tool.heatrig], 1.29;
# the simulator runs 1.28). Below MICROPYTHON_BELOW, that is.
MICROPYTHON_MIN = (1, 23, 0)
MICROPYTHON_BELOW = (1, 30, 0)
MICROPYTHON_IMAGES = "https://micropython.org/download/ESP32_GENERIC/"


@dataclass(frozen=True)
class Image:
    path: str  # on the board
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class DeployReport:
    port: str
    board: BoardInfo
    plant: bool
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    verified: int = 0
    boot_event: str | None = None
    seconds: float = 0.0
    native: native.BudgetReport | None = None  # on an ESP32, in its IRAM

    def summary(self) -> str:
        kind = "processor in the loop (plant on board)" if self.plant else "firmware only"
        lines = [
            f"{self.port}: MicroPython {self.board.version} on {self.board.platform}, "
            f"{self.board.arch}, .mpy v{self.board.mpy_version[0]}.{self.board.mpy_version[1]}",
            f"  deployed heatrig {firmware_version()}, {kind}",
            f"  copied {len(self.copied)}, unchanged {len(self.unchanged)}, "
            f"removed {len(self.removed)}; {self.verified} files verified by sha256 on the board",
        ]
        if self.native is not None:
            lines.append("  " + self.native.summary())
        if self.copied:
            lines.append("  copied: " + " ".join(self.copied))
        if self.boot_event is not None:
            lines.append(f"  started: {self.boot_event}")
        lines.append(f"  in {self.seconds:.1f} s")
        return "\n".join(lines)


def images(arch: str, plant: bool) -> list[Image]:
    """Every file of the deploy: firmware modules compiled for `arch`, main.py
    (and boot.py) as source, since MicroPython runs those two from source.
    The plant's modules (processor in the loop) are bytecode but for a few
    hot functions (toolchain.PIL_NATIVE): an ESP32 has little IRAM for native code."""
    mods = toolchain.pil_modules(arch)
    out = [Image("main.py", (FIRMWARE_DIR / "main.py").read_bytes())]
    out += [Image(p.name, p.read_bytes()) for p in sorted(mods.glob("*.mpy")) if p.stem != "main"]
    if plant:
        out += [
            Image(p.relative_to(mods).as_posix(), p.read_bytes())
            for p in sorted((mods / "sim").rglob("*.mpy"))
        ]
        out.append(Image("boot.py", (SIM_DIR / "boot_pil.py").read_bytes()))
    return out


def supported_range() -> str:
    lo = ".".join(map(str, MICROPYTHON_MIN))
    hi = f"{MICROPYTHON_BELOW[0]}.{MICROPYTHON_BELOW[1] - 1}.x"
    return f"{lo} to {hi}"


def check_version(info: BoardInfo, port: str) -> None:
    """A BoardError unless the board's MicroPython is in the supported range."""
    try:
        version = tuple(int(x) for x in info.version.split(".")[:3])
    except ValueError:
        version = ()
    if MICROPYTHON_MIN <= version < MICROPYTHON_BELOW:
        return
    raise BoardError(
        f"{port} runs MicroPython {info.version} ({info.platform}); heatrig supports "
        f"MicroPython {supported_range()}. Flash a supported release first: "
        f"`heatrig flash --port {port} --image ESP32_GENERIC-v1.28.0.bin` "
        f"(images: {MICROPYTHON_IMAGES}), then deploy again"
    )


def check_compatible(info: BoardInfo) -> str:
    """The -march for this board, or a BoardError saying why it cannot run heatrig."""
    if info.arch is None:
        raise BoardError(
            f"the board's MicroPython ({info.version}, {info.platform}) has no native code "
            f"emitter, which the firmware's control loop needs: flash a standard build"
        )
    want = toolchain.mpy_version()
    if info.mpy_version != want:
        raise BoardError(
            f"the board loads .mpy v{info.mpy_version[0]}.{info.mpy_version[1]} "
            f"(MicroPython {info.version}) but mpy-cross emits v{want[0]}.{want[1]}: flash "
            f"MicroPython 1.23 or later onto the board (the .mpy format of mpy-cross "
            f"{want[0]}.{want[1]})"
        )
    return info.arch


def native_budget(plant: bool) -> native.BudgetReport:
    """The native code an ESP32 would load from this deploy, against its
    IRAM budget (hil/simulator/native.py): every deployed module counted as
    loaded but those only the virtual board imports, compiled for the ESP32
    whatever the board at hand."""
    mods = native.read_tree(toolchain.pil_modules("xtensawin"))
    virtual = {rel.replace(".py", ".mpy") for rel in toolchain.VIRTUAL_ONLY}
    return native.BudgetReport(
        [m for m in mods if (plant or not m.path.startswith("sim/")) and m.path not in virtual]
    )


def check_native_budget(plant: bool) -> native.BudgetReport:
    rep = native_budget(plant)
    if not rep.fits:
        raise BoardError(
            f"the deploy's native code would not fit an ESP32's IRAM: {rep.committed_bytes} "
            f"bytes, budget {rep.budget_bytes} (largest: {rep.biggest()}). Keep "
            f"@micropython.native/viper for the hot functions only (sim/: toolchain.PIL_NATIVE)"
        )
    return rep


def deploy(
    board: Board, *, plant: bool = True, start: bool = True, say: Callable[[str], None] = print
) -> DeployReport:
    t0 = time.monotonic()
    board.to_repl()
    info = board.info()
    check_version(info, board.port)
    arch = check_compatible(info)
    if info.is_virtual and not plant:
        raise BoardError("the virtual board has no heater hardware: deploy it with the plant")
    report = DeployReport(board.port, info, plant, native=check_native_budget(plant))
    imgs = images(arch, plant)
    manifest = _manifest(imgs, arch, plant)
    paths = [i.path for i in imgs] + [MANIFEST]
    remote = board.hashes(paths)
    old = _old_files(board) if remote[MANIFEST] is not None else []
    todo = [i for i in imgs if remote[i.path] != i.sha256]
    report.unchanged = [i.path for i in imgs if remote[i.path] == i.sha256]
    for d in _folders([i.path for i in todo]):
        board.mkdir(d)
    for img in todo:
        say(f"  copy {img.path} ({len(img.data)} bytes)")
        board.write(img.path, img.data)
        report.copied.append(img.path)
    for path in sorted(set(old) - {i.path for i in imgs}):
        board.remove(path)
        report.removed.append(path)
    after = board.hashes(i.path for i in imgs)
    bad = [i.path for i in imgs if after[i.path] != i.sha256]
    if bad:
        raise BoardError(
            f"verification failed on {board.port}: {', '.join(bad)} differ from what was sent "
            f"(flash full or failing?); deploy again, and check free space with "
            f"`mpremote connect {board.port} df`"
        )
    report.verified = len(imgs)
    if remote[MANIFEST] != hashlib.sha256(manifest).hexdigest():
        board.write(MANIFEST, manifest)
    if start:
        board.hard_reset()
        report.boot_event = wait_boot(board, BOOT_TIMEOUT_S)
    report.seconds = time.monotonic() - t0
    return report


def _manifest(imgs: list[Image], arch: str, plant: bool) -> bytes:
    rec = {
        "firmware_version": firmware_version(),
        "arch": arch,
        "plant": plant,
        "files": {i.path: i.sha256 for i in imgs},
    }
    return (json.dumps(rec, sort_keys=True, indent=1) + "\n").encode()


def _folders(paths: list[str]) -> list[str]:
    """Every folder the paths need, parents before their children."""
    out = {p.rsplit("/", k)[0] for p in paths for k in range(1, p.count("/") + 1)}
    return sorted(out, key=lambda d: (d.count("/"), d))


def _old_files(board: Board) -> list[str]:
    text = board.read_text(MANIFEST)
    try:
        return sorted(json.loads(text or "{}").get("files", {}))
    except ValueError:
        return []


def board_deployed(board: Board) -> bool:
    """Whether heatrig was deployed to the board before (its manifest is there)."""
    return MANIFEST in board.files()


def board_has_plant(board: Board) -> bool:
    """What the last deploy put on the board: the plant (PIL) or the firmware alone."""
    text = board.read_text(MANIFEST)
    try:
        return bool(json.loads(text or "{}").get("plant", False))
    except ValueError:
        return False


def wait_boot(board: Board, timeout_s: float) -> str:
    """The firmware's boot event after a reset, or a BoardError with what came instead."""
    dec = frames.Decoder()
    seen = bytearray()
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        board.serial.timeout = 0.05
        data = board.serial.read(max(1, board.serial.in_waiting))
        if not data:
            continue
        got, text = dec.feed(data)
        seen += text
        for f in got:
            if f.ftype == frames.T_EVENT and f.payload.startswith(events.BOOT.encode()):
                return frames.text(f.payload)
    raise BoardError(
        f"the firmware did not start on {board.port} within {timeout_s:.0f} s after the reset; "
        f"the board said: {bytes(seen[-400:]).decode(errors='replace')!r}"
    )


UPDATE_KEYS = "upkeys"  # the store record of the public keys that sign updates (docs/update.md)


def provision_update_keys(board: Board, moduli_hex: list[str]) -> None:
    """Write the kit's trusted update keys (RSA moduli, hex; e = 65537) as
    its store record, replacing any (the firmware reads it at each update)."""
    from hil.wire import store_format

    board.remove(f"{UPDATE_KEYS}.a", f"{UPDATE_KEYS}.b")
    board.write(f"{UPDATE_KEYS}.a", store_format.slot_file({"keys": moduli_hex}))

"""The firmware's heap on a 32-bit MicroPython, against the ESP32 port's.

The simulator runs on the 64-bit unix port, where every object takes about
twice its ESP32 size: its heap figures are a stand-in. This check runs the
same firmware and simulator on a 32-bit MicroPython -- the WebAssembly port
(npm @micropython/micropython-webassembly-pyscript, wasm32; `make test`
installs it into wasm/ with `npm ci`) under Node -- through a session with
BLE active and a phone on it, and reads the firmware's live heap: after boot
and at its peak (sim/probe/heap.py).

That port has no native emitter: @micropython.native and @micropython.viper
are taken off (toolchain.strip_emitters) and those functions run as
bytecode, which lives on the heap -- on the ESP32 their machine code is in
IRAM. Viper's casts (ptr8/16/32) get stand-ins. Both make the figure
conservative.

The budget, from MicroPython's ESP32 port:
- the GC heap starts at MICROPY_GC_INITIAL_HEAP_SIZE, 56 KiB on the ESP32
  (ports/esp32/mpconfigport.h), and grows (MICROPY_GC_SPLIT_HEAP_AUTO: py/gc.c
  gc_try_add_heap) by a new area the size of the whole heap so far, taken
  from the largest free block of ESP-IDF's heap (ports/esp32/gccollect.c:
  gc_get_max_new_split). The port sizes the first area "so they can grow the
  heap once (double it) and still have enough internal RAM to start WiFi and
  make a HTTPS request" (mpconfigport.h): one growth, 112 KiB in all, is what
  the port plans for. The firmware's budget is that, less the GC's tables.
- NimBLE's host and controller live in ESP-IDF's heap, not the GC's: with
  BLE on and no WiFi there is less drawn from it than the port allows for.
  MicroPython's NimBLE bindings do allocate on the GC heap: the event ring
  and IRQ data (extmod/modbluetooth.c) and, for the GATT table, a service
  definition per service, a characteristic definition, a UUID and a value
  entry with its 20-byte buffer per characteristic and descriptor
  (extmod/nimble/modbluetooth_nimble.c). The check adds an estimate of those
  to the measured peak, though the emulated radio's own tables (which stand
  in for them) are in the measurement already.
- the margin asked for: a quarter of the budget, free at the peak. The GC
  does not compact; what a board needs beyond the live objects (garbage
  between collections, fragmentation, the growth's area being found in one
  block) is left to that room.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hil.paths import FIRMWARE_DIR, ROOT, SCENARIOS_DIR, SIM_DIR
from hil.scenarios import scenario
from hil.simulator import runner, toolchain
from hil.simulator.toolchain import ModuleSource, ToolError
from hil.wire import frames

WASM_DIR = ROOT / "wasm"
PACKAGE = WASM_DIR / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"

INITIAL_HEAP_BYTES = 56 * 1024  # ports/esp32/mpconfigport.h, ESP32
GROWTHS = 1  # the growth the port plans for (see above)
BYTES_PER_BLOCK = 16  # py/gc.c: 4 words of 32 bits
# py/gc.c: a byte of allocation table per 4 blocks and one of finaliser table
# per 8 (machine.Timer needs MICROPY_ENABLE_FINALISER): the usable share
_TABLES = BYTES_PER_BLOCK / (BYTES_PER_BLOCK + 1 / 4 + 1 / 8)
BUDGET_BYTES = int((1 + GROWTHS) * INITIAL_HEAP_BYTES * _TABLES)
MARGIN_SHARE = 0.25
# MicroPython's NimBLE bindings on the GC heap (32-bit), per the sources above
NIMBLE_FIXED_BYTES = 128 + 128 + 64  # event ring, IRQ data, root pointers
NIMBLE_PER_SERVICE_BYTES = 2 * 20 + 20  # ble_gatt_svc_def[2], a 128-bit UUID
NIMBLE_PER_ATTRIBUTE_BYTES = 28 + 20 + 16 + 20 + 4  # definition, UUID, db entry, buffer, handle

HANDSET = "a1b2c3d4e5f6"
CHAR = "7e1a{:04x}-5c1d-4b8e-9f2a-6b3c4d5e6f70"

# One run to the instant T_US, in parts (wasm/heap32.mjs: "#%%" ends one;
# this port collects garbage only between them). The firmware's objects stay
# reachable once its run has ended there: its timer is the kernel's, its IRQ
# handler the emulated radio's.
_DRIVER = """\
import sys, os, builtins, gc
sys.path[:] = ["/lib", ".frozen"]


class _Ptr:
    # viper's pointer casts, for functions that run as bytecode here
    def __init__(self, buf, size):
        self.b = buf
        self.n = size

    def __getitem__(self, i):
        b, n = self.b, self.n
        v = 0
        for k in range(n - 1, -1, -1):
            v = v << 8 | b[i * n + k]
        return v


builtins.ptr8 = lambda b: b
builtins.ptr16 = lambda b: _Ptr(b, 2)
builtins.ptr32 = lambda b: _Ptr(b, 4)
os.chdir("/device")
import json
from sim import run
from sim.kernel import K, SimEnd
with open("run.json") as f:
    cfg = json.load(f)
rec = run.setup(cfg)
# no _thread on this port: the BLE IRQ handler runs inline (its stack is not heap)
run.install(rec, False, True, ble_irq_stack=0)
cfg = None
gc.collect()
#%%
base = gc.mem_alloc()
#%%
K.set_end(T_US)
why = "firmware_returned"
try:
    import main
except SimEnd as e:
    why = e.reason
gc.collect()
#%%
run.info("heap32 t_us=%d live=%d reason=%s" % (K.now_us, gc.mem_alloc() - base, why))
"""


@dataclass(frozen=True)
class Heap32Report:
    micropython: str  # the 32-bit interpreter
    live: dict[float, int]  # the firmware's live heap at each instant (s) of the run
    nimble_bytes: int  # the NimBLE bindings' GC-heap estimate, added
    budget_bytes: int = BUDGET_BYTES

    @property
    def boot_bytes(self) -> int:
        return self.live[min(self.live)]

    @property
    def peak_bytes(self) -> int:
        return max(self.live.values())

    @property
    def peak_at_s(self) -> float:
        return max(self.live, key=lambda t: self.live[t])

    @property
    def needed_bytes(self) -> int:
        return self.peak_bytes + self.nimble_bytes

    @property
    def margin_bytes(self) -> int:
        return self.budget_bytes - self.needed_bytes

    @property
    def holds(self) -> bool:
        return self.margin_bytes >= MARGIN_SHARE * self.budget_bytes

    def summary(self) -> str:
        at = ", ".join(f"{t:g} s {b}" for t, b in sorted(self.live.items()))
        return (
            f"32-bit heap ({self.micropython}), the firmware's live bytes: after boot "
            f"{self.boot_bytes}, peak {self.peak_bytes} (at {self.peak_at_s:g} s of a session "
            f"with BLE; at {at}); + NimBLE bindings {self.nimble_bytes} = {self.needed_bytes} "
            f"of a {self.budget_bytes} budget (ESP32: 56 KiB grown once); margin "
            f"{self.margin_bytes} ({100 * self.margin_bytes / self.budget_bytes:.0f} %, at least "
            f"{100 * MARGIN_SHARE:.0f} % asked)"
        )


def node() -> str:
    exe = shutil.which("node")
    if exe is None:
        raise ToolError("node not found: the 32-bit heap check runs MicroPython's WebAssembly port")
    if not PACKAGE.exists():
        raise ToolError(
            f"the 32-bit MicroPython is not installed in {WASM_DIR}: `make test` installs it "
            f"(`cd wasm && npm ci`)"
        )
    return exe


def modules() -> Path:
    """Firmware and simulator as bytecode (mpy-cross, no native code)."""
    sources = [
        ModuleSource(p.name, toolchain.strip_emitters(p.read_text(encoding="utf-8")))
        for p in sorted(FIRMWARE_DIR.glob("*.py"))
    ]
    sources += [
        ModuleSource(
            f"sim/{p.relative_to(SIM_DIR).as_posix()}",
            toolchain.strip_emitters(p.read_text(encoding="utf-8")),
        )
        for p in sorted(SIM_DIR.rglob("*.py"))
    ]
    return toolchain.compiled_modules("heap32", sources, "")


def phone_events(start_s: float) -> list[list[object]]:
    """A phone on the emulated radio (docs/ble_sim.md): connects, pairs in the
    window the charger button's double click opens, subscribes, writes a
    setting and reads the profile, all before the session starts."""
    t = start_s
    ev: list[list[object]] = []

    def at(dt: float, kind: str, arg: object) -> None:
        nonlocal t
        t += dt
        ev.append([round(t * 1e6), kind, arg])

    at(0.0, "ble", ["conn", "1", "0", HANDSET])
    at(0.05, "ble", ["mtu", "1", "247"])
    for _ in range(2):  # the charger button's double click: the pairing window
        at(0.1, "charger_button", True)
        at(0.1, "charger_button", False)
    at(0.1, "ble", ["cupd", "1", "24", "0", "400", "0"])
    key = "00" + HANDSET
    bond = key + "01" + "11" * 16 + "22" * 16 + "33" * 16
    at(0.1, "ble", ["sset", "2", key, bond])
    at(0.01, "ble", ["enc", "1", "1", "0", "1", "16"])
    for n in (1, 2, 7, 8, 12, 13):
        at(0.05, "ble", ["rd", "1", f"uuid:{CHAR.format(n)}"])
    at(0.05, "ble", ["wr", "1", f"uuid:{CHAR.format(5)}", "010332"])
    return ev


# when the live heap is read: after boot; the phone connected, paired, the
# profile read and a setting written; heating, with the first puff; two
# minutes in; the session over (6:00), its records written
INSTANTS_S = (0.3, 2.0, 12.0, 120.0, 365.0)


def run(instants_s: tuple[float, ...] = INSTANTS_S) -> Heap32Report:
    """The HCI session with BLE on and a phone on it, run to each instant
    afresh, the firmware's live heap read there."""
    exe = node()
    sc = scenario.load(SCENARIOS_DIR / "hci.toml")  # each run ends at its instant
    cfg = sc.run_config()
    cfg["events"] = sorted([*cfg["events"], *phone_events(0.5)], key=_t_us)
    cfg.update(sample_us=0)
    mods = modules()
    with tempfile.TemporaryDirectory(prefix="heatrig-heap32-") as tmp:
        flash = Path(tmp) / "flash"
        flash.mkdir()
        for name, data in runner.device_files(sc, cfg).items():
            if data is not None:
                (flash / name).write_bytes(data)
        drivers = []
        for t in instants_s:
            d = Path(tmp) / f"to_{t:g}.py"
            d.write_text(_DRIVER.replace("T_US", str(round(t * 1e6))))
            drivers.append(str(d))
        r = subprocess.run(
            [exe, str(WASM_DIR / "heap32.mjs"), str(mods), str(flash), *drivers],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=900,
            check=False,
        )
    got, stray = frames.Decoder().feed(r.stdout)
    info = [frames.text(f.payload) for f in got if f.ftype == frames.T_PLANT_INFO]
    live: dict[float, int] = {}
    for line in info:
        if line.startswith("heap32 "):
            w = dict(x.split("=", 1) for x in line.split()[1:])
            if w["reason"] != "end_of_scenario":
                raise ToolError(f"the 32-bit run ended early: {line}")
            live[int(w["t_us"]) / 1e6] = int(w["live"])
    if r.returncode != 0 or len(live) != len(instants_s):
        raise ToolError(
            f"the 32-bit run failed (node exit {r.returncode}): "
            f"{r.stderr.decode(errors='replace')[-800:]}"
            f"{bytes(stray[-400:]).decode(errors='replace')}"
        )
    ble = [frames.text(f.payload) for f in got if f.ftype == frames.T_BLE]
    svcs = sum(1 for line in ble if line.startswith("svc ")) // len(instants_s)
    attrs = sum(1 for line in ble if line.startswith(("chr ", "dsc "))) // len(instants_s)
    nimble = NIMBLE_FIXED_BYTES + svcs * NIMBLE_PER_SERVICE_BYTES
    nimble += attrs * NIMBLE_PER_ATTRIBUTE_BYTES
    return Heap32Report(micropython=_version(exe), live=live, nimble_bytes=nimble)


def _t_us(event: list[object]) -> int:
    t = event[0]
    assert isinstance(t, int)
    return t


def _version(exe: str) -> str:
    pkg = json.loads((PACKAGE / "package.json").read_text())
    return f"MicroPython {pkg['version']} wasm32"


def main() -> int:
    """`make test`: the figures, and a non-zero exit if the margin is short."""
    try:
        rep = run()
    except ToolError as e:
        print(f"heatrig heap32: {e}", file=sys.stderr)
        return 2
    print(rep.summary())
    if not rep.holds:
        short = f"less than {100 * MARGIN_SHARE:.0f} % of the budget left"
        print(f"heatrig heap32: {short}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

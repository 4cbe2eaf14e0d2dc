"""`heatrig board-check`: what a board is, beside what the simulator assumes.

Over the raw REPL it runs sim/probe/board.py on whatever is behind the port
and reads back one JSON object: the MicroPython version, each ADC input of
board.py with the heater off (its rest reading, code, noise, the eFuse Vref
its calibration implies, or the OSError of a chip without calibration), the
GC heap and ESP-IDF's heaps (data: what the GC heap grows into; executable:
room for native code), the control step's time and its timer's jitter over a
window, and the stall of the step while a record is written to flash.

On the virtual board the simulator's emulation is set up first and answers
for the chip (its own values, in virtual time). On a board the `machine`
module is the board's own, whatever a processor-in-the-loop boot.py
installed. The result is printed beside the simulator's figures and written
as JSON, whose "plant" and "run" parts `heatrig sim --board FILE` takes as
the unit's board parameters (docs/esp32.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.paths import SIM_DIR
from hil.rig.board import Board, BoardError
from hil.scenarios import plant_params
from hil.simulator import heap32, native
from hil.wire import contract

_BOARD = contract.firmware("board")
# the ADC inputs of board.py, by name
ADC_INPUTS = (
    ("heater_v", _BOARD.integer("PIN_ADC_HEATER_V")),
    ("heater_i", _BOARD.integer("PIN_ADC_HEATER_I")),
    ("cell_v", _BOARD.integer("PIN_ADC_CELL_V")),
    ("cell_ntc", _BOARD.integer("PIN_ADC_CELL_NTC")),
    ("ambient_ntc", _BOARD.integer("PIN_ADC_AMBIENT_NTC")),
    ("mux", _BOARD.integer("PIN_ADC_MUX")),
)
IDF_FLOOR_UV = contract.firmware("adccal").integer("IDF_FLOOR_UV")
SLACK_S = 60.0  # beyond the window: the ADC, the heaps, the firmware's import

# the emulation behind the virtual board's REPL: the plant at rest, a stick in
_EMULATION = """\
from sim import run as _run
_cfg = {"seed": 1, "plant": {}, "events": [[0, "stick", True]], "sample_us": 0}
_run.install(_run.setup(_cfg), False)
"""
_REAL_MACHINE = "import sys\nsys.modules.pop('machine', None)\n"


@dataclass
class BoardCheck:
    port: str
    virtual: bool
    measured: dict[str, Any]

    # --- what the simulator takes of it -----------------------------------------------
    def sim_params(self) -> dict[str, Any]:
        """The unit's board parameters for `heatrig sim --board`: "plant"
        (sim/models/params.py) and "run" (the run configuration)."""
        m = self.measured
        plant: dict[str, float] = {}
        vrefs = [ch["vref_mv"] for ch in m["adc"].values() if "vref_mv" in ch]
        errors = [ch for ch in m["adc"].values() if "error" in ch]
        plant["adc_cal"] = 0.0 if errors else 1.0
        if vrefs:
            plant["adc_vref_mv"] = float(min(1200, max(1000, sorted(vrefs)[len(vrefs) // 2])))
        v = m["micropython"]["version"].split(".")
        if len(v) >= 2 and v[0] == "1" and v[1].isdigit():
            plant["mp_minor"] = float(v[1])
        prog = _default("flash_prog_us")
        gap = m["flash"]["step_gap_us"] - 10_000  # the step's delay beyond its period
        if gap > 0:
            # a record write on the model: a commit, an erase and its pages (sim/mpapi/vflash.py)
            plant["flash_erase_us"] = float(max(0, gap - 3 * prog))
        run: dict[str, Any] = {}
        st = m["step"]
        if st["jitter_p99_us"] or st["jitter_max_us"]:
            outliers = max(1, st["late_starts"])
            run["timer_latency"] = [
                st["jitter_p99_us"], st["jitter_max_us"], max(1, st["steps"] // outliers), 1,
            ]  # fmt: skip
        return {"plant": plant, "run": run}

    def as_json(self) -> dict[str, Any]:
        out = {"port": self.port, "virtual": self.virtual, "board": self.measured}
        return {**out, **self.sim_params()}

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=1) + "\n")
        return path

    # --- the table -------------------------------------------------------------------------
    def table(self) -> str:
        m = self.measured
        mp = m["micropython"]
        rows: list[tuple[str, str, str]] = [
            ("MicroPython", f"{mp['version']} ({mp['platform']})", "the ESP32 port, emulated"),
        ]
        for name, ch in m["adc"].items():
            if "error" in ch:
                got = f"raw {ch['raw']}, read_uv {ch['error']}"
            else:
                got = f"{ch['uv']} uV (raw {ch['raw']}, noise {ch['noise_uv']} uV"
                got += f", Vref {ch['vref_mv']} mV)" if "vref_mv" in ch else ")"
            rows.append((f"ADC {name} (GPIO {ch['pin']}) at rest", got, _sim_adc(name)))
        h = m["heap"]
        initial, grown = heap32.INITIAL_HEAP_BYTES, heap32.BUDGET_BYTES
        rows += [
            ("GC heap free / used", f"{h['gc_free']} / {h['gc_used']} B",
             f"{initial} B at boot, grown once: {grown} B"),
            ("IDF data heap free / largest", _pair(h, "idf_data"),
             f"a {initial} B block, for the GC heap's growth"),
            ("IDF exec heap free / largest", _pair(h, "idf_exec"),
             f"{native.BUDGET_BYTES} B for native code"),
        ]  # fmt: skip
        st = m["step"]
        what = "the firmware's step" if st["firmware"] else "an empty callback (no firmware)"
        jitter = (
            f"p50 {st['jitter_p50_us']} us, p99 {st['jitter_p99_us']} us, "
            f"max {st['jitter_max_us']} us"
        )
        fl = m["flash"]
        rows += [
            (f"control step ({what})", f"mean {st['step_mean_us']} us, max {st['step_max_us']} us",
             "virtual: no time"),
            (f"timer jitter over {st['window_ms'] / 1000:g} s", jitter,
             "0 (injected with timer_latency)"),
            (f"flash: a {fl['record_bytes']} B record",
             f"write {fl['write_us']} us, step gap {fl['step_gap_us']} us",
             f"{_sim_record_us()} us (erase + pages + commit)"),
        ]  # fmt: skip
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        head = f"{'':<{w0}}  {'board (' + self.port + ')':<{w1}}  simulator"
        return "\n".join([head] + [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows])


def _pair(h: dict[str, Any], key: str) -> str:
    if key + "_free" not in h:
        return "n/a (not an ESP32)"
    return f"{h[key + '_free']} / {h[key + '_largest']} B"


def _default(name: str) -> float:
    v = plant_params.defaults()[name]
    assert isinstance(v, (int, float))
    return float(v)


def _sim_adc(name: str) -> str:
    if name in ("heater_v", "heater_i"):
        return f"{IDF_FLOOR_UV} uV: 0 V reads the calibration's offset"
    return f"Vref {_default('adc_vref_mv'):g} mV, noise {_default('adc_noise_lsb'):g} LSB rms"


def _sim_record_us() -> int:
    """A record of 300 B on the flash model (sim/mpapi/vflash.py): a commit,
    a sector erase and two pages."""
    return int(_default("flash_erase_us") + 3 * _default("flash_prog_us"))


# --- running it -------------------------------------------------------------------------------
def probe_code(window_ms: int, virtual: bool) -> str:
    pins = [(name, pin) for name, pin in ADC_INPUTS]
    return (
        (_EMULATION if virtual else _REAL_MACHINE)
        + (SIM_DIR / "probe" / "board.py").read_text()
        + f"\nimport json\nprint('BOARDCHECK ' + json.dumps(measure({window_ms}, {pins!r})))\n"
    )


def check(board: Board, window_s: float = 60.0) -> BoardCheck:
    """Measure the board (in its REPL: the firmware stopped)."""
    board.to_repl()
    info = board.info()
    board.start(probe_code(round(window_s * 1000), info.is_virtual))
    seen = bytearray()
    deadline = window_s + SLACK_S
    t0 = time.monotonic()
    if not board.wait_program_end(deadline, seen):
        raise BoardError(
            f"{board.port}: the board check did not finish within {deadline:.0f} s; it said: "
            f"{bytes(seen[-400:]).decode(errors='replace')!r}"
        )
    text = bytes(seen).decode(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith("BOARDCHECK ")), None)
    if line is None:
        took = time.monotonic() - t0
        tail = text[-600:]
        raise BoardError(f"{board.port}: the board check failed after {took:.0f} s: {tail!r}")
    return BoardCheck(board.port, info.is_virtual, json.loads(line[len("BOARDCHECK ") :]))


def load_params(path: Path) -> dict[str, Any]:
    """The "plant" and "run" parts of a board-check JSON, for `heatrig sim --board`."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BoardError(f"{path}: not a board-check result ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("plant"), dict):
        raise BoardError(f'{path}: no "plant" table: write it with `heatrig board-check --out`')
    known = set(plant_params.PLANT_PARAMS)
    bad = [k for k in data["plant"] if k not in known]
    if bad:
        raise BoardError(f"{path}: unknown board parameters {', '.join(bad)}")
    return {"plant": dict(data["plant"]), "run": dict(data.get("run") or {})}

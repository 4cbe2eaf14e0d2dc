"""A run's record: telemetry columns (the firmware's frames, joined with the
simulator's truth where there is one), metadata, and the device's events;
written to and read from CSV with a metadata header.

The CSV holds one row per control step. Values come from integers in the
frames and are printed with fixed decimals, so the same run gives the same
bytes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hil.wire import contract, frames

FORMAT_VERSION = 1

_STATES = contract.firmware("states")
STATE_NAMES = _STATES.enum("NAMES")
END_NAMES = _STATES.names("END_NAMES")
FAULT_NAMES = contract.firmware("faults").enum("NAMES")
# a session's states, as the firmware counts them (app.py: PREHEAT <= state <= END_WARNING)
HEATING_STATES = tuple(range(_STATES.integer("PREHEAT"), _STATES.integer("END_WARNING") + 1))
COOLING = _STATES.integer("COOLING")
FAULT = _STATES.integer("FAULT")

_TELEMETRY = contract.firmware("telemetry")
FLAG_HEATER_EN = _TELEMETRY.integer("FLAG_HEATER_EN")
FLAG_PUFF = _TELEMETRY.integer("FLAG_PUFF")
FLAG_STICK = _TELEMETRY.integer("FLAG_STICK")
FLAG_READY = _TELEMETRY.integer("FLAG_READY")
FLAG_IDLE_RATE = _TELEMETRY.integer("FLAG_IDLE_RATE")  # stepped at 1 Hz (asleep)

_PLANT = contract.sim("plant")  # the truth sample's io bits
IO_BUTTON = _PLANT.integer("IO_BUTTON")
IO_STICK = _PLANT.integer("IO_STICK")
IO_VIBRATION = _PLANT.integer("IO_VIBRATION")
IO_HEATER_EN = _PLANT.integer("IO_HEATER_EN")
IO_FAULT_INJECTED = _PLANT.integer("IO_FAULT_INJECTED")

# name, format, source (fw: firmware frame, sim: truth sample)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("t_s", "%.6f"),  # the steps' own stamps, to the us (jitter is in us)
    ("state", "%d"),
    ("setpoint_c", "%.1f"),
    ("temp_c", "%.1f"),
    ("duty", "%d"),
    ("power_w", "%.3f"),
    ("cell_v", "%.3f"),
    ("heater_a", "%.3f"),
    ("heater_v", "%.3f"),
    ("puffs", "%d"),
    ("puff", "%d"),
    ("ready", "%d"),
    ("heater_en", "%d"),
    ("stick", "%d"),
    ("fault", "%d"),
    ("end_reason", "%d"),
    ("seq", "%d"),
    ("idle_rate", "%d"),
    ("blade_true_c", "%.2f"),
    ("plug_true_c", "%.2f"),
    ("power_true_w", "%.3f"),
    ("cell_true_v", "%.4f"),
    ("cell_ocv_v", "%.4f"),
    ("soc_pct", "%.3f"),
    ("flow_ml_s", "%.2f"),
    ("energy_j", "%.2f"),
    ("ambient_c", "%.1f"),
    ("vibration", "%d"),
    ("fault_injected", "%d"),
)
TRUTH_COLUMNS = COLUMNS[[n for n, _ in COLUMNS].index("blade_true_c") :]


@dataclass
class TelemetrySeries:
    meta: dict[str, str]
    cols: dict[str, np.ndarray]
    events: list[tuple[float, str]] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)  # simulator's run info

    def __len__(self) -> int:
        return len(self.cols["t_s"])

    @property
    def has_truth(self) -> bool:
        return bool(len(self)) and not np.isnan(self.cols["blade_true_c"]).all()

    def write_csv(self, path: Path) -> None:
        path.write_text(self.to_csv(), encoding="utf-8")

    def to_csv(self) -> str:
        out = io.StringIO()
        out.write("# heatrig telemetry\n")
        out.write(f"# format: {FORMAT_VERSION}\n")
        for k, v in self.meta.items():
            out.write(f"# {k}: {v}\n")
        names = [n for n, _ in COLUMNS]
        out.write(",".join(names) + "\n")
        fmts: list[str] = []
        data: list[object] = []
        for name, f in COLUMNS:
            col = self.cols[name]
            if f == "%d" and np.isnan(col).any():  # no truth (a board): empty cells
                col = np.array(["" if np.isnan(v) else str(int(v)) for v in col], dtype=object)
                f = "%s"
            fmts.append(f)
            data.append(col)
        fmt = ",".join(fmts) + "\n"
        for row in zip(*data, strict=True):
            out.write((fmt % row).replace("nan", ""))
        return out.getvalue()


def read_csv(path: Path) -> TelemetrySeries:
    meta: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    body = []
    for line in lines:
        if line.startswith("#"):
            k, sep, v = line[1:].partition(":")
            if sep:
                meta[k.strip()] = v.strip()
        else:
            body.append(line)
    reader = csv.reader(body)
    header = next(reader)
    rows = list(reader)
    cols = {}
    for j, name in enumerate(header):
        cols[name] = np.array([float(r[j]) if r[j] != "" else np.nan for r in rows])
    meta.pop("format", None)
    return TelemetrySeries(meta=meta, cols=cols)


def build(
    telemetry: Sequence[bytes | memoryview],
    truth: Sequence[bytes | memoryview],
    meta: dict[str, str],
    ticks_offset_us: int | None,
) -> TelemetrySeries:
    """Join firmware telemetry payloads with truth payloads (if any) by time."""
    tel = np.frombuffer(b"".join(telemetry), dtype=_TEL_DTYPE)
    n = len(tel)
    t_us = _unwrap_ticks(tel["t_us"].astype(np.int64), ticks_offset_us)
    cols: dict[str, np.ndarray] = {
        "t_s": t_us / 1e6,
        "state": tel["state"].astype(np.int64),
        "setpoint_c": tel["setpoint_dc"] / 10.0,
        "temp_c": tel["temp_dc"] / 10.0,
        "duty": tel["duty"].astype(np.int64),
        "power_w": tel["power_mw"] / 1000.0,
        "cell_v": tel["cell_mv"] / 1000.0,
        "heater_a": tel["heater_ma"] / 1000.0,
        "heater_v": tel["heater_mv"] / 1000.0,
        "puffs": tel["puffs"].astype(np.int64),
        "puff": ((tel["flags"] & FLAG_PUFF) > 0).astype(np.int64),
        "ready": ((tel["flags"] & FLAG_READY) > 0).astype(np.int64),
        "heater_en": ((tel["flags"] & FLAG_HEATER_EN) > 0).astype(np.int64),
        "stick": ((tel["flags"] & FLAG_STICK) > 0).astype(np.int64),
        "fault": tel["fault"].astype(np.int64),
        "end_reason": tel["end_reason"].astype(np.int64),
        "seq": tel["seq"].astype(np.int64),
        "idle_rate": ((tel["flags"] & FLAG_IDLE_RATE) > 0).astype(np.int64),
    }
    for name, _ in TRUTH_COLUMNS:
        cols[name] = np.full(n, np.nan)
    if truth and n:
        tr = np.frombuffer(b"".join(truth), dtype=_PLANT_DTYPE)
        # the truth sample at or just before each control step
        idx = np.searchsorted(tr["t_us"].astype(np.int64), t_us, side="right") - 1
        ok = idx >= 0
        s = tr[np.where(ok, idx, 0)]
        io_bits = s["io"].astype(np.int64)
        truth_cols = {
            "blade_true_c": s["blade_uc"] / 1e6,
            "plug_true_c": s["plug_uc"] / 1e6,
            "power_true_w": s["power_uw"] / 1e6,
            "cell_true_v": s["cell_uv"] / 1e6,
            "cell_ocv_v": s["ocv_uv"] / 1e6,
            "soc_pct": s["soc_ppm"] / 1e4,
            "flow_ml_s": s["flow_ul_s"] / 1e3,
            "energy_j": s["energy_pj"] / 1e12,
            "ambient_c": s["ambient_mc"] / 1e3,
            "vibration": ((io_bits & IO_VIBRATION) > 0).astype(np.int64),
            "fault_injected": ((io_bits & IO_FAULT_INJECTED) > 0).astype(np.int64),
        }
        for name, values in truth_cols.items():
            cols[name] = np.where(ok, values, np.nan)
    return TelemetrySeries(meta=meta, cols=cols)


def truth_array(truth: Sequence[bytes | memoryview]) -> np.ndarray:
    return np.frombuffer(b"".join(truth), dtype=_PLANT_DTYPE)


def _unwrap_ticks(ticks: np.ndarray, offset_us: int | None) -> np.ndarray:
    """30-bit wrapping ticks_us to microseconds since the run began."""
    if not len(ticks):
        return ticks
    period = 1 << 30
    steps = np.diff(ticks) % period
    steps = np.where(steps >= period // 2, steps - period, steps)
    first = int(ticks[0])
    if offset_us is not None:
        first = (first - offset_us) % period
    return first + np.concatenate(([0], np.cumsum(steps)))


_TEL_DTYPE = np.dtype(frames.TELEMETRY.numpy_fields())
_PLANT_DTYPE = np.dtype(frames.PLANT.numpy_fields())

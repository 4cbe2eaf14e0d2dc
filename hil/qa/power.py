"""The power side of a run: the firmware's power frames (charger.py, once a
second) joined with the simulator's power truth (the cells' true state), as
columns; and what QA and the tests read from them: sessions and how each
ended, refusals, holder recharges, USB charges with their stages, USB and
dock events, and the fuel gauges' error against the model's true state of
charge. Everything is read from the columns, so a series read back from
`power.csv` answers the same questions as the run that wrote it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hil.wire import contract, frames
from hil.wire.series import END_NAMES, FAULT_NAMES, HEATING_STATES, STATE_NAMES

KIT_NAMES = contract.firmware("device").enum("KIT_NAMES", prefix="_KIT_")
_CHARGE = contract.firmware("charge_loop")  # the two charge loops' states
CHARGE_NAMES = _CHARGE.enum("NAMES")
PRE = _CHARGE.integer("PRE")
CC = _CHARGE.integer("CC")
CV = _CHARGE.integer("CV")
DONE = _CHARGE.integer("DONE")
WAIT = _CHARGE.integer("WAIT")
CHARGE_FAULT = _CHARGE.integer("FAULT")
_STATES = contract.firmware("states")  # why a session ended
END_TIME = _STATES.integer("END_TIME")
END_PUFFS = _STATES.integer("END_PUFFS")
END_FAULT = _STATES.integer("END_FAULT")
_CHARGER = contract.firmware("charger")  # the power frame's flags
FLAG_USB = _CHARGER.integer("_FLAG_USB")
FLAG_DOCKED = _CHARGER.integer("_FLAG_DOCKED")
FLAG_ON = _CHARGER.integer("_FLAG_ON")
FLAG_HOLDER_LOW = _CHARGER.integer("_FLAG_HOLDER_LOW")
FLAG_CHARGER_EMPTY = _CHARGER.integer("_FLAG_CHARGER_EMPTY")
IO2_USB = contract.sim("plant").integer("IO2_USB")  # the power truth sample's io bits
IO2_DOCKED = contract.sim("plant").integer("IO2_DOCKED")

_FW_DTYPE = np.dtype(frames.POWER.numpy_fields())
_TRUTH_DTYPE = np.dtype(frames.PLANT_POWER.numpy_fields())

_FW_INTS: tuple[str, ...] = ("kit", "heater_state", "end_reason", "fault", "usb_charge")
_FW_INTS += ("holder_charge", "flags", "charge_fault", "refused", "refusals")
# the charge stages' set-points (charger.py), for the charge curves and the measurements
_CHARGE_CONSTS = {
    "usb": ("_USB_I_CC_MA", "_USB_I_TERM_MA"),
    "holder": ("_HOLD_I_CC_MA", "_HOLD_I_TERM_MA"),
}
V_FULL_V = _CHARGE.integer("V_FULL_MV") / 1e3  # the CV target
V_WARM_V = _CHARGE.integer("V_WARM_MV") / 1e3  # the CV target from 45 to 60 C

# CSV: name and format
COLUMNS: tuple[tuple[str, str], ...] = (
    ("t_s", "%.3f"),
    ("kit", "%d"),
    ("heater_state", "%d"),
    ("end_reason", "%d"),
    ("fault", "%d"),
    ("usb_charge", "%d"),
    ("holder_charge", "%d"),
    ("flags", "%d"),
    ("charge_fault", "%d"),
    ("refused", "%d"),
    ("refusals", "%d"),
    ("charger_v", "%.3f"),
    ("charger_a", "%.3f"),
    ("charger_soc_pct", "%.2f"),
    ("charger_temp_c", "%.1f"),
    ("holder_v", "%.3f"),
    ("holder_a", "%.3f"),
    ("holder_soc_pct", "%.2f"),
    ("holder_temp_c", "%.1f"),
    ("vbus_v", "%.3f"),
    ("sessions", "%d"),
    ("leds", "%d"),
    ("charger_soc_true_pct", "%.4f"),  # ppm: exact
    ("charger_ocv_true_v", "%.4f"),
    ("charger_v_true", "%.4f"),
    ("charger_a_true", "%.4f"),
    ("charger_temp_true_c", "%.2f"),
    ("holder_soc_true_pct", "%.4f"),  # ppm: exact
    ("holder_ocv_true_v", "%.4f"),
    ("holder_v_true", "%.4f"),
    ("holder_a_true", "%.4f"),
    ("holder_temp_true_c", "%.2f"),
    ("usb_a_true", "%.4f"),
    ("holder_charge_a_true", "%.4f"),
)


@dataclass(frozen=True)
class Session:
    start_s: float
    end_s: float
    end_reason: str  # record.END_NAMES; "running" if the run ended first
    fault: str
    holder_soc_start_pct: float  # true, from the model
    holder_soc_end_pct: float

    @property
    def complete(self) -> bool:
        return self.end_reason in (END_NAMES[END_TIME], END_NAMES[END_PUFFS])

    @property
    def cut_off(self) -> bool:
        """Ended by a fault (the holder's cell gave out, say) before its end."""
        return self.end_reason == END_NAMES[END_FAULT]


@dataclass(frozen=True)
class Charge:
    start_s: float
    end_s: float
    outcome: str  # "done", "fault", "stopped" (source or dock gone, or charger empty), "running"
    soc_start_pct: float  # true
    soc_end_pct: float
    which: str = "usb"  # "usb": the charger's cell from USB; "holder": the holder's in the dock
    first: int = 0  # index of its first frame
    last: int = 0  # index of the frame that ended it (its last one if still running)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Stage:
    """What a charge stage is set to (firmware/charger.py)."""

    i_cc_a: float
    i_term_a: float
    v_full_v: float = V_FULL_V

    @classmethod
    def of(cls, which: str) -> Stage:
        cc, term = _CHARGE_CONSTS[which]
        return cls(_CHARGER.integer(cc) / 1e3, _CHARGER.integer(term) / 1e3)


# the columns of one cell, by role
CELL_COLUMNS = {
    "usb": {
        "v": "charger_v",
        "a": "charger_a",
        "soc": "charger_soc_pct",
        "temp": "charger_temp_c",
        "v_true": "charger_v_true",
        "ocv_true": "charger_ocv_true_v",
        "a_true": "charger_a_true",
        "soc_true": "charger_soc_true_pct",
        "temp_true": "charger_temp_true_c",
        "state": "usb_charge",
    },
    "holder": {
        "v": "holder_v",
        "a": "holder_a",
        "soc": "holder_soc_pct",
        "temp": "holder_temp_c",
        "v_true": "holder_v_true",
        "ocv_true": "holder_ocv_true_v",
        "a_true": "holder_a_true",
        "soc_true": "holder_soc_true_pct",
        "temp_true": "holder_temp_true_c",
        "state": "holder_charge",
    },
}
CELL_NAMES = {"usb": "charger cell", "holder": "holder cell"}

# events read from the power frame's flags: (flag, name when it rises, when it falls)
_FLAG_EVENTS = ((FLAG_USB, "usb in", "usb out"), (FLAG_DOCKED, "docked", "undocked"))


@dataclass
class PowerSeries:
    fw: np.ndarray  # the firmware's power frames (empty when read back from CSV)
    truth: np.ndarray  # the simulator's power truth (likewise)
    cols: dict[str, np.ndarray]  # fw frames in SI units, with the truth interpolated at their times
    meta: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cols["t_s"])

    @property
    def has_truth(self) -> bool:
        """The simulator's truth is there (a board's record has none)."""
        return bool(len(self)) and bool(np.isfinite(self.cols["charger_soc_true_pct"]).any())

    # --- what happened --------------------------------------------------------
    def sessions(self) -> list[Session]:
        c = self.cols
        out = []
        for i, j in _runs(np.isin(c["heater_state"], HEATING_STATES)):
            if j is None:
                j, reason, fault = len(c["t_s"]) - 1, "running", "none"
            else:
                reason, fault = END_NAMES[int(c["end_reason"][j])], FAULT_NAMES[int(c["fault"][j])]
            soc = c["holder_soc_true_pct"]
            t = c["t_s"]
            out.append(
                Session(
                    float(t[i]),
                    float(t[j]),
                    reason,
                    fault,
                    float(soc[max(0, i - 1)]),
                    float(soc[j]),
                )
            )
        return out

    def refusals(self) -> list[tuple[float, str]]:
        """(time, reason) of every start the firmware refused."""
        n = self.cols["refusals"].astype(np.int64)
        inc = np.flatnonzero(np.diff(n) % 256 > 0) + 1
        return [
            (float(self.cols["t_s"][i]), FAULT_NAMES[int(self.cols["refused"][i])]) for i in inc
        ]

    def charges(self, which: str) -> list[Charge]:
        """Charges of "holder" (in the dock) or "usb" (the charger's cell)."""
        cc = CELL_COLUMNS[which]
        state = self.cols[cc["state"]]
        soc = self.cols[cc["soc_true"]]
        t = self.cols["t_s"]
        out = []
        for i, j in _runs(np.isin(state, (PRE, CC, CV))):
            if j is None:
                j, outcome = len(t) - 1, "running"
            else:
                st = int(state[j])
                outcome = "done" if st == DONE else "fault" if st == CHARGE_FAULT else "stopped"
            out.append(
                Charge(float(t[i]), float(t[j]), outcome, float(soc[i]), float(soc[j]), which, i, j)
            )
        return out

    def stages(self, charge: Charge) -> list[tuple[float, str]]:
        """(time, state name) of each stage a charge went through, its end included."""
        state = self.cols[CELL_COLUMNS[charge.which]["state"]]
        t = self.cols["t_s"]
        out = [(float(t[charge.first]), CHARGE_NAMES[int(state[charge.first])])]
        for i in range(charge.first + 1, charge.last + 1):
            if state[i] != state[i - 1]:
                out.append((float(t[i]), CHARGE_NAMES[int(state[i])]))
        return out

    def termination_a(self, charge: Charge) -> float | None:
        """The cell's true current over the 10 s before a charge terminated
        (the firmware's filter waits 5 s below I_term): None for a charge
        that did not terminate, or without the truth."""
        if charge.outcome != "done":
            return None
        t = self.cols["t_s"]
        a = self.cols[CELL_COLUMNS[charge.which]["a_true"]]
        w = (t > charge.end_s - 10.0) & (t < charge.end_s - 0.5) & np.isfinite(a)
        return float(np.mean(a[w])) if w.any() else None

    def events(self) -> list[tuple[float, str]]:
        """(time, "usb in" | "usb out" | "docked" | "undocked"), from the flags."""
        flags = self.cols["flags"].astype(np.int64)
        t = self.cols["t_s"]
        out = []
        for bit, rise, fall in _FLAG_EVENTS:
            on = (flags & bit) > 0
            for i in np.flatnonzero(on[1:] != on[:-1]) + 1:
                out.append((float(t[i]), rise if on[i] else fall))
        return sorted(out)

    def gauge_error_pct(self, which: str) -> np.ndarray:
        """The fuel gauge's SoC less the model's true SoC, in points, per frame."""
        cc = CELL_COLUMNS["holder" if which == "holder" else "usb"]
        return np.asarray(self.cols[cc["soc"]] - self.cols[cc["soc_true"]])

    # --- files ----------------------------------------------------------------------
    def to_csv(self, meta: dict[str, str] | None = None) -> str:
        out = io.StringIO()
        out.write("# heatrig power\n")
        for k, v in (meta if meta is not None else self.meta).items():
            out.write(f"# {k}: {v}\n")
        names = [n for n, _ in COLUMNS]
        out.write(",".join(names) + "\n")
        fmt = ",".join(f for _, f in COLUMNS) + "\n"
        for row in zip(*(self.cols[n] for n in names), strict=True):
            out.write((fmt % row).replace("nan", ""))
        return out.getvalue()

    def write_csv(self, path: Path, meta: dict[str, str] | None = None) -> None:
        path.write_text(self.to_csv(meta), encoding="utf-8")


def read_csv(path: Path) -> PowerSeries:
    """A power series from its CSV (`heatrig sim` writes power.csv); raises
    ValueError naming what is wrong."""
    meta: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != "# heatrig power":
        raise ValueError("not a heatrig power CSV (its first line is not '# heatrig power')")
    body = []
    for line in lines[1:]:
        if line.startswith("#"):
            k, sep, v = line[1:].partition(":")
            if sep:
                meta[k.strip()] = v.strip()
        elif line:
            body.append(line)
    if not body:
        raise ValueError("no header row")
    header = next(csv.reader(body[:1]))
    missing = [n for n, _ in COLUMNS if n not in header]
    if missing:
        raise ValueError(f"no column {', '.join(missing)}")
    cols: dict[str, np.ndarray] = {n: np.empty(0) for n in header}
    if len(body) > 1:
        rows = [[float(x) if x else np.nan for x in r] for r in csv.reader(body[1:])]
        if any(len(r) != len(header) for r in rows):
            raise ValueError(f"a row without {len(header)} values")
        data = np.array(rows, dtype=float).reshape(len(rows), len(header))
        cols = {n: data[:, j] for j, n in enumerate(header)}
    for n in _FW_INTS:
        cols[n] = np.nan_to_num(cols[n]).astype(np.int64)
    return PowerSeries(np.empty(0, _FW_DTYPE), np.empty(0, _TRUTH_DTYPE), cols, meta)


def build(
    fw: Sequence[bytes | memoryview],
    truth: Sequence[bytes | memoryview],
    ticks_offset_us: int | None,
    meta: dict[str, str] | None = None,
) -> PowerSeries:
    f = np.frombuffer(b"".join(fw), dtype=_FW_DTYPE)
    tr = np.frombuffer(b"".join(truth), dtype=_TRUTH_DTYPE)
    t_s = _unwrap_ms(f["t_ms"].astype(np.int64), ticks_offset_us) / 1e3
    cols: dict[str, np.ndarray] = {"t_s": t_s}
    for name in _FW_INTS:
        cols[name] = f[name].astype(np.int64)
    cols["charger_v"] = f["chg_mv"] / 1e3
    cols["charger_a"] = f["chg_ma"] / 1e3
    cols["charger_soc_pct"] = f["chg_soc"] / 100.0
    cols["charger_temp_c"] = f["chg_dc"] / 10.0
    cols["holder_v"] = f["hold_mv"] / 1e3
    cols["holder_a"] = f["hold_ma"] / 1e3
    cols["holder_soc_pct"] = f["hold_soc"] / 100.0
    cols["holder_temp_c"] = f["hold_dc"] / 10.0
    cols["vbus_v"] = f["vbus_mv"] / 1e3
    cols["sessions"] = f["sessions"].astype(np.int64)
    cols["leds"] = f["leds"].astype(np.int64)
    truth_cols = {
        "charger_soc_true_pct": ("chg_soc_ppm", 1e4),
        "charger_ocv_true_v": ("chg_ocv_uv", 1e6),
        "charger_v_true": ("chg_uv", 1e6),
        "charger_a_true": ("chg_ua", 1e6),
        "charger_temp_true_c": ("chg_mc", 1e3),
        "holder_soc_true_pct": ("hold_soc_ppm", 1e4),
        "holder_ocv_true_v": ("hold_ocv_uv", 1e6),
        "holder_v_true": ("hold_uv", 1e6),
        "holder_a_true": ("hold_ua", 1e6),
        "holder_temp_true_c": ("hold_mc", 1e3),
        "usb_a_true": ("usb_ua", 1e6),
        "holder_charge_a_true": ("hchg_ua", 1e6),
    }
    t_tr = tr["t_us"] / 1e6
    for name, (fld, scale) in truth_cols.items():
        if len(tr) and len(t_s):
            cols[name] = np.interp(t_s, t_tr, tr[fld] / scale, left=np.nan)
        else:
            cols[name] = np.full(len(t_s), np.nan)
    return PowerSeries(f, tr, cols, dict(meta or {}))


def _runs(active: np.ndarray) -> list[tuple[int, int | None]]:
    """(first index, index where it ended or None) of each run of True."""
    starts = np.flatnonzero(active & ~np.concatenate(([False], active[:-1])))
    out: list[tuple[int, int | None]] = []
    for i0 in starts:
        i = int(i0)
        after = np.flatnonzero(~active[i:])
        out.append((i, i + int(after[0]) if len(after) else None))
    return out


def _unwrap_ms(ticks: np.ndarray, offset_us: int | None) -> np.ndarray:
    """30-bit wrapping ticks_ms to milliseconds since the run began."""
    if not len(ticks):
        return ticks
    period = 1 << 30
    steps = np.diff(ticks) % period
    first = int(ticks[0])
    if offset_us is not None:
        first = (first - offset_us // 1000) % period
    return first + np.concatenate(([0], np.cumsum(steps)))


__all__ = [
    "CHARGE_NAMES",
    "KIT_NAMES",
    "STATE_NAMES",
    "Charge",
    "PowerSeries",
    "Session",
    "Stage",
    "build",
    "read_csv",
]

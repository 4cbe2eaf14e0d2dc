"""The power side of a run: the firmware's power frames (charger.py, once a
second) joined with the simulator's power truth (the cells' true state), as
columns; and what QA and the tests read from them: sessions and how each
ended, refusals, holder recharges, USB charges, and the fuel gauges' error
against the model's true state of charge.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
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
_FW_INTS += ("holder_charge", "flags", "charge_fault")

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
    ("charger_soc_true_pct", "%.3f"),
    ("charger_ocv_true_v", "%.4f"),
    ("charger_v_true", "%.4f"),
    ("charger_a_true", "%.4f"),
    ("charger_temp_true_c", "%.2f"),
    ("holder_soc_true_pct", "%.3f"),
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


@dataclass(frozen=True)
class Charge:
    start_s: float
    end_s: float
    outcome: str  # "done", "fault", "stopped" (source or dock gone, or charger empty), "running"
    soc_start_pct: float  # true
    soc_end_pct: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class PowerSeries:
    fw: np.ndarray  # the firmware's power frames
    truth: np.ndarray  # the simulator's power truth
    cols: dict[str, np.ndarray]  # fw frames in SI units, with the truth interpolated at their times

    def __len__(self) -> int:
        return len(self.fw)

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
        n = self.fw["refusals"].astype(np.int64)
        inc = np.flatnonzero(np.diff(n) % 256 > 0) + 1
        return [(float(self.cols["t_s"][i]), FAULT_NAMES[int(self.fw["refused"][i])]) for i in inc]

    def charges(self, which: str) -> list[Charge]:
        """Charges of "holder" (in the dock) or "usb" (the charger's cell)."""
        state = self.fw["holder_charge" if which == "holder" else "usb_charge"]
        soc = self.cols["holder_soc_true_pct" if which == "holder" else "charger_soc_true_pct"]
        t = self.cols["t_s"]
        out = []
        for i, j in _runs(np.isin(state, (PRE, CC, CV))):
            if j is None:
                j, outcome = len(t) - 1, "running"
            else:
                st = int(state[j])
                outcome = "done" if st == DONE else "fault" if st == CHARGE_FAULT else "stopped"
            out.append(Charge(float(t[i]), float(t[j]), outcome, float(soc[i]), float(soc[j])))
        return out

    def gauge_error_pct(self, which: str) -> np.ndarray:
        """The fuel gauge's SoC less the model's true SoC, in points, per frame."""
        if which == "holder":
            return np.asarray(self.cols["holder_soc_pct"] - self.cols["holder_soc_true_pct"])
        return np.asarray(self.cols["charger_soc_pct"] - self.cols["charger_soc_true_pct"])

    # --- files ----------------------------------------------------------------------
    def to_csv(self, meta: dict[str, str] | None = None) -> str:
        out = io.StringIO()
        out.write("# heatrig power\n")
        for k, v in (meta or {}).items():
            out.write(f"# {k}: {v}\n")
        names = [n for n, _ in COLUMNS]
        out.write(",".join(names) + "\n")
        fmt = ",".join(f for _, f in COLUMNS) + "\n"
        for row in zip(*(self.cols[n] for n in names), strict=True):
            out.write((fmt % row).replace("nan", ""))
        return out.getvalue()

    def write_csv(self, path: Path, meta: dict[str, str] | None = None) -> None:
        path.write_text(self.to_csv(meta), encoding="utf-8")


def build(
    fw: Sequence[bytes | memoryview],
    truth: Sequence[bytes | memoryview],
    ticks_offset_us: int | None,
) -> PowerSeries:
    f = np.frombuffer(b"".join(fw), dtype=_FW_DTYPE)
    tr = np.frombuffer(b"".join(truth), dtype=_TRUTH_DTYPE)
    t_s = _unwrap_ms(f["t_ms"].astype(np.int64), ticks_offset_us) / 1e3
    cols: dict[str, np.ndarray] = {"t_s": t_s}
    for name in (
        "kit",
        "heater_state",
        "end_reason",
        "fault",
        "usb_charge",
        "holder_charge",
        "flags",
    ):
        cols[name] = f[name].astype(np.int64)
    cols["charge_fault"] = f["charge_fault"].astype(np.int64)
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
        "holder_v_true": ("hold_uv", 1e6),
        "holder_a_true": ("hold_ua", 1e6),
        "holder_temp_true_c": ("hold_mc", 1e3),
        "usb_a_true": ("usb_ua", 1e6),
        "holder_charge_a_true": ("hchg_ua", 1e6),
    }
    t_tr = tr["t_us"] / 1e6
    for name, (field, scale) in truth_cols.items():
        if len(tr) and len(t_s):
            cols[name] = np.interp(t_s, t_tr, tr[field] / scale, left=np.nan)
        else:
            cols[name] = np.full(len(t_s), np.nan)
    return PowerSeries(f, tr, cols)


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


def summary(rec: PowerSeries) -> dict[str, object]:
    """The power figures of a run, as `heatrig sim` prints them."""
    ss = rec.sessions()
    hc = rec.charges("holder")
    uc = rec.charges("usb")
    done = [c for c in hc if c.outcome == "done"]
    out: dict[str, object] = {
        "sessions": len(ss),
        "sessions_complete": sum(s.complete for s in ss),
        "sessions_cut_off": sum(s.end_reason == END_NAMES[END_FAULT] for s in ss),
        "refusals": [r for _, r in rec.refusals()],
        "holder_charges_done": len(done),
        "holder_charge_max_s": round(max((c.duration_s for c in done), default=0.0), 1),
        "usb_charges": [(c.outcome, round(c.duration_s / 60, 1)) for c in uc],
    }
    if len(rec):
        out["charger_gauge_max_error_pts"] = round(
            float(np.nanmax(np.abs(rec.gauge_error_pct("charger")))), 2
        )
        out["holder_gauge_max_error_pts"] = round(
            float(np.nanmax(np.abs(rec.gauge_error_pct("holder")))), 2
        )
        out["charger_soc_end_true_pct"] = round(float(rec.cols["charger_soc_true_pct"][-1]), 2)
    return out


def table(s: dict[str, object]) -> str:
    width = max(len(k) for k in s)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in s.items())


__all__ = ["STATE_NAMES", "Charge", "PowerSeries", "Session", "build", "summary", "table"]

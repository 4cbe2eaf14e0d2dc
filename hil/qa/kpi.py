"""Heating KPIs from a run's record.

Temperatures are the firmware's own measurement (what a board reports too);
the simulator's truth adds the peak true blade temperature and the exact
puff windows. Times are from the start of heating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hil.wire.series import END_NAMES, FAULT_NAMES, HEATING_STATES, TelemetrySeries

BAND_PCT = 2.0  # "within 2 %" of the set-point
RECOVERY_WINDOW_S = 8.0  # how long after a puff its dip and recovery are looked for


@dataclass(frozen=True)
class KpiSpec:
    """What a KPI is; `name` is its key in compute()'s dict."""

    name: str
    label: str
    units: str
    needs_truth: bool = False  # only a simulator (or a rig with a puffing machine) knows it
    measured: bool = True  # a measurement of the device, judged and recorded (not the run's speed)
    printed: bool = True  # in the table `heatrig sim` prints


# Every KPI, in the order of `heatrig sim`'s table and of a test record.
KPIS: tuple[KpiSpec, ...] = (
    KpiSpec("time_to_setpoint_s", "time to set-point", "s"),
    KpiSpec("overshoot_pct", "overshoot", "%"),
    KpiSpec("rms_error_c", "RMS error between puffs", "\u00b0C"),
    KpiSpec("max_puff_dip_c", "largest puff dip", "\u00b0C"),
    KpiSpec("puff_recovery_s", "puff recovery: longest time out of band", "s"),
    KpiSpec("puffs_taken", "puffs taken", "", needs_truth=True),
    KpiSpec("puffs_detected", "puffs detected", ""),
    KpiSpec("missed_puffs", "puffs missed", "", needs_truth=True, printed=False),
    KpiSpec("phantom_puffs", "phantom puffs", "", needs_truth=True),
    KpiSpec("energy_j", "energy drawn by the heater", "J"),
    KpiSpec("end_reason", "end reason", ""),
    KpiSpec("end_time_s", "end time", "s"),
    KpiSpec("fault", "fault", ""),
    KpiSpec("peak_blade_true_c", "peak true blade temperature", "\u00b0C", needs_truth=True),
    KpiSpec("control_jitter_us", "control-period jitter", "\u00b5s"),
    KpiSpec("realtime_factor", "simulation speed", "x real time", measured=False),
)


@dataclass(frozen=True)
class PuffWindow:
    start_s: float
    end_s: float


def true_puffs(truth: np.ndarray) -> list[PuffWindow]:
    """Puff windows from the simulator's draw samples."""
    if not len(truth):
        return []
    drawing = truth["flow_ul_s"] > 0
    t = truth["t_us"] / 1e6
    edges = np.flatnonzero(np.diff(drawing.astype(np.int8)))
    out = []
    start = t[0] if drawing[0] else None
    for i in edges:
        if drawing[i + 1]:
            start = t[i + 1]
        elif start is not None:
            out.append(PuffWindow(float(start), float(t[i + 1])))
            start = None
    return out


def puffs_of(rec: TelemetrySeries) -> list[PuffWindow] | None:
    """Puff windows from a record's truth column (a record read back from
    CSV); None without truth, and compute() falls back to the firmware's flag."""
    if not rec.has_truth or "flow_ml_s" not in rec.cols:
        return None
    drawing = np.nan_to_num(rec.cols["flow_ml_s"]) > 0
    return _windows(rec.cols["t_s"], drawing.astype(np.int8))


def compute(
    rec: TelemetrySeries,
    puffs: list[PuffWindow] | None = None,
    realtime_factor: float | None = None,
) -> dict[str, object]:
    """The KPI dict; keys as in `heatrig sim --json`."""
    c = rec.cols
    t = c["t_s"]
    state = c["state"]
    heating = np.isin(state, HEATING_STATES)
    kpi: dict[str, object] = dict.fromkeys(spec.name for spec in KPIS)
    if realtime_factor is not None:
        kpi["realtime_factor"] = round(realtime_factor, 1)
    kpi["control_jitter_us"] = control_jitter_us(t, c["seq"], c.get("idle_rate"))
    if rec.has_truth:
        kpi["peak_blade_true_c"] = _r(np.nanmax(c["blade_true_c"]), 2)
    if not heating.any():
        kpi["end_reason"] = "not_started"
        return kpi
    i0 = int(np.flatnonzero(heating)[0])
    t0 = t[i0]
    session = np.zeros(len(t), bool)
    after = np.flatnonzero(~heating[i0:])
    i_end = i0 + int(after[0]) if len(after) else len(t)
    session[i0:i_end] = True
    if i_end < len(t):
        kpi["end_time_s"] = _r(t[i_end] - t0, 3)
        kpi["end_reason"] = END_NAMES[int(c["end_reason"][i_end])]
        kpi["fault"] = FAULT_NAMES[int(c["fault"][i_end])]
    else:
        kpi["end_reason"] = "still_heating"

    temp = c["temp_c"]
    sp = c["setpoint_c"]
    valid = session & (sp > 0) & (temp > 0)
    # preheat: up to the first change of set-point
    sp0 = sp[valid][0] if valid.any() else 0.0
    first_plateau = valid & (np.cumsum(valid & (np.abs(sp - sp0) > 0.05)) == 0)
    band = sp0 * BAND_PCT / 100
    within = np.flatnonzero(first_plateau & (np.abs(temp - sp0) <= band))
    if len(within):
        kpi["time_to_setpoint_s"] = _r(t[within[0]] - t0, 3)
    if first_plateau.any():
        kpi["overshoot_pct"] = _r(max(0.0, (temp[first_plateau].max() - sp0) / sp0 * 100), 2)

    if puffs is None:
        puffs = _flagged_puffs(t, c["puff"])
    taken = [p for p in puffs if _in_session(t, session, p.start_s)]
    kpi["puffs_taken"] = len(taken) if rec.has_truth else None
    kpi["puffs_detected"] = int(c["puffs"][session].max()) if session.any() else 0
    detections = _detections(t, c["puffs"], session)
    matched = set()
    phantom = 0
    for td in detections:
        hit = next(
            (
                k
                for k, p in enumerate(taken)
                if p.start_s <= td <= p.end_s + 2.0 and k not in matched
            ),
            None,
        )
        if hit is None:
            phantom += 1
        else:
            matched.add(hit)
    if rec.has_truth:
        kpi["phantom_puffs"] = phantom
        kpi["missed_puffs"] = len(taken) - len(matched)

    # tracking between puffs: heating states, ready, outside puffs and their recovery
    ready = session & (c["ready"] > 0) & valid
    quiet = ready.copy()
    for p in taken:
        quiet &= ~((t >= p.start_s) & (t < p.end_s + RECOVERY_WINDOW_S))
    if quiet.any():
        kpi["rms_error_c"] = _r(math.sqrt(float(np.mean((temp[quiet] - sp[quiet]) ** 2))), 3)
    dips, recoveries = [], []
    for p in taken:
        w = valid & (t >= p.start_s) & (t < p.end_s + RECOVERY_WINDOW_S)
        if not w.any():
            continue
        dips.append(float(np.max(sp[w] - temp[w])))
        # recovery: from leaving the band during the puff to being back in it for good
        out = np.flatnonzero(w & (np.abs(temp - sp) > sp * BAND_PCT / 100))
        recoveries.append(float(t[out[-1]] - t[out[0]]) + 0.01 if len(out) else 0.0)
    if dips:
        kpi["max_puff_dip_c"] = _r(max(dips), 2)
        kpi["puff_recovery_s"] = _r(max(recoveries), 2)

    if rec.has_truth:
        e = c["energy_j"]
        kpi["energy_j"] = _r(e[i_end - 1] - e[i0], 1)
    else:
        kpi["energy_j"] = _r(float(np.sum(c["power_w"][session])) * 0.01, 1)
    return kpi


def control_jitter_us(
    t_s: np.ndarray, seq: np.ndarray, idle_rate: np.ndarray | None = None
) -> int | None:
    """Largest deviation of a control period from the median period, in µs.

    From the `t_us` the firmware stamps on each telemetry frame (ticks_us at
    the control step), over pairs of consecutive frames (a sequence gap is a
    dropped frame, not a late step). On a board this is the timer callback's
    latency varying; in the simulator a Timer fires at its exact virtual
    instant, so it is zero by construction. A record read back from CSV has
    its times to the millisecond only. Steps at the idle rate (asleep, 1 Hz)
    and the switches between the rates are left out.
    """
    if len(t_s) < 2:
        return None
    t_us = np.rint(t_s * 1e6).astype(np.int64)
    consecutive = np.mod(np.diff(seq.astype(np.int64)), 65536) == 1
    if idle_rate is not None:
        fast = idle_rate == 0
        consecutive &= fast[1:] & fast[:-1]
    periods = np.diff(t_us)[consecutive]
    if not len(periods):
        return None
    return int(np.max(np.abs(periods - int(np.median(periods)))))


def _r(x: float, nd: int) -> float:
    return round(float(x), nd)


def _in_session(t: np.ndarray, session: np.ndarray, ts: float) -> bool:
    i = int(np.searchsorted(t, ts))
    return 0 <= i < len(t) and bool(session[i])


def _detections(t: np.ndarray, puffs: np.ndarray, session: np.ndarray) -> list[float]:
    """Times at which the firmware's puff count went up."""
    inc = np.flatnonzero(np.diff(puffs) > 0) + 1
    return [float(t[i]) for i in inc if session[i]]


def _flagged_puffs(t: np.ndarray, flag: np.ndarray) -> list[PuffWindow]:
    return _windows(t, flag)


def _windows(t: np.ndarray, flag: np.ndarray) -> list[PuffWindow]:
    edges = np.flatnonzero(np.diff(flag))
    out, start = [], None
    for i in edges:
        if flag[i + 1]:
            start = t[i + 1]
        elif start is not None:
            out.append(PuffWindow(float(start), float(t[i + 1])))
            start = None
    return out


# The console table is plain ASCII, for any terminal and any log.
ASCII_UNITS = str.maketrans({"\u00b0": "", "\u00b5": "u", "\u2264": "<=", "\u2265": ">="})


def table(kpi: dict[str, object]) -> str:
    """The KPI table for people (`heatrig sim`)."""
    rows = [spec for spec in KPIS if spec.printed]
    width = max(len(spec.label) for spec in rows)
    lines = []
    for spec in rows:
        v = kpi.get(spec.name)
        text = "-" if v is None else f"{v}"
        units = spec.units.translate(ASCII_UNITS)
        lines.append(f"  {spec.label:<{width}}  {text} {units}".rstrip())
    return "\n".join(lines)

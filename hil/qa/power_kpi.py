"""Power measurements of a run, from its power series (hil/qa/power.py): what
the kit promises of its cells and its charging -- sessions on one charge of
the pocket charger and none cut off, holder recharge and USB charge times,
the termination current, the fuel gauges against the cells' true state of
charge, the temperature windows, the cells' peak temperatures. Each is a
measurement judged against `limits/power-<scenario>.toml` the way the
heating KPIs are against theirs (docs/qa.md#power-measurements).

Also the power summary `heatrig sim` prints, in plain values.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from hil.qa.kpi import KpiSpec
from hil.qa.power import CELL_COLUMNS, FLAG_USB, V_WARM_V, PowerSeries, Stage

# Every power measurement, in the order of the console, the record and the report.
POWER_KPIS: tuple[KpiSpec, ...] = (
    KpiSpec("sessions_per_charge", "complete sessions on one charger charge", ""),
    KpiSpec("sessions_cut_off", "sessions cut off", ""),
    KpiSpec("holder_recharge_max_s", "longest holder recharge", "s"),
    KpiSpec(
        "holder_recharge_min_soc_pct", "holder after a recharge, lowest", "%", needs_truth=True
    ),
    KpiSpec("usb_charge_min", "USB charge time", "min"),
    KpiSpec("usb_charge_end_soc_pct", "charger after its USB charge", "%", needs_truth=True),
    KpiSpec("usb_termination_ma", "USB charge termination current", "mA", needs_truth=True),
    KpiSpec(
        "charger_gauge_error_pts", "charger fuel gauge, largest error", "pts", needs_truth=True
    ),
    KpiSpec("holder_gauge_error_pts", "holder fuel gauge, largest error", "pts", needs_truth=True),
    KpiSpec(
        "charge_window_violation_s",
        "charging outside the temperature windows",
        "s",
        needs_truth=True,
    ),
    KpiSpec("charger_temp_peak_c", "charger cell peak temperature", "\u00b0C", needs_truth=True),
    KpiSpec("holder_temp_peak_c", "holder cell peak temperature", "\u00b0C", needs_truth=True),
    KpiSpec("charge_faults", "charges ended by a fault", ""),
)
POWER_BY_NAME = {s.name: s for s in POWER_KPIS}

FULL_PCT = 99.0  # a charger "full" at the start of a day: its true SoC at least this
# The temperature windows (docs/reference.md#cells-and-charging), judged on the
# cells' true temperature and current: the firmware judges by its thermistors,
# read once a second, so a reading may be TOL_K off and it reacts within
# GRACE_S; only what lasts longer counts.
WINDOW_TOL_K = 1.0
WINDOW_GRACE_S = 3.0
CHARGING_A = 0.02  # a cell taking more than this is being charged (the electronics draw less)
COLD_C, COOL_C, WARM_C, HOT_C = 0.0, 10.0, 45.0, 60.0
COOL_SHARE = 0.2  # of the charge current, from 0 to 10 C
V_MARGIN = 0.05  # above the warm window's 4.0 V target


def compute(ps: PowerSeries) -> dict[str, float | int | None]:
    """Every power measurement of the run; None where it has no value (no
    USB charge in the run, a charger that never ran empty, no truth)."""
    k: dict[str, float | int | None] = dict.fromkeys(s.name for s in POWER_KPIS)
    if not len(ps):
        return k
    sessions = ps.sessions()
    k["sessions_per_charge"] = sessions_per_charge(ps)
    k["sessions_cut_off"] = sum(s.cut_off for s in sessions)
    done = [c for c in ps.charges("holder") if c.outcome == "done"]
    if done:
        k["holder_recharge_max_s"] = round(max(c.duration_s for c in done), 1)
    usb = [c for c in ps.charges("usb") if c.outcome == "done"]
    if usb:
        k["usb_charge_min"] = round(usb[0].duration_s / 60, 1)
    charges = ps.charges("usb") + ps.charges("holder")
    k["charge_faults"] = sum(c.outcome == "fault" for c in charges)
    if not ps.has_truth:
        return k
    if done:
        k["holder_recharge_min_soc_pct"] = round(min(c.soc_end_pct for c in done), 2)
    if usb:
        k["usb_charge_end_soc_pct"] = round(usb[0].soc_end_pct, 2)
        term = ps.termination_a(usb[0])
        k["usb_termination_ma"] = None if term is None else round(term * 1e3, 1)
    for which, name in (("usb", "charger_gauge_error_pts"), ("holder", "holder_gauge_error_pts")):
        err = np.abs(ps.gauge_error_pct(which))
        k[name] = round(float(np.nanmax(err)), 2) if np.isfinite(err).any() else None
    k["charge_window_violation_s"] = round(window_violation_s(ps), 1)
    for which, name in (("usb", "charger_temp_peak_c"), ("holder", "holder_temp_peak_c")):
        temp = ps.cols[CELL_COLUMNS[which]["temp_true"]]
        k[name] = round(float(np.nanmax(temp)), 2) if np.isfinite(temp).any() else None
    return k


def sessions_per_charge(ps: PowerSeries) -> int | None:
    """Complete sessions from a full charger until the kit first refuses one
    for a low holder (the charger had no more to give it), with no USB in
    between. None when the run is not such a day: the charger did not start
    full, was plugged in, or never ran empty."""
    c = ps.cols
    soc0 = c["charger_soc_true_pct"][0] if ps.has_truth else c["charger_soc_pct"][0]
    refused = [t for t, why in ps.refusals() if why == "holder_low"]
    if soc0 < FULL_PCT or not refused:
        return None
    if any(name == "usb in" and t < refused[0] for t, name in ps.events()):
        return None
    if int(c["flags"][0]) & FLAG_USB:
        return None
    return sum(s.complete and s.start_s < refused[0] for s in ps.sessions())


def window_violation_s(ps: PowerSeries) -> float:
    """Seconds during which a cell took charge current its temperature
    window forbids (JEITA style): any below 0 C or above 60 C, more than a
    fifth of the charge current below 10 C, any above 4.0 V over 45 C -- on
    the true temperature, beyond WINDOW_TOL_K of it and the first
    WINDOW_GRACE_S of each episode."""
    t = ps.cols["t_s"]
    total = 0.0
    for which in ("usb", "holder"):
        cc = CELL_COLUMNS[which]
        stage = Stage.of(which)
        temp = ps.cols[cc["temp_true"]]
        amps = ps.cols[cc["a_true"]]
        volts = ps.cols[cc["v_true"]]
        ok = np.isfinite(temp) & np.isfinite(amps)
        charging = ok & (np.nan_to_num(amps) > CHARGING_A)
        temp = np.nan_to_num(temp)
        bad = charging & (
            (temp < COLD_C - WINDOW_TOL_K)
            | (temp > HOT_C + WINDOW_TOL_K)
            | ((temp < COOL_C - WINDOW_TOL_K) & (amps > COOL_SHARE * stage.i_cc_a * 1.05))
            | ((temp > WARM_C + WINDOW_TOL_K) & (np.nan_to_num(volts) > V_WARM_V + V_MARGIN))
        )
        total += _beyond_grace(t, bad, WINDOW_GRACE_S)
    return total


def _beyond_grace(t: np.ndarray, bad: np.ndarray, grace_s: float) -> float:
    """Time the flag was set, less the first `grace_s` of each episode."""
    out = 0.0
    start = None
    for i in range(len(t)):
        if bad[i] and start is None:
            start = t[i]
        if start is not None and (not bad[i] or i == len(t) - 1):
            end = t[i] if not bad[i] else t[i] + (t[i] - t[i - 1] if i else 1.0)
            out += max(0.0, float(end - start) - grace_s)
            start = None
    return out


# --- the console summary ------------------------------------------------------------


def summary(ps: PowerSeries) -> dict[str, object]:
    """The power figures of a run as plain JSON values (`heatrig sim --json`)."""
    ss = ps.sessions()
    hc = ps.charges("holder")
    done = [c for c in hc if c.outcome == "done"]
    out: dict[str, object] = {
        "sessions": len(ss),
        "sessions_complete": sum(s.complete for s in ss),
        "sessions_cut_off": sum(s.cut_off for s in ss),
        "refusals": dict(Counter(r for _, r in ps.refusals())),
        "holder_charges_done": len(done),
        "holder_charge_max_s": round(max((c.duration_s for c in done), default=0.0), 1),
        "usb_charges": [
            {"outcome": c.outcome, "minutes": round(c.duration_s / 60, 1)}
            for c in ps.charges("usb")
        ],
    }
    if len(ps) and ps.has_truth:
        for which in ("charger", "holder"):
            err = np.abs(ps.gauge_error_pct(which))
            out[f"{which}_gauge_max_error_pts"] = round(float(np.nanmax(err)), 2)
        out["charger_soc_end_true_pct"] = round(float(ps.cols["charger_soc_true_pct"][-1]), 2)
    return out


def summary_lines(ps: PowerSeries) -> list[str]:
    """What happened to the kit's power, a line a fact, for people."""
    ss = ps.sessions()
    lines = []
    if ss:
        cut = sum(s.cut_off for s in ss)
        running = sum(s.end_reason == "running" for s in ss)
        text = f"sessions: {sum(s.complete for s in ss)} complete, {cut} cut off"
        other = len(ss) - sum(s.complete for s in ss) - cut - running
        if other:
            text += f", {other} stopped early"
        if running:
            text += ", 1 still running at the end"
        lines.append(text)
    refusals = Counter(r for _, r in ps.refusals())
    if refusals:
        lines.append("refused: " + ", ".join(f"{r} x{n}" for r, n in refusals.items()))
    hc = ps.charges("holder")
    if hc:
        by = Counter(c.outcome for c in hc)
        parts = [f"{n} {outcome}" for outcome, n in by.items()]
        done = [c.duration_s for c in hc if c.outcome == "done"]
        if done:
            parts.append(f"longest {_mmss(max(done))}")
        lines.append("holder recharges: " + ", ".join(parts))
    for c in ps.charges("usb"):
        what = {"done": "done in", "running": "still charging after", "fault": "FAULT after"}
        text = (
            f"usb charge: {what.get(c.outcome, c.outcome + ' after')} {c.duration_s / 60:.0f} min"
        )
        if ps.has_truth:
            text += f", {c.soc_start_pct:.1f} -> {c.soc_end_pct:.1f} % (true)"
        term = ps.termination_a(c)
        if term is not None:
            text += f", terminated at {term * 1e3:.0f} mA"
        lines.append(text)
    if len(ps) and ps.has_truth:
        err = {w: float(np.nanmax(np.abs(ps.gauge_error_pct(w)))) for w in ("usb", "holder")}
        lines.append(
            f"fuel gauges, largest error: charger {err['usb']:.2f} pts, "
            f"holder {err['holder']:.2f} pts"
        )
        col = ps.cols
        lines.append(
            f"at the end: charger {col['charger_soc_true_pct'][-1]:.1f} % "
            f"(gauge {col['charger_soc_pct'][-1]:.1f} %), holder "
            f"{col['holder_soc_true_pct'][-1]:.1f} % (gauge {col['holder_soc_pct'][-1]:.1f} %)"
        )
    return lines


def _mmss(s: float) -> str:
    m, sec = divmod(round(s), 60)
    return f"{m}:{sec:02d}"

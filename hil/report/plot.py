"""Plots of runs (matplotlib, rendered headless): the heating curve of one
run, an overlay of several runs on shared axes, the battery over a run, and
the KPI distributions of a campaign.

Every figure is titled with the scenario and the firmware version, and every
axis carries its units.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hil.qa.kpi import BAND_PCT, PuffWindow
from hil.qa.measure import Limits
from hil.wire.series import (
    END_NAMES,
    FAULT,
    FAULT_NAMES,
    HEATING_STATES,
    STATE_NAMES,
    TelemetrySeries,
)

CAP_C = 350.0  # the blade's temperature cap (docs/reference.md#heater-and-session)
DPI = 110


def heating_curve(
    rec: TelemetrySeries, path: Path, puffs: list[PuffWindow] | None = None, title: str = ""
) -> Path:
    """Blade temperature against the set-point and its tolerance band, puffs
    shaded, state changes marked; heater power and cell voltage beneath."""
    return _save(heating_curve_figure(rec, puffs, title), path)


def heating_curve_figure(
    rec: TelemetrySeries, puffs: list[PuffWindow] | None = None, title: str = ""
) -> Figure:
    c = rec.cols
    t = c["t_s"]
    fig, (ax_t, ax_p) = plt.subplots(
        2, 1, figsize=(12, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    sp = np.where(c["setpoint_c"] > 0, c["setpoint_c"], np.nan)
    temp = np.where(c["temp_c"] > 0, c["temp_c"], np.nan)
    _band(ax_t, t, sp, f"set-point \u00b1{BAND_PCT:g} %")
    ax_t.plot(t, sp, color="tab:green", lw=1.0, ls="--", label="set-point")
    if rec.has_truth:
        ax_t.plot(t, c["blade_true_c"], color="0.55", lw=0.8, label="blade, true (simulator)")
        ax_t.plot(
            t, c["plug_true_c"], color="tab:brown", lw=0.8, alpha=0.7, label="tobacco plug, true"
        )
    ax_t.plot(t, temp, color="tab:red", lw=1.0, label="blade, measured by the firmware")
    ax_t.axhline(CAP_C, color="k", lw=0.6, ls=":")
    ax_t.text(
        t[-1] if len(t) else 0,
        CAP_C - 4,
        f"{CAP_C:g} \u00b0C cap",
        fontsize=8,
        va="top",
        ha="right",
    )
    for p in puffs or []:
        for ax in (ax_t, ax_p):
            ax.axvspan(p.start_s, p.end_s, color="tab:blue", alpha=0.15, lw=0)
    detected = np.flatnonzero(np.diff(c["puffs"]) > 0) + 1
    if len(detected):
        ax_t.plot(
            t[detected],
            np.full(len(detected), 360.0),
            "v",
            color="tab:blue",
            ms=6,
            label="puff detected",
        )
    _states(ax_t, rec)
    ax_t.set_ylabel("temperature (\u00b0C)")
    ax_t.set_ylim(0, 390)
    ax_t.grid(alpha=0.3)
    # below the plug's curve, right of the preheat inset
    ax_t.legend(loc="lower right", bbox_to_anchor=(0.84, 0.0), fontsize=8, ncol=2)
    ax_t.set_title(title or _title(rec), fontsize=11)
    _preheat_inset(ax_t, rec, sp, temp)

    ax_p.plot(t, c["power_w"], color="tab:orange", lw=0.8, label="heater power, firmware estimate")
    if rec.has_truth:
        ax_p.plot(
            t, c["power_true_w"], color="tab:orange", lw=0.6, alpha=0.4, label="heater power, true"
        )
    ax_p.set_ylabel("power (W)")
    ax_p.set_xlabel("time (s)")
    ax_p.grid(alpha=0.3)
    ax_v = ax_p.twinx()
    cell = np.where(c["cell_v"] > 0, c["cell_v"], np.nan)
    ax_v.plot(t, cell, color="tab:purple", lw=0.8, label="holder cell, measured")
    ax_v.set_ylabel("cell (V)")
    h1, l1 = ax_p.get_legend_handles_labels()
    h2, l2 = ax_v.get_legend_handles_labels()
    ax_p.legend(h1 + h2, l1 + l2, loc="lower left", fontsize=8, ncol=3)
    fig.tight_layout()
    return fig


def _band(ax: Axes, t: np.ndarray, sp: np.ndarray, label: str | None) -> None:
    """The set-point's tolerance band (the firmware's "in band" and the KPIs')."""
    lo, hi = sp * (1 - BAND_PCT / 100), sp * (1 + BAND_PCT / 100)
    ax.fill_between(t, lo, hi, color="tab:green", alpha=0.15, lw=0, label=label)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _preheat_inset(ax: Axes, rec: TelemetrySeries, sp: np.ndarray, temp: np.ndarray) -> None:
    """The first seconds of heating, enlarged: where time to set-point and
    overshoot are judged (they take a few pixels of the full session)."""
    t0 = heating_start_s(rec)
    if t0 is None:
        return
    t = rec.cols["t_s"]
    w = (t >= t0 - 0.5) & (t <= t0 + 8.0)
    if not np.isfinite(sp[w]).any():
        return
    ins = ax.inset_axes((0.14, 0.07, 0.25, 0.3))
    ts = t[w] - t0
    _band(ins, ts, sp[w], None)
    ins.plot(ts, sp[w], color="tab:green", lw=0.8, ls="--")
    if rec.has_truth:
        ins.plot(ts, rec.cols["blade_true_c"][w], color="0.55", lw=0.7)
    ins.plot(ts, temp[w], color="tab:red", lw=0.9)
    top = float(np.nanmax(sp[w]))
    ins.set_ylim(top * 0.9, top * 1.04)
    ins.set_xlim(-0.5, 8.0)
    ins.set_title("preheat, enlarged", fontsize=7)
    ins.set_xlabel("time from heating start (s)", fontsize=7)
    ins.set_ylabel("(\u00b0C)", fontsize=7)
    ins.tick_params(labelsize=6)
    ins.grid(alpha=0.3)


def heating_start_s(rec: TelemetrySeries) -> float | None:
    """Time of the first control step in a heating state, or None."""
    heating = np.flatnonzero(np.isin(rec.cols["state"], HEATING_STATES))
    return float(rec.cols["t_s"][heating[0]]) if len(heating) else None


def _states(ax: Axes, rec: TelemetrySeries) -> None:
    c = rec.cols
    t, state = c["t_s"], c["state"]
    changes = np.flatnonzero(np.diff(state)) + 1
    gap = (t[-1] - t[0]) * 0.012 if len(t) else 0.0  # keeps close labels apart
    label_x = -np.inf
    for i in changes:
        name = STATE_NAMES[int(state[i])]
        if int(state[i]) == FAULT:
            name = "FAULT: " + FAULT_NAMES[int(c["fault"][i])]
        ax.axvline(t[i], color="0.3", lw=0.6, ls="-.")
        label_x = max(float(t[i]), label_x + gap)
        ax.text(
            label_x,
            388,
            " " + name,
            rotation=90,
            fontsize=7,
            va="top",
            color="tab:red" if name.startswith("FAULT") else "0.3",
        )


def _title(rec: TelemetrySeries) -> str:
    m = rec.meta
    return (
        f"{m.get('scenario', '?')} \u2014 firmware {m.get('firmware_version', '?')}, "
        f"target {m.get('target', '?')}, profile {m.get('profile', '?')}, "
        f"regime {m.get('regime', '?')}, seed {m.get('seed', '?')}, "
        f"ambient {m.get('ambient_c', '?')} \u00b0C"
    )


# --- several runs on shared axes -------------------------------------------------------


def overlay(
    runs: list[tuple[str, TelemetrySeries]],
    path: Path,
    *,
    title: str = "",
    color_values: list[float] | None = None,
    color_label: str = "",
) -> Path:
    return _save(
        overlay_figure(runs, title=title, color_values=color_values, color_label=color_label),
        path,
    )


def overlay_figure(
    runs: list[tuple[str, TelemetrySeries]],
    *,
    title: str = "",
    color_values: list[float] | None = None,
    color_label: str = "",
) -> Figure:
    """Several runs on shared axes, aligned on the start of heating: measured
    blade temperature over the first run's set-point band, heater power, and
    holder cell voltage. Runs are told apart by colour: one per run with a
    legend (two firmware versions, a few seeds), or a colour scale of
    `color_values` (a tolerance sweep)."""
    if not runs:
        raise ValueError("overlay needs at least one run")
    fig, (ax_t, ax_p, ax_v) = plt.subplots(
        3,
        1,
        figsize=(12, 8.5),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1.2, 1.2]},
        layout="constrained",
    )
    colors = _run_colors(len(runs), color_values)
    first = runs[0][1]
    t0 = heating_start_s(first) or 0.0
    sp = np.where(first.cols["setpoint_c"] > 0, first.cols["setpoint_c"], np.nan)
    ts = first.cols["t_s"] - t0
    _band(ax_t, ts, sp, f"set-point \u00b1{BAND_PCT:g} % ({runs[0][0]})")
    legend = len(runs) <= 10  # beyond, a legend hides the plot: colours (and a scale) tell
    for (label, rec), color in zip(runs, colors, strict=True):
        c = rec.cols
        t = c["t_s"] - (heating_start_s(rec) or 0.0)
        lw = 0.9 if len(runs) <= 4 else 0.6
        kw = {"color": color, "lw": lw, "label": label if legend else None}
        ax_t.plot(t, np.where(c["temp_c"] > 0, c["temp_c"], np.nan), **kw)
        ax_p.plot(t, c["power_w"], color=color, lw=lw * 0.8)
        ax_v.plot(t, np.where(c["cell_v"] > 0, c["cell_v"], np.nan), color=color, lw=lw)
    ax_t.axhline(CAP_C, color="k", lw=0.6, ls=":")
    ax_t.set_ylabel("blade, measured (\u00b0C)")
    ax_t.set_ylim(0, 390)
    ax_t.legend(loc="lower right", fontsize=8, ncol=2)
    ax_t.set_title(title or _overlay_title(runs), fontsize=11)
    ax_p.set_ylabel("heater power (W)")
    ax_v.set_ylabel("holder cell (V)")
    ax_v.set_xlabel("time from the start of heating (s)")
    for ax in (ax_t, ax_p, ax_v):
        ax.grid(alpha=0.3)
    if color_values is not None and len(runs) > 1:
        lo, hi = min(color_values), max(color_values)
        sm = plt.cm.ScalarMappable(
            cmap="viridis", norm=matplotlib.colors.Normalize(lo, hi if hi > lo else lo + 1)
        )
        fig.colorbar(sm, ax=[ax_t, ax_p, ax_v], label=color_label, fraction=0.025, pad=0.01)
    return fig


def _run_colors(n: int, values: list[float] | None) -> list[tuple[float, float, float, float]]:
    if values is not None:
        if len(values) != n:
            raise ValueError(f"{len(values)} colour values for {n} runs")
        lo, hi = min(values), max(values)
        span = hi - lo if hi > lo else 1.0
        return [plt.cm.viridis((v - lo) / span) for v in values]
    cmap = plt.cm.tab10 if n <= 10 else plt.cm.viridis
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def _overlay_title(runs: list[tuple[str, TelemetrySeries]]) -> str:
    scen = sorted({r.meta.get("scenario", "?") for _, r in runs})
    fw = sorted({r.meta.get("firmware_version", "?") for _, r in runs})
    return f"{', '.join(scen)} \u2014 {len(runs)} runs, firmware {', '.join(fw)}"


# --- battery -----------------------------------------------------------------------

# Truth columns plotted when a record has them: (column, label, colour). The
# charger's cell joins the holder's once multi-session scenarios carry it.
SOC_SERIES = (
    ("soc_pct", "holder cell, true", "tab:purple"),
    ("charger_soc_pct", "charger cell, true", "tab:blue"),
)
VOLT_SERIES = (
    ("cell_true_v", "holder cell terminal, true", "tab:purple"),
    ("cell_ocv_v", "holder cell open-circuit, true", "tab:pink"),
    ("charger_cell_true_v", "charger cell terminal, true", "tab:blue"),
)


def battery(rec: TelemetrySeries, path: Path, *, title: str = "") -> Path:
    return _save(battery_figure(rec, title=title), path)


def battery_figure(rec: TelemetrySeries, *, title: str = "") -> Figure:
    """State of charge and cell voltages over a run, sessions shaded. Long
    runs (multi-session scenarios) are plotted in minutes."""
    c = rec.cols
    t = c["t_s"]
    span_s = float(t[-1] - t[0]) if len(t) else 0.0
    minutes = span_s > 20 * 60
    x = t / 60 if minutes else t
    fig, (ax_s, ax_v) = plt.subplots(
        2, 1, figsize=(12, 6.5), sharex=True, gridspec_kw={"height_ratios": [1, 1.3]}
    )
    plotted = 0
    for col, label, color in SOC_SERIES:
        if col in c and np.isfinite(c[col]).any():
            ax_s.plot(x, c[col], color=color, lw=1.0, label=label)
            plotted += 1
    for col, label, color in VOLT_SERIES:
        if col in c and np.isfinite(c[col]).any():
            ls = "--" if "open-circuit" in label else "-"
            ax_v.plot(x, c[col], color=color, lw=0.8, ls=ls, label=label)
    cell = np.where(c["cell_v"] > 0, c["cell_v"], np.nan)
    ax_v.plot(
        x, cell, color="0.75", lw=0.6, zorder=1, label="holder cell, measured by the firmware"
    )
    for k, (a, b) in enumerate(_sessions(rec)):
        for ax in (ax_s, ax_v):
            ax.axvspan(x[a], x[b], color="tab:orange", alpha=0.08, lw=0)
        ax_s.text(x[a], 102, f" session {k + 1}: {_end_text(rec, b + 1)}", fontsize=7, va="top")
    if not plotted:
        ax_s.text(
            0.5,
            0.5,
            "no state of charge in this record (simulator truth only)",
            transform=ax_s.transAxes,
            ha="center",
            va="center",
            color="0.4",
        )
    ax_s.set_ylabel("state of charge (%)")
    ax_s.set_ylim(0, 105)
    ax_v.set_ylabel("cell voltage (V)")
    ax_v.set_xlabel("time (min)" if minutes else "time (s)")
    for ax in (ax_s, ax_v):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left", fontsize=8)
    n = len(_sessions(rec))
    ax_s.set_title(
        title or f"{_title(rec)}\nbattery: {n} heating session{'s' if n != 1 else ''} (shaded)",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def _end_text(rec: TelemetrySeries, i: int) -> str:
    """How the session that ended at index i ended."""
    c = rec.cols
    if i >= len(rec):
        return "still heating at the end of the record"
    if int(c["fault"][i]):
        return "FAULT " + FAULT_NAMES[int(c["fault"][i])]
    return END_NAMES[int(c["end_reason"][i])]


def _sessions(rec: TelemetrySeries) -> list[tuple[int, int]]:
    """Index spans of the heating sessions."""
    heating = np.isin(rec.cols["state"], HEATING_STATES).astype(np.int8)
    edges = np.diff(np.concatenate(([0], heating, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


# --- campaign distributions -----------------------------------------------------------


def distributions(
    values: dict[str, np.ndarray],
    limits: dict[str, Limits],
    labels: dict[str, str],
    path: Path,
    *,
    title: str,
    notes: dict[str, str] | None = None,
) -> Path:
    return _save(distributions_figure(values, limits, labels, title=title, notes=notes), path)


def distributions_figure(
    values: dict[str, np.ndarray],
    limits: dict[str, Limits],
    labels: dict[str, str],
    *,
    title: str,
    notes: dict[str, str] | None = None,
) -> Figure:
    """One histogram per KPI over a campaign's runs, with its limits (red)
    and marginal band (amber); `notes` (Cpk, say) go in each panel's corner."""
    names = list(values)
    cols = 3
    rows = max(1, -(-len(names) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.6 * rows + 0.6), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        v = values[name]
        v = v[np.isfinite(v)]
        lim = limits.get(name)
        marks: list[float] = []
        if lim is not None and lim.numeric:
            for x in lim.bounds():
                if x is not None:
                    ax.axvline(x, color="tab:red", lw=1.2)
                    marks.append(x)
            for x in (lim.marginal_min, lim.marginal_max):
                if x is not None:
                    ax.axvline(x, color="tab:orange", lw=1.0, ls="--")
                    marks.append(x)
        if len(v):
            span = float(np.ptp(np.concatenate([v, marks]))) if marks else float(np.ptp(v))
            ax.hist(v, bins=_bins(v, span), color="tab:blue", alpha=0.75)
        note = (notes or {}).get(name, "")
        if note:
            ax.text(
                0.98,
                0.95,
                note,
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
            )
        ax.set_xlabel(labels.get(name, name), fontsize=8)
        ax.set_ylabel("runs", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(title + "\nred: limits, amber dashed: marginal band", fontsize=10)
    fig.tight_layout()
    return fig


def _bins(v: np.ndarray, span: float) -> np.ndarray | int:
    """Whole-number KPIs (puff counts) get one bin per value, and a KPI with
    no spread one bin around its value -- at least 1/60 of the axis wide, so
    that a bar stays visible beside far-off limits."""
    lo, hi = float(v.min()), float(v.max())
    width = max(1.0, span / 60)
    if np.all(v == np.round(v)) and hi - lo <= 40:
        return np.arange(lo - width / 2, hi + width, width)
    if hi == lo:
        return np.array([lo - width / 2, lo + width / 2])
    return min(30, max(5, len(v) // 5))

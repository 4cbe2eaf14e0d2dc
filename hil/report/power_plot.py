"""Plots of the kit's power (matplotlib, headless), with the heating
curve's conventions: the scenario and firmware version in the title, units
on every axis, state changes as lines.

- the CC/CV charge curve of one charge: voltage, current, cell temperature
  and state of charge (true, and as the gauge estimates it), each stage
  the loop went through as a line, the termination marked;
- charge curves overlaid: every holder recharge of a run, or one charge of
  each of several runs, aligned on their start;
- the kit's day: both cells' state of charge (true and estimated),
  sessions as bands coloured by how they ended, refused starts, USB and
  dock events, the cells' voltages and the kit's state.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from hil.qa import power_kpi
from hil.qa.power import (
    CELL_COLUMNS,
    CELL_NAMES,
    KIT_NAMES,
    V_WARM_V,
    Charge,
    PowerSeries,
    Stage,
)
from hil.report.plot import DPI

WHAT = {"usb": "USB charge of the charger cell", "holder": "holder recharge in the dock"}
SESSION_COLORS = {"complete": "tab:green", "cut off": "tab:red", "other": "tab:orange"}
WINDOW_EDGES_C = (power_kpi.COLD_C, power_kpi.COOL_C, power_kpi.WARM_C, power_kpi.HOT_C)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def title(meta: dict[str, str]) -> str:
    return (
        f"{meta.get('scenario', '?')} \u2014 firmware {meta.get('firmware_version', '?')}, "
        f"target {meta.get('target', '?')}, seed {meta.get('seed', '?')}, "
        f"ambient {meta.get('ambient_c', '?')} \u00b0C"
    )


def charge_text(ps: PowerSeries, c: Charge) -> str:
    """One charge in words: "done in 113 min, 0.2 -> 99.7 % (true)"."""
    what = {"done": "done in", "running": "still charging after", "fault": "FAULT after"}
    dur = f"{c.duration_s / 60:.0f} min" if c.duration_s >= 600 else f"{c.duration_s:.0f} s"
    text = f"{what.get(c.outcome, c.outcome + ' after')} {dur}"
    if ps.has_truth:
        text += f", {c.soc_start_pct:.1f} \u2192 {c.soc_end_pct:.1f} % (true)"
    return text


# --- one charge ----------------------------------------------------------------------


def charge_curve(ps: PowerSeries, charge: Charge, path: Path, *, title_text: str = "") -> Path:
    return _save(charge_curve_figure(ps, charge, title_text=title_text), path)


def charge_curve_figure(ps: PowerSeries, charge: Charge, *, title_text: str = "") -> Figure:
    """Voltage, current, temperature and SoC of one charge, from a little
    before its start to a little after its end, stages as lines."""
    c = ps.cols
    cc = CELL_COLUMNS[charge.which]
    stage = Stage.of(charge.which)
    minutes = charge.duration_s >= 20 * 60
    scale = 60.0 if minutes else 1.0
    pad = max(charge.duration_s * 0.04, 5.0)
    t = c["t_s"]
    w = (t >= charge.start_s - pad) & (t <= charge.end_s + pad)
    x = (t[w] - charge.start_s) / scale
    fig, axes = plt.subplots(
        4, 1, figsize=(12, 9.5), sharex=True, gridspec_kw={"height_ratios": [1.3, 1.3, 1, 1]}
    )
    ax_v, ax_i, ax_t, ax_s = axes
    truth = ps.has_truth
    if truth:
        ax_v.plot(x, c[cc["v_true"]][w], color="0.55", lw=0.9, label="terminal, true")
        ax_v.plot(x, c[cc["ocv_true"]][w], color="tab:brown", lw=0.8, ls="--", label="OCV, true")
    ax_v.plot(x, c[cc["v"]][w], color="tab:red", lw=1.0, label="measured by the firmware")
    ax_v.axhline(stage.v_full_v, color="k", lw=0.6, ls=":")
    ax_v.text(x[0], stage.v_full_v, f" CV target {stage.v_full_v:.2f} V", fontsize=7, va="bottom")
    ax_v.set_ylabel("cell voltage (V)")

    if truth:
        ax_i.plot(x, c[cc["a_true"]][w], color="0.55", lw=0.9, label="into the cell, true")
    ax_i.plot(x, c[cc["a"]][w], color="tab:blue", lw=1.0, label="measured by the firmware")
    for amps, text in ((stage.i_cc_a, "CC"), (stage.i_term_a, "termination")):
        ax_i.axhline(amps, color="k", lw=0.6, ls=":")
        ax_i.text(x[0], amps, f" {text} {amps * 1e3:.0f} mA", fontsize=7, va="bottom")
    ax_i.set_ylabel("current (A)")

    if truth:
        ax_t.plot(x, c[cc["temp_true"]][w], color="0.55", lw=0.9, label="true")
    ax_t.plot(x, c[cc["temp"]][w], color="tab:orange", lw=1.0, label="thermistor, firmware")
    _window_edges(ax_t)
    ax_t.set_ylabel("cell temperature (\u00b0C)")

    if truth:
        ax_s.plot(x, c[cc["soc_true"]][w], color="0.55", lw=0.9, label="true")
    ax_s.plot(x, c[cc["soc"]][w], color="tab:purple", lw=1.0, label="fuel gauge, firmware")
    ax_s.set_ylabel("state of charge (%)")
    ax_s.set_ylim(-2, 105)
    ax_s.set_xlabel(f"time from the start of the charge ({'min' if minutes else 's'})")

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=7)
    _stage_lines(ps, charge, axes, scale)
    head = title_text or title(ps.meta)
    which = f"{WHAT[charge.which]}: {charge_text(ps, charge)}"
    ax_v.set_title(f"{head}\n{which}; stages as dash-dot lines", fontsize=10, pad=16)
    fig.tight_layout()
    return fig


def _stage_lines(ps: PowerSeries, charge: Charge, axes: list[Axes], scale: float) -> None:
    """A line where each stage began, its name above the top panel (names
    closer than 3 % of the axis apart share a label); the termination
    marked on the current with its value."""
    stage = Stage.of(charge.which)
    stages = ps.stages(charge)
    term = ps.termination_a(charge)
    labels: list[tuple[float, str]] = []
    for k, (ts, name) in enumerate(stages):
        xs = (ts - charge.start_s) / scale
        if k == len(stages) - 1 and charge.outcome == "done":
            name = "terminated" + (f" at {term * 1e3:.0f} mA" if term is not None else "")
            amps = term if term is not None else stage.i_term_a
            axes[1].plot([xs], [amps], "x", color="k", ms=9, mew=1.5, label="termination")
        for ax in axes:
            ax.axvline(xs, color="0.3", lw=0.6, ls="-.")
        labels.append((xs, name))
    lo, hi = axes[0].get_xlim()
    gap = (hi - lo) * 0.03
    merged: list[tuple[float, str]] = []
    for xs, name in labels:
        if merged and xs - merged[-1][0] < gap:
            merged[-1] = (merged[-1][0], f"{merged[-1][1]}, {name}")
        else:
            merged.append((xs, name))
    for xs, name in merged:
        axes[0].text(
            xs,
            1.01,
            name,
            transform=axes[0].get_xaxis_transform(),
            fontsize=7,
            va="bottom",
            ha="center",
            color="tab:red" if "fault" in name else "0.2",
        )


def _window_edges(ax: Axes) -> None:
    """The temperature windows' edges that fall in the plotted range."""
    lo, hi = ax.get_ylim()
    for edge in WINDOW_EDGES_C:
        if lo - 2 <= edge <= hi + 2:
            ax.axhline(edge, color="tab:red", lw=0.6, ls=":")
            ax.text(
                0.0,
                edge,
                f" window edge {edge:g} \u00b0C",
                fontsize=7,
                va="bottom",
                color="tab:red",
                transform=ax.get_yaxis_transform(),
            )


# --- charges overlaid -------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    label: str
    ps: PowerSeries
    charge: Charge


def charge_overlay(
    curves: list[Curve], path: Path, *, title_text: str = "", note: str = ""
) -> Path:
    return _save(charge_overlay_figure(curves, title_text=title_text, note=note), path)


def charge_overlay_figure(curves: list[Curve], *, title_text: str = "", note: str = "") -> Figure:
    """Charges aligned on their start: voltage, current, temperature and SoC
    (true where the record has it, else as the firmware measured them; the
    gauge's SoC dashed). Each curve marks where it went from CC to CV (dot)
    and where it terminated (cross). Up to 10 curves get a legend; more, a
    colour scale of their order."""
    if not curves:
        raise ValueError("a charge overlay needs at least one charge")
    longest = max(cv.charge.duration_s for cv in curves)
    minutes = longest >= 20 * 60
    scale = 60.0 if minutes else 1.0
    fig, axes = plt.subplots(
        4,
        1,
        figsize=(12, 9.5),
        sharex=True,
        gridspec_kw={"height_ratios": [1.3, 1.3, 1, 1]},
        layout="constrained",
    )
    ax_v, ax_i, ax_t, ax_s = axes
    n = len(curves)
    legend = n <= 10
    colors = [plt.cm.tab10(i) if legend else plt.cm.viridis(i / max(n - 1, 1)) for i in range(n)]
    for cv, color in zip(curves, colors, strict=True):
        ch, c = cv.charge, cv.ps.cols
        cc = CELL_COLUMNS[ch.which]
        truth = cv.ps.has_truth
        w = slice(ch.first, ch.last + 1)
        x = (c["t_s"][w] - ch.start_s) / scale
        lw = 1.0 if n <= 4 else 0.7
        v = c[cc["v_true" if truth else "v"]][w]
        a = c[cc["a_true" if truth else "a"]][w]
        ax_v.plot(x, v, color=color, lw=lw, label=cv.label if legend else None)
        ax_i.plot(x, a, color=color, lw=lw)
        ax_t.plot(x, c[cc["temp_true" if truth else "temp"]][w], color=color, lw=lw)
        if truth:
            ax_s.plot(x, c[cc["soc_true"]][w], color=color, lw=lw)
        ax_s.plot(x, c[cc["soc"]][w], color=color, lw=lw * 0.8, ls="--")
        cv_at = next((ts for ts, name in cv.ps.stages(ch) if name == "cv"), None)
        if cv_at is not None:
            i = int(np.searchsorted(c["t_s"], cv_at))
            ax_i.plot(
                [(cv_at - ch.start_s) / scale],
                [c[cc["a_true" if truth else "a"]][i]],
                "o",
                color=color,
                ms=4,
            )
        term = cv.ps.termination_a(ch) if truth else None
        if ch.outcome == "done":
            ax_i.plot([x[-1]], [term if term is not None else a[-1]], "x", color=color, ms=6)
    whichs = sorted({cv.charge.which for cv in curves})
    stage = Stage.of(whichs[0])
    ax_v.axhline(stage.v_full_v, color="k", lw=0.6, ls=":")
    if any(cv.ps.cols[CELL_COLUMNS[cv.charge.which]["temp"]].max() > 45 for cv in curves):
        ax_v.axhline(V_WARM_V, color="k", lw=0.6, ls=":")
    ax_i.axhline(stage.i_term_a, color="k", lw=0.6, ls=":")
    ax_i.text(
        0, stage.i_term_a, f" termination {stage.i_term_a * 1e3:.0f} mA", fontsize=7, va="bottom"
    )
    ax_v.set_ylabel("cell voltage (V)")
    ax_i.set_ylabel("current into the cell (A)")
    ax_t.set_ylabel("cell temperature (\u00b0C)")
    _window_edges(ax_t)
    ax_s.set_ylabel("state of charge (%)")
    ax_s.set_xlabel(f"time from the start of each charge ({'min' if minutes else 's'})")
    marks = [
        Line2D([], [], color="0.3", marker="o", ls="", label="CC \u2192 CV"),
        Line2D([], [], color="0.3", marker="x", ls="", label="terminated"),
        Line2D([], [], color="0.3", ls="--", label="SoC, fuel gauge"),
    ]
    ax_i.legend(handles=marks, loc="upper right", fontsize=7)
    if legend:
        ax_v.legend(loc="lower right", fontsize=7, ncol=2)
    else:
        sm = plt.cm.ScalarMappable(cmap="viridis", norm=matplotlib.colors.Normalize(1, n))
        fig.colorbar(sm, ax=list(axes), label="charge (order in the run)", fraction=0.025, pad=0.01)
    for ax in axes:
        ax.grid(alpha=0.3)
    head = title_text or title(curves[0].ps.meta)
    what = " and ".join(WHAT[w] for w in whichs)
    truth_note = "true values" if all(cv.ps.has_truth for cv in curves) else "as measured"
    ax_v.set_title(
        f"{head}\n{n} \u00d7 {what}, aligned on their start ({truth_note}){note}", fontsize=10
    )
    return fig


SHORT_S = 30.0  # a recharge stopped sooner is left out of the overlay (and counted in the title)


def holder_recharges(ps: PowerSeries, path: Path) -> Path | None:
    """The holder recharges of a run, overlaid: every one that terminated,
    and those stopped or running that lasted SHORT_S or more; None if there
    is none."""
    charges = ps.charges("holder")
    shown = [
        (k, c) for k, c in enumerate(charges) if c.outcome == "done" or c.duration_s >= SHORT_S
    ]
    if not shown:
        return None
    curves = [Curve(f"recharge {k + 1}: {_short(c)}", ps, c) for k, c in shown]
    left = Counter(c.outcome for c in charges if c.outcome != "done" and c.duration_s < SHORT_S)
    note = ""
    if left:
        what = ", ".join(f"{n} {o}" for o, n in left.items())
        note = f"; not shown: {what} within {SHORT_S:.0f} s of starting"
    return charge_overlay(curves, path, note=note)


def _short(c: Charge) -> str:
    return (
        f"{c.outcome} {c.duration_s:.0f} s"
        if c.duration_s < 600
        else (f"{c.outcome} {c.duration_s / 60:.0f} min")
    )


# --- the kit's day -------------------------------------------------------------------


def kit_day(ps: PowerSeries, path: Path) -> Path:
    return _save(kit_day_figure(ps), path)


def kit_day_figure(ps: PowerSeries) -> Figure:
    """A run of hours on one page: both cells' SoC, true (solid) and as the
    gauges estimate it (dashed); sessions as bands coloured by how they
    ended; refused starts; USB and dock events; the cells' voltages; the
    kit's state as a line over its states."""
    c = ps.cols
    t = c["t_s"]
    span = float(t[-1] - t[0]) if len(t) else 0.0
    unit, scale = ("h", 3600.0) if span >= 3 * 3600 else ("min", 60.0)
    x = t / scale
    fig, (ax_s, ax_v, ax_k) = plt.subplots(
        3, 1, figsize=(13, 9), sharex=True, gridspec_kw={"height_ratios": [2.2, 1, 1]}
    )
    for which, color in (("usb", "tab:blue"), ("holder", "tab:purple")):
        cc = CELL_COLUMNS[which]
        name = CELL_NAMES[which]
        if ps.has_truth:
            ax_s.plot(x, c[cc["soc_true"]], color=color, lw=1.0, label=f"{name}, true")
        ax_s.plot(x, c[cc["soc"]], color=color, lw=0.8, ls="--", label=f"{name}, fuel gauge")
        ax_v.plot(x, c[cc["v"]], color=color, lw=0.7, label=f"{name}, measured")
    sessions = ps.sessions()
    for s in sessions:
        kind = "complete" if s.complete else "cut off" if s.cut_off else "other"
        for ax in (ax_s, ax_v, ax_k):
            ax.axvspan(
                s.start_s / scale, s.end_s / scale, color=SESSION_COLORS[kind], alpha=0.25, lw=0
            )
    refusals = ps.refusals()
    if refusals:
        rx = [tr / scale for tr, _ in refusals]
        ax_s.plot(rx, [103.0] * len(rx), "x", color="tab:red", ms=7, mew=1.5)
    events = ps.events()
    for te, name in events:
        xe = te / scale
        if name.startswith("usb"):
            for ax in (ax_s, ax_v, ax_k):
                ax.axvline(xe, color="tab:green" if name == "usb in" else "0.3", lw=1.0, ls="-.")
            ax_s.text(xe, 50, f" {name.upper()}", rotation=90, fontsize=8, va="center")
        else:
            ax_s.plot(
                [xe],
                [-4.0],
                "^" if name == "docked" else "v",
                ms=4,
                color="0.25" if name == "docked" else "tab:orange",
            )
    kit = c["kit"].astype(int)
    ax_k.step(x, kit, where="post", color="0.2", lw=0.8)
    ax_k.set_yticks(range(len(KIT_NAMES)), KIT_NAMES, fontsize=7)
    ax_k.set_ylabel("kit state (name)")
    ax_s.set_ylabel("state of charge (%)")
    ax_s.set_ylim(-8, 108)
    ax_v.set_ylabel("cell voltage (V)")
    ax_k.set_xlabel(f"time ({unit})")
    kinds = Counter(
        "complete" if s.complete else "cut off" if s.cut_off else "other" for s in sessions
    )
    names = {"complete": "complete", "cut off": "cut off", "other": "stopped or running"}
    extra: list[Artist] = [
        Patch(color=SESSION_COLORS[k], alpha=0.3, label=f"session, {names[k]} ({n})")
        for k, n in kinds.items()
    ]
    if refusals:
        extra.append(Line2D([], [], color="tab:red", marker="x", ls="", label="start refused"))
    if any(name in ("docked", "undocked") for _, name in events):
        extra.append(Line2D([], [], color="0.25", marker="^", ls="", ms=4, label="holder docked"))
        extra.append(
            Line2D([], [], color="tab:orange", marker="v", ls="", ms=4, label="holder out")
        )
    h, lab = ax_s.get_legend_handles_labels()
    ax_s.legend(
        h + extra,
        lab + [str(e.get_label()) for e in extra],
        loc="center left",
        bbox_to_anchor=(1.005, 0.5),
        fontsize=8,
    )
    ax_v.legend(loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=8)
    for ax in (ax_s, ax_v, ax_k):
        ax.grid(alpha=0.3)
    ax_s.set_title(f"{title(ps.meta)}\nthe kit's day: {day_text(ps)}", fontsize=10)
    fig.tight_layout()
    return fig


def day_text(ps: PowerSeries) -> str:
    ss = ps.sessions()
    parts = [
        f"{len(ss)} sessions ({sum(s.complete for s in ss)} complete, "
        f"{sum(s.cut_off for s in ss)} cut off)"
        if ss
        else "no session"
    ]
    refused = Counter(r for _, r in ps.refusals())
    if refused:
        parts.append(", ".join(f"{n} refused ({r})" for r, n in refused.items()))
    if ps.has_truth:
        soc = ps.cols["charger_soc_true_pct"]
        parts.append(f"charger {soc[0]:.0f} \u2192 {soc[-1]:.1f} %")
    return ", ".join(parts)


# --- what `heatrig sim` writes ---------------------------------------------------------

DAY_MIN_S = 30 * 60  # a run this long, or of several sessions, gets the kit's day


def write_all(ps: PowerSeries, out: Path) -> list[Path]:
    """Every power plot that applies to the run: each USB charge's curve,
    the holder recharges overlaid, the kit's day."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k, ch in enumerate(ps.charges("usb")):
        name = "usb_charge.png" if k == 0 else f"usb_charge-{k + 1}.png"
        written.append(charge_curve(ps, ch, out / name))
    p = holder_recharges(ps, out / "holder_recharges.png")
    if p is not None:
        written.append(p)
    t = ps.cols["t_s"]
    if len(t) and (len(ps.sessions()) >= 2 or t[-1] - t[0] >= DAY_MIN_S):
        written.append(kit_day(ps, out / "kit_day.png"))
    return written

"""Heating-curve plots (matplotlib, rendered headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from hil.kpi import BAND_PCT, PuffWindow
from hil.record import FAULT_NAMES, STATE_NAMES, Record


def heating_curve(
    rec: Record, path: Path, puffs: list[PuffWindow] | None = None, title: str = ""
) -> Path:
    """Blade temperature against the set-point and its tolerance band, puffs
    shaded, state changes marked; heater power and cell voltage beneath."""
    c = rec.cols
    t = c["t_s"]
    fig, (ax_t, ax_p) = plt.subplots(
        2, 1, figsize=(12, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    sp = np.where(c["setpoint_c"] > 0, c["setpoint_c"], np.nan)
    temp = np.where(c["temp_c"] > 0, c["temp_c"], np.nan)
    ax_t.fill_between(
        t,
        sp * (1 - BAND_PCT / 100),
        sp * (1 + BAND_PCT / 100),
        color="tab:green",
        alpha=0.15,
        lw=0,
        label=f"set-point \u00b1{BAND_PCT:g} %",
    )
    ax_t.plot(t, sp, color="tab:green", lw=1.0, ls="--", label="set-point")
    if rec.has_truth:
        ax_t.plot(t, c["blade_true_c"], color="0.55", lw=0.8, label="blade, true (simulator)")
        ax_t.plot(
            t, c["plug_true_c"], color="tab:brown", lw=0.8, alpha=0.7, label="tobacco plug, true"
        )
    ax_t.plot(t, temp, color="tab:red", lw=1.0, label="blade, measured by the firmware")
    ax_t.axhline(350, color="k", lw=0.6, ls=":")
    ax_t.text(t[-1] if len(t) else 0, 346, "350 \u00b0C cap", fontsize=8, va="top", ha="right")
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
    ax_t.legend(loc="lower right", fontsize=8, ncol=2)
    ax_t.set_title(title or _title(rec), fontsize=11)

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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _states(ax: Axes, rec: Record) -> None:
    c = rec.cols
    t, state = c["t_s"], c["state"]
    changes = np.flatnonzero(np.diff(state)) + 1
    for i in changes:
        name = STATE_NAMES[int(state[i])]
        if name == "fault":
            name = "FAULT: " + FAULT_NAMES[int(c["fault"][i])]
        ax.axvline(t[i], color="0.3", lw=0.6, ls="-.")
        ax.text(
            t[i],
            388,
            " " + name,
            rotation=90,
            fontsize=7,
            va="top",
            color="tab:red" if name.startswith("FAULT") else "0.3",
        )


def _title(rec: Record) -> str:
    m = rec.meta
    return (
        f"{m.get('scenario', '?')} \u2014 firmware {m.get('firmware_version', '?')}, "
        f"target {m.get('target', '?')}, profile {m.get('profile', '?')}, "
        f"regime {m.get('regime', '?')}, seed {m.get('seed', '?')}, "
        f"ambient {m.get('ambient_c', '?')} \u00b0C"
    )

"""Power plots: the CC/CV charge curve with its stages and termination, the
holder recharges overlaid, the kit's day -- units on every axis, the
scenario and firmware version in the title, written by `heatrig sim`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from test_plots import _check_axes, _titles, _xdata, _ydata

from hil.qa.power import PowerSeries
from hil.report import power_plot
from hil.simulator import runner


def _power(res: runner.RunResult) -> PowerSeries:
    assert res.power is not None and len(res.power)
    return res.power


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_usb_charge_curve_marks_its_stages_and_termination(
    usb_charge_run: runner.RunResult,
) -> None:
    ps = _power(usb_charge_run)
    (charge,) = ps.charges("usb")
    fig = power_plot.charge_curve_figure(ps, charge)
    _check_axes(fig)
    fw = ps.meta["firmware_version"]
    assert "usb_charge" in _titles(fig) and f"firmware {fw}" in _titles(fig)
    assert "USB charge of the charger cell: done in 113 min" in _titles(fig)
    labels = _texts(fig)
    # the stages as lines, named above the top panel; pre and cc a second apart share a label
    assert "pre, cc" in labels and "cv" in labels
    term = [t for t in labels if t.startswith("terminated at ")]
    assert term and term[0].endswith(" mA")
    # every panel has a line at each stage change
    stages = ps.stages(charge)
    for ax in fig.axes:
        verticals = [ln for ln in ax.get_lines() if len(set(_xdata(ln))) == 1]
        assert len(verticals) >= len(stages)
    # the termination is a cross on the current, at the current it terminated at
    cross = [ln for ln in fig.axes[1].get_lines() if ln.get_marker() == "x"]
    assert len(cross) == 1 and 0.04 < _ydata(cross[0])[0] < 0.065


def test_holder_recharges_overlay_one_curve_each(
    multi_session_run: runner.RunResult, tmp_path: Path
) -> None:
    ps = _power(multi_session_run)
    png = power_plot.holder_recharges(ps, tmp_path / "h.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    charges = ps.charges("holder")
    shown = [c for c in charges if c.outcome == "done" or c.duration_s >= power_plot.SHORT_S]
    curves = [power_plot.Curve(f"r{k}", ps, c) for k, c in enumerate(shown)]
    fig = power_plot.charge_overlay_figure(curves)
    _check_axes(fig)
    volts = [ln for ln in fig.axes[0].get_lines() if len(_xdata(ln)) > 2]  # not the 4.2 V line
    assert len(volts) == len(shown) >= 22
    assert f"{len(shown)} \u00d7 holder recharge" in _titles(fig)
    done = sum(c.outcome == "done" for c in shown)
    crosses = [ln for ln in fig.axes[1].get_lines() if ln.get_marker() == "x"]
    assert len(crosses) == done


def test_the_kits_day_shows_sessions_refusals_and_events(
    multi_session_run: runner.RunResult,
) -> None:
    ps = _power(multi_session_run)
    fig = power_plot.kit_day_figure(ps)
    _check_axes(fig)
    top = fig.axes[0]
    bands = [p for p in top.patches if p.get_alpha() == 0.25]
    assert len(bands) == len(ps.sessions()) == 23
    refused = [ln for ln in top.get_lines() if ln.get_marker() == "x" and len(_xdata(ln)) > 1]
    assert len(refused) == 1 and len(_xdata(refused[0])) == len(ps.refusals()) == 7
    docks = [ln for ln in top.get_lines() if ln.get_marker() in ("^", "v")]
    assert len(docks) == sum(name in ("docked", "undocked") for _, name in ps.events())
    assert "23 sessions (23 complete, 0 cut off), 7 refused (holder_low)" in _titles(fig)
    # the SoC lines: both cells, true and estimated, in hours
    labels = {str(ln.get_label()) for ln in top.get_lines()}
    assert {"charger cell, true", "charger cell, fuel gauge", "holder cell, true"} <= labels
    assert fig.axes[2].get_xlabel() == "time (h)"
    soc = next(ln for ln in top.get_lines() if ln.get_label() == "charger cell, true")
    assert _ydata(soc)[0] > 99 and np.nanmin(_ydata(soc)) < 10


def test_sim_writes_the_plots_that_apply(
    usb_charge_run: runner.RunResult, multi_session_run: runner.RunResult, tmp_path: Path
) -> None:
    usb = power_plot.write_all(_power(usb_charge_run), tmp_path / "u")
    day = power_plot.write_all(_power(multi_session_run), tmp_path / "d")
    assert [p.name for p in usb] == ["usb_charge.png", "kit_day.png"]
    assert [p.name for p in day] == ["holder_recharges.png", "kit_day.png"]

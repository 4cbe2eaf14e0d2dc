"""Plots: every axis carries its units, titles name the scenario and the
firmware version, files are PNGs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import sim_scenario
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hil.qa.measure import Limits
from hil.report import plot
from hil.simulator import runner
from hil.wire.series import TelemetrySeries

UNITS = re.compile(r"\(.+\)")


def _check_axes(fig: Figure) -> None:
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.has_data()]
    assert axes
    for ax in axes:
        assert UNITS.search(ax.get_ylabel()), f"y axis without units: {ax.get_ylabel()!r}"
        if ax.get_xlabel():
            assert UNITS.search(ax.get_xlabel()), f"x axis without units: {ax.get_xlabel()!r}"
    bottom = min(axes, key=lambda ax: ax.get_position().y0)
    assert UNITS.search(bottom.get_xlabel())


def _xdata(line: Line2D) -> np.ndarray:
    return np.asarray(line.get_xdata(), dtype=float)


def _ydata(line: Line2D) -> np.ndarray:
    return np.asarray(line.get_ydata(), dtype=float)


def _titles(fig: Figure) -> str:
    return " ".join([ax.get_title() for ax in fig.axes] + [fig.get_suptitle()])


def test_heating_curve(hci: runner.RunResult, tmp_path: Path) -> None:
    fig = plot.heating_curve_figure(hci.series)
    _check_axes(fig)
    fw = hci.series.meta["firmware_version"]
    assert "hci" in _titles(fig) and f"firmware {fw}" in _titles(fig)
    png = plot.heating_curve(hci.series, tmp_path / "h.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _shifted(rec: TelemetrySeries, dt_s: float, fw: str) -> TelemetrySeries:
    cols = dict(rec.cols)
    cols["t_s"] = rec.cols["t_s"] + dt_s
    return TelemetrySeries(meta=dict(rec.meta, firmware_version=fw), cols=cols)


def test_overlay_of_two_firmware_versions(hci: runner.RunResult, tmp_path: Path) -> None:
    other = _shifted(hci.series, 3.0, "9.9.9")
    fig = plot.overlay_figure([("fw a", hci.series), ("fw b", other)])
    _check_axes(fig)
    top = fig.axes[0]
    legend = top.get_legend()
    assert legend is not None
    assert {"fw a", "fw b"} <= {t.get_text() for t in legend.get_texts()}
    assert "9.9.9" in _titles(fig)
    # aligned on the start of heating: both runs rise at the same abscissa
    lines = [ln for ln in top.get_lines() if ln.get_label() in ("fw a", "fw b")]
    rise = [_xdata(ln)[np.argmax(np.nan_to_num(_ydata(ln)) > 100)] for ln in lines]
    assert rise[0] == pytest.approx(rise[1], abs=0.02)
    plot.overlay([("a", hci.series)], tmp_path / "o.png")


def test_overlay_of_a_sweep_has_a_colour_scale(hci: runner.RunResult) -> None:
    runs = [(f"r{k}", _shifted(hci.series, k, "0")) for k in range(12)]
    fig = plot.overlay_figure(runs, color_values=list(range(12)), color_label="R0 (ohm)")
    assert any(ax.get_ylabel() == "R0 (ohm)" for ax in fig.axes)  # the colour bar
    with pytest.raises(ValueError, match="colour values"):
        plot.overlay_figure(runs, color_values=[1.0])


def test_battery_plot_of_two_sessions(tmp_path: Path) -> None:
    res = sim_scenario(
        """
        [scenario]
        name = "two_sessions"
        duration_s = 1150
        [holder]
        docked = true
        [sessions]
        count = 2
        every_s = 720
        first_s = 10
        [puffing]
        regime = "iso3308"
        """
    )
    fig = plot.battery_figure(res.series)
    _check_axes(fig)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.startswith(" session 1: time_limit") for t in texts)
    assert any(t.startswith(" session 2:") for t in texts)
    assert "2 heating sessions" in _titles(fig)
    soc = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "holder cell, true"]
    assert len(soc) == 1 and _ydata(soc[0])[-1] < _ydata(soc[0])[0]


def test_distributions_mark_limits_and_notes(tmp_path: Path) -> None:
    values = {"energy_j": np.array([1200.0, 1250.0, 1300.0]), "puffs_taken": np.array([12.0] * 3)}
    fig = plot.distributions_figure(
        values,
        {"energy_j": Limits(max=1500.0, marginal_max=1400.0)},
        {"energy_j": "energy per session (J)", "puffs_taken": "puffs taken"},
        title="campaign x, firmware 0.1.0",
        notes={"energy_j": "Cpk 2.00"},
    )
    ax = fig.axes[0]
    assert ax.get_xlabel() == "energy per session (J)"
    assert sorted(_xdata(ln)[0] for ln in ax.get_lines()) == [1400.0, 1500.0]
    assert "Cpk 2.00" in [t.get_text() for t in ax.texts]
    assert "firmware 0.1.0" in _titles(fig)

"""`heatrig report`: one self-contained HTML file."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest
from conftest import heatrig

from hil import cli
from hil.qa import limits
from hil.report import html as report
from hil.simulator import runner


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name in ("hci", "iso3308"):
        r = heatrig("sim", name, "--out", str(root / name), "--no-plot")
        assert r.returncode == 0, r.stderr
        out[name] = root / name
    return out


def test_report_of_hci_and_iso_renders_offline(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    r = heatrig("report", str(runs["hci"]), str(runs["iso3308"]), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout and "PASS" in r.stdout
    html = out.read_text()
    # self-contained: no external resource of any kind
    assert not re.search(r"""(src|href)=["'](https?:|//|file:)""", html)
    assert "<link" not in html and "<script" not in html
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(pngs) == 5  # overlay, then a heating curve and a battery plot per run
    for data in pngs:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    for text in ("hci", "iso3308", "time to set-point", "limits/standard-hci.toml", "firmware"):
        assert text in html
    assert html.count('id="run-') == 2
    assert "#1e7b34" in html  # pass, coloured


def test_a_csv_alone_is_measured_and_judged(runs: dict[str, Path], tmp_path: Path) -> None:
    csv = tmp_path / "telemetry.csv"
    csv.write_text((runs["iso3308"] / "telemetry.csv").read_text())
    run = report.load_run(csv)
    stored = report.load_run(runs["iso3308"])
    assert [m.value for m in run.test.measurements] == [m.value for m in stored.test.measurements]
    assert run.test.outcome.value == "pass"


def test_other_limits_judge_the_same_runs_again(runs: dict[str, Path], tmp_path: Path) -> None:
    strict = tmp_path / "strict.toml"
    strict.write_text('[energy_j]\nmax = 1000.0\nsource = "a tighter budget"\n')
    out = tmp_path / "strict.html"
    r = heatrig("report", str(runs["hci"]), "--limits", str(strict), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "FAIL" in r.stdout
    html = out.read_text()
    assert "a tighter budget" in html and "#b3261e" in html  # fail, coloured


def test_a_missing_run_is_reported_without_a_traceback(tmp_path: Path) -> None:
    r = heatrig("report", str(tmp_path / "nothing"))
    assert r.returncode == 2
    assert "no telemetry.csv or power.csv" in r.stderr and "Traceback" not in r.stderr
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    r = heatrig("report", str(other))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "not a heatrig telemetry CSV: no column t_s, state" in r.stderr


def test_a_sweep_is_told_apart_by_a_colour_scale() -> None:
    base = {"firmware_version": "0.1.0", "scenario": "hci", "unit_r0_ohm": "0.8", "seed": "1"}
    sweep = [dict(base, unit_r0_ohm=str(0.72 + 0.02 * k), seed=str(k)) for k in range(6)]
    assert report.sweep_key(sweep) == "unit_r0_ohm"
    assert report.sweep_key(sweep[:3]) is None  # a few runs: a legend reads better
    versions = [dict(base, firmware_version=v) for v in ("0.1.0", "0.2.0")]
    assert report.run_labels(versions, ["a", "b"]) == [
        "firmware_version 0.1.0",
        "firmware_version 0.2.0",
    ]
    assert report.sweep_key([dict(base, firmware_version=f"v{k}") for k in range(6)]) is None


@pytest.fixture(scope="module")
def power_runs(
    tmp_path_factory: pytest.TempPathFactory,
    usb_charge_run: runner.RunResult,
    multi_session_run: runner.RunResult,
) -> dict[str, Path]:
    """Run directories as `heatrig sim` writes them, from the session's runs."""
    root = tmp_path_factory.mktemp("power_runs")
    out = {"usb_charge": root / "usb_charge", "multi_session": root / "multi_session"}
    cli.write_run(usb_charge_run, out["usb_charge"], plots=False)
    cli.write_run(multi_session_run, out["multi_session"], plots=False)
    shutil.copytree(out["usb_charge"], root / "usb_charge_again")
    out["usb_charge_again"] = root / "usb_charge_again"
    return out


def test_a_report_shows_power_beside_heating(
    runs: dict[str, Path], power_runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "power.html"
    r = heatrig(
        "report", str(power_runs["multi_session"]), str(power_runs["usb_charge"]),
        str(runs["hci"]), "-o", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "limits/power-multi_session.toml" in r.stdout and "limits/standard-hci.toml" in r.stdout
    html = out.read_text()
    for text in (
        "complete sessions on one charger charge",  # power measurements, and their sources
        "docs/reference.md#cells-and-charging",
        "refused: holder_low x7",  # the plain summary
        "usb charge: done in 113 min",
        "not judged &mdash; no heating session in this run",
        "time to set-point",  # hci's heating, beside
    ):
        assert text in html, text
    pngs = re.findall(r'src="data:image/png;base64,', html)
    # hci: heating curve and battery; multi_session: holder recharges and the day;
    # usb_charge: its charge curve and the day; no overlay (one heating run, one USB charge)
    assert len(pngs) == 6


def test_charge_curves_of_several_runs_overlay(power_runs: dict[str, Path]) -> None:
    runs = [report.load_run(power_runs[n]) for n in ("usb_charge", "usb_charge_again")]
    assert all(r.test.outcome.value == "pass" for r in runs)
    html = report.render(runs)
    # the overlay of the two USB charges, then each run's charge curve and day
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 1 + 2 * 2
    assert "USB charge time" in html and html.count('id="run-') == 2


def test_a_power_csv_alone_is_measured_and_judged(power_runs: dict[str, Path]) -> None:
    alone = report.load_run(power_runs["multi_session"] / "power.csv")
    stored = report.load_run(power_runs["multi_session"])
    assert [(m.name, m.value) for m in alone.test.measurements] == [
        (m.name, m.value) for m in stored.test.measurements
    ]
    assert alone.test.outcome == stored.test.outcome
    strict = limits.parse('[limits]\nscenario = "multi_session"\n[sessions_per_charge]\nmin = 30\n')
    again = report.load_run(power_runs["multi_session"], power_limits=strict)
    assert again.test.outcome.value == "fail" and again.test.power_limits == "(inline limits)"

"""The heatrig command as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import heatrig

from hil import cli
from hil.qa import kpi
from hil.simulator import runner

KPI_KEYS = {
    "time_to_setpoint_s", "overshoot_pct", "rms_error_c", "max_puff_dip_c", "puff_recovery_s",
    "puffs_taken", "puffs_detected", "energy_j", "end_reason", "end_time_s", "peak_blade_true_c",
    "realtime_factor",
}  # fmt: skip


def test_sim_json_prints_one_object_with_the_kpis() -> None:
    r = heatrig("sim", "hci_20s", "--json")
    assert r.returncode == 0, r.stderr
    k = json.loads(r.stdout)
    assert set(k) >= KPI_KEYS
    assert k["end_reason"] == "puff_limit"


def test_sim_writes_csv_png_and_kpi_table(tmp_path: Path) -> None:
    r = heatrig("sim", "iso3308", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    for name in ("telemetry.csv", "heating_curve.png", "kpi.json"):
        assert (tmp_path / name).stat().st_size > 0
        assert str(tmp_path / name) in r.stdout
    for spec in kpi.KPIS:
        assert spec.label in r.stdout or not spec.printed
    assert (tmp_path / "heating_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "telemetry.csv").read_text().startswith("# heatrig telemetry\n")


def test_an_invalid_scenario_is_reported_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nname = "x"\n[puffing]\nregime = "hcii"\n')
    r = heatrig("sim", str(bad))
    assert r.returncode == 2
    assert f"{bad}:4: [puffing] regime: must be one of" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_unknown_scenario_lists_the_builtin_ones() -> None:
    r = heatrig("sim", "nosuch")
    assert r.returncode == 2
    assert "hci" in r.stderr and "iso3308" in r.stderr


def test_a_missing_micropython_says_what_to_do() -> None:
    r = heatrig("sim", "hci", env={"HEATRIG_MICROPYTHON": "/nonexistent/micropython"})
    assert r.returncode == 2
    assert "HEATRIG_MICROPYTHON" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_charge_only_run_says_so_and_prints_plain_power(
    usb_charge_run: runner.RunResult, tmp_path: Path
) -> None:
    text = cli.write_run(usb_charge_run, tmp_path)
    assert "heating    not judged: no heating session in this run" in text
    assert "not_started" not in text and "time to set-point" not in text
    assert "  usb charge: done in 113 min, " in text
    assert "outcome    PASS (limits: limits/power-usb_charge.toml)" in text
    assert text.isascii(), [ln for ln in text.splitlines() if not ln.isascii()]
    for name in ("power.csv", "usb_charge.png", "kit_day.png", "record.json"):
        assert (tmp_path / name).stat().st_size > 0 and str(tmp_path / name) in text
    assert not (tmp_path / "heating_curve.png").exists()
    rec = json.loads((tmp_path / "record.json").read_text())
    assert rec["not_judged"] == {"heating": "no heating session in this run"}
    assert rec["power_limits"] == "limits/power-usb_charge.toml" and rec["outcome"] == "pass"
    assert {m["group"] for m in rec["measurements"]} == {"power"}
    power = cli.run_json(usb_charge_run)["power"]
    assert isinstance(power, dict)
    [charge] = power["usb_charges"]
    assert charge["outcome"] == "done" and round(charge["minutes"]) == 113  # as the summary says


def test_a_day_of_sessions_is_judged_on_its_power(
    multi_session_run: runner.RunResult, tmp_path: Path
) -> None:
    text = cli.write_run(multi_session_run, tmp_path, plots=False)
    assert "  sessions: 23 complete, 0 cut off\n  refused: holder_low x7\n" in text
    assert "complete sessions on one charger charge" in text
    assert "outcome    PASS (limits: limits/power-multi_session.toml)" in text
    assert "[(" not in text and "['" not in text  # no Python reprs


def test_limits_files_given_are_told_apart(tmp_path: Path) -> None:
    heat, power = cli.limit_files(
        [Path("limits/standard-hci.toml"), Path("limits/power-usb_charge.toml")]
    )
    assert heat is not None and heat.group == "heating"
    assert power is not None and power.scenario == "usb_charge"
    args = ["--limits", "limits/power-usb_charge.toml", "--limits", "limits/power-day.toml"]
    r = heatrig("sim", "usb_charge", *args)
    assert r.returncode == 2 and "limits/power-day.toml: cannot read" in r.stderr
    args[-1] = "limits/power-multi_session.toml"
    r = heatrig("sim", "usb_charge", *args)
    assert r.returncode == 2 and "a second power limits file" in r.stderr

"""The heatrig command as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import heatrig

from hil.qa import kpi

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

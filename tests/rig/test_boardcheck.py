"""`heatrig board-check`: a board measured beside what the simulator assumes
(hil/rig/boardcheck.py, sim/probe/board.py), on the virtual board -- where the
emulation answers for the chip -- and its result taken by `heatrig sim --board`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import heatrig

from hil.rig import boardcheck


@pytest.fixture(scope="module")
def virtual_check(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("check") / "board.json"
    r = heatrig("board-check", "--port", "virtual", "--window", "2", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout, json.loads(out.read_text())


def test_the_virtual_board_reports_the_emulations_own_values(
    virtual_check: tuple[str, dict[str, Any]],
) -> None:
    text, result = virtual_check
    board = result["board"]
    adc = board["adc"]
    assert set(adc) == {name for name, _ in boardcheck.ADC_INPUTS}
    assert adc["heater_i"]["uv"] == adc["heater_v"]["uv"] == 142_000  # at rest: the offset
    assert adc["heater_i"]["raw"] == 0
    assert adc["cell_v"]["vref_mv"] == 1100  # the emulated chip's eFuse Vref
    assert 500 < adc["cell_v"]["noise_uv"] < 3000  # 1.5 LSB rms, whole mV
    step = board["step"]
    assert step["firmware"] and step["steps"] >= 195  # 2 s at 100 Hz, the firmware's step
    assert step["jitter_max_us"] == 0  # virtual time
    assert board["flash"]["step_gap_us"] == 10_000 + 46_200  # the model: commit, erase, 2 pages
    assert result["plant"] == {
        "adc_cal": 1.0, "adc_vref_mv": 1100.0, "mp_minor": 29.0, "flash_erase_us": 45_000.0,
    }  # fmt: skip
    for row in ("ADC heater_i (GPIO 39) at rest", "IDF exec heap", "flash: a 300 B record"):
        assert row in text


def test_heatrig_sim_takes_the_board_parameters(tmp_path: Path) -> None:
    """A unit whose chip has no ADC calibration: the session is refused at
    boot with the fault, not run on readings that raise."""
    board = tmp_path / "board.json"
    board.write_text(json.dumps({"plant": {"adc_cal": 0.0}, "run": {}}))
    out = tmp_path / "run"
    r = heatrig("sim", "hci", "--no-plot", "--out", str(out), "--board", str(board))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "heating    not judged: no control telemetry" in r.stdout, r.stdout  # no session ran
    assert json.loads((out / "kpi.json").read_text())["end_reason"] == "not_started"
    console = (out / "console.log").read_text().splitlines()
    assert "fault adc_implausible" in console
    assert any(line.startswith("adc check failed: ") for line in console)


def test_a_board_file_that_is_not_one_is_refused_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "board.json"
    bad.write_text(json.dumps({"plant": {"adc_vref": 1100.0}}))
    r = heatrig("sim", "hci", "--json", "--board", str(bad))
    assert r.returncode == 2
    assert "unknown board parameters adc_vref" in r.stderr and "Traceback" not in r.stderr


def _measured(**change: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "micropython": {"version": "1.25.0", "platform": "esp32", "machine": "ESP32"},
        "adc": {
            "heater_i": {"pin": 39, "raw": 0, "uv": 142000, "noise_uv": 0},
            "cell_v": {"pin": 34, "raw": 2300, "uv": 2010000, "noise_uv": 1800, "vref_mv": 1163},
            "cell_ntc": {"pin": 35, "raw": 2000, "uv": 1700000, "noise_uv": 1900, "vref_mv": 1159},
        },
        "heap": {"gc_free": 90000, "gc_used": 20000},
        "step": {
            "firmware": True, "steps": 6000, "window_ms": 60000, "jitter_p50_us": 40,
            "jitter_p99_us": 180, "jitter_max_us": 2900, "late_starts": 0, "step_mean_us": 900,
            "step_max_us": 1400, "longest_gap_us": 12900,
        },
        "flash": {"record_bytes": 300, "write_us": 61000, "step_gap_us": 71500},
    }  # fmt: skip
    m.update(change)
    return m


def test_a_boards_measurements_become_the_units_parameters() -> None:
    p = boardcheck.BoardCheck("/dev/ttyUSB0", False, _measured()).sim_params()
    assert p["plant"] == {
        "adc_cal": 1.0, "adc_vref_mv": 1163.0, "mp_minor": 25.0, "flash_erase_us": 60_300.0,
    }  # fmt: skip
    assert p["run"]["timer_latency"] == [180, 2900, 6000, 1]


def test_a_chip_whose_read_uv_raises_is_a_chip_without_calibration() -> None:
    adc = {"heater_i": {"pin": 39, "raw": 0, "error": "OSError (-258, 'ESP_ERR_INVALID_ARG')"}}
    p = boardcheck.BoardCheck("/dev/ttyUSB0", False, _measured(adc=adc)).sim_params()
    assert p["plant"]["adc_cal"] == 0.0 and "adc_vref_mv" not in p["plant"]

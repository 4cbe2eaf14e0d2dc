"""Scenario files are validated before anything runs, with line-precise errors."""

from __future__ import annotations

import binascii
import struct
from pathlib import Path

import pytest

from hil.paths import SCENARIOS_DIR
from hil.scenarios import scenario
from hil.wire.store_format import SIM_UNIT_ID as SIM_UNIT


def problems(text: str) -> list[str]:
    with pytest.raises(scenario.ScenarioError) as e:
        scenario.parse(text, Path("s.toml"))
    return e.value.problems


def test_a_typo_names_file_line_and_suggests_the_key() -> None:
    (p,) = problems('[scenario]\nname = "x"\n\n[ambient]\ntemp_cc = 20\n')
    assert p.startswith("s.toml:5: [ambient] temp_cc: unknown key (did you mean 'temp_c'?)")


def test_every_problem_is_reported_at_once() -> None:
    ps = problems(
        '[scenario]\nname = "x"\nprofile = "hot"\n[holder]\nsoc_pct = 140\n'
        "[puffing]\ninterval_s = -3\n"
    )
    assert len(ps) == 3
    assert ps[0].startswith("s.toml:3: [scenario] profile: must be one of")
    assert ps[1] == "s.toml:5: [holder] soc_pct: must be within 0..100, got 140.0"
    assert ps[2].startswith("s.toml:7: [puffing] interval_s: must be > 0")


def test_syntax_errors_carry_line_and_column() -> None:
    (p,) = problems('[scenario]\nname = "x"\nseed = \n')
    assert p.startswith("s.toml:3:")
    assert "TOML syntax" in p


def test_event_errors_point_at_the_event() -> None:
    text = (
        '[scenario]\nname = "x"\n'
        '[[events]]\nt_s = 5\naction = "ambient"\ntemp_c = 25\n'
        '[[events]]\nt_s = 6\naction = "fault"\nkind = "melted"\n'
    )
    (p,) = problems(text)
    assert p.startswith("s.toml:10: [[events]] #2 kind: must be one of 'heater_open'")


def test_events_need_their_arguments() -> None:
    (p,) = problems('[scenario]\nname = "x"\n[[events]]\nt_s = 5\naction = "ambient"\n')
    assert p == "s.toml:5: [[events]] #1 action: 'ambient' needs temp_c"


def test_wrong_types_are_named() -> None:
    (p,) = problems('[scenario]\nname = "x"\nseed = "one"\n')
    assert p == "s.toml:3: [scenario] seed: must be an integer, got 'one'"


def test_plant_overrides_are_checked_against_the_simulator() -> None:
    (p,) = problems('[scenario]\nname = "x"\n[plant]\nc_blade = 0.1\n')
    assert "unknown key (did you mean 'c_blade_j_per_k'?)" in p
    ok = scenario.parse('[scenario]\nname = "x"\n[plant]\nc_blade_j_per_k = 0.03\n')
    assert ok.run_config()["plant"]["c_blade_j_per_k"] == 0.03


def test_regimes_expand_to_puffs() -> None:
    hci = scenario.load(SCENARIOS_DIR / "hci.toml")
    assert len(hci.puffs) == 12
    assert {(p.volume_ml, p.duration_s) for p in hci.puffs} == {(55.0, 2.0)}
    gaps = {round(b.t_s - a.t_s, 6) for a, b in zip(hci.puffs, hci.puffs[1:], strict=False)}
    assert gaps == {30.0}
    iso = scenario.load(SCENARIOS_DIR / "iso3308.toml")
    assert [p.volume_ml for p in iso.puffs] == [35.0] * 6


def test_custom_puffs_and_overlaps() -> None:
    sc = scenario.parse(
        '[scenario]\nname = "x"\n[puffing]\nregime = "custom"\n'
        "[[puffing.puffs]]\nt_s = 30\nvolume_ml = 40\nduration_s = 3\n"
        '[[puffing.puffs]]\nt_s = 60\nvolume_ml = 60\nduration_s = 2\nshape = "square"\n'
    )
    assert [(p.t_s, p.volume_ml, p.bell) for p in sc.puffs] == [(30, 40, True), (60, 60, False)]
    (p,) = problems(
        '[scenario]\nname = "x"\n[puffing]\nregime = "custom"\n'
        "[[puffing.puffs]]\nt_s = 30\nvolume_ml = 40\nduration_s = 3\n"
        "[[puffing.puffs]]\nt_s = 31\nvolume_ml = 60\nduration_s = 2\n"
    )
    assert p.startswith(
        "s.toml:10: [[puffing.puffs]] #2 t_s: starts at 31 s, inside the puff at 30 s"
    )


def test_calibration_record_follows_the_unit() -> None:
    sc = scenario.parse('[scenario]\nname = "x"\n[unit]\nr0_ohm = 0.72\ntcr_per_k = 0.0031\n')
    rec = sc.calibration_record()
    assert rec is not None
    assert (rec["r0_uohm"], rec["tcr_ppm"], rec["unit"], rec["v"]) == (720000, 3100, SIM_UNIT, 2)
    assert rec["crc"] == binascii.crc32(f"720000,3100,{SIM_UNIT},2".encode())
    raw = scenario.parse('[scenario]\nname = "x"\n[unit]\ncalibrated = false\n')
    assert raw.calibration_record() is None
    assert raw.record == "missing" and raw.calibration_files() == {"calib.a": None, "calib.b": None}


def _unit(extra: str) -> scenario.Scenario:
    return scenario.parse(f'[scenario]\nname = "x"\n[unit]\nr0_ohm = 0.76\n{extra}')


def test_a_record_can_be_wrong_in_every_way_end_of_line_test_would_not_leave_it() -> None:
    other = _unit('record = "other_heater"\nrecord_r0_ohm = 0.81\nrecord_tcr_per_k = 0.0036\n')
    rec = other.calibration_record()
    assert rec is not None and (rec["r0_uohm"], rec["tcr_ppm"], rec["unit"]) == (
        810000,
        3600,
        SIM_UNIT,
    )
    assert not other.calibrated
    rec = _unit('record = "other_unit"').calibration_record()
    assert rec is not None and rec["unit"] != SIM_UNIT
    assert _unit('record = "stale"').calibration_record() == {"r0_uohm": 800000, "tcr_ppm": 3500}
    files = _unit('record = "damaged"').calibration_files()
    newest, older = files["calib.b"], files["calib.a"]
    assert newest is not None and older is not None
    seq, _ = struct.unpack("<IH", newest[8:14])
    assert seq == 2 and binascii.crc32(newest[8:]) != struct.unpack("<I", newest[4:8])[0]
    assert struct.unpack("<I", older[8:12])[0] == 1  # a whole, older copy behind the damaged one


def test_a_record_contradicting_calibrated_false_is_an_error() -> None:
    with pytest.raises(scenario.ScenarioError, match="calibrated = false has no record"):
        _unit('calibrated = false\nrecord = "good"')


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(scenario.ScenarioError, match="cannot read"):
        scenario.load(tmp_path / "nope.toml")


def test_repeated_sessions_expand_to_one_cycle() -> None:
    sc = scenario.parse(
        '[scenario]\nname = "x"\n[sessions]\ncount = 3\nevery_s = 600\nfirst_s = 10\n'
        '[puffing]\nregime = "hci"\n'
    )
    assert sc.series is not None and sc.duration_s == 10 + 3 * 600
    kinds = [kind for _, kind, _ in sc.series.events]
    assert kinds[:4] == ["dock", "stick", "button", "button"]
    assert kinds.count("puff") == 12 and kinds[-2:] == ["stick", "dock"]
    cycle = sc.run_config()["cycle"]
    assert (cycle["start_us"], cycle["period_us"], cycle["count"]) == (10_000_000, 600_000_000, 3)


def test_repeated_sessions_are_checked() -> None:
    ps = problems(
        '[scenario]\nname = "x"\n[start]\nbutton_at_s = 2\n[sessions]\ncount = 3\nevery_s = 100\n'
    )
    assert ps[0].startswith("s.toml:3: [start]: [start] is for one session")
    assert ps[1] == "s.toml:7: [sessions] every_s: a session takes 397 s, got 100"


def test_power_events_need_their_arguments() -> None:
    ps = problems(
        '[scenario]\nname = "x"\n'
        '[[events]]\nt_s = 1\naction = "usb"\n'
        '[[events]]\nt_s = 2\naction = "power_cut"\nat_write_byte = -1\n'
        '[[events]]\nt_s = 3\naction = "charger_soc"\nsoc_pct = 120\n'
    )
    assert ps == [
        "s.toml:5: [[events]] #1 action: 'usb' needs plugged",
        "s.toml:9: [[events]] #2 at_write_byte: must be within 0..1.04858e+06, got -1",
        "s.toml:13: [[events]] #3 soc_pct: must be within 0..100, got 120.0",
    ]


def test_charger_usb_and_record_tables_reach_the_simulator() -> None:
    sc = scenario.parse(
        '[scenario]\nname = "x"\n[charger]\nsoc_pct = 25\n[holder]\ndocked = true\n'
        "[usb]\nplugged = true\ni_limit_a = 0.5\n[record]\nsample_s = 1.0\ntelemetry = false\n"
    )
    cfg = sc.run_config()
    assert cfg["plant"]["chg_cell_soc"] == 0.25 and cfg["plant"]["docked"] == 1.0
    assert cfg["plant"]["usb_plugged"] == 1.0 and cfg["plant"]["usb_i_limit_a"] == 0.5
    assert cfg["sample_us"] == 1_000_000 and not sc.telemetry

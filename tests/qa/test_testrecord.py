"""The test record of a run: what was tested, every measurement, outcomes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import kpis, sim_scenario

from hil.qa import limits, measure, testrecord
from hil.qa.measure import Outcome
from hil.simulator import runner


def test_the_record_holds_who_what_and_every_measurement(
    hci: runner.RunResult, tmp_path: Path
) -> None:
    path = testrecord.build(hci.series, kpis(hci)).write(tmp_path / "record.json")
    d = json.loads(path.read_text())
    assert d["format"] == "heatrig test record"
    target = hci.series.meta["target"]  # the simulator, or a board: whichever ran it
    assert target.startswith(("sim", "serial"))
    for key, want in (("target", target), ("scenario", "hci"), ("seed", 1), ("regime", "hci")):
        assert d[key] == want
    assert d["firmware_version"] == hci.series.meta["firmware_version"] != ""
    assert [m["name"] for m in d["measurements"]] == [s.name for s in measure.KPI_SPECS]
    for m in d["measurements"]:
        assert {"name", "label", "units", "value", "outcome", "limits"} <= set(m)
    assert d["outcome"] == "pass"
    again = testrecord.read(path)
    assert again.measurements == testrecord.build(hci.series, kpis(hci)).measurements


def test_a_session_that_never_heats_fails_its_limits() -> None:
    res = sim_scenario(
        """
        [scenario]
        name = "cold_start"
        duration_s = 20
        [ambient]
        temp_c = -10.0
        [puffing]
        regime = "hci"
        """
    )
    test = testrecord.build(res.series, kpis(res))
    by_name = {m.name: m for m in test.measurements}
    assert by_name["time_to_setpoint_s"].value is None
    assert by_name["time_to_setpoint_s"].outcome == Outcome.FAIL
    assert by_name["end_reason"].value == "not_started"
    assert test.outcome == Outcome.FAIL


def test_unreadable_records_say_why(tmp_path: Path) -> None:
    bad = tmp_path / "record.json"
    bad.write_text("{not json")
    with pytest.raises(testrecord.RecordError, match="not JSON"):
        testrecord.read(bad)
    bad.write_text('{"format": "something else"}')
    with pytest.raises(testrecord.RecordError, match="not a heatrig test record"):
        testrecord.read(bad)


def test_no_limits_for_a_regime_leaves_outcomes_unset(hci: runner.RunResult) -> None:
    rec = hci.series
    meta = dict(rec.meta, regime="none")
    test = testrecord.build(type(rec)(meta=meta, cols=rec.cols), kpis(hci))
    assert test.limits == "none"
    assert {m.outcome for m in test.measurements} == {Outcome.UNSET}
    assert limits.for_run("standard", "none") is None

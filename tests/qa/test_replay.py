"""Record and replay: every run and live session on any target can keep a
trace of its link (hil/rig/trace.py); `heatrig replay` decodes one again into
the same telemetry, KPIs, record and heating curve; `pytest --replay TRACE`
serves a recorded run to the tests that only analyse one.

tests/data/traces holds two runs recorded from the virtual board
(`make traces` records them again), each with the KPIs its live run gave."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conftest import heatrig, kpis

from hil.paths import ROOT
from hil.rig import trace
from hil.rig.dut import Dut
from hil.rig.targets import NotReplayable, ReplayTarget, TargetError
from hil.scenarios import scenario

pytest_plugins = ["pytester"]

DATA = ROOT / "tests" / "data" / "traces"
SHIPPED = sorted(p.stem for p in DATA.glob("*.trace"))
SHORT = """
[scenario]
name = "traced"
duration_s = 12.0
[puffing]
regime = "hci"
[record]
sample_s = 0.1
"""


def test_two_traces_are_shipped_and_small() -> None:
    assert SHIPPED == ["heater_open", "short_hci"]
    for name in SHIPPED:
        tr = trace.read(DATA / f"{name}.trace")
        assert tr.header["target"].endswith("(virtual board)")
        assert (DATA / f"{name}.trace").stat().st_size < 150_000


@pytest.mark.parametrize("name", SHIPPED)
def test_heatrig_replay_gives_the_kpis_of_the_live_run_that_recorded_it(
    name: str, tmp_path: Path
) -> None:
    live = json.loads((DATA / f"{name}.kpi.json").read_text())
    r = heatrig("replay", str(DATA / f"{name}.trace"), "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    got.pop("power")
    assert got == live
    r = heatrig("replay", str(DATA / f"{name}.trace"), "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "kpi.json").read_text()) == live
    assert json.loads((tmp_path / "record.json").read_text())["measurements"]
    assert (tmp_path / "telemetry.csv").read_text().startswith("# heatrig telemetry")
    assert (tmp_path / "heating_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_the_heater_open_trace_shows_the_fault_and_the_heater_off() -> None:
    res = trace.replay(trace.read(DATA / "heater_open.trace"))
    k = kpis(res)
    assert (k["fault"], k["end_reason"]) == ("heater_open", "fault")
    c = res.series.cols
    broke = c["t_s"][c["fault_injected"] > 0].min()
    assert 11.9 < broke < 12.1  # the scenario's instant
    assert c["duty"][c["t_s"] > broke + 0.02].max() == 0  # off within two control periods


def test_a_run_traced_now_replays_to_the_same_record(dut: Dut, tmp_path: Path) -> None:
    """On whichever target the suite runs: the run's trace, decoded again,
    is the run: the same telemetry, byte for byte, and the same KPIs."""
    dut.target.traces = tmp_path
    try:
        res = dut.run(scenario.parse(SHORT), fresh=True)
    finally:
        dut.target.traces = None
    assert res.trace is not None and res.trace.parent == tmp_path
    again = trace.replay(trace.read(res.trace))
    assert again.series.to_csv() == res.series.to_csv()
    assert kpis(again) == kpis(res)


@pytest.mark.plant
def test_a_live_sessions_trace_decodes_to_its_telemetry(dut: Dut, tmp_path: Path) -> None:
    dut.trace_dir = tmp_path
    dut.start()
    dut.command("start")
    dut.wait_state("heating", timeout_s=30)
    dut.puff()
    dut.advance(3.0)
    dut.stop()
    assert dut.traces == [tmp_path / "live.trace"]
    tr = trace.read(dut.traces[0])
    assert tr.kind == "live"
    assert b"start\n" in tr.sent()  # what the host sent is there too
    got = trace.live(tr)
    assert dut.last_live_series is not None
    assert len(got.series) == len(dut.last_live_series) > 300
    assert got.series.to_csv() == dut.last_live_series.to_csv()
    assert any(e.startswith("state heating") for e in got.console)


# --- pytest --replay ------------------------------------------------------------------------
INNER = f"""
import pytest
from hil.scenarios import scenario

SHORT_HCI = scenario.load({str(DATA / "short_hci.toml")!r})
OTHER = scenario.load({str(DATA / "heater_open.toml")!r})


def test_analyses_the_recorded_run(dut):
    res = dut.run(SHORT_HCI)
    assert res.series.meta["target"].startswith("serial ")  # the board's run, replayed
    assert res.info["reason"] == "end_of_scenario"


@pytest.fixture
def other(dut):
    return dut.run(OTHER)


def test_needs_another_run(other):
    pass


def test_needs_a_live_device(dut):
    dut.start()


def test_on_the_host_alone():
    pass
"""


def test_pytest_replay_runs_the_analysis_tests_against_the_trace(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    run = pytester.runpytest_subprocess(
        "-rs", "-p", "no:cacheprovider", f"--replay={DATA / 'short_hci.trace'}"
    )
    run.assert_outcomes(passed=2, skipped=2)
    run.stdout.fnmatch_lines(
        [
            "*replay: this test runs 'heater_open'*the replayed trace holds a run of 'short_hci'*",
            "*replay: this test drives a live session*",
        ]
    )


def test_a_replay_target_serves_only_its_own_run() -> None:
    t = ReplayTarget(DATA / "short_hci.trace")
    sc = scenario.load(DATA / "short_hci.toml")
    assert t.run(sc, profile_steps=True) is t.result
    with pytest.raises(NotReplayable, match="lock_heap"):
        t.run(sc, profile_steps=True, lock_heap=True)
    with pytest.raises(NotReplayable, match="'heater_open'"):
        t.run(scenario.load(DATA / "heater_open.toml"), profile_steps=True)
    caps = t.capabilities()
    assert caps.plant and caps.heap_budget and not caps.radio


# --- damaged traces -----------------------------------------------------------------------
def test_a_file_that_is_no_trace_is_refused_with_what_it_is(tmp_path: Path) -> None:
    plain = tmp_path / "notes.trace"
    plain.write_text("hello")
    with pytest.raises(trace.TraceError, match="not a heatrig trace"):
        trace.read(plain)
    other = tmp_path / "other.trace"
    other.write_bytes(gzip.compress(b'{"format": "something else"}\n'))
    with pytest.raises(trace.TraceError, match="no trace header"):
        trace.read(other)
    newer = tmp_path / "newer.trace"
    newer.write_bytes(gzip.compress(b'{"format": "heatrig link trace", "version": 9}\n'))
    with pytest.raises(trace.TraceError, match="version 9; this heatrig reads 1"):
        trace.read(newer)
    r = heatrig("replay", str(plain))
    assert r.returncode == 2 and r.stderr.startswith("heatrig: ") and "Traceback" not in r.stderr
    with pytest.raises(TargetError, match="not a heatrig trace"):
        ReplayTarget(plain)


def test_a_trace_cut_short_is_refused_where_it_was_cut(tmp_path: Path) -> None:
    whole = gzip.decompress((DATA / "heater_open.trace").read_bytes())
    cut = tmp_path / "cut.trace"
    cut.write_bytes(gzip.compress(whole[: len(whole) // 2]))
    with pytest.raises(trace.TraceError, match=r"cut short|damaged record"):
        trace.read(cut)

"""The search itself: generated scenarios are valid scenario files inside the
envelope; a violation is shrunk and written as a scenario file with its
curve; the same seed gives the same scenarios (hil/safety)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import heatrig
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.safety import generate, invariants, report, search
from hil.scenarios import scenario


@settings(max_examples=200, deadline=None, derandomize=True)
@given(generate.generated())
def test_every_generated_scenario_is_a_valid_file_inside_the_envelope(
    g: generate.Generated,
) -> None:
    sc = scenario.parse(g.toml, Path("<generated>"))
    assert 0.0 <= sc.ambient_c <= 50.0
    assert 0.72 <= sc.r0_ohm <= 0.88 and 0.0030 <= sc.tcr_per_k <= 0.0038
    assert sc.record in scenario.RECORD_KINDS
    ordered = sorted(sc.puffs, key=lambda p: p.t_s)
    for p in ordered:
        assert p.t_s >= sc.heating_start_s - 1e-6  # drawn once heating has started
        assert (
            p.volume_ml >= generate.MIN_PUFF_ML
            and p.volume_ml / p.duration_s >= generate.MIN_PUFF_ML_S - 0.05
        )
    for a, b in itertools.pairwise(ordered):
        assert b.t_s - (a.t_s + a.duration_s) >= generate.MIN_PUFF_GAP_S - 1e-6
    for e in sc.events:
        if e.action == "ambient":  # within the envelope, or a fault clearly outside it
            assert 0.0 <= e.arg <= 50.0 or e.arg <= -2.0 or e.arg >= 52.0
        if e.action == "fault" and e.arg[0] == "adc_stuck":
            assert e.arg[1][1] in generate.ADC_RAILS_UV


def test_the_plan_is_a_pure_function_of_the_seed_and_size() -> None:
    a = search.plan(13, 10_000)
    assert a == search.plan(13, 10_000)
    assert sum(c.runs for c in a) == 10_000 and len(a) == 200
    assert search.chunk_seed(13, 0) != search.chunk_seed(13, 1) != search.chunk_seed(14, 1)


def _fake_run(toml: str) -> tuple[invariants.Verdict, float, float]:
    """No simulator: a scenario 'violates' blade_cap if it has a shorted heater."""
    v = invariants.Verdict(exercised={"blade_cap"})
    if 'kind = "heater_short"' in toml:
        v.fail("blade_cap", "made up: a shorted heater")
    return v, 10.0, 0.0


def test_a_violation_is_shrunk_and_written_with_its_curve(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(search, "run_one", _fake_run)
    r = search.run_chunk(search.Chunk(campaign_seed=1, index=3, runs=400))
    c = r.counterexample
    assert c is not None, "the search never drew a shorted heater"
    assert c.violations == {"blade_cap": ["made up: a shorted heater"]}
    assert 'kind = "heater_short"' in c.toml
    assert len(c.toml) <= len(c.first_toml) and c.shrink_runs > 0
    sc = scenario.parse(c.toml, Path("<shrunk>"))
    assert not sc.puffs and sc.duration_s <= 20.0  # the rest shrunk away
    d = report.write_counterexample(c, tmp_path, 1)
    text = (d / "scenario.toml").read_text()
    assert text.startswith("# A counter-example") and "blade_cap: made up" in text
    scenario.load(d / "scenario.toml")  # runnable as it is written
    assert (d / "heating_curve.png").stat().st_size > 10_000


def test_the_same_chunk_draws_the_same_scenarios(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "run_one", lambda toml: (invariants.Verdict(), 0.0, 0.0))
    a = search.run_chunk(search.Chunk(campaign_seed=5, index=0, runs=30))
    b = search.run_chunk(search.Chunk(campaign_seed=5, index=0, runs=30))
    assert [s.key for s in a.scenarios] == [s.key for s in b.scenarios]
    assert len({s.key for s in a.scenarios}) >= 25


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.data())
def test_a_toml_file_round_trips(data: st.DataObject) -> None:
    g = data.draw(generate.generated())
    assert (
        scenario.parse(g.toml, Path("<a>")).run_config()
        == scenario.parse(g.toml, Path("<b>")).run_config()
    )


def _verdicts(
    results: list[search.ChunkResult],
) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    by_chunk = sorted(results, key=lambda r: r.index)
    return [(s.key, s.exercised, s.violated) for r in by_chunk for s in r.scenarios]


def test_dask_runs_the_same_chunks_to_the_same_verdicts() -> None:
    from distributed import LocalCluster

    chunks = search.plan(99, 6, chunk=3, shrink=False, lengths=("short",))
    local = list(search.execute(chunks, workers=2))
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        on_dask = list(search.execute(chunks, scheduler=cluster.scheduler_address))
    assert len(_verdicts(local)) == 6
    assert _verdicts(on_dask) == _verdicts(local)


def test_heatrig_campaign_runs_a_generated_spec_and_writes_its_report(tmp_path: Path) -> None:
    spec = tmp_path / "safety.toml"
    spec.write_text('[campaign]\nname = "s"\ngenerator = "safety"\nruns = 3\nseed = 4\n')
    out = tmp_path / "out"
    r = heatrig("campaign", str(spec), "--workers", "1", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 generated scenarios" in r.stdout and "0 invariant violations" in r.stdout
    html = (out / "campaign.html").read_text()
    for inv in invariants.INVARIANTS:
        assert inv.name in html
    assert "Calibration records" in html and "Puff patterns" in html


def test_a_generated_spec_takes_no_scenario(tmp_path: Path) -> None:
    spec = tmp_path / "safety.toml"
    spec.write_text('[campaign]\nname = "s"\ngenerator = "safety"\nscenario = "hci"\n')
    r = heatrig("campaign", str(spec))
    assert r.returncode != 0
    assert "a generated campaign takes no scenario" in r.stderr + r.stdout


def test_a_violation_that_does_not_repeat_is_the_rigs_not_a_counter_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: dict[str, int] = {}

    def once(toml: str) -> tuple[invariants.Verdict, float, float]:
        calls[toml] = calls.get(toml, 0) + 1
        v = invariants.Verdict()
        if 'kind = "heater_short"' in toml and calls[toml] == 1:
            v.fail("nothing_stuck", "made up: the host killed the run")
        return v, 0.0, 0.0

    monkeypatch.setattr(search, "run_one", once)
    r = search.run_chunk(search.Chunk(campaign_seed=1, index=3, runs=400))
    assert r.counterexample is None
    assert r.flakes and r.flakes[0].violations == {
        "nothing_stuck": ["made up: the host killed the run"]
    }
    assert not any(s.violated for s in r.scenarios)

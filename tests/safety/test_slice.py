"""A fixed-seed slice of the generated safety campaign (`make safety` runs
10,000; docs/safety.md): 300 scenarios drawn over the whole envelope -- the
whole sessions left to the campaign --, each checked on the simulator's truth
at every sample. A failure names the scenario file that shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.safety import generate, invariants, report, search
from hil.scenarios import scenario
from hil.simulator import runner

SEED = 20261207
RUNS = 300
LENGTHS = ("short", "medium")


@pytest.fixture(scope="module")
def totals(tmp_path_factory: pytest.TempPathFactory) -> search.Totals:
    t = search.Totals()
    chunks = search.plan(SEED, RUNS, shrink=False, lengths=LENGTHS)
    for r in search.execute(chunks, workers=2):
        t.add(r)
    out = tmp_path_factory.mktemp("slice")
    for k, c in enumerate(t.counterexamples):
        report.write_counterexample(c, out, k + 1)
    t.out = out  # type: ignore[attr-defined]
    return t


def test_no_invariant_is_violated(totals: search.Totals) -> None:
    where = getattr(totals, "out", Path("?"))
    assert not totals.counterexamples, (
        f"{len(totals.counterexamples)} violation(s); scenario files under {where}: "
        + "; ".join(f"{k}: {w[0]}" for c in totals.counterexamples for k, w in c.violations.items())
    )
    assert totals.scenarios == RUNS
    assert not totals.flakes, f"runs that failed once and passed again: {totals.flakes}"


def test_the_slice_exercises_every_invariant_it_can(totals: search.Totals) -> None:
    """Whole sessions (the 6:00 bound) are the full campaign's. A cut
    "mid-write" waits for the firmware's next flash write, which it holds
    while heating: in the slice's short runs most never come, so power cuts
    are fewer here (6 rebooted runs) than in the campaign."""
    for name in ("blade_cap", "fault_cut", "puff_count", "nothing_stuck"):
        assert totals.exercised[name] >= 10, (name, dict(totals.exercised))
    assert totals.exercised["kept_over_power_cut"] >= 5, dict(totals.exercised)
    assert totals.distinct >= RUNS * 0.8


def test_the_slice_draws_every_fault_record_and_puff_pattern(totals: search.Totals) -> None:
    for fault in generate.FAULTS:
        assert totals.tags[f"fault:{fault}"] >= 3, fault
    for record in generate.RECORDS:
        assert totals.tags[f"record:{record}"] >= 3, record
    for pattern in generate.PUFF_PATTERNS:
        assert totals.tags[f"puffs:{pattern}"] >= 3, pattern
    assert totals.tags["puffs:in_preheat"] >= 30 and totals.tags["puffs:70ml_and_up"] >= 30
    assert totals.puffs["taken"] >= 100
    assert (totals.puffs["missed"], totals.puffs["phantom"]) == (0, 0)


def test_the_invariants_are_the_documented_ones() -> None:
    text = (Path(__file__).parents[2] / "docs" / "safety.md").read_text()
    for inv in invariants.INVARIANTS:
        assert f"`{inv.name}`" in text, inv.name


KNOWN = Path(__file__).parents[1] / "data" / "safety"


def test_a_weak_puff_early_in_preheat_counts() -> None:
    """A counter-example the campaign found (shrunk, as written): eco profile,
    35.6 C air, no calibration record (the fail-safe values), a 30 mL square
    puff over 2.33 s begun 3.5 s into preheat -- within the detector's spec
    (docs/safety.md#every-puff-counts) -- went uncounted behind a reference
    the first puff had left high, and the session heated past its 14th."""
    verdict, _, _ = search.run_one((KNOWN / "weak_puff_in_preheat.toml").read_text())
    assert verdict.ok, verdict.violations


@pytest.mark.parametrize(
    "name", ["air_step_early_in_preheat.toml", "gate_stuck_before_the_first_reading.toml"]
)
def test_a_counter_example_of_the_campaign_holds(name: str) -> None:
    """Counter-examples the campaign found, as it wrote them (each file says
    what it showed): a 30 K fall of the air early in preheat counted as a
    puff; a MOSFET shorted on before the first reading let the blade past
    the cap on a record reading it cold."""
    verdict, _, _ = search.run_one((KNOWN / name).read_text())
    assert verdict.ok, verdict.violations


def test_a_stuck_gate_on_another_heaters_record_stops_under_the_cap() -> None:
    """A counter-example of the 10,000-scenario campaign (shrunk): another
    heater's record that reads the rise 11.8 % small, then the MOSFET shorted
    on. It was measured 7.6 % off (cal_check's heat constant was 5 % high)
    and the over-temperature trip came at 365 C true; now the duty at its
    least with the blade still warming trips gate_stuck first."""
    toml = (KNOWN / "other_heater_record_and_gate_stuck.toml").read_text()
    sc = scenario.parse(toml, Path("<known>"))
    assert "fault gate_stuck" in runner.run(sc).console
    verdict, _, _ = search.run_one(toml)
    assert verdict.ok, verdict.violations


def test_a_deep_fast_puff_counts_once() -> None:
    """A counter-example of the 10,000-scenario campaign (shrunk): a 110 mL
    bell puff over 0.8 s in 0 C air counted twice -- after the draw the cold
    plug kept the blade's loss up, read as a second puff. The reference now
    follows at once for half a second after a puff ends."""
    verdict, _, _ = search.run_one((KNOWN / "deep_fast_puff_counted_twice.toml").read_text())
    assert verdict.ok, verdict.violations


@pytest.mark.xfail(strict=True, reason="open: the cold-blade check right after a step of the air")
def test_a_record_reading_cold_is_caught_after_a_step_of_the_air() -> None:
    """A counter-example of the 10,000-scenario campaign (shrunk): the air
    falls 30 K at boot, the blade lags, and another heater's record reading
    it 27 K cold passes the cold-blade check: the blade reaches 357 C.
    Strict: passing, it says the fix landed."""
    verdict, _, _ = search.run_one(
        (KNOWN / "air_step_at_boot_hides_a_cold_record.toml").read_text()
    )
    assert verdict.ok, verdict.violations


@pytest.mark.xfail(strict=True, reason="open: an empty cell in the dock, cut 210 ms late")
def test_an_empty_cell_in_the_dock_is_cut_within_two_periods() -> None:
    """A counter-example of the 10,000-scenario campaign (shrunk): an empty
    holder cell in the dock dips under the 3.0 V limit under load 210 ms
    before the firmware's debounced reading trips. Strict: passing, it says
    the fix landed."""
    verdict, _, _ = search.run_one((KNOWN / "empty_cell_in_the_dock.toml").read_text())
    assert verdict.ok, verdict.violations


def test_a_warm_start_on_another_heaters_record_is_refused() -> None:
    """A counter-example the campaign found (shrunk): eco profile, 0 C air, a
    0.88 ohm heater under a record of a 0.72 ohm one, the session started
    half a second after boot. The record reads the cold blade 70 K hot, and
    nothing this boot says whether the blade is warm: the start is refused
    (taken as warm, the blade's rise was misread and a 12 mL/s puff went
    uncounted)."""
    sc = scenario.parse((KNOWN / "edge_puff_other_heater_cold.toml").read_text(), Path("<known>"))
    res = runner.run(sc)
    assert "refused blade_warm" in res.console
    verdict = invariants.check(sc, res)
    assert verdict.ok, verdict.violations


def test_a_puff_at_the_detectors_edge_counts_on_another_heaters_record() -> None:
    """The same unit two minutes after boot: the warm reading is the record's
    offset, the start checked as a cold one, and the 30 mL bell puff over
    2.5 s -- 12 mL/s, the edge of the detector's spec -- counts."""
    toml = (KNOWN / "edge_puff_other_heater_cooled.toml").read_text()
    sc = scenario.parse(toml, Path("<known>"))
    res = runner.run(sc)
    assert "puff 1" in res.console and not any(e.startswith("refused") for e in res.console)
    verdict, _, _ = search.run_one(toml)
    assert verdict.ok, verdict.violations

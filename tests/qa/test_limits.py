"""Limit files: one per profile and regime, all valid, and the nominal
sessions meet them."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import kpis, sim_builtin

from hil.qa import limits, measure, testrecord
from hil.qa.measure import Outcome
from hil.scenarios.regimes import REGIMES
from hil.scenarios.scenario import PROFILES
from hil.simulator import runner


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_every_profile_and_regime_has_a_valid_limits_file(profile: str, regime: str) -> None:
    ls = limits.for_run(profile, regime)
    assert ls is not None, f"no {limits.path_for(profile, regime)}"
    assert (ls.profile, ls.regime) == (profile, regime)
    assert set(ls.by_name) == {s.name for s in measure.KPI_SPECS}
    assert all(lim.source for lim in ls.by_name.values()), "every limit says where it comes from"


def test_the_nominal_hci_session_passes(hci: runner.RunResult) -> None:
    test = testrecord.build(hci.series, kpis(hci))
    assert test.limits == "limits/standard-hci.toml"
    assert test.outcome == Outcome.PASS, measure.table(test.measurements)


def test_the_nominal_iso_session_passes() -> None:
    res = sim_builtin("iso3308")
    test = testrecord.build(res.series, kpis(res))
    assert test.outcome == Outcome.PASS, measure.table(test.measurements)


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    text = """[limits]
profile = "standard"

[overshot_pct]
max = 2.0

[rms_error_c]
max = 1.0
marginal_max = 2.0

[fault]
equals = "none"
min = 1

[energy_j]
maximum = 3
"""
    with pytest.raises(limits.LimitsError) as e:
        limits.parse(text, tmp_path / "x.toml")
    msg = str(e.value)
    assert f"{tmp_path / 'x.toml'}:4: [overshot_pct]: no such measurement (did you mean " in msg
    assert ":7: [rms_error_c]: needs min <= marginal_min <= marginal_max <= max" in msg
    assert ":12: [fault] equals: an exact value takes no range" in msg
    assert ":16: [energy_j] maximum: unknown key (did you mean 'max'?)" in msg


def test_a_strict_limit_fails_the_same_run(hci: runner.RunResult) -> None:
    strict = limits.parse("[overshoot_pct]\nmax = 0.1\n", Path("strict.toml"))
    test = testrecord.build(hci.series, kpis(hci), strict)
    by_name = {m.name: m for m in test.measurements}
    assert by_name["overshoot_pct"].outcome == Outcome.FAIL
    assert by_name["rms_error_c"].outcome == Outcome.UNSET  # no limit in this file
    assert test.outcome == Outcome.FAIL


def test_a_limits_header_that_is_no_table_is_an_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(limits.LimitsError) as e:
        limits.parse('limits = "standard-hci"\n', tmp_path / "x.toml")
    assert str(e.value) == f"{tmp_path / 'x.toml'}:1: [limits]: must be a table"

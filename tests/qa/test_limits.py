"""Limit files: one per profile and regime, all valid, and the nominal
sessions meet them."""

from __future__ import annotations

import re
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


# --- per-band limits: where physics makes a limit impossible at an edge ------------------

BANDED = """
[limits]
profile = "standard"
regime = "hci"

[max_puff_dip_c]
max = 40.0
source = "E"

[end_reason]
equals = "time_limit"
source = "the 6:00 limit"

[[band]]
ambient_c = [0.0, 10.0]
reason = "cold air through the plug"
measured = "52.6 C at 1 C"
refusals = ["holder_low"]

[band.max_puff_dip_c]
max = 55.0
source = "measured"

[[band]]
ambient_c = [45.0, 50.0]
reason = "hot air"
measured = "none needed"
"""


def test_a_band_replaces_the_limits_it_names_within_its_ambient() -> None:
    ls = limits.parse(BANDED)
    for ambient, dip_max in ((0.0, 55.0), (9.99, 55.0), (10.0, 40.0), (None, 40.0), (50.0, 40.0)):
        assert ls.at(ambient)["max_puff_dip_c"].max == dip_max, ambient
    assert ls.at(5.0)["end_reason"].equals == "time_limit"  # not named by the band: the file's
    band = ls.band(50.0)  # the envelope's top belongs to the band that ends there
    assert band is not None and band.reason == "hot air"


def test_a_refusal_a_band_allows_is_judged_on_that_alone() -> None:
    ls = limits.parse(BANDED)
    kpi = {"end_reason": "not_started"}
    assert ls.refusal_allowed(3.0, "holder_low")
    cases = (
        (3.0, "holder_low", Outcome.PASS),
        (3.0, "cell_overtemp", Outcome.FAIL),
        (20.0, "holder_low", Outcome.FAIL),
    )
    for ambient, refused, outcome in cases:
        ms = measure.evaluate(
            kpi,
            ls.at(ambient),
            has_truth=True,
            refusal_allowed=ls.refusal_allowed(ambient, refused),
        )
        assert measure.overall(ms) == outcome, (ambient, refused)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ('reason = "cold air through the plug"\n', "needs reason"),
        ('measured = "52.6 C at 1 C"\n', "needs measured"),
        ("ambient_c = [0.0, 10.0]", "needs [from, to]"),
    ],
)
def test_a_band_must_say_why_what_was_measured_and_where(change: str, problem: str) -> None:
    text = BANDED.replace(change, "ambient_c = [10.0, 0.0]" if "ambient_c" in change else "", 1)
    with pytest.raises(limits.LimitsError, match=re.escape(problem)):
        limits.parse(text)


def test_overlapping_bands_are_refused() -> None:
    with pytest.raises(limits.LimitsError, match="overlap"):
        limits.parse(BANDED.replace("ambient_c = [45.0, 50.0]", "ambient_c = [5.0, 50.0]"))


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_the_cap_is_a_limit_on_the_true_blade_in_every_file(profile: str, regime: str) -> None:
    ls = limits.for_run(profile, regime)
    assert ls is not None
    for ambient in (0.0, 25.0, 50.0):
        assert ls.at(ambient)["peak_blade_true_c"].max == 350.0
    for b in ls.bands:
        assert b.reason and b.measured

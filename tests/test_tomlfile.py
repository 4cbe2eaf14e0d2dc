"""The checker every TOML file people write goes through: syntax errors and
problems name the file and line, unknown names get a "did you mean"."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil import tomlfile

TEXT = """\
top = 1

[unit]
r0_ohm = 0.8
"quoted.key" = 2

[[events]]
t_s = 1

[[events]]
t_s = 2
pos = { x = 1 }
"""


class MyError(tomlfile.TomlFileError):
    pass


def test_a_syntax_error_names_line_and_column_and_raises_the_callers_error() -> None:
    with pytest.raises(MyError) as e:
        tomlfile.loads("[a]\nb = \n", "f.toml", MyError)
    (p,) = e.value.problems
    assert p.startswith("f.toml:2:")
    assert ": TOML syntax: " in p and "at line" not in p


def test_a_missing_file_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(MyError, match=r"nope\.toml: cannot read"):
        tomlfile.read(tmp_path / "nope.toml", MyError)


def test_keys_and_tables_are_found_on_their_lines() -> None:
    lines = tomlfile.Lines(TEXT)
    assert lines.of("", "top") == 1
    assert lines.of("unit") == 3
    assert lines.of("unit", "r0_ohm") == 4
    assert lines.of("unit", "quoted.key") == 5
    assert lines.of("unit", "missing") == 3  # the table, then
    assert lines.of("", "unit") == 3  # a key that is a table: its header
    assert lines.of("events", "t_s", index=1) == 11
    assert lines.of("events.pos", index=0) is None
    assert lines.of("events", "pos", index=1) == 12
    assert lines.of("nowhere") is None


def test_problems_are_collected_and_raised_together() -> None:
    ck = tomlfile.Checker(TEXT, "f.toml")
    assert ck.check_keys({"r0_ohm": 1, "r0_ohms": 2}, "unit", ("r0_ohm", "tcr_per_k")) is False
    assert ck.known_table("evnts", ("unit", "events")) is False
    ck.fail("events", "t_s", "must be > 0", index=1)
    ck.fail("", "top", "not here")
    ck.report("in my own words", "unit", "quoted.key")
    with pytest.raises(MyError) as e:
        ck.raise_problems(MyError)
    assert e.value.problems == [
        "f.toml:3: [unit] r0_ohms: unknown key (did you mean 'r0_ohm'?); "
        "allowed: r0_ohm, tcr_per_k",
        "f.toml: [evnts]: unknown table (did you mean 'events'?); allowed: [unit], [events]",
        "f.toml:11: [[events]] #2 t_s: must be > 0",
        "f.toml:1: top level top: not here",
        "f.toml:5: in my own words",
    ]
    assert str(e.value) == "\n".join(e.value.problems)


def test_no_problems_raise_nothing() -> None:
    ck = tomlfile.Checker(TEXT, "f.toml")
    assert ck.check_keys({"r0_ohm": 1}, "unit", ("r0_ohm",))
    ck.raise_problems()


def test_numbers_are_finite_and_not_booleans() -> None:
    assert tomlfile.is_number(1) and tomlfile.is_number(0.5)
    assert not any(tomlfile.is_number(v) for v in (True, float("inf"), float("nan"), "1"))

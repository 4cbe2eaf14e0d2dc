"""The mutation tool itself (hil/mutation): the mutants it makes, their
stable names, the plan files, and a worker judging mutants of a small module
of its own."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from hil.mutation import mutants, plan, run, score
from hil.paths import FIRMWARE_DIR

SOURCE = textwrap.dedent(
    '''
    """A module."""
    from micropython import const

    LIMIT = const(10)


    def check(x, y):
        """Doc."""
        if x > LIMIT and y:
            return 1
        total = x + y
        return total
    '''
)


def _by(muts: list[mutants.Mutant], op: str) -> list[str]:
    return [f"`{m.before}` -> `{m.after}`" for m in muts if m.op == op]


def test_each_operator_makes_its_mutants() -> None:
    muts = mutants.generate_from(SOURCE, "m")
    assert _by(muts, "const") == [
        "`LIMIT = const(10)` -> `LIMIT = const(11)`",
        "`LIMIT = const(10)` -> `LIMIT = const(9)`",
        "`return 1` -> `return 2`",
        "`return 1` -> `return 0`",
    ]
    assert _by(muts, "cmp") == ["`if x > LIMIT and y:` -> `if x >= LIMIT and y:`"]
    assert _by(muts, "bool") == [
        "`if x > LIMIT and y:` -> `if x > LIMIT or y:`",
        "`if x > LIMIT and y:` -> `if y:`",
        "`if x > LIMIT and y:` -> `if x > LIMIT:`",
    ]
    assert _by(muts, "cond") == [
        "`if x > LIMIT and y:` -> `if True:`",
        "`if x > LIMIT and y:` -> `if False:`",
    ]
    assert _by(muts, "arith") == ["`total = x + y` -> `total = x - y`"]
    assert _by(muts, "stmt") == [
        "`return 1` -> `pass`",
        "`total = x + y` -> `pass`",
        "`return total` -> `pass`",
    ]
    # docstrings and imports are not mutated; statements only inside functions
    assert not [m for m in muts if "Doc" in m.before or "import" in m.before]


def test_a_mutant_changes_its_text_and_nothing_else() -> None:
    for m in mutants.generate_from(SOURCE, "m"):
        text = m.apply(SOURCE)
        compile(text, "m.py", "exec")
        changed = [
            (a, b) for a, b in zip(SOURCE.splitlines(), text.splitlines(), strict=False) if a != b
        ]
        assert len(changed) == 1, m.key
        assert "# " not in changed[0][1] or "# " in changed[0][0]


def test_a_mutants_name_survives_edits_elsewhere() -> None:
    before = {m.key for m in mutants.generate_from(SOURCE, "m")}
    edited = SOURCE.replace('"""A module."""', '"""A module."""\n\nOTHER = "text"\n\n')
    after = {m.key for m in mutants.generate_from(edited, "m")}
    assert before <= after


def test_identical_changes_in_one_function_are_numbered() -> None:
    src = "def f(a):\n    a += 1\n    a += 1\n    return a\n"
    keys = [m.key for m in mutants.generate_from(src, "m") if m.op == "arith"]
    assert keys == [
        "m:f: arith: `a += 1` -> `a -= 1`",
        "m:f: arith: `a += 1` -> `a -= 1` [2]",
    ]


def test_never_taken_branches_are_the_sample() -> None:
    muts = mutants.generate_from(SOURCE, "m")
    chosen = score.select(muts, branches=True)
    assert [m.after for m in chosen] == ["if False:"]
    assert score.select(muts) == muts
    assert len(score.select(muts, sample=3, seed=5)) == 3
    assert score.select(muts, sample=3, seed=5) == score.select(muts, sample=3, seed=5)


def test_the_plan_names_real_tests_and_its_bugs_apply() -> None:
    p = plan.load()
    assert {"heater_safety", "heater_ctl", "puff_detect", "store", "calib", "ble_gatt"} <= set(
        p.safety
    )
    for bug in p.bugs:
        assert bug.apply((FIRMWARE_DIR / f"{bug.module}.py").read_text()) is not None, bug.what
    for key, reason in p.equivalent.items():
        assert reason and ":" in key


def test_a_bad_plan_is_reported_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "plan.toml"
    bad.write_text('[modules.x]\ntests = ["tests/nope.py"]\n\n[[bugs]]\nmodule = "y"\n')
    with pytest.raises(plan.PlanError) as e:
        plan.load(bad, tmp_path / "none.toml")
    text = str(e.value)
    assert "plan.toml:2: [modules.x] tests: no such test file: tests/nope.py" in text
    assert "needs module, what, find and replace" in text


def test_a_worker_kills_a_mutant_and_lets_a_harmless_one_live(tmp_path: Path) -> None:
    fw = tmp_path / "firmware"
    shutil.copytree(FIRMWARE_DIR, fw)  # the host reads the firmware's contract at import
    (fw / "m.py").write_text("UNUSED = 5\n\n\ndef f(x):\n    return x + 1\n")
    test = tmp_path / "test_m.py"
    test.write_text(
        "import os, sys\n"
        "sys.path.insert(0, os.environ['HEATRIG_FIRMWARE_DIR'])\n"
        "import m\n\n\ndef test_f():\n    assert m.f(1) == 2\n"
    )
    source = (fw / "m.py").read_text()
    muts = {m.after: m for m in mutants.generate_from(source, "m")}
    jobs = [
        run.Job(0, "m", "", None, (str(test),), 60.0, "t"),
        run.Job(1, "m", "k", muts["return x - 1"].apply(source), (str(test),), 60.0, "t"),
        run.Job(2, "m", "e", muts["UNUSED = 6"].apply(source), (str(test),), 60.0, "t"),
        run.Job(3, "m", "i", source.replace("return", "return return"), (str(test),), 60.0, "t"),
    ]
    w = run.Worker(fw)
    try:
        got = [w.run(j) for j in jobs]
    finally:
        w.close()
    assert [o.status for o in got] == ["survived", "killed", "survived", "invalid"]
    assert got[1].test.endswith("test_m.py::test_f")
    assert (fw / "m.py").read_text() == source  # the copy is the worker's: untouched

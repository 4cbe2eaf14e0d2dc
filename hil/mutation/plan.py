"""What mutation testing runs, from two reviewed files in mutation/:

- plan.toml: for each firmware module, the tests that judge its mutants
  (fastest first: a mutant is killed at its first failing test), and the
  named bugs that must always be caught -- bugs found once, kept as
  regressions of the suite itself:

      [modules.heater_safety]
      tests = ["tests/firmware/test_edges.py", "tests/firmware/test_safety.py"]
      fast = ["tests/firmware/test_edges.py"]   # for the sample `make test` runs

      [[bugs]]
      module = "heater_safety"
      what = "a cell over-temperature limit raised by 4 K"
      find = "CELL_MAX_C = const(60)"      # or a list of texts, each replaced
      replace = "CELL_MAX_C = const(64)"

- equivalent.toml: mutants that no test can kill because they do not
  change what the firmware does, each by its key (hil/mutation/mutants.py)
  and the reason someone gave after reading it:

      [[equivalent]]
      mutant = "heater_ctl:HeaterControl.step: stmt: `self.steps += 1` -> `pass`"
      reason = "..."
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil import tomlfile
from hil.paths import ROOT

MUTATION_DIR = ROOT / "mutation"
PLAN = MUTATION_DIR / "plan.toml"
EQUIVALENT = MUTATION_DIR / "equivalent.toml"


class PlanError(tomlfile.TomlFileError):
    """plan.toml or equivalent.toml is invalid; the message says where."""


@dataclass(frozen=True)
class Bug:
    module: str
    what: str
    find: tuple[str, ...]
    replace: tuple[str, ...]

    def apply(self, source: str) -> str | None:
        """The source with the bug in it; None if a `find` is not in it exactly once."""
        for old, new in zip(self.find, self.replace, strict=True):
            if source.count(old) != 1:
                return None
            source = source.replace(old, new)
        return source


@dataclass(frozen=True)
class Plan:
    modules: dict[str, tuple[str, ...]]  # module -> tests, fastest first
    bugs: tuple[Bug, ...]
    equivalent: dict[str, str]  # mutant key -> reason
    safety: tuple[str, ...]  # the modules held to the score target
    fast: dict[str, tuple[str, ...]]  # module -> the fast tests (CPython) of the sample

    def with_fast_tests(self) -> Plan:
        """The plan with each module judged by its fast tests only (modules
        without any left out): the sample `make test` runs."""
        mods = {m: t for m, t in self.fast.items() if t}
        return Plan(mods, self.bugs, self.equivalent, tuple(m for m in self.safety if m in mods),
                    self.fast)  # fmt: skip


def load(plan_path: Path = PLAN, equivalent_path: Path = EQUIVALENT) -> Plan:
    text = tomlfile.read(plan_path, PlanError)
    data = tomlfile.loads(text, str(plan_path), PlanError)
    chk = tomlfile.Checker(text, str(plan_path))
    for table in data:
        chk.known_table(table, ("modules", "bugs", "safety"))
    modules: dict[str, tuple[str, ...]] = {}
    fast: dict[str, tuple[str, ...]] = {}
    for name, spec in _table(chk, data, "modules").items():
        where = f"modules.{name}"
        if not isinstance(spec, dict):
            chk.fail("modules", name, "must be a table with `tests`")
            continue
        chk.check_keys(spec, where, ("tests", "fast"))
        for key in ("tests", "fast"):
            tests = spec.get(key, [] if key == "fast" else None)
            if not (isinstance(tests, list) and all(isinstance(t, str) for t in tests)) or (
                key == "tests" and not tests
            ):
                chk.fail(where, key, "must be a list of test paths or node ids")
                continue
            for t in tests:
                if not (ROOT / t.split("::")[0]).exists():
                    chk.fail(where, key, f"no such test file: {t.split('::')[0]}")
            (modules if key == "tests" else fast)[name] = tuple(tests)
    bugs: list[Bug] = []
    raw_bugs = data.get("bugs", [])
    for i, b in enumerate(raw_bugs if isinstance(raw_bugs, list) else []):
        if not isinstance(b, dict):
            chk.fail("bugs", None, "must be an array of tables", i)
            continue
        chk.check_keys(b, "bugs", ("module", "what", "find", "replace"), i)
        module, what = b.get("module"), b.get("what")
        find, replace = _texts(b.get("find")), _texts(b.get("replace"))
        if not (isinstance(module, str) and isinstance(what, str) and find and replace):
            chk.fail("bugs", None, "needs module, what, find and replace (strings)", i)
            continue
        if len(find) != len(replace):
            chk.fail("bugs", "replace", "one replacement for each text in `find`", i)
            continue
        bug = Bug(module, what, find, replace)
        if bug.module not in modules:
            chk.fail("bugs", "module", f"{bug.module!r} has no [modules.{bug.module}]", i)
        bugs.append(bug)
    safety = data.get("safety", {}).get("modules", list(modules))
    for m in safety:
        if m not in modules:
            chk.fail("safety", "modules", f"{m!r} has no [modules.{m}]")
    chk.raise_problems(PlanError)
    return Plan(modules, tuple(bugs), _equivalent(equivalent_path), tuple(safety), fast)


def _texts(v: Any) -> tuple[str, ...]:
    """A string, or a list of strings, as a tuple (empty if neither)."""
    items = [v] if isinstance(v, str) else v if isinstance(v, list) else []
    return tuple(items) if all(isinstance(x, str) for x in items) else ()


def _table(chk: tomlfile.Checker, data: dict[str, Any], name: str) -> dict[str, Any]:
    t = data.get(name, {})
    if not isinstance(t, dict):
        chk.fail(name, None, "must be a table")
        return {}
    return t


def _equivalent(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    text = tomlfile.read(path, PlanError)
    data = tomlfile.loads(text, str(path), PlanError)
    chk = tomlfile.Checker(text, str(path))
    for table in data:
        chk.known_table(table, ("equivalent",))
    out: dict[str, str] = {}
    entries = data.get("equivalent", [])
    for i, e in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(e, dict):
            continue
        chk.check_keys(e, "equivalent", ("mutant", "reason"), i)
        key, reason = e.get("mutant"), e.get("reason")
        if not (isinstance(key, str) and key and isinstance(reason, str) and reason.strip()):
            chk.fail("equivalent", None, "needs `mutant` (its key) and a `reason`", i)
            continue
        if key in out:
            chk.fail("equivalent", "mutant", "listed twice", i)
        out[key] = reason.strip()
    chk.raise_problems(PlanError)
    return out

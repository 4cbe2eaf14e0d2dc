"""The heater controller keeps room in its attribute map (firmware/attr_map.py),
the speed of its step depends on it: MicroPython's map sizes as attr_map has
them, observed on the unix port (benchmarks/mpy/attr_map_check.py), and a
controller that gains no attribute after make_room."""

from __future__ import annotations

import ast
from typing import Any

import fw_harness as fw
import pytest

from benchmarks import stepbench
from hil.paths import FIRMWARE_DIR

attr_map = fw.firmware("attr_map")
SIZES: tuple[int, ...] = attr_map.MAP_SIZES


def _one_up(slots: int) -> int:
    return SIZES[SIZES.index(slots) + 1]


@pytest.fixture(scope="module")
def observed() -> dict[str, Any]:
    return stepbench.run("attr_map_check.py", "shipped")


def test_attr_map_has_the_interpreters_map_sizes(observed: dict[str, Any]) -> None:
    for n, slots in observed["plain"]:
        assert slots == attr_map.map_size(n), f"{n} attributes"
    for n, slots in observed["roomy"]:
        assert slots == _one_up(attr_map.map_size(n)), f"{n} attributes, make_room"


def test_the_controller_has_a_map_one_size_up(observed: dict[str, Any]) -> None:
    c = observed["controller"]
    need = attr_map.map_size(c["attrs"])
    assert c["slots"] > need, (
        f"HeaterControl: {c['attrs']} attributes in {c['slots']} slots, the least that holds them;"
        f" make_room(self) last in __init__ gives {_one_up(need)}"
    )


def test_the_controller_gains_no_attribute_as_it_runs(observed: dict[str, Any]) -> None:
    c = observed["controller"]
    assert c["states"] == [2, 4, 5, 0, 1]  # heating, cooling, fault, sleep, preheat: every path
    assert c["gained"] == [], "set in __init__ (before make_room) what the step writes"
    assert c["slots_after"] == c["slots"]


def _self_writes(stmts: list[ast.stmt]) -> set[str]:
    """Names of the attributes of `self` that the statements assign."""
    out = set()
    for node in ast.walk(ast.Module(body=stmts, type_ignores=[])):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for t in targets:
            for e in ast.walk(t):
                if (
                    isinstance(e, ast.Attribute)
                    and isinstance(e.value, ast.Name)
                    and e.value.id == "self"
                ):
                    out.add(e.attr)
    return out


def _is_make_room(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Name)
        and stmt.value.func.id == "make_room"
    )


def test_every_attribute_the_controller_writes_is_made_before_make_room() -> None:
    """The static side of the test above: every path, not only those run."""
    tree = ast.parse((FIRMWARE_DIR / "heater_ctl.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "HeaterControl")
    methods = [n for n in cls.body if isinstance(n, ast.FunctionDef)]
    init = next(m for m in methods if m.name == "__init__")
    at = next((k for k, s in enumerate(init.body) if _is_make_room(s)), None)
    assert at is not None, "HeaterControl.__init__ calls make_room(self)"
    before = _self_writes(init.body[:at])
    late = {
        f"{m.name}: self.{name}"
        for m in methods
        for name in _self_writes(init.body[at:] if m is init else m.body)
        if name not in before
    }
    assert not late, f"attributes made after make_room(self): {sorted(late)}"

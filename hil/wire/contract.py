"""The wire contract, read from the device's own source.

Frame types, payload formats, state, fault and event names, flag bits: the
firmware defines each once, where the device needs it (`const()` values,
tuples of names, struct formats), and the simulator likewise for its truth
frames. The host reads them from those files with `ast` -- nothing is
imported or executed -- so a change on the device's side reaches every
decoder on the host, and a name the host asks for that the source no longer
has fails loudly, naming the file.
"""

from __future__ import annotations

import ast
import functools
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from hil.paths import FIRMWARE_DIR, SIM_DIR

V = TypeVar("V")


class ContractError(RuntimeError):
    """The device's source does not define what the host expects of it."""


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
}


@dataclass(frozen=True)
class SourceConstants:
    """The module-level constants of one MicroPython source file."""

    path: Path
    ints: dict[str, int]
    strs: dict[str, str]
    tuples: dict[str, tuple[str, ...]]
    doc: str

    def integer(self, name: str) -> int:
        return self._get(self.ints, name, "an integer constant")

    def text(self, name: str) -> str:
        return self._get(self.strs, name, "a string constant")

    def names(self, name: str) -> tuple[str, ...]:
        return self._get(self.tuples, name, "a tuple of names")

    def prefixed(self, prefix: str) -> dict[str, int]:
        """Every integer constant whose name starts with `prefix`, prefix removed."""
        return {k[len(prefix) :]: v for k, v in self.ints.items() if k.startswith(prefix)}

    def _get(self, table: dict[str, V], name: str, what: str) -> V:
        try:
            return table[name]
        except KeyError:
            raise ContractError(
                f"{self.path}: no {what} named {name}: the host reads the wire contract from "
                "this file, so a renamed or removed constant must be renamed in hil/ too"
            ) from None


def _value(node: ast.expr, env: dict[str, int]) -> object:
    """A constant expression's value: literals, const(...), names defined
    earlier in the file, integer arithmetic and tuples of strings."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "const":
        return _value(node.args[0], env)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _value(node.operand, env)
        return -v if isinstance(v, int) else None
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _value(node.left, env), _value(node.right, env)
        if isinstance(a, int) and isinstance(b, int):
            return _BINOPS[type(node.op)](a, b)
        return None
    if isinstance(node, ast.Tuple):
        items = [_value(e, env) for e in node.elts]
        return tuple(items) if all(isinstance(i, str) for i in items) else None
    return None


@functools.cache
def read(path: Path) -> SourceConstants:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    ints: dict[str, int] = {}
    strs: dict[str, str] = {}
    tuples: dict[str, tuple[str, ...]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0]
        if not isinstance(target, ast.Name):
            continue
        v = _value(node.value, ints)
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            ints[target.id] = v
        elif isinstance(v, str):
            strs[target.id] = v
        elif isinstance(v, tuple):
            tuples[target.id] = v
    return SourceConstants(path, ints, strs, tuples, ast.get_docstring(tree) or "")


def firmware(module: str) -> SourceConstants:
    """The constants of firmware/<module>.py."""
    return read(FIRMWARE_DIR / f"{module}.py")


def sim(module: str) -> SourceConstants:
    """The constants of sim/<module>.py (a path below sim/, e.g. "truth")."""
    return read(SIM_DIR / f"{module}.py")

"""The wire contract, read from the device's own source.

Frame types, payload formats, state, fault and event names, flag bits: the
firmware defines each once, where the device needs it (`const()` values,
tuples of names, struct formats), and the simulator likewise for its truth
frames. The host reads them from those files with `ast` -- nothing is
imported or executed -- so a change on the device's side reaches every
decoder on the host, and a name the host asks for that the source no longer
has fails loudly, naming the file.

A payload's field names live in the module's docstring (MicroPython drops
docstrings when it compiles, so they cost the device nothing): a paragraph
that names the struct format constant, then an indented list of
`name type` items, types u8 .. i64, notes in parentheses, e.g.

    Payload, little-endian, as FMT packs it:
        seq u16, t_us u32 (ticks_us), state u8

`layout("FMT")` checks that list against the format, field by field.
"""

from __future__ import annotations

import ast
import functools
import operator
import re
import struct
from collections.abc import Sequence
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


# payload field types, as the docstrings write them, and their struct codes
_STRUCT_CODES = {"u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i"}
_STRUCT_CODES |= {"u64": "Q", "i64": "q"}
_FIELD = re.compile(r"([a-z_][a-z0-9_]*)\s+([ui](?:8|16|32|64))")


@dataclass(frozen=True)
class Layout:
    """A frame's payload as a device module packs it: the struct format and
    its fields in order, each a name (the host's) and a type (u8 .. i64)."""

    path: Path
    fmt: str
    fields: tuple[tuple[str, str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    @property
    def size(self) -> int:
        return struct.calcsize(self.fmt)

    def as_struct(self) -> struct.Struct:
        return struct.Struct(self.fmt)

    def numpy_fields(self) -> list[tuple[str, str]]:
        """(name, numpy type) for each field: a structured dtype's description."""
        return [(name, f"<{kind[0]}{int(kind[1:]) // 8}") for name, kind in self.fields]

    def check_names(self, names: Sequence[str], what: str) -> None:
        """`what`, the host's own list of this payload's fields, must name them
        all, in order (a typed NamedTuple cannot be made from the list)."""
        if tuple(names) != self.names:
            raise ContractError(
                f"{self.path}: the payload's fields are {', '.join(self.names)}; "
                f"{what} has {', '.join(names)}"
            )


@dataclass(frozen=True)
class SourceConstants:
    """The module-level constants of one MicroPython source file."""

    path: Path
    ints: dict[str, int]
    strs: dict[str, str]
    tuples: dict[str, tuple[str, ...]]
    dict_keys: dict[str, tuple[str, ...]]
    doc: str

    def integer(self, name: str) -> int:
        return self._get(self.ints, name, "integer constant")

    def text(self, name: str) -> str:
        return self._get(self.strs, name, "string constant")

    def names(self, name: str) -> tuple[str, ...]:
        return self._get(self.tuples, name, "tuple of names")

    def keys(self, name: str) -> tuple[str, ...]:
        """The string keys of a dict literal, in the order written."""
        return self._get(self.dict_keys, name, "dict with string keys")

    def enum(self, name: str, prefix: str = "") -> tuple[str, ...]:
        """A tuple of names indexed by code, checked against the codes: each
        name's constant, `prefix` + the name upper-cased, is its index."""
        names = self.names(name)
        for code, n in enumerate(names):
            const = prefix + n.upper()
            if self.integer(const) != code:
                raise ContractError(
                    f"{self.path}: {name}[{code}] is {n!r} but {const} is {self.integer(const)}"
                )
        return names

    def layout(self, fmt: str, length: str | None = None) -> Layout:
        """The payload packed with the struct format `fmt`, its fields named
        by the docstring; `length`: the constant that must equal its size."""
        form = self.text(fmt)
        codes = _struct_codes(self.path, fmt, form)
        fields = _doc_fields(self.path, self.doc, fmt)
        if len(fields) != len(codes):
            raise ContractError(
                f"{self.path}: {fmt} packs {len(codes)} fields, the docstring lists {len(fields)}"
            )
        for (field_name, kind), code in zip(fields, codes, strict=True):
            if _STRUCT_CODES[kind] != code:
                raise ContractError(
                    f"{self.path}: {field_name} is {kind} in the docstring, {code!r} in {fmt}"
                )
        out = Layout(self.path, form, fields)
        if length is not None and self.integer(length) != out.size:
            raise ContractError(
                f"{self.path}: {length} is {self.integer(length)}, {fmt} packs {out.size} bytes"
            )
        return out

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


def _struct_codes(path: Path, name: str, fmt: str) -> list[str]:
    """One struct code per field of a little-endian format ("<Q13iB")."""
    body = fmt[1:]
    if not fmt.startswith("<") or not re.fullmatch(r"(\d*[BbHhIiQq])*", body):
        raise ContractError(
            f"{path}: {name} = {fmt!r}: the host decodes little-endian integers only"
        )
    return [code for count, code in re.findall(r"(\d*)(\D)", body) for _ in range(int(count or 1))]


def _doc_fields(path: Path, doc: str, fmt: str) -> tuple[tuple[str, str], ...]:
    """The `name type` list indented under the docstring paragraph naming `fmt`."""
    lines = doc.splitlines()
    intro: list[str] = []
    i = 0
    while i < len(lines):
        if not (lines[i].startswith(" ") and lines[i].strip()):
            intro = [*intro, lines[i]] if lines[i].strip() else []
            i += 1
            continue
        block: list[str] = []
        while i < len(lines) and lines[i].startswith(" ") and lines[i].strip():
            block.append(lines[i])
            i += 1
        if re.search(rf"\b{re.escape(fmt)}\b", " ".join(intro)):
            return _parse_fields(path, fmt, " ".join(block))
        intro = []
    raise ContractError(
        f"{path}: the docstring has no field list for {fmt} (a paragraph naming "
        f"{fmt}, then the fields indented: `seq u16, t_us u32, ...`)"
    )


def _parse_fields(path: Path, fmt: str, text: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for item in re.sub(r"\([^()]*\)", "", text).split(","):
        m = _FIELD.fullmatch(item.strip())
        if m is None:
            raise ContractError(
                f"{path}: {item.strip()!r} in the fields of {fmt} is not `name type` (u8 .. i64)"
            )
        out.append((m[1], m[2]))
    return tuple(out)


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
    dict_keys: dict[str, tuple[str, ...]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0]
        if not isinstance(target, ast.Name):
            continue
        if isinstance(node.value, ast.Dict):
            keys = [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
            if len(keys) == len(node.value.keys) and all(isinstance(k, str) for k in keys):
                dict_keys[target.id] = tuple(str(k) for k in keys)
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
    return SourceConstants(path, ints, strs, tuples, dict_keys, ast.get_docstring(tree) or "")


def firmware(module: str) -> SourceConstants:
    """The constants of firmware/<module>.py."""
    return read(FIRMWARE_DIR / f"{module}.py")


def sim(module: str) -> SourceConstants:
    """The constants of sim/<module>.py (a path below sim/: "truth", "mpapi/vbluetooth")."""
    return read(SIM_DIR / f"{module}.py")

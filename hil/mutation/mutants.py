"""Mutants of a MicroPython source file: small, deliberate bugs, each one
spliced into the text so that everything else stays as written (comments,
`const()`, decorators) and the file still runs on the unix port and an ESP32.

Operators, one mutant per change:

- `cmp`: a comparison's boundary moved (`<` <-> `<=`, `>` <-> `>=`), or
  flipped (`==` <-> `!=`, `in` <-> `not in`, `is` <-> `is not`);
- `arith`: an operator swapped (`+` <-> `-`, `*` <-> `//`, `<<` <-> `>>`,
  `&` <-> `|`, ...), also in `x += y`; a unary `-`, `~` or `not` removed;
- `bool`: `and` <-> `or`, and each operand of an `and`/`or` dropped (a check
  removed);
- `const`: a number one up and one down (a threshold moved by one unit), a
  boolean flipped;
- `cond`: an `if`, `elif` or conditional expression's test made `True`,
  then `False` (a branch always or never taken); a `while` test `False`;
- `stmt`: a statement inside a function removed (`pass` in its place).

A mutant is named by its module, the function it is in, and the statement
it changes before and after (`key`): that name survives edits elsewhere in
the file, so a reviewed list of equivalent mutants (mutation/equivalent.toml)
keeps matching while the code around it changes.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OPERATORS = ("cmp", "arith", "bool", "const", "cond", "stmt")

_CMP_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BIN_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitOr,
}
_REMOVABLE = (
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Expr,
    ast.Return,
    ast.Raise,
    ast.Break,
    ast.Continue,
    ast.Delete,
)


@dataclass(frozen=True)
class Mutant:
    module: str  # "heater_safety"
    function: str  # "HeaterSafety.check_heating", or "<module>"
    op: str  # one of OPERATORS
    line: int  # 1-based, where the change starts
    before: str  # the statement (or compound statement's header) as written, normalised
    after: str  # the same with the change
    occurrence: int  # 1, or n for the n-th identical change in the same function
    start: tuple[int, int]  # (line, byte column) of the replaced span
    end: tuple[int, int]
    replacement: str
    in_body: bool = False  # inside a function's body: runs only when it is called
    # lines a test must run for the mutant to change anything: the branch it
    # makes never taken, else the span it changes
    needs: tuple[int, int] = (0, 0)

    @property
    def key(self) -> str:
        """The mutant's stable name: function, operator, the statement before -> after."""
        k = f"{self.module}:{self.function}: {self.op}: `{self.before}` -> `{self.after}`"
        return k if self.occurrence == 1 else f"{k} [{self.occurrence}]"

    def apply(self, source: str) -> str:
        """The source with this mutant spliced in."""
        lines = source.splitlines(keepends=True)
        (l0, c0), (l1, c1) = self.start, self.end
        head = lines[l0 - 1].encode()[:c0].decode()
        tail = lines[l1 - 1].encode()[c1:].decode()
        return "".join([*lines[: l0 - 1], head, self.replacement, tail, *lines[l1:]])


def _header(stmt: ast.stmt) -> str:
    """A statement as one line: compound statements by their header only."""
    if isinstance(stmt, ast.If):
        return f"if {ast.unparse(stmt.test)}:"
    if isinstance(stmt, ast.While):
        return f"while {ast.unparse(stmt.test)}:"
    if isinstance(stmt, ast.For):
        return f"for {ast.unparse(stmt.target)} in {ast.unparse(stmt.iter)}:"
    if isinstance(stmt, ast.With):
        return f"with {', '.join(ast.unparse(i) for i in stmt.items)}:"
    if isinstance(stmt, ast.Try):
        return "try:"
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return f"def {stmt.name}({ast.unparse(stmt.args)}):"
    if isinstance(stmt, ast.ClassDef):
        return f"class {stmt.name}:"
    text = ast.unparse(stmt)
    return " ".join(text.split())


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _docstring_nodes(tree: ast.Module) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and _is_docstring(body[0]):
                out.add(id(body[0]))
    return out


class _Site:
    """One candidate change: the node replaced, and the statement it is in."""

    def __init__(
        self, node: ast.AST, replacement: ast.AST | str, stmt: ast.stmt, op: str, in_body: bool
    ):
        self.node = node
        self.replacement = replacement
        self.stmt = stmt
        self.op = op
        self.in_body = in_body
        self.needs: tuple[int, int] | None = None


def _replace_in(stmt: ast.stmt, old: ast.AST, new: ast.AST | str) -> str:
    """The statement's header with `old` replaced by `new`, for the key."""
    if isinstance(new, str):  # the statement removed
        return new
    if old is stmt:
        assert isinstance(new, ast.stmt)
        return _header(new)
    clone = copy.deepcopy(stmt)
    orig_nodes = list(ast.walk(stmt))
    clone_nodes = list(ast.walk(clone))
    target = clone_nodes[orig_nodes.index(old)]
    for parent in ast.walk(clone):
        for field, value in ast.iter_fields(parent):
            if value is target:
                setattr(parent, field, new)
                return _header(clone)
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is target:
                        value[i] = new
                        return _header(clone)
    return _header(clone)  # pragma: no cover  (the node is always in its statement)


class _Walker(ast.NodeVisitor):
    def __init__(self, docstrings: set[int]):
        self.sites: list[tuple[str, _Site]] = []
        self._func: list[str] = []
        self._stmt: list[ast.stmt] = []
        self._docstrings = docstrings
        self._in_func = 0

    def _where(self) -> str:
        return ".".join(self._func) or "<module>"

    def _add(self, node: ast.AST, repl: ast.AST | str, op: str) -> None:
        stmt = self._stmt[-1]
        in_body = self._in_func > 0 and not isinstance(stmt, (ast.FunctionDef, ast.ClassDef))
        self.sites.append((self._where(), _Site(node, repl, stmt, op, in_body)))

    # scopes
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._func.append(node.name)
        self._stmt.append(node)
        for s in node.body:
            self.visit(s)
        self._stmt.pop()
        self._func.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._func.append(node.name)
        self._in_func += 1
        self._stmt.append(node)
        for d in node.args.defaults:
            self.visit(d)
        self._stmt.pop()
        for s in node.body:
            self.visit(s)
        self._in_func -= 1
        self._func.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.stmt):
            if id(node) in self._docstrings:
                return
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal)):
                return
            self._stmt.append(node)
            if self._in_func and isinstance(node, _REMOVABLE):
                self._add(node, "pass", "stmt")
            if isinstance(node, ast.If):
                self._add(node.test, ast.Constant(True), "cond")
                self._add(node.test, ast.Constant(False), "cond")
                first = node.body[0]
                self.sites[-1][1].needs = (first.lineno, first.end_lineno or first.lineno)
            elif isinstance(node, ast.While):
                self._add(node.test, ast.Constant(False), "cond")
            super().generic_visit(node)
            self._stmt.pop()
            return
        self._expr(node)
        super().generic_visit(node)

    def _expr(self, node: ast.AST) -> None:
        if _is_number(node):  # -1: one constant
            assert isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant)
            value = node.operand.value
            assert isinstance(value, (int, float))
            v = -value
            for d in (1, -1):
                self._add(node, ast.Constant(v + d), "const")
        elif isinstance(node, ast.Compare):
            for i, cmp in enumerate(node.ops):
                swap = _CMP_SWAP.get(type(cmp))
                if swap is not None:
                    ops = list(node.ops)
                    ops[i] = swap()
                    self._add(node, ast.Compare(node.left, ops, node.comparators), "cmp")
        elif isinstance(node, ast.BinOp):
            bswap = _BIN_SWAP.get(type(node.op))
            if bswap is not None and not _is_format(node):
                self._add(node, ast.BinOp(node.left, bswap(), node.right), "arith")
        elif isinstance(node, ast.UnaryOp):
            if isinstance(node.op, (ast.USub, ast.Invert, ast.Not)):
                self._add(node, node.operand, "arith")
        elif isinstance(node, ast.BoolOp):
            other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            self._add(node, ast.BoolOp(other, node.values), "bool")
            for i in range(len(node.values)):
                rest = node.values[:i] + node.values[i + 1 :]
                self._add(node, rest[0] if len(rest) == 1 else ast.BoolOp(node.op, rest), "bool")
        elif isinstance(node, ast.IfExp):
            self._add(node.test, ast.Constant(True), "cond")
            self._add(node.test, ast.Constant(False), "cond")
        elif isinstance(node, ast.Constant):
            c = node.value
            if isinstance(c, bool):
                self._add(node, ast.Constant(not c), "const")
            elif isinstance(c, (int, float)):
                for d in (1, -1):
                    self._add(node, ast.Constant(c + d), "const")

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.generic_visit(node)
        bswap = _BIN_SWAP.get(type(node.op))
        if bswap is not None:
            self._stmt.append(node)
            self._add(node, ast.AugAssign(node.target, bswap(), node.value), "arith")
            self._stmt.pop()

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if _is_number(node):  # -1: one constant, mutated as such
            self._expr(node)
            return
        self.generic_visit(node)


def _is_number(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, (int, float))
        and not isinstance(node.operand.value, bool)
    )


def _is_format(node: ast.BinOp) -> bool:
    """`"%d" % x`: a message, not arithmetic."""
    return isinstance(node.op, ast.Mod) and isinstance(node.left, (ast.Constant, ast.JoinedStr))


def _text(repl: ast.AST | str) -> str:
    if isinstance(repl, str):
        return repl
    text = ast.unparse(repl)
    if isinstance(repl, ast.stmt):
        return text
    if isinstance(repl, ast.Constant) and not (
        isinstance(repl.value, (int, float)) and repl.value < 0
    ):
        return text
    return f"({text})"


def generate(path: Path, module: str | None = None) -> list[Mutant]:
    """Every mutant of the file, in source order."""
    source = path.read_text(encoding="utf-8")
    return generate_from(source, module or path.stem)


def generate_from(source: str, module: str) -> list[Mutant]:
    tree = ast.parse(source)
    w = _Walker(_docstring_nodes(tree))
    w.visit(tree)
    seen: dict[tuple[str, str, str, str], int] = {}
    out: list[Mutant] = []
    for func, site in w.sites:
        node = site.node
        before = _header(site.stmt)
        after = _replace_in(site.stmt, node, site.replacement)
        if isinstance(site.replacement, str):
            after = "pass"
        if before == after:
            continue
        k = (func, site.op, before, after)
        seen[k] = seen.get(k, 0) + 1
        lineno = getattr(node, "lineno", 0)
        end_lineno = getattr(node, "end_lineno", None) or lineno
        out.append(
            Mutant(
                module=module,
                function=func,
                op=site.op,
                line=lineno,
                before=before,
                after=after,
                occurrence=seen[k],
                start=(lineno, getattr(node, "col_offset", 0)),
                end=(end_lineno, getattr(node, "end_col_offset", 0) or 0),
                replacement=_text(site.replacement),
                in_body=site.in_body,
                needs=site.needs or (lineno, end_lineno),
            )
        )
    return out


def by_operator(mutants: list[Mutant]) -> Iterator[tuple[str, int]]:
    for op in OPERATORS:
        yield op, sum(m.op == op for m in mutants)
